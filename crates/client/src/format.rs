//! Rendering server frames (and local notices) as single display lines.
//!
//! These formats are what plain mode prints, one per line, so scripts and tests can rely on
//! them; interactive mode prints the same lines above the prompt. Keep them stable:
//!
//! | frame                          | line                                      |
//! |--------------------------------|-------------------------------------------|
//! | `public`                       | `<alice> hello`                           |
//! | `private` (received or echoed) | `*alice -> bob* hi`                       |
//! | `system`                       | `[system] text`                           |
//! | `presence` join                | `[join] alice`                            |
//! | `presence` leave               | `[leave] alice (quit)`, or `[leave] alice` without a reason |
//! | `list`                         | `[online] alice, bob` (`[online] nobody` when empty) |
//! | `error`                        | `[error] message (code)`                  |
//! | `auth_ok`                      | `[system] logged in as alice`, or `[system] registered and logged in as alice` |
//! | `bye`                          | `[bye] reason`                            |
//! | `hello`, `ok`, `ping`, `pong`  | nothing                                   |
//!
//! Lines the client makes up itself use the same style: `[error] message` (no code) for a
//! mistyped command, `[help] ...` for the help text and `[focus] ...` when the target changes.
//! Timestamps are not shown.
//!
//! Every piece of text from the network goes through [`sanitize`], so a line never contains a
//! newline or a terminal control sequence: line breaks become `⏎`, tabs become a space and
//! other control characters become `�`.

use natter_proto::{ErrorCode, PresenceEvent, ServerFrame};

/// What a line break inside a message is shown as.
pub const NEWLINE_MARKER: char = '⏎';

/// What any other control character inside a message is shown as.
pub const CONTROL_MARKER: char = '\u{FFFD}';

/// Renders a frame as one display line, or `None` for frames that are not shown.
pub fn render(frame: &ServerFrame) -> Option<String> {
    let line = match frame {
        ServerFrame::Public { from, text, .. } => {
            format!("<{}> {}", sanitize(from), sanitize(text))
        }
        ServerFrame::Private { from, to, text, .. } => format!(
            "*{} -> {}* {}",
            sanitize(from),
            sanitize(to),
            sanitize(text)
        ),
        ServerFrame::System { text } => format!("[system] {}", sanitize(text)),
        ServerFrame::Presence {
            user,
            event: PresenceEvent::Join,
            ..
        } => format!("[join] {}", sanitize(user)),
        ServerFrame::Presence {
            user,
            event: PresenceEvent::Leave,
            reason,
        } => match reason {
            Some(reason) if !reason.is_empty() => {
                format!("[leave] {} ({})", sanitize(user), sanitize(reason))
            }
            _ => format!("[leave] {}", sanitize(user)),
        },
        ServerFrame::List { users, .. } => {
            if users.is_empty() {
                "[online] nobody".to_string()
            } else {
                let names: Vec<String> = users.iter().map(|u| sanitize(u)).collect();
                format!("[online] {}", names.join(", "))
            }
        }
        ServerFrame::Error { code, message, .. } => error_line(*code, message),
        ServerFrame::AuthOk {
            user, registered, ..
        } => logged_in_line(user, *registered),
        ServerFrame::Bye { reason } => bye_line(reason),
        ServerFrame::Hello { .. }
        | ServerFrame::Ok { .. }
        | ServerFrame::Ping { .. }
        | ServerFrame::Pong { .. } => return None,
    };
    Some(line)
}

/// The line for an error the server reported: `[error] message (code)`.
pub fn error_line(code: ErrorCode, message: &str) -> String {
    format!("[error] {} ({})", sanitize(message), code)
}

/// The line for a mistake found locally (no code): `[error] message`.
pub fn local_error_line(message: &str) -> String {
    format!("[error] {}", sanitize(message))
}

/// The line announcing a successful login.
pub fn logged_in_line(user: &str, registered: bool) -> String {
    if registered {
        format!("[system] registered and logged in as {}", sanitize(user))
    } else {
        format!("[system] logged in as {}", sanitize(user))
    }
}

/// The line for the server's goodbye: `[bye] reason`.
pub fn bye_line(reason: &str) -> String {
    format!("[bye] {}", sanitize(reason))
}

/// Makes untrusted text safe to show on one terminal line.
///
/// `\r\n`, `\n`, `\r` and the Unicode line/paragraph separators become [`NEWLINE_MARKER`];
/// a tab becomes a space; every other control character (C0, DEL, C1 — which covers the
/// escape character that starts terminal sequences) becomes [`CONTROL_MARKER`].
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(NEWLINE_MARKER);
            }
            '\n' | '\u{2028}' | '\u{2029}' | '\u{85}' => out.push(NEWLINE_MARKER),
            '\t' => out.push(' '),
            c if c.is_control() => out.push(CONTROL_MARKER),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_proto::FrameId;

    fn line(frame: ServerFrame) -> String {
        match render(&frame) {
            Some(l) => {
                assert!(
                    !l.contains('\n') && !l.contains('\r'),
                    "line breaks in {l:?}"
                );
                l
            }
            None => panic!("{frame:?} should be shown"),
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            line(ServerFrame::Public {
                from: "alice".into(),
                text: "hello".into(),
                ts: 1
            }),
            "<alice> hello"
        );
        assert_eq!(
            line(ServerFrame::Private {
                from: "alice".into(),
                to: "bob".into(),
                text: "hi".into(),
                ts: 1
            }),
            "*alice -> bob* hi"
        );
    }

    #[test]
    fn notices() {
        assert_eq!(
            line(ServerFrame::System {
                text: "server shutting down".into()
            }),
            "[system] server shutting down"
        );
        assert_eq!(
            line(ServerFrame::Presence {
                user: "alice".into(),
                event: PresenceEvent::Join,
                reason: None
            }),
            "[join] alice"
        );
        assert_eq!(
            line(ServerFrame::Presence {
                user: "alice".into(),
                event: PresenceEvent::Leave,
                reason: Some("quit".into())
            }),
            "[leave] alice (quit)"
        );
        assert_eq!(
            line(ServerFrame::Presence {
                user: "alice".into(),
                event: PresenceEvent::Leave,
                reason: None
            }),
            "[leave] alice"
        );
        assert_eq!(
            line(ServerFrame::Bye {
                reason: "quit".into()
            }),
            "[bye] quit"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            line(ServerFrame::List {
                id: None,
                users: vec!["alice".into(), "bob".into()]
            }),
            "[online] alice, bob"
        );
        assert_eq!(
            line(ServerFrame::List {
                id: None,
                users: vec![]
            }),
            "[online] nobody"
        );
    }

    #[test]
    fn errors_show_message_and_code() {
        assert_eq!(
            line(ServerFrame::error(
                Some(FrameId::Num(1)),
                ErrorCode::UserOffline,
                "bob is not online"
            )),
            "[error] bob is not online (user_offline)"
        );
        assert_eq!(local_error_line("oops"), "[error] oops");
    }

    #[test]
    fn logins() {
        assert_eq!(
            line(ServerFrame::AuthOk {
                id: None,
                user: "alice".into(),
                registered: false
            }),
            "[system] logged in as alice"
        );
        assert_eq!(
            line(ServerFrame::AuthOk {
                id: None,
                user: "alice".into(),
                registered: true
            }),
            "[system] registered and logged in as alice"
        );
    }

    #[test]
    fn protocol_frames_are_not_shown() {
        for f in [
            ServerFrame::Hello {
                server: "natter".into(),
                version: "0".into(),
                protocol: 1,
            },
            ServerFrame::Ok {
                id: FrameId::Num(1),
            },
            ServerFrame::Ping { id: None },
            ServerFrame::Pong { id: None },
        ] {
            assert_eq!(render(&f), None, "{f:?}");
        }
    }

    #[test]
    fn line_breaks_and_control_characters_never_reach_the_terminal() {
        let l = line(ServerFrame::Public {
            from: "ev\nil".into(),
            text: "one\ntwo\r\nthree\rfour\u{2028}five\u{1b}[2Jsix\tseven\u{7f}\u{9b}".into(),
            ts: 1,
        });
        assert_eq!(
            l,
            "<ev⏎il> one⏎two⏎three⏎four⏎five\u{FFFD}[2Jsix seven\u{FFFD}\u{FFFD}"
        );
        let l = line(ServerFrame::error(None, ErrorCode::Internal, "a\nb"));
        assert_eq!(l, "[error] a⏎b (internal)");
        assert_eq!(
            line(ServerFrame::Bye {
                reason: "x\r\ny".into()
            }),
            "[bye] x⏎y"
        );
    }
}
