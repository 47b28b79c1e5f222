//! The web interface over real sockets: every HTTP route, the console's login, CSRF and
//! origin rules, the operator actions' effect on chat clients, the live monitor and
//! browser chat over `/ws` (tokio-tungstenite against the server on 127.0.0.1:0).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use natter_proto::{ClientFrame, ErrorCode, MAX_LINE, PresenceEvent, ServerFrame, decode_server};
use natter_server::Config;
use natter_server::config::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

const ADMIN: &str = "operator secret 42";

/// A public message to the lobby.
fn public(text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: None,
        text: text.into(),
        client_id: None,
    }
}

fn web_config(dir: &std::path::Path) -> Config {
    Config {
        admin_password: Some(Secret(ADMIN.into())),
        ..plain_config(dir)
    }
}

/// An HTTP response, read to the end.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one HTTP/1.1 request over `stream` and reads the whole response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn http(
    web: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let tcp = TcpStream::connect(web).await.expect("connect web");
    exchange(tcp, &web.to_string(), method, path, headers, body).await
}

/// A logged-in console: the cookie header value and the CSRF token.
struct Console {
    web: SocketAddr,
    cookie: String,
    csrf: String,
}

impl Console {
    async fn login(web: SocketAddr) -> Console {
        let body = serde_json::json!({ "password": ADMIN }).to_string();
        let r = http(web, "POST", "/api/admin/login", &[], Some(&body)).await;
        assert_eq!(r.status, 200, "{r:?}");
        let set = r.header("set-cookie").expect("cookie set");
        let cookie = set.split(';').next().expect("pair").to_string();
        let csrf = r.json()["csrf"].as_str().expect("csrf").to_string();
        Console { web, cookie, csrf }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.web)
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Resp {
        let origin = self.origin();
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Origin", origin.as_str()),
        ];
        http(self.web, "POST", path, &headers, Some(&body.to_string())).await
    }

    async fn get(&self, path: &str) -> Resp {
        http(self.web, "GET", path, &[("Cookie", &self.cookie)], None).await
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with extra request headers; `Err` carries the HTTP status of a
/// refused upgrade.
async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = url.into_client_request().expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade answered in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// The next text message, as JSON.
async fn ws_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        match timeout(WAIT, ws.next()).await.expect("message in time") {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).expect("JSON text message");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads JSON messages until one matches (bounded by [`WAIT`] each and 500 messages).
async fn ws_until(ws: &mut Ws, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..500 {
        let v = ws_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
    panic!("no matching message in 500");
}

/// The next chat frame on a browser-chat WebSocket.
async fn ws_frame(ws: &mut Ws) -> ServerFrame {
    let v = ws_json(ws).await;
    decode_server(v.to_string().as_bytes()).expect("a protocol frame")
}

async fn ws_frame_until(ws: &mut Ws, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    for _ in 0..500 {
        let f = ws_frame(ws).await;
        if pred(&f) {
            return f;
        }
    }
    panic!("no matching frame in 500");
}

async fn ws_send(ws: &mut Ws, frame: serde_json::Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
}

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
    let console = Console::login(web).await;
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
    let console = Console::login(srv.web.expect("web")).await;
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
    let console = Console::login(web).await;
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
    Console::login(web).await;

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

    let console = Console::login(web).await;
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
