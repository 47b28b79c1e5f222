//! The web interface over real sockets: every HTTP route, the console's login, CSRF and
//! origin rules, the operator actions' effect on chat clients and the live monitor.
//! Browser chat, HTTPS, host names and transports are in `tests/web_chat.rs`.

mod common;
#[path = "support/console.rs"]
mod console;
#[path = "support/web_client.rs"]
mod web_client;

use std::time::Duration;

use common::*;
use natter_proto::{ClientFrame, ErrorCode, ServerFrame};

use console::*;
use web_client::*;

#[tokio::test]
async fn pages_health_metrics_and_security_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");

    let r = http(web, "GET", "/healthz", &[], None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    let r = http(web, "GET", "/", &[], None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/chat")));
    for (path, needle) in [
        ("/chat", "/static/chat.js"),
        ("/console", "/static/console.js"),
    ] {
        let r = http(web, "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html"))
        );
        assert!(r.body.contains(needle), "{path} loads {needle}");
        assert!(
            !r.body.contains("http://") && !r.body.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
    for (path, kind) in [
        ("/static/chat.js", "text/javascript"),
        ("/static/console.js", "text/javascript"),
        ("/static/natter.css", "text/css"),
    ] {
        let r = http(web, "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with(kind)),
            "{path}"
        );
        assert!(r.body.len() > 100, "{path} has content");
    }
    for path in ["/static/../Cargo.toml", "/static/secret.js", "/nope"] {
        assert_eq!(
            http(web, "GET", path, &[], None).await.status,
            404,
            "{path}"
        );
    }

    // Chat traffic shows up in the metrics.
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "bob"),
    )
    .await;
    send(&mut alice, public("hello")).await;
    until(&mut bob, |f| matches!(f, ServerFrame::Public { .. })).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send(b"{\"type\":\"bogus\"}\n").await;
    let e = raw.frame().await;
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
    let m = http(web, "GET", "/metrics", &[], None).await;
    assert_eq!(m.status, 200);
    for line in [
        "natter_connections{transport=\"natter\"} 3",
        "natter_connections{transport=\"websocket\"} 0",
        "natter_connections{transport=\"irc\"} 0",
        "natter_sessions{transport=\"natter\"} 2",
        "natter_sessions{transport=\"irc\"} 0",
        "natter_messages_total{kind=\"public\",transport=\"natter\"} 1",
        "natter_messages_total{kind=\"public\",transport=\"irc\"} 0",
        "natter_deliveries_total{kind=\"public\"} 2",
        "natter_logins_total{result=\"ok\",transport=\"natter\"} 2",
        "natter_logins_total{result=\"failed\",transport=\"natter\"} 0",
        "natter_frames_rejected_total{reason=\"bad_frame\",transport=\"natter\"} 1",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            m.body
        );
    }
    assert!(
        m.body.contains("natter_fanout_seconds_bucket"),
        "{}",
        m.body
    );
    srv.stop().await;
}

#[tokio::test]
async fn operator_login_session_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");

    let wrong = http(
        web,
        "POST",
        "/api/admin/login",
        &[],
        Some(r#"{"password":"guess"}"#),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "wrong password");
    assert!(wrong.header("set-cookie").is_none());
    let bad = http(web, "POST", "/api/admin/login", &[], Some("{not json")).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad request body"))
    );
    let huge = format!(r#"{{"password":"{}"}}"#, "x".repeat(64 * 1024));
    let big = http(web, "POST", "/api/admin/login", &[], Some(&huge)).await;
    assert_eq!(big.status, 413, "bodies are limited before parsing");
    let foreign = http(
        web,
        "POST",
        "/api/admin/login",
        &[("Origin", "http://evil.example")],
        Some(&serde_json::json!({ "password": ADMIN }).to_string()),
    )
    .await;
    assert_eq!(foreign.status, 403);

    let body = serde_json::json!({ "password": ADMIN }).to_string();
    let ok = http(web, "POST", "/api/admin/login", &[], Some(&body)).await;
    assert_eq!(ok.status, 200);
    let set = ok.header("set-cookie").expect("cookie").to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    let cookie = set.split(';').next().expect("pair").to_string();
    let csrf = ok.json()["csrf"].as_str().expect("csrf").to_string();

    let s = http(
        web,
        "GET",
        "/api/admin/session",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(
        (s.status, s.json()["csrf"].as_str()),
        (200, Some(csrf.as_str()))
    );
    for path in [
        "/api/admin/session",
        "/api/admin/overview",
        "/api/admin/audit",
    ] {
        let r = http(web, "GET", path, &[], None).await;
        assert_eq!(r.status, 401, "{path} without a session");
        assert_eq!(r.json()["error"], "not logged in");
        let r = http(web, "GET", path, &[("Cookie", "natter_admin=forged")], None).await;
        assert_eq!(r.status, 401, "{path} with a forged session");
    }
    let o = http(
        web,
        "GET",
        "/api/admin/overview",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(o.status, 200);
    assert_eq!(o.json()["sessions"], 0);

    // Logging out ends the session for good.
    let origin = format!("http://{web}");
    let out = http(
        web,
        "POST",
        "/api/admin/logout",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &origin),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(out.status, 200);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let s = http(
        web,
        "GET",
        "/api/admin/session",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(s.status, 401);
    srv.stop().await;
}

#[tokio::test]
async fn failed_operator_logins_are_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = web_config(dir.path());
    config.logins.base_delay = Duration::from_millis(50);
    config.logins.free_per_ip = 0;
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");
    let mut refused = None;
    for attempt in 0..12 {
        let r = http(
            web,
            "POST",
            "/api/admin/login",
            &[],
            Some(r#"{"password":"guess"}"#),
        )
        .await;
        if r.status == 429 {
            refused = Some((attempt, r));
            break;
        }
        assert_eq!(r.status, 401);
    }
    let (attempt, r) = refused.expect("throttled within 12 attempts");
    assert!(attempt >= 2, "a typo is not punished at once");
    assert!(r.json()["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    assert!(r.header("retry-after").is_some());
    // Even the right password waits out the delay.
    let body = serde_json::json!({ "password": ADMIN }).to_string();
    let r = http(web, "POST", "/api/admin/login", &[], Some(&body)).await;
    assert_eq!(r.status, 429);
    // The delays belong to the guessing address: the operator elsewhere still gets in.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind another loopback address");
    let tcp = socket.connect(web).await.expect("connect from 127.0.0.2");
    let r = exchange(
        tcp,
        &web.to_string(),
        "POST",
        "/api/admin/login",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn actions_need_csrf_token_and_same_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");
    let console = Console::login(web, ADMIN).await;
    let mut alice = register(srv.addr, "alice").await;
    let body = r#"{"user":"alice"}"#;
    let origin = console.origin();
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        ("no session", vec![("X-CSRF-Token", &console.csrf)]),
        ("no token", vec![("Cookie", &console.cookie)]),
        (
            "wrong token",
            vec![("Cookie", &console.cookie), ("X-CSRF-Token", "0000")],
        ),
        (
            "foreign origin",
            vec![
                ("Cookie", &console.cookie),
                ("X-CSRF-Token", &console.csrf),
                ("Origin", "http://evil.example"),
            ],
        ),
    ];
    for (what, headers) in &cases {
        let r = http(web, "POST", "/api/admin/kick", headers, Some(body)).await;
        assert!(matches!(r.status, 401 | 403), "{what}: {r:?}");
    }
    // Nothing happened to alice.
    send(&mut alice, ClientFrame::Ping { id: None }).await;
    until(&mut alice, |f| matches!(f, ServerFrame::Pong { .. })).await;
    let r = http(
        web,
        "POST",
        "/api/admin/kick",
        &[
            ("Cookie", &console.cookie),
            ("X-CSRF-Token", &console.csrf),
            ("Origin", &origin),
        ],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["message"], "kicked alice (1 session)");
    let r = console.post("/api/admin/nope", serde_json::json!({})).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("no such action"))
    );
    srv.stop().await;
}

#[tokio::test]
async fn operator_actions_reach_chat_clients_and_are_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let console = Console::login(srv.web.expect("web"), ADMIN).await;
    let mut alice = register(srv.addr, "alice").await;
    let mut bob = register(srv.addr, "bob").await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "bob"),
    )
    .await;

    // Notice to everyone, then to a room only bob is in.
    let r = console
        .post(
            "/api/admin/notice",
            serde_json::json!({ "text": "maintenance at 5" }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for c in [&mut alice, &mut bob] {
        until(
            c,
            |f| matches!(f, ServerFrame::System { text } if text == "[notice] maintenance at 5"),
        )
        .await;
    }
    send(
        &mut bob,
        ClientFrame::Join {
            id: None,
            room: "rust".into(),
        },
    )
    .await;
    until(&mut bob, |f| {
        matches!(f, ServerFrame::History { last: true, .. })
    })
    .await;
    let r = console
        .post(
            "/api/admin/notice",
            serde_json::json!({ "text": "rust only", "room": "#rust" }),
        )
        .await;
    assert_eq!(r.json()["message"], "notice sent to #rust (1 session)");
    until(
        &mut bob,
        |f| matches!(f, ServerFrame::System { text } if text == "[notice] rust only"),
    )
    .await;
    let r = console
        .post(
            "/api/admin/notice",
            serde_json::json!({ "text": "x", "room": "empty" }),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = console
        .post("/api/admin/notice", serde_json::json!({ "text": "  " }))
        .await;
    assert_eq!(r.status, 400);

    // Mute: told at once, messages refused, then lifted.
    let r = console
        .post(
            "/api/admin/mute",
            serde_json::json!({ "user": "ALICE", "seconds": 60 }),
        )
        .await;
    assert_eq!(r.json()["message"], "muted alice for 60 s");
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::System { text } if text.contains("muted you for 60 s")),
    )
    .await;
    send(&mut alice, public("hi")).await;
    let e = until(&mut alice, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            e,
            ServerFrame::Error {
                code: ErrorCode::Muted,
                retry_after_ms: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    let r = console
        .post(
            "/api/admin/mute",
            serde_json::json!({ "user": "alice", "seconds": 0 }),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = console
        .post("/api/admin/unmute", serde_json::json!({ "user": "alice" }))
        .await;
    assert_eq!(r.json()["message"], "unmuted alice");
    send(&mut alice, public("back")).await;
    until(
        &mut bob,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "back"),
    )
    .await;

    // Ban: the session ends, logins are refused until unbanned.
    let r = console
        .post(
            "/api/admin/ban",
            serde_json::json!({ "user": "bob", "reason": "spam" }),
        )
        .await;
    assert_eq!(r.json()["message"], "banned bob; 1 session disconnected");
    let last = until_closed(&mut bob).await;
    assert!(
        last.iter().any(
            |f| matches!(f, ServerFrame::Bye { reason } if reason == "banned by an operator: spam")
        ),
        "{last:?}"
    );
    let mut again = connect(srv.addr).await;
    send(
        &mut again,
        ClientFrame::Auth {
            id: None,
            user: "bob".into(),
            password: PASSWORD.into(),
            register: false,
        },
    )
    .await;
    let e = until(&mut again, |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            e,
            ServerFrame::Error {
                code: ErrorCode::Banned,
                ..
            }
        ),
        "{e:?}"
    );
    let r = console
        .post("/api/admin/ban", serde_json::json!({ "user": "nobody" }))
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("no user named 'nobody'"))
    );
    let r = console
        .post("/api/admin/unban", serde_json::json!({ "user": "bob" }))
        .await;
    assert_eq!(r.json()["message"], "unbanned bob");
    let _bob = login(srv.addr, "bob").await;

    // Kick: every session of the user ends with the reason.
    let r = console
        .post(
            "/api/admin/kick",
            serde_json::json!({ "user": "alice", "reason": "cool off" }),
        )
        .await;
    assert_eq!(r.status, 200);
    let last = until_closed(&mut alice).await;
    assert!(
        last.iter().any(|f| matches!(f, ServerFrame::Bye { reason } if reason == "kicked by an operator: cool off")),
        "{last:?}"
    );
    let r = console
        .post("/api/admin/kick", serde_json::json!({ "user": "alice" }))
        .await;
    assert_eq!(r.status, 404, "alice is gone: {r:?}");
    let r = console
        .post("/api/admin/kick", serde_json::json!({ "nobody": 1 }))
        .await;
    assert_eq!(r.status, 400);

    // The audit table lists every action, newest first.
    let audit = console.get("/api/admin/audit").await.json();
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("kick", "alice"),
            ("unban", "bob"),
            ("ban", "bob"),
            ("unmute", "alice"),
            ("mute", "alice"),
            ("notice", "#rust"),
            ("notice", "everyone"),
        ]
    );
    assert!(audit["entries"][0]["operator"] == "operator");
    srv.stop().await;
    // The system log has them too.
    let log = std::fs::read_to_string(dir.path().join("logs/system_events.log")).expect("log");
    for needle in [
        " kick user=alice operator=operator",
        " ban user=bob",
        " notice target=everyone",
    ] {
        assert!(log.contains(needle), "{needle:?} missing in\n{log}");
    }
}

#[tokio::test]
async fn monitor_needs_session_and_origin_and_streams_events_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(web_config(dir.path())).await;
    let web = srv.web.expect("web");
    let console = Console::login(web, ADMIN).await;
    let url = format!("ws://{web}/api/admin/monitor");
    let origin = console.origin();

    assert_eq!(
        ws_connect(&url, &[("Origin", &origin)]).await.err(),
        Some(401)
    );
    assert_eq!(
        ws_connect(
            &url,
            &[
                ("Origin", "http://evil.example"),
                ("Cookie", &console.cookie)
            ]
        )
        .await
        .err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(&url, &[("Cookie", &console.cookie)]).await.err(),
        Some(403),
        "no Origin"
    );
    let mut feed = ws_connect(&url, &[("Origin", &origin), ("Cookie", &console.cookie)])
        .await
        .expect("monitor opens");
    let stats = ws_json(&mut feed).await;
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["sessions"], 0);

    let _ = http(
        web,
        "POST",
        "/api/admin/login",
        &[],
        Some(r#"{"password":"nope"}"#),
    )
    .await;
    let mut alice = register(srv.addr, "alice").await;
    send(&mut alice, public("live!")).await;
    let mut bad = connect(srv.addr).await;
    send(
        &mut bad,
        ClientFrame::Auth {
            id: None,
            user: "alice".into(),
            password: "wrong password".into(),
            register: false,
        },
    )
    .await;
    let ev = ws_until(&mut feed, |v| v["kind"] == "operator_login_failed").await;
    assert!(
        ev["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("addr=127.0.0.1:"))
    );
    let ev = ws_until(&mut feed, |v| v["kind"] == "register").await;
    assert_eq!(ev["user"], "alice");
    let ev = ws_until(&mut feed, |v| v["kind"] == "join").await;
    assert_eq!(
        (ev["user"].as_str(), ev["room"].as_str()),
        (Some("alice"), Some("lobby"))
    );
    let ev = ws_until(&mut feed, |v| v["kind"] == "public").await;
    assert_eq!(
        (
            ev["user"].as_str(),
            ev["room"].as_str(),
            ev["text"].as_str()
        ),
        (Some("alice"), Some("lobby"), Some("live!"))
    );
    assert!(ev["ts"].as_u64().is_some_and(|t| t > 0));
    let ev = ws_until(&mut feed, |v| v["kind"] == "login_failed").await;
    assert_eq!(ev["user"], "alice");
    drop(alice);
    let ev = ws_until(&mut feed, |v| v["kind"] == "disconnect").await;
    assert!(
        ev["detail"]
            .as_str()
            .is_some_and(|d| d.contains("reason=connection lost")),
        "{ev}"
    );
    let stats = ws_until(&mut feed, |v| v["type"] == "stats").await;
    assert_eq!(stats["messages_per_minute"], 1);
    srv.stop().await;
}
