//! One task per connection: decode frames, enforce the pre-login rules, talk to the hub.
//!
//! A session is a small state machine: unauthenticated (only `auth`, `ping` and `quit`
//! are allowed, within a time and frame budget) → authenticated (chat) → closing. The
//! session and the hub queue encoded lines in the session's bounded outbox; whoever
//! writes the connection (the server's flusher for TCP, plain or TLS; a writer task for
//! WebSocket) coalesces whatever is queued into one write. Nothing in the state machine
//! knows which transport carries the bytes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use natter_proto::{
    ClientFrame, CodecError, DEFAULT_ROOM, ErrorCode, FrameId, HistoryEntry, LineCodec, MAX_ID_LEN,
    MAX_LINE, MAX_NAMES, ServerFrame, clip, decode_client, encode, encode_into, neutralize,
    parse_room, validate_username,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::auth::check_new_password;
use crate::hub::{Members, RoomError, SessionHandle, SessionId};
use crate::outbox::Wire;
use crate::ratelimit::{MessageLimiter, Verdict};
use crate::store::StoreError;
use crate::store::{NewMessage, StoredMessage, Target};
use crate::tls::{TlsConn, TlsReader};
use crate::transcript::Event;

/// Failed logins allowed on one connection before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// How long a closing connection keeps reading (and discarding) the peer's input.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// How much input a closing connection discards at most.
const LINGER_BYTES: usize = 256 * 1024;

/// Most public messages one session may have committing at once; its further input
/// waits. Letting several commit together is what lets one fsync cover many messages.
const MAX_INFLIGHT: usize = 128;

/// Most committed messages published together (one chunk per room member).
const MAX_PUBLISH: usize = 256;

/// Initial read buffer of a connection; it grows when a peer sends more at once, so an
/// idle connection stays small.
const READ_BUFFER: usize = 128;

/// A public message of this session once its commit has finished.
struct Published {
    /// The request id, for the `ok`.
    id: Option<FrameId>,
    /// Canonical room name.
    room: String,
    /// The stored message, or why it could not be stored.
    result: Result<StoredMessage, StoreError>,
}

/// A private message of this session once its commit has finished.
struct PrivateSent {
    /// The request id, for the `ok` or `queued`.
    id: Option<FrameId>,
    /// The recipient's display name.
    to: String,
    /// Whether the recipient was online when the message was accepted.
    online: bool,
    /// The stored message, or why it could not be stored.
    result: Result<StoredMessage, StoreError>,
}

/// A message whose commit has finished, to be delivered.
enum Committed {
    /// To a room.
    Public(Published),
    /// To a user.
    Private(PrivateSent),
}

/// A message's commit, resolving to what delivering it needs.
type Committing = Pin<Box<dyn Future<Output = Committed> + Send + Sync>>;

/// Public messages waiting for their commit, in the order they were sent. The queue is
/// allocated only while something is committing, so idle sessions do not carry it.
#[derive(Default)]
struct Inflight {
    /// The commits, oldest first; `None` when there are none. Boxed: the queue's
    /// bookkeeping would otherwise be part of every idle session's future.
    queue: Option<Box<FuturesOrdered<Committing>>>,
}

impl Inflight {
    fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&mut self, commit: Committing) {
        self.queue
            .get_or_insert_with(Box::default)
            .push_back(commit);
    }

    /// The oldest commit once it finishes; never resolves while nothing is committing.
    async fn next(&mut self) -> Option<Committed> {
        let Some(queue) = self.queue.as_mut() else {
            return std::future::pending().await;
        };
        let done = queue.next().await;
        if queue.is_empty() {
            self.queue = None;
        }
        done
    }

    /// The oldest commit if it has finished already.
    fn next_ready(&mut self) -> Option<Committed> {
        let queue = self.queue.as_mut()?;
        let done = queue.next().now_or_never().flatten();
        if queue.is_empty() {
            self.queue = None;
        }
        done
    }
}

/// What the read loop does after handling a frame.
enum Flow {
    /// Keep reading.
    Continue,
    /// End the session for this reason (already told to the peer).
    Close(String),
}

/// The logged-in identity of a session.
struct LoggedIn {
    /// Display name of the account.
    name: String,
    /// Id in the hub.
    id: SessionId,
}

/// Per-connection state.
struct Session {
    /// Server-wide state.
    shared: Arc<Shared>,
    /// Remote address, for logs.
    peer: SocketAddr,
    /// This session's queue and closer, as registered in the hub.
    handle: SessionHandle,
    /// Set once logged in.
    user: Option<LoggedIn>,
    /// Lines received before login.
    prelogin_frames: u32,
    /// Failed `auth` attempts on this connection.
    auth_failures: u32,
    /// Public messages committing; published in order as their commits finish.
    inflight: Inflight,
}

/// The `hello` frame that opens every connection.
pub fn hello() -> ServerFrame {
    ServerFrame::Hello {
        server: "natter".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: natter_proto::PROTOCOL_VERSION,
    }
}

/// Why a transport could not hand the session its next frame.
#[derive(Debug)]
pub enum InputError {
    /// A frame longer than the protocol allows; the session says so and closes.
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// Input the transport cannot carry (e.g. a binary WebSocket message); the session
    /// answers with an error and goes on.
    Unsupported(String),
    /// The connection broke.
    Io(String),
}

impl From<CodecError> for InputError {
    fn from(e: CodecError) -> InputError {
        match e {
            CodecError::LineTooLong { max } => InputError::TooLong { max },
            CodecError::Io(e) => InputError::Io(e.to_string()),
        }
    }
}

/// A new session's handle: the outbox the hub delivers into (and the transport's writer
/// drains), ending the session when `shutdown` (this connection's token) is cancelled.
pub fn channel(shared: &Shared, shutdown: CancellationToken) -> SessionHandle {
    SessionHandle::with_token(shared.config.session_queue, shutdown)
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
    let handle = SessionHandle::direct(
        shared.config.session_queue,
        shutdown,
        Wire::Tcp(wr),
        shared.flusher.clone(),
    );
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
    let handle = SessionHandle::direct(
        shared.config.session_queue,
        shutdown,
        Wire::Tls(wr, tls.clone()),
        shared.flusher.clone(),
    );
    if tls.lock().is_ok_and(|c| c.wants_write()) {
        // Records the handshake left unsent (session tickets).
        handle.outbox.kick();
    }
    let rd = TlsReader::new(rd, tls, handle.outbox.clone());
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
    let mut frames = (&mut lines).map(|r| r.map_err(InputError::from));
    run(&mut frames, handle.clone(), peer, accepted, shared).await;
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

/// Runs the session over any transport: `lines` yields one frame's bytes at a time, and
/// `handle` (from [`channel`], or a direct one for plain TCP) holds the outbox that a
/// writer task or the flusher drains to the peer and the token that ends the session
/// (closed for a reason, or shutdown). Returns when the session ends; by then the outbox
/// is closed, so what is queued is written and the writing stops.
pub async fn run<L, T>(
    lines: &mut L,
    handle: SessionHandle,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
) where
    L: futures::Stream<Item = Result<T, InputError>> + Unpin,
    T: AsRef<[u8]>,
{
    let auth_deadline = accepted + shared.config.auth_timeout;
    let mut s = Session {
        shared,
        peer,
        handle,
        user: None,
        prelogin_frames: 0,
        auth_failures: 0,
        inflight: Inflight::default(),
    };
    s.reply(&hello());
    tracing::debug!(%peer, "connection opened");

    let (ping_interval, ping_timeout) =
        (s.shared.config.ping_interval, s.shared.config.ping_timeout);
    let mut last_heard = Instant::now();
    // Set while a ping is outstanding: when it was sent.
    let mut pinged: Option<Instant> = None;
    let mut ping_seq: u64 = 0;
    let reason = loop {
        let logged_in = s.user.is_some();
        let liveness_deadline = match pinged {
            Some(at) => at + ping_timeout,
            None => last_heard + ping_interval,
        };
        // One timer for both deadlines: each costs every connection its size.
        let deadline = if logged_in {
            liveness_deadline
        } else {
            liveness_deadline.min(auth_deadline)
        };
        tokio::select! {
            _ = sleep_until(deadline) => {
                if !logged_in && Instant::now() >= auth_deadline {
                    s.error(None, ErrorCode::NotAuthenticated, "login timed out");
                    s.bye("login timed out");
                    break "login timeout".to_string();
                }
                if pinged.is_some() {
                    s.flush().await;
                    s.bye("ping timeout");
                    break "ping timeout".to_string();
                }
                ping_seq += 1;
                s.reply(&ServerFrame::Ping { id: Some(FrameId::Num(ping_seq)) });
                pinged = Some(Instant::now());
            }
            _ = s.handle.closed() => {
                s.flush().await;
                // Closed without a reason: the server is shutting down.
                let Some(reason) = s.handle.close_reason().map(str::to_string) else {
                    s.reply(&ServerFrame::System { text: "server is shutting down".into() });
                    s.bye("server shutting down");
                    break "server shutting down".to_string();
                };
                s.bye(&reason);
                break reason;
            }
            Some(first) = s.inflight.next(), if !s.inflight.is_empty() => {
                // Publish every commit that has finished, together.
                let mut done = vec![first];
                while done.len() < MAX_PUBLISH {
                    match s.inflight.next_ready() {
                        Some(p) => done.push(p),
                        None => break,
                    }
                }
                // Boxed: delivering is rare per connection, its state need not be part
                // of every idle session's future.
                Box::pin(s.finish(done)).await;
            }
            next = lines.next(), if s.inflight.len() < MAX_INFLIGHT => match next {
                None => break "connection lost".to_string(),
                Some(Err(InputError::TooLong { max })) => {
                    s.flush().await;
                    s.shared.metrics.rejected(ErrorCode::LineTooLong.as_str());
                    s.error(None, ErrorCode::LineTooLong, format!("line longer than {max} bytes; closing"));
                    s.bye("line too long");
                    break "line too long".to_string();
                }
                Some(Err(InputError::Unsupported(what))) => {
                    last_heard = Instant::now();
                    pinged = None;
                    if let Some(Flow::Close(reason)) = s.count_prelogin() {
                        break reason;
                    }
                    s.shared.metrics.rejected(ErrorCode::BadFrame.as_str());
                    s.error(None, ErrorCode::BadFrame, what);
                }
                Some(Err(InputError::Io(e))) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break "connection lost".to_string();
                }
                Some(Ok(line)) => {
                    // Any line proves the peer alive, not only a pong.
                    last_heard = Instant::now();
                    pinged = None;
                    // Boxed: the handler's state is only needed while a frame is being
                    // handled, not by every idle connection.
                    match Box::pin(s.handle_line(line.as_ref())).await {
                        Flow::Continue => {}
                        Flow::Close(reason) => break reason,
                    }
                }
            },
        }
    };

    // Messages sent just before the connection went are still published.
    s.flush().await;
    if let Some(user) = &s.user {
        let left = s.shared.hub.disconnect(user.id, &reason);
        let ts_ms = crate::now_ms();
        for room in left {
            s.shared.emit(Event::RoomPresence {
                room,
                user: user.name.clone(),
                joined: false,
                reason: Some(reason.clone()),
                ts_ms,
            });
        }
        s.shared.emit(Event::System {
            kind: "disconnect",
            detail: format!("user={} addr={peer} reason={reason}", user.name),
            ts_ms,
        });
        tracing::info!(%peer, user = %user.name, %reason, "session ended");
    } else {
        tracing::debug!(%peer, %reason, "connection closed before login");
    }
    s.handle.outbox.close();
}

impl Session {
    fn reply(&self, frame: &ServerFrame) {
        self.handle.deliver(&encode(frame));
    }

    fn error(&self, id: Option<FrameId>, code: ErrorCode, message: impl Into<String>) {
        self.reply(&ServerFrame::error(id, code, message));
    }

    /// Reports an internal failure to the peer (generically) and to the log (fully).
    fn fail(&self, id: Option<FrameId>, e: &dyn std::fmt::Display) {
        let (code, message) = internal(e);
        self.error(id, code, message);
    }

    fn ok(&self, id: Option<FrameId>) {
        if let Some(id) = id {
            self.reply(&ServerFrame::Ok { id });
        }
    }

    fn bye(&self, reason: &str) {
        self.reply(&ServerFrame::Bye {
            reason: reason.to_string(),
        });
    }

    /// Counts a frame against the pre-login budget; `Some(Flow::Close)` once it is
    /// spent (the peer was told).
    fn count_prelogin(&mut self) -> Option<Flow> {
        if self.user.is_some() {
            return None;
        }
        self.prelogin_frames += 1;
        if self.prelogin_frames <= self.shared.config.max_prelogin_frames {
            return None;
        }
        self.shared
            .metrics
            .rejected(ErrorCode::TooManyFrames.as_str());
        self.error(
            None,
            ErrorCode::TooManyFrames,
            "too many frames before login; closing",
        );
        self.bye("too many frames before login");
        Some(Flow::Close("too many frames before login".into()))
    }

    async fn handle_line(&mut self, line: &[u8]) -> Flow {
        if let Some(flow) = self.count_prelogin() {
            return flow;
        }
        let frame = match decode_client(line) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(peer = %self.peer, code = %e.code, "rejected frame");
                self.shared.metrics.rejected(e.code.as_str());
                self.reply(&e.to_frame());
                return Flow::Continue;
            }
        };
        // Anything but another message waits until the messages before it are
        // delivered, so replies and deliveries keep the order the peer sent in.
        if !matches!(
            frame,
            ClientFrame::Public { .. } | ClientFrame::Private { .. }
        ) {
            self.flush().await;
        }
        if let Some(FrameId::Str(id)) = frame.id()
            && id.len() > MAX_ID_LEN
        {
            self.error(
                None,
                ErrorCode::IdTooLong,
                format!("request ids are at most {MAX_ID_LEN} bytes"),
            );
            return Flow::Continue;
        }
        match (frame, self.user.is_some()) {
            (ClientFrame::Ping { id }, _) => self.reply(&ServerFrame::Pong { id }),
            (ClientFrame::Pong { .. }, _) => {}
            (ClientFrame::Quit { .. }, _) => {
                self.bye("quit");
                return Flow::Close("quit".into());
            }
            (ClientFrame::Auth { id, .. }, true) => {
                self.error(id, ErrorCode::AlreadyAuthenticated, "already logged in")
            }
            (
                ClientFrame::Auth {
                    id,
                    user,
                    password,
                    register,
                },
                false,
            ) => return self.auth(id, &user, &password, register).await,
            (other, false) => {
                self.shared
                    .metrics
                    .rejected(ErrorCode::NotAuthenticated.as_str());
                self.error(
                    other.id().cloned(),
                    ErrorCode::NotAuthenticated,
                    format!(
                        "log in first: '{}' needs an authenticated session",
                        other.kind()
                    ),
                )
            }
            (ClientFrame::Public { id, room, text }, true) => {
                return self.public(id, room.as_deref(), &text).await;
            }
            (ClientFrame::Private { id, to, text }, true) => {
                return self.private(id, &to, &text).await;
            }
            (ClientFrame::List { id }, true) => {
                let (users, more) = cap_names(self.shared.hub.online_users());
                self.reply(&ServerFrame::List { id, users, more });
            }
            (ClientFrame::Join { id, room }, true) => {
                if let Some(room) = self.room_arg(&id, &room) {
                    if let Err(flow) = self.admit_room_op(&id).await {
                        return flow;
                    }
                    self.join(id, &room).await;
                }
            }
            (ClientFrame::Part { id, room }, true) => {
                if let Some(room) = self.room_arg(&id, &room) {
                    if let Err(flow) = self.admit_room_op(&id).await {
                        return flow;
                    }
                    self.part(id, &room);
                }
            }
            (ClientFrame::Rooms { id }, true) => {
                let mut rooms = self.shared.hub.rooms();
                let more = rooms.len().saturating_sub(MAX_NAMES);
                rooms.truncate(MAX_NAMES);
                self.reply(&ServerFrame::Rooms {
                    id,
                    rooms,
                    more: u32::try_from(more).unwrap_or(u32::MAX),
                });
            }
            (ClientFrame::Who { id, room }, true) => {
                if let Some(room) = self.room_arg(&id, &room) {
                    let (users, more) =
                        members_list(self.shared.hub.who(&room).unwrap_or_default());
                    self.reply(&ServerFrame::Who {
                        id,
                        room,
                        users,
                        more,
                    });
                }
            }
            (
                ClientFrame::History {
                    id,
                    room,
                    with,
                    before,
                    limit,
                },
                true,
            ) => self.history(id, room, with, before, limit).await,
        }
        Flow::Continue
    }

    async fn auth(
        &mut self,
        id: Option<FrameId>,
        user: &str,
        password: &str,
        register: bool,
    ) -> Flow {
        let result = if register {
            self.register(user, password).await
        } else {
            self.login(user, password).await
        };
        match result {
            Ok(name) => {
                self.shared.metrics.login(true);
                self.reply(&ServerFrame::AuthOk {
                    id,
                    user: name.clone(),
                    registered: register,
                });
                let sid = self.shared.hub.connect(&name, self.handle.clone());
                tracing::info!(peer = %self.peer, user = %name, registered = register, "logged in");
                self.shared.emit(Event::System {
                    kind: if register { "register" } else { "login" },
                    detail: format!("user={name} addr={}", self.peer),
                    ts_ms: crate::now_ms(),
                });
                self.user = Some(LoggedIn {
                    name: name.clone(),
                    id: sid,
                });
                self.join(None, DEFAULT_ROOM).await;
                self.deliver_pending(&name).await;
                Flow::Continue
            }
            Err((code, message)) => {
                self.error(id, code, message);
                if matches!(code, ErrorCode::AuthFailed | ErrorCode::Banned) {
                    self.shared.metrics.login(false);
                }
                if code == ErrorCode::Banned {
                    self.shared.emit(Event::System {
                        kind: "login_refused",
                        detail: format!("user={user} addr={} reason=banned", self.peer),
                        ts_ms: crate::now_ms(),
                    });
                }
                if matches!(code, ErrorCode::AuthFailed | ErrorCode::UsernameTaken) {
                    // A taken name counts like a wrong password (see `register`).
                    self.auth_failures += 1;
                    tracing::info!(peer = %self.peer, register, "failed login");
                    // Only valid names reach the log file: the name is attacker-chosen.
                    let shown = if validate_username(user).is_ok() {
                        user
                    } else {
                        "(invalid)"
                    };
                    self.shared.emit(Event::System {
                        kind: if register {
                            "register_failed"
                        } else {
                            "login_failed"
                        },
                        detail: format!("user={shown} addr={}", self.peer),
                        ts_ms: crate::now_ms(),
                    });
                    if self.auth_failures >= MAX_AUTH_FAILURES {
                        self.bye("too many failed logins");
                        return Flow::Close("too many failed logins".into());
                    }
                }
                Flow::Continue
            }
        }
    }

    async fn register(&self, user: &str, password: &str) -> Result<String, (ErrorCode, String)> {
        validate_username(user).map_err(|e| (ErrorCode::InvalidUsername, e.to_string()))?;
        check_new_password(password).map_err(|m| (ErrorCode::InvalidPassword, m))?;
        // A taken name is revealed, so registrations pass the address's gate like
        // logins and a taken name counts as a failure: names cannot be enumerated
        // faster than passwords can be guessed.
        let attempt = self.shared.logins.begin(None, self.peer.ip()).await;
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        let hash = self
            .shared
            .auth
            .hash(password)
            .await
            .map_err(|e| internal(&e))?;
        match self.shared.store.create_user(user, &hash).await {
            Ok(()) => Ok(user.to_string()),
            Err(StoreError::NameTaken) => {
                attempt.failed(Instant::now());
                Err((
                    ErrorCode::UsernameTaken,
                    format!("the user name '{user}' is already taken"),
                ))
            }
            Err(e) => Err(internal(&e)),
        }
    }

    async fn login(&self, user: &str, password: &str) -> Result<String, (ErrorCode, String)> {
        let valid = validate_username(user).is_ok();
        // Invalid names share one key: they cannot be accounts, and an attacker-chosen
        // string must not become a large map key.
        let key = if valid {
            natter_proto::name_key(user)
        } else {
            String::new()
        };
        // Reserved before the hash, so parallel guesses wait as guesses one after
        // another would; the connection waits here, holding only its own slot.
        let attempt = self.shared.logins.begin(Some(&key), self.peer.ip()).await;
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        let record = if valid {
            self.shared
                .store
                .get_user(user)
                .await
                .map_err(|e| internal(&e))?
        } else {
            None
        };
        // Unknown users are verified against a dummy hash: same time, same answer.
        let ok = self
            .shared
            .auth
            .verify(password, record.as_ref().map(|r| r.password_hash.as_str()))
            .await;
        match record {
            Some(r) if ok => {
                attempt.succeeded(Instant::now());
                if r.banned {
                    return Err((
                        ErrorCode::Banned,
                        "this account is banned by an operator".to_string(),
                    ));
                }
                Ok(r.name)
            }
            _ => {
                attempt.failed(Instant::now());
                Err((
                    ErrorCode::AuthFailed,
                    "invalid user name or password".to_string(),
                ))
            }
        }
    }

    /// Checks a chat message against the text rules and the account's rate limit.
    /// `Err` carries what to do instead of sending: the error was already reported, but
    /// for `Flow::Close` the caller still says bye.
    fn admit_message(&self, id: &Option<FrameId>, text: &str) -> Result<(), Flow> {
        if text.trim().is_empty() {
            self.error(id.clone(), ErrorCode::EmptyMessage, "message is empty");
            return Err(Flow::Continue);
        }
        let max = self.shared.config.max_message_bytes;
        if text.len() > max {
            self.error(
                id.clone(),
                ErrorCode::MessageTooLong,
                format!("message is {} bytes; the limit is {max}", text.len()),
            );
            return Err(Flow::Continue);
        }
        self.admit_rate(id, &self.shared.messages, Spend::Message)
    }

    /// Takes a token from `limiter` for the logged-in account; on refusal reports it
    /// (rate limited, muted) and says what to do instead, as [`Session::admit_message`].
    fn admit_rate(
        &self,
        id: &Option<FrameId>,
        limiter: &MessageLimiter,
        spend: Spend,
    ) -> Result<(), Flow> {
        let Some(me) = &self.user else {
            return Err(Flow::Continue);
        };
        let verdict = limiter.check(&natter_proto::name_key(&me.name), Instant::now());
        let not_done = spend.not_done();
        let retry = |d: std::time::Duration| Some(d.as_millis().max(1) as u64);
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Limited(wait) => {
                self.shared
                    .metrics
                    .rejected(ErrorCode::RateLimited.as_str());
                self.shared.emit(Event::System {
                    kind: "rate_limited",
                    detail: format!("user={}", me.name),
                    ts_ms: crate::now_ms(),
                });
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::RateLimited,
                    message: format!(
                        "slow down: {not_done}; you can {} again in {} ms",
                        spend.verb(),
                        wait.as_millis().max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::MutedByOperator(wait) => {
                self.shared.metrics.rejected(ErrorCode::Muted.as_str());
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::Muted,
                    message: format!(
                        "an operator muted you; {not_done}; the mute ends in {} s",
                        wait.as_millis().div_ceil(1000).max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::Muted(wait) => {
                self.shared.metrics.rejected(ErrorCode::Muted.as_str());
                self.shared.emit(Event::System {
                    kind: "muted",
                    detail: format!("user={} secs={}", me.name, wait.as_millis().div_ceil(1000)),
                    ts_ms: crate::now_ms(),
                });
                tracing::info!(peer = %self.peer, user = %me.name, secs = wait.as_secs(), "muted for flooding");
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::Muted,
                    message: format!(
                        "you are muted for flooding; {not_done}; the mute ends in {} s",
                        wait.as_millis().div_ceil(1000).max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::Disconnect => {
                tracing::warn!(peer = %self.peer, user = %me.name, what = spend.verb(), "disconnected for flooding");
                // The caller says bye, after publishing what was accepted before.
                Err(Flow::Close("disconnected for flooding".into()))
            }
        }
    }

    /// Takes a token for joining or leaving a room: each one may send presence to every
    /// member, so one account must not make the others receive more than a few per
    /// second. On `Flow::Close` the bye has been said.
    async fn admit_room_op(&mut self, id: &Option<FrameId>) -> Result<(), Flow> {
        let verdict = self.admit_rate(id, &self.shared.room_ops, Spend::RoomOp);
        if let Err(Flow::Close(reason)) = &verdict {
            self.flush().await;
            self.bye(reason);
        }
        verdict
    }

    /// Validates a room name from the peer; reports `invalid_room` and returns `None`
    /// when it is not one.
    fn room_arg(&self, id: &Option<FrameId>, room: &str) -> Option<String> {
        match parse_room(room) {
            Ok(room) => Some(room),
            Err(e) => {
                self.error(
                    id.clone(),
                    ErrorCode::InvalidRoom,
                    format!(
                        "'{}' is not a valid room name: {}",
                        neutralize(&clip(room)),
                        room_rule(&e)
                    ),
                );
                None
            }
        }
    }

    /// Queues a public message for storage; it is published once committed (see
    /// [`Session::publish`]), while the session goes on reading.
    async fn public(&mut self, id: Option<FrameId>, room: Option<&str>, text: &str) -> Flow {
        let Some(me) = &self.user else {
            return Flow::Continue;
        };
        let Some(room) = self.room_arg(&id, room.unwrap_or(DEFAULT_ROOM)) else {
            return Flow::Continue;
        };
        if !self.shared.hub.in_room(me.id, &room) {
            self.error(
                id,
                ErrorCode::NotInRoom,
                format!("you are not in #{room}; /join {room} first"),
            );
            return Flow::Continue;
        }
        if let Err(flow) = self.admit_message(&id, text) {
            if let Flow::Close(reason) = &flow {
                self.flush().await;
                self.bye(reason);
            }
            return flow;
        }
        // Durable before visible: published only once committed.
        let Some(msg) = self.new_message(Target::Room(room.clone()), text) else {
            return Flow::Continue;
        };
        match self.shared.store.queue_message(msg).await {
            Ok(commit) => self.inflight.push_back(Box::pin(async move {
                Committed::Public(Published {
                    id,
                    room,
                    result: commit.await,
                })
            })),
            Err(e) => self.fail(id, &e),
        }
        Flow::Continue
    }

    /// Publishes committed public messages: each run of messages to one room is encoded
    /// once into one chunk that every member's queue gets, then the `ok`s go out together.
    fn publish(&self, done: Vec<Published>) {
        let Some(me) = &self.user else { return };
        let (mut oks, mut ok_frames) = (Vec::new(), 0);
        let mut done = done.into_iter().peekable();
        while let Some(first) = done.next() {
            let room = first.room.clone();
            let mut run = vec![first];
            while let Some(next) = done.next_if(|p| p.room == room) {
                run.push(next);
            }
            let started = std::time::Instant::now();
            let mut lines = Vec::with_capacity(run.len() * 192);
            let mut published = Vec::with_capacity(run.len());
            for p in run {
                match p.result {
                    Ok(StoredMessage {
                        id: msg_id, msg, ..
                    }) => {
                        encode_into(
                            &ServerFrame::Public {
                                msg_id,
                                room: room.clone(),
                                from: msg.from.clone(),
                                text: msg.text.clone(),
                                ts: msg.ts,
                            },
                            &mut lines,
                        );
                        published.push((p.id, msg));
                    }
                    Err(e) => self.fail(p.id, &e),
                }
            }
            if published.is_empty() {
                continue;
            }
            // The session may have left the room while the messages were being stored;
            // they are kept in the history either way.
            let copies = self
                .shared
                .hub
                .broadcast_room_lines(me.id, &room, &lines.into(), published.len())
                .unwrap_or(0);
            let elapsed = started.elapsed();
            for (id, msg) in published {
                self.shared.metrics.message("public", copies, elapsed);
                self.shared.emit(Event::Room {
                    room: room.clone(),
                    from: msg.from,
                    text: msg.text,
                    ts_ms: msg.ts,
                });
                if let Some(id) = id {
                    encode_into(&ServerFrame::Ok { id }, &mut oks);
                    ok_frames += 1;
                }
            }
        }
        if ok_frames > 0 {
            self.handle.deliver_lines(&oks.into(), ok_frames);
        }
    }

    /// Delivers committed messages in the order they were sent: runs of public messages
    /// together (see [`Session::publish`]), private messages one by one.
    async fn finish(&mut self, done: Vec<Committed>) {
        let mut run = Vec::new();
        for c in done {
            match c {
                Committed::Public(p) => run.push(p),
                Committed::Private(p) => {
                    if !run.is_empty() {
                        self.publish(std::mem::take(&mut run));
                    }
                    self.deliver_private(p).await;
                }
            }
        }
        if !run.is_empty() {
            self.publish(run);
        }
    }

    /// Waits for every message still committing and delivers them.
    async fn flush(&mut self) {
        // Boxed, and only when there is something to wait for: the drain's state would
        // otherwise be part of every connection's session future for its whole life.
        if !self.inflight.is_empty() {
            Box::pin(self.drain()).await;
        }
    }

    /// [`Session::flush`]'s work.
    async fn drain(&mut self) {
        let mut done = Vec::new();
        while !self.inflight.is_empty() {
            let Some(c) = self.inflight.next().await else {
                break;
            };
            done.push(c);
        }
        if !done.is_empty() {
            self.finish(done).await;
        }
    }

    /// Queues a private message for storage; it is delivered once committed (see
    /// [`Session::deliver_private`]), while the session goes on reading.
    async fn private(&mut self, id: Option<FrameId>, to: &str, text: &str) -> Flow {
        if self.user.is_none() {
            return Flow::Continue;
        }
        if validate_username(to).is_err() {
            self.error(
                id,
                ErrorCode::NoSuchUser,
                format!("'{}' is not a valid user name", neutralize(&clip(to))),
            );
            return Flow::Continue;
        }
        if let Err(flow) = self.admit_message(&id, text) {
            if let Flow::Close(reason) = &flow {
                self.flush().await;
                self.bye(reason);
            }
            return flow;
        }
        // The recipient's display name, and whether they exist at all.
        let (to_name, online) = match self.shared.hub.online_name(to) {
            Some(name) => (name, true),
            None => match self.shared.store.get_user(to).await {
                Ok(Some(r)) => (r.name, false),
                Ok(None) => {
                    self.error(id, ErrorCode::NoSuchUser, format!("no user named '{to}'"));
                    return Flow::Continue;
                }
                Err(e) => {
                    self.fail(id, &e);
                    return Flow::Continue;
                }
            },
        };
        let target = Target::User {
            to: to_name.clone(),
            pending: !online,
        };
        let Some(msg) = self.new_message(target, text) else {
            return Flow::Continue;
        };
        match self.shared.store.queue_message(msg).await {
            Ok(commit) => self.inflight.push_back(Box::pin(async move {
                Committed::Private(PrivateSent {
                    id,
                    to: to_name,
                    online,
                    result: commit.await,
                })
            })),
            Err(e) => self.fail(id, &e),
        }
        Flow::Continue
    }

    /// Delivers a committed private message to the recipient's and the sender's
    /// sessions, or queues it for the recipient's next login if they are offline.
    async fn deliver_private(&self, sent: PrivateSent) {
        let Some(me) = &self.user else { return };
        let PrivateSent {
            id,
            to: to_name,
            online,
            result,
        } = sent;
        let StoredMessage {
            id: msg_id, msg, ..
        } = match result {
            Ok(stored) => stored,
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        };
        self.shared.emit(Event::Private {
            from: msg.from.clone(),
            to: to_name.clone(),
            text: msg.text.clone(),
            ts_ms: msg.ts,
        });
        let frame = |to: &str| ServerFrame::Private {
            msg_id,
            from: msg.from.clone(),
            to: to.to_string(),
            text: msg.text.clone(),
            ts: msg.ts,
            late: false,
        };
        let started = std::time::Instant::now();
        let copies = if online {
            self.shared.hub.send_private(&me.name, &to_name, frame).ok()
        } else {
            None
        };
        self.shared
            .metrics
            .message("private", copies.unwrap_or(0), started.elapsed());
        if copies.is_some() {
            self.ok(id);
            return;
        }
        if online {
            // They went offline between the check and the delivery: queue it after all.
            if let Err(e) = self.shared.store.mark_pending(msg_id).await {
                self.fail(id, &e);
                return;
            }
        }
        // The sender's own sessions see the message in the conversation.
        self.shared.hub.send_to_user(&me.name, &frame(&to_name));
        self.reply(&ServerFrame::Queued {
            id,
            msg_id,
            to: to_name.clone(),
        });
        // They may have logged in while it was being stored, after their login took
        // the queue; taking it again delivers it now (each message goes out once).
        if self.shared.hub.online_name(&to_name).is_some() {
            self.deliver_pending(&to_name).await;
        }
    }

    /// A message from this session's user to `target`: text neutralised, stamped now.
    fn new_message(&self, target: Target, text: &str) -> Option<NewMessage> {
        let me = self.user.as_ref()?;
        Some(NewMessage {
            from: me.name.clone(),
            target,
            text: neutralize(text).into_owned(),
            ts: crate::now_ms(),
        })
    }

    /// Delivers the private messages queued for `user` to all their sessions, once.
    async fn deliver_pending(&self, user: &str) {
        match self.shared.store.take_pending(user).await {
            Ok(msgs) => {
                for m in msgs {
                    let Target::User { to, .. } = m.msg.target else {
                        continue;
                    };
                    self.shared.metrics.deliveries("private", 1);
                    self.shared.hub.send_to_user(
                        user,
                        &ServerFrame::Private {
                            msg_id: m.id,
                            from: m.msg.from,
                            to,
                            text: m.msg.text,
                            ts: m.msg.ts,
                            late: true,
                        },
                    );
                }
            }
            Err(e) => {
                internal(&e);
            }
        }
    }

    /// Joins `room`: `joined` with the members, then its latest history.
    async fn join(&self, id: Option<FrameId>, room: &str) {
        let Some(me) = &self.user else { return };
        match self.shared.hub.join_room(me.id, room) {
            Ok((members, new_member)) => {
                if new_member {
                    self.shared.emit(Event::RoomPresence {
                        room: room.to_string(),
                        user: me.name.clone(),
                        joined: true,
                        reason: None,
                        ts_ms: crate::now_ms(),
                    });
                }
                let (members, more) = members_list(members);
                self.reply(&ServerFrame::Joined {
                    id,
                    room: room.to_string(),
                    members,
                    more,
                });
                let limit = self.shared.config.history_on_join;
                self.send_history(None, Some(room.to_string()), None, None, limit)
                    .await;
            }
            Err(RoomError::TooManyRooms) => self.error(
                id,
                ErrorCode::TooManyRooms,
                format!(
                    "you are in {} rooms already; /part one first",
                    self.shared.config.max_rooms_per_session
                ),
            ),
            Err(RoomError::NotInRoom | RoomError::NoSession) => {}
        }
    }

    fn part(&self, id: Option<FrameId>, room: &str) {
        let Some(me) = &self.user else { return };
        match self.shared.hub.part_room(me.id, room, "part") {
            Ok(left) => {
                if left {
                    self.shared.emit(Event::RoomPresence {
                        room: room.to_string(),
                        user: me.name.clone(),
                        joined: false,
                        reason: Some("part".into()),
                        ts_ms: crate::now_ms(),
                    });
                }
                self.reply(&ServerFrame::Parted {
                    id,
                    room: room.to_string(),
                });
            }
            Err(_) => self.error(id, ErrorCode::NotInRoom, format!("you are not in #{room}")),
        }
    }

    async fn history(
        &self,
        id: Option<FrameId>,
        room: Option<String>,
        with: Option<String>,
        before: Option<u64>,
        limit: Option<u32>,
    ) {
        let Some(me) = &self.user else { return };
        let limit = limit
            .unwrap_or(self.shared.config.history_on_join.max(1))
            .min(crate::config::MAX_HISTORY);
        match (room, with) {
            (Some(room), None) => {
                let Some(room) = self.room_arg(&id, &room) else {
                    return;
                };
                if !self.shared.hub.in_room(me.id, &room) {
                    self.error(
                        id,
                        ErrorCode::NotInRoom,
                        format!("join #{room} to read its history"),
                    );
                    return;
                }
                self.send_history(id, Some(room), None, before, limit).await;
            }
            (None, Some(with)) => {
                if validate_username(&with).is_err() {
                    self.error(
                        id,
                        ErrorCode::NoSuchUser,
                        format!("'{}' is not a valid user name", neutralize(&clip(&with))),
                    );
                    return;
                }
                self.send_history(id, None, Some(with), before, limit).await;
            }
            _ => self.error(
                id,
                ErrorCode::BadFrame,
                "history needs exactly one of 'room' and 'with'",
            ),
        }
    }

    /// Sends stored messages as `history` frames, split so every line fits.
    async fn send_history(
        &self,
        id: Option<FrameId>,
        room: Option<String>,
        with: Option<String>,
        before: Option<u64>,
        limit: u32,
    ) {
        let Some(me) = &self.user else { return };
        let result = match (&room, &with) {
            (Some(room), _) => self.shared.store.room_history(room, before, limit).await,
            (None, Some(with)) => {
                self.shared
                    .store
                    .private_history(&me.name, with, before, limit)
                    .await
            }
            (None, None) => Ok(Vec::new()),
        };
        let msgs = match result {
            Ok(msgs) => msgs,
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        };
        let entries = msgs.into_iter().map(|m| HistoryEntry {
            msg_id: m.id,
            from: m.msg.from,
            to: match m.msg.target {
                Target::User { to, .. } => Some(to),
                Target::Room(_) => None,
            },
            text: m.msg.text,
            ts: m.msg.ts,
        });
        for frame in history_frames(id, room, with, entries) {
            self.reply(&frame);
        }
    }
}

/// Explains why a room name was refused, in room-name terms.
fn room_rule(e: &natter_proto::NameError) -> String {
    use natter_proto::NameError;
    match e {
        NameError::Empty => "room name must not be empty".into(),
        NameError::TooLong => format!(
            "room name must be at most {} characters",
            natter_proto::MAX_USERNAME_LEN
        ),
        NameError::BadChar => {
            "room name may only contain ASCII letters, digits, '_' and '-' (after one optional '#')"
                .into()
        }
    }
}

/// A room's listed members and how many more there are, for `joined` and `who`.
fn members_list(m: Members) -> (Vec<String>, u32) {
    let more = m.total.saturating_sub(m.names.len());
    (m.names, u32::try_from(more).unwrap_or(u32::MAX))
}

/// Caps a name list at [`MAX_NAMES`], returning the names kept and how many were cut.
fn cap_names(mut names: Vec<String>) -> (Vec<String>, u32) {
    let more = names.len().saturating_sub(MAX_NAMES);
    names.truncate(MAX_NAMES);
    (names, u32::try_from(more).unwrap_or(u32::MAX))
}

/// Splits history entries into `history` frames whose encoded lines stay within the
/// protocol's line limit; the last frame has `last: true` (there is always one).
fn history_frames(
    id: Option<FrameId>,
    room: Option<String>,
    with: Option<String>,
    entries: impl Iterator<Item = HistoryEntry>,
) -> Vec<ServerFrame> {
    // Room for the envelope: type, id (at most MAX_ID_LEN), room or user name, flag.
    let budget = MAX_LINE - 512;
    let mut chunks: Vec<Vec<HistoryEntry>> = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let n = serde_json::to_vec(&e).map_or(budget, |v| v.len() + 1);
        if size + n > budget && chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(c) = chunks.last_mut() {
            c.push(e);
        }
    }
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, messages)| ServerFrame::History {
            id: id.clone(),
            room: room.clone(),
            with: with.clone(),
            messages,
            last: i + 1 == count,
        })
        .collect()
}

/// What a rate-limit token pays for; names the refused action in errors.
#[derive(Debug, Clone, Copy)]
enum Spend {
    /// A chat message (public or private).
    Message,
    /// Joining or leaving a room.
    RoomOp,
}

impl Spend {
    /// What did not happen, for the error message.
    fn not_done(self) -> &'static str {
        match self {
            Spend::Message => "message not sent",
            Spend::RoomOp => "too many joins and parts",
        }
    }

    /// What the user may do again later.
    fn verb(self) -> &'static str {
        match self {
            Spend::Message => "send",
            Spend::RoomOp => "join or leave rooms",
        }
    }
}

/// Logs an internal failure and returns the generic answer for the peer.
fn internal(e: &dyn std::fmt::Display) -> (ErrorCode, String) {
    tracing::error!(error = %e, "internal error");
    (
        ErrorCode::Internal,
        "internal server error; try again later".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_split_into_lines_that_fit() {
        let big = "\u{1}".repeat(crate::config::MAX_MESSAGE_BYTES);
        let text = neutralize(&big).into_owned();
        let entries = (0..20).map(|i| HistoryEntry {
            msg_id: i,
            from: "x".repeat(32),
            to: Some("y".repeat(32)),
            text: text.clone(),
            ts: u64::MAX,
        });
        let id = Some(FrameId::Str("i".repeat(MAX_ID_LEN)));
        let frames = history_frames(id, None, Some("y".repeat(32)), entries);
        assert_eq!(frames.len(), 20, "one huge message per frame");
        let mut total = 0;
        for (i, f) in frames.iter().enumerate() {
            let line = encode(f);
            assert!(line.len() - 1 <= MAX_LINE, "{}", line.len());
            let ServerFrame::History { messages, last, .. } = f else {
                panic!("history frame");
            };
            assert_eq!(*last, i == 19);
            total += messages.len();
        }
        assert_eq!(total, 20);
        let small = (0..50).map(|i| HistoryEntry {
            msg_id: i,
            from: "a".into(),
            to: None,
            text: "hi".into(),
            ts: 1,
        });
        assert_eq!(
            history_frames(None, Some("lobby".into()), None, small).len(),
            1
        );
        let none = history_frames(None, Some("lobby".into()), None, std::iter::empty());
        assert!(
            matches!(&none[..], [ServerFrame::History { last: true, messages, .. }] if messages.is_empty())
        );
    }
}
