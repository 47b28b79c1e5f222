//! The operator console of a node, over plain HTTP on loopback (docs/WEB.md): log in with
//! the operator password, call the `/api/admin/*` endpoints with the session cookie and
//! CSRF token, and read the live monitor (a WebSocket) with bounded waits.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

/// Upper bound for one HTTP exchange or one monitor message.
const WAIT: Duration = Duration::from_secs(10);

/// An HTTP response, read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one HTTP/1.1 request over `stream` and reads the whole response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
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

/// One HTTP/1.1 request to `web` (`Connection: close`), and its whole response.
pub async fn http(
    web: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let tcp = timeout(WAIT, TcpStream::connect(web))
        .await
        .expect("connect in time")
        .expect("connect to the web port");
    exchange(tcp, &web.to_string(), method, path, headers, body).await
}

/// A logged-in console: the cookie (`name=value`) and the CSRF token.
pub struct Console {
    pub web: SocketAddr,
    pub cookie: String,
    pub csrf: String,
}

/// The live monitor's WebSocket.
pub type Monitor = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

impl Console {
    /// Logs in to the console at `web` with the operator `password`.
    pub async fn login(web: SocketAddr, password: &str) -> Console {
        let body = serde_json::json!({ "password": password }).to_string();
        let r = http(web, "POST", "/api/admin/login", &[], Some(&body)).await;
        assert_eq!(r.status, 200, "console login at {web}: {r:?}");
        let set = r.header("set-cookie").expect("a session cookie");
        let cookie = set.split(';').next().expect("name=value").to_string();
        let csrf = r.json()["csrf"].as_str().expect("a CSRF token").to_string();
        Console { web, cookie, csrf }
    }

    /// The page's own origin, as a browser would send it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.web)
    }

    /// A state-changing request: cookie, CSRF token and same origin.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> Resp {
        let origin = self.origin();
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Origin", origin.as_str()),
        ];
        http(self.web, "POST", path, &headers, Some(&body.to_string())).await
    }

    /// Like [`Console::post`], failing unless the answer is `200 {"ok": true}`; returns
    /// its `message`.
    pub async fn act(&self, path: &str, body: serde_json::Value) -> String {
        let r = self.post(path, body.clone()).await;
        assert_eq!(r.status, 200, "POST {path} {body}: {r:?}");
        assert_eq!(r.json()["ok"], true, "POST {path} {body}: {r:?}");
        r.json()["message"].as_str().unwrap_or_default().to_string()
    }

    pub async fn get(&self, path: &str) -> Resp {
        http(self.web, "GET", path, &[("Cookie", &self.cookie)], None).await
    }

    /// `GET /api/admin/overview`, as JSON.
    pub async fn overview(&self) -> serde_json::Value {
        let r = self.get("/api/admin/overview").await;
        assert_eq!(r.status, 200, "overview: {r:?}");
        r.json()
    }

    /// Opens the live monitor.
    pub async fn monitor(&self) -> Monitor {
        let url = format!("ws://{}/api/admin/monitor", self.web);
        let mut req = url.as_str().into_client_request().expect("request");
        for (k, v) in [("Origin", self.origin()), ("Cookie", self.cookie.clone())] {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("the monitor opens in time")
            .expect("the monitor opens");
        ws
    }
}

/// Reads monitor messages until one matches `pred`, within `limit` in all (and at most
/// 2000 messages); `None` when none did.
pub async fn monitor_until(
    ws: &mut Monitor,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..2000 {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value =
                    serde_json::from_str(t.as_str()).expect("JSON text message");
                if pred(&v) {
                    return Some(v);
                }
            }
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => {
                panic!("the monitor ended while a message was expected")
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    None
}
