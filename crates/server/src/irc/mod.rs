//! The IRC gateway: a transport adapter that lets IRC clients (irssi, weechat, ...) use
//! natter. Like every adapter it turns its bytes into [`ClientFrame`]s for
//! [`session::run`] and writes the session's frames back in its own format; the rules
//! (login, rooms, rate limits) stay the session's.
//!
//! - [`line`]: parsing and writing IRC lines (tags, trailing, limits).
//! - [`registration`]: CAP, NICK, USER, PASS and SASL before the welcome.
//! - [`commands`]: commands after the welcome, mapped to frames.
//! - [`query`]: WHO, WHOIS, NAMES and LIST, answered by the adapter itself.
//! - [`encode`]: server frames as IRC lines ([`IrcEncoder`]).
//! - [`history`]: `CHATHISTORY` (IRCv3 `draft/chathistory`), answered from the store.
//!
//! Unlike natter's own format IRC has a connection-level conversation of its own (CAP,
//! SASL, PING, numerics that name the client's nick), so the adapter keeps per-connection
//! state in [`Conn`], shared by its reading side and its encoder. Until the welcome
//! (001) is sent, the adapter writes its own lines through a side channel and the
//! session's outbox is held back: the session joins `lobby` as soon as the login
//! succeeds, and an IRC client must not see that JOIN before registration ends (CAP END).

pub mod account;
pub mod commands;
pub mod directory;
pub mod encode;
pub mod history;
pub mod label;
pub mod line;
pub mod query;
pub mod registration;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use natter_proto::{ClientFrame, LineCodec};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use encode::IrcEncoder;

use crate::Shared;
use crate::hub::SessionHandle;
use crate::outbox::Outbox;
use crate::session::{self, InputError};
use crate::transport::lines::Lines;
use registration::State;

/// The host part of every user's IRC mask (`nick!nick@natter`).
pub const USER_HOST: &str = "natter";
/// Delivery cache slot of IRC lines without tags.
pub const IRC_SLOT: usize = 1;
/// Delivery cache slot of IRC lines with the server-time tag (server-time without
/// message-tags).
pub const IRC_TAGGED_SLOT: usize = 2;
/// Delivery cache slot of IRC lines with `time` and `msgid` tags (message-tags
/// negotiated: such a client accepts any tag).
pub const IRC_MSGID_SLOT: usize = 3;

/// What the adapter's writer is told besides the session's outbox.
pub(crate) enum Out {
    /// Lines to write now (registration replies, before the welcome).
    Lines(Bytes),
    /// The welcome: write it, then the session's outbox from now on.
    Open(Bytes),
    /// The session has ended.
    End,
}

/// The writer's side channel: what [`Out`] says, in order. Unbounded, since the
/// pre-login line budget bounds what a client can make it hold; its queue is allocated
/// only while it holds something, so an idle connection keeps none.
#[derive(Default)]
pub(crate) struct Direct {
    /// What the writer has not taken yet.
    queue: Mutex<VecDeque<Out>>,
    /// Wakes the writer; a wake-up with nobody waiting is kept for the next wait.
    ready: tokio::sync::Notify,
}

impl Direct {
    /// Queues `out` for the writer.
    pub(crate) fn send(&self, out: Out) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(out);
        self.ready.notify_one();
    }

    /// The oldest item, if there is one; the queue's memory goes when it empties.
    pub(crate) fn try_recv(&self) -> Option<Out> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let out = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            *queue = VecDeque::new();
        }
        out
    }

    /// The oldest item, once there is one.
    async fn recv(&self) -> Out {
        loop {
            if let Some(out) = self.try_recv() {
                return out;
            }
            self.ready.notified().await;
        }
    }
}

/// One IRC connection's state, shared by its reader and its encoder.
pub struct Conn {
    /// Registration state and negotiated capabilities.
    state: Mutex<State>,
    /// The encoder's delivery slot, from the tags negotiated ([`encode::slot_of`]).
    slot: AtomicUsize,
    /// Whether echo-message was negotiated (the encoder skips own messages otherwise).
    echo: AtomicBool,
    /// Whether away-notify was negotiated: readable by other connections without this
    /// one's lock (see [`directory::Directory::notify_away`]).
    away_notify: AtomicBool,
    /// This connection, for the directory's list of a user's connections.
    me: Weak<Conn>,
    /// The account once logged in, readable without the state's lock: the hub's fan-out
    /// asks [`IrcEncoder`] whether to skip own messages under its own lock.
    account: OnceLock<String>,
    /// Set once the welcome went out; then lines go through the outbox.
    welcomed: AtomicBool,
    /// The writer's side channel.
    direct: Direct,
    /// The session's outbox, for the adapter's own lines after the welcome.
    outbox: Arc<Outbox>,
    /// The server's name in prefixes and numerics (`irc_server_name`).
    server: Arc<str>,
    /// The server, for what IRC asks about other users and rooms (WHO, LIST, ...).
    shared: Arc<Shared>,
    /// The client's address (for the login throttle of OPER).
    peer: SocketAddr,
    /// Work a command started that must finish before the next line is read (OPER's
    /// password check), so that its answer keeps its place among the replies.
    blocking: Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
    /// A CHATHISTORY waiting for the session to have handled the lines before it.
    history: history::Barrier,
}

impl Conn {
    /// Locks the registration state. It holds no invariant a panic could break halfway
    /// that matters more than serving the connection, so a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends lines of the adapter's own: through the side channel before the welcome,
    /// the outbox after it (so they keep their order with the session's frames).
    fn emit(&self, lines: Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        if self.welcomed.load(Ordering::Acquire) {
            // A full outbox closes the session on its next delivery; nothing to do here.
            let _ = self.outbox.push(&lines.into(), 1);
        } else {
            self.direct.send(Out::Lines(lines.into()));
        }
    }
}

/// Reads IRC lines and yields the frames they stand for; lines the adapter answers
/// itself (CAP, PING, ...) yield nothing.
struct IrcFrames<R> {
    /// The connection's lines (a read buffer only while something is buffered).
    lines: Lines<R>,
    /// The connection's state.
    conn: Arc<Conn>,
    /// Frames from the last line not yet taken (JOIN #a,#b yields two).
    pending: VecDeque<Result<ClientFrame, InputError>>,
    /// Work to finish before the next line ([`Conn::blocking`]).
    blocked: Option<futures::future::BoxFuture<'static, ()>>,
}

impl<R: AsyncRead + Unpin> Stream for IrcFrames<R> {
    type Item = Result<ClientFrame, InputError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            if let Some(work) = self.blocked.as_mut() {
                futures::ready!(work.as_mut().poll(cx));
                self.blocked = None;
            }
            match futures::ready!(self.lines.poll_next_unpin(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(line)) => {
                    let frames = self.conn.on_line(&line);
                    self.pending.extend(frames);
                    let work = self
                        .conn
                        .blocking
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    self.blocked = work;
                }
            }
        }
    }
}

/// Serves one IRC connection over a byte stream (plain TCP) until the session ends.
/// `accepted` is when the connection was accepted: the login deadline counts from there.
pub async fn serve_irc<S>(
    stream: S,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    serve_irc_on(rd, wr, None, peer, accepted, shared, shutdown).await
}

/// Serves one IRC connection over TLS (after the handshake) until the session ends, on
/// the server's own TLS state ([`crate::tls`]), whose buffers exist only while they
/// hold something.
pub async fn serve_irc_tls(
    tcp: tokio::net::TcpStream,
    state: crate::tls::TlsState,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let (rd, wr) = tcp.into_split();
    let tls = crate::tls::TlsConn::new(state);
    // Records that reading makes the connection send (alerts, key updates) and those the
    // handshake left (session tickets) go out when the writer flushes.
    let kick = Arc::new(tokio::sync::Notify::new());
    if tls.lock().is_ok_and(|st| st.wants_write()) {
        kick.notify_one();
    }
    let wake = kick.clone();
    let rd = crate::tls::TlsReader::new(rd, tls.clone(), Box::new(move || wake.notify_one()));
    let wr = crate::tls::TlsWriter::new(wr, tls);
    serve_irc_on(rd, wr, Some(kick), peer, accepted, shared, shutdown).await
}

/// Serves one IRC connection on its two directions; `kick`, when given, asks the writer
/// to flush (records of the TLS state's own).
async fn serve_irc_on<R, W>(
    rd: R,
    wr: W,
    kick: Option<Arc<tokio::sync::Notify>>,
    peer: SocketAddr,
    accepted: Instant,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let outbox = Arc::new(Outbox::new(shared.config.session_queue));
    let server: Arc<str> = shared.config.irc_server_name.as_str().into();
    let conn = Arc::new_cyclic(|me| Conn {
        me: me.clone(),
        away_notify: AtomicBool::new(false),
        state: Mutex::new(State::new(
            shared.config.max_rooms_per_session,
            shared.config.irc_conformance_guests,
            server.clone(),
        )),
        slot: AtomicUsize::new(IRC_SLOT),
        echo: AtomicBool::new(false),
        account: OnceLock::new(),
        welcomed: AtomicBool::new(false),
        direct: Direct::default(),
        outbox: outbox.clone(),
        server,
        shared: shared.clone(),
        peer,
        blocking: Mutex::new(None),
        history: history::Barrier::default(),
    });
    // IRC clients join the channels they are configured for; the lobby is one of them
    // only if they ask.
    let handle = SessionHandle::new(
        outbox,
        shutdown,
        Arc::new(IrcEncoder::new(conn.clone())),
        crate::transport_kind::TransportKind::Irc,
    )
    .without_lobby();
    let writer = tokio::spawn(write_loop(wr, handle.clone(), conn.clone(), kick));
    let mut frames = IrcFrames {
        lines: Lines::new(rd, LineCodec::new(line::MAX_READ)),
        conn: conn.clone(),
        pending: VecDeque::new(),
        blocked: None,
    };
    let grace = shared.config.shutdown_grace;
    session::run(&mut frames, handle, peer, accepted, shared.clone()).await;
    conn.direct.send(Out::End);
    let registered = {
        let st = conn.lock();
        // Profiles are published once welcomed and logged in (see `publish_profile`).
        (st.welcomed && st.account.is_some()).then(|| st.target().to_string())
    };
    if let Some(nick) = registered {
        shared.irc.unregister(&nick, &conn.me);
    }
    let abort = writer.abort_handle();
    if tokio::time::timeout(grace, writer).await.is_err() {
        abort.abort();
    }
}

/// Writes the side channel's lines, then (after the welcome) the session's outbox.
///
/// Before the welcome the outbox is not even read: what the session queues stays in its
/// bounded outbox, so a client that never finishes registering cannot grow memory here.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    handle: SessionHandle,
    conn: Arc<Conn>,
    kick: Option<Arc<tokio::sync::Notify>>,
) {
    let mut open = false;
    let mut ended = false;
    loop {
        let kicked = async {
            match &kick {
                Some(kick) => kick.notified().await,
                None => std::future::pending().await,
            }
        };
        let chunk = tokio::select! {
            biased;
            () = kicked => {
                if let Err(e) = wr.flush().await {
                    handle.close(format!("write failed: {e}"));
                    return;
                }
                continue;
            }
            msg = conn.direct.recv(), if !ended => match msg {
                Out::Lines(b) => b,
                Out::Open(b) => {
                    open = true;
                    b
                }
                Out::End => {
                    ended = true;
                    if open {
                        continue;
                    }
                    break;
                }
            },
            taken = handle.outbox.take(), if open => match taken {
                Some(b) => b,
                None => break,
            },
        };
        // Flushed too: a TLS writer may hold records the socket did not take at once.
        if let Err(e) = async {
            wr.write_all(&chunk).await?;
            wr.flush().await
        }
        .await
        {
            handle.close(format!("write failed: {e}"));
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// A connection on a fresh server in a temp dir, for unit tests.
#[cfg(test)]
async fn test_conn() -> (Conn, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::Config {
        plaintext: true,
        ..crate::Config::with_data_dir(dir.path())
    };
    let server = crate::Server::open(config).await.expect("server");
    let conn = Conn {
        state: Mutex::new(State::new(4, false, "natter".into())),
        slot: AtomicUsize::new(IRC_SLOT),
        echo: AtomicBool::new(false),
        away_notify: AtomicBool::new(false),
        me: Weak::new(),
        account: OnceLock::new(),
        welcomed: AtomicBool::new(false),
        direct: Direct::default(),
        outbox: Arc::new(Outbox::new(16)),
        server: "natter".into(),
        shared: server.shared().clone(),
        peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        blocking: Mutex::new(None),
        history: history::Barrier::default(),
    };
    (conn, dir)
}

#[cfg(test)]
mod direct_tests {
    use super::*;

    fn text(out: Option<Out>) -> String {
        match out {
            Some(Out::Lines(b)) | Some(Out::Open(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Out::End) => "end".into(),
            None => "nothing".into(),
        }
    }

    #[test]
    fn items_come_out_in_order_and_an_empty_queue_keeps_no_memory() {
        let direct = Direct::default();
        assert_eq!(text(direct.try_recv()), "nothing");
        direct.send(Out::Lines(Bytes::from_static(b"a")));
        direct.send(Out::Open(Bytes::from_static(b"b")));
        direct.send(Out::End);
        assert_eq!(text(direct.try_recv()), "a");
        assert_eq!(text(direct.try_recv()), "b");
        assert_eq!(text(direct.try_recv()), "end");
        assert_eq!(text(direct.try_recv()), "nothing");
        let queue = direct.queue.lock().expect("lock");
        assert_eq!(queue.capacity(), 0, "the emptied queue was not released");
    }

    #[tokio::test]
    async fn the_writer_waits_until_something_is_sent_even_if_sent_first() {
        let direct = Arc::new(Direct::default());
        // Sent before anyone waits: the wake-up is kept.
        direct.send(Out::Lines(Bytes::from_static(b"early")));
        assert_eq!(text(Some(direct.recv().await)), "early");
        let waiting = tokio::spawn({
            let direct = direct.clone();
            async move { text(Some(direct.recv().await)) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "recv returned with nothing queued");
        direct.send(Out::End);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the writer was not woken")
            .expect("task");
        assert_eq!(got, "end");
    }
}
