//! What a log line looks like: the timestamp prefix, the escaping of free text, and the
//! line of each kind of event.
//!
//! **One event, one line.** Free text (message text, reasons, details) is escaped before it
//! is written: `\` becomes `\\`, newline `\n`, carriage return `\r`, tab `\t`, every other
//! control character (C0, DEL, C1) and the Unicode line/paragraph separators and bidi
//! controls become `\u{XX}` (hex code point). Nothing a user types can therefore end a
//! line early, forge a line, or reorder what a terminal shows; escaping the backslash
//! keeps the escape unambiguous (a user typing `\n` is logged as `\\n`).

use std::fmt::Write as _;

/// Length of the timestamp prefix, `2026-11-22T02:31:23.123Z`.
pub(super) const TS_LEN: usize = 24;
/// The largest timestamp we format, 9999-12-31T23:59:59.999Z; beyond it the text would
/// grow a digit and stop sorting like time.
const MAX_TS_MS: u64 = 253_402_300_799_999;

/// `<ts> <from> -> <to> text`, the line of a private message (written to both files).
pub(super) fn private_line(ts_ms: u64, from: &str, to: &str, text: &str) -> String {
    format!("{} <{from}> -> <{to}> {}\n", iso8601(ts_ms), escape(text))
}

/// `<ts> <from> text`, the line of a room message.
pub(super) fn room_line(ts_ms: u64, from: &str, text: &str) -> String {
    format!("{} <{from}> {}\n", iso8601(ts_ms), escape(text))
}

/// The lines of a join or leave: (the room log's, the system log's).
pub(super) fn presence_lines(
    ts_ms: u64,
    room: &str,
    user: &str,
    joined: bool,
    reason: Option<&str>,
) -> (String, String) {
    let ts = iso8601(ts_ms);
    let (verb, word) = if joined {
        ("joined", "join")
    } else {
        ("left", "leave")
    };
    let mut room_line = format!("{ts} * {user} {verb}");
    let mut system_line = format!("{ts} {word} room={room} user={user}");
    if let Some(reason) = reason {
        let reason = escape(reason);
        let _ = write!(room_line, " ({reason})");
        let _ = write!(system_line, " reason={reason}");
    }
    room_line.push('\n');
    system_line.push('\n');
    (room_line, system_line)
}

/// `<ts> kind detail`, the system log's line for any other event.
pub(super) fn system_line(ts_ms: u64, kind: &str, detail: &str) -> String {
    let mut line = format!("{} {}", iso8601(ts_ms), escape(kind));
    if !detail.is_empty() {
        line.push(' ');
        line.push_str(&escape(detail));
    }
    line.push('\n');
    line
}

/// Whether `ts` has the shape `dddd-dd-ddTdd:dd:dd.dddZ`.
pub(super) fn is_timestamp(ts: &[u8]) -> bool {
    const SHAPE: &[u8; TS_LEN] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    ts.len() == TS_LEN
        && ts.iter().zip(SHAPE).all(|(&c, &s)| {
            if s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

/// Escapes `text` so it stays on one line and shows every control; see the module doc.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Controls (C0, DEL, C1), which could end a line or drive a terminal, and the Unicode
/// line separators and bidi controls, which could make a line display as another.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Formats milliseconds since the Unix epoch as UTC ISO-8601 with milliseconds,
/// `2026-11-22T02:31:23.123Z` (always [`TS_LEN`] characters; clamped to year 9999).
///
/// Written here rather than taken from a crate because it is a dozen lines of well-known
/// arithmetic (Howard Hinnant's `civil_from_days`) and the tests pin it to known dates.
pub(super) fn iso8601(ts_ms: u64) -> String {
    let ms = ts_ms.min(MAX_TS_MS);
    let secs = ms / 1000;
    let day_secs = secs % 86_400;
    let (year, month, day) = civil_from_days(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::files::SYSTEM_LOG;
    use crate::transcript::testkit::*;
    use crate::transcript::{Event, Transcript};

    #[test]
    fn timestamps_are_iso8601_utc_with_millis() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(TS), "2026-11-22T02:31:23.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(951_782_399_999), "2000-02-28T23:59:59.999Z");
        assert_eq!(iso8601(u64::MAX), "9999-12-31T23:59:59.999Z");
        // Text order is time order, which retention relies on.
        assert!(iso8601(TS - 1) < iso8601(TS));
        assert!(iso8601(9_999_999_999) < iso8601(10_000_000_000));
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            escape("a\nb\rc\td\u{1b}[31m\\e\u{7f}\u{85}\u{2028}\u{202e}"),
            "a\\nb\\rc\\td\\u{1b}[31m\\\\e\\u{7f}\\u{85}\\u{2028}\\u{202e}"
        );
    }

    #[tokio::test]
    async fn control_characters_stay_on_one_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        let forged = "hi\n2026-11-22T02:31:23.123Z <bob> -> <alice> forged\r\u{1b}[2K";
        t.record(Event::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: forged.into(),
            ts_ms: TS,
        });
        t.record(Event::System {
            kind: "disconnect",
            detail: "user=alice reason=a\nb".into(),
            ts_ms: TS,
        });
        t.record(Event::RoomPresence {
            room: "lobby".into(),
            user: "alice".into(),
            joined: false,
            reason: Some("x\ry".into()),
            ts_ms: TS,
        });
        flush(&t).await;
        assert_eq!(
            read_lines(&logs.join("users/alice/bob.log")),
            [concat!(
                "2026-11-22T02:31:23.123Z <alice> -> <bob> hi\\n2026-11-22T02:31:23.123Z ",
                "<bob> -> <alice> forged\\r\\u{1b}[2K"
            )]
        );
        assert_eq!(
            read_lines(&logs.join(SYSTEM_LOG)),
            [
                "2026-11-22T02:31:23.123Z disconnect user=alice reason=a\\nb",
                "2026-11-22T02:31:23.123Z leave room=lobby user=alice reason=x\\ry",
            ]
        );
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            ["2026-11-22T02:31:23.123Z * alice left (x\\ry)"]
        );
        close(&t).await;
    }
}
