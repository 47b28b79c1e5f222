//! Helpers of the web interface tests (`tests/web.rs`, `tests/web_chat.rs`): HTTP
//! exchanges, a logged-in console, WebSocket clients.
#![allow(dead_code)]

use crate::common::*;
use futures::{SinkExt, StreamExt};
use natter_proto::{ClientFrame, ServerFrame, decode_server};
use natter_server::Config;
use natter_server::config::Secret;
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
