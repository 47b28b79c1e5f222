use natter_proto::{ClientFrame, ErrorCode, FrameId, HistoryEntry, ServerFrame};

use super::super::{Effect, Model};
use super::OLDER_PAGE;

const ROWS: usize = 20;

fn joined(room: &str) -> ServerFrame {
    ServerFrame::Joined {
        id: None,
        room: room.into(),
        members: vec!["alice".into(), "bob".into()],
        more: 0,
    }
}

fn entry(msg_id: u64) -> HistoryEntry {
    HistoryEntry {
        msg_id,
        from: "bob".into(),
        to: None,
        text: format!("m{msg_id}"),
        ts: 1_700_000_000_000 + msg_id * 1000,
    }
}

fn history(id: Option<FrameId>, ids: std::ops::Range<u64>, last: bool) -> ServerFrame {
    ServerFrame::History {
        id,
        room: Some("rust".into()),
        with: None,
        messages: ids.map(entry).collect(),
        last,
    }
}

/// alice looking at #rust, which holds messages 100..110 (from the join's replay).
fn alice() -> Model {
    let mut m = Model::new("alice", 0);
    m.on_frame(&joined("rust"));
    m.on_frame(&history(None, 100..110, true));
    m
}

/// The request of a single `history` send.
fn request(effects: &[Effect]) -> (FrameId, Option<String>, Option<String>, Option<u64>) {
    match effects {
        [
            Effect::Send(ClientFrame::History {
                id: Some(id),
                room,
                with,
                before,
                limit,
            }),
        ] => {
            assert_eq!(*limit, Some(OLDER_PAGE));
            (id.clone(), room.clone(), with.clone(), *before)
        }
        other => panic!("expected one history request, got {other:?}"),
    }
}

fn ids(m: &Model) -> Vec<u64> {
    m.current_buffer()
        .lines
        .iter()
        .filter_map(|l| l.msg_id)
        .collect()
}

#[test]
fn scrolling_past_the_top_asks_for_what_is_before_the_oldest_shown() {
    let mut m = alice();
    let (_, room, with, before) = request(&m.scroll_up(ROWS, ROWS));
    assert_eq!(
        (room.as_deref(), with, before),
        (Some("rust"), None, Some(100))
    );
    // One request at a time.
    assert!(m.scroll_up(ROWS, ROWS).is_empty());
}

#[test]
fn no_fetch_while_the_top_is_not_in_view() {
    let mut m = alice();
    m.on_frame(&history(None, 110..200, true));
    assert!(m.scroll_up(10, ROWS).is_empty());
    assert_eq!(m.current_buffer().scroll, 10);
    assert!(!m.scroll_up(80, ROWS).is_empty());
}

#[test]
fn older_messages_go_above_without_duplicates_or_moving_the_view() {
    let mut m = alice();
    let (id, ..) = request(&m.scroll_up(3, ROWS));
    let scroll = m.current_buffer().scroll;
    // A full page in two chunks, overlapping what is shown.
    m.on_frame(&history(Some(id.clone()), 51..80, false));
    m.on_frame(&history(Some(id), 80..102, true));
    assert_eq!(ids(&m), (51..110).collect::<Vec<_>>());
    assert_eq!(m.current_buffer().scroll, scroll);
    assert_eq!(m.current_buffer().unread, 0);
    assert!(!m.current_buffer().older.done);
    // The next fetch pages on from the new oldest.
    let (id, .., before) = request(&m.scroll_up(100, ROWS));
    assert_eq!(before, Some(51));
    // Fewer than asked: the beginning.
    m.on_frame(&history(Some(id), 40..51, true));
    assert!(m.current_buffer().older.done);
    assert_eq!(ids(&m).first(), Some(&40));
    // Older messages sit above the `[joined]` line too.
    assert_eq!(m.current_buffer().lines[0].msg_id, Some(40));
    assert!(m.scroll_up(100, ROWS).is_empty());
}

#[test]
fn an_empty_last_answer_means_no_more_history() {
    let mut m = alice();
    let (id, ..) = request(&m.scroll_up(1, ROWS));
    m.on_frame(&history(Some(id), 0..0, true));
    assert!(m.current_buffer().older.done);
    assert!(m.current_buffer().older.pending.is_none());
    // No "no earlier messages" note is added below.
    assert_eq!(m.current_buffer().lines.len(), 11);
}

#[test]
fn other_history_answers_do_not_count_for_the_fetch() {
    let mut m = alice();
    request(&m.scroll_up(1, ROWS));
    m.on_frame(&history(None, 0..0, true));
    m.on_frame(&history(Some(FrameId::Num(7)), 0..0, true));
    assert!(m.current_buffer().older.pending.is_some());
    assert!(!m.current_buffer().older.done);
}

#[test]
fn private_buffers_page_with_the_user_and_the_server_buffer_never() {
    let mut m = alice();
    m.submit("/msg bob");
    let (_, room, with, before) = request(&m.scroll_up(1, ROWS));
    assert_eq!((room, with.as_deref(), before), (None, Some("bob"), None));
    m.switch_to(0);
    assert!(m.scroll_up(1, ROWS).is_empty());
}

#[test]
fn an_error_stops_fetching() {
    let mut m = alice();
    let (id, ..) = request(&m.scroll_up(1, ROWS));
    m.on_frame(&ServerFrame::Error {
        id: Some(id),
        code: ErrorCode::NotInRoom,
        message: "not in room".into(),
        retry_after_ms: None,
    });
    assert!(m.current_buffer().older.done);
    assert!(m.scroll_up(1, ROWS).is_empty());
}
