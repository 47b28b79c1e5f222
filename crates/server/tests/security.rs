//! Every defence attacked over a real socket: TLS, message floods, brute force,
//! connection caps, idle peers, slow consumers, hostile text, file permissions.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use natter_client::Connection;
use natter_proto::{ClientFrame, ErrorCode, PresenceEvent, ServerFrame};
use natter_server::Config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

fn public(text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: None,
        text: text.into(),
        client_id: None,
    }
}

/// A TLS connection that trusts exactly the server's own certificate file.
async fn tls_connect(srv: &TestServer) -> Result<Connection, String> {
    let pem = srv.dir.join("tls/cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(srv.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (conn, _hello) = Connection::over(Box::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

#[tokio::test]
async fn tls_is_on_by_default_and_chat_works_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_with(Config::with_data_dir(dir.path())).await;
    let mut alice = tokio::time::timeout(WAIT, tls_connect(&srv))
        .await
        .expect("handshake in time")
        .expect("TLS handshake with the self-signed certificate");
    alice
        .login("alice", PASSWORD, true)
        .await
        .expect("register over TLS");
    send(&mut alice, public("encrypted hello")).await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "encrypted hello"),
    )
    .await;
}

#[tokio::test]
async fn a_plaintext_client_gets_nothing_from_a_tls_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        auth_timeout: Duration::from_secs(1),
        ..Config::with_data_dir(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let result = tokio::time::timeout(WAIT, Connection::connect(&srv.addr.to_string()))
        .await
        .expect("the server gives up on the handshake at the login timeout");
    assert!(result.is_err(), "no hello may be sent in clear");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_muted_while_others_keep_chatting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut flooder = register(srv.addr, "flooder").await;
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    // Far more than the burst (10) and the strikes to mute (10), sent at once.
    for i in 0..40 {
        send(&mut flooder, public(&format!("spam {i}"))).await;
    }
    let frames = sync(&mut flooder).await;
    let codes: Vec<ErrorCode> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Error {
                code,
                retry_after_ms,
                message,
                ..
            } => {
                assert!(retry_after_ms.is_some_and(|ms| ms > 0), "{message}");
                Some(*code)
            }
            _ => None,
        })
        .collect();
    let first_limited = codes.iter().position(|c| *c == ErrorCode::RateLimited);
    let first_muted = codes.iter().position(|c| *c == ErrorCode::Muted);
    assert!(first_limited.is_some(), "{codes:?}");
    assert!(
        first_muted > first_limited,
        "muted after being rate limited: {codes:?}"
    );
    let delivered = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Public { from, .. } if from == "flooder"))
        .count();
    assert!(
        delivered <= 12,
        "only about the burst gets through, got {delivered}"
    );
    // Meanwhile alice and bob chat normally, and see at most the burst of spam.
    send(&mut alice, public("we are fine")).await;
    let mut spam_seen = 0;
    for _ in 0..100 {
        match next(&mut bob).await {
            ServerFrame::Public { from, .. } if from == "flooder" => spam_seen += 1,
            ServerFrame::Public { text, .. } if text == "we are fine" => break,
            _ => {}
        }
    }
    assert!(spam_seen <= 12, "bob saw {spam_seen} spam messages");
}

#[tokio::test]
async fn a_flooder_who_keeps_going_is_disconnected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut watcher = register(srv.addr, "watcher").await;
    let mut flooder = register(srv.addr, "flooder").await;
    // burst 10, then 3 mutes of 10 strikes each, then the disconnect: ~50 messages.
    for i in 0..200 {
        if flooder.send(&public(&format!("spam {i}"))).await.is_err() {
            break;
        }
    }
    let seen = until_closed(&mut flooder).await;
    assert_eq!(
        seen.last(),
        Some(&ServerFrame::Bye {
            reason: "disconnected for flooding".into()
        })
    );
    let leave = until(&mut watcher, is_leave).await;
    assert_eq!(
        leave,
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "flooder".into(),
            event: PresenceEvent::Leave,
            reason: Some("disconnected for flooding".into()),
            message: None
        }
    );
}

#[tokio::test]
async fn brute_force_meets_growing_delays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        logins: natter_server::throttle::LoginLimits {
            base_delay: Duration::from_millis(200),
            ..Config::default().logins
        },
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    drop(register(srv.addr, "alice").await);
    let mut took = Vec::new();
    for attempt in 0..4 {
        let mut c = connect(srv.addr).await;
        let start = Instant::now();
        let r = c.login("alice", &format!("guess {attempt}"), false).await;
        took.push(start.elapsed());
        assert!(matches!(
            r,
            Err(natter_client::ClientError::Refused {
                code: ErrorCode::AuthFailed,
                ..
            })
        ));
    }
    // Delays before answering: 0, 200, 400, 800 ms (lower bounds only; a slow machine
    // may take longer but never less).
    assert!(took[1] >= Duration::from_millis(200), "{took:?}");
    assert!(took[2] >= Duration::from_millis(400), "{took:?}");
    assert!(took[3] >= Duration::from_millis(800), "{took:?}");
    // The right password still works, after the delay, and resets it.
    let mut c = connect(srv.addr).await;
    c.login("alice", PASSWORD, false)
        .await
        .expect("real owner logs in");
    let mut c = connect(srv.addr).await;
    let start = Instant::now();
    c.login("alice", PASSWORD, false).await.expect("again");
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "success forgave the failures"
    );
}

#[tokio::test]
async fn unknown_user_is_throttled_like_a_wrong_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        logins: natter_server::throttle::LoginLimits {
            base_delay: Duration::from_millis(300),
            ..Config::default().logins
        },
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    for _ in 0..2 {
        let mut c = connect(srv.addr).await;
        let start = Instant::now();
        let _ = c.login("ghost", "whatever1", false).await;
        if start.elapsed() >= Duration::from_millis(300) {
            return;
        }
    }
    panic!("the second failed login for an unknown name was not delayed");
}

#[tokio::test]
async fn per_address_connection_cap_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_connections_per_ip: 3,
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(srv.addr).await);
    }
    let mut raw = Raw::connect(srv.addr).await; // reads the hello
    let f = raw.frame().await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::TooManyConnections,
                ..
            }
        ),
        "{f:?}"
    );
    assert_eq!(
        raw.frame().await,
        ServerFrame::Bye {
            reason: "too many connections".into()
        }
    );
    raw.expect_closed().await;
    // Closing one frees its slot.
    let mut first = held.remove(0);
    send(
        &mut first,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;
    until_closed(&mut first).await;
    drop(first);
    let mut ok = None;
    for _ in 0..50 {
        let mut c = connect(srv.addr).await;
        send(&mut c, ClientFrame::Ping { id: None }).await;
        if matches!(next(&mut c).await, ServerFrame::Pong { .. }) {
            ok = Some(c);
            break;
        }
        // The old slot is released when its task ends, just after our close; retry
        // (each try is a full round trip) until it has.
    }
    assert!(ok.is_some(), "a slot was freed");
}

#[tokio::test]
async fn total_connection_cap_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_connections: 2,
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let _a = connect(srv.addr).await;
    let _b = connect(srv.addr).await;
    let mut raw = Raw::connect(srv.addr).await;
    assert!(matches!(
        raw.frame().await,
        ServerFrame::Error {
            code: ErrorCode::TooManyConnections,
            ..
        }
    ));
}

#[tokio::test]
async fn a_dead_peer_is_pinged_then_dropped_and_its_leave_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        ping_interval: Duration::from_secs(1),
        ping_timeout: Duration::from_secs(1),
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    // The watcher registers first: a leave arriving during its own welcome would be
    // an unexpected frame there.
    let mut watcher = register(srv.addr, "watcher").await;
    drop(register(srv.addr, "zombie").await);
    // The watcher answers its pings in the background and reports the first leave.
    let watching = tokio::spawn(async move {
        loop {
            match next(&mut watcher).await {
                ServerFrame::Ping { id } => send(&mut watcher, ClientFrame::Pong { id }).await,
                // Only the leave caused by the probe counts (the registration
                // connection's own leave may arrive first).
                ServerFrame::Presence {
                    user,
                    event: PresenceEvent::Leave,
                    reason: Some(reason),
                    ..
                } if reason == "ping timeout" => return (user, watcher),
                _ => {}
            }
        }
    });
    // A raw client that logs in and then never says anything again.
    let mut zombie = Raw::connect(srv.addr).await;
    zombie
        .send(
            format!("{{\"type\":\"auth\",\"user\":\"zombie\",\"password\":\"{PASSWORD}\"}}\n")
                .as_bytes(),
        )
        .await;
    assert!(matches!(zombie.frame().await, ServerFrame::AuthOk { .. }));
    zombie.skip_lobby_welcome().await;
    assert!(matches!(
        zombie.frame().await,
        ServerFrame::Ping { id: Some(_) }
    ));
    assert_eq!(
        zombie.frame().await,
        ServerFrame::Bye {
            reason: "ping timeout".into()
        }
    );
    let (left, mut watcher) = tokio::time::timeout(WAIT, watching)
        .await
        .expect("leave in time")
        .expect("watcher task");
    assert_eq!(left, "zombie");
    // The watcher, who answered, is still connected.
    send(&mut watcher, ClientFrame::List { id: None }).await;
    let f = until(&mut watcher, |f| matches!(f, ServerFrame::List { .. })).await;
    assert_eq!(
        f,
        ServerFrame::List {
            id: None,
            users: vec!["watcher".into()],
            more: 0
        }
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_while_others_keep_chatting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        session_queue: 16,
        messages: natter_server::ratelimit::MessageLimits {
            rate: 1_000_000.0,
            burst: 1_000_000.0,
            ..Config::default().messages
        },
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    drop(register(srv.addr, "sloth").await);
    until(&mut bob, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Leave, .. } if user == "sloth")
    })
    .await;
    // The sloth logs in with a tiny receive buffer and then never reads again.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut sloth = socket.connect(srv.addr).await.expect("connect");
    sloth
        .write_all(
            format!("{{\"type\":\"auth\",\"user\":\"sloth\",\"password\":\"{PASSWORD}\"}}\n")
                .as_bytes(),
        )
        .await
        .expect("auth");
    // Only once bob has seen the sloth join is it in the room the traffic goes to.
    until(&mut bob, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Join, .. } if user == "sloth")
    })
    .await;
    let text = "x".repeat(4000);
    let mut dropped = false;
    // Enough traffic to fill the sloth's socket buffers and then its queue; bob reads all.
    for round in 0..1000 {
        send(&mut alice, public(&text)).await;
        loop {
            match next(&mut bob).await {
                ServerFrame::Public { from, .. } if from == "alice" => break,
                ServerFrame::Presence {
                    user,
                    event: PresenceEvent::Leave,
                    reason,
                    ..
                } if user == "sloth" => {
                    assert_eq!(
                        reason.as_deref(),
                        Some("slow consumer: outgoing queue full")
                    );
                    dropped = true;
                }
                _ => {}
            }
        }
        if dropped {
            assert!(round > 0);
            break;
        }
    }
    assert!(dropped, "the sloth was never dropped");
    send(&mut alice, public("still flowing")).await;
    until(
        &mut bob,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "still flowing"),
    )
    .await;
}

#[tokio::test]
async fn ansi_escapes_arrive_neutralised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut mallory = register(srv.addr, "mallory").await;
    let mut bob = register(srv.addr, "bob").await;
    let evil = "\u{1b}[2J\u{1b}]0;pwned\u{7}hi\u{202e}\u{9b}31m";
    send(&mut mallory, public(evil)).await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::Public { .. })).await;
    let ServerFrame::Public { text, .. } = f else {
        unreachable!()
    };
    assert!(
        !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("hi"));
    send(
        &mut mallory,
        ClientFrame::Private {
            id: None,
            to: "bob".into(),
            text: evil.into(),
            client_id: None,
        },
    )
    .await;
    let f = until(&mut bob, |f| matches!(f, ServerFrame::Private { .. })).await;
    let ServerFrame::Private { text, .. } = f else {
        unreachable!()
    };
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn data_dir_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = TestServer::start_with(Config::with_data_dir(&data)).await;
    let mut alice = tls_connect(&srv).await.expect("tls");
    alice
        .login("alice", PASSWORD, true)
        .await
        .expect("register");
    srv.stop().await;
    let mut checked = 0;
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::metadata(&path).expect("meta");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            for e in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(e.expect("entry").path());
            }
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4, "data dir, db, tls dir, cert and key");
}
