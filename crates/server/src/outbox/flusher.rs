//! The flusher: one task that writes every direct outbox that has something queued, in
//! turn and without waiting, and the drain task that takes over an outbox whose socket
//! would block.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Outbox, put_back, take_all};

/// Most outboxes the flusher writes before letting other tasks run: sessions reading
/// new messages and publishing commits must not wait for a whole room's writes. 8
/// rather than 32: in a room of 100, the server then made fewer writes per delivery
/// and fewer, larger commits, and delivered 7–20 % more (PERFORMANCE.md, optimisation
/// 36); rooms of 1 000 were not slower.
const FLUSH_BATCH: usize = 8;

/// Writes a stalled direct outbox as its socket allows, until it is empty; then pushes
/// go to the flusher again.
pub(super) async fn drain(out: Arc<Outbox>) {
    let Some(d) = &out.direct else { return };
    // Whether the last write left something behind (so the socket must drain first).
    let mut blocked = true;
    loop {
        if blocked && let Err(e) = d.sink.tcp().writable().await {
            out.fail(&e);
            return;
        }
        let mut chunk = {
            let mut st = out.lock();
            if st.dead {
                return;
            }
            if !blocked && st.queue.is_empty() && !st.kicked {
                st.stalled = false;
                st.drainer = None;
                drop(st);
                out.ready.notify_one();
                return;
            }
            st.kicked = false;
            take_all(&mut st)
        };
        match d.sink.write_now(&mut chunk) {
            Err(e) => {
                out.fail(&e);
                return;
            }
            Ok(done) => {
                blocked = !done;
                if !chunk.is_empty() {
                    put_back(&mut out.lock(), chunk);
                }
            }
        }
    }
}

/// Writes direct outboxes in the order they got something to write (see the module
/// documentation); one per server.
#[derive(Default)]
pub struct Flusher {
    /// Outboxes with bytes to write; each appears at most once (`State::scheduled`).
    queue: Mutex<VecDeque<Arc<Outbox>>>,
    /// Wakes the flusher task when the queue stops being empty.
    wake: Notify,
}

impl Flusher {
    /// A flusher with an empty queue; [`Flusher::run`] does the writing.
    pub fn new() -> Arc<Flusher> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Outbox>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `out` for writing.
    pub(super) fn schedule(&self, out: Arc<Outbox>) {
        let first = {
            let mut q = self.lock();
            q.push_back(out);
            q.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Writes queued outboxes until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(FLUSH_BATCH);
        loop {
            {
                let mut q = self.lock();
                let n = q.len().min(FLUSH_BATCH);
                batch.extend(q.drain(..n));
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = stop.cancelled() => return,
                }
            }
            for out in batch.drain(..) {
                out.flush();
            }
            tokio::task::yield_now().await;
        }
    }
}
