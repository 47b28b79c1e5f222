//! End-to-end behaviour of the chat server over real TCP with typed clients: accounts,
//! public and private messages, presence, listing, persistence and shutdown.

mod common;

use common::*;
use natter_proto::{ClientFrame, ErrorCode, FrameId, PresenceEvent, ServerFrame};

fn public(text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: None,
        text: text.into(),
        client_id: None,
    }
}

fn private(to: &str, text: &str) -> ClientFrame {
    ClientFrame::Private {
        id: None,
        to: to.into(),
        text: text.into(),
        client_id: None,
    }
}

fn error_code(f: &ServerFrame) -> Option<ErrorCode> {
    match f {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn register_then_login_case_insensitively() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut c = connect(srv.addr).await;
    send(
        &mut c,
        ClientFrame::Auth {
            id: Some(FrameId::Num(1)),
            user: "Alice".into(),
            password: PASSWORD.into(),
            register: true,
        },
    )
    .await;
    assert_eq!(
        next(&mut c).await,
        ServerFrame::AuthOk {
            id: Some(FrameId::Num(1)),
            user: "Alice".into(),
            registered: true
        }
    );
    let mut c2 = connect(srv.addr).await;
    let name = c2.login("alice", PASSWORD, false).await.expect("login");
    assert_eq!(name, "Alice", "the registered spelling is canonical");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let _alice = register(srv.addr, "alice").await;
    let mut c = connect(srv.addr).await;
    let wrong = c.login("alice", "not the password", false).await;
    let unknown = c.login("nobody", PASSWORD, false).await;
    let (
        Err(natter_client::ClientError::Refused {
            code: c1,
            message: m1,
        }),
        Err(natter_client::ClientError::Refused {
            code: c2,
            message: m2,
        }),
    ) = (wrong, unknown)
    else {
        panic!("both logins must be refused");
    };
    assert_eq!((c1, c2), (ErrorCode::AuthFailed, ErrorCode::AuthFailed));
    assert_eq!(m1, m2);
    // The third failure on one connection ends it.
    let third = c.login("alice", "still wrong", false).await;
    assert!(third.is_err());
    let rest = until_closed(&mut c).await;
    assert!(
        rest.iter()
            .any(|f| matches!(f, ServerFrame::Bye { reason } if reason.contains("failed logins"))),
        "{rest:?}"
    );
}

#[tokio::test]
async fn registration_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let _alice = register(srv.addr, "alice").await;
    let mut c = connect(srv.addr).await;
    let cases = [
        ("ALICE", PASSWORD, ErrorCode::UsernameTaken),
        ("../etc/passwd", PASSWORD, ErrorCode::InvalidUsername),
        ("", PASSWORD, ErrorCode::InvalidUsername),
        ("has space", PASSWORD, ErrorCode::InvalidUsername),
        (&"x".repeat(33), PASSWORD, ErrorCode::InvalidUsername),
        ("bob", "short", ErrorCode::InvalidPassword),
    ];
    for (user, pw, want) in cases {
        match c.login(user, pw, true).await {
            Err(natter_client::ClientError::Refused { code, .. }) => {
                assert_eq!(code, want, "{user}")
            }
            other => panic!("{user}: expected {want}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn public_message_reaches_everyone_online() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(register(srv.addr, &format!("user{i}")).await);
    }
    send(&mut clients[0], public("hello everyone")).await;
    for c in clients.iter_mut() {
        let f = until(c, |f| matches!(f, ServerFrame::Public { .. })).await;
        let ServerFrame::Public { from, text, ts, .. } = f else {
            unreachable!()
        };
        assert_eq!((from.as_str(), text.as_str()), ("user0", "hello everyone"));
        assert!(ts > 1_700_000_000_000, "ts is Unix milliseconds");
    }
}

#[tokio::test]
async fn private_message_reaches_only_its_target_and_the_senders_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut alice2 = login(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    let mut carol = register(srv.addr, "carol").await;
    send(
        &mut alice,
        ClientFrame::Private {
            id: Some(FrameId::Str("p1".into())),
            to: "BOB".into(),
            text: "psst".into(),
            client_id: None,
        },
    )
    .await;
    let want = |f: &ServerFrame| {
        matches!(f, ServerFrame::Private { from, to, text, .. }
            if from == "alice" && to == "bob" && text == "psst")
    };
    until(&mut bob, want).await;
    until(&mut alice2, want).await;
    until(&mut alice, want).await;
    assert_eq!(
        next(&mut alice).await,
        ServerFrame::Ok {
            id: FrameId::Str("p1".into())
        }
    );
    // Carol sees the marker that alice sends afterwards, and nothing private before it.
    send(&mut alice, public("marker")).await;
    let seen = until(&mut carol, |f| !matches!(f, ServerFrame::Presence { .. })).await;
    assert!(
        matches!(seen, ServerFrame::Public { ref text, .. } if text == "marker"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn private_message_to_unknown_user_is_a_clear_error_and_to_offline_user_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "alice").await;
    drop(register(srv.addr, "Bob").await);
    // Wait until Bob is really gone (his leave).
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
    send(&mut alice, private("nobody", "hi")).await;
    let f = until(&mut alice, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert_eq!(error_code(&f), Some(ErrorCode::NoSuchUser));
    send(
        &mut alice,
        ClientFrame::Private {
            id: Some(FrameId::Num(4)),
            to: "bob".into(),
            text: "read this later".into(),
            client_id: None,
        },
    )
    .await;
    let echo = next(&mut alice).await;
    assert!(
        matches!(&echo, ServerFrame::Private { to, text, late: false, .. } if to == "Bob" && text == "read this later"),
        "the sender sees their message: {echo:?}"
    );
    let queued = next(&mut alice).await;
    assert!(
        matches!(&queued, ServerFrame::Queued { id: Some(FrameId::Num(4)), to, .. } if to == "Bob"),
        "{queued:?}"
    );
}

#[tokio::test]
async fn list_shows_who_is_online() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut bob = register(srv.addr, "bob").await;
    let _alice = register(srv.addr, "Alice").await;
    send(
        &mut bob,
        ClientFrame::List {
            id: Some(FrameId::Num(9)),
        },
    )
    .await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::List { .. })).await;
    assert_eq!(
        f,
        ServerFrame::List {
            id: Some(FrameId::Num(9)),
            users: vec!["Alice".into(), "bob".into()],
            more: 0
        }
    );
}

#[tokio::test]
async fn presence_on_join_graceful_quit_and_abrupt_disconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut watcher = register(srv.addr, "watcher").await;
    let mut bob = register(srv.addr, "bob").await;
    assert_eq!(
        next(&mut watcher).await,
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
            message: None
        }
    );
    send(
        &mut bob,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;
    let rest = until_closed(&mut bob).await;
    assert_eq!(
        rest,
        vec![ServerFrame::Bye {
            reason: "quit".into()
        }]
    );
    assert_eq!(
        next(&mut watcher).await,
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("quit".into()),
            message: None
        }
    );
    // A client that vanishes without a word (connection dropped) is noticed at once.
    let carol = register(srv.addr, "carol").await;
    until(&mut watcher, |f| {
        matches!(
            f,
            ServerFrame::Presence {
                event: PresenceEvent::Join,
                ..
            }
        )
    })
    .await;
    drop(carol);
    assert_eq!(
        next(&mut watcher).await,
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "carol".into(),
            event: PresenceEvent::Leave,
            reason: Some("connection lost".into()),
            message: None
        }
    );
}

#[tokio::test]
async fn one_account_on_two_clients_gets_its_messages_on_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut a1 = register(srv.addr, "alice").await;
    let mut a2 = login(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    send(&mut bob, private("alice", "to both")).await;
    for c in [&mut a1, &mut a2] {
        until(
            c,
            |f| matches!(f, ServerFrame::Private { text, .. } if text == "to both"),
        )
        .await;
    }
    // A second session of an online account is not a new arrival.
    send(&mut bob, ClientFrame::List { id: None }).await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::List { .. })).await;
    assert_eq!(
        f,
        ServerFrame::List {
            id: None,
            users: vec!["alice".into(), "bob".into()],
            more: 0
        }
    );
    drop(a2);
    send(&mut a1, public("still here")).await;
    let seen = until(&mut bob, |f| {
        matches!(f, ServerFrame::Public { .. } | ServerFrame::Presence { .. })
    })
    .await;
    assert!(
        matches!(seen, ServerFrame::Public { .. }),
        "closing one of two sessions is no leave: {seen:?}"
    );
}

#[tokio::test]
async fn accounts_persist_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    drop(register(srv.addr, "alice").await);
    srv.stop().await;
    let srv = TestServer::start(dir.path()).await;
    let mut c = connect(srv.addr).await;
    assert_eq!(
        c.login("alice", PASSWORD, false)
            .await
            .expect("login after restart"),
        "alice"
    );
    let mut c = connect(srv.addr).await;
    assert!(matches!(
        c.login("alice", PASSWORD, true).await,
        Err(natter_client::ClientError::Refused {
            code: ErrorCode::UsernameTaken,
            ..
        })
    ));
}

#[tokio::test]
async fn passwords_are_stored_hashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    drop(register(srv.addr, "alice").await);
    srv.stop().await;
    let mut found = false;
    for entry in std::fs::read_dir(dir.path()).expect("read dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "clear password found on disk"
        );
        found |= bytes.windows(9).any(|w| w == b"$argon2id");
    }
    assert!(found, "an Argon2id hash is stored");
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_and_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut pending = connect(srv.addr).await;
    srv.stop().await;
    let seen = until_closed(&mut alice).await;
    assert!(
        seen.contains(&ServerFrame::System {
            text: "server is shutting down".into()
        }),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&ServerFrame::Bye {
            reason: "server shutting down".into()
        })
    );
    let seen = until_closed(&mut pending).await;
    assert_eq!(
        seen.last(),
        Some(&ServerFrame::Bye {
            reason: "server shutting down".into()
        })
    );
    // Accounts written before shutdown are all there afterwards.
    let srv = TestServer::start(dir.path()).await;
    login(srv.addr, "alice").await;
}

/// A client may send many messages without waiting for each `ok`: the server commits
/// them together but delivers them in the order sent (public and private alike),
/// acknowledges every one in order, and still delivers those sent just before the
/// sender quit.
#[tokio::test]
async fn a_burst_of_messages_arrives_in_order_and_each_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = plain_config(dir.path());
    config.messages.rate = 10_000.0;
    config.messages.burst = 10_000.0;
    let srv = TestServer::start_with(config).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    until(&mut alice, |f| matches!(f, ServerFrame::Presence { .. })).await;
    const N: u64 = 300;
    for i in 0..N {
        let (id, text) = (Some(FrameId::Num(i)), format!("m{i}"));
        let frame = if i % 3 == 0 {
            ClientFrame::Private {
                id,
                to: "bob".into(),
                text,
                client_id: None,
            }
        } else {
            ClientFrame::Public {
                id,
                room: None,
                text,
                client_id: None,
            }
        };
        send(&mut alice, frame).await;
    }
    send(
        &mut alice,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;

    let mut last_id = 0;
    for i in 0..N {
        let f = until(&mut bob, |f| {
            matches!(f, ServerFrame::Public { .. } | ServerFrame::Private { .. })
        })
        .await;
        let (ServerFrame::Public { msg_id, text, .. } | ServerFrame::Private { msg_id, text, .. }) =
            f
        else {
            unreachable!()
        };
        assert_eq!(text, format!("m{i}"), "messages arrive in the order sent");
        assert!(msg_id > last_id, "ids increase with the order sent");
        last_id = msg_id;
    }
    let seen = until_closed(&mut alice).await;
    let oks: Vec<u64> = seen
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Ok {
                id: FrameId::Num(n),
            } => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(
        oks,
        (0..N).collect::<Vec<_>>(),
        "every message acknowledged in order"
    );
    assert!(
        matches!(seen.last(), Some(ServerFrame::Bye { .. })),
        "bye comes after the acknowledgements: {:?}",
        seen.last()
    );
}
