//! The TCP transports, plain and TLS: JSON lines over a socket whose outbox is direct
//! (the server's flusher writes it, see [`crate::outbox`]), so a connection needs no
//! writer task.

use std::net::SocketAddr;
use std::sync::Arc;

use natter_proto::{LineCodec, MAX_LINE};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::decoded;
use crate::Shared;
use crate::codec::{JsonLines, json_lines};
use crate::hub::SessionHandle;
use crate::outbox::{Outbox, Wire};
use crate::session;
use crate::tls::{TlsConn, TlsReader};
use crate::transport_kind::TransportKind;

/// How long a closing connection keeps reading (and discarding) the peer's input.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// How much input a closing connection discards at most.
const LINGER_BYTES: usize = 256 * 1024;

/// Initial read buffer of a connection; it grows when a peer sends more at once, so an
/// idle connection stays small.
const READ_BUFFER: usize = 128;

/// A handle on a direct outbox writing to `wire`, in natter's JSON format (transport
/// `natter`).
fn direct(shared: &Shared, shutdown: CancellationToken, wire: Wire) -> SessionHandle {
    let outbox = Outbox::direct(
        shared.config.session_queue,
        wire,
        shared.flusher.clone(),
        shutdown.clone(),
    );
    SessionHandle::new(
        Arc::new(outbox),
        shutdown,
        json_lines(),
        TransportKind::Natter,
    )
}

/// Serves one plain TCP connection until the peer leaves, misbehaves, or `shutdown`
/// fires. Its outbox is direct: the server's flusher writes it (see [`crate::outbox`]),
/// so the connection needs no writer task.
///
/// `accepted` is when the TCP connection was accepted: the login deadline counts from
/// there.
pub async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let (rd, wr) = stream.into_split();
    let handle = direct(&shared, shutdown, Wire::Tcp(wr));
    let lines = FramedRead::with_capacity(rd, LineCodec::new(MAX_LINE), READ_BUFFER);
    if let Some(lines) = serve_direct(lines, handle, peer, accepted, shared).await {
        linger(lines.into_inner()).await;
    }
}

/// Serves one TLS connection whose handshake is done (`conn` is its TLS state) like
/// [`serve_tcp`]: the flusher encrypts and writes its outbox, and the session reads
/// through a [`TlsReader`].
///
/// `accepted` is when the TCP connection was accepted: the login deadline counts from
/// there, so the TLS handshake and the login share one budget.
pub async fn serve_tls(
    stream: TcpStream,
    conn: rustls::ServerConnection,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let (rd, wr) = stream.into_split();
    let tls = TlsConn::new(conn);
    let handle = direct(&shared, shutdown, Wire::Tls(wr, tls.clone()));
    if tls.lock().is_ok_and(|c| c.wants_write()) {
        // Records the handshake left unsent (session tickets).
        handle.outbox.kick();
    }
    let out = handle.outbox.clone();
    let rd = TlsReader::new(rd, tls, Box::new(move || out.kick()));
    let lines = FramedRead::with_capacity(rd, LineCodec::new(MAX_LINE), READ_BUFFER);
    if let Some(lines) = serve_direct(lines, handle, peer, accepted, shared).await {
        linger(lines.into_inner().into_tcp()).await;
    }
}

/// Runs the session on `lines` with a direct outbox, then ends the stream after the
/// last frame. Returns the reader for lingering, or `None` if the peer did not read
/// what was left within the shutdown grace and the connection was abandoned.
async fn serve_direct<R: AsyncRead + Unpin>(
    mut lines: FramedRead<R, LineCodec>,
    handle: SessionHandle,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
) -> Option<FramedRead<R, LineCodec>> {
    let grace = shared.config.shutdown_grace;
    {
        let mut frames = decoded(&mut lines, JsonLines);
        session::run(&mut frames, handle.clone(), peer, accepted, shared).await;
    }
    if tokio::time::timeout(grace, handle.outbox.finish())
        .await
        .is_err()
    {
        // The peer is not reading; it cannot hold this connection any longer.
        handle.outbox.abandon();
        return None;
    }
    Some(lines)
}

/// Reads and discards what the peer still sends, briefly and boundedly. Closing a socket
/// with unread input makes the kernel send a reset, which can destroy our last frames
/// (error, bye) before the peer reads them; this makes the close orderly.
async fn linger<R: AsyncRead + Unpin>(mut rd: R) {
    let _ = tokio::time::timeout(LINGER, async {
        // On the heap, and only now: a buffer in the future itself would cost every
        // connection its size for its whole life.
        let mut sink = vec![0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
