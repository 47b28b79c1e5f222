//! Reconnecting by itself when the connection drops or the server restarts.
//!
//! - [`backoff_delay`] and [`Backoff`]: the wait before each attempt, 1 s doubling up to
//!   60 s, with ±25 % jitter (capped at 60 s) so many clients of a restarted server do not
//!   all come back in the same instant. The randomness is injected, so tests are exact.
//! - [`Outbox`]: every `public` and `private` message gets a request id and a fresh random
//!   [`client_id`] (32 hex digits); it is kept until its `ok`, `queued` or `error` arrives.
//!   Whatever is still unacknowledged when the connection drops (and what was typed while
//!   disconnected) is sent again after reconnecting, with the same `client_id`, so the
//!   server stores it at most once (PROTOCOL.md §4.2, "Retrying").
//! - [`Reconnector`]: how to get back in: [`Dial`] the same server the same way (same TLS
//!   trust; a pinned certificate is checked, nothing is asked), then log in again with the
//!   session's credentials, which are kept in memory for this only.
//! - [`recover`] (used by the chat loop in [`crate::session`]): the status lines
//!   (`-- connection lost; reconnecting in 2 s (attempt 3) --`, `-- reconnected --`), the
//!   waiting (input is still read: message lines are kept for sending after the reconnect,
//!   other commands are refused until then, Ctrl-D and `/exit` leave at once), then
//!   catching up: every room the session was in is joined again (and the lobby left again
//!   if the session had left it), the history of every room and private conversation is
//!   fetched page by page (`before`) back to the newest message already seen, and only
//!   what was missed is shown, once, in `msg_id` order; then the unacknowledged messages
//!   are sent again. A refused login (`auth_failed`, `banned`) or a changed server
//!   certificate ends the session instead.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use natter_proto::{ClientFrame, DEFAULT_ROOM, ErrorCode, FrameId, HistoryEntry, ServerFrame};
use rand::{Rng, RngCore, SeedableRng};

use crate::connection::{ClientError, Connection};
use crate::format;
use crate::session::{Frontend, Input};
use crate::state::{Action, ChatState, Reaction};
use crate::trust::TrustConfig;

/// The first wait before reconnecting.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Attempts before giving up (at 60 s each, well over half a day).
pub const MAX_ATTEMPTS: u32 = 1000;

/// Messages asked for per catch-up `history` request (the server's maximum).
pub const PAGE: u32 = 200;

/// Most `history` pages fetched per conversation when catching up.
pub const MAX_PAGES: usize = 50;

/// Upper bound on catching up after a reconnect (rejoining, history, resending).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The wait before attempt `attempt` (1 for the first) with `unit` a random number in
/// `[0, 1)`: 1 s doubling per attempt up to 60 s, times a jitter factor from 0.75 to 1.25
/// (`unit` 0.5 is no jitter), never more than [`MAX_DELAY`].
pub fn backoff_delay(attempt: u32, unit: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    let nominal = (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY);
    let factor = 0.75 + 0.5 * unit.clamp(0.0, 1.0);
    nominal.mul_f64(factor).min(MAX_DELAY)
}

/// The back-off policy with its source of randomness.
pub struct Backoff {
    rng: Box<dyn RngCore + Send>,
}

impl Backoff {
    /// Jitter from the operating system's randomness.
    pub fn new() -> Backoff {
        Backoff::with_rng(rand::rngs::StdRng::from_os_rng())
    }

    /// Jitter from `rng` (tests pass a seeded one).
    pub fn with_rng(rng: impl RngCore + Send + 'static) -> Backoff {
        Backoff { rng: Box::new(rng) }
    }

    /// The wait before attempt `attempt` (1 for the first).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let unit: f64 = self.rng.random();
        backoff_delay(attempt, unit)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// A fresh client id for a message: 16 random bytes in hex.
pub fn client_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The status line while waiting to reconnect.
pub fn waiting_line(delay: Duration, attempt: u32) -> String {
    let secs = delay.as_secs_f64().round().max(1.0);
    format!("-- connection lost; reconnecting in {secs} s (attempt {attempt}) --")
}

/// The status line once reconnected.
pub const RECONNECTED: &str = "-- reconnected --";

/// Messages sent but not acknowledged yet, in the order sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outbox {
    /// The number in the next request id (`m1`, `m2`, ...; the chat state's own ids are
    /// numbers, so they never collide).
    next: u64,
    /// The unacknowledged messages, oldest first, each with its request id.
    pending: Vec<(FrameId, ClientFrame)>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Gives a `public` or `private` frame a request id and `client_id` and keeps it until
    /// it is acknowledged; returns it to send. Other frames are returned unchanged.
    pub fn stamp(&mut self, frame: ClientFrame, new_client_id: String) -> ClientFrame {
        let id = FrameId::Str(format!("m{}", self.next + 1));
        let frame = match frame {
            ClientFrame::Public { room, text, .. } => ClientFrame::Public {
                id: Some(id.clone()),
                room,
                text,
                client_id: Some(new_client_id),
            },
            ClientFrame::Private { to, text, .. } => ClientFrame::Private {
                id: Some(id.clone()),
                to,
                text,
                client_id: Some(new_client_id),
            },
            other => return other,
        };
        self.next += 1;
        self.pending.push((id, frame.clone()));
        frame
    }

    /// Takes note of a frame from the server: `ok`, `queued` or `error` with the id of a
    /// kept message acknowledges it (an error is shown to the user, who may send again).
    pub fn on_frame(&mut self, frame: &ServerFrame) {
        let id = match frame {
            ServerFrame::Ok { id } => id,
            ServerFrame::Queued { id: Some(id), .. } | ServerFrame::Error { id: Some(id), .. } => {
                id
            }
            _ => return,
        };
        self.pending.retain(|(kept, _)| kept != id);
    }

    /// The unacknowledged messages, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &ClientFrame> {
        self.pending.iter().map(|(_, frame)| frame)
    }

    /// How many messages are unacknowledged.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every message was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Opens a new connection to the server (its `hello` read).
pub trait Dial {
    /// Connects.
    fn dial(&mut self) -> impl Future<Output = Result<Connection, ClientError>>;
}

/// The server the session started with, reached the same way: TLS verified by the same
/// trust settings (a pin made on the first connection is checked; nothing is asked), or
/// plain TCP when `trust` is `None` (`--plaintext`).
#[derive(Debug, Clone)]
pub struct SameServer {
    /// `HOST:PORT`.
    pub server: String,
    /// How to verify it; `None` for plain TCP.
    pub trust: Option<TrustConfig>,
}

impl Dial for SameServer {
    async fn dial(&mut self) -> Result<Connection, ClientError> {
        match &self.trust {
            None => Connection::connect(&self.server)
                .await
                .map(|(conn, _)| conn),
            Some(trust) => Connection::connect_tls(&self.server, trust, None)
                .await
                .map(|(conn, _, _)| conn),
        }
    }
}

/// A dialer that never connects: for sessions that do not reconnect.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDial;

impl Dial for NoDial {
    fn dial(&mut self) -> impl Future<Output = Result<Connection, ClientError>> {
        std::future::ready(Err(ClientError::Closed))
    }
}

/// The session's login, kept (in memory only) to log in again after a reconnect.
#[derive(Clone)]
pub struct Credentials {
    /// The account name.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Everything needed to reconnect a session.
pub struct Reconnector<D> {
    /// How to reach the server.
    pub dial: D,
    /// Whom to log in as.
    pub credentials: Credentials,
    /// How long to wait between attempts.
    pub backoff: Backoff,
}

impl<D: Dial> Reconnector<D> {
    /// A reconnector with the default back-off.
    pub fn new(dial: D, credentials: Credentials) -> Reconnector<D> {
        Reconnector {
            dial,
            credentials,
            backoff: Backoff::new(),
        }
    }

    /// Connects and logs in again. A refused login that will not change by retrying is
    /// [`Failure::Fatal`]; anything else (the server still down, ...) is worth retrying.
    pub(crate) async fn connect_and_login(&mut self) -> Result<Connection, Failure> {
        let mut conn = self.dial.dial().await.map_err(classify)?;
        let Credentials { user, password } = &self.credentials;
        conn.authenticate(user, password, false)
            .await
            .map_err(classify)?;
        Ok(conn)
    }
}

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Try again later.
    Retry(String),
    /// Stop: the credentials or the server's certificate are no longer accepted.
    Fatal(String),
}

/// Sorts a connection or login error into retry or stop.
fn classify(e: ClientError) -> Failure {
    match e {
        ClientError::Refused {
            code: code @ (ErrorCode::AuthFailed | ErrorCode::Banned | ErrorCode::InvalidUsername),
            message,
        } => Failure::Fatal(format!("the server refused the login: {message} ({code})")),
        e @ ClientError::Trust(_) => Failure::Fatal(e.to_string()),
        e => Failure::Retry(e.to_string()),
    }
}

/// How [`recover`] ended.
#[derive(Debug)]
pub(crate) enum Recovered {
    /// Connected, logged in and caught up.
    Reconnected,
    /// The user left (Ctrl-D, `/exit`) while disconnected.
    Quit,
    /// Reconnecting cannot work; the reason says why.
    GaveUp(String),
}

/// A fault while reading or writing frames: the connection is gone.
type Lost = String;

/// Reconnects after the connection was lost: waits, dials, logs in, catches up and sends
/// the unacknowledged messages again (see the module docs). `conn` is replaced by the new
/// connection. Display lines go to `frontend`; the prompt is left alone except that each
/// line typed meanwhile is answered with the next prompt, as usual.
pub(crate) async fn recover<F: Frontend, D: Dial>(
    conn: &mut Connection,
    state: &mut ChatState,
    outbox: &mut Outbox,
    frontend: &mut F,
    reconnector: &mut Reconnector<D>,
) -> std::io::Result<Recovered> {
    for attempt in 1..=MAX_ATTEMPTS {
        let delay = reconnector.backoff.delay(attempt);
        frontend.show(waiting_line(delay, attempt)).await?;
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                input = frontend.next_input() => {
                    if offline_input(input?, state, outbox, frontend).await? {
                        return Ok(Recovered::Quit);
                    }
                }
            }
        }
        let dialing = reconnector.connect_and_login();
        tokio::pin!(dialing);
        let dialed = loop {
            tokio::select! {
                dialed = &mut dialing => break dialed,
                input = frontend.next_input() => {
                    if offline_input(input?, state, outbox, frontend).await? {
                        return Ok(Recovered::Quit);
                    }
                }
            }
        };
        let mut fresh = match dialed {
            Ok(fresh) => fresh,
            Err(Failure::Fatal(why)) => return Ok(Recovered::GaveUp(why)),
            Err(Failure::Retry(why)) => {
                frontend.warn(&format!("reconnecting failed: {why}"));
                continue;
            }
        };
        let caught_up =
            tokio::time::timeout(CATCH_UP_TIMEOUT, catch_up(&mut fresh, state, outbox)).await;
        match caught_up {
            Ok(Ok(lines)) => {
                *conn = fresh;
                for line in lines {
                    frontend.show(line).await?;
                }
                frontend.show(RECONNECTED.to_string()).await?;
                return Ok(Recovered::Reconnected);
            }
            Ok(Err(why)) => frontend.warn(&format!("connection lost again: {why}")),
            Err(_) => frontend.warn("catching up took too long; reconnecting again"),
        }
    }
    Ok(Recovered::GaveUp(format!(
        "gave up after {MAX_ATTEMPTS} attempts to reconnect"
    )))
}

/// Handles one input event while disconnected; true when the user leaves.
async fn offline_input<F: Frontend>(
    input: Input,
    state: &mut ChatState,
    outbox: &mut Outbox,
    frontend: &mut F,
) -> std::io::Result<bool> {
    let action = match input {
        Input::End => return Ok(true),
        Input::TooLong => Action::Show(vec![format::local_error_line(&format!(
            "input line longer than {} bytes; it was not sent",
            natter_proto::MAX_LINE
        ))]),
        Input::Line(line) => state.handle_line(&line),
    };
    match action {
        Action::Nothing => {}
        Action::Exit => return Ok(true),
        Action::Show(lines) => {
            for line in lines {
                frontend.show(line).await?;
            }
        }
        Action::Send(frame @ (ClientFrame::Public { .. } | ClientFrame::Private { .. })) => {
            outbox.stamp(frame, client_id());
            let note = "-- not connected: the message will be sent once reconnected --";
            frontend.show(note.to_string()).await?;
        }
        Action::Send(_) => {
            // A `/join` or `/part` would hold the prompt for an answer that cannot come.
            state.stop_awaiting();
            let line = format::local_error_line("not connected; try again once reconnected");
            frontend.show(line).await?;
        }
    }
    frontend.ready(Some(&state.prompt()));
    Ok(false)
}

/// The answer to one request made while catching up.
enum Answer {
    /// `joined` (for `join`) or `parted` (for `part`).
    Done,
    /// The collected messages of a `history` answer.
    History(Vec<HistoryEntry>),
    /// `error`.
    Refused(String),
}

/// Catching up on a new connection: the display lines in order, or why it failed.
struct CatchUp<'a> {
    conn: &'a mut Connection,
    state: &'a mut ChatState,
    /// Lines of frames other than messages, in the order they came.
    notices: Vec<String>,
    /// Message lines by `msg_id`, shown after the notices in that order.
    messages: BTreeMap<u64, Vec<String>>,
    /// Request ids (`c1`, `c2`, ...).
    next_id: u64,
}

/// Rejoins, fetches what was missed and resends; returns the lines to show.
async fn catch_up(
    conn: &mut Connection,
    state: &mut ChatState,
    outbox: &Outbox,
) -> Result<Vec<String>, Lost> {
    let rooms: Vec<String> = state.rooms().into_iter().map(str::to_string).collect();
    // Taken before anything is read: a live message arriving meanwhile must not move
    // where catching up stops.
    let targets = state.catch_up_targets();
    let mut c = CatchUp {
        conn,
        state,
        notices: Vec::new(),
        messages: BTreeMap::new(),
        next_id: 0,
    };
    // The server puts a new session in the lobby by itself; every other room is joined.
    for room in rooms.iter().filter(|r| *r != DEFAULT_ROOM) {
        let id = c.id();
        let join = ClientFrame::Join {
            id: Some(id.clone()),
            room: room.clone(),
        };
        if let Answer::Refused(why) = c.request(&join, &id).await? {
            c.state.forget_room(room);
            c.notices.push(format::local_error_line(&format!(
                "could not join #{} again: {why}",
                format::sanitize(room)
            )));
        }
    }
    if !rooms.iter().any(|r| r == DEFAULT_ROOM) {
        let id = c.id();
        let part = ClientFrame::Part {
            id: Some(id.clone()),
            room: DEFAULT_ROOM.to_string(),
            message: None,
        };
        c.request(&part, &id).await?;
    }
    for (room, with, newest) in targets {
        if room
            .as_deref()
            .is_some_and(|room| !c.state.rooms().contains(&room))
        {
            continue;
        }
        c.fetch_missed(room, with, newest).await?;
    }
    for frame in outbox.pending() {
        c.conn.send(frame).await.map_err(|e| e.to_string())?;
    }
    let CatchUp {
        mut notices,
        messages,
        ..
    } = c;
    notices.extend(messages.into_values().flatten());
    Ok(notices)
}

impl CatchUp<'_> {
    /// A fresh request id.
    fn id(&mut self) -> FrameId {
        self.next_id += 1;
        FrameId::Str(format!("c{}", self.next_id))
    }

    /// Fetches the history of a room (or private conversation) back to message `newest`
    /// (one page when nothing was seen there) and keeps what was not shown yet.
    async fn fetch_missed(
        &mut self,
        room: Option<String>,
        with: Option<String>,
        newest: Option<u64>,
    ) -> Result<(), Lost> {
        let mut before = None;
        for _ in 0..MAX_PAGES {
            let id = self.id();
            let request = ClientFrame::History {
                id: Some(id.clone()),
                room: room.clone(),
                with: with.clone(),
                before,
                limit: Some(PAGE),
            };
            let page = match self.request(&request, &id).await? {
                Answer::History(page) => page,
                Answer::Refused(why) => {
                    let what = match (&room, &with) {
                        (Some(room), _) => format!("#{}", format::sanitize(room)),
                        (None, with) => {
                            format!("@{}", format::sanitize(with.as_deref().unwrap_or("")))
                        }
                    };
                    self.notices.push(format::local_error_line(&format!(
                        "could not fetch the missed messages of {what}: {why}"
                    )));
                    return Ok(());
                }
                Answer::Done => return Ok(()),
            };
            let oldest = page.iter().map(|m| m.msg_id).min();
            for entry in page.iter().filter(|m| newest.is_none_or(|n| m.msg_id > n)) {
                if let Some(lines) = self.state.missed(room.as_deref(), with.as_deref(), entry) {
                    self.messages.entry(entry.msg_id).or_insert(lines);
                }
            }
            match (oldest, newest) {
                (Some(oldest), Some(newest)) if oldest > newest && page.len() >= PAGE as usize => {
                    before = Some(oldest);
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Sends `frame` and reads until the answer echoing `id` is complete, taking in every
    /// other frame on the way.
    async fn request(&mut self, frame: &ClientFrame, id: &FrameId) -> Result<Answer, Lost> {
        self.conn.send(frame).await.map_err(|e| e.to_string())?;
        let mut collected = Vec::new();
        // Bounded by CATCH_UP_TIMEOUT around the whole catch-up.
        loop {
            let frame = match self.conn.recv().await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err("the server closed the connection".into()),
                Err(ClientError::BadFrame(_)) => continue,
                Err(e) => return Err(e.to_string()),
            };
            match frame {
                ServerFrame::Joined { id: Some(got), .. }
                | ServerFrame::Parted { id: Some(got), .. }
                    if got == *id =>
                {
                    return Ok(Answer::Done);
                }
                ServerFrame::Error {
                    id: Some(got),
                    message,
                    ..
                } if got == *id => return Ok(Answer::Refused(message)),
                ServerFrame::History {
                    id: Some(got),
                    messages,
                    last,
                    ..
                } if got == *id => {
                    collected.extend(messages);
                    if last {
                        return Ok(Answer::History(collected));
                    }
                }
                other => self.take_in(other).await?,
            }
        }
    }

    /// A frame that is not the awaited answer.
    async fn take_in(&mut self, frame: ServerFrame) -> Result<(), Lost> {
        match &frame {
            // Our own rejoins: the rooms are known already, and the history that follows
            // is fetched in full afterwards.
            ServerFrame::Joined { .. } | ServerFrame::Parted { .. } => return Ok(()),
            ServerFrame::History { id: None, .. } => return Ok(()),
            ServerFrame::Bye { reason } => return Err(format!("the server said bye: {reason}")),
            _ => {}
        }
        let msg_id = match &frame {
            ServerFrame::Public { msg_id, .. } | ServerFrame::Private { msg_id, .. } => {
                Some(*msg_id)
            }
            _ => None,
        };
        match self.state.on_frame(&frame) {
            Reaction::Show(lines) => match msg_id {
                Some(msg_id) => {
                    self.messages.entry(msg_id).or_insert(lines);
                }
                None => self.notices.extend(lines),
            },
            Reaction::Reply(reply) => self.conn.send(&reply).await.map_err(|e| e.to_string())?,
            Reaction::Ignore | Reaction::Bye(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
