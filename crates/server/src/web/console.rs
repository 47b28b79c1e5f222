//! The operator console's API: login, actions, the live monitor (see docs/WEB.md).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use natter_proto::MAX_NAMES;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::operator::{LoginRefused, SESSION_TTL};
use super::{OriginCheck, WebState, origin};
use crate::Shared;
use crate::moderation::{self, ActionError, Operator};
use crate::transport_kind::PerTransport;

/// The console session cookie.
const COOKIE: &str = "natter_admin";
/// The header carrying the CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";
/// How often the monitor sends live figures.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// Audit entries returned at most.
const AUDIT_LIMIT: u32 = 200;
/// The operator's name in the audit trail.
const OPERATOR: &str = "operator";

/// A JSON error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(status, message).into_response()
}

/// A refused request: the status and a message safe to show (never internals).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    status: StatusCode,
    /// Shown to the operator as `{"error": message}`.
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The session token from the request's cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The logged-in session's token, or the 401 answer.
fn require_session(st: &WebState, headers: &HeaderMap) -> Result<String, ApiError> {
    cookie_token(headers)
        .filter(|t| st.operator.session(t).is_some())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not logged in"))
}

/// Checks a state-changing request: same origin (when the browser says), a live
/// session, and the session's CSRF token in the header.
fn require_post(st: &WebState, headers: &HeaderMap) -> Result<(), ApiError> {
    if origin(headers, st.https) == OriginCheck::Foreign {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ));
    }
    let token = require_session(st, headers)?;
    let csrf = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !st.operator.check_csrf(&token, csrf) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token; reload the console",
        ));
    }
    Ok(())
}

/// Parses a JSON body into `T`, or answers 400 with what is wrong.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn cookie(st: &WebState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if st.https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("natter_admin=; Max-Age=0"))
}

#[derive(Deserialize)]
struct LoginBody {
    password: String,
}

/// `POST /api/admin/login`.
pub async fn login(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if origin(&headers, st.https) == OriginCheck::Foreign {
        return error(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let b: LoginBody = match body(&bytes) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let result = st
        .operator
        .login(&st.shared.auth, &b.password, peer.ip())
        .await;
    let ts_ms = crate::now_ms();
    match result {
        Ok((token, csrf)) => {
            st.shared.emit(crate::transcript::Event::System {
                kind: "operator_login",
                detail: format!("addr={peer}"),
                ts_ms,
            });
            let mut res = Json(json!({ "csrf": csrf })).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&st, &token, SESSION_TTL.as_secs()),
            );
            res
        }
        Err(refused) => {
            st.shared.emit(crate::transcript::Event::System {
                kind: "operator_login_failed",
                detail: format!("addr={peer}"),
                ts_ms,
            });
            match refused {
                LoginRefused::Wrong => error(StatusCode::UNAUTHORIZED, "wrong password"),
                LoginRefused::Throttled(wait) => {
                    let ms = wait.as_millis().max(1) as u64;
                    let mut res = (
                        StatusCode::TOO_MANY_REQUESTS,
                        Json(json!({
                            "error": format!("too many failed logins; try again in {} s", ms.div_ceil(1000)),
                            "retry_after_ms": ms,
                        })),
                    )
                        .into_response();
                    if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
                        res.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    res
                }
            }
        }
    }
}

/// `POST /api/admin/logout`.
pub async fn logout(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_post(&st, &headers) {
        return r.into_response();
    }
    if let Some(token) = cookie_token(&headers) {
        st.operator.logout(&token);
    }
    let mut res = Json(json!({ "ok": true })).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, cookie(&st, "", 0));
    res
}

/// `GET /api/admin/session`: the CSRF token of the caller's session.
pub async fn session(State(st): State<WebState>, headers: HeaderMap) -> Response {
    match cookie_token(&headers).and_then(|t| st.operator.session(&t)) {
        Some(csrf) => Json(json!({ "csrf": csrf })).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "not logged in"),
    }
}

/// Live figures: connections, sessions, messages per minute, who is online (with their
/// sessions by transport), rooms.
pub fn stats(shared: &Shared) -> serde_json::Value {
    let online: Vec<_> = shared
        .bus
        .online_sessions()
        .into_iter()
        .take(MAX_NAMES)
        .map(|(user, sessions)| {
            json!({
                "user": user,
                "sessions": sessions.total(),
                "transports": transports(sessions),
            })
        })
        .collect();
    let rooms: Vec<_> = shared
        .bus
        .rooms()
        .into_iter()
        .take(MAX_NAMES)
        .map(|r| json!({ "name": r.name, "members": r.members }))
        .collect();
    json!({
        "type": "stats",
        "connections": shared.conns.open(),
        "sessions": shared.bus.session_count(),
        "messages_per_minute": shared.metrics.messages_last_minute(),
        "online": online,
        "rooms": rooms,
    })
}

/// `{"irc": 1, "websocket": 2}`: the transports with at least one session.
fn transports(sessions: PerTransport) -> serde_json::Value {
    let by: serde_json::Map<String, serde_json::Value> = sessions
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.as_str().to_string(), n.into()))
        .collect();
    by.into()
}

/// `GET /api/admin/overview`.
pub async fn overview(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_session(&st, &headers) {
        return r.into_response();
    }
    Json(stats(&st.shared)).into_response()
}

/// `GET /api/admin/audit`.
pub async fn audit(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_session(&st, &headers) {
        return r.into_response();
    }
    match st.shared.store.audit_log(AUDIT_LIMIT).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading the audit log failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

#[derive(Deserialize)]
struct UserBody {
    user: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct MuteBody {
    user: String,
    seconds: u64,
}

#[derive(Deserialize)]
struct NoticeBody {
    text: String,
    #[serde(default)]
    room: Option<String>,
}

/// The answer to an action.
fn outcome(result: Result<String, ActionError>) -> Response {
    match result {
        Ok(message) => Json(json!({ "ok": true, "message": message })).into_response(),
        Err(ActionError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(ActionError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(ActionError::Store(e)) => {
            tracing::error!(error = %e, "operator action failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `POST /api/admin/{action}`: kick, mute, unmute, ban, unban or notice, after the
/// origin, session and CSRF checks.
pub async fn action(
    State(st): State<WebState>,
    Path(action): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if let Err(r) = require_post(&st, &headers) {
        return r.into_response();
    }
    let by = Operator {
        name: OPERATOR.into(),
        addr: peer.to_string(),
    };
    let s = &st.shared;
    let result = match action.as_str() {
        "kick" | "ban" | "unmute" | "unban" => {
            let b: UserBody = match body(&bytes) {
                Ok(b) => b,
                Err(r) => return r.into_response(),
            };
            let reason = b.reason.as_deref();
            match action.as_str() {
                "kick" => moderation::kick(s, &by, &b.user, reason).await,
                "ban" => moderation::ban(s, &by, &b.user, reason).await,
                "unmute" => moderation::unmute(s, &by, &b.user).await,
                _ => moderation::unban(s, &by, &b.user).await,
            }
        }
        "mute" => match body::<MuteBody>(&bytes) {
            Ok(b) => moderation::mute(s, &by, &b.user, b.seconds).await,
            Err(r) => return r.into_response(),
        },
        "notice" => match body::<NoticeBody>(&bytes) {
            Ok(b) => moderation::notice(s, &by, &b.text, b.room.as_deref()).await,
            Err(r) => return r.into_response(),
        },
        _ => return error(StatusCode::NOT_FOUND, "no such action"),
    };
    outcome(result)
}

/// `GET /api/admin/monitor`: the live feed, for a logged-in console of this origin.
pub async fn monitor(
    State(st): State<WebState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if origin(&headers, st.https) != OriginCheck::Same {
        return error(
            StatusCode::FORBIDDEN,
            "the monitor is only served to the console's own origin",
        );
    }
    let token = match require_session(&st, &headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    // The monitor only sends; a console has nothing large to say.
    ws.max_message_size(4096).on_upgrade(move |socket| {
        let tracker = st.tracker.clone();
        tracker.track_future(feed(socket, st, token))
    })
}

/// Streams events and figures to one console until it leaves, its session ends, or
/// the server stops.
async fn feed(socket: WebSocket, st: WebState, token: String) {
    let (mut sink, mut incoming) = socket.split();
    let mut events = st.shared.monitor.subscribe();
    let mut every = tokio::time::interval(STATS_EVERY);
    loop {
        let msg = tokio::select! {
            _ = st.stop.cancelled() => break,
            _ = every.tick() => {
                if st.operator.session(&token).is_none() {
                    break;
                }
                stats(&st.shared).to_string()
            }
            ev = events.recv() => match ev {
                Ok(json) => json.to_string(),
                Err(RecvError::Lagged(missed)) => json!({ "type": "lagged", "missed": missed }).to_string(),
                Err(RecvError::Closed) => break,
            },
            m = incoming.next() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(Message::Text(msg.into())).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}
