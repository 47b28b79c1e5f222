//! Parsing one line of user input into a [`Command`].
//!
//! | input               | command                                                  |
//! |---------------------|----------------------------------------------------------|
//! | `TEXT`              | [`Command::Say`]: send to the current target             |
//! | `//TEXT`            | [`Command::Say`] of `/TEXT` (so `//shrug` says `/shrug`) |
//! | `/msg USER TEXT`    | [`Command::Private`]                                     |
//! | `/msg USER`         | [`Command::Focus`]: plain lines now go to USER           |
//! | `/msg public`       | [`Command::Unfocus`]: back to the public chat            |
//! | `/list`             | [`Command::List`]                                        |
//! | `/help`             | [`Command::Help`]                                        |
//! | `/exit`, `/quit`    | [`Command::Exit`]                                        |
//!
//! Command names are case-insensitive and may be preceded by spaces. A line of only
//! whitespace is no command at all. `/msg public TEXT` is a private message to a user
//! named `public`: only the bare `/msg public` leaves focus mode.

use natter_proto::{NameError, validate_username};

/// The word after `/msg` that means "the public chat" rather than a user.
pub const PUBLIC: &str = "public";

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send text to the current target (the public chat, or the focused user).
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
    /// Make plain lines go to the public chat again.
    Unfocus,
    /// Ask who is online.
    List,
    /// Show the command list.
    Help,
    /// Leave the chat.
    Exit,
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
    /// A command that takes no arguments was given some.
    #[error("/{0} takes no arguments")]
    UnexpectedArgument(String),
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
    let command = match name.as_str() {
        "msg" => return parse_msg(args).map(Some),
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
        // Only the bare form means the public chat.
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
}
