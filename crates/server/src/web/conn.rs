//! Accepting and serving web connections: the connection caps (in total and per
//! address), the TLS handshake, and the header and idle timeouts.
//!
//! Each connection is served by hyper directly, watched by its own timer: axum's server
//! has no timeouts, and hyper's header timeout also runs while a kept-alive connection
//! waits for its next request, so it cannot give an idle allowance longer than the
//! header one. The timer stops once the connection becomes a WebSocket, which then
//! follows the chat session's ping rules.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::{LocalAddr, MAX_WEB_CONNECTIONS, WebState};
use crate::listener::{ConnLimits, ConnSlot};

/// How long a connection may wait for what.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// From connecting (or from the first byte of a later request) to a whole request
    /// head; the TLS handshake counts.
    header: Duration,
    /// Silence between requests on a kept-alive connection, and within a request.
    idle: Duration,
}

/// Accepts web connections until `st.stop` fires, each served in its own task on
/// `st.tracker`, so a slow client (TLS handshake included) holds only its own slot.
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    st: WebState,
) {
    let cfg = &st.shared.config;
    let timeouts = Timeouts {
        header: cfg.web_header_timeout,
        idle: cfg.web_idle_timeout,
    };
    // The web listener's own counts: browsers and scrapers do not use up chat slots
    // (a `/ws` session takes a chat slot as well, see `chat::upgrade`).
    let limits = Arc::new(ConnLimits::default());
    loop {
        let (tcp, peer) = tokio::select! {
            _ = st.stop.cancelled() => return,
            pair = crate::listener::accept(&listener) => pair,
        };
        let Some(slot) = limits.try_admit(None, peer.ip(), MAX_WEB_CONNECTIONS, cfg.web_max_per_ip)
        else {
            // Closed at once: answering would cost the attacker nothing and us a task.
            tracing::warn!(%peer, "web connection refused: too many connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        st.tracker.spawn(connection(
            tcp,
            peer,
            tls.clone(),
            app.clone(),
            slot,
            timeouts,
            st.stop.clone(),
        ));
    }
}

/// Serves one connection until it ends, times out or upgrades to a WebSocket.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    slot: ConnSlot,
    timeouts: Timeouts,
    stop: CancellationToken,
) {
    let clock = Arc::new(Clock::new(Instant::now()));
    let local = tcp.local_addr().ok();
    let stream = match tls {
        None => Stream::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout(timeouts.header, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Stream::Tls(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "web TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "web TLS handshake timed out");
                return;
            }
        },
    };
    let io = WebIo {
        stream,
        clock: clock.clone(),
        _slot: slot,
    };
    let requests = clock.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(local) = local {
            req.extensions_mut().insert(LocalAddr(local));
        }
        let busy = Busy::new(requests.clone());
        let mut app = app.clone();
        async move {
            let res = app.call(req).await;
            drop(busy);
            res
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Our timer below replaces it (see the module's documentation).
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        // Wake at least once per header timeout: a first byte after a quiet spell
        // brings the deadline forward without waking us.
        let wake = clock
            .deadline(timeouts)
            .min(Instant::now() + timeouts.header);
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "web connection failed");
                }
                break;
            }
            _ = stop.cancelled(), if !stopping => {
                // Finish the request in progress, close idle connections now.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake) => {
                if clock.deadline(timeouts) <= Instant::now() {
                    tracing::debug!(%peer, "web connection timed out");
                    break;
                }
            }
        }
    }
    // Dropping the connection closes the socket, unless it became a WebSocket.
    clock.detached.store(true, Ordering::Relaxed);
}

/// When a connection was last active, and in which phase it is.
struct Clock {
    /// The phase and times.
    state: Mutex<ClockState>,
    /// Set once the HTTP exchange is over (a WebSocket needs no more bookkeeping).
    detached: AtomicBool,
}

/// See [`Clock`].
struct ClockState {
    /// Requests being answered.
    in_flight: usize,
    /// Start of the request head being awaited: the connection's start, or the first
    /// byte after the last request; `None` while idle between requests.
    head_started: Option<Instant>,
    /// Last byte read or written, or request started or answered.
    last_activity: Instant,
}

impl Clock {
    /// A clock for a connection accepted at `accepted`, awaiting its first request.
    fn new(accepted: Instant) -> Clock {
        Clock {
            state: Mutex::new(ClockState {
                in_flight: 0,
                head_started: Some(accepted),
                last_activity: accepted,
            }),
            detached: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived.
    fn read(&self) {
        if self.detached.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut s = self.state();
        s.last_activity = now;
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(now);
        }
    }

    /// Bytes left.
    fn wrote(&self) {
        if self.detached.load(Ordering::Relaxed) {
            return;
        }
        self.state().last_activity = Instant::now();
    }

    /// When the connection is to be closed if nothing changes.
    fn deadline(&self, t: Timeouts) -> Instant {
        let s = self.state();
        match (s.in_flight, s.head_started) {
            (0, Some(start)) => start + t.header,
            _ => s.last_activity + t.idle,
        }
    }
}

/// A request being answered; dropping it (answered, or abandoned) ends it.
struct Busy(Arc<Clock>);

impl Busy {
    fn new(clock: Arc<Clock>) -> Busy {
        {
            let mut s = clock.state();
            s.in_flight += 1;
            s.head_started = None;
            s.last_activity = Instant::now();
        }
        Busy(clock)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.last_activity = Instant::now();
    }
}

/// A web connection, plain or TLS, holding its slot until dropped and telling its
/// clock about traffic.
struct WebIo {
    /// The transport.
    stream: Stream,
    /// Told about every read and write.
    clock: Arc<Clock>,
    /// Frees the connection slot when the connection (or its WebSocket) ends.
    _slot: ConnSlot,
}

/// A plain or TLS stream.
enum Stream {
    /// HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for WebIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read();
        }
        polled
    }
}

impl AsyncWrite for WebIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.wrote();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn header_then_request_then_idle_then_header_again() {
        let start = Instant::now();
        let c = Arc::new(Clock::new(start));
        assert_eq!(c.deadline(T), start + T.header, "a new connection: header");
        c.read();
        assert_eq!(c.deadline(T), start + T.header, "bytes do not extend it");
        tokio::time::advance(Duration::from_secs(2)).await;
        let busy = Busy::new(c.clone());
        assert_eq!(c.deadline(T), Instant::now() + T.idle, "answering: idle");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(busy);
        let answered = Instant::now();
        assert_eq!(c.deadline(T), answered + T.idle, "kept alive: idle");
        tokio::time::advance(Duration::from_secs(30)).await;
        c.read();
        assert_eq!(
            c.deadline(T),
            Instant::now() + T.header,
            "a new request's first byte: header"
        );
    }
}
