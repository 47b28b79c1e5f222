//! The web interface: operator console, browser chat over `/ws`, `/metrics`, `/healthz`.
//!
//! An axum router in the same process as the chat listener, sharing [`Shared`]. The
//! pages are embedded in the binary ([`assets`]). On a loopback address it speaks HTTP;
//! elsewhere HTTPS with the chat server's certificate (see docs/WEB.md).

pub mod assets;
pub mod chat;
pub mod console;
pub mod operator;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;

/// Web connections open at once; more are closed at once.
const MAX_WEB_CONNECTIONS: usize = 1024;
/// Time a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body (JSON for the console's actions).
pub const MAX_BODY: usize = 16 * 1024;

/// What every web handler can reach.
#[derive(Clone)]
pub struct WebState {
    /// The chat server's state.
    pub shared: Arc<Shared>,
    /// Whether pages are served over HTTPS (decides the cookie's `Secure` flag and the
    /// expected `Origin` scheme).
    pub https: bool,
    /// Fires on shutdown; WebSocket tasks end with it.
    pub stop: CancellationToken,
    /// WebSocket tasks, awaited on shutdown.
    pub tracker: TaskTracker,
}

/// Whether the web interface on `addr` uses HTTPS: beyond loopback, when TLS is on.
pub fn uses_https(addr: SocketAddr, shared: &Shared) -> bool {
    https_for(addr, shared.tls.is_some(), shared.config.web_tls)
}

/// HTTPS when TLS is on and the address is beyond loopback (or HTTPS is forced).
fn https_for(addr: SocketAddr, tls_on: bool, forced: bool) -> bool {
    tls_on && (forced || !addr.ip().is_loopback())
}

/// The router with every route; `state.https` decides cookie and origin details.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/chat") }))
        .route("/chat", get(assets::chat_page))
        .route("/console", get(assets::console_page))
        .route("/static/{file}", get(assets::file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", get(chat::upgrade))
        .route("/api/admin/login", post(console::login))
        .route("/api/admin/logout", post(console::logout))
        .route("/api/admin/session", get(console::session))
        .route("/api/admin/overview", get(console::overview))
        .route("/api/admin/audit", get(console::audit))
        .route("/api/admin/monitor", get(console::monitor))
        .route("/api/admin/{action}", post(console::action))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the web interface on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, state: WebState) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "web listener has no address");
            return;
        }
    };
    let tls = if state.https {
        state.shared.tls.as_ref().map(|t| t.acceptor.clone())
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(64);
    let stop = state.stop.clone();
    state
        .tracker
        .spawn(accept_loop(listener, tls, tx, stop.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` (a no-op here) is what gives a custom listener axum's `ConnectInfo`.
    let incoming = axum::serve::ListenerExt::tap_io(WebListener { rx, local }, |_| {});
    if let Err(e) = axum::serve(incoming, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "web server failed");
    }
}

/// Accepts web connections, bounded in number, doing TLS handshakes in their own tasks
/// so one slow client never delays the next.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<(WebIo, SocketAddr)>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_WEB_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            pair = crate::listener::accept(&listener) => pair,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "web connection refused: too many connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tx = tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = match tls {
                None => Stream::Plain(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "web TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let _ = tx
                .send((
                    WebIo {
                        stream,
                        _permit: permit,
                    },
                    peer,
                ))
                .await;
        });
    }
}

/// Hands accepted (and, for HTTPS, handshaken) connections to axum.
struct WebListener {
    /// Ready connections.
    rx: mpsc::Receiver<(WebIo, SocketAddr)>,
    /// The bound address.
    local: SocketAddr,
}

impl axum::serve::Listener for WebListener {
    type Io = WebIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (WebIo, SocketAddr) {
        match self.rx.recv().await {
            Some(pair) => pair,
            // The accept loop ended (shutdown): wait for axum's graceful shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A web connection, plain or TLS, holding its slot until dropped.
pub struct WebIo {
    /// The transport.
    stream: Stream,
    /// Frees the connection slot when the connection ends.
    _permit: OwnedSemaphorePermit,
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
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WebIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Headers on every response: no framing, no sniffing, no third-party anything.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(st): State<WebState>) -> impl IntoResponse {
    let text = st
        .shared
        .metrics
        .render(st.shared.conns.open(), st.shared.hub.session_count());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// How a request's `Origin` relates to this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginCheck {
    /// No `Origin` header (not a browser, or a same-origin GET).
    Absent,
    /// The page's own origin.
    Same,
    /// Another site, or unparseable.
    Foreign,
}

/// Compares `Origin` with the scheme and `Host` this request reached.
pub fn origin(headers: &HeaderMap, https: bool) -> OriginCheck {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Absent;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if https { "https" } else { "http" };
    match (origin.to_str().ok(), host) {
        (Some(o), Some(host)) if o.eq_ignore_ascii_case(&format!("{scheme}://{host}")) => {
            OriginCheck::Same
        }
        _ => OriginCheck::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("origin"));
        }
        h
    }

    #[test]
    fn https_beyond_loopback_unless_plaintext() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(!https_for(at("127.0.0.1:8000"), true, false));
        assert!(!https_for(at("[::1]:8000"), true, false));
        assert!(https_for(at("127.0.0.1:8000"), true, true));
        assert!(https_for(at("0.0.0.0:8000"), true, false));
        assert!(https_for(at("192.0.2.7:443"), true, false));
        assert!(
            !https_for(at("0.0.0.0:8000"), false, false),
            "plaintext mode"
        );
    }

    #[test]
    fn origin_must_match_scheme_and_host() {
        let host = "127.0.0.1:8000";
        assert_eq!(origin(&headers(None, host), false), OriginCheck::Absent);
        assert_eq!(
            origin(&headers(Some("http://127.0.0.1:8000"), host), false),
            OriginCheck::Same
        );
        for bad in [
            "https://127.0.0.1:8000",
            "http://evil.example",
            "http://127.0.0.1:8001",
            "null",
        ] {
            assert_eq!(
                origin(&headers(Some(bad), host), false),
                OriginCheck::Foreign,
                "{bad}"
            );
        }
        assert_eq!(
            origin(
                &headers(Some("https://chat.example:8000"), "chat.example:8000"),
                true
            ),
            OriginCheck::Same
        );
    }
}
