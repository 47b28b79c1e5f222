//! Browser chat: the chat protocol over a WebSocket at `/ws`.
//!
//! Each WebSocket text message carries one JSON frame, both ways; the session logic is
//! the same as for TCP ([`crate::session::run`]), only the framing differs. The
//! connection counts against the same connection limits as TCP clients.

use std::net::SocketAddr;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use natter_proto::MAX_LINE;
use tokio::time::Instant;

use super::{OriginCheck, WebState, origin};
use crate::codec::JsonLines;
use crate::hub::SessionHandle;
use crate::listener::ConnSlot;
use crate::session::{self, InputError};
use crate::transport;
use crate::transport_kind::TransportKind;

/// `GET /ws`: upgrades to a chat session unless the origin is foreign or the
/// connection limits are reached.
pub async fn upgrade(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if origin(&headers, st.https) == OriginCheck::Foreign {
        return (StatusCode::FORBIDDEN, "cross-site WebSocket refused\n").into_response();
    }
    let cfg = &st.shared.config;
    let Some(slot) = st.shared.conns.try_admit(
        Some(TransportKind::WebSocket),
        peer.ip(),
        cfg.max_connections,
        cfg.max_connections_per_ip,
    ) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later\n",
        )
            .into_response();
    };
    let accepted = Instant::now();
    // Messages a little over the line limit still arrive, to be answered with
    // `line_too_long`; anything larger breaks the connection before it is buffered.
    ws.max_message_size(2 * MAX_LINE)
        .max_frame_size(2 * MAX_LINE)
        .on_upgrade(move |socket| {
            let tracker = st.tracker.clone();
            tracker.track_future(serve(socket, peer, accepted, st, slot))
        })
}

/// Runs one browser chat session.
async fn serve(
    socket: WebSocket,
    peer: SocketAddr,
    accepted: Instant,
    st: WebState,
    _slot: ConnSlot,
) {
    let (sink, stream) = socket.split();
    let lines = Box::pin(
        stream
            .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
            .filter_map(|m| {
                std::future::ready(match m {
                    Ok(Message::Text(text)) if text.len() > MAX_LINE => {
                        Some(Err(InputError::TooLong { max: MAX_LINE }))
                    }
                    Ok(Message::Text(text)) => Some(Ok::<_, InputError>(Bytes::from(text))),
                    Ok(Message::Binary(_)) => Some(Err(InputError::Unsupported(
                        "binary WebSocket messages are not supported; send each frame as JSON text"
                            .into(),
                    ))),
                    // Pings are answered by the WebSocket layer itself.
                    Ok(_) => None,
                    Err(e) => Some(Err(InputError::Io(e.to_string()))),
                })
            }),
    );
    let mut frames = transport::decoded(lines, JsonLines);
    let handle = transport::channel(&st.shared, st.stop.clone(), TransportKind::WebSocket);
    let writer = tokio::spawn(write_loop(sink, handle.clone()));
    let grace = st.shared.config.shutdown_grace;
    session::run(&mut frames, handle, peer, accepted, st.shared.clone()).await;
    let abort = writer.abort_handle();
    if tokio::time::timeout(grace, writer).await.is_err() {
        abort.abort();
    }
}

/// Sends queued frames as text messages, one per line, flushing once per batch, then
/// closes.
async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    handle: SessionHandle,
) {
    while let Some(mut chunk) = handle.outbox.take().await {
        let result = async {
            // The outbox holds whole lines; each becomes one WebSocket message.
            while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
                sink.feed(text_message(chunk.split_to(end + 1))).await?;
            }
            sink.flush().await
        }
        .await;
        if let Err(e) = result {
            handle.close(format!("write failed: {e}"));
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    let _ = sink.close().await;
}

/// One encoded line (JSON plus newline) as a WebSocket text message.
fn text_message(mut line: Bytes) -> Message {
    if line.last() == Some(&b'\n') {
        line.truncate(line.len() - 1);
    }
    // The server's own JSON is always UTF-8.
    match Utf8Bytes::try_from(line) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}
