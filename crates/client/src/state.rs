//! The chat state of a logged-in client: who we are and where plain lines go.
//!
//! [`ChatState`] turns what the user typed into an [`Action`] (a frame to send, lines to
//! show locally, or leaving) and what the server sent into a [`Reaction`]. It does no I/O,
//! so both front ends (plain and interactive) share it and tests drive it directly.

use natter_proto::{ClientFrame, MAX_LINE, ServerFrame, encode};

use crate::command::{Command, parse};
use crate::format;

/// The help text, one display line per entry.
pub const HELP: &[&str] = &[
    "[help] TEXT            send TEXT to the current chat: public, or the user you focus on",
    "[help] /msg USER TEXT  send TEXT privately to USER",
    "[help] /msg USER       talk privately to USER: plain lines go to USER until /msg public",
    "[help] /msg public     go back to the public chat",
    "[help] /list           show who is online",
    "[help] /help           show this help",
    "[help] /exit, /quit    leave the chat (Ctrl-D and Ctrl-C too)",
    "[help] //TEXT          send TEXT starting with a single / (//shrug sends /shrug)",
];

/// What to do about one line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (an empty line).
    Nothing,
    /// Send this frame to the server.
    Send(ClientFrame),
    /// Show these lines locally; nothing is sent.
    Show(Vec<String>),
    /// Leave: send `quit` and wait for the server's `bye`.
    Exit,
}

/// What to do about one frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing to show or send.
    Ignore,
    /// Show this line.
    Show(String),
    /// Answer with this frame, showing nothing (a `pong` for a `ping`).
    Reply(ClientFrame),
    /// The server said goodbye for this reason and is closing the connection.
    Bye(String),
}

/// A logged-in user's chat state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    /// Our account name as the server spells it.
    user: String,
    /// Where plain lines go: `None` for the public chat, or a user in focus mode.
    focus: Option<String>,
}

impl ChatState {
    /// A fresh state for `user`, talking to the public chat.
    pub fn new(user: impl Into<String>) -> Self {
        ChatState {
            user: user.into(),
            focus: None,
        }
    }

    /// The logged-in user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user plain lines currently go to, or `None` for the public chat.
    pub fn focus(&self) -> Option<&str> {
        self.focus.as_deref()
    }

    /// The prompt showing where plain lines go: `[public] > ` or `[@bob] > `.
    pub fn prompt(&self) -> String {
        match &self.focus {
            None => "[public] > ".to_string(),
            Some(user) => format!("[@{user}] > "),
        }
    }

    /// Parses a typed line and decides what to do about it.
    pub fn handle_line(&mut self, line: &str) -> Action {
        match parse(line) {
            Ok(None) => Action::Nothing,
            Ok(Some(command)) => self.apply(command),
            Err(e) => Action::Show(vec![format::local_error_line(&e.to_string())]),
        }
    }

    /// Decides what to do about a parsed command, updating the focus.
    pub fn apply(&mut self, command: Command) -> Action {
        match command {
            Command::Say(text) => match &self.focus {
                None => checked(ClientFrame::Public { id: None, text }),
                Some(to) => checked(ClientFrame::Private {
                    id: None,
                    to: to.clone(),
                    text,
                }),
            },
            Command::Private { to, text } => checked(ClientFrame::Private { id: None, to, text }),
            Command::Focus(user) => {
                let line = format!(
                    "[focus] talking privately to {user}; /msg public to go back to the public chat"
                );
                self.focus = Some(user);
                Action::Show(vec![line])
            }
            Command::Unfocus => {
                self.focus = None;
                Action::Show(vec!["[focus] back to the public chat".to_string()])
            }
            Command::List => Action::Send(ClientFrame::List { id: None }),
            Command::Help => Action::Show(HELP.iter().map(|l| l.to_string()).collect()),
            Command::Exit => Action::Exit,
        }
    }

    /// Decides what to do about a frame from the server.
    pub fn on_frame(&mut self, frame: &ServerFrame) -> Reaction {
        match frame {
            ServerFrame::Ping { id } => Reaction::Reply(ClientFrame::Pong { id: id.clone() }),
            ServerFrame::Bye { reason } => Reaction::Bye(reason.clone()),
            other => match format::render(other) {
                Some(line) => Reaction::Show(line),
                None => Reaction::Ignore,
            },
        }
    }
}

/// Sends `frame` unless its encoding is longer than the server accepts (it would close
/// the connection over it), in which case the user is told instead.
fn checked(frame: ClientFrame) -> Action {
    let len = encode(&frame).len() - 1;
    if len > MAX_LINE {
        Action::Show(vec![format::local_error_line(&format!(
            "message too long ({len} bytes encoded, at most {MAX_LINE}); it was not sent"
        ))])
    } else {
        Action::Send(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_proto::{ErrorCode, FrameId, PresenceEvent};

    fn public(text: &str) -> Action {
        Action::Send(ClientFrame::Public {
            id: None,
            text: text.into(),
        })
    }

    fn private(to: &str, text: &str) -> Action {
        Action::Send(ClientFrame::Private {
            id: None,
            to: to.into(),
            text: text.into(),
        })
    }

    #[test]
    fn starts_public_with_public_prompt() {
        let s = ChatState::new("alice");
        assert_eq!(s.user(), "alice");
        assert_eq!(s.focus(), None);
        assert_eq!(s.prompt(), "[public] > ");
    }

    #[test]
    fn plain_lines_go_public_then_to_the_focused_user_then_public_again() {
        let mut s = ChatState::new("alice");
        assert_eq!(s.handle_line("hi all"), public("hi all"));

        let Action::Show(lines) = s.handle_line("/msg bob") else {
            panic!("focus shows a notice");
        };
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("[focus] ") && lines[0].contains("bob"));
        assert_eq!(s.focus(), Some("bob"));
        assert_eq!(s.prompt(), "[@bob] > ");
        assert_eq!(s.handle_line("psst"), private("bob", "psst"));
        assert_eq!(s.handle_line("//shrug"), private("bob", "/shrug"));

        // An explicit /msg goes to its own user without changing the focus.
        assert_eq!(s.handle_line("/msg carol yo"), private("carol", "yo"));
        assert_eq!(s.focus(), Some("bob"));

        assert_eq!(
            s.handle_line("/msg public"),
            Action::Show(vec!["[focus] back to the public chat".into()])
        );
        assert_eq!(s.focus(), None);
        assert_eq!(s.prompt(), "[public] > ");
        assert_eq!(s.handle_line("back"), public("back"));
    }

    #[test]
    fn list_help_exit_and_blank_lines() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.handle_line("/list"),
            Action::Send(ClientFrame::List { id: None })
        );
        assert_eq!(s.handle_line("/exit"), Action::Exit);
        assert_eq!(s.handle_line("/quit"), Action::Exit);
        assert_eq!(s.handle_line("   "), Action::Nothing);
        let Action::Show(help) = s.handle_line("/help") else {
            panic!("help shows lines");
        };
        let all = help.join("\n");
        for cmd in [
            "/msg USER TEXT",
            "/msg USER ",
            "/msg public",
            "/list",
            "/help",
            "/exit",
            "/quit",
            "//",
        ] {
            assert!(all.contains(cmd), "help lacks {cmd}");
        }
        assert!(help.iter().all(|l| l.starts_with("[help] ")));
    }

    #[test]
    fn parse_errors_are_shown_and_nothing_is_sent() {
        let mut s = ChatState::new("alice");
        for line in ["/nope", "/msg", "/msg a.b hi", "/list x"] {
            match s.handle_line(line) {
                Action::Show(lines) => {
                    assert_eq!(lines.len(), 1);
                    assert!(lines[0].starts_with("[error] "), "{lines:?}");
                }
                other => panic!("{line:?} gave {other:?}"),
            }
        }
        assert_eq!(s.focus(), None);
    }

    #[test]
    fn oversized_messages_are_refused_locally() {
        let mut s = ChatState::new("alice");
        let big = "x".repeat(MAX_LINE);
        match s.handle_line(&big) {
            Action::Show(lines) => assert!(lines[0].contains("too long"), "{lines:?}"),
            other => panic!("sent {other:?}"),
        }
        // Escaping counts: control characters take six bytes each in JSON.
        let escaped = "\u{1}".repeat(MAX_LINE / 5);
        assert!(matches!(s.handle_line(&escaped), Action::Show(_)));
        let fits = "x".repeat(MAX_LINE - 100);
        assert_eq!(s.handle_line(&fits), public(&fits));
    }

    #[test]
    fn pings_are_answered_with_the_same_id_and_not_shown() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.on_frame(&ServerFrame::Ping {
                id: Some(FrameId::Str("p7".into()))
            }),
            Reaction::Reply(ClientFrame::Pong {
                id: Some(FrameId::Str("p7".into()))
            })
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Ping { id: None }),
            Reaction::Reply(ClientFrame::Pong { id: None })
        );
    }

    #[test]
    fn frames_become_lines_byes_end_and_acks_are_ignored() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.on_frame(&ServerFrame::Presence {
                user: "bob".into(),
                event: PresenceEvent::Join,
                reason: None
            }),
            Reaction::Show("[join] bob".into())
        );
        assert_eq!(
            s.on_frame(&ServerFrame::error(
                None,
                ErrorCode::NoSuchUser,
                "no such user"
            )),
            Reaction::Show("[error] no such user (no_such_user)".into())
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Bye {
                reason: "quit".into()
            }),
            Reaction::Bye("quit".into())
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Ok {
                id: FrameId::Num(1)
            }),
            Reaction::Ignore
        );
    }
}
