//! The web interface: operator console, browser chat over `/ws`, `/metrics`, `/healthz`.
//!
//! An axum router in the same process as the chat listener, sharing [`Shared`]. The
//! pages are embedded in the binary ([`assets`]). On a loopback address it speaks HTTP;
//! elsewhere HTTPS with the chat server's certificate (see docs/WEB.md).

pub mod assets;
pub mod chat;
mod conn;
pub mod console;
pub mod operator;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;

/// Web connections open at once; more are closed at once.
const MAX_WEB_CONNECTIONS: usize = 1024;
/// Largest request body (JSON for the console's actions).
pub const MAX_BODY: usize = 16 * 1024;

/// What every web handler can reach.
#[derive(Clone)]
pub struct WebState {
    /// The chat server's state.
    pub shared: Arc<Shared>,
    /// The operator password and console sessions.
    pub operator: Arc<operator::OperatorAuth>,
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
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the web interface on `listener` until `state.stop` fires.
pub async fn serve(listener: TcpListener, state: WebState) {
    let tls = if state.https {
        state.shared.tls.as_ref().map(|t| t.acceptor.clone())
    } else {
        None
    };
    let app = router(state.clone());
    conn::accept_loop(listener, tls, app, state).await;
}

/// The local address a request's connection arrived at (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// Refuses a request whose `Host` (or absolute URI) names a host this server does not
/// answer to, before any handler runs: a DNS-rebinding page reaches the socket under
/// its own name.
async fn check_host(State(st): State<WebState>, req: Request, next: Next) -> Response {
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0);
    let allowed = |value: &str| {
        host_name(value).is_some_and(|name| host_allowed(&name, &st.shared.config.web_host, local))
    };
    let host = req.headers().get(header::HOST).map(|h| h.to_str());
    let ok = match host {
        Some(Ok(h)) => allowed(h),
        _ => false,
    } && req.uri().authority().is_none_or(|a| allowed(a.as_str()));
    if !ok {
        tracing::debug!(?host, "web request for another host refused");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name (see web_host)\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// The host name in a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), as
/// [`crate::config::web_host_name`] normalises it; `None` if malformed.
fn host_name(value: &str) -> Option<String> {
    let port_ok = |p: &str| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    let name = match value.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(port_ok)) {
                return None;
            }
            ip.parse::<std::net::Ipv6Addr>().ok()?;
            ip
        }
        None => match value.rsplit_once(':') {
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return None,
            None => value,
        },
    };
    crate::config::web_host_name(name).ok()
}

/// Whether `name` (normalised) is one this server answers to: the configured list, or
/// by default `localhost`, any loopback address and the address the connection arrived
/// at.
fn host_allowed(name: &str, configured: &[String], local: Option<SocketAddr>) -> bool {
    if !configured.is_empty() {
        return configured.iter().any(|c| c == name);
    }
    if name == "localhost" {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || local.is_some_and(|l| l.ip().to_canonical() == ip)
        }
        Err(_) => false,
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

async fn metrics(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(token) = &st.shared.config.metrics_token
        && !bearer_matches(&headers, &token.0)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"natter metrics\"")],
            "metrics need Authorization: Bearer <metrics_token>\n",
        )
            .into_response();
    }
    let text = st.shared.metrics.render(
        st.shared.conns.open_by_transport(),
        st.shared.bus.sessions_by_transport(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Whether `Authorization` is `Bearer <token>`. Digests are compared, in constant time,
/// so neither the content nor the length of the token leaks through timing.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let ok = operator::ct_eq(digest(given).as_ref(), digest(token).as_ref());
    ok && !given.is_empty()
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
    fn host_names_with_ports_brackets_and_case() {
        for (value, name) in [
            ("localhost", Some("localhost")),
            ("LocalHost:8000", Some("localhost")),
            ("localhost.:8000", Some("localhost")),
            ("127.0.0.1:8000", Some("127.0.0.1")),
            ("[::1]:8000", Some("::1")),
            ("[::1]", Some("::1")),
            ("[0:0::1]", Some("::1")),
            ("::1", None),
            ("[::1]x", None),
            ("[evil.example]", None),
            ("evil.example:80:80", None),
            ("evil.example:http", None),
            ("", None),
            ("a b", None),
        ] {
            assert_eq!(host_name(value).as_deref(), name, "{value:?}");
        }
    }

    #[test]
    fn default_hosts_are_local_names_and_the_arrival_address() {
        let local = Some("192.0.2.7:8000".parse::<SocketAddr>().expect("addr"));
        for name in ["localhost", "127.0.0.1", "127.0.0.2", "::1", "192.0.2.7"] {
            assert!(host_allowed(name, &[], local), "{name}");
        }
        for name in [
            "evil.example",
            "192.0.2.8",
            "0.0.0.0",
            "localhost.evil.example",
        ] {
            assert!(!host_allowed(name, &[], local), "{name}");
        }
        let mapped = Some(
            "[::ffff:192.0.2.7]:8000"
                .parse::<SocketAddr>()
                .expect("addr"),
        );
        assert!(
            host_allowed("192.0.2.7", &[], mapped),
            "dual-stack listener"
        );
        let listed = ["chat.example".to_string()];
        assert!(host_allowed("chat.example", &listed, local));
        assert!(
            !host_allowed("localhost", &listed, local),
            "the list replaces"
        );
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
