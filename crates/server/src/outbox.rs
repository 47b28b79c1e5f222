//! A session's outgoing queue: encoded lines waiting for the connection's writer.
//!
//! Fan-out appends each frame's bytes to every recipient's outbox, and the writer takes
//! everything queued at once and hands it to the socket in one write. Appending bytes to
//! one buffer (instead of queueing one item per frame) is what makes a burst cost a
//! recipient one wake-up and one write, and an idle session holds no buffer at all. The
//! queue is bounded in frames: a recipient that does not keep up is refused further
//! frames, and the hub then closes it as a slow consumer.

use std::sync::{Mutex, MutexGuard, OnceLock};

use bytes::BytesMut;
use tokio::sync::Notify;

/// Most capacity a new chunk reserves ahead of what is being appended.
const MAX_RESERVE_AHEAD: usize = 4096;

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
    /// Encoded lines not yet taken by the writer.
    buf: BytesMut,
    /// Frames in `buf`.
    frames: usize,
    /// Size of the last chunk the writer took: how big the next one is likely to grow.
    last_taken: usize,
    /// Set once the session ended; the writer drains what is left and stops.
    closed: bool,
}

/// A bounded queue of encoded lines for one connection, filled by many, drained by one.
pub struct Outbox {
    /// The queued bytes; held only to append or take, never across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer when bytes arrive in an empty outbox, or on close.
    ready: Notify,
    /// Most frames queued at once.
    max_frames: usize,
    /// Why the session is being closed, if it is (first reason wins); kept here so a
    /// session needs one shared allocation, not two.
    close_reason: OnceLock<String>,
}

impl Outbox {
    /// An empty outbox holding at most `max_frames` frames.
    pub fn new(max_frames: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max_frames,
            close_reason: OnceLock::new(),
        }
    }

    /// Records why the session is being closed, unless a reason was recorded already.
    pub fn set_close_reason(&self, reason: String) {
        let _ = self.close_reason.set(reason);
    }

    /// The first reason recorded by [`Outbox::set_close_reason`].
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.get().map(String::as_str)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a buffer and two counters; a panic elsewhere cannot leave it
        // inconsistent, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `lines`, which hold `frames` complete encoded lines.
    pub fn push(&self, lines: &[u8], frames: usize) -> Push {
        let was_empty = {
            let mut st = self.lock();
            if st.closed {
                return Push::Closed;
            }
            if st.frames + frames > self.max_frames {
                return Push::Full;
            }
            let was_empty = st.buf.is_empty();
            if was_empty {
                // A busy connection's chunk grows to several kilobytes before the writer
                // takes it; starting at the last chunk's size saves copying it on every
                // doubling. An idle one (a presence notice now and then) reserves only
                // what it needs: thousands of them get the same notice at once.
                let likely = st.last_taken.min(MAX_RESERVE_AHEAD);
                st.buf.reserve(lines.len().max(likely));
            }
            st.buf.extend_from_slice(lines);
            st.frames += frames;
            was_empty
        };
        // A writer that is busy finds the new bytes when it comes back; only an empty
        // outbox can have a writer waiting.
        if was_empty {
            self.ready.notify_one();
        }
        Push::Queued
    }

    /// Takes everything queued, waiting until there is something; `None` once the
    /// outbox is closed and drained.
    pub async fn take(&self) -> Option<BytesMut> {
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
    pub fn try_take(&self) -> Option<Option<BytesMut>> {
        let mut st = self.lock();
        if !st.buf.is_empty() {
            st.frames = 0;
            st.last_taken = st.buf.len();
            return Some(Some(std::mem::take(&mut st.buf)));
        }
        st.closed.then_some(None)
    }

    /// Refuses further frames; the writer sends what is queued and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_taken_in_one_piece_and_the_bound_is_in_frames() {
        let out = Outbox::new(3);
        assert_eq!(out.push(b"a\n", 1), Push::Queued);
        assert_eq!(out.push(b"b\nc\n", 2), Push::Queued);
        assert_eq!(out.push(b"d\n", 1), Push::Full);
        assert_eq!(
            out.try_take(),
            Some(Some(BytesMut::from(&b"a\nb\nc\n"[..])))
        );
        assert_eq!(out.try_take(), None, "empty and open");
        assert_eq!(out.push(b"d\n", 1), Push::Queued, "taking frees the room");
        out.close();
        assert_eq!(out.push(b"e\n", 1), Push::Closed);
        assert_eq!(out.try_take(), Some(Some(BytesMut::from(&b"d\n"[..]))));
        assert_eq!(out.try_take(), Some(None), "closed and drained");
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_bytes_and_for_close() {
        let out = std::sync::Arc::new(Outbox::new(8));
        let writer = {
            let out = out.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(chunk) = out.take().await {
                    got.extend_from_slice(&chunk);
                }
                got
            })
        };
        tokio::task::yield_now().await;
        out.push(b"x\n", 1);
        tokio::task::yield_now().await;
        out.push(b"y\n", 1);
        out.close();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
            .await
            .expect("writer ends once closed")
            .expect("writer task");
        assert_eq!(got, b"x\ny\n");
    }
}
