//! Rooms, durable history, offline delivery and conversation logs, over real sockets.

mod common;

use std::time::Duration;

use common::*;
use natter_client::Connection;
use natter_proto::{
    ClientFrame, ErrorCode, FrameId, HistoryEntry, PresenceEvent, RoomInfo, ServerFrame,
};
use natter_server::Config;
use natter_server::store::{NewMessage, SqliteStore, Store, Target};

fn say(room: &str, text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: Some(room.into()),
        text: text.into(),
        client_id: None,
    }
}

fn join(room: &str) -> ClientFrame {
    ClientFrame::Join {
        id: None,
        room: room.into(),
    }
}

/// Reads `joined` and every `history` chunk that follows it.
async fn joined(c: &mut Connection) -> (String, Vec<String>, Vec<HistoryEntry>) {
    let ServerFrame::Joined { room, members, .. } =
        until(c, |f| matches!(f, ServerFrame::Joined { .. })).await
    else {
        unreachable!()
    };
    (room, members, history(c).await)
}

/// Collects `history` chunks up to the last one.
async fn history(c: &mut Connection) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        if let ServerFrame::History { messages, last, .. } =
            until(c, |f| matches!(f, ServerFrame::History { .. })).await
        {
            out.extend(messages);
            if last {
                return out;
            }
        }
    }
    panic!("no last history chunk");
}

fn texts(h: &[HistoryEntry]) -> Vec<&str> {
    h.iter().map(|e| e.text.as_str()).collect()
}

#[tokio::test]
async fn rooms_separate_conversations_and_presence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    let mut carol = register(srv.addr, "carol").await;
    send(&mut alice, join("Rust")).await;
    let (room, members, _) = joined(&mut alice).await;
    assert_eq!(
        (room.as_str(), members),
        ("rust", vec!["alice".to_string()])
    );
    send(&mut bob, join("#rust")).await;
    let (_, members, _) = joined(&mut bob).await;
    assert_eq!(members, vec!["alice".to_string(), "bob".to_string()]);
    // Alice sees bob arrive in #rust; carol (lobby only) does not.
    let f = until(
        &mut alice,
        |f| matches!(f, ServerFrame::Presence { room, .. } if room == "rust"),
    )
    .await;
    assert_eq!(
        f,
        ServerFrame::Presence {
            room: "rust".into(),
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
            message: None,
        }
    );
    send(&mut alice, say("rust", "borrowck!")).await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::Public { .. })).await;
    assert!(
        matches!(&f, ServerFrame::Public { room, from, text, .. }
        if room == "rust" && from == "alice" && text == "borrowck!"),
        "{f:?}"
    );
    send(&mut alice, say("lobby", "marker")).await;
    let f = until(&mut carol, |f| matches!(f, ServerFrame::Public { .. })).await;
    assert!(
        matches!(&f, ServerFrame::Public { text, .. } if text == "marker"),
        "carol only sees the lobby: {f:?}"
    );
    // Carol cannot talk in a room she is not in.
    send(&mut carol, say("rust", "let me in")).await;
    let f = until(&mut carol, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::NotInRoom,
                ..
            }
        ),
        "{f:?}"
    );
    send(&mut carol, join("no/pe")).await;
    let f = until(&mut carol, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::InvalidRoom,
                ..
            }
        ),
        "{f:?}"
    );
    // /rooms and /who.
    send(
        &mut carol,
        ClientFrame::Rooms {
            id: Some(FrameId::Num(1)),
        },
    )
    .await;
    let f = until(&mut carol, |f| matches!(f, ServerFrame::Rooms { .. })).await;
    assert_eq!(
        f,
        ServerFrame::Rooms {
            id: Some(FrameId::Num(1)),
            rooms: vec![
                RoomInfo {
                    name: "lobby".into(),
                    members: 3
                },
                RoomInfo {
                    name: "rust".into(),
                    members: 2
                }
            ],
            more: 0
        }
    );
    send(
        &mut carol,
        ClientFrame::Who {
            id: None,
            room: "RUST".into(),
        },
    )
    .await;
    let f = until(&mut carol, |f| matches!(f, ServerFrame::Who { .. })).await;
    assert_eq!(
        f,
        ServerFrame::Who {
            id: None,
            room: "rust".into(),
            users: vec!["alice".into(), "bob".into()],
            more: 0
        }
    );
    // Bob parts: alice sees the leave in #rust.
    send(
        &mut bob,
        ClientFrame::Part {
            id: None,
            room: "rust".into(),
            message: None,
        },
    )
    .await;
    assert_eq!(
        until(&mut bob, |f| matches!(f, ServerFrame::Parted { .. })).await,
        ServerFrame::Parted {
            id: None,
            room: "rust".into()
        }
    );
    let f = until(&mut alice, |f| {
        matches!(
            f,
            ServerFrame::Presence {
                event: PresenceEvent::Leave,
                ..
            }
        )
    })
    .await;
    assert_eq!(
        f,
        ServerFrame::Presence {
            room: "rust".into(),
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("part".into()),
            message: None,
        }
    );
    send(
        &mut bob,
        ClientFrame::Part {
            id: None,
            room: "rust".into(),
            message: None,
        },
    )
    .await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(matches!(
        f,
        ServerFrame::Error {
            code: ErrorCode::NotInRoom,
            ..
        }
    ));
}

#[tokio::test]
async fn history_survives_restart_and_pages_backwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unlimited = Config {
        messages: natter_server::ratelimit::MessageLimits {
            rate: 1_000_000.0,
            burst: 1_000_000.0,
            ..Config::default().messages
        },
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(unlimited).await;
    let mut alice = register(srv.addr, "alice").await;
    for i in 0..60 {
        send(&mut alice, say("lobby", &format!("m{i}"))).await;
        // Stay under the message rate limit: wait for each echo.
        until(&mut alice, |f| matches!(f, ServerFrame::Public { .. })).await;
    }
    srv.stop().await;
    let srv = TestServer::start(dir.path()).await;
    let mut c = connect(srv.addr).await;
    c.login("alice", PASSWORD, false).await.expect("login");
    let welcome = skip_lobby_welcome(&mut c).await;
    assert_eq!(welcome.len(), 50, "the latest 50 on join");
    assert_eq!(welcome.first().map(|e| e.text.as_str()), Some("m10"));
    assert_eq!(welcome.last().map(|e| e.text.as_str()), Some("m59"));
    let oldest = welcome[0].msg_id;
    send(
        &mut c,
        ClientFrame::History {
            id: Some(FrameId::Num(7)),
            room: Some("lobby".into()),
            with: None,
            before: Some(oldest),
            limit: Some(4),
        },
    )
    .await;
    assert_eq!(texts(&history(&mut c).await), ["m6", "m7", "m8", "m9"]);
    // The same account on a second client sees the same history.
    let mut c2 = connect(srv.addr).await;
    c2.login("alice", PASSWORD, false).await.expect("login");
    let welcome2 = skip_lobby_welcome(&mut c2).await;
    assert_eq!(welcome, welcome2);
}

#[tokio::test]
async fn offline_private_messages_are_delivered_late_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "alice").await;
    drop(register(srv.addr, "bob").await);
    until(&mut alice, |f| {
        matches!(
            f,
            ServerFrame::Presence {
                event: PresenceEvent::Leave,
                ..
            }
        )
    })
    .await;
    let mut sent_ts = Vec::new();
    for i in 0..3 {
        send(
            &mut alice,
            ClientFrame::Private {
                id: None,
                to: "bob".into(),
                text: format!("later {i}"),
                client_id: None,
            },
        )
        .await;
        let f = until(&mut alice, |f| matches!(f, ServerFrame::Queued { .. })).await;
        assert!(matches!(&f, ServerFrame::Queued { to, .. } if to == "bob"));
        sent_ts.push(crate_ts(&mut alice).await);
    }
    // Bob logs in on two clients at the same moment.
    let (b1, b2) = tokio::join!(login_collecting(srv.addr), login_collecting(srv.addr));
    let (mut b1, late1) = b1;
    let (mut b2, late2) = b2;
    let mut all: Vec<String> = late1
        .iter()
        .chain(late2.iter())
        .map(|e| e.0.clone())
        .collect();
    for late in [&late1, &late2] {
        let mut t: Vec<_> = late.iter().map(|e| e.0.clone()).collect();
        t.dedup();
        assert_eq!(t.len(), late.len(), "no duplicates on one client: {late:?}");
    }
    all.sort();
    all.dedup();
    assert_eq!(all, ["later 0", "later 1", "later 2"]);
    // Original times, not delivery times.
    for (text, ts) in late1.iter().chain(late2.iter()) {
        let i: usize = text.trim_start_matches("later ").parse().expect("index");
        assert_eq!(*ts, sent_ts[i]);
    }
    // A later login gets nothing more.
    drop((
        b1.send(&ClientFrame::Quit {
            id: None,
            message: None,
        })
        .await,
        b2.send(&ClientFrame::Quit {
            id: None,
            message: None,
        })
        .await,
    ));
    let (_, late3) = login_collecting(srv.addr).await;
    assert!(late3.is_empty(), "{late3:?}");
}

/// The ts of the private echo the sender got just before `queued`: read from history.
async fn crate_ts(alice: &mut Connection) -> u64 {
    send(
        alice,
        ClientFrame::History {
            id: None,
            room: None,
            with: Some("bob".into()),
            before: None,
            limit: Some(1),
        },
    )
    .await;
    history(alice)
        .await
        .last()
        .map(|e| e.ts)
        .expect("one message")
}

/// Logs bob in and collects the late private messages that follow the lobby welcome
/// (up to a ping round trip, which the server answers after everything queued before).
async fn login_collecting(addr: std::net::SocketAddr) -> (Connection, Vec<(String, u64)>) {
    let mut c = connect(addr).await;
    c.login("bob", PASSWORD, false).await.expect("login");
    // The other session's late delivery may arrive before or within our welcome.
    let (_, mut frames) = lobby_welcome(&mut c).await;
    frames.extend(sync(&mut c).await);
    let mut late = Vec::new();
    for f in frames {
        if let ServerFrame::Private {
            text,
            ts,
            late: true,
            ..
        } = f
        {
            late.push((text, ts));
        }
    }
    (c, late)
}

#[tokio::test]
async fn conversation_and_system_logs_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "Alice").await;
    let mut bob = register(srv.addr, "bob").await;
    send(
        &mut alice,
        ClientFrame::Private {
            id: None,
            to: "bob".into(),
            text: "psst".into(),
            client_id: None,
        },
    )
    .await;
    until(&mut bob, |f| matches!(f, ServerFrame::Private { .. })).await;
    send(
        &mut bob,
        ClientFrame::Private {
            id: None,
            to: "alice".into(),
            text: "what?".into(),
            client_id: None,
        },
    )
    .await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Private { text, .. } if text == "what?"),
    )
    .await;
    send(&mut alice, say("lobby", "hello room")).await;
    until(&mut bob, |f| matches!(f, ServerFrame::Public { .. })).await;
    let mut c = connect(srv.addr).await;
    assert!(c.login("bob", "wrong password", false).await.is_err());
    drop(c);
    srv.stop().await; // closes the transcript, flushing everything
    let logs = dir.path().join("logs");
    let a = std::fs::read_to_string(logs.join("users/alice/bob.log")).expect("alice's log");
    let b = std::fs::read_to_string(logs.join("users/bob/alice.log")).expect("bob's log");
    assert_eq!(a, b, "both participants hold the same conversation");
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with(" <Alice> -> <bob> psst"), "{a}");
    assert!(lines[1].ends_with(" <bob> -> <Alice> what?"), "{a}");
    for line in &lines {
        let ts = line.split(' ').next().expect("timestamp");
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    let room = std::fs::read_to_string(logs.join("rooms/lobby.log")).expect("room log");
    assert!(room.contains(" * Alice joined"), "{room}");
    assert!(room.contains(" <Alice> hello room"), "{room}");
    let sys = std::fs::read_to_string(logs.join("system_events.log")).expect("system log");
    for want in [
        " start ",
        " register user=Alice",
        " register user=bob",
        " join room=lobby user=bob",
        " login_failed user=bob",
        " stop",
    ] {
        assert!(sys.contains(want), "missing {want:?} in:\n{sys}");
    }
    assert!(!sys.contains("wrong password"));
}

#[tokio::test]
async fn a_name_that_looks_like_a_path_is_refused_and_creates_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut c = connect(srv.addr).await;
    for name in ["../evil", "..", "a/b", "/etc/passwd"] {
        let r = c.login(name, PASSWORD, true).await;
        assert!(
            matches!(
                r,
                Err(natter_client::ClientError::Refused {
                    code: ErrorCode::InvalidUsername,
                    ..
                })
            ),
            "{name}: {r:?}"
        );
    }
    srv.stop().await;
    assert!(!dir.path().join("evil").exists());
    let users = dir.path().join("logs/users");
    assert!(!users.exists() || std::fs::read_dir(&users).expect("dir").next().is_none());
}

#[tokio::test]
async fn retention_prunes_old_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // Messages written long ago, straight into the store.
        let store = SqliteStore::open(dir.path()).expect("store");
        for (text, ts) in [
            ("ancient", 1_000),
            ("recent", natter_server::now_ms() - 1_000),
        ] {
            store
                .append_message(NewMessage {
                    from: "alice".into(),
                    target: Target::Room("lobby".into()),
                    text: text.into(),
                    ts,
                    client_id: None,
                })
                .await
                .expect("append");
        }
        store.close().await;
    }
    let config = Config {
        retention: Some(Duration::from_secs(86_400)),
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    // Pruning runs at start; history reflects it once it has (bounded retries).
    for _ in 0..50 {
        let mut c = register_or_login(srv.addr).await;
        let h = skip_lobby_welcome(&mut c).await;
        let t: Vec<&str> = texts(&h);
        if t == ["recent"] {
            return;
        }
        assert!(t.contains(&"recent"), "{t:?}");
        tokio::task::yield_now().await;
    }
    panic!("old history was not pruned");
}

async fn register_or_login(addr: std::net::SocketAddr) -> Connection {
    let mut c = connect(addr).await;
    if c.login("reader", PASSWORD, false).await.is_err() {
        c = connect(addr).await;
        c.login("reader", PASSWORD, true).await.expect("register");
    }
    c
}

/// In a room with at least `large_room` members, joins and leaves reach the members as
/// one `presence_summary` about once a second instead of one `presence` each, and
/// `who` still lists everyone.
#[tokio::test]
async fn large_rooms_summarise_presence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = plain_config(dir.path());
    config.large_room = 2;
    let srv = TestServer::start_with(config).await;
    let mut ann = register(srv.addr, "ann").await;
    send(&mut ann, join("big")).await;
    joined(&mut ann).await;
    let mut others = Vec::new();
    for name in ["bob", "cy", "dan"] {
        // The lobby is large too (`large_room` is 2), so its once-a-second summary may
        // reach a newcomer during the welcome.
        let (mut c, extra) = register_welcomed(srv.addr, name).await;
        assert!(
            extra
                .iter()
                .all(|f| matches!(f, ServerFrame::PresenceSummary { room, .. } if room == "lobby")),
            "unexpected frames during the welcome: {extra:?}"
        );
        send(&mut c, join("big")).await;
        joined(&mut c).await;
        others.push(c);
    }
    others.truncate(2); // dan's connection closes: a leave.
    // The joins may be spread over several summaries; the leave comes in the last one.
    let mut joined_seen = Vec::new();
    let mut left_seen = false;
    for _ in 0..10 {
        let f = until(&mut ann, |f| {
            matches!(f, ServerFrame::PresenceSummary { room, .. } | ServerFrame::Presence { room, .. } if room == "big")
        })
        .await;
        let ServerFrame::PresenceSummary {
            joined,
            left,
            members,
            ..
        } = f
        else {
            panic!("one-by-one presence in a large room: {f:?}");
        };
        joined_seen.extend(joined);
        if !left.is_empty() {
            assert_eq!(left, vec!["dan".to_string()]);
            assert_eq!(members, 3);
            left_seen = true;
            break;
        }
    }
    assert!(left_seen, "dan's leave was never summarised");
    assert_eq!(joined_seen, vec!["bob", "cy", "dan"]);
    send(
        &mut ann,
        ClientFrame::Who {
            id: None,
            room: "big".into(),
        },
    )
    .await;
    let who = until(&mut ann, |f| matches!(f, ServerFrame::Who { .. })).await;
    assert!(
        matches!(&who, ServerFrame::Who { users, more: 0, .. } if users == &["ann", "bob", "cy"]),
        "{who:?}"
    );
}
