//! Byte-level attacks on the protocol: every malformed input gets a clear error frame,
//! and the connection stays usable where that makes sense.

mod common;

use std::time::Duration;

use common::*;
use natter_proto::{ClientFrame, ErrorCode, FrameId, MAX_LINE, ServerFrame};
use natter_server::Config;

fn code(f: &ServerFrame) -> ErrorCode {
    match f {
        ServerFrame::Error { code, .. } => *code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// A raw connection logged in as `name` (registered through a typed client first).
async fn raw_logged_in(srv: &TestServer, name: &str) -> Raw {
    // Quit and wait for the close, by which time the server has handled the session's
    // end: a late leave could otherwise reach another user's welcome.
    let mut first = register(srv.addr, name).await;
    send(
        &mut first,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;
    until_closed(&mut first).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send(format!(r#"{{"type":"auth","user":"{name}","password":"{PASSWORD}"}}"#).as_bytes())
        .await;
    raw.send(b"\n").await;
    assert!(matches!(raw.frame().await, ServerFrame::AuthOk { .. }));
    raw.skip_lobby_welcome().await;
    raw
}

/// Proves the connection still works: ping gets pong.
async fn still_usable(raw: &mut Raw) {
    raw.send(b"{\"type\":\"ping\",\"id\":\"alive\"}\n").await;
    assert_eq!(
        raw.frame().await,
        ServerFrame::Pong {
            id: Some(FrameId::Str("alive".into()))
        }
    );
}

#[tokio::test]
async fn malformed_lines_get_errors_and_the_connection_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    let cases: [(&[u8], ErrorCode); 7] = [
        (b"this is not json\n", ErrorCode::BadJson),
        (
            b"{\"type\":\"public\",\"text\":\"unterminated\n",
            ErrorCode::BadJson,
        ),
        (b"{\"type\":\"teleport\"}\n", ErrorCode::BadFrame),
        (b"{\"text\":\"no type\"}\n", ErrorCode::BadFrame),
        (
            b"{\"type\":\"private\",\"text\":\"no recipient\"}\n",
            ErrorCode::BadFrame,
        ),
        (b"{\"type\":\"public\",\"text\":42}\n", ErrorCode::BadFrame),
        (
            b"{\"type\":\"public\",\"text\":\"\xff\xfe\"}\n",
            ErrorCode::BadUtf8,
        ),
    ];
    for (line, want) in cases {
        raw.send(line).await;
        let f = raw.frame().await;
        assert_eq!(code(&f), want, "{}", String::from_utf8_lossy(line));
        still_usable(&mut raw).await;
    }
}

#[tokio::test]
async fn errors_echo_the_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    raw.send(b"{\"type\":\"teleport\",\"id\":\"t1\"}\n").await;
    let f = raw.frame().await;
    assert!(
        matches!(f, ServerFrame::Error { id: Some(FrameId::Str(ref s)), code: ErrorCode::BadFrame, .. } if s == "t1"),
        "{f:?}"
    );
    raw.send(b"{\"type\":\"public\",\"text\":\"   \",\"id\":5}\n")
        .await;
    let f = raw.frame().await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                id: Some(FrameId::Num(5)),
                code: ErrorCode::EmptyMessage,
                ..
            }
        ),
        "{f:?}"
    );
}

#[tokio::test]
async fn empty_and_oversized_messages_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    raw.send(b"{\"type\":\"public\",\"text\":\"\"}\n").await;
    assert_eq!(code(&raw.frame().await), ErrorCode::EmptyMessage);
    raw.send(b"{\"type\":\"private\",\"to\":\"alice\",\"text\":\" \\n \"}\n")
        .await;
    assert_eq!(code(&raw.frame().await), ErrorCode::EmptyMessage);
    let big = "x".repeat(Config::default().max_message_bytes + 1);
    raw.send(format!("{{\"type\":\"public\",\"text\":\"{big}\"}}\n").as_bytes())
        .await;
    assert_eq!(code(&raw.frame().await), ErrorCode::MessageTooLong);
    still_usable(&mut raw).await;
}

#[tokio::test]
async fn overlong_line_is_refused_without_waiting_for_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    // No newline at all: the server must not wait for one or buffer past the limit.
    raw.send(&vec![b'a'; MAX_LINE + 100]).await;
    assert_eq!(code(&raw.frame().await), ErrorCode::LineTooLong);
    assert_eq!(
        raw.frame().await,
        ServerFrame::Bye {
            reason: "line too long".into()
        }
    );
    raw.expect_closed().await;
}

#[tokio::test]
async fn commands_before_login_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = Raw::connect(srv.addr).await;
    for line in [
        &b"{\"type\":\"public\",\"text\":\"hi\"}\n"[..],
        b"{\"type\":\"private\",\"to\":\"bob\",\"text\":\"hi\"}\n",
        b"{\"type\":\"list\",\"id\":1}\n",
    ] {
        raw.send(line).await;
        assert_eq!(code(&raw.frame().await), ErrorCode::NotAuthenticated);
    }
    still_usable(&mut raw).await;
}

#[tokio::test]
async fn auth_with_bad_names_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send(
        b"{\"type\":\"auth\",\"user\":\"a b\",\"password\":\"whatever12\",\"register\":true}\n",
    )
    .await;
    assert_eq!(code(&raw.frame().await), ErrorCode::InvalidUsername);
    raw.send(b"{\"type\":\"auth\",\"user\":\"../x\",\"password\":\"whatever12\"}\n")
        .await;
    assert_eq!(code(&raw.frame().await), ErrorCode::AuthFailed);
    still_usable(&mut raw).await;
}

#[tokio::test]
async fn too_many_frames_before_login_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_prelogin_frames: 3,
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let mut raw = Raw::connect(srv.addr).await;
    for _ in 0..3 {
        raw.send(b"{\"type\":\"ping\"}\n").await;
        assert!(matches!(raw.frame().await, ServerFrame::Pong { .. }));
    }
    raw.send(b"{\"type\":\"ping\"}\n").await;
    assert_eq!(code(&raw.frame().await), ErrorCode::TooManyFrames);
    assert!(matches!(raw.frame().await, ServerFrame::Bye { .. }));
    raw.expect_closed().await;
}

/// Paused time: the default 10 s login timeout elapses without the test waiting for it
/// (tokio advances the clock whenever every task is idle, e.g. waiting on the socket).
#[tokio::test(start_paused = true)]
async fn silent_connection_is_closed_at_the_login_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = Raw::connect(srv.addr).await;
    let start = tokio::time::Instant::now();
    let f = raw.frame_within(Duration::from_secs(60)).await;
    assert_eq!(code(&f), ErrorCode::NotAuthenticated);
    assert!(matches!(f, ServerFrame::Error { ref message, .. } if message == "login timed out"));
    assert_eq!(
        raw.frame().await,
        ServerFrame::Bye {
            reason: "login timed out".into()
        }
    );
    assert!(start.elapsed() >= Config::default().auth_timeout - Duration::from_millis(100));
    raw.expect_closed().await;
}

#[tokio::test]
async fn one_users_garbage_does_not_disturb_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut bob = register(srv.addr, "bob").await;
    let mut raw = raw_logged_in(&srv, "mallory").await;
    raw.send(b"\xff\xff\n{{{{\n").await;
    raw.send(&vec![b'z'; MAX_LINE * 2]).await;
    raw.expect_closed().await;
    let mut alice = register(srv.addr, "alice").await;
    send(
        &mut alice,
        natter_proto::ClientFrame::Public {
            id: None,
            room: None,
            text: "fine".into(),
            client_id: None,
        },
    )
    .await;
    until(
        &mut bob,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "fine"),
    )
    .await;
}

#[tokio::test]
async fn repeated_members_are_bad_frames_at_any_depth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    // Each line would be a valid ping without its repeated member; the expected id is
    // the first top-level one (PROTOCOL.md §2.2).
    let cases: [(&str, Option<FrameId>); 7] = [
        (
            r#"{"type":"ping","id":"d4","zz":1,"zz":2}"#,
            Some(FrameId::Str("d4".into())),
        ),
        (
            r#"{"type":"ping","id":"d5","id":"d6"}"#,
            Some(FrameId::Str("d5".into())),
        ),
        (
            r#"{"type":"ping","id":7,"type":"ping"}"#,
            Some(FrameId::Num(7)),
        ),
        (
            r#"{"type":"ping","id":"d8","x":{"a":1,"a":2}}"#,
            Some(FrameId::Str("d8".into())),
        ),
        (
            r#"{"type":"ping","x":[{"b":1},{"b":1,"b":2}],"id":"d9"}"#,
            Some(FrameId::Str("d9".into())),
        ),
        // The same name spelled with an escape is the same member.
        (
            r#"{"type":"ping","id":"e1","zz":1,"z\u007a":2}"#,
            Some(FrameId::Str("e1".into())),
        ),
        (r#"{"type":"ping","id":true,"id":"e2"}"#, None),
    ];
    for (line, id) in cases {
        raw.send(format!("{line}\n").as_bytes()).await;
        let f = raw.frame().await;
        assert!(
            matches!(&f, ServerFrame::Error { code: ErrorCode::BadFrame, id: got, message, .. }
                if *got == id && message.contains("duplicate")),
            "{line}: {f:?}"
        );
        // No pong for the rejected ping: the next frame answers this ping.
        still_usable(&mut raw).await;
    }
}

/// Reads the answer to a `history` request with `id`: every line must fit the line
/// limit. Returns the messages and how many frames carried them.
async fn history_answer(raw: &mut Raw, id: &FrameId) -> (Vec<natter_proto::HistoryEntry>, usize) {
    let (mut messages, mut frames) = (Vec::new(), 0);
    for _ in 0..100 {
        let line = raw.line().await;
        assert!(line.len() <= MAX_LINE, "a {}-byte line", line.len());
        match natter_proto::decode_server(&line).expect("valid frame") {
            ServerFrame::History {
                id: Some(got),
                messages: m,
                last,
                ..
            } if got == *id => {
                frames += 1;
                messages.extend(m);
                if last {
                    return (messages, frames);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("no last history frame within 100 lines");
}

/// Reads lines (each within the limit) until `done` matches one.
async fn lines_until(raw: &mut Raw, done: impl Fn(&ServerFrame) -> bool) {
    for _ in 0..100 {
        let line = raw.line().await;
        assert!(line.len() <= MAX_LINE, "a {}-byte line", line.len());
        if done(&natter_proto::decode_server(&line).expect("valid frame")) {
            return;
        }
    }
    panic!("no matching frame within 100 lines");
}

#[tokio::test]
async fn history_of_the_longest_messages_with_the_longest_escaped_id_fits_in_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max = natter_server::config::MAX_MESSAGE_BYTES;
    let config = Config {
        max_message_bytes: max,
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let (me, peer, room) = ("m".repeat(32), "p".repeat(32), "r".repeat(32));
    let mut other = register(srv.addr, &peer).await;
    send(
        &mut other,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;
    until_closed(&mut other).await;
    let mut raw = raw_logged_in(&srv, &me).await;
    let join = ClientFrame::Join {
        id: None,
        room: room.clone(),
    };
    raw.send(&natter_proto::encode(&join)).await;
    lines_until(&mut raw, |f| {
        matches!(f, ServerFrame::History { last: true, .. })
    })
    .await;
    // Every DEL is stored as U+FFFD: three bytes each, the most text can grow.
    let text = "\u{7f}".repeat(max);
    for i in 0..3u64 {
        let public = ClientFrame::Public {
            id: Some(FrameId::Num(i)),
            room: Some(room.clone()),
            text: text.clone(),
            client_id: None,
        };
        raw.send(&natter_proto::encode(&public)).await;
        lines_until(
            &mut raw,
            |f| matches!(f, ServerFrame::Ok { id: FrameId::Num(n) } if *n == i),
        )
        .await;
        let private = ClientFrame::Private {
            id: Some(FrameId::Num(i)),
            to: peer.clone(),
            text: text.clone(),
            client_id: None,
        };
        raw.send(&natter_proto::encode(&private)).await;
        lines_until(
            &mut raw,
            |f| matches!(f, ServerFrame::Queued { id: Some(FrameId::Num(n)), .. } if *n == i),
        )
        .await;
    }
    // 64 control characters: the longest id there is once escaped (6 bytes each).
    let id = FrameId::Str("\u{1}".repeat(natter_proto::MAX_ID_LEN));
    let stored = "\u{FFFD}".repeat(max);
    for (room, with) in [(Some(room.clone()), None), (None, Some(peer.clone()))] {
        let request = ClientFrame::History {
            id: Some(id.clone()),
            room,
            with,
            before: None,
            limit: Some(10),
        };
        raw.send(&natter_proto::encode(&request)).await;
        let (messages, frames) = history_answer(&mut raw, &id).await;
        assert_eq!(messages.len(), 3, "every message is delivered");
        assert!(messages.iter().all(|m| m.text == stored));
        assert_eq!(frames, 3, "one message per line");
    }
    still_usable(&mut raw).await;
}

#[tokio::test]
async fn rooms_answer_with_the_longest_names_fits_in_a_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_rooms_per_session: 1000,
        // 450 joins at once: more than the join-and-part burst allows by default.
        room_ops: natter_server::ratelimit::MessageLimits {
            burst: 1000.0,
            ..Config::default().room_ops
        },
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let mut raw = raw_logged_in(&srv, "alice").await;
    let rooms: Vec<String> = (0..450).map(|i| format!("r{i:031}")).collect();
    // In batches, reading as we go, so the outgoing queue never fills.
    for batch in rooms.chunks(50) {
        for room in batch {
            let join = ClientFrame::Join {
                id: None,
                room: room.clone(),
            };
            raw.send(&natter_proto::encode(&join)).await;
        }
        for _ in batch {
            lines_until(&mut raw, |f| {
                matches!(f, ServerFrame::History { last: true, .. })
            })
            .await;
        }
    }
    let id = FrameId::Str("\u{1}".repeat(natter_proto::MAX_ID_LEN));
    raw.send(&natter_proto::encode(&ClientFrame::Rooms {
        id: Some(id.clone()),
    }))
    .await;
    let line = raw.line().await;
    assert!(line.len() <= MAX_LINE, "a {}-byte line", line.len());
    match natter_proto::decode_server(&line).expect("valid frame") {
        ServerFrame::Rooms {
            id: Some(got),
            rooms: listed,
            more,
        } if got == id => {
            assert_eq!(listed.len() + more as usize, rooms.len() + 1, "lobby too");
            assert!(listed.iter().all(|r| r.members == 1));
        }
        other => panic!("unexpected {other:?}"),
    }
}
