//! A session's outgoing queue: encoded lines waiting to be written to the connection.
//!
//! A message is encoded once; fan-out queues a reference to those bytes (a [`Bytes`],
//! shared by every recipient, not a copy) in each recipient's outbox, and whoever writes
//! takes everything queued at once and hands it to the socket in one vectored write. So
//! a burst costs a recipient one write and no copy in user space, and an idle session
//! holds no buffer at all. The queue is bounded in frames: a recipient that does not
//! keep up is refused further frames, and the hub then closes it as a slow consumer.
//!
//! Who writes depends on the transport. A TCP connection's outbox is *direct*, plain or
//! TLS: it holds the socket's write half (and, for TLS, the connection's shared TLS
//! state, which encrypts on the way), and the first frame into an empty outbox puts it
//! on the server's [`Flusher`] queue, whose one task writes each queued outbox without
//! waiting, in turn. Only when a socket would block does a task of its own wait for the
//! socket and finish the job. So a message to a large room costs no task wake-up per
//! member, members are written in the order they were queued, and an idle connection
//! has no writer task. WebSocket connections run a writer task that waits in
//! [`Outbox::take`].

mod flusher;
mod wire;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use flusher::Flusher;
pub use wire::Wire;

/// What happened to frames offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued for the writer.
    Queued,
    /// Refused: the outbox holds as many frames as allowed.
    Full,
    /// Refused: the session is ending.
    Closed,
}

/// Bytes and bookkeeping behind the lock.
#[derive(Default)]
struct State {
    /// Encoded lines not yet written, in order; never holds an empty buffer.
    queue: VecDeque<Bytes>,
    /// Frames in `queue`.
    frames: usize,
    /// Set once the session ended; what is queued is still written, then the writer stops.
    closed: bool,
    /// Direct outboxes: on the flusher's queue or being written by it. While set (or
    /// `stalled`), pushes only append; when both are clear, `queue` is empty.
    scheduled: bool,
    /// Direct outboxes: the socket would block, and a drain task writes until empty.
    stalled: bool,
    /// The drain task, so that a connection giving up on its peer can stop it.
    drainer: Option<tokio::task::AbortHandle>,
    /// Direct TLS outboxes: the connection has records of its own to send (an alert, a
    /// key update, close_notify), so the writer must run even with `queue` empty.
    kicked: bool,
    /// Nothing more is written: a write failed or the connection gave up on its peer.
    dead: bool,
}

/// A TCP connection's writing side, for direct outboxes.
struct Direct {
    /// The socket's write half; written only by the flusher or the drain task, one at a
    /// time (see `State::scheduled` and `State::stalled`).
    sink: Wire,
    /// The server's flusher, which writes this outbox when it is queued.
    flusher: Arc<Flusher>,
}

/// A bounded queue of encoded lines for one connection, filled by many, drained by one.
pub struct Outbox {
    /// The queue; held only to append or take, never across an `.await` or a write.
    state: Mutex<State>,
    /// Wakes the writer task when bytes arrive in an empty outbox, or on close; for a
    /// direct outbox, wakes whoever waits in [`Outbox::drained`].
    ready: Notify,
    /// Most frames queued at once.
    max_frames: usize,
    /// Why the session is being closed, if it is (first reason wins); kept here so a
    /// session needs one shared allocation, not two.
    close_reason: OnceLock<String>,
    /// Wakes the session's task, waiting in [`Outbox::closing`] or [`Outbox::due`], once
    /// a close reason is recorded or its deadline has passed. Here, not a cancellation
    /// token and a timer per session: a child of the server's token is a separate
    /// allocation of ≈ 128 bytes for every connection, a timer 112 bytes in every
    /// session's future, and a waker is smaller than a `Notify` both here and in the
    /// waiting future.
    waker: AtomicWaker,
    /// When a logged-in session must next act on its own (send a ping, or give up on
    /// an unanswered one), in [`deadline_ms`]; [`NO_DEADLINE`] when none is set, 0 once
    /// the server's sweeper found it passed ([`Outbox::wake_if_due`]).
    deadline: AtomicU64,
    /// Set for a direct outbox (TCP, plain or TLS). Inline: nearly every outbox is
    /// direct, and a box of its own would cost each one an allocation.
    direct: Option<Direct>,
}

impl Outbox {
    /// An empty outbox holding at most `max_frames` frames, drained by a writer task.
    pub fn new(max_frames: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max_frames,
            close_reason: OnceLock::new(),
            waker: AtomicWaker::new(),
            deadline: AtomicU64::new(NO_DEADLINE),
            direct: None,
        }
    }

    /// An empty direct outbox writing to `sink` through `flusher`; a failed write records
    /// a close reason, which ends the session (see [`Outbox::closing`]).
    pub fn direct(max_frames: usize, sink: Wire, flusher: Arc<Flusher>) -> Outbox {
        Outbox {
            direct: Some(Direct { sink, flusher }),
            ..Outbox::new(max_frames)
        }
    }

    /// Records why the session is being closed, unless a reason was recorded already,
    /// and wakes whoever waits in [`Outbox::closing`].
    pub fn set_close_reason(&self, reason: String) {
        let _ = self.close_reason.set(reason);
        self.waker.wake();
    }

    /// Resolves once a close reason has been recorded (at once if one was already).
    /// One task at a time may wait here (the session's own): a second waiter would
    /// take the first one's place.
    pub fn closing(&self) -> impl Future<Output = ()> + '_ {
        self.woken_when(|out| out.close_reason.get().is_some())
    }

    /// Sets when the session must next act on its own; the server's sweeper wakes it
    /// (through [`Outbox::due`]) once that has passed.
    pub fn set_deadline(&self, at: Instant) {
        self.deadline
            .store(deadline_ms(at, true), Ordering::Release);
    }

    /// Called by the server's sweeper: if the deadline has passed by `now`, marks it due
    /// and wakes the session. True if it did.
    pub fn wake_if_due(&self, now: Instant) -> bool {
        let at = self.deadline.load(Ordering::Acquire);
        if at == 0 || at == NO_DEADLINE || at > deadline_ms(now, false) {
            return false;
        }
        // Not if the session set a new deadline in the meantime.
        if self
            .deadline
            .compare_exchange(at, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.waker.wake();
        true
    }

    /// Resolves once the sweeper found the deadline passed ([`Outbox::wake_if_due`]).
    /// One task at a time may wait here, as in [`Outbox::closing`].
    pub fn due(&self) -> impl Future<Output = ()> + '_ {
        self.woken_when(|out| out.deadline.load(Ordering::Acquire) == 0)
    }

    /// Resolves once `ready` holds, waiting for [`Outbox`]'s `waker` in between.
    /// Generic, not a function pointer: the closures capture nothing, so the future
    /// is no larger than a reference to the outbox.
    fn woken_when<R: Fn(&Outbox) -> bool + 'static>(
        &self,
        ready: R,
    ) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if ready(self) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Checked again after registering: a change in between woke nobody.
            if ready(self) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The first reason recorded by [`Outbox::set_close_reason`].
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.get().map(String::as_str)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a queue, counters and flags; a panic elsewhere cannot leave it
        // inconsistent, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `lines`, which hold `frames` complete encoded lines (shared, not copied).
    pub fn push(self: &Arc<Self>, lines: &Bytes, frames: usize) -> Push {
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return Push::Closed;
            }
            if st.frames + frames > self.max_frames {
                return Push::Full;
            }
            if lines.is_empty() {
                return Push::Queued;
            }
            let was_empty = st.queue.is_empty();
            st.queue.push_back(lines.clone());
            st.frames += frames;
            match &self.direct {
                // A writer that is busy finds the new bytes when it comes back; only an
                // idle one needs waking.
                Some(_) if !st.scheduled && !st.stalled => {
                    st.scheduled = true;
                    true
                }
                Some(_) => false,
                None => was_empty,
            }
        };
        if wake {
            match &self.direct {
                Some(d) => d.flusher.schedule(self.clone()),
                None => self.ready.notify_one(),
            }
        }
        Push::Queued
    }

    /// Has a direct outbox's writer run although nothing is queued: the TLS state has
    /// records of its own to send.
    pub fn kick(self: &Arc<Self>) {
        let Some(d) = &self.direct else { return };
        let wake = {
            let mut st = self.lock();
            if st.dead {
                return;
            }
            st.kicked = true;
            let idle = !st.scheduled && !st.stalled;
            st.scheduled |= idle;
            idle
        };
        if wake {
            d.flusher.schedule(self.clone());
        }
    }

    /// Takes everything queued as one buffer, waiting until there is something; `None`
    /// once the outbox is closed and drained. (For writer tasks; a direct outbox has
    /// none.)
    pub async fn take(&self) -> Option<Bytes> {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            // `notify_one` keeps a permit when nobody waits, so a push between the check
            // above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// Takes everything queued without waiting: `Some(Some(bytes))` if there was
    /// something, `Some(None)` if closed and drained, `None` if empty but open.
    pub fn try_take(&self) -> Option<Option<Bytes>> {
        let taken = {
            let mut st = self.lock();
            if st.queue.is_empty() {
                return st.closed.then_some(None);
            }
            take_all(&mut st)
        };
        // Joined outside the lock; a writer task's transport (TLS records, WebSocket
        // messages) wants one buffer, and a single one needs no copy.
        Some(Some(concat(taken)))
    }

    /// Refuses further frames; what is queued is still written.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Resolves once a closed direct outbox has written everything (or failed to).
    pub async fn drained(&self) {
        loop {
            {
                let st = self.lock();
                if st.closed && st.queue.is_empty() && !st.scheduled && !st.stalled {
                    return;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Stops writing a direct outbox whose peer does not read: drops what is queued and
    /// stops the drain task, so the socket can close.
    pub fn abandon(&self) {
        let drainer = {
            let mut st = self.lock();
            st.closed = true;
            st.dead = true;
            st.queue = VecDeque::new();
            st.frames = 0;
            st.drainer.take()
        };
        if let Some(task) = drainer {
            task.abort();
        }
    }

    /// Ends a closed direct outbox's stream once everything queued is written: a TLS
    /// connection sends its close_notify, then the socket's sending direction is shut
    /// down, so the peer reads the end of the stream after the last frame. Waits as long
    /// as the peer takes to read; callers bound it.
    pub async fn finish(self: &Arc<Self>) {
        self.drained().await;
        let Some(d) = &self.direct else { return };
        if let Wire::Tls(_, tls) = &d.sink {
            if let Ok(mut st) = tls.lock() {
                st.send_close_notify();
            }
            self.kick();
            self.drained().await;
        }
        let _ = socket2::SockRef::from(d.sink.tcp().as_ref()).shutdown(std::net::Shutdown::Write);
    }

    /// The flusher's turn: writes what is queued without waiting. On a socket that would
    /// block, hands the rest to a drain task that waits for the socket.
    fn flush(self: &Arc<Self>) {
        let Some(d) = &self.direct else { return };
        let mut chunk = {
            let mut st = self.lock();
            if st.dead || (st.queue.is_empty() && !st.kicked) {
                st.scheduled = false;
                drop(st);
                self.ready.notify_one();
                return;
            }
            st.kicked = false;
            take_all(&mut st)
        };
        match d.sink.write_now(&mut chunk) {
            Err(e) => self.fail(&e),
            Ok(true) => {
                let more = {
                    let mut st = self.lock();
                    st.scheduled = !st.dead && (!st.queue.is_empty() || st.kicked);
                    st.scheduled
                };
                if more {
                    d.flusher.schedule(self.clone());
                } else {
                    self.ready.notify_one();
                }
            }
            Ok(false) => {
                let mut st = self.lock();
                st.scheduled = false;
                if st.dead {
                    drop(st);
                    self.ready.notify_one();
                    return;
                }
                put_back(&mut st, chunk);
                st.stalled = true;
                let task = tokio::spawn(flusher::drain(self.clone()));
                st.drainer = Some(task.abort_handle());
            }
        }
    }

    /// A failed write: the connection is broken, so nothing more is written and the
    /// session ends.
    fn fail(&self, e: &io::Error) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.dead = true;
            st.queue = VecDeque::new();
            st.frames = 0;
            st.scheduled = false;
            st.stalled = false;
            st.kicked = false;
            st.drainer = None;
        }
        self.set_close_reason(format!("write failed: {e}"));
        self.ready.notify_one();
    }
}

/// No deadline set, in [`Outbox`]'s `deadline`.
const NO_DEADLINE: u64 = u64::MAX;

/// `at` as 1 + milliseconds since the first instant this process converted, rounded up
/// for a deadline and down for the time now, so that a deadline counts as passed only
/// once it has; 0 means "due" in [`Outbox`]'s `deadline`.
fn deadline_ms(at: Instant, up: bool) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let since = at.saturating_duration_since(*EPOCH.get_or_init(Instant::now));
    let ms = if up {
        since.as_nanos().div_ceil(1_000_000)
    } else {
        since.as_millis()
    };
    u64::try_from(ms)
        .unwrap_or(NO_DEADLINE - 2)
        .min(NO_DEADLINE - 2)
        + 1
}

/// Takes the queued buffers out of `st`.
fn take_all(st: &mut State) -> VecDeque<Bytes> {
    st.frames = 0;
    std::mem::take(&mut st.queue)
}

/// The buffers of `queue` as one.
fn concat(mut queue: VecDeque<Bytes>) -> Bytes {
    if queue.len() == 1
        && let Some(one) = queue.pop_front()
    {
        return one;
    }
    let mut all = BytesMut::with_capacity(queue.iter().map(Bytes::len).sum());
    for b in &queue {
        all.extend_from_slice(b);
    }
    all.freeze()
}

/// Puts the unwritten rest of a chunk back in front of what was queued since.
fn put_back(st: &mut State, mut rest: VecDeque<Bytes>) {
    rest.append(&mut st.queue);
    // The first buffer may start in the middle of a frame; its newline still counts it.
    st.frames = rest
        .iter()
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .sum();
    st.queue = rest;
}

#[cfg(test)]
mod tests;
