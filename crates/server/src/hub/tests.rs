//! The hub's rules, driven directly.

use std::sync::Arc;

use super::*;
use crate::codec::json_lines;
use crate::outbox::Outbox;
use crate::transport_kind::TransportKind;

fn session(depth: usize) -> (SessionHandle, Arc<Outbox>) {
    let h = SessionHandle::queued(depth);
    let outbox = h.outbox.clone();
    (h, outbox)
}

fn frames(outbox: &mut Arc<Outbox>) -> Vec<ServerFrame> {
    let Some(Some(bytes)) = outbox.try_take() else {
        return Vec::new();
    };
    bytes[..]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| natter_proto::decode_server(l).expect("valid frame"))
        .collect()
}

fn members(names: &[&str]) -> Members {
    Members {
        names: names.iter().map(|n| n.to_string()).collect(),
        total: names.len(),
    }
}

fn presence(room: &str, user: &str, event: PresenceEvent, reason: Option<&str>) -> ServerFrame {
    ServerFrame::Presence {
        room: room.into(),
        user: user.into(),
        event,
        reason: reason.map(str::to_string),
        message: None,
    }
}

#[test]
fn room_presence_is_announced_once_per_account() {
    let hub = Hub::default();
    let (a, mut arx) = session(8);
    let (b1, _b1rx) = session(8);
    let (b2, _b2rx) = session(8);
    let a = hub.connect("alice", a);
    hub.join_room(a, "lobby").expect("join");
    let b1 = hub.connect("Bob", b1);
    let b2 = hub.connect("Bob", b2);
    assert_eq!(
        hub.join_room(b1, "lobby"),
        Ok((members(&["alice", "Bob"]), true))
    );
    assert_eq!(
        hub.join_room(b2, "lobby"),
        Ok((members(&["alice", "Bob"]), false)),
        "a second session is no new member"
    );
    assert!(hub.disconnect(b1, "quit", None).is_empty());
    assert_eq!(
        hub.disconnect(b2, "connection lost", None),
        vec!["lobby".to_string()]
    );
    assert_eq!(
        frames(&mut arx),
        vec![
            presence("lobby", "Bob", PresenceEvent::Join, None),
            presence(
                "lobby",
                "Bob",
                PresenceEvent::Leave,
                Some("connection lost")
            ),
        ]
    );
}

#[test]
fn room_messages_reach_only_members_and_need_membership() {
    let hub = Hub::default();
    let (a, mut arx) = session(8);
    let (b, mut brx) = session(8);
    let (a, b) = (hub.connect("alice", a), hub.connect("bob", b));
    hub.join_room(a, "rust").expect("join");
    hub.join_room(b, "lobby").expect("join");
    let f = ServerFrame::System { text: "x".into() };
    let d = Delivery::one(f.clone());
    assert_eq!(hub.broadcast_room(a, "rust", &d), Ok(1));
    assert_eq!(hub.broadcast_room(b, "rust", &d), Err(RoomError::NotInRoom));
    assert_eq!(frames(&mut arx), vec![f]);
    assert!(frames(&mut brx).is_empty());
    assert_eq!(
        hub.rooms(),
        vec![
            RoomInfo {
                name: "lobby".into(),
                members: 1
            },
            RoomInfo {
                name: "rust".into(),
                members: 1
            }
        ]
    );
    hub.part_room(a, "rust", "part", None).expect("part");
    assert_eq!(hub.who("rust"), None, "an empty room disappears");
    assert_eq!(
        hub.part_room(a, "rust", "part", None),
        Err(RoomError::NotInRoom)
    );
}

#[test]
fn rooms_per_session_are_bounded() {
    let hub = Hub::new(2, 200);
    let (a, _rx) = session(8);
    let a = hub.connect("alice", a);
    hub.join_room(a, "r1").expect("join");
    hub.join_room(a, "r2").expect("join");
    assert_eq!(hub.join_room(a, "r3"), Err(RoomError::TooManyRooms));
    assert!(
        hub.join_room(a, "r1").is_ok(),
        "rejoining is not a new room"
    );
}

#[test]
fn private_reaches_target_and_sender_sessions_only() {
    let hub = Hub::default();
    let (a, mut arx) = session(8);
    let (b, mut brx) = session(8);
    let (c, mut crx) = session(8);
    hub.connect("alice", a);
    hub.connect("bob", b);
    hub.connect("carol", c);
    let make = |to: &str| ServerFrame::Private {
        msg_id: 1,
        from: "alice".into(),
        to: to.into(),
        text: "hi".into(),
        ts: 1,
        late: false,
    };
    assert_eq!(hub.send_private("alice", "BOB", make), Ok(1));
    assert_eq!(frames(&mut arx), vec![make("bob")]);
    assert_eq!(frames(&mut brx), vec![make("bob")]);
    assert!(frames(&mut crx).is_empty());
    assert_eq!(
        hub.send_private("alice", "dave", make),
        Err(PrivateError::NotOnline)
    );
}

#[test]
fn full_queue_closes_only_that_session() {
    let hub = Hub::default();
    let (slow, _slow_rx) = session(1);
    let slow_handle = slow.clone();
    let (fast, mut fast_rx) = session(64);
    let fast_handle = fast.clone();
    hub.connect("slow", slow);
    hub.connect("fast", fast);
    for i in 0..3 {
        hub.broadcast(&ServerFrame::System {
            text: format!("n{i}"),
        });
    }
    assert!(
        slow_handle
            .close_reason()
            .is_some_and(|r| r.contains("slow consumer"))
    );
    assert_eq!(fast_handle.close_reason(), None);
    assert_eq!(frames(&mut fast_rx).len(), 3);
}

#[test]
fn list_is_sorted_case_insensitively() {
    let hub = Hub::default();
    let mut receivers = Vec::new();
    for n in ["carol", "Alice", "bob"] {
        let (h, rx) = session(8);
        receivers.push(rx);
        hub.connect(n, h);
    }
    assert_eq!(hub.online_users(), vec!["Alice", "bob", "carol"]);
}

#[test]
fn kick_closes_every_session_of_the_user_and_notices_reach_a_room() {
    let hub = Hub::default();
    let (a1, _a1rx) = session(8);
    let (a2, _a2rx) = session(8);
    let (b, mut brx) = session(8);
    let (c1, c2) = (a1.clone(), a2.clone());
    let bc = b.clone();
    hub.connect("Alice", a1);
    hub.connect("alice", a2);
    let bid = hub.connect("bob", b);
    hub.join_room(bid, "rust").expect("join");
    let natter = |n| PerTransport::from_counts(&[(TransportKind::Natter, n)]);
    assert_eq!(
        hub.online_sessions(),
        vec![("Alice".into(), natter(2)), ("bob".into(), natter(1))]
    );
    assert_eq!(hub.kick("ALICE", "kicked"), 2);
    assert_eq!(
        (c1.close_reason(), c2.close_reason(), bc.close_reason()),
        (Some("kicked"), Some("kicked"), None)
    );
    assert_eq!(hub.kick("nobody", "x"), 0);
    let f = ServerFrame::System {
        text: "[notice] hi".into(),
    };
    assert_eq!(hub.send_to_room("rust", &f), Some(1));
    assert_eq!(hub.send_to_room("empty", &f), None);
    assert_eq!(frames(&mut brx), vec![f]);
}

#[test]
fn large_rooms_announce_joins_and_leaves_in_summaries() {
    let hub = Hub::new(64, 3);
    let mut outboxes = Vec::new();
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cy", "dan", "eve"] {
        let (h, rx) = session(64);
        let id = hub.connect(name, h);
        hub.join_room(id, "big").expect("join");
        ids.push(id);
        outboxes.push(rx);
    }
    // Below three members, joins are announced one by one.
    assert_eq!(
        frames(&mut outboxes[0]),
        vec![presence("big", "bob", PresenceEvent::Join, None)]
    );
    assert!(frames(&mut outboxes[0]).is_empty(), "the rest waits");
    hub.disconnect(ids[1], "quit", None);
    assert_eq!(hub.flush_presence(), 1);
    let summary = ServerFrame::PresenceSummary {
        room: "big".into(),
        members: 4,
        joined: vec!["cy".into(), "dan".into(), "eve".into()],
        joined_more: 0,
        left: vec!["bob".into()],
        left_more: 0,
    };
    assert_eq!(frames(&mut outboxes[0]), vec![summary.clone()]);
    assert_eq!(frames(&mut outboxes[4]), vec![summary]);
    assert_eq!(hub.flush_presence(), 0, "nothing new, nothing sent");
    let Ok((listed, _)) = hub.join_room(ids[0], "big") else {
        panic!("rejoin")
    };
    assert_eq!(listed, members(&["ann", "cy", "dan", "eve"]));
}

#[test]
fn session_ids_name_their_node_and_differ_across_nodes() {
    let (a, b) = (Hub::on_node(1, 64, 200), Hub::on_node(2, 64, 200));
    let (ha, _ra) = session(8);
    let (hb, _rb) = session(8);
    let (ia, ib) = (a.connect("alice", ha), b.connect("alice", hb));
    assert_ne!(ia, ib, "the same counter on two nodes");
    assert_eq!((ia.node(), ia.local()), (1, 1));
    assert_eq!((ib.node(), ib.local()), (2, 1));
    let max = SessionId::new(u16::MAX, (1 << 48) - 1);
    assert_eq!((max.node(), max.local()), (u16::MAX, (1 << 48) - 1));
}

#[test]
fn sessions_are_counted_by_their_transport() {
    let hub = Hub::default();
    let over = |transport| {
        SessionHandle::new(
            Arc::new(Outbox::new(8)),
            tokio_util::sync::CancellationToken::new(),
            json_lines(),
            transport,
        )
    };
    let a_irc = hub.connect("alice", over(TransportKind::Irc));
    hub.connect("Alice", over(TransportKind::WebSocket));
    hub.connect("bob", over(TransportKind::Natter));
    hub.connect("carol", over(TransportKind::Irc));
    assert_eq!(
        hub.sessions_by_transport(),
        PerTransport::from_counts(&[
            (TransportKind::Natter, 1),
            (TransportKind::WebSocket, 1),
            (TransportKind::Irc, 2),
        ])
    );
    assert_eq!(
        hub.online_sessions(),
        vec![
            (
                "alice".into(),
                PerTransport::from_counts(&[
                    (TransportKind::Irc, 1),
                    (TransportKind::WebSocket, 1)
                ])
            ),
            (
                "bob".into(),
                PerTransport::from_counts(&[(TransportKind::Natter, 1)])
            ),
            (
                "carol".into(),
                PerTransport::from_counts(&[(TransportKind::Irc, 1)])
            ),
        ]
    );
    hub.disconnect(a_irc, "quit", None);
    assert_eq!(hub.sessions_by_transport().get(TransportKind::Irc), 1);
    assert_eq!(
        hub.online_sessions()[0],
        (
            "alice".into(),
            PerTransport::from_counts(&[(TransportKind::WebSocket, 1)])
        )
    );
}

#[test]
fn rooms_of_a_user_span_their_sessions() {
    let hub = Hub::default();
    let (s1, _r1) = session(8);
    let (s2, _r2) = session(8);
    let s1 = hub.connect("Bob", s1);
    let s2 = hub.connect("Bob", s2);
    hub.join_room(s1, "b").expect("join");
    hub.join_room(s2, "a").expect("join");
    hub.join_room(s2, "b").expect("join");
    assert_eq!(hub.rooms_of("bob"), vec!["a".to_string(), "b".to_string()]);
    hub.disconnect(s2, "quit", None);
    assert_eq!(hub.rooms_of("BOB"), vec!["b".to_string()]);
    assert!(hub.rooms_of("nobody").is_empty());
}

#[tokio::test]
async fn closing_one_session_leaves_the_others_that_share_the_shutdown_token() {
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = || {
        SessionHandle::new(
            Arc::new(Outbox::new(8)),
            stop.clone(),
            json_lines(),
            TransportKind::Natter,
        )
    };
    let (a, b) = (handle(), handle());
    let wait = std::time::Duration::from_secs(5);
    a.close("kicked");
    tokio::time::timeout(wait, a.closed())
        .await
        .expect("the closed session ends");
    assert!(
        !stop.is_cancelled(),
        "closing a session does not stop the server"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), b.closed())
            .await
            .is_err(),
        "the other session goes on"
    );
    stop.cancel();
    tokio::time::timeout(wait, b.closed())
        .await
        .expect("shutdown ends every session");
    assert_eq!(b.close_reason(), None, "a shutdown gives no reason");
}

#[test]
fn the_sweep_wakes_only_sessions_whose_deadline_has_passed() {
    let hub = Hub::default();
    let handle = || {
        SessionHandle::new(
            Arc::new(Outbox::new(8)),
            tokio_util::sync::CancellationToken::new(),
            json_lines(),
            TransportKind::Natter,
        )
    };
    let (late, early, unset) = (handle(), handle(), handle());
    let now = tokio::time::Instant::now();
    late.outbox.set_deadline(now);
    early
        .outbox
        .set_deadline(now + std::time::Duration::from_secs(60));
    hub.connect("late", late);
    hub.connect("early", early);
    hub.connect("unset", unset);
    // Deadlines are kept in whole milliseconds, rounded up.
    let later = now + std::time::Duration::from_millis(1);
    assert_eq!(hub.wake_due(later), 1);
    assert_eq!(hub.wake_due(later), 0, "a due session is woken once");
}
