use natter_proto::{ClientFrame, FrameId, HistoryEntry, PresenceEvent, ServerFrame};

use super::*;

fn joined(id: Option<u64>, room: &str, members: &[&str]) -> ServerFrame {
    ServerFrame::Joined {
        id: id.map(FrameId::Num),
        room: room.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        more: 0,
    }
}

fn public(msg_id: u64, room: &str, from: &str, text: &str) -> ServerFrame {
    ServerFrame::Public {
        msg_id,
        room: room.into(),
        from: from.into(),
        text: text.into(),
        ts: 1_700_000_000_000 + msg_id * 60_000,
    }
}

fn private(msg_id: u64, from: &str, to: &str, text: &str) -> ServerFrame {
    ServerFrame::Private {
        msg_id,
        from: from.into(),
        to: to.into(),
        text: text.into(),
        ts: 1_700_000_000_000,
        late: false,
    }
}

/// alice, logged in, in #lobby (buffer 2) with bob and carol.
fn alice() -> Model {
    let mut m = Model::new("alice", 0);
    m.on_frame(&joined(None, "lobby", &["alice", "bob", "carol"]));
    m
}

fn labels(m: &Model) -> Vec<String> {
    m.buffers.iter().map(|b| b.kind.label()).collect()
}

fn texts(b: &Buffer) -> Vec<String> {
    b.lines.iter().map(|l| l.text.clone()).collect()
}

#[test]
fn login_opens_the_lobby_buffer_and_shows_it() {
    let m = alice();
    assert_eq!(labels(&m), ["server", "#lobby"]);
    assert_eq!(m.current, 1);
    assert_eq!(m.prompt(), "[#lobby]");
    assert_eq!(m.current_buffer().members, ["alice", "bob", "carol"]);
}

#[test]
fn plain_lines_go_to_the_buffers_room_or_user() {
    let mut m = alice();
    assert_eq!(
        m.submit("hello"),
        [Effect::Send(ClientFrame::Public {
            id: None,
            room: Some("lobby".into()),
            text: "hello".into(),
            client_id: None
        })]
    );
    assert!(m.submit("/msg Bob").is_empty());
    assert_eq!(m.prompt(), "[@Bob]");
    assert_eq!(
        m.submit("hi"),
        [Effect::Send(ClientFrame::Private {
            id: None,
            to: "Bob".into(),
            text: "hi".into(),
            client_id: None
        })]
    );
    // /msg public goes back to the last room; /msg bob again focuses the same buffer.
    m.submit("/msg public");
    assert_eq!(m.prompt(), "[#lobby]");
    m.submit("/msg bob");
    assert_eq!(labels(&m), ["server", "#lobby", "@Bob"]);
    assert_eq!(m.current, 2);
}

#[test]
fn join_switches_on_the_answer_and_a_second_join_only_switches() {
    let mut m = alice();
    let effects = m.submit("/join #Rust");
    let [Effect::Send(ClientFrame::Join { id: Some(id), room })] = &effects[..] else {
        panic!("expected a join: {effects:?}");
    };
    assert_eq!(room, "rust");
    let FrameId::Num(n) = id else { panic!() };
    m.on_frame(&joined(Some(*n), "rust", &["alice"]));
    assert_eq!(m.prompt(), "[#rust]");
    m.switch_to(1);
    assert!(m.submit("/join rust").is_empty(), "no second join is sent");
    assert_eq!(m.prompt(), "[#rust]");
}

#[test]
fn unread_counts_mentions_and_the_read_marker() {
    let mut m = alice();
    m.submit("/msg public");
    m.on_frame(&joined(None, "rust", &["alice", "bob"]));
    // A joined without our id does not steal the screen.
    assert_eq!(m.prompt(), "[#lobby]");
    m.on_frame(&public(1, "rust", "bob", "anyone here?"));
    let bell = m.on_frame(&public(2, "rust", "bob", "ALICE: ping"));
    assert_eq!(bell, [Effect::Bell]);
    m.on_frame(&public(3, "rust", "bob", "malice is not a mention"));
    let rust = &m.buffers[2];
    assert_eq!((rust.unread, rust.mention), (3, true));
    assert_eq!(rust.read_marker, Some(rust.lines[1].seq));
    assert!(!rust.lines[3].mention && rust.lines[2].mention);
    // Our own line naming us is no mention; the shown buffer gets nothing unread.
    m.on_frame(&public(4, "lobby", "alice", "alice here"));
    assert_eq!(m.buffers[1].unread, 0);
    assert!(!m.buffers[1].lines.last().is_some_and(|l| l.mention));
    // Showing it clears the count; the marker stays until it is left.
    m.switch_to(2);
    assert_eq!((m.buffers[2].unread, m.buffers[2].mention), (0, false));
    assert!(m.buffers[2].read_marker.is_some());
    m.switch_to(1);
    assert!(m.buffers[2].read_marker.is_none());
}

#[test]
fn private_messages_open_a_buffer_and_count_as_mentions() {
    let mut m = alice();
    assert_eq!(
        m.on_frame(&private(7, "Bob", "alice", "psst")),
        [Effect::Bell]
    );
    assert_eq!(labels(&m), ["server", "#lobby", "@Bob"]);
    assert_eq!((m.buffers[2].unread, m.buffers[2].mention), (1, true));
    // Our own echo goes to the same buffer, without a bell.
    assert!(m.on_frame(&private(8, "alice", "bob", "yes?")).is_empty());
    assert_eq!(m.buffers[2].lines.len(), 2);
}

#[test]
fn history_and_live_messages_are_deduplicated_and_ordered() {
    let mut m = alice();
    m.on_frame(&public(5, "lobby", "bob", "live five"));
    let entry = |id: u64, text: &str| HistoryEntry {
        msg_id: id,
        from: "carol".into(),
        to: None,
        text: text.into(),
        ts: 1_700_000_000_000,
    };
    m.on_frame(&ServerFrame::History {
        id: None,
        room: Some("lobby".into()),
        with: None,
        messages: vec![entry(3, "three"), entry(4, "four"), entry(5, "live five")],
        last: true,
    });
    let ids: Vec<_> = m.buffers[1].lines.iter().filter_map(|l| l.msg_id).collect();
    assert_eq!(ids, [3, 4, 5]);
    // Replayed history is not unread elsewhere either.
    m.switch_to(0);
    m.on_frame(&ServerFrame::History {
        id: None,
        room: Some("lobby".into()),
        with: None,
        messages: vec![entry(1, "one")],
        last: true,
    });
    assert_eq!(m.buffers[1].unread, 0);
}

#[test]
fn presence_updates_the_member_list_and_part_closes_the_buffer() {
    let mut m = alice();
    m.on_frame(&ServerFrame::Presence {
        room: "lobby".into(),
        user: "dave".into(),
        event: PresenceEvent::Join,
        reason: None,
        message: None,
    });
    m.on_frame(&ServerFrame::Presence {
        room: "lobby".into(),
        user: "bob".into(),
        event: PresenceEvent::Leave,
        reason: Some("quit".into()),
        message: None,
    });
    assert_eq!(m.buffers[1].members, ["alice", "carol", "dave"]);
    m.on_frame(&joined(None, "rust", &["alice"]));
    m.switch_to(2);
    let effects = m.submit("/part");
    assert!(
        matches!(&effects[..], [Effect::Send(ClientFrame::Part { room, .. })] if room == "rust")
    );
    m.on_frame(&ServerFrame::Parted {
        id: None,
        room: "rust".into(),
    });
    assert_eq!(labels(&m), ["server", "#lobby"]);
    assert_eq!(m.prompt(), "[#lobby]");
}

#[test]
fn switching_by_number_name_and_wrapping() {
    let mut m = alice();
    m.on_frame(&joined(None, "rust", &["alice"]));
    m.on_frame(&private(1, "bob", "alice", "hi"));
    assert!(m.submit("/buffer @bob").is_empty());
    assert_eq!(m.prompt(), "[@bob]");
    m.submit("/buffer #RUST");
    assert_eq!(m.prompt(), "[#rust]");
    m.submit("/buffer 1");
    assert_eq!(m.prompt(), "[server]");
    m.prev_buffer();
    assert_eq!(m.prompt(), "[@bob]");
    m.next_buffer();
    assert_eq!(m.prompt(), "[server]");
    m.submit("/buffer nowhere");
    assert!(
        texts(m.current_buffer())
            .last()
            .is_some_and(|t| t.contains("no buffer 'nowhere'"))
    );
}

#[test]
fn hostile_text_is_neutralised() {
    let mut m = alice();
    m.on_frame(&public(1, "lobby", "bob", "evil\x1b[2Jline\nbreak"));
    let text = &m.buffers[1].lines.last().map(|l| l.text.clone());
    assert_eq!(text.as_deref(), Some("evil\u{FFFD}[2Jline⏎break"));
}

#[test]
fn tab_completes_recent_speakers_first_then_commands_and_rooms() {
    let mut m = alice();
    m.on_frame(&joined(None, "rust", &["alice"]));
    m.on_frame(&public(1, "lobby", "carol", "one"));
    m.on_frame(&public(2, "lobby", "cathy", "two"));
    m.input.set("c");
    m.complete();
    assert_eq!(m.input.text(), "cathy: ");
    m.complete();
    assert_eq!(m.input.text(), "carol: ");
    m.input.set("see #r");
    m.complete();
    assert_eq!(m.input.text(), "see #rust ");
    m.input.set("/jo");
    m.complete();
    assert_eq!(m.input.text(), "/join ");
    // A command is not offered in the middle of a line.
    m.input.set("say /jo");
    m.complete();
    assert_eq!(m.input.text(), "say /jo");
}

#[test]
fn input_history_is_per_buffer() {
    let mut m = alice();
    m.input.set("first");
    m.enter();
    m.input.set("second");
    m.enter();
    m.input.set("draft");
    m.history_up();
    assert_eq!(m.input.text(), "second");
    m.history_up();
    assert_eq!(m.input.text(), "first");
    m.history_up();
    assert_eq!(m.input.text(), "first");
    m.history_down();
    m.history_down();
    assert_eq!(m.input.text(), "draft");
    m.switch_to(0);
    m.input.clear();
    m.history_up();
    assert_eq!(m.input.text(), "", "the server buffer has no history");
}

#[test]
fn scrolling_keeps_the_view_and_marks_new_lines_below() {
    let mut m = alice();
    for i in 1..=10 {
        m.on_frame(&public(i, "lobby", "bob", "x"));
    }
    m.current_buffer_mut().scroll_up(4);
    m.on_frame(&public(11, "lobby", "bob", "new"));
    let b = m.current_buffer();
    assert_eq!((b.scroll, b.new_below), (5, true));
    m.current_buffer_mut().scroll_down(100);
    let b = m.current_buffer();
    assert_eq!((b.scroll, b.new_below), (0, false));
}

#[test]
fn mentions_are_whole_words_ignoring_case() {
    assert!(mentions("hey Alice!", "alice"));
    assert!(mentions("@alice: look", "ALICE"));
    assert!(!mentions("malice", "alice"));
    assert!(!mentions("alice_x", "alice"));
}

#[test]
fn ping_is_answered_and_bye_ends() {
    let mut m = alice();
    assert_eq!(
        m.on_frame(&ServerFrame::Ping { id: None }),
        [Effect::Send(ClientFrame::Pong { id: None })]
    );
    assert_eq!(
        m.on_frame(&ServerFrame::Bye {
            reason: "shutdown".into()
        }),
        [Effect::Bye("shutdown".into())]
    );
    assert_eq!(m.status.connection, "disconnected");
    assert_eq!(m.submit("/exit"), [Effect::Quit]);
}
