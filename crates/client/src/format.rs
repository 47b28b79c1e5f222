//! Rendering server frames (and local notices) as display lines.
//!
//! These formats are what plain mode prints, one per line, so scripts and tests can rely on
//! them; interactive mode prints the same lines above the prompt. Keep them stable:
//!
//! | frame                          | line                                      |
//! |--------------------------------|-------------------------------------------|
//! | `public`                       | `#lobby <alice> hello`                    |
//! | `private` (received or echoed) | `*alice -> bob* hi`                       |
//! | `private` with `late`          | `*alice -> bob* hi (sent 2026-11-22 14:03 UTC, delivered late)` |
//! | `queued`                       | `[queued] bob is offline; your message will be delivered when they log in` |
//! | `system`                       | `[system] text`                           |
//! | `presence` join                | `[join] #lobby alice`                     |
//! | `presence` leave               | `[leave] #lobby alice (quit)`, or `[leave] #lobby alice` without a reason |
//! | `joined`                       | `[joined] #rust (3 members: alice, bob, carol)`; `(1 member: alice)`; `(402 members: a, b, ... and 2 more)` |
//! | `parted`                       | `[parted] #rust`                          |
//! | `rooms`                        | `[rooms] #lobby (5), #rust (2)` (`... and 3 more`; `[rooms] none` when empty) |
//! | `who`                          | `[who] #rust: alice, bob` (`... and 3 more`; `[who] #rust: nobody` when empty) |
//! | `list`                         | `[online] alice, bob` (`... and 3 more`; `[online] nobody` when empty) |
//! | `history`                      | one line per message: `[history] #lobby <alice> hello`, `[history] *alice -> bob* hi` |
//! | `error`                        | `[error] message (code)`                  |
//! | `auth_ok`                      | `[system] logged in as alice`, or `[system] registered and logged in as alice` |
//! | `bye`                          | `[bye] reason`                            |
//! | `hello`, `ok`, `ping`, `pong`  | nothing                                   |
//!
//! After the last chunk of an answer to `/history` that held no message at all,
//! [`crate::state::ChatState`] adds `[history] #lobby: no earlier messages` (or
//! `[history] @bob: no earlier messages`); the history sent automatically after a join
//! prints nothing when empty.
//!
//! Lines the client makes up itself use the same style: `[error] message` (no code) for a
//! mistyped command, `[help] ...` for the help text and `[focus] ...` when the target changes.
//! Timestamps are not shown, except the original time of a message delivered late, in UTC.
//!
//! Every piece of text from the network goes through [`sanitize`], so a line never contains a
//! newline or a terminal control sequence: line breaks become `⏎`, tabs become spaces up to
//! the next multiple of [`TAB_WIDTH`] columns and other control characters become `�`.

use natter_proto::{ErrorCode, HistoryEntry, PresenceEvent, RoomInfo, ServerFrame};

/// What a line break inside a message is shown as.
pub const NEWLINE_MARKER: char = '⏎';

/// What any other control character inside a message is shown as.
pub const CONTROL_MARKER: char = '\u{FFFD}';

/// Tab stops inside a piece of text, in columns from its start. The text's place on the
/// screen is not known here, so its start stands in for the line's; 4 keeps indentation
/// visible without 8's wide gaps.
pub const TAB_WIDTH: usize = 4;

/// Prefix of every line showing a stored message.
pub const HISTORY_PREFIX: &str = "[history] ";

/// `[presence] #room: 3 joined (ann, bob, cy), 1 left (dan); 120 members`, listing at
/// most a few names per kind so a busy room's summary stays one readable line.
fn presence_summary_line(
    room: &str,
    members: u32,
    joined: &[String],
    joined_more: u32,
    left: &[String],
    left_more: u32,
) -> String {
    const SHOWN: usize = 5;
    let part = |verb: &str, names: &[String], more: u32| -> Option<String> {
        let total = names.len() as u64 + u64::from(more);
        if total == 0 {
            return None;
        }
        let mut listed: Vec<String> = names.iter().take(SHOWN).map(|n| sanitize(n)).collect();
        if total > listed.len() as u64 {
            listed.push("...".into());
        }
        Some(format!("{total} {verb} ({})", listed.join(", ")))
    };
    let parts: Vec<String> = [
        part("joined", joined, joined_more),
        part("left", left, left_more),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!(
        "[presence] #{}: {}; {members} members",
        sanitize(room),
        parts.join(", ")
    )
}

/// Renders a frame as display lines: one for most frames, one per message for `history`,
/// none for frames that are not shown.
pub fn render(frame: &ServerFrame) -> Vec<String> {
    let line = match frame {
        ServerFrame::Public {
            room, from, text, ..
        } => public_line(room, from, text),
        ServerFrame::Private {
            from,
            to,
            text,
            ts,
            late,
            ..
        } => {
            let line = private_line(from, to, text);
            if *late {
                format!("{line} (sent {} UTC, delivered late)", utc_minute(*ts))
            } else {
                line
            }
        }
        ServerFrame::Notice {
            room,
            from,
            to,
            text,
            ..
        } => match (room, to) {
            (Some(room), _) => format!(
                "[notice] #{} -{}- {}",
                sanitize(room),
                sanitize(from),
                sanitize(text)
            ),
            (None, to) => format!(
                "[notice] -{} -> {}- {}",
                sanitize(from),
                sanitize(to.as_deref().unwrap_or_default()),
                sanitize(text)
            ),
        },
        ServerFrame::Queued { to, .. } => format!(
            "[queued] {} is offline; your message will be delivered when they log in",
            sanitize(to)
        ),
        ServerFrame::System { text } => format!("[system] {}", sanitize(text)),
        ServerFrame::Presence {
            room,
            user,
            event: PresenceEvent::Join,
            ..
        } => format!("[join] #{} {}", sanitize(room), sanitize(user)),
        ServerFrame::Presence {
            room,
            user,
            event: PresenceEvent::Leave,
            reason,
            message,
        } => {
            let mut line = format!("[leave] #{} {}", sanitize(room), sanitize(user));
            if let Some(reason) = reason.as_deref().filter(|r| !r.is_empty()) {
                line.push_str(&format!(" ({})", sanitize(reason)));
            }
            if let Some(message) = message.as_deref().filter(|m| !m.is_empty()) {
                line.push_str(&format!(": {}", sanitize(message)));
            }
            line
        }
        ServerFrame::PresenceSummary {
            room,
            members,
            joined,
            joined_more,
            left,
            left_more,
        } => presence_summary_line(room, *members, joined, *joined_more, left, *left_more),
        ServerFrame::Joined {
            room,
            members,
            more,
            ..
        } => {
            let total = members.len() as u64 + u64::from(*more);
            let noun = if total == 1 { "member" } else { "members" };
            format!(
                "[joined] #{} ({total} {noun}: {})",
                sanitize(room),
                names(members, *more, "nobody")
            )
        }
        ServerFrame::Parted { room, .. } => format!("[parted] #{}", sanitize(room)),
        ServerFrame::Rooms { rooms, more, .. } => format!("[rooms] {}", room_list(rooms, *more)),
        ServerFrame::Who {
            room, users, more, ..
        } => format!(
            "[who] #{}: {}",
            sanitize(room),
            names(users, *more, "nobody")
        ),
        ServerFrame::List { users, more, .. } => {
            format!("[online] {}", names(users, *more, "nobody"))
        }
        ServerFrame::History {
            room,
            with,
            messages,
            ..
        } => return history_lines(room.as_deref(), with.as_deref(), messages),
        ServerFrame::Error { code, message, .. } => error_line(*code, message),
        ServerFrame::AuthOk {
            user, registered, ..
        } => logged_in_line(user, *registered),
        ServerFrame::Bye { reason } => bye_line(reason),
        ServerFrame::Hello { .. }
        | ServerFrame::Ok { .. }
        | ServerFrame::Ping { .. }
        | ServerFrame::Pong { .. } => return Vec::new(),
    };
    vec![line]
}

/// A room message: `#lobby <alice> hello`.
fn public_line(room: &str, from: &str, text: &str) -> String {
    format!(
        "#{} <{}> {}",
        sanitize(room),
        sanitize(from),
        sanitize(text)
    )
}

/// A private message: `*alice -> bob* hi`.
fn private_line(from: &str, to: &str, text: &str) -> String {
    format!(
        "*{} -> {}* {}",
        sanitize(from),
        sanitize(to),
        sanitize(text)
    )
}

/// `a, b, c`, then ` and N more` when names were left out; `empty` when there are none.
fn names(names: &[String], more: u32, empty: &str) -> String {
    let mut out = names
        .iter()
        .map(|n| sanitize(n))
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        if out.is_empty() {
            out = format!("{more} more");
        } else {
            out.push_str(&format!(" and {more} more"));
        }
    } else if out.is_empty() {
        out = empty.to_string();
    }
    out
}

/// `#lobby (5), #rust (2)`, then ` and N more`; `none` when there are none.
fn room_list(rooms: &[RoomInfo], more: u32) -> String {
    let listed: Vec<String> = rooms
        .iter()
        .map(|r| format!("#{} ({})", sanitize(&r.name), r.members))
        .collect();
    names(&listed, more, "none")
}

/// One line per stored message of a `history` chunk: `[history] #lobby <alice> hello` for
/// a room, `[history] *alice -> bob* hi` for a private conversation.
pub fn history_lines(
    room: Option<&str>,
    with: Option<&str>,
    messages: &[HistoryEntry],
) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let line = match (room, &m.to) {
                (Some(room), _) => public_line(room, &m.from, &m.text),
                (None, Some(to)) => private_line(&m.from, to, &m.text),
                (None, None) => private_line(&m.from, with.unwrap_or("?"), &m.text),
            };
            format!("{HISTORY_PREFIX}{line}")
        })
        .collect()
}

/// The line after an empty answer to `/history`: `[history] #lobby: no earlier messages`,
/// or `[history] @bob: no earlier messages` for a private conversation.
pub fn no_history_line(room: Option<&str>, with: Option<&str>) -> String {
    let target = match (room, with) {
        (Some(room), _) => format!("#{}", sanitize(room)),
        (None, Some(with)) => format!("@{}", sanitize(with)),
        (None, None) => "?".to_string(),
    };
    format!("{HISTORY_PREFIX}{target}: no earlier messages")
}

/// A timestamp (Unix milliseconds) as UTC `YYYY-MM-DD HH:MM`.
pub fn utc_minute(ts_ms: u64) -> String {
    let minutes = ts_ms / 60_000;
    let (hour, minute) = ((minutes / 60) % 24, minutes % 60);
    let (year, month, day) = civil_from_days(minutes / (60 * 24));
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so leap days come last in each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of the 400-year era: [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March-based month: [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
/// a tab becomes spaces up to the next multiple of [`TAB_WIDTH`] columns (counting one
/// column per character from the start of `text`); every other control character (C0, DEL,
/// C1 — which covers the escape character that starts terminal sequences) becomes
/// [`CONTROL_MARKER`].
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Characters pushed so far: the column the next one lands in.
    let mut column = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let shown = match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                NEWLINE_MARKER
            }
            '\n' | '\u{2028}' | '\u{2029}' | '\u{85}' => NEWLINE_MARKER,
            '\t' => {
                let spaces = TAB_WIDTH - column % TAB_WIDTH;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
                continue;
            }
            c if c.is_control() => CONTROL_MARKER,
            c => c,
        };
        out.push(shown);
        column += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_proto::FrameId;

    fn line(frame: ServerFrame) -> String {
        let lines = render(&frame);
        assert_eq!(lines.len(), 1, "{frame:?} should be one line: {lines:?}");
        let l = lines.into_iter().next().unwrap_or_default();
        assert!(
            !l.contains('\n') && !l.contains('\r'),
            "line breaks in {l:?}"
        );
        l
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn private(late: bool, ts: u64) -> ServerFrame {
        ServerFrame::Private {
            msg_id: 9,
            from: "alice".into(),
            to: "bob".into(),
            text: "hi".into(),
            ts,
            late,
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            line(ServerFrame::Public {
                msg_id: 1,
                room: "lobby".into(),
                from: "alice".into(),
                text: "hello".into(),
                ts: 1
            }),
            "#lobby <alice> hello"
        );
        assert_eq!(line(private(false, 1)), "*alice -> bob* hi");
        assert_eq!(
            line(ServerFrame::Queued {
                id: None,
                msg_id: 3,
                to: "bob".into()
            }),
            "[queued] bob is offline; your message will be delivered when they log in"
        );
    }

    #[test]
    fn late_messages_show_their_original_time_in_utc() {
        // 2026-11-22 14:03:59.999 UTC.
        assert_eq!(
            line(private(true, 1_795_356_239_999)),
            "*alice -> bob* hi (sent 2026-11-22 14:03 UTC, delivered late)"
        );
    }

    #[test]
    fn utc_minutes_follow_the_calendar() {
        for (ts_s, want) in [
            (0u64, "1970-01-01 00:00"),
            (59, "1970-01-01 00:00"),
            (86_399, "1970-01-01 23:59"),
            (86_400, "1970-01-02 00:00"),
            (951_782_400, "2000-02-29 00:00"),
            (951_868_800, "2000-03-01 00:00"),
            (1_709_164_800, "2024-02-29 00:00"),
            (4_107_456_000, "2100-02-28 00:00"),
            (4_107_542_400, "2100-03-01 00:00"),
            (1_798_761_599, "2026-12-31 23:59"),
            (1_798_761_600, "2027-01-01 00:00"),
            (253_402_300_799, "9999-12-31 23:59"),
        ] {
            assert_eq!(utc_minute(ts_s * 1000), want, "{ts_s}");
        }
        // Every day of four years, against a day-by-day count.
        let mut date = (1999u64, 12u64, 31u64);
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        for day in 10_956u64..10_956 + 4 * 366 {
            assert_eq!(civil_from_days(day), date, "day {day}");
            let month_len = match date.1 {
                2 if leap(date.0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = if date.2 < month_len {
                (date.0, date.1, date.2 + 1)
            } else if date.1 < 12 {
                (date.0, date.1 + 1, 1)
            } else {
                (date.0 + 1, 1, 1)
            };
        }
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
                room: "rust".into(),
                user: "alice".into(),
                event: PresenceEvent::Join,
                reason: None,
                message: None,
            }),
            "[join] #rust alice"
        );
        assert_eq!(
            line(ServerFrame::Presence {
                room: "rust".into(),
                user: "alice".into(),
                event: PresenceEvent::Leave,
                reason: Some("quit".into()),
                message: None,
            }),
            "[leave] #rust alice (quit)"
        );
        assert_eq!(
            line(ServerFrame::Presence {
                room: "lobby".into(),
                user: "alice".into(),
                event: PresenceEvent::Leave,
                reason: None,
                message: None,
            }),
            "[leave] #lobby alice"
        );
        assert_eq!(
            line(ServerFrame::PresenceSummary {
                room: "big".into(),
                members: 1200,
                joined: (0..6).map(|i| format!("u{i}")).collect(),
                joined_more: 994,
                left: vec!["zed".into()],
                left_more: 0,
            }),
            "[presence] #big: 1000 joined (u0, u1, u2, u3, u4, ...), 1 left (zed); 1200 members"
        );
        assert_eq!(
            line(ServerFrame::Bye {
                reason: "quit".into()
            }),
            "[bye] quit"
        );
    }

    #[test]
    fn joined_and_parted() {
        let joined = |members: &[&str], more: u32| {
            line(ServerFrame::Joined {
                id: None,
                room: "rust".into(),
                members: names(members),
                more,
            })
        };
        assert_eq!(
            joined(&["alice", "bob", "carol"], 0),
            "[joined] #rust (3 members: alice, bob, carol)"
        );
        assert_eq!(joined(&["alice"], 0), "[joined] #rust (1 member: alice)");
        assert_eq!(
            joined(&["alice", "bob"], 400),
            "[joined] #rust (402 members: alice, bob and 400 more)"
        );
        assert_eq!(
            line(ServerFrame::Parted {
                id: Some(FrameId::Num(3)),
                room: "rust".into()
            }),
            "[parted] #rust"
        );
    }

    #[test]
    fn lists() {
        let list = |users: &[&str], more: u32| {
            line(ServerFrame::List {
                id: None,
                users: names(users),
                more,
            })
        };
        assert_eq!(list(&["alice", "bob"], 0), "[online] alice, bob");
        assert_eq!(list(&["alice", "bob"], 7), "[online] alice, bob and 7 more");
        assert_eq!(list(&[], 0), "[online] nobody");

        let who = |users: &[&str], more: u32| {
            line(ServerFrame::Who {
                id: None,
                room: "rust".into(),
                users: names(users),
                more,
            })
        };
        assert_eq!(who(&["alice", "bob"], 0), "[who] #rust: alice, bob");
        assert_eq!(who(&["alice"], 2), "[who] #rust: alice and 2 more");
        assert_eq!(who(&[], 0), "[who] #rust: nobody");

        let rooms = |rooms: &[(&str, u32)], more: u32| {
            line(ServerFrame::Rooms {
                id: None,
                rooms: rooms
                    .iter()
                    .map(|(name, members)| RoomInfo {
                        name: name.to_string(),
                        members: *members,
                    })
                    .collect(),
                more,
            })
        };
        assert_eq!(
            rooms(&[("lobby", 5), ("rust", 2)], 0),
            "[rooms] #lobby (5), #rust (2)"
        );
        assert_eq!(rooms(&[("lobby", 5)], 3), "[rooms] #lobby (5) and 3 more");
        assert_eq!(rooms(&[], 0), "[rooms] none");
    }

    #[test]
    fn history_is_one_line_per_message() {
        let m = |msg_id, from: &str, to: Option<&str>, text: &str| HistoryEntry {
            msg_id,
            from: from.into(),
            to: to.map(Into::into),
            text: text.into(),
            ts: 1,
        };
        assert_eq!(
            render(&ServerFrame::History {
                id: None,
                room: Some("lobby".into()),
                with: None,
                messages: vec![m(1, "alice", None, "hello"), m(2, "bob", None, "a\nb")],
                last: true,
            }),
            [
                "[history] #lobby <alice> hello",
                "[history] #lobby <bob> a⏎b"
            ]
        );
        assert_eq!(
            render(&ServerFrame::History {
                id: None,
                room: None,
                with: Some("bob".into()),
                messages: vec![m(1, "alice", Some("bob"), "hi"), m(2, "bob", None, "yo")],
                last: false,
            }),
            ["[history] *alice -> bob* hi", "[history] *bob -> bob* yo"]
        );
        assert!(
            render(&ServerFrame::History {
                id: None,
                room: Some("lobby".into()),
                with: None,
                messages: vec![],
                last: true,
            })
            .is_empty()
        );
        assert_eq!(
            no_history_line(Some("lobby"), None),
            "[history] #lobby: no earlier messages"
        );
        assert_eq!(
            no_history_line(None, Some("bob")),
            "[history] @bob: no earlier messages"
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
        assert_eq!(
            line(ServerFrame::error(None, ErrorCode::NotInRoom, "not in #x")),
            "[error] not in #x (not_in_room)"
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
            assert!(render(&f).is_empty(), "{f:?}");
        }
    }

    #[test]
    fn line_breaks_and_control_characters_never_reach_the_terminal() {
        let l = line(ServerFrame::Public {
            msg_id: 1,
            room: "lo\u{1b}[2Jbby".into(),
            from: "ev\nil".into(),
            text: "one\ntwo\r\nthree\rfour\u{2028}five\u{1b}[2Jsix\tseven\u{7f}\u{9b}".into(),
            ts: 1,
        });
        assert_eq!(
            l,
            "#lo\u{FFFD}[2Jbby <ev⏎il> one⏎two⏎three⏎four⏎five\u{FFFD}[2Jsix  seven\u{FFFD}\u{FFFD}"
        );
        let l = line(ServerFrame::error(None, ErrorCode::Internal, "a\nb"));
        assert_eq!(l, "[error] a⏎b (internal)");
        assert_eq!(
            line(ServerFrame::Bye {
                reason: "x\r\ny".into()
            }),
            "[bye] x⏎y"
        );
        assert_eq!(
            line(ServerFrame::Who {
                id: None,
                room: "r".into(),
                users: vec!["a\u{1b}b".into()],
                more: 0
            }),
            "[who] #r: a\u{FFFD}b"
        );
        assert_eq!(
            line(ServerFrame::Queued {
                id: None,
                msg_id: 1,
                to: "x\ny".into()
            }),
            "[queued] x⏎y is offline; your message will be delivered when they log in"
        );
    }

    #[test]
    fn tabs_become_spaces_to_the_next_tab_stop() {
        assert_eq!(sanitize("a\tb"), "a   b");
        assert_eq!(sanitize("abcd\te"), "abcd    e");
        assert_eq!(sanitize("\tx"), "    x");
        assert_eq!(sanitize("ab\t\tc"), "ab      c");
        assert_eq!(
            sanitize("é\tx"),
            "é   x",
            "one column per character, not per byte"
        );
        let l = line(ServerFrame::Public {
            msg_id: 1,
            room: "lobby".into(),
            from: "bob".into(),
            text: "name\tage\nbob\t42".into(),
            ts: 1,
        });
        assert_eq!(l, "#lobby <bob> name    age⏎bob 42");
        assert!(!l.contains(CONTROL_MARKER) && !l.contains('\t'), "{l}");
    }
}
