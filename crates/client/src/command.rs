//! Parsing one line of user input into a [`Command`].
//!
//! | input               | command                                                  |
//! |---------------------|----------------------------------------------------------|
//! | `TEXT`              | [`Command::Say`]: send to the current target             |
//! | `//TEXT`            | [`Command::Say`] of `/TEXT` (so `//shrug` says `/shrug`) |
//! | `/join ROOM`        | [`Command::Join`]: join ROOM and make it the current room |
//! | `/part [ROOM]`      | [`Command::Part`]: leave ROOM (default: the current room) |
//! | `/rooms`            | [`Command::Rooms`]                                       |
//! | `/who [ROOM]`       | [`Command::Who`] (default: the current room)             |
//! | `/history [N]`      | [`Command::History`] of the current room                 |
//! | `/history USER [N]` | [`Command::History`] of the private conversation with USER |
//! | `/history #ROOM [N]`| [`Command::History`] of ROOM                             |
//! | `/msg USER TEXT`    | [`Command::Private`]                                     |
//! | `/msg USER`         | [`Command::Focus`]: plain lines now go to USER           |
//! | `/msg public`       | [`Command::Unfocus`]: back to the current room           |
//! | `/list`             | [`Command::List`]                                        |
//! | `/help`             | [`Command::Help`]                                        |
//! | `/exit`, `/quit`    | [`Command::Exit`]                                        |
//!
//! Command names are case-insensitive and may be preceded by spaces. A line of only
//! whitespace is no command at all. `/msg public TEXT` is a private message to a user
//! named `public`: only the bare `/msg public` leaves focus mode.
//!
//! Room names follow the user-name rules with one optional leading `#`, and are
//! case-insensitive; commands carry them in canonical form (`#Rust` becomes `rust`, see
//! [`natter_proto::parse_room`]). In `/history`, a first argument of only digits is the
//! count N; a user whose name is all digits is reached with both arguments
//! (`/history 42 50`).

use natter_proto::{MAX_USERNAME_LEN, NameError, parse_room, validate_username};

/// The word after `/msg` that means "the current room" rather than a user.
pub const PUBLIC: &str = "public";

/// How many messages `/history` asks for when no N is given (the server's default).
pub const DEFAULT_HISTORY: u32 = 50;

/// The largest N `/history` accepts (the server's maximum).
pub const MAX_HISTORY: u32 = 200;

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send text to the current target (the current room, or the focused user).
    Say(String),
    /// Send text privately to one user, whatever the current target.
    Private {
        /// Recipient.
        to: String,
        /// Message text.
        text: String,
    },
    /// Make plain lines go privately to this user.
    Focus(String),
    /// Make plain lines go to the current room again.
    Unfocus,
    /// Join a room (canonical name) and make it the current room.
    Join(String),
    /// Leave a room (canonical name), or the current room when `None`.
    Part(Option<String>),
    /// Ask for the rooms and their member counts.
    Rooms,
    /// Ask who is in a room (canonical name), or in the current room when `None`.
    Who(Option<String>),
    /// Ask for earlier messages.
    History {
        /// Whose messages; `None` for the current room.
        of: Option<HistoryOf>,
        /// How many at most; `None` for the server's default ([`DEFAULT_HISTORY`]).
        limit: Option<u32>,
    },
    /// Ask who is online.
    List,
    /// Show the command list.
    Help,
    /// Leave the chat.
    Exit,
}

/// The conversation a `/history` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOf {
    /// A room (canonical name).
    Room(String),
    /// The private conversation with this user (as typed).
    User(String),
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `/word` that is not a known command.
    #[error(
        "unknown command '/{0}'; type /help for the commands, or start the line with // to send text beginning with /"
    )]
    UnknownCommand(String),
    /// `/msg` without a user name.
    #[error("/msg needs a user: /msg USER TEXT, /msg USER to talk to USER, /msg public to go back")]
    MissingUser,
    /// `/msg` with a user name that cannot exist.
    #[error("invalid user name '{user}': {reason}")]
    InvalidUser {
        /// The name as typed.
        user: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// `/join` without a room name.
    #[error("/join needs a room: /join ROOM")]
    MissingRoom,
    /// A room name that breaks the naming rules.
    #[error("invalid room name '{room}': {}", room_rule(reason))]
    InvalidRoom {
        /// The name as typed.
        room: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// A `/history` count that is not a number from 1 to [`MAX_HISTORY`].
    #[error("invalid count '{0}': /history takes a number of messages from 1 to {MAX_HISTORY}")]
    InvalidCount(String),
    /// A command that takes no arguments was given some.
    #[error("/{0} takes no arguments")]
    UnexpectedArgument(String),
    /// A command was given more arguments than it takes; the text says what it takes.
    #[error("too many arguments; usage: {0}")]
    TooManyArguments(&'static str),
}

/// The room-name wording of a naming rule (the user-name rules, plus one optional `#`).
fn room_rule(reason: &NameError) -> String {
    match reason {
        NameError::Empty => "a room name must not be empty".to_string(),
        NameError::TooLong => {
            format!("a room name must be at most {MAX_USERNAME_LEN} characters (after the '#')")
        }
        NameError::BadChar => "a room name may only contain ASCII letters, digits, '_' and '-', \
            after one optional '#'"
            .to_string(),
    }
}

/// Parses one input line; `Ok(None)` for a line with nothing to do (only whitespace).
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim_start();
    if trimmed.trim_end().is_empty() {
        return Ok(None);
    }
    let Some(rest) = trimmed.strip_prefix('/') else {
        return Ok(Some(Command::Say(line.to_string())));
    };
    if rest.starts_with('/') {
        // "//shrug" says "/shrug".
        return Ok(Some(Command::Say(rest.to_string())));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim()),
        None => (rest, ""),
    };
    let name = name.to_ascii_lowercase();
    let words: Vec<&str> = args.split_whitespace().collect();
    let command = match name.as_str() {
        "msg" => return parse_msg(args).map(Some),
        "join" => {
            return match words.as_slice() {
                [] => Err(ParseError::MissingRoom),
                [room] => Ok(Some(Command::Join(room_name(room)?))),
                _ => Err(ParseError::TooManyArguments("/join ROOM")),
            };
        }
        "part" => {
            return match words.as_slice() {
                [] => Ok(Some(Command::Part(None))),
                [room] => Ok(Some(Command::Part(Some(room_name(room)?)))),
                _ => Err(ParseError::TooManyArguments("/part [ROOM]")),
            };
        }
        "who" => {
            return match words.as_slice() {
                [] => Ok(Some(Command::Who(None))),
                [room] => Ok(Some(Command::Who(Some(room_name(room)?)))),
                _ => Err(ParseError::TooManyArguments("/who [ROOM]")),
            };
        }
        "history" => return parse_history(&words).map(Some),
        "rooms" => Command::Rooms,
        "list" => Command::List,
        "help" => Command::Help,
        "exit" | "quit" => Command::Exit,
        _ => return Err(ParseError::UnknownCommand(name)),
    };
    if args.is_empty() {
        Ok(Some(command))
    } else {
        Err(ParseError::UnexpectedArgument(name))
    }
}

/// Validates and canonicalises a room name as typed.
fn room_name(room: &str) -> Result<String, ParseError> {
    parse_room(room).map_err(|reason| ParseError::InvalidRoom {
        room: room.to_string(),
        reason,
    })
}

/// Whether a `/history` argument is meant as the count (only digits).
fn is_count(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a `/history` count: 1 to [`MAX_HISTORY`].
fn count(word: &str) -> Result<u32, ParseError> {
    match word.parse::<u32>() {
        Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(n),
        _ => Err(ParseError::InvalidCount(word.to_string())),
    }
}

/// Parses the arguments of `/history`: `[N]`, `USER [N]` or `#ROOM [N]`.
fn parse_history(words: &[&str]) -> Result<Command, ParseError> {
    const USAGE: &str = "/history [N], /history USER [N] or /history #ROOM [N]";
    let (of, limit) = match words {
        [] => (None, None),
        [n] if is_count(n) => (None, Some(count(n)?)),
        [target] => (Some(history_of(target)?), None),
        [target, n] => (Some(history_of(target)?), Some(count(n)?)),
        _ => return Err(ParseError::TooManyArguments(USAGE)),
    };
    Ok(Command::History { of, limit })
}

/// The conversation a `/history` argument names: `#ROOM` or a user.
fn history_of(word: &str) -> Result<HistoryOf, ParseError> {
    if word.starts_with('#') {
        return room_name(word).map(HistoryOf::Room);
    }
    validate_username(word).map_err(|reason| ParseError::InvalidUser {
        user: word.to_string(),
        reason,
    })?;
    Ok(HistoryOf::User(word.to_string()))
}

/// Parses the arguments of `/msg` (already trimmed).
fn parse_msg(args: &str) -> Result<Command, ParseError> {
    let (user, text) = match args.split_once(char::is_whitespace) {
        Some((user, text)) => (user, text.trim_start()),
        None => (args, ""),
    };
    if user.is_empty() {
        return Err(ParseError::MissingUser);
    }
    if text.is_empty() && user.eq_ignore_ascii_case(PUBLIC) {
        return Ok(Command::Unfocus);
    }
    validate_username(user).map_err(|reason| ParseError::InvalidUser {
        user: user.to_string(),
        reason,
    })?;
    if text.is_empty() {
        Ok(Command::Focus(user.to_string()))
    } else {
        Ok(Command::Private {
            to: user.to_string(),
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Option<Command> {
        match parse(line) {
            Ok(c) => c,
            Err(e) => panic!("{line:?} should parse, got {e}"),
        }
    }

    fn err(line: &str) -> ParseError {
        match parse(line) {
            Ok(c) => panic!("{line:?} should fail, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_text_is_said_as_typed() {
        assert_eq!(ok("hello"), Some(Command::Say("hello".into())));
        assert_eq!(
            ok("  spaced  out  "),
            Some(Command::Say("  spaced  out  ".into()))
        );
        assert_eq!(ok("a / b"), Some(Command::Say("a / b".into())));
        assert_eq!(ok("hi\r\n"), Some(Command::Say("hi".into())));
    }

    #[test]
    fn whitespace_only_is_nothing() {
        for line in ["", " ", "\t  ", "\r\n", "   \n"] {
            assert_eq!(ok(line), None, "{line:?}");
        }
    }

    #[test]
    fn double_slash_escapes_one_slash() {
        assert_eq!(ok("//shrug"), Some(Command::Say("/shrug".into())));
        assert_eq!(ok("///x y"), Some(Command::Say("//x y".into())));
        assert_eq!(ok("//msg bob"), Some(Command::Say("/msg bob".into())));
    }

    #[test]
    fn msg_with_text_is_private() {
        assert_eq!(
            ok("/msg bob hi there"),
            Some(Command::Private {
                to: "bob".into(),
                text: "hi there".into()
            })
        );
        assert_eq!(
            ok("/msg   bob    spaced  text "),
            Some(Command::Private {
                to: "bob".into(),
                text: "spaced  text".into()
            })
        );
        // Only the bare form means "back to the current room".
        assert_eq!(
            ok("/msg public hi"),
            Some(Command::Private {
                to: "public".into(),
                text: "hi".into()
            })
        );
    }

    #[test]
    fn msg_without_text_focuses_and_public_unfocuses() {
        assert_eq!(ok("/msg bob"), Some(Command::Focus("bob".into())));
        assert_eq!(ok("/msg bob   "), Some(Command::Focus("bob".into())));
        assert_eq!(ok("/msg public"), Some(Command::Unfocus));
        assert_eq!(ok("/msg PUBLIC"), Some(Command::Unfocus));
    }

    #[test]
    fn simple_commands_and_aliases() {
        assert_eq!(ok("/list"), Some(Command::List));
        assert_eq!(ok("/help"), Some(Command::Help));
        assert_eq!(ok("/exit"), Some(Command::Exit));
        assert_eq!(ok("/quit"), Some(Command::Exit));
        assert_eq!(ok("  /LIST  "), Some(Command::List));
        assert_eq!(ok("/Msg bob"), Some(Command::Focus("bob".into())));
    }

    #[test]
    fn msg_without_user_is_an_error() {
        assert_eq!(err("/msg"), ParseError::MissingUser);
        assert_eq!(err("/msg   "), ParseError::MissingUser);
        assert!(err("/msg").to_string().contains("/msg USER TEXT"));
    }

    #[test]
    fn msg_to_an_impossible_name_is_an_error() {
        let e = err("/msg bad.name hi");
        assert_eq!(
            e,
            ParseError::InvalidUser {
                user: "bad.name".into(),
                reason: NameError::BadChar
            }
        );
        assert!(e.to_string().contains("'bad.name'"), "{e}");
        assert!(matches!(
            err(&format!("/msg {}", "x".repeat(33))),
            ParseError::InvalidUser {
                reason: NameError::TooLong,
                ..
            }
        ));
    }

    #[test]
    fn unknown_commands_are_errors_that_mention_help_and_the_escape() {
        let e = err("/shrug");
        assert_eq!(e, ParseError::UnknownCommand("shrug".into()));
        let text = e.to_string();
        assert!(text.contains("/help") && text.contains("//"), "{text}");
        assert_eq!(err("/"), ParseError::UnknownCommand(String::new()));
    }

    #[test]
    fn argument_to_argumentless_command_is_an_error() {
        assert_eq!(
            err("/list everyone"),
            ParseError::UnexpectedArgument("list".into())
        );
        assert_eq!(
            err("/quit now"),
            ParseError::UnexpectedArgument("quit".into())
        );
    }

    #[test]
    fn join_takes_one_room_and_canonicalises_it() {
        assert_eq!(ok("/join rust"), Some(Command::Join("rust".into())));
        assert_eq!(ok("/JOIN #Rust "), Some(Command::Join("rust".into())));
        assert_eq!(err("/join"), ParseError::MissingRoom);
        assert_eq!(err("/join a b"), ParseError::TooManyArguments("/join ROOM"));
        let e = err("/join #a.b");
        assert_eq!(
            e,
            ParseError::InvalidRoom {
                room: "#a.b".into(),
                reason: NameError::BadChar
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid room name '#a.b': a room name may only contain ASCII letters, digits, \
             '_' and '-', after one optional '#'"
        );
        for bad in ["#", "##x", &"r".repeat(33)] {
            assert!(
                matches!(err(&format!("/join {bad}")), ParseError::InvalidRoom { .. }),
                "{bad}"
            );
        }
        assert!(
            err("/join #")
                .to_string()
                .contains("a room name must not be empty")
        );
        assert!(
            err(&format!("/join {}", "r".repeat(33)))
                .to_string()
                .contains("at most 32 characters")
        );
        // 32 characters after the '#' are fine.
        assert_eq!(
            ok(&format!("/join #{}", "R".repeat(32))),
            Some(Command::Join("r".repeat(32)))
        );
    }

    #[test]
    fn part_and_who_default_to_the_current_room() {
        assert_eq!(ok("/part"), Some(Command::Part(None)));
        assert_eq!(ok("/part #Go"), Some(Command::Part(Some("go".into()))));
        assert_eq!(ok("/who"), Some(Command::Who(None)));
        assert_eq!(ok("/who Lobby"), Some(Command::Who(Some("lobby".into()))));
        assert_eq!(
            err("/part a b"),
            ParseError::TooManyArguments("/part [ROOM]")
        );
        assert_eq!(err("/who a b"), ParseError::TooManyArguments("/who [ROOM]"));
        assert!(matches!(err("/who a!"), ParseError::InvalidRoom { .. }));
        assert_eq!(ok("/rooms"), Some(Command::Rooms));
        assert_eq!(
            err("/rooms all"),
            ParseError::UnexpectedArgument("rooms".into())
        );
    }

    #[test]
    fn history_takes_a_count_a_user_or_a_room() {
        let h = |of: Option<HistoryOf>, limit: Option<u32>| Some(Command::History { of, limit });
        assert_eq!(ok("/history"), h(None, None));
        assert_eq!(ok("/history 20"), h(None, Some(20)));
        assert_eq!(ok("/history 1"), h(None, Some(1)));
        assert_eq!(ok("/history 200"), h(None, Some(200)));
        assert_eq!(
            ok("/history Bob"),
            h(Some(HistoryOf::User("Bob".into())), None)
        );
        assert_eq!(
            ok("/history bob 5"),
            h(Some(HistoryOf::User("bob".into())), Some(5))
        );
        // A name of only digits is the count; with a count after it, it is a user.
        assert_eq!(
            ok("/history 42 50"),
            h(Some(HistoryOf::User("42".into())), Some(50))
        );
        assert_eq!(
            ok("/history #Rust 3"),
            h(Some(HistoryOf::Room("rust".into())), Some(3))
        );
        for bad in ["0", "201", "99999999999", "-1", "1.5"] {
            let e = err(&format!("/history bob {bad}"));
            assert_eq!(e, ParseError::InvalidCount(bad.into()));
            assert!(e.to_string().contains("from 1 to 200"), "{e}");
        }
        assert_eq!(err("/history 0"), ParseError::InvalidCount("0".into()));
        assert!(matches!(
            err("/history bad.name"),
            ParseError::InvalidUser { .. }
        ));
        assert!(matches!(
            err("/history #a.b"),
            ParseError::InvalidRoom { .. }
        ));
        assert!(matches!(
            err("/history a 1 2"),
            ParseError::TooManyArguments(_)
        ));
    }
}
