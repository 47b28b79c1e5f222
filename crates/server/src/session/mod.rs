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

/// Runs the session over any transport: `frames` yields the peer's frames (or why the
/// transport could not make one; a transport adapter turns its bytes into these), and
/// `handle` holds the outbox that a writer task or the flusher drains to the peer, the
/// peer's wire format, and the token that ends the session (closed for a reason, or
/// shutdown). Returns when the session ends; by then the outbox is closed, so what is
/// queued is written and the writing stops.
pub async fn run<F>(
    frames: &mut F,
    handle: SessionHandle,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
) where
    F: futures::Stream<Item = Result<ClientFrame, InputError>> + Unpin,
{
    let auth_deadline = accepted + shared.config.auth_timeout;
    let mut s = Session {
        shared,
        peer,
        handle,
        user: None,
        prelogin_frames: 0,
        quit_message: None,
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
            next = frames.next(), if s.inflight.len() < MAX_INFLIGHT => match next {
                None => break "connection lost".to_string(),
                Some(Err(InputError::TooLong { max })) => {
                    s.flush().await;
                    s.shared.metrics.rejected(s.handle.transport(), ErrorCode::LineTooLong.as_str());
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
                    s.shared.metrics.rejected(s.handle.transport(), ErrorCode::BadFrame.as_str());
                    s.error(None, ErrorCode::BadFrame, what);
                }
                Some(Err(InputError::Io(e))) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break "connection lost".to_string();
                }
                Some(Err(InputError::Invalid(e))) => {
                    last_heard = Instant::now();
                    pinged = None;
                    if let Some(Flow::Close(reason)) = s.count_prelogin() {
                        break reason;
                    }
                    tracing::debug!(%peer, code = %e.code, "rejected frame");
                    s.shared.metrics.rejected(s.handle.transport(), e.code.as_str());
                    s.reply(&e.to_frame());
                }
                Some(Ok(frame)) => {
                    // Any frame proves the peer alive, not only a pong.
                    last_heard = Instant::now();
                    pinged = None;
                    // Boxed: the handler's state is only needed while a frame is being
                    // handled, not by every idle connection.
                    match Box::pin(s.handle_frame(frame)).await {
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
        let left = s
            .shared
            .bus
            .disconnect(user.id, &reason, s.quit_message.as_deref());
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
