//! Transport adapters: each turns its connection's bytes into a stream of
//! [`ClientFrame`]s for [`session::run`] and writes the session's outbox back in its
//! wire format ([`Codec`]). The session never sees bytes.
//!
//! - [`tcp`]: JSON lines over plain TCP or TLS, written by the server's flusher.
//! - WebSocket: JSON text messages, in [`crate::web::chat`].
//! - [`serve_lines`]: any line format over any byte stream, with a writer task (used by
//!   tests to run the very same session over a second format).
//!
//! Like ergo's `IRCConn` (one connection interface over TCP, TLS and WebSocket) and
//! mini-redis's `Connection::read_frame`, the adapter is the only code that knows how a
//! frame is framed.

pub mod lines;
pub mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use natter_proto::{ClientFrame, CodecError, LineCodec, MAX_LINE};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

pub use tcp::{serve_tcp, serve_tls};

use crate::Shared;
use crate::codec::{Codec, json_lines};
use crate::hub::SessionHandle;
use crate::outbox::Outbox;
use crate::session::{self, InputError};
use crate::transport_kind::TransportKind;

impl From<CodecError> for InputError {
    fn from(e: CodecError) -> InputError {
        match e {
            CodecError::LineTooLong { max } => InputError::TooLong { max },
            CodecError::Io(e) => InputError::Io(e.to_string()),
        }
    }
}

/// Decodes a stream of input units (lines, or messages) with `codec`: each unit becomes
/// a frame or an [`InputError::Invalid`]; the stream's own errors are passed on.
pub fn decoded<S, T, E, C>(
    units: S,
    codec: C,
) -> impl Stream<Item = Result<ClientFrame, InputError>> + Unpin
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: AsRef<[u8]>,
    E: Into<InputError>,
    C: Codec,
{
    units.map(move |unit| match unit {
        Ok(unit) => codec.decode(unit.as_ref()).map_err(InputError::Invalid),
        Err(e) => Err(e.into()),
    })
}

/// A handle on a new outbox drained by a writer task, encoding in natter's JSON format
/// and ending when `shutdown` (the server's token) is cancelled or the session is closed,
/// for a session that came over `transport`.
pub fn channel(
    shared: &Shared,
    shutdown: CancellationToken,
    transport: TransportKind,
) -> SessionHandle {
    SessionHandle::new(
        Arc::new(Outbox::new(shared.config.session_queue)),
        shutdown,
        json_lines(),
        transport,
    )
}

/// Serves one session over `stream` in `codec`'s line format (lines of at most
/// [`MAX_LINE`] bytes each way), with a writer task that writes whatever the outbox
/// holds. Returns when the session has ended and its last frames were written (or the
/// shutdown grace ran out). Its sessions count as transport `natter` (natter's own line
/// transport, whatever the codec).
pub async fn serve_lines<S, C>(
    stream: S,
    codec: Arc<C>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
    C: Codec,
{
    let accepted = Instant::now();
    let (rd, mut wr) = tokio::io::split(stream);
    let handle = SessionHandle::new(
        Arc::new(Outbox::new(shared.config.session_queue)),
        shutdown,
        codec.clone(),
        TransportKind::Natter,
    );
    let out = handle.clone();
    let writer = tokio::spawn(async move {
        while let Some(chunk) = out.outbox.take().await {
            if let Err(e) = wr.write_all(&chunk).await {
                out.close(format!("write failed: {e}"));
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut frames = decoded(FramedRead::new(rd, LineCodec::new(MAX_LINE)), codec);
    let grace = shared.config.shutdown_grace;
    session::run(&mut frames, handle, peer, accepted, shared).await;
    let abort = writer.abort_handle();
    if tokio::time::timeout(grace, writer).await.is_err() {
        abort.abort();
    }
}
