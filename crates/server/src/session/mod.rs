//! One task per connection: enforce the pre-login rules and each command's rules, run
//! the command, talk to the hub.
//!
//! A session is a small state machine: unauthenticated (only `auth`, `ping`, `pong` and
//! `quit` are allowed, within a time and frame budget) → authenticated (chat) → closing.
//! It takes [`ClientFrame`]s from a transport adapter (see [`crate::transport`]) and
//! queues [`ServerFrame`]s in its bounded outbox through its [`SessionHandle`], which
//! encodes them in the peer's wire format; it never sees bytes. Each command's rules
//! are declared in one table ([`commands`]); the handlers live in one file per concern:
//! [`login`] (auth and throttling), [`admission`] (message rules and rate limits),
//! [`commit`] (the commit pipeline and publishing), [`private`] (private and offline
//! delivery), [`rooms`] (rooms, members and history).

mod admission;
mod commands;
mod commit;
mod login;
mod notice;
mod private;
mod rooms;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use natter_proto::{ClientFrame, ErrorCode, FrameError, FrameId, ServerFrame};
use tokio::time::{Instant, sleep_until};

use crate::Shared;
use crate::hub::{SessionHandle, SessionId};
use crate::transcript::Event;
use commands::Admitted;
use commit::Inflight;

/// Failed logins allowed on one connection before it is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Most public messages one session may have committing at once; its further input
/// waits. Letting several commit together is what lets one fsync cover many messages.
const MAX_INFLIGHT: usize = 128;

/// Most committed messages published together (one chunk per room member).
const MAX_PUBLISH: usize = 256;

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
    /// The parting words of a `quit`, for the rooms this session leaves.
    quit_message: Option<String>,
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
    /// When the peer must have logged in.
    auth_deadline: Instant,
    /// When the peer was last heard from (any input).
    last_heard: Instant,
    /// Set while a ping is outstanding: when it was sent.
    pinged: Option<Instant>,
    /// Id of the last ping sent.
    ping_seq: u64,
}

/// Waits for the first of: `deadline`, the session's end, a finished commit, the next
/// frame (while fewer than `MAX_INFLIGHT` messages are committing).
async fn wake_on<F>(
    inflight: &mut Inflight,
    handle: &SessionHandle,
    frames: &mut F,
    deadline: impl Future<Output = ()>,
) -> Wake
where
    F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
{
    tokio::select! {
        _ = deadline => Wake::Deadline,
        _ = handle.closed() => Wake::Closed,
        Some(first) = inflight.next(), if !inflight.is_empty() => Wake::Committed(first),
        next = frames.next(), if inflight.len() < MAX_INFLIGHT => Wake::Input(next),
    }
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
    /// A unit of input that is not a valid frame; the session answers with the error
    /// (its code, and the request id if one could be read) and goes on.
    Invalid(FrameError),
    /// Input the transport cannot carry (e.g. a binary WebSocket message); the session
    /// answers with an error and goes on.
    Unsupported(String),
    /// The connection broke.
    Io(String),
}

/// What woke an idle session.
enum Wake {
    /// The login or liveness deadline passed.
    Deadline,
    /// The session was told to end (closed for a reason, or shutdown).
    Closed,
    /// Commits finished: the oldest one.
    Committed(commit::Committed),
    /// The transport's next frame, or why there is none.
    Input(Option<Result<ClientFrame, InputError>>),
}

/// Runs the session over any transport: `frames` yields the peer's frames (or why the
/// transport could not make one; a transport adapter turns its bytes into these), and
/// `handle` holds the outbox that a writer task or the flusher drains to the peer, the
/// peer's wire format, and the token that ends the session (closed for a reason, or
/// shutdown). Resolves when the session ends; by then the outbox is closed, so what is
/// queued is written and the writing stops.
pub fn run<'a, F>(
    frames: &'a mut F,
    handle: SessionHandle,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + 'a
where
    F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
{
    let mut session = Pending::new(handle, peer, accepted, shared);
    async move { session.run(frames).await }
}

/// A session not yet running: [`run`] in two steps, for a transport whose future holds
/// the session beside the state its frames come from (see [`crate::transport::tcp`]).
///
/// [`run`] and [`Pending::new`] are not `async fn`s: such a function keeps its arguments
/// in its future beside what is made of them, for the session's whole life (the
/// compiler does not overlap them), and every connection pays for its future's size
/// while it is idle.
pub struct Pending(Session);

impl Pending {
    /// A session for the peer at `peer`, accepted at `accepted`, writing through
    /// `handle` (see [`run`]).
    pub fn new(
        handle: SessionHandle,
        peer: SocketAddr,
        accepted: Instant,
        shared: Arc<Shared>,
    ) -> Pending {
        Pending(Session {
            auth_deadline: accepted + shared.config.auth_timeout,
            shared,
            peer,
            handle,
            user: None,
            prelogin_frames: 0,
            quit_message: None,
            auth_failures: 0,
            inflight: Inflight::default(),
            last_heard: Instant::now(),
            pinged: None,
            ping_seq: 0,
        })
    }

    /// The session's outbox.
    pub fn outbox(&self) -> &Arc<crate::outbox::Outbox> {
        &self.0.handle.outbox
    }

    /// How long the session's last frames may take to be written at its end.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        self.0.shared.config.shutdown_grace
    }

    /// Runs the session on `frames` (see [`run`]). The session stays where it is (in
    /// the caller's future), borrowed: moving it into this future would leave the
    /// caller's copy in place, unused, for the session's whole life.
    pub async fn run<F>(&mut self, frames: &mut F)
    where
        F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
    {
        let reason = self.0.serve(frames).await;
        Box::pin(self.0.end(reason)).await;
    }
}

impl Session {
    /// Hello, then frames until the session ends; returns why it ended.
    async fn serve<F>(&mut self, frames: &mut F) -> String
    where
        F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
    {
        self.reply(&hello());
        tracing::debug!(peer = %self.peer, "connection opened");
        loop {
            let wake = self.next_wake(frames).await;
            // Boxed: what handling needs is held only while it runs, not by every idle
            // session's future (a frame alone is over 100 bytes).
            if let Some(reason) = Box::pin(self.on_wake(wake)).await {
                return reason;
            }
        }
    }

    /// Waits for whatever the session must act on next.
    async fn next_wake<F>(&mut self, frames: &mut F) -> Wake
    where
        F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
    {
        let (deadline, logged_in) = (self.deadline(), self.user.is_some());
        let (inflight, handle) = (&mut self.inflight, &self.handle);
        if !logged_in {
            // Boxed: only a session that has not logged in keeps a timer (112 bytes) of
            // its own; the server's sweeper wakes logged-in ones (`Bus::wake_due`).
            return Box::pin(wake_on(inflight, handle, frames, sleep_until(deadline))).await;
        }
        handle.outbox.set_deadline(deadline);
        wake_on(inflight, handle, frames, handle.outbox.due()).await
    }

    /// When the session must next act on its own: the liveness deadline (send a ping,
    /// or give up on an unanswered one), and before login the login deadline.
    fn deadline(&self) -> Instant {
        let config = &self.shared.config;
        let liveness = match self.pinged {
            Some(at) => at + config.ping_timeout,
            None => self.last_heard + config.ping_interval,
        };
        if self.user.is_some() {
            liveness
        } else {
            liveness.min(self.auth_deadline)
        }
    }

    /// Any input proves the peer alive, not only a pong.
    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged = None;
    }

    /// Acts on what woke the session; `Some(reason)` when the session ends.
    async fn on_wake(&mut self, wake: Wake) -> Option<String> {
        match wake {
            Wake::Deadline => {
                if Instant::now() < self.deadline() {
                    // Only a deadline that has passed is acted on; this one has not.
                    return None;
                }
                if self.user.is_none() && Instant::now() >= self.auth_deadline {
                    self.error(None, ErrorCode::NotAuthenticated, "login timed out");
                    self.bye("login timed out");
                    return Some("login timeout".to_string());
                }
                if self.pinged.is_some() {
                    self.flush().await;
                    self.bye("ping timeout");
                    return Some("ping timeout".to_string());
                }
                self.ping_seq += 1;
                self.reply(&ServerFrame::Ping {
                    id: Some(FrameId::Num(self.ping_seq)),
                });
                self.pinged = Some(Instant::now());
            }
            Wake::Closed => {
                self.flush().await;
                // Closed without a reason: the server is shutting down.
                let Some(reason) = self.handle.close_reason().map(str::to_string) else {
                    self.reply(&ServerFrame::System {
                        text: "server is shutting down".into(),
                    });
                    self.bye("server shutting down");
                    return Some("server shutting down".to_string());
                };
                self.bye(&reason);
                return Some(reason);
            }
            Wake::Committed(first) => {
                // Publish every commit that has finished, together.
                let mut done = vec![first];
                while done.len() < MAX_PUBLISH {
                    match self.inflight.next_ready() {
                        Some(p) => done.push(p),
                        None => break,
                    }
                }
                self.finish(done).await;
            }
            Wake::Input(None) => return Some("connection lost".to_string()),
            Wake::Input(Some(Err(InputError::TooLong { max }))) => {
                self.flush().await;
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), ErrorCode::LineTooLong.as_str());
                self.error(
                    None,
                    ErrorCode::LineTooLong,
                    format!("line longer than {max} bytes; closing"),
                );
                self.bye("line too long");
                return Some("line too long".to_string());
            }
            Wake::Input(Some(Err(InputError::Unsupported(what)))) => {
                self.heard();
                if let Some(Flow::Close(reason)) = self.count_prelogin() {
                    return Some(reason);
                }
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), ErrorCode::BadFrame.as_str());
                self.error(None, ErrorCode::BadFrame, what);
            }
            Wake::Input(Some(Err(InputError::Io(e)))) => {
                tracing::debug!(peer = %self.peer, error = %e, "read failed");
                return Some("connection lost".to_string());
            }
            Wake::Input(Some(Err(InputError::Invalid(e)))) => {
                self.heard();
                if let Some(Flow::Close(reason)) = self.count_prelogin() {
                    return Some(reason);
                }
                tracing::debug!(peer = %self.peer, code = %e.code, "rejected frame");
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), e.code.as_str());
                self.reply(&e.to_frame());
            }
            Wake::Input(Some(Ok(frame))) => {
                self.heard();
                if let Flow::Close(reason) = self.handle_frame(frame).await {
                    return Some(reason);
                }
            }
        }
        None
    }

    /// Ends the session for `reason`: what is still committing is published, the hub
    /// forgets the session, and the outbox is closed.
    async fn end(&mut self, reason: String) {
        // Messages sent just before the connection went are still published.
        self.flush().await;
        let peer = self.peer;
        if let Some(user) = &self.user {
            let left = self
                .shared
                .bus
                .disconnect(user.id, &reason, self.quit_message.as_deref());
            let ts_ms = crate::now_ms();
            for room in left {
                self.shared.emit(Event::RoomPresence {
                    room,
                    user: user.name.clone(),
                    joined: false,
                    reason: Some(reason.clone()),
                    ts_ms,
                });
            }
            self.shared.emit(Event::System {
                kind: "disconnect",
                detail: format!("user={} addr={peer} reason={reason}", user.name),
                ts_ms,
            });
            tracing::info!(%peer, user = %user.name, %reason, "session ended");
        } else {
            tracing::debug!(%peer, %reason, "connection closed before login");
        }
        self.handle.outbox.close();
    }
}

impl Session {
    fn reply(&self, frame: &ServerFrame) {
        self.handle.send(std::slice::from_ref(frame));
    }

    fn error(&self, id: Option<FrameId>, code: ErrorCode, message: impl Into<String>) {
        self.reply(&ServerFrame::error(id, code, message));
    }

    /// Reports an internal failure to the peer (generically) and to the log (fully).
    /// Answers a store failure: `unavailable` while the database cannot be reached
    /// (nothing was stored; retrying shortly may work), `internal` otherwise.
    fn fail(&self, id: Option<FrameId>, e: &crate::store::StoreError) {
        let (code, message) = match e {
            crate::store::StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                (
                    ErrorCode::Unavailable,
                    "the database is unavailable; nothing was stored, try again shortly"
                        .to_string(),
                )
            }
            e => internal(e),
        };
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
            .rejected(self.handle.transport(), ErrorCode::TooManyFrames.as_str());
        self.error(
            None,
            ErrorCode::TooManyFrames,
            "too many frames before login; closing",
        );
        self.bye("too many frames before login");
        Some(Flow::Close("too many frames before login".into()))
    }

    /// Handles one frame: the pre-login budget, the command's rules (see [`commands`]),
    /// then its handler.
    async fn handle_frame(&mut self, frame: ClientFrame) -> Flow {
        if let Some(flow) = self.count_prelogin() {
            return flow;
        }
        let Admitted { frame, room } = match self.check(frame).await {
            Ok(admitted) => admitted,
            Err(flow) => return flow,
        };
        match (frame, room) {
            (ClientFrame::Ping { id }, _) => self.reply(&ServerFrame::Pong { id }),
            (ClientFrame::Pong { .. }, _) => {}
            (ClientFrame::Quit { message, .. }, _) => {
                self.quit_message = parting(message.as_deref());
                self.bye("quit");
                return Flow::Close("quit".into());
            }
            (
                ClientFrame::Auth {
                    id,
                    user,
                    password,
                    register,
                },
                _,
            ) => return self.auth(id, &user, &password, register).await,
            (
                ClientFrame::Public {
                    id,
                    text,
                    client_id,
                    ..
                },
                Some(room),
            ) => {
                return self.public(id, room, &text, client_id).await;
            }
            (
                ClientFrame::Private {
                    id,
                    to,
                    text,
                    client_id,
                },
                _,
            ) => {
                return self.private(id, &to, &text, client_id).await;
            }
            (ClientFrame::Notice { id, to, text, .. }, room) => {
                self.notice(id, room, to.as_deref(), &text)
            }
            (ClientFrame::List { id }, _) => self.list(id),
            (ClientFrame::Join { id, .. }, Some(room)) => self.join(id, &room).await,
            (ClientFrame::Part { id, message, .. }, Some(room)) => {
                self.part(id, &room, parting(message.as_deref()).as_deref())
            }
            (ClientFrame::Rooms { id }, _) => self.rooms(id),
            (ClientFrame::Who { id, .. }, Some(room)) => self.who(id, room),
            (
                ClientFrame::History {
                    id,
                    room,
                    with,
                    before,
                    limit,
                },
                _,
            ) => self.history(id, room, with, before, limit).await,
            // Every command naming a room has it checked (see `commands`).
            (_, None) => {}
        }
        Flow::Continue
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

/// Longest parting words (`part` and `quit` messages), in bytes; longer ones are cut.
pub const MAX_PARTING_BYTES: usize = 300;

/// Parting words as members see them: dangerous characters neutralised, line breaks
/// as spaces, at most [`MAX_PARTING_BYTES`], none when blank.
fn parting(message: Option<&str>) -> Option<String> {
    let text = natter_proto::neutralize(message?.trim()).replace(['\n', '\t'], " ");
    let mut end = text.len().min(MAX_PARTING_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = text[..end].trim_end();
    (!text.is_empty()).then(|| text.to_string())
}
