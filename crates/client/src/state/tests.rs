//! Tests of the parent module.

use super::*;
use natter_proto::{ErrorCode, PresenceEvent};

fn public(room: &str, text: &str) -> Action {
    Action::Send(ClientFrame::Public {
        id: None,
        room: Some(room.into()),
        text: text.into(),
        client_id: None,
    })
}

fn private(to: &str, text: &str) -> Action {
    Action::Send(ClientFrame::Private {
        id: None,
        to: to.into(),
        text: text.into(),
        client_id: None,
    })
}

fn show(line: &str) -> Reaction {
    Reaction::Show(vec![line.to_string()])
}

fn entry(msg_id: u64, from: &str, to: Option<&str>, text: &str) -> HistoryEntry {
    HistoryEntry {
        msg_id,
        from: from.into(),
        to: to.map(Into::into),
        text: text.into(),
        ts: 1,
    }
}

fn room_history(
    id: Option<FrameId>,
    room: &str,
    msgs: Vec<HistoryEntry>,
    last: bool,
) -> ServerFrame {
    ServerFrame::History {
        id,
        room: Some(room.into()),
        with: None,
        messages: msgs,
        last,
    }
}

/// Sends `/join ROOM` and answers it; returns the join's id.
fn join(s: &mut ChatState, line: &str, room: &str) -> FrameId {
    let Action::Send(ClientFrame::Join {
        id: Some(id),
        room: sent,
    }) = s.handle_line(line)
    else {
        panic!("{line} sends join with an id");
    };
    assert_eq!(sent, room);
    assert_eq!(s.awaiting(), Some(&id));
    let r = s.on_frame(&ServerFrame::Joined {
        id: Some(id.clone()),
        room: room.into(),
        members: vec![s.user().to_string()],
        more: 0,
    });
    assert!(matches!(r, Reaction::Show(_)), "{r:?}");
    assert_eq!(s.awaiting(), None);
    id
}

/// Sends `line` (a /part) and answers it with `parted`.
fn part(s: &mut ChatState, line: &str, room: &str) {
    let Action::Send(ClientFrame::Part {
        id: Some(id),
        room: sent,
        ..
    }) = s.handle_line(line)
    else {
        panic!("{line} sends part with an id");
    };
    assert_eq!(sent, room);
    assert_eq!(s.awaiting(), Some(&id));
    assert_eq!(
        s.on_frame(&ServerFrame::Parted {
            id: Some(id),
            room: room.into()
        }),
        show(&format!("[parted] #{room}"))
    );
    assert_eq!(s.awaiting(), None);
}

#[test]
fn starts_in_the_lobby_with_its_prompt() {
    let s = ChatState::new("alice");
    assert_eq!(s.user(), "alice");
    assert_eq!(s.focus(), None);
    assert_eq!(s.current_room(), Some("lobby"));
    assert_eq!(s.rooms(), ["lobby"]);
    assert_eq!(s.prompt(), "[#lobby] > ");
    assert_eq!(s.awaiting(), None);
}

#[test]
fn plain_lines_go_to_the_room_then_to_the_focused_user_then_the_room_again() {
    let mut s = ChatState::new("alice");
    assert_eq!(s.handle_line("hi all"), public("lobby", "hi all"));

    let Action::Show(lines) = s.handle_line("/msg bob") else {
        panic!("focus shows a notice");
    };
    assert_eq!(
        lines,
        ["[focus] talking privately to bob; /msg public to go back to #lobby"]
    );
    assert_eq!(s.focus(), Some("bob"));
    assert_eq!(s.prompt(), "[@bob] > ");
    assert_eq!(s.handle_line("psst"), private("bob", "psst"));
    assert_eq!(s.handle_line("//shrug"), private("bob", "/shrug"));

    // An explicit /msg goes to its own user without changing the focus.
    assert_eq!(s.handle_line("/msg carol yo"), private("carol", "yo"));
    assert_eq!(s.focus(), Some("bob"));

    assert_eq!(
        s.handle_line("/msg public"),
        Action::Show(vec!["[focus] back to #lobby".into()])
    );
    assert_eq!(s.focus(), None);
    assert_eq!(s.prompt(), "[#lobby] > ");
    assert_eq!(s.handle_line("back"), public("lobby", "back"));
}

#[test]
fn join_switches_the_current_room_only_when_the_answer_arrives() {
    let mut s = ChatState::new("alice");
    let Action::Send(ClientFrame::Join { id: Some(id), room }) = s.handle_line("/join #Rust")
    else {
        panic!("join is sent with an id");
    };
    assert_eq!(room, "rust", "sent in canonical form");
    assert_eq!(s.awaiting(), Some(&id));
    // Not yet: the server has not answered.
    assert_eq!(s.current_room(), Some("lobby"));
    assert_eq!(s.prompt(), "[#lobby] > ");
    assert_eq!(
        s.on_frame(&ServerFrame::Joined {
            id: Some(id),
            room: "rust".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            more: 0,
        }),
        show("[joined] #rust (3 members: alice, bob, carol)")
    );
    assert_eq!(s.awaiting(), None);
    assert_eq!(s.current_room(), Some("rust"));
    assert_eq!(s.rooms(), ["lobby", "rust"]);
    assert_eq!(s.prompt(), "[#rust] > ");
    assert_eq!(s.handle_line("hello"), public("rust", "hello"));
    // Ids are fresh per request.
    let second = join(&mut s, "/join go", "go");
    assert_eq!(second, FrameId::Num(2));
    assert_eq!(s.rooms(), ["go", "lobby", "rust"]);
}

#[test]
fn joining_a_room_ends_focus_mode_but_the_login_join_does_not() {
    let mut s = ChatState::new("alice");
    s.handle_line("/msg bob");
    // The server's automatic join at login carries no id of ours.
    s.on_frame(&ServerFrame::Joined {
        id: None,
        room: "lobby".into(),
        members: vec!["alice".into()],
        more: 0,
    });
    assert_eq!(s.focus(), Some("bob"));
    join(&mut s, "/join rust", "rust");
    assert_eq!(s.focus(), None);
    assert_eq!(s.prompt(), "[#rust] > ");
}

#[test]
fn a_refused_join_stops_the_wait_and_changes_nothing() {
    let mut s = ChatState::new("alice");
    let Action::Send(ClientFrame::Join { id: Some(id), .. }) = s.handle_line("/join rust") else {
        panic!("join sent");
    };
    // An error for another request does not end the wait.
    s.on_frame(&ServerFrame::error(
        Some(FrameId::Num(999)),
        ErrorCode::Internal,
        "x",
    ));
    assert_eq!(s.awaiting(), Some(&id));
    assert_eq!(
        s.on_frame(&ServerFrame::error(
            Some(id),
            ErrorCode::TooManyRooms,
            "you are in too many rooms"
        )),
        show("[error] you are in too many rooms (too_many_rooms)")
    );
    assert_eq!(s.awaiting(), None);
    assert_eq!(s.current_room(), Some("lobby"));
    assert_eq!(s.rooms(), ["lobby"]);

    // And a wait can be abandoned (the chat loop's timeout).
    s.handle_line("/join rust");
    assert!(s.awaiting().is_some());
    s.stop_awaiting();
    assert_eq!(s.awaiting(), None);
}

#[test]
fn parting_the_current_room_falls_back_to_the_lobby_then_another_room_then_none() {
    let mut s = ChatState::new("alice");
    join(&mut s, "/join rust", "rust");
    join(&mut s, "/join go", "go");
    assert_eq!(s.current_room(), Some("go"));

    // Parting another room leaves the current one alone.
    part(&mut s, "/part #RUST", "rust");
    assert_eq!(s.current_room(), Some("go"));
    assert_eq!(s.rooms(), ["go", "lobby"]);

    // Parting the current room (the default) goes back to the lobby.
    part(&mut s, "/part", "go");
    assert_eq!(s.current_room(), Some("lobby"));
    assert_eq!(s.prompt(), "[#lobby] > ");

    // Without the lobby, another joined room.
    join(&mut s, "/join zed", "zed");
    join(&mut s, "/join abc", "abc");
    part(&mut s, "/part lobby", "lobby");
    assert_eq!(s.current_room(), Some("abc"));
    part(&mut s, "/part", "abc");
    assert_eq!(s.current_room(), Some("zed"));
    part(&mut s, "/part", "zed");
    assert_eq!(s.current_room(), None);
    assert!(s.rooms().is_empty());
    assert_eq!(s.prompt(), "[no room] > ");

    // In no room: plain text is refused locally, private lines still work.
    let err = Action::Show(vec!["[error] you are in no room; /join ROOM".into()]);
    assert_eq!(s.handle_line("anyone?"), err);
    assert_eq!(s.handle_line("/part"), err);
    assert_eq!(s.handle_line("/msg bob hi"), private("bob", "hi"));
    for (line, usage) in [
        ("/who", "/who ROOM"),
        ("/history", "/history USER [N] or /history #ROOM [N]"),
    ] {
        assert_eq!(
            s.handle_line(line),
            Action::Show(vec![format!("[error] you are in no room; use {usage}")])
        );
    }
    assert_eq!(
        s.handle_line("/msg bob"),
        Action::Show(vec![
            "[focus] talking privately to bob; /msg public to go back to no room".into()
        ])
    );
    assert_eq!(s.prompt(), "[@bob] > ");
    assert_eq!(
        s.handle_line("/msg public"),
        Action::Show(vec!["[focus] back to no room; /join ROOM".into()])
    );
    assert_eq!(s.awaiting(), None);
}

#[test]
fn a_parted_room_that_is_not_current_changes_no_target() {
    let mut s = ChatState::new("alice");
    s.on_frame(&ServerFrame::Parted {
        id: None,
        room: "nowhere".into(),
    });
    assert_eq!(s.current_room(), Some("lobby"));
}

#[test]
fn rooms_who_and_list_requests() {
    let mut s = ChatState::new("alice");
    assert_eq!(
        s.handle_line("/rooms"),
        Action::Send(ClientFrame::Rooms { id: None })
    );
    assert_eq!(
        s.handle_line("/who"),
        Action::Send(ClientFrame::Who {
            id: None,
            room: "lobby".into()
        })
    );
    assert_eq!(
        s.handle_line("/who #Rust"),
        Action::Send(ClientFrame::Who {
            id: None,
            room: "rust".into()
        })
    );
    assert_eq!(
        s.handle_line("/list"),
        Action::Send(ClientFrame::List { id: None })
    );
    assert_eq!(s.awaiting(), None, "nothing of these holds the prompt");
}

#[test]
fn history_pages_back_from_the_oldest_message_seen() {
    let mut s = ChatState::new("alice");
    // Nothing seen yet: the latest messages.
    assert_eq!(
        s.handle_line("/history"),
        Action::Send(ClientFrame::History {
            id: Some(FrameId::Num(1)),
            room: Some("lobby".into()),
            with: None,
            before: None,
            limit: None,
        })
    );
    // The automatic history after joining, then live messages.
    s.on_frame(&room_history(
        None,
        "lobby",
        vec![entry(40, "bob", None, "a"), entry(41, "bob", None, "b")],
        true,
    ));
    s.on_frame(&ServerFrame::Public {
        msg_id: 50,
        room: "lobby".into(),
        from: "bob".into(),
        text: "c".into(),
        ts: 1,
    });
    assert_eq!(s.oldest_in_room("lobby"), Some(40));
    assert_eq!(s.oldest_in_room("#Lobby"), Some(40));
    assert_eq!(
        s.handle_line("/history 2"),
        Action::Send(ClientFrame::History {
            id: Some(FrameId::Num(2)),
            room: Some("lobby".into()),
            with: None,
            before: Some(40),
            limit: Some(2),
        })
    );
    s.on_frame(&room_history(
        Some(FrameId::Num(2)),
        "lobby",
        vec![entry(30, "carol", None, "x"), entry(35, "bob", None, "y")],
        true,
    ));
    assert_eq!(s.oldest_in_room("lobby"), Some(30));
    let Action::Send(ClientFrame::History { before, .. }) = s.handle_line("/history") else {
        panic!("history sent");
    };
    assert_eq!(before, Some(30));

    // A room joined again starts over: messages missed while away are not skipped.
    join(&mut s, "/join lobby", "lobby");
    assert_eq!(s.oldest_in_room("lobby"), None);

    // Another room through #ROOM.
    s.on_frame(&ServerFrame::Public {
        msg_id: 7,
        room: "rust".into(),
        from: "bob".into(),
        text: "r".into(),
        ts: 1,
    });
    let Action::Send(ClientFrame::History {
        room,
        before,
        limit,
        ..
    }) = s.handle_line("/history #rust 200")
    else {
        panic!("history sent");
    };
    assert_eq!(
        (room.as_deref(), before, limit),
        (Some("rust"), Some(7), Some(200))
    );
}

#[test]
fn private_history_pages_per_conversation() {
    let mut s = ChatState::new("alice");
    // Received and echoed messages count for the other participant.
    s.on_frame(&ServerFrame::Private {
        msg_id: 20,
        from: "Bob".into(),
        to: "alice".into(),
        text: "hi".into(),
        ts: 1,
        late: false,
    });
    s.on_frame(&ServerFrame::Private {
        msg_id: 12,
        from: "alice".into(),
        to: "bob".into(),
        text: "earlier".into(),
        ts: 1,
        late: true,
    });
    s.on_frame(&ServerFrame::Private {
        msg_id: 5,
        from: "ALICE".into(),
        to: "carol".into(),
        text: "x".into(),
        ts: 1,
        late: false,
    });
    assert_eq!(s.oldest_with("BOB"), Some(12));
    assert_eq!(s.oldest_with("carol"), Some(5));
    assert_eq!(s.oldest_in_room("lobby"), None);
    assert_eq!(
        s.handle_line("/history bob 10"),
        Action::Send(ClientFrame::History {
            id: Some(FrameId::Num(1)),
            room: None,
            with: Some("bob".into()),
            before: Some(12),
            limit: Some(10),
        })
    );
    // A private history answer moves that conversation's cursor.
    let r = s.on_frame(&ServerFrame::History {
        id: Some(FrameId::Num(1)),
        room: None,
        with: Some("Bob".into()),
        messages: vec![entry(3, "Bob", Some("alice"), "old")],
        last: true,
    });
    assert_eq!(r, show("[history] *Bob -> alice* old"));
    assert_eq!(s.oldest_with("bob"), Some(3));
    assert_eq!(s.oldest_with("carol"), Some(5));
}

#[test]
fn an_empty_history_answer_says_so_but_the_join_history_stays_quiet() {
    let mut s = ChatState::new("alice");
    // Automatic history (no id of a /history request): nothing when empty.
    assert_eq!(
        s.on_frame(&room_history(None, "lobby", vec![], true)),
        Reaction::Ignore
    );
    assert_eq!(
        s.on_frame(&room_history(Some(FrameId::Num(77)), "lobby", vec![], true)),
        Reaction::Ignore
    );

    s.handle_line("/history");
    // Chunks: messages show as they come, the verdict waits for the last.
    assert_eq!(
        s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], false)),
        Reaction::Ignore
    );
    assert_eq!(
        s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], true)),
        show("[history] #lobby: no earlier messages")
    );
    // A second answer with that id (none expected) says nothing more.
    assert_eq!(
        s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], true)),
        Reaction::Ignore
    );

    s.handle_line("/history");
    assert_eq!(
        s.on_frame(&room_history(
            Some(FrameId::Num(2)),
            "lobby",
            vec![entry(1, "bob", None, "first")],
            false
        )),
        show("[history] #lobby <bob> first")
    );
    assert_eq!(
        s.on_frame(&room_history(Some(FrameId::Num(2)), "lobby", vec![], true)),
        Reaction::Ignore,
        "something came, so no 'no earlier messages'"
    );

    s.handle_line("/history bob");
    assert_eq!(
        s.on_frame(&ServerFrame::History {
            id: Some(FrameId::Num(3)),
            room: None,
            with: Some("bob".into()),
            messages: vec![],
            last: true,
        }),
        show("[history] @bob: no earlier messages")
    );

    // An error answering a /history ends it too.
    s.handle_line("/history nobody");
    s.on_frame(&ServerFrame::error(
        Some(FrameId::Num(4)),
        ErrorCode::NoSuchUser,
        "no user named 'nobody'",
    ));
    assert!(s.history_requests.is_empty());
    assert_eq!(s.awaiting(), None, "history does not hold the prompt");
}

#[test]
fn help_lists_every_command_and_exit_and_blank_lines_work() {
    let mut s = ChatState::new("alice");
    assert_eq!(s.handle_line("/exit"), Action::Exit);
    assert_eq!(s.handle_line("/quit"), Action::Exit);
    assert_eq!(s.handle_line("   "), Action::Nothing);
    let Action::Show(help) = s.handle_line("/help") else {
        panic!("help shows lines");
    };
    let all = help.join("\n");
    for cmd in [
        "/join ROOM",
        "/part [ROOM]",
        "/rooms",
        "/who [ROOM]",
        "/history [N]",
        "/history USER [N]",
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
    for line in [
        "/nope",
        "/msg",
        "/msg a.b hi",
        "/list x",
        "/join",
        "/join a.b",
        "/join a b",
        "/part ##x",
        "/history 0",
        "/history 201",
        "/history bob x",
    ] {
        match s.handle_line(line) {
            Action::Show(lines) => {
                assert_eq!(lines.len(), 1);
                assert!(lines[0].starts_with("[error] "), "{lines:?}");
            }
            other => panic!("{line:?} gave {other:?}"),
        }
    }
    assert_eq!(s.focus(), None);
    assert_eq!(s.awaiting(), None);
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
    assert_eq!(s.handle_line(&fits), public("lobby", &fits));
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
            room: "lobby".into(),
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
            message: None,
        }),
        show("[join] #lobby bob")
    );
    assert_eq!(
        s.on_frame(&ServerFrame::error(
            None,
            ErrorCode::NoSuchUser,
            "no such user"
        )),
        show("[error] no such user (no_such_user)")
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

#[test]
fn a_live_message_shown_already_is_not_shown_again() {
    let mut s = ChatState::new("alice");
    let live = |msg_id, text: &str| ServerFrame::Public {
        msg_id,
        room: "lobby".into(),
        from: "bob".into(),
        text: text.into(),
        ts: 1,
    };
    assert_eq!(s.on_frame(&live(5, "hi")), show("#lobby <bob> hi"));
    // The stored original answering a retried send, or a message also in a history.
    assert_eq!(s.on_frame(&live(5, "hi")), Reaction::Ignore);
    s.on_frame(&room_history(
        None,
        "lobby",
        vec![entry(6, "bob", None, "x")],
        true,
    ));
    assert_eq!(s.on_frame(&live(6, "x")), Reaction::Ignore);
    assert_eq!(s.on_frame(&live(7, "new")), show("#lobby <bob> new"));
}

#[test]
fn catching_up_knows_the_newest_message_of_each_conversation() {
    let mut s = ChatState::new("alice");
    join(&mut s, "/join rust", "rust");
    s.on_frame(&room_history(
        None,
        "lobby",
        vec![entry(3, "bob", None, "a"), entry(9, "bob", None, "b")],
        true,
    ));
    s.on_frame(&ServerFrame::Private {
        msg_id: 12,
        from: "Bob".into(),
        to: "alice".into(),
        text: "psst".into(),
        ts: 1,
        late: false,
    });
    assert_eq!(
        s.catch_up_targets(),
        [
            (Some("lobby".to_string()), None, Some(9)),
            (Some("rust".to_string()), None, None),
            (None, Some("bob".to_string()), Some(12)),
        ]
    );
    // A missed message is shown once, as history, and moves the newest mark.
    let missed = entry(13, "carol", None, "while away");
    assert_eq!(
        s.missed(Some("rust"), None, &missed),
        Some(vec!["[history] #rust <carol> while away".to_string()])
    );
    assert_eq!(s.missed(Some("rust"), None, &missed), None);
    assert_eq!(
        s.catch_up_targets()[1],
        (Some("rust".into()), None, Some(13))
    );
    // A room that could not be joined again is forgotten.
    s.forget_room("rust");
    assert_eq!(s.rooms(), ["lobby"]);
    assert_eq!(s.current_room(), Some("lobby"));
}
