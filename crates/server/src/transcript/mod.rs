//! Conversation logs as plain text files an operator can read, `tail -f` and grep.
//!
//! Layout under the logs directory (0700; every directory below it 0700, every file 0600):
//!
//! ```text
//! logs/users/alice/bob.log    private messages between alice and bob, as alice's copy
//! logs/users/bob/alice.log    the same lines, as bob's copy
//! logs/rooms/lobby.log        messages, joins and leaves in room "lobby"
//! logs/system_events.log      start, stop, logins, joins, leaves, rate limits, disconnects
//! ```
//!
//! Every event is exactly one line that starts with a UTC ISO-8601 timestamp with
//! milliseconds (`2026-11-22T02:31:23.123Z`), then a space and the rest:
//!
//! ```text
//! 2026-11-22T02:31:23.123Z <alice> -> <bob> hi           private (both files)
//! 2026-11-22T02:31:23.123Z <alice> hello room            room message
//! 2026-11-22T02:31:23.123Z * alice joined                room presence (room log)
//! 2026-11-22T02:31:23.123Z * alice left (quit)
//! 2026-11-22T02:31:23.123Z join room=lobby user=alice    room presence (system log)
//! 2026-11-22T02:31:23.123Z leave room=lobby user=alice reason=quit
//! 2026-11-22T02:31:23.123Z login user=alice addr=1.2.3.4 any other system event
//! ```
//!
//! **One event, one line.** Free text is escaped before it is written, so nothing a user
//! types can end a line early, forge a line, or reorder what a terminal shows (see
//! `format`, which also renders the timestamps).
//!
//! **Names never escape the directory.** User and room names are checked against the
//! user-name rule right where a path is built, and files use the case-folded name (see
//! `files`, which owns every path and every write).
//!
//! **Writer.** [`Transcript::start`] spawns one tokio task that owns all log I/O. It takes
//! everything queued (up to [`MAX_BATCH`] events) at once, renders it into one buffer per
//! file, and hands the batch to `spawn_blocking`, where each file is opened in append
//! mode, written with a single `write_all` and closed. We chose a tokio task plus
//! `spawn_blocking` per batch over a dedicated thread because the writer also needs a
//! timer (hourly retention) next to its queue, which `select!` gives for free, and a blocking
//! thread is only occupied while there is disk work. Under load the batches grow while a
//! write is in progress, so the number of writes per event falls (group commit).
//! Open-append-close per batch (instead of a cache of open handles) keeps the number of
//! open files at one, and means a log that an operator rotates or deletes, or that
//! retention rewrites, is simply reopened at its path on the next batch. There is no
//! user-space buffer: after each batch the lines are in the kernel and visible to
//! `tail -f`. Data is fsynced on [`Transcript::flush`], [`Transcript::close`], hourly, and
//! whenever more than [`MAX_DIRTY`] files are waiting for it. Only the writer ever writes,
//! and each line is rendered whole before the single write, so lines from concurrent
//! recorders never interleave; if a write fails part-way (disk full) the file is cut
//! back to its previous length so no torn line remains.
//!
//! **Queueing, waiting and drops.** The queue is bounded to [`QUEUE_EVENTS`] events *and*
//! [`QUEUE_BYTES`] bytes of event data (a message can be up to 16 KiB, so a count alone
//! could hold a gigabyte). Chat messages (room and private) go through
//! [`Transcript::record_wait`], which waits for room: the logs hold every message sent,
//! and under a sustained overload the writer's pace paces the senders, as the store's
//! bounded queue does. Everything else (presence, system events) goes through
//! [`Transcript::record`], which never blocks and never fails: when either bound is
//! reached, or the writer has stopped, the event is dropped, counted in
//! [`Transcript::dropped`], and a warning is logged at most once per second.
//!
//! **Private conversations** are one file under two names: `users/<a>/<b>.log` (a < b)
//! is created and `users/<b>/<a>.log` made a hard link to it, so a message costs one
//! write and a new conversation one file, not two. A copy that is a file of its own
//! (an operator removed or rotated one, retention rewrote one, or the logs predate this)
//! stays separate and gets the same lines; a removed copy comes back with new lines only.
//!
//! **Retention.** With `Some(d)`, lines older than `d` are removed from every `*.log` file
//! when the writer starts and then once per hour (see `retention`).
//!
//! **Layering.** This module sits below the session and the web console: it knows
//! `natter_proto`'s name rule, `crate::fsutil` and `crate::clock::now_ms`, and nothing of who
//! records events, so any caller can hand it an [`Event`].

mod files;
mod format;
mod retention;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use files::Disk;

/// Most events the queue holds; beyond that [`Transcript::record`] drops.
pub const QUEUE_EVENTS: usize = 65_536;
/// Most bytes of event data the queue holds; beyond that [`Transcript::record`] drops.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Most events the writer takes from the queue for one batch of writes.
pub const MAX_BATCH: usize = 4096;
/// Files written since the last fsync beyond which the writer fsyncs without being asked.
pub const MAX_DIRTY: usize = 1024;
/// How often the writer fsyncs and applies the retention.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60 * 60);
/// Least time between two warnings of the same kind, in milliseconds.
const WARN_EVERY_MS: u64 = 1000;
/// One loggable event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A private message: appended to `logs/users/<from>/<to>.log` and
    /// `logs/users/<to>/<from>.log`.
    Private {
        /// Sender's name.
        from: String,
        /// Recipient's name.
        to: String,
        /// The message text (escaped when written).
        text: String,
        /// When it was sent, in milliseconds since the Unix epoch.
        ts_ms: u64,
    },
    /// A room message: appended to `logs/rooms/<room>.log`.
    Room {
        /// The room's name.
        room: String,
        /// Sender's name.
        from: String,
        /// The message text (escaped when written).
        text: String,
        /// When it was sent, in milliseconds since the Unix epoch.
        ts_ms: u64,
    },
    /// A room join or leave: appended to `logs/rooms/<room>.log` and
    /// `logs/system_events.log`.
    RoomPresence {
        /// The room's name.
        room: String,
        /// Who joined or left.
        user: String,
        /// `true` for a join, `false` for a leave.
        joined: bool,
        /// Why, e.g. "quit" or "timeout" (escaped when written).
        reason: Option<String>,
        /// When it happened, in milliseconds since the Unix epoch.
        ts_ms: u64,
    },
    /// Anything else, for `logs/system_events.log`.
    System {
        /// A short word: "start", "stop", "register", "login", "login_failed",
        /// "rate_limited", "muted", "disconnect", ...
        kind: &'static str,
        /// Free text, e.g. "user=alice addr=1.2.3.4 reason=quit" (escaped when written).
        detail: String,
        /// When it happened, in milliseconds since the Unix epoch.
        ts_ms: u64,
    },
}

impl Event {
    /// Bytes this event holds while queued, for the queue's byte bound.
    fn weight(&self) -> usize {
        let strings = match self {
            Event::Private { from, to, text, .. } => from.len() + to.len() + text.len(),
            Event::Room {
                room, from, text, ..
            } => room.len() + from.len() + text.len(),
            Event::RoomPresence {
                room, user, reason, ..
            } => room.len() + user.len() + reason.as_ref().map_or(0, String::len),
            Event::System { detail, .. } => detail.len(),
        };
        std::mem::size_of::<Event>() + strings
    }
}

/// Errors starting the transcript writer.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// The logs directory could not be created or secured.
    #[error("cannot prepare log directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// [`Transcript::start`] was called outside a tokio runtime.
    #[error("the transcript writer must be started inside a tokio runtime")]
    NoRuntime,
}

/// What the writer task is asked to do, in queue order.
enum Command {
    /// Append this event.
    Event(Event),
    /// Write and fsync everything before this, then answer.
    Flush(oneshot::Sender<()>),
    /// Write and fsync everything before this, answer and stop.
    Close(oneshot::Sender<()>),
}

/// Counters shared between recorders and the writer.
struct Counters {
    /// Events dropped (queue full or writer stopped).
    dropped: AtomicU64,
    /// Room left in the queue for event data, in bytes (one permit a byte; starts at
    /// [`QUEUE_BYTES`]): taken when an event is queued, given back when the writer takes
    /// it off the queue.
    room: Semaphore,
    /// Rate limit of the "dropping events" warning.
    drop_warning: WarnLimiter,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            dropped: AtomicU64::new(0),
            room: Semaphore::new(QUEUE_BYTES),
            drop_warning: WarnLimiter::default(),
        }
    }
}

impl Counters {
    /// Gives back the queue room an event took (the writer took it off the queue).
    fn release(&self, event: &Event) {
        self.room.add_permits(permits(event) as usize);
    }

    /// Bytes of event data in the queue now.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        QUEUE_BYTES - self.room.available_permits()
    }
}

/// The queue room an event takes, in bytes (at most the whole queue, so that one
/// event can always be queued once the queue is empty).
fn permits(event: &Event) -> u32 {
    u32::try_from(event.weight().min(QUEUE_BYTES)).unwrap_or(u32::MAX)
}

/// Lets a warning through at most once per [`WARN_EVERY_MS`], from any thread.
#[derive(Default)]
struct WarnLimiter {
    /// When the last warning went out (ms since the epoch; 0 = never).
    last_ms: AtomicU64,
}

impl WarnLimiter {
    /// Whether a warning may be logged now; if so, the next one waits a second.
    fn allow(&self) -> bool {
        let now = crate::clock::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= WARN_EVERY_MS)
            && self
                .last_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Handle to the conversation-log writer; see the module documentation.
pub struct Transcript {
    /// The writer's queue; bounded, see [`QUEUE_EVENTS`].
    tx: mpsc::Sender<Command>,
    /// Drop count and queued bytes, shared with the writer.
    counters: Arc<Counters>,
    /// The writer task, awaited by the first [`Transcript::close`].
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Transcript {
    /// Starts the writer task writing under `logs_dir` (created, and restricted to 0700).
    /// `retention`: `None` keeps everything; `Some(d)` prunes lines older than `d` from
    /// every log at start and then once per hour. Must be called inside a tokio runtime.
    pub fn start(
        logs_dir: PathBuf,
        retention: Option<Duration>,
    ) -> Result<Transcript, TranscriptError> {
        Self::start_with(logs_dir, retention, QUEUE_EVENTS)
    }

    /// [`Transcript::start`] with a chosen queue depth (tests use a tiny one).
    fn start_with(
        logs_dir: PathBuf,
        retention: Option<Duration>,
        queue_events: usize,
    ) -> Result<Transcript, TranscriptError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TranscriptError::NoRuntime)?;
        crate::fsutil::private_dir(&logs_dir).map_err(|source| TranscriptError::Dir {
            path: logs_dir.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(queue_events.max(1));
        let counters = Arc::new(Counters::default());
        let disk = Disk::new(logs_dir, counters.clone());
        let task = runtime.spawn(run_writer(rx, disk, retention));
        Ok(Transcript {
            tx,
            counters,
            task: Mutex::new(Some(task)),
        })
    }

    /// Queues an event; never blocks and never fails the caller. When the queue is full
    /// (or the writer has stopped) the event is dropped and counted; see the module doc.
    /// For presence and system events; chat messages use [`Transcript::record_wait`].
    pub fn record(&self, event: Event) {
        let reason = match self.counters.room.try_acquire_many(permits(&event)) {
            Err(_) => "queue full (bytes)",
            Ok(room) => {
                room.forget();
                match self.tx.try_send(Command::Event(event)) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(Command::Event(event))) => {
                        self.counters.release(&event);
                        "queue full"
                    }
                    Err(mpsc::error::TrySendError::Closed(Command::Event(event))) => {
                        self.counters.release(&event);
                        "writer stopped"
                    }
                    // Only events are sent here.
                    Err(_) => "queue full",
                }
            }
        };
        self.dropped_one(reason);
    }

    /// Queues a chat message's event, waiting for room in the queue instead of dropping
    /// it: under a sustained overload the writer's pace then paces the senders (as the
    /// store's queue does), and every message sent is in the logs. Drops (and counts)
    /// only once the writer has stopped.
    pub async fn record_wait(&self, event: Event) {
        match self.counters.room.acquire_many(permits(&event)).await {
            Ok(room) => room.forget(),
            Err(_) => return self.dropped_one("writer stopped"),
        }
        if let Err(mpsc::error::SendError(cmd)) = self.tx.send(Command::Event(event)).await {
            if let Command::Event(event) = cmd {
                self.counters.release(&event);
            }
            self.dropped_one("writer stopped");
        }
    }

    /// Counts a dropped event and warns (at most once a second).
    fn dropped_one(&self, reason: &'static str) {
        let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if self.counters.drop_warning.allow() {
            tracing::warn!(dropped, reason, "conversation log is dropping events");
        }
    }

    /// Number of events dropped because the queue was full or the writer had stopped.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued so far, fsyncs, and stops the writer (used on server
    /// shutdown and in tests). Idempotent; events recorded afterwards are dropped.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        // Fails only when the writer is already gone, which is what we want anyway.
        if self.tx.send(Command::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "conversation log writer failed");
        }
    }

    /// Waits until everything queued before this call is written and fsynced (for tests
    /// and shutdown). Returns at once if the writer has stopped.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        // Unlike `record`, this waits for room in the queue: it must come after the
        // events queued before it, and the caller asked to wait.
        if self.tx.send(Command::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// The writer task: batches the queue onto the disk and runs housekeeping.
async fn run_writer(mut rx: mpsc::Receiver<Command>, disk: Disk, retention: Option<Duration>) {
    let dir = disk.dir.clone();
    let counters = disk.counters.clone();
    let mut disk = Some(disk);
    if let Some(keep) = retention {
        disk = on_disk(disk, &dir, &counters, move |d| d.prune(keep))
            .await
            .0;
    }
    let start = tokio::time::Instant::now() + HOUSEKEEPING_EVERY;
    let mut housekeeping = tokio::time::interval_at(start, HOUSEKEEPING_EVERY);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            // The timer first: it is ready once an hour, so it cannot starve the queue,
            // while a busy queue could otherwise starve it.
            biased;
            _ = housekeeping.tick() => {
                disk = on_disk(disk, &dir, &counters, move |d| {
                    d.sync();
                    if let Some(keep) = retention {
                        d.prune(keep);
                    }
                })
                .await
                .0;
            }
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    // Every `Transcript` handle is gone: make what was written durable.
                    on_disk(disk, &dir, &counters, Disk::sync).await;
                    return;
                }
                let cmds = std::mem::take(&mut batch);
                let (back, stop) = on_disk(disk, &dir, &counters, move |d| d.handle(cmds)).await;
                disk = back;
                if stop == Some(true) {
                    break;
                }
            }
        }
    }
    // Closed: whatever is still queued was recorded after `close` and is dropped.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let Command::Event(event) = cmd {
            counters.release(&event);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `job` on the blocking pool with the disk state, and gives the state back. If the
/// job panicked, the state is rebuilt (it holds nothing that cannot be) so logging goes on.
async fn on_disk<T: Send + 'static>(
    disk: Option<Disk>,
    dir: &Path,
    counters: &Arc<Counters>,
    job: impl FnOnce(&mut Disk) -> T + Send + 'static,
) -> (Option<Disk>, Option<T>) {
    let mut disk = disk.unwrap_or_else(|| Disk::new(dir.to_path_buf(), counters.clone()));
    match tokio::task::spawn_blocking(move || {
        let out = job(&mut disk);
        (disk, out)
    })
    .await
    {
        Ok((disk, out)) => (Some(disk), Some(out)),
        Err(e) => {
            tracing::error!(error = %e, "conversation log write failed");
            (None, None)
        }
    }
}
