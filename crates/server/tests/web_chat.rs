//! The web interface over real sockets, continued from `tests/web.rs`: browser chat over
//! `/ws` (tokio-tungstenite against the server on 127.0.0.1:0) talking to terminal and
//! IRC users, HTTPS, accepted host names, the metrics token, transports on the console.

mod common;
#[path = "support/console.rs"]
mod console;
#[path = "support/web_client.rs"]
mod web_client;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::SinkExt;
use natter_proto::{ClientFrame, ErrorCode, MAX_LINE, PresenceEvent, ServerFrame};
use natter_server::Config;
use natter_server::config::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use console::*;
use web_client::*;

#[tokio::test]
async fn browser_chat_over_websocket_talks_to_terminal_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");
    let url = format!("ws://{web}/ws");

    assert_eq!(
        ws_connect(&url, &[("Origin", "http://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let origin = format!("http://{web}");
    let mut ws = ws_connect(&url, &[("Origin", &origin)])
        .await
        .expect("same origin is fine");
    assert!(matches!(
        ws_frame(&mut ws).await,
        ServerFrame::Hello {
            protocol: natter_proto::PROTOCOL_VERSION,
            ..
        }
    ));
    ws_send(
        &mut ws,
        serde_json::json!({"type":"auth","id":1,"user":"carol","password":PASSWORD,"register":true}),
    )
    .await;
    let ok = ws_frame(&mut ws).await;
    assert!(
        matches!(ok, ServerFrame::AuthOk { ref user, .. } if user == "carol"),
        "{ok:?}"
    );
    ws_frame_until(&mut ws, |f| {
        matches!(f, ServerFrame::History { last: true, .. })
    })
    .await;

    let mut dave = register(srv.addr, "dave").await;
    ws_frame_until(
        &mut ws,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "dave"),
    )
    .await;
    send(&mut dave, public("hi browser")).await;
    let f = ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Public { .. })).await;
    assert!(
        matches!(f, ServerFrame::Public { ref from, ref text, .. } if from == "dave" && text == "hi browser")
    );
    // A burst from a terminal client is published in chunks; the browser still gets
    // every frame as its own text message, in order.
    for i in 0..8 {
        send(&mut dave, public(&format!("burst {i}"))).await;
    }
    for i in 0..8 {
        let f = ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Public { .. })).await;
        assert!(
            matches!(f, ServerFrame::Public { ref text, .. } if *text == format!("burst {i}")),
            "{f:?}"
        );
    }
    ws_send(
        &mut ws,
        serde_json::json!({"type":"private","id":2,"to":"dave","text":"psst"}),
    )
    .await;
    let f = until(&mut dave, |f| matches!(f, ServerFrame::Private { .. })).await;
    assert!(
        matches!(f, ServerFrame::Private { ref from, ref text, .. } if from == "carol" && text == "psst")
    );
    send(
        &mut dave,
        ClientFrame::Private {
            id: None,
            to: "carol".into(),
            text: "back".into(),
            client_id: None,
        },
    )
    .await;
    let f = ws_frame_until(
        &mut ws,
        |f| matches!(f, ServerFrame::Private { from, .. } if from == "dave"),
    )
    .await;
    assert!(matches!(f, ServerFrame::Private { ref text, .. } if text == "back"));

    // Binary is refused but the session goes on; garbage gets the usual error.
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    let e = ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            e,
            ServerFrame::Error {
                code: ErrorCode::BadFrame,
                ..
            }
        ),
        "{e:?}"
    );
    ws.send(Message::Text("{oops".into())).await.expect("send");
    let e = ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            e,
            ServerFrame::Error {
                code: ErrorCode::BadJson,
                ..
            }
        ),
        "{e:?}"
    );
    ws_send(&mut ws, serde_json::json!({"type":"ping","id":"p"})).await;
    ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Pong { .. })).await;

    // Before login, binary messages count against the pre-login frame budget.
    let mut anon = ws_connect(&url, &[]).await.expect("no Origin is fine");
    assert!(matches!(
        ws_frame(&mut anon).await,
        ServerFrame::Hello { .. }
    ));
    for _ in 0..10 {
        anon.send(Message::Binary(vec![0].into()))
            .await
            .expect("send");
    }
    anon.send(Message::Binary(vec![0].into()))
        .await
        .expect("send");
    let e = ws_frame_until(&mut anon, |f| {
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::TooManyFrames,
                ..
            }
        )
    })
    .await;
    assert!(matches!(e, ServerFrame::Error { .. }));
    assert!(matches!(ws_frame(&mut anon).await, ServerFrame::Bye { .. }));

    // An over-long frame ends the session with line_too_long, as on TCP.
    let long = format!(r#"{{"type":"public","text":"{}"}}"#, "x".repeat(MAX_LINE));
    ws.send(Message::Text(long.into())).await.expect("send");
    let e = ws_frame_until(&mut ws, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            e,
            ServerFrame::Error {
                code: ErrorCode::LineTooLong,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(ws_frame(&mut ws).await, ServerFrame::Bye { .. }));
    until(
        &mut dave,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "carol"),
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn https_with_the_server_certificate_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        admin_password: Some(Secret(ADMIN.into())),
        web_tls: true,
        ..Config::with_data_dir(dir.path())
    };
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.path().join("tls/cert.pem")).expect("pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let open = || async {
        let tcp = TcpStream::connect(web).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the server's certificate")
    };
    let r = exchange(open().await, "localhost", "GET", "/healthz", &[], None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let body = serde_json::json!({ "password": ADMIN }).to_string();
    let r = exchange(
        open().await,
        "localhost",
        "POST",
        "/api/admin/login",
        &[],
        Some(&body),
    )
    .await;
    let set = r.header("set-cookie").expect("cookie");
    assert!(set.contains("; Secure"), "{set}");

    // Plain HTTP to the HTTPS port gets no page.
    let mut tcp = TcpStream::connect(web).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = timeout(WAIT, tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("ok\n"));
    srv.stop().await;
}

/// A DNS-rebinding page (its name resolved to 127.0.0.1) reaches the socket with its own
/// name in `Host` and `Origin`: every route refuses it before doing anything.
#[tokio::test]
async fn foreign_host_names_are_refused_before_any_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");
    let evil = format!("evil.example:{}", web.port());
    let evil_origin = format!("http://{evil}");
    let login = serde_json::json!({ "password": ADMIN }).to_string();
    for (method, path, body) in [
        ("GET", "/metrics", None),
        ("POST", "/api/admin/login", Some(login.as_str())),
        ("GET", "/healthz", None),
        ("GET", "/console", None),
    ] {
        let tcp = TcpStream::connect(web).await.expect("connect");
        let headers = [("Origin", evil_origin.as_str())];
        let r = exchange(tcp, &evil, method, path, &headers, body).await;
        assert_eq!(r.status, 421, "{method} {path}: {r:?}");
        assert!(r.header("set-cookie").is_none(), "{path}: no session");
        assert!(!r.body.contains("natter_"), "{path}: no metrics");
    }
    let url = format!("ws://{web}/ws");
    assert_eq!(
        ws_connect(&url, &[("Host", &evil), ("Origin", &evil_origin)])
            .await
            .err(),
        Some(421),
        "no WebSocket for a foreign Host"
    );
    // The same login through an allowed name works.
    Console::login(web, ADMIN).await;

    // The names the server is reached by locally all work, with and without the port.
    let port = web.port();
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
    ] {
        let tcp = TcpStream::connect(web).await.expect("connect");
        let r = exchange(tcp, &host, "GET", "/healthz", &[], None).await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "Host: {host}");
    }
    let origin = format!("http://localhost:{port}");
    let mut ws = ws_connect(
        &format!("ws://{web}/ws"),
        &[("Host", &format!("localhost:{port}")), ("Origin", &origin)],
    )
    .await
    .expect("localhost page opens /ws");
    assert!(matches!(ws_frame(&mut ws).await, ServerFrame::Hello { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn configured_host_names_replace_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        web_host: vec!["chat.example".into(), "::1".into()],
        ..web_config(dir.path())
    };
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");
    let port = web.port();
    for (host, status) in [
        (format!("chat.example:{port}"), 200),
        ("Chat.Example".to_string(), 200),
        (format!("[::1]:{port}"), 200),
        (format!("127.0.0.1:{port}"), 421),
        ("localhost".to_string(), 421),
        ("chat.example.evil.example".to_string(), 421),
        ("chat.example:x".to_string(), 421),
    ] {
        let tcp = TcpStream::connect(web).await.expect("connect");
        let r = exchange(tcp, &host, "GET", "/healthz", &[], None).await;
        assert_eq!(r.status, status, "Host: {host}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "scrape-token-0123456789";
    let config = Config {
        metrics_token: Some(Secret(token.into())),
        ..web_config(dir.path())
    };
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");
    let good = format!("Bearer {token}");
    let longer = format!("Bearer {token}x");
    for (auth, status) in [
        (None, 401),
        (Some("Bearer "), 401),
        (Some("Bearer wrong"), 401),
        (Some(longer.as_str()), 401),
        (Some(token), 401),
        (Some(good.as_str()), 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = http(web, "GET", "/metrics", &headers, None).await;
        assert_eq!(r.status, status, "Authorization: {auth:?}");
        assert_eq!(
            r.body.contains("natter_connections"),
            status == 200,
            "{auth:?}"
        );
        if status == 401 {
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"natter metrics\"")
            );
        }
    }
    // Other routes do not ask for it.
    assert_eq!(http(web, "GET", "/healthz", &[], None).await.status, 200);
    srv.stop().await;
}

/// Reads IRC lines until one contains `needle`.
async fn irc_until(c: &mut LineClient, needle: &str) -> Vec<String> {
    c.until_line(&format!("containing {needle:?}"), |l| l.contains(needle))
        .await
}

#[tokio::test]
async fn console_and_metrics_tell_the_transports_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web_irc(web_config(dir.path())).await;
    let (web, irc) = (srv.web.expect("web"), srv.irc.expect("irc"));

    // bob over natter's own protocol; alice over IRC (PASS) and in a browser.
    let mut bob = register(srv.addr, "bob").await;
    account(srv.addr, "alice").await;
    let mut alice_irc = LineClient::connect(irc, "\r\n").await;
    alice_irc.send(&format!("PASS :alice:{PASSWORD}")).await;
    alice_irc.send("NICK alice").await;
    alice_irc.send("USER alice 0 * :alice").await;
    irc_until(&mut alice_irc, " 001 ").await;
    alice_irc.send("JOIN #lobby").await;
    irc_until(&mut alice_irc, " 366 ").await;
    let mut alice_ws = ws_connect(&format!("ws://{web}/ws"), &[])
        .await
        .expect("upgrade");
    ws_send(
        &mut alice_ws,
        serde_json::json!({"type":"auth","id":1,"user":"alice","password":PASSWORD}),
    )
    .await;
    ws_frame_until(&mut alice_ws, |f| matches!(f, ServerFrame::AuthOk { .. })).await;
    // A message from IRC reaches bob, counted as sent over IRC.
    alice_irc.send("PRIVMSG #lobby :hi from irc").await;
    until(
        &mut bob,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "hi from irc"),
    )
    .await;

    let console = Console::login(web, ADMIN).await;
    let o = console.get("/api/admin/overview").await;
    assert_eq!(o.status, 200, "{o:?}");
    let o = o.json();
    assert_eq!(o["sessions"], 3, "{o}");
    assert_eq!(
        o["online"],
        serde_json::json!([
            {"user": "alice", "sessions": 2, "transports": {"irc": 1, "websocket": 1}},
            {"user": "bob", "sessions": 1, "transports": {"natter": 1}},
        ]),
        "{o}"
    );

    let m = http(web, "GET", "/metrics", &[], None).await;
    assert_eq!(m.status, 200);
    for line in [
        "natter_connections{transport=\"websocket\"} 1",
        "natter_connections{transport=\"irc\"} 1",
        "natter_sessions{transport=\"natter\"} 1",
        "natter_sessions{transport=\"websocket\"} 1",
        "natter_sessions{transport=\"irc\"} 1",
        "natter_logins_total{result=\"ok\",transport=\"natter\"} 2",
        "natter_logins_total{result=\"ok\",transport=\"websocket\"} 1",
        "natter_logins_total{result=\"ok\",transport=\"irc\"} 1",
        "natter_messages_total{kind=\"public\",transport=\"irc\"} 1",
        "natter_messages_total{kind=\"public\",transport=\"natter\"} 0",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            m.body
        );
    }

    // When the IRC session ends, alice is left with her browser.
    alice_irc.send("QUIT :bye").await;
    let mut left = serde_json::Value::Null;
    for _ in 0..200 {
        left = console.get("/api/admin/overview").await.json();
        if left["online"][0]["sessions"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        left["online"][0],
        serde_json::json!({"user": "alice", "sessions": 1, "transports": {"websocket": 1}}),
        "{left}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn browser_terminal_and_irc_users_see_each_other_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web_irc(web_config(dir.path())).await;
    let (web, irc) = (srv.web.expect("web"), srv.irc.expect("irc"));
    // carol (IRC) has an account, and gets a private message while offline.
    account(srv.addr, "carol").await;
    let mut term = register(srv.addr, "term").await;
    send(
        &mut term,
        ClientFrame::Private {
            id: None,
            to: "carol".into(),
            text: "for later".into(),
            client_id: None,
        },
    )
    .await;
    until(&mut term, |f| matches!(f, ServerFrame::Queued { .. })).await;

    // web: the browser chat's protocol over WebSocket.
    let mut web_user = ws_connect(&format!("ws://{web}/ws"), &[])
        .await
        .expect("upgrade");
    ws_send(
        &mut web_user,
        serde_json::json!({"type":"auth","user":"webby","password":PASSWORD,"register":true}),
    )
    .await;
    ws_frame_until(&mut web_user, |f| matches!(f, ServerFrame::AuthOk { .. })).await;

    // carol logs in over IRC: the offline message arrives, then she joins the lobby.
    let mut carol = LineClient::connect(irc, "\r\n").await;
    carol.send(&format!("PASS :carol:{PASSWORD}")).await;
    carol.send("NICK carol").await;
    carol.send("USER carol 0 * :carol").await;
    irc_until(&mut carol, ":term!term@natter PRIVMSG carol :for later").await;
    carol.send("JOIN #lobby").await;
    let names = irc_until(&mut carol, " 366 carol #lobby ").await;
    assert!(
        names
            .iter()
            .any(|l| l.contains(" 353 ") && l.contains("term") && l.contains("webby")),
        "{names:#?}"
    );
    // Presence reaches the others.
    until(&mut term, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Join, .. } if user == "carol")
    })
    .await;
    ws_frame_until(&mut web_user, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Join, .. } if user == "carol")
    })
    .await;

    // Room messages, every direction.
    carol.send("PRIVMSG #lobby :from irc").await;
    until(
        &mut term,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "from irc"),
    )
    .await;
    ws_frame_until(&mut web_user, |f| {
        matches!(f, ServerFrame::Public { text, from, .. } if text == "from irc" && from == "carol")
    })
    .await;
    ws_send(
        &mut web_user,
        serde_json::json!({"type":"public","room":"lobby","text":"from the browser"}),
    )
    .await;
    irc_until(
        &mut carol,
        ":webby!webby@natter PRIVMSG #lobby :from the browser",
    )
    .await;
    send(
        &mut term,
        ClientFrame::Public {
            id: None,
            room: None,
            text: "from the terminal".into(),
            client_id: None,
        },
    )
    .await;
    irc_until(
        &mut carol,
        ":term!term@natter PRIVMSG #lobby :from the terminal",
    )
    .await;

    // Private messages, both ways between IRC and the browser.
    carol.send("PRIVMSG webby :psst").await;
    ws_frame_until(&mut web_user, |f| {
        matches!(f, ServerFrame::Private { text, from, .. } if text == "psst" && from == "carol")
    })
    .await;
    ws_send(
        &mut web_user,
        serde_json::json!({"type":"private","to":"carol","text":"psst back"}),
    )
    .await;
    irc_until(&mut carol, ":webby!webby@natter PRIVMSG carol :psst back").await;

    // Leaving: the browser and the terminal see carol go.
    carol.send("QUIT :bye all").await;
    let left = ws_frame_until(&mut web_user, is_leave).await;
    assert!(
        matches!(&left, ServerFrame::Presence { user, message: Some(m), .. } if user == "carol" && m == "bye all"),
        "{left:?}"
    );
}
