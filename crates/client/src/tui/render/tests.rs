use natter_proto::{FrameId, ServerFrame};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Modifier;

use super::*;
use crate::tui::model::Status;

/// Nov 14 2023 22:13 UTC, plus one minute per message id.
const T0: u64 = 1_700_000_000_000;

fn public(msg_id: u64, room: &str, from: &str, text: &str) -> ServerFrame {
    ServerFrame::Public {
        msg_id,
        room: room.into(),
        from: from.into(),
        text: text.into(),
        ts: T0 + msg_id * 60_000,
    }
}

fn joined(id: Option<u64>, room: &str, members: &[&str]) -> ServerFrame {
    ServerFrame::Joined {
        id: id.map(FrameId::Num),
        room: room.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        more: 0,
    }
}

/// alice in #lobby with a few lines, #rust with unread lines, @bob with a mention.
fn model() -> Model {
    let mut m = Model::new("alice", 0);
    m.status = Status {
        server: "chat.example:9999".into(),
        security: "TLS (pinned)".into(),
        connection: "connected".into(),
        lag_ms: Some(12),
    };
    m.on_frame(&joined(None, "lobby", &["alice", "bob", "carol"]));
    m.on_frame(&public(1, "lobby", "bob", "good morning"));
    m.on_frame(&public(2, "lobby", "carol", "hi bob"));
    m.on_frame(&joined(None, "rust", &["alice", "dave"]));
    m.on_frame(&public(3, "rust", "dave", "borrowck question"));
    m.on_frame(&public(4, "rust", "dave", "anyone?"));
    m.on_frame(&ServerFrame::Private {
        msg_id: 5,
        from: "bob".into(),
        to: "alice".into(),
        text: "lunch?".into(),
        ts: T0,
        late: false,
    });
    m.input.set("draft");
    m
}

/// The screen's text, one string per row (a wide character counted once).
fn screen(m: &Model, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| draw(f, m)).expect("draw");
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < width {
                let symbol = buffer[(x, y)].symbol();
                row.push_str(symbol);
                x += symbol.width().max(1) as u16;
            }
            row
        })
        .collect()
}

fn row_with<'a>(rows: &'a [String], needle: &str) -> &'a str {
    rows.iter()
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}:\n{}", rows.join("\n")))
}

#[test]
fn layout_at_100_by_30() {
    let m = model();
    let rows = screen(&m, 100, 30);
    assert_eq!(rows.len(), 30);
    // Buffer list with numbers, unread counts and the mention mark.
    assert!(rows[0].starts_with("1 server         │"), "{}", rows[0]);
    assert!(rows[1].starts_with("2 #lobby         │"), "{}", rows[1]);
    assert!(rows[2].starts_with("3 #rust         2│"), "{}", rows[2]);
    assert!(rows[3].starts_with("4 @bob         !1│"), "{}", rows[3]);
    // Messages at the bottom of the message area, with local HH:MM and nicks.
    let line = row_with(&rows, "hi bob");
    assert!(line.contains("22:15 <carol> hi bob"), "{line}");
    let index = rows.iter().position(|r| r.contains("hi bob")).unwrap_or(0);
    assert_eq!(index, 27, "the newest line sits just above the status line");
    // Member list on the right.
    assert!(rows[0].ends_with("│3 members      "), "{}", rows[0]);
    assert!(rows[1].ends_with("│alice          "), "{}", rows[1]);
    // Status and input lines.
    assert_eq!(
        rows[28].trim_end(),
        " alice on chat.example:9999 │ TLS (pinned) │ connected │ lag 12 ms"
    );
    assert_eq!(rows[29].trim_end(), "[#lobby] > draft");
}

#[test]
fn the_current_buffer_is_reversed_and_mentions_are_red() {
    let m = model();
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test terminal");
    terminal.draw(|f| draw(f, &m)).expect("draw");
    let buffer = terminal.backend().buffer();
    assert!(buffer[(0, 1)].modifier.contains(Modifier::REVERSED));
    assert!(!buffer[(0, 2)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buffer[(15, 3)].fg, Color::LightRed);
}

#[test]
fn narrow_terminal_of_60_columns() {
    let m = model();
    let rows = screen(&m, 60, 20);
    assert!(rows.iter().all(|r| r.width() == 60));
    assert!(rows[2].starts_with("3 #rust   2│"), "{}", rows[2]);
    assert!(rows[3].starts_with("4 @bob   !1│"), "{}", rows[3]);
    // No member list: the messages take the rest.
    assert!(row_with(&rows, "hi bob").trim_end().ends_with("hi bob"));
    assert!(!rows.iter().any(|r| r.contains("│3 members")));
    assert_eq!(rows[19].trim_end(), "[#lobby] > draft");
}

#[test]
fn long_lines_wrap_under_the_text() {
    let mut m = model();
    m.on_frame(&public(9, "lobby", "bob", &"word ".repeat(20)));
    let rows = screen(&m, 60, 20);
    let first = rows
        .iter()
        .position(|r| r.contains("<bob> word"))
        .unwrap_or(0);
    // The text starts after `HH:MM <bob> ` (12 columns), right of the 12-column list.
    let next: String = rows[first + 1].chars().skip(12).collect();
    assert!(
        next.starts_with(&format!("{}word", " ".repeat(12))),
        "{next}"
    );
}

#[test]
fn member_list_toggles() {
    let mut m = model();
    m.show_members = false;
    let rows = screen(&m, 100, 30);
    assert!(!rows.iter().any(|r| r.contains("│3 members")));
    m.show_members = true;
    let rows = screen(&m, 100, 30);
    assert!(rows.iter().any(|r| r.contains("│3 members")));
    // Not for a private conversation.
    m.switch_to(3);
    let rows = screen(&m, 100, 30);
    assert!(!rows.iter().any(|r| r.contains("members")));
    assert!(row_with(&rows, "lunch?").contains("<bob> lunch?"));
    assert_eq!(rows[29].trim_end(), "[@bob] > draft");
}

#[test]
fn wide_characters_keep_alignment() {
    let mut m = model();
    m.on_frame(&public(10, "lobby", "bob", "你好世界 🎉 ok"));
    m.on_frame(&public(11, "lobby", "carol", "e\u{301}te\u{301}"));
    let rows = screen(&m, 100, 30);
    for row in &rows {
        assert_eq!(row.width(), 100, "{row}");
    }
    let line = row_with(&rows, "你好");
    assert!(line.contains("<bob> 你好世界 🎉 ok"), "{line}");
    // The member list's border stays in its column.
    assert_eq!(line.chars().rev().nth(15), Some('│'), "{line}");
    // A wide text wraps by width, never splitting a character.
    m.on_frame(&public(12, "lobby", "bob", &"中".repeat(60)));
    let rows = screen(&m, 60, 20);
    for row in &rows {
        assert_eq!(row.width(), 60, "{row}");
    }
}

#[test]
fn read_marker_date_change_and_new_messages_below() {
    let mut m = model();
    m.switch_to(2);
    let rows = screen(&m, 100, 30);
    let marker = rows
        .iter()
        .position(|r| r.contains(" new "))
        .expect("marker");
    assert!(rows[marker + 1].contains("borrowck question"));
    // A message a day later gets a date line.
    m.on_frame(&public(24 * 60 + 3, "rust", "dave", "next day"));
    let rows = screen(&m, 100, 30);
    assert!(row_with(&rows, "2023-11-15").contains('─'));
    // Scrolled up, a new line shows the mark instead of scrolling.
    m.current_buffer_mut().scroll_up(1);
    m.on_frame(&public(24 * 60 + 4, "rust", "dave", "later"));
    let rows = screen(&m, 100, 30);
    assert!(row_with(&rows, "new messages below").contains('─'));
    assert!(!rows.iter().any(|r| r.contains("later")));
    assert!(rows[28].contains("scrolled up 2"));
}

#[test]
fn hostile_text_cannot_reach_the_terminal() {
    let mut m = model();
    m.on_frame(&public(20, "lobby", "bob", "\x1b]0;owned\x07\x1b[2J"));
    let rows = screen(&m, 100, 30);
    let line = row_with(&rows, "owned");
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
}

#[test]
fn long_input_scrolls_sideways_to_the_cursor() {
    let mut m = model();
    m.input.set(&format!("{}END", "x".repeat(100)));
    let rows = screen(&m, 60, 20);
    assert!(rows[19].starts_with("[#lobby] > "));
    assert!(rows[19].trim_end().ends_with("END"), "{}", rows[19]);
}

#[test]
fn the_top_of_a_buffer_says_when_older_messages_are_fetched_and_when_there_are_none() {
    let mut m = model();
    m.switch_to(1);
    let rows = 10;
    let sent = m.scroll_up(5, rows);
    assert_eq!(sent.len(), 1);
    let before = screen(&m, 100, 12);
    row_with(&before, "fetching older messages");
    let Some((id, _)) = m.current_buffer().older.pending.clone() else {
        panic!("no fetch pending");
    };
    m.on_frame(&ServerFrame::History {
        id: Some(id),
        room: Some("lobby".into()),
        with: None,
        messages: vec![natter_proto::HistoryEntry {
            msg_id: 0,
            from: "carol".into(),
            to: None,
            text: "the very first".into(),
            ts: T0,
        }],
        last: true,
    });
    let after = screen(&m, 100, 12);
    row_with(&after, "no more history");
    // The older line sits above the ones already shown.
    m.current_buffer_mut().scroll_down(10);
    let after = screen(&m, 100, 12);
    let first = after.iter().position(|r| r.contains("the very first"));
    let later = after.iter().position(|r| r.contains("good morning"));
    assert!(first < later, "{}", after.join("\n"));
}

#[test]
fn a_long_paste_asks_on_the_input_line() {
    let mut m = model();
    m.paste("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    let rows = screen(&m, 80, 10);
    assert!(
        rows[9].starts_with("send 12 lines? (y/n)"),
        "{}",
        rows.join("\n")
    );
}

#[test]
fn seconds_in_timestamps_and_nick_colours_off() {
    let mut m = model();
    m.switch_to(1);
    m.config.timestamp = "%H:%M:%S".into();
    let rows = screen(&m, 100, 30);
    // Message 1 arrived at T0 + 1 minute: 22:14:20 UTC.
    assert!(row_with(&rows, "good morning").contains("22:14:20 <bob> good morning"));
    // A local line keeps the text aligned under the wider time column.
    let joined = row_with(&rows, "[joined]");
    let col = |r: &str, needle: &str| r.find(needle).expect("found");
    let good = row_with(&rows, "good morning");
    assert_eq!(col(joined, "[joined]"), col(good, "22:14:20") + 9);

    let colour = |m: &Model| {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test terminal");
        terminal.draw(|f| draw(f, m)).expect("draw");
        let buffer = terminal.backend().buffer().clone();
        let rows = screen(m, 100, 30);
        let y = rows
            .iter()
            .position(|r| r.contains("<bob>"))
            .expect("bob's row") as u16;
        let row = &rows[usize::from(y)];
        let x = row[..row.find("bob>").expect("nick")].chars().count() as u16;
        assert_eq!(buffer[(x, y)].symbol(), "b");
        buffer[(x, y)].fg
    };
    assert_ne!(colour(&m), ratatui::style::Color::Reset);
    m.config.nick_colours = false;
    assert_eq!(colour(&m), ratatui::style::Color::Reset);
}
