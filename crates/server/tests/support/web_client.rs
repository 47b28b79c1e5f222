//! Helpers of the web interface tests (`tests/web.rs`, `tests/web_chat.rs`): HTTP
//! exchanges, a logged-in console, WebSocket clients.
#![allow(dead_code)]

use std::net::SocketAddr;

use crate::common::*;
use futures::{SinkExt, StreamExt};
use natter_proto::{ClientFrame, ServerFrame, decode_server};
use natter_server::Config;
use natter_server::config::Secret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

pub const ADMIN: &str = "operator secret 42";

/// A public message to the lobby.
pub fn public(text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: None,
        text: text.into(),
        client_id: None,
    }
}

pub fn web_config(dir: &std::path::Path) -> Config {
    Config {
        admin_password: Some(Secret(ADMIN.into())),
        ..plain_config(dir)
    }
}

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

pub async fn http(
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
pub struct Console {
    pub web: SocketAddr,
    pub cookie: String,
    pub csrf: String,
}

impl Console {
    pub async fn login(web: SocketAddr) -> Console {
        let body = serde_json::json!({ "password": ADMIN }).to_string();
        let r = http(web, "POST", "/api/admin/login", &[], Some(&body)).await;
        assert_eq!(r.status, 200, "{r:?}");
        let set = r.header("set-cookie").expect("cookie set");
        let cookie = set.split(';').next().expect("pair").to_string();
        let csrf = r.json()["csrf"].as_str().expect("csrf").to_string();
        Console { web, cookie, csrf }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.web)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Resp {
        let origin = self.origin();
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Origin", origin.as_str()),
        ];
        http(self.web, "POST", path, &headers, Some(&body.to_string())).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        http(self.web, "GET", path, &[("Cookie", &self.cookie)], None).await
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with extra request headers; `Err` carries the HTTP status of a
/// refused upgrade.
pub async fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
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
pub async fn ws_json(ws: &mut Ws) -> serde_json::Value {
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
pub async fn ws_until(ws: &mut Ws, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..500 {
        let v = ws_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
    panic!("no matching message in 500");
}

/// The next chat frame on a browser-chat WebSocket.
pub async fn ws_frame(ws: &mut Ws) -> ServerFrame {
    let v = ws_json(ws).await;
    decode_server(v.to_string().as_bytes()).expect("a protocol frame")
}

pub async fn ws_frame_until(ws: &mut Ws, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    for _ in 0..500 {
        let f = ws_frame(ws).await;
        if pred(&f) {
            return f;
        }
    }
    panic!("no matching frame in 500");
}

pub async fn ws_send(ws: &mut Ws, frame: serde_json::Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
}
