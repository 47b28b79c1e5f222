//! Accepting connections: connection limits, the TLS handshake, and the accept loop.
//!
//! The accept loop never does per-connection work beyond counting: the TLS handshake
//! runs in the connection's own task under the login timeout, so a slow handshake
//! (slowloris) holds only its own slot. Connections over a limit get a short, bounded
//! refusal (`error` with `too_many_connections`, then `bye`) or, under heavy pressure, are
//! dropped at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natter_proto::{ErrorCode, ServerFrame, encode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::transport_kind::{PerTransport, TransportKind};
use crate::{Shared, session, transport};

/// Refusals being written at once; beyond this, refused connections are just closed.
const MAX_REFUSING: usize = 64;
/// Time a refusal may take, handshake included.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts open connections in total and per source address.
#[derive(Default)]
pub struct ConnLimits {
    /// Open connections by source address.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Open connections in total.
    total: AtomicUsize,
    /// Open connections by transport (of the slots admitted with one).
    by_transport: [AtomicUsize; TransportKind::ALL.len()],
    /// Refusals in progress.
    refusing: AtomicUsize,
}

/// One admitted connection; dropping it frees the slot.
pub struct ConnSlot {
    /// The counters to give the slot back to.
    limits: Arc<ConnLimits>,
    /// The address counted.
    ip: IpAddr,
    /// The transport counted, if any.
    transport: Option<TransportKind>,
}

impl ConnLimits {
    /// Admits a connection from `ip` if both limits allow it, counting it under
    /// `transport` (a chat connection: natter, WebSocket or IRC) or under none (a web
    /// request's connection).
    pub fn try_admit(
        self: &Arc<Self>,
        transport: Option<TransportKind>,
        ip: IpAddr,
        total_max: usize,
        per_ip_max: usize,
    ) -> Option<ConnSlot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_ip.get(&ip).copied().unwrap_or(0);
        if n >= per_ip_max || self.total.load(Ordering::Relaxed) >= total_max {
            return None;
        }
        per_ip.insert(ip, n + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = transport {
            self.by_transport[t.index()].fetch_add(1, Ordering::Relaxed);
        }
        Some(ConnSlot {
            limits: self.clone(),
            ip,
            transport,
        })
    }

    /// Open connections in total.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Open connections by transport (those admitted with one).
    pub fn open_by_transport(&self) -> PerTransport {
        let mut per = PerTransport::default();
        for t in TransportKind::ALL {
            per.add(t, self.by_transport[t.index()].load(Ordering::Relaxed));
        }
        per
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(t) = self.transport {
            self.limits.by_transport[t.index()].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Connections the kernel holds for us before we accept them (capped by the system's
/// `somaxconn`). A login storm while Argon2 keeps the core busy can bring a thousand
/// connects faster than the accept loop runs; tokio's default (1024) then overflowed and
/// dropped some, whose clients waited on SYN retries for minutes.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening TCP socket on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`,
/// so a restarted server can bind while old connections linger in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The next connection; failures (usually: out of file descriptors) are logged and
/// retried after a pause instead of spinning.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// natter's JSON lines, over TLS unless the server is in plaintext mode.
    Natter,
    /// The IRC gateway ([`crate::irc`]), over TLS when `tls` is set.
    Irc {
        /// Whether connections start with a TLS handshake.
        tls: bool,
    },
}

impl Transport {
    /// The label its connections and sessions carry.
    pub fn kind(self) -> TransportKind {
        match self {
            Transport::Natter => TransportKind::Natter,
            Transport::Irc { .. } => TransportKind::Irc,
        }
    }

    /// The IRC gateway on `addr`: TLS with the server's certificate, except in plaintext
    /// mode or on a loopback address (as ergo does for its local listeners), unless
    /// `irc_tls` says otherwise.
    pub fn irc(addr: SocketAddr, shared: &Shared) -> Transport {
        let has_certificate = shared.tls.is_some();
        Transport::Irc {
            tls: match shared.config.irc_tls {
                Some(on) => on && has_certificate,
                None => irc_uses_tls(addr, has_certificate),
            },
        }
    }
}

/// Whether the IRC gateway on `addr` speaks TLS, given whether the server has a
/// certificate (it has none in plaintext mode). Loopback stays plaintext: local
/// clients and test suites need no certificate, and nothing crosses a network.
pub fn irc_uses_tls(addr: SocketAddr, has_certificate: bool) -> bool {
    // Canonical: an IPv4-mapped IPv6 loopback (::ffff:127.0.0.1) is loopback too.
    has_certificate && !addr.ip().to_canonical().is_loopback()
}

/// Accepts chat connections until `stop` fires, spawning each onto `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) {
    accept_loop_for(listener, Transport::Natter, shared, tracker, stop).await
}

/// Accepts connections of `transport` until `stop` fires, spawning each onto `tracker`.
/// Every transport shares the server's connection limits (`shared.conns`).
pub async fn accept_loop_for(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            pair = accept(&listener) => pair,
        };
        let _ = tcp.set_nodelay(true);
        let cfg = &shared.config;
        match shared.conns.try_admit(
            Some(transport.kind()),
            peer.ip(),
            cfg.max_connections,
            cfg.max_connections_per_ip,
        ) {
            Some(slot) => {
                tracker.spawn(connection(
                    transport,
                    tcp,
                    peer,
                    shared.clone(),
                    stop.clone(),
                    slot,
                ));
            }
            None => {
                tracing::warn!(%peer, "connection refused: too many connections");
                if shared.conns.refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
                    let shared = shared.clone();
                    tracker.spawn(async move {
                        let refusal = refuse(transport, tcp, &shared);
                        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refusal).await;
                        shared.conns.refusing.fetch_sub(1, Ordering::Relaxed);
                    });
                } else {
                    shared.conns.refusing.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs one admitted connection: TLS handshake (if enabled), then the session.
///
/// Boxed, one box per transport: a task's memory is its future's size (rounded up to
/// tokio's 128-byte cell alignment) for its whole life, so the task holds only a
/// pointer, and a plaintext connection does not pay for the larger TLS session and
/// handshake. An idle connection's future is most of what it costs, so none of these
/// futures keeps what it has handed on (see [`transport::serve_tcp`]).
fn connection(
    transport: Transport,
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    slot: ConnSlot,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let accepted = tokio::time::Instant::now();
    if let Transport::Irc { tls } = transport {
        // Two boxes, not one future with two branches: a plaintext connection must not
        // carry room for the TLS stream its future would otherwise reserve.
        return match shared.tls.clone().filter(|_| tls) {
            None => Box::pin(async move {
                let _slot = slot;
                crate::irc::serve_irc(tcp, peer, accepted, shared, stop).await
            }),
            Some(identity) => Box::pin(async move {
                let _slot = slot;
                // As for natter's protocol: the handshake's state is gone before the
                // session is served.
                let serve = {
                    let config = identity.config.clone();
                    let handshake = Box::pin(tls_handshake(config, &tcp, peer, &shared)).await;
                    let Some(state) = handshake else { return };
                    crate::irc::serve_irc_tls(tcp, state, peer, accepted, shared, stop)
                };
                serve.await
            }),
        };
    }
    match shared.tls.as_ref().map(|t| t.config.clone()) {
        None => Box::pin(transport::serve_tcp(
            tcp, peer, accepted, shared, stop, slot,
        )),
        Some(config) => Box::pin(async move {
            // The handshake's state must not stay in this block's scope while the
            // session is served: the future would keep room for it for the whole session.
            let serve = {
                let handshake = Box::pin(tls_handshake(config, &tcp, peer, &shared)).await;
                let Some(state) = handshake else { return };
                transport::serve_tls(tcp, state, peer, accepted, shared, stop, slot)
            };
            serve.await
        }),
    }
}

/// Completes the TLS handshake within the login deadline; the TLS state, or `None`
/// (logged) if it failed.
async fn tls_handshake(
    config: Arc<rustls::ServerConfig>,
    tcp: &TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<crate::tls::TlsState> {
    let handshake = crate::tls::handshake(config, tcp);
    match tokio::time::timeout(shared.config.auth_timeout, handshake).await {
        Ok(Ok(state)) => Some(state),
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Tells a connection over the limit why it is refused, then closes it.
async fn refuse(transport: Transport, tcp: TcpStream, shared: &Shared) {
    let tls = match transport {
        Transport::Natter => shared.tls.as_ref(),
        Transport::Irc { tls } => shared.tls.as_ref().filter(|_| tls),
    };
    match tls {
        None => write_refusal(transport, tcp).await,
        Some(tls) => {
            if let Ok(stream) = tls.acceptor.accept(tcp).await {
                write_refusal(transport, stream).await;
            }
        }
    }
}

async fn write_refusal<S: AsyncRead + AsyncWrite + Unpin>(transport: Transport, mut stream: S) {
    if let Transport::Irc { .. } = transport {
        let line = b"ERROR :Closing link: too many connections (in total or from your address); try again later\r\n";
        if stream.write_all(line).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        return;
    }
    let mut out = Vec::new();
    out.extend_from_slice(&encode(&session::hello()));
    out.extend_from_slice(&encode(&ServerFrame::error(
        None,
        ErrorCode::TooManyConnections,
        "the server has too many connections (in total or from your address); try again later",
    )));
    out.extend_from_slice(&encode(&ServerFrame::Bye {
        reason: "too many connections".into(),
    }));
    if stream.write_all(&out).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::irc_uses_tls;

    #[test]
    fn irc_is_tls_except_on_loopback_or_in_plaintext_mode() {
        let at = |s: &str| s.parse().expect("address");
        assert!(irc_uses_tls(at("0.0.0.0:6697"), true));
        assert!(irc_uses_tls(at("192.0.2.1:6697"), true));
        assert!(irc_uses_tls(at("[::]:6697"), true));
        assert!(!irc_uses_tls(at("127.0.0.1:6667"), true));
        assert!(!irc_uses_tls(at("[::1]:6667"), true));
        assert!(!irc_uses_tls(at("[::ffff:127.0.0.1]:6667"), true));
        assert!(!irc_uses_tls(at("0.0.0.0:6667"), false));
    }
}
