//! The TCP transports, plain and TLS: JSON lines over a socket whose outbox is direct
//! (the server's flusher writes it, see [`crate::outbox`]), so a connection needs no
//! writer task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use natter_proto::{LineCodec, MAX_LINE};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::decoded;
use super::lines::Lines;
use crate::Shared;
use crate::codec::{JsonLines, json_lines};
use crate::hub::SessionHandle;
use crate::listener::ConnSlot;
use crate::outbox::{Outbox, Wire};
use crate::session;
use crate::tls::{TlsConn, TlsReader};
use crate::transport_kind::TransportKind;

/// How long a closing connection keeps reading (and discarding) the peer's input.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// How much input a closing connection discards at most.
const LINGER_BYTES: usize = 256 * 1024;

/// A handle on a direct outbox writing to `wire`, in natter's JSON format (transport
/// `natter`).
fn direct(shared: &Shared, shutdown: CancellationToken, wire: Wire) -> SessionHandle {
    let outbox = Outbox::direct(shared.config.session_queue, wire, shared.flusher.clone());
    SessionHandle::new(
        Arc::new(outbox),
        shutdown,
        json_lines(),
        TransportKind::Natter,
    )
}

/// Serves one plain TCP connection until the peer leaves, misbehaves, or `shutdown`
/// fires; `slot` (the connection's place under the connection limits) is held until
/// then. Its outbox is direct: the server's flusher writes it (see [`crate::outbox`]),
/// so the connection needs no writer task.
///
/// `accepted` is when the TCP connection was accepted: the login deadline counts from
/// there.
pub fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    slot: ConnSlot,
) -> impl Future<Output = ()> + Send {
    let (rd, wr) = stream.into_split();
    let handle = direct(&shared, shutdown, Wire::Tcp(wr));
    let lines = Lines::new(rd, LineCodec::new(MAX_LINE));
    serve_direct(lines, handle, peer, accepted, shared, slot)
}

/// Serves one TLS connection whose handshake is done (`conn` is its TLS state) like
/// [`serve_tcp`]: the flusher encrypts and writes its outbox, and the session reads
/// through a [`TlsReader`].
///
/// `accepted` is when the TCP connection was accepted: the login deadline counts from
/// there, so the TLS handshake and the login share one budget.
pub fn serve_tls(
    stream: TcpStream,
    conn: crate::tls::TlsState,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    slot: ConnSlot,
) -> impl Future<Output = ()> + Send {
    let (rd, wr) = stream.into_split();
    let tls = TlsConn::new(conn);
    let handle = direct(&shared, shutdown, Wire::Tls(wr, tls.clone()));
    if tls.lock().is_ok_and(|c| c.wants_write()) {
        // Records the handshake left unsent (session tickets).
        handle.outbox.kick();
    }
    let out = handle.outbox.clone();
    let rd = TlsReader::new(rd, tls, Box::new(move || out.kick()));
    let lines = Lines::new(rd, LineCodec::new(MAX_LINE));
    serve_direct(lines, handle, peer, accepted, shared, slot)
}

/// A connection's reading side that can hand back its socket for lingering.
trait IntoTcp {
    /// The socket's read half.
    fn into_tcp(self) -> OwnedReadHalf;
}

impl IntoTcp for OwnedReadHalf {
    fn into_tcp(self) -> OwnedReadHalf {
        self
    }
}

impl IntoTcp for TlsReader {
    fn into_tcp(self) -> OwnedReadHalf {
        TlsReader::into_tcp(self)
    }
}

/// Runs the session on `lines` with a direct outbox, ends the stream after the last
/// frame, then lingers (see [`linger`]) unless the peer did not read what was left
/// within the shutdown grace. Releases `slot` at the very end.
///
/// Not an `async fn`, whose future would keep its arguments beside what is made of them
/// for the connection's whole life: the block below keeps each once.
fn serve_direct<R>(
    mut lines: Lines<R>,
    handle: SessionHandle,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    slot: ConnSlot,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + IntoTcp + Unpin + Send,
{
    let mut session = session::Pending::new(handle, peer, accepted, shared);
    async move {
        session.run(&mut decoded(&mut lines, JsonLines)).await;
        let outbox = session.outbox().clone();
        let finish = tokio::time::timeout(session.shutdown_grace(), outbox.finish());
        if finish.await.is_err() {
            // The peer is not reading; it cannot hold this connection any longer.
            outbox.abandon();
        } else {
            linger(lines.into_inner().into_tcp()).await;
        }
        drop(slot);
    }
}

/// Reads and discards what the peer still sends, briefly and boundedly. Closing a socket
/// with unread input makes the kernel send a reset, which can destroy our last frames
/// (error, bye) before the peer reads them; this makes the close orderly.
async fn linger(mut rd: OwnedReadHalf) {
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
