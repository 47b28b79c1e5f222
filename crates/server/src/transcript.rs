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
//! **One event, one line.** Free text (message text, reasons, details) is escaped before it
//! is written: `\` becomes `\\`, newline `\n`, carriage return `\r`, tab `\t`, every other
//! control character (C0, DEL, C1) and the Unicode line/paragraph separators and bidi
//! controls become `\u{XX}` (hex code point). Nothing a user types can therefore end a
//! line early, forge a line, or reorder what a terminal shows; escaping the backslash
//! keeps the escape unambiguous (a user typing `\n` is logged as `\\n`).
//!
//! **Names never escape the directory.** User and room names are checked against the
//! user-name rule (`natter_proto::validate_username`: `[A-Za-z0-9_-]{1,32}`) right where
//! a path is built, although the session already validates them; an event with a name
//! that fails is dropped with a (rate-limited) warning and creates no file. Directory and
//! file names use the case-folded name (`natter_proto::name_key`), so "Alice" and
//! "alice" share one log; the lines themselves keep the case that was given.
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
//! **Queueing and drops.** [`Transcript::record`] never blocks and never fails: it
//! `try_send`s into a queue bounded to [`QUEUE_EVENTS`] events *and* [`QUEUE_BYTES`] bytes of
//! event data (a message can be up to 16 KiB, so a count alone could hold a gigabyte).
//! When either bound is reached, or the writer has stopped, the event is dropped, counted
//! in [`Transcript::dropped`], and a warning is logged at most once per second. Delivery
//! of chat messages therefore never waits for the disk; under a sustained overload the
//! logs lose events, visibly.
//!
//! **Retention.** With `Some(d)`, lines older than `d` are removed from every `*.log` file
//! when the writer starts and then once per hour. A line's timestamp prefix is compared
//! as text with the cutoff's (the fixed-width format sorts like time); lines without a
//! timestamp prefix are kept. A file with old lines is rewritten through a temporary file
//! in the same directory (fsynced, then renamed over the original); a file left empty is
//! deleted, and so is a user directory left empty. Files without old lines are only read.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
/// The system log's file name, directly in the logs directory.
const SYSTEM_LOG: &str = "system_events.log";
/// Suffix of retention's temporary files (not `.log`, so never taken for a log).
const PRUNE_SUFFIX: &str = ".pruning";
/// Length of the timestamp prefix, `2026-11-22T02:31:23.123Z`.
const TS_LEN: usize = 24;
/// The largest timestamp we format, 9999-12-31T23:59:59.999Z; beyond it the text would
/// grow a digit and stop sorting like time.
const MAX_TS_MS: u64 = 253_402_300_799_999;

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
#[derive(Default)]
struct Counters {
    /// Events dropped (queue full or writer stopped).
    dropped: AtomicU64,
    /// Bytes of event data in the queue, for [`QUEUE_BYTES`].
    queued_bytes: AtomicUsize,
    /// Rate limit of the "dropping events" warning.
    drop_warning: WarnLimiter,
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
        let now = crate::now_ms();
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
    pub fn record(&self, event: Event) {
        let weight = event.weight();
        let before = self
            .counters
            .queued_bytes
            .fetch_add(weight, Ordering::Relaxed);
        let reason = if before.saturating_add(weight) > QUEUE_BYTES {
            "queue full (bytes)"
        } else {
            match self.tx.try_send(Command::Event(event)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => "queue full",
                Err(mpsc::error::TrySendError::Closed(_)) => "writer stopped",
            }
        };
        self.counters
            .queued_bytes
            .fetch_sub(weight, Ordering::Relaxed);
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
            counters
                .queued_bytes
                .fetch_sub(event.weight(), Ordering::Relaxed);
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

/// Lines waiting to be appended, grouped by file, in event order within each file.
#[derive(Default)]
struct Pending {
    /// File → the bytes to append to it.
    files: HashMap<PathBuf, Vec<u8>>,
}

impl Pending {
    /// Queues `line` (which ends with `\n`) for `path`.
    fn push(&mut self, path: PathBuf, line: &str) {
        self.files
            .entry(path)
            .or_default()
            .extend_from_slice(line.as_bytes());
    }
}

/// The writer's disk side; lives on the blocking pool while a batch is written.
struct Disk {
    /// The logs directory; every path we touch is below it.
    dir: PathBuf,
    /// Files appended to since the last fsync.
    dirty: HashSet<PathBuf>,
    /// Queue accounting, updated as events are taken off the queue.
    counters: Arc<Counters>,
    /// Rate limit of warnings about refused names.
    name_warning: WarnLimiter,
    /// Rate limit of warnings about failed writes.
    io_warning: WarnLimiter,
    /// Set by a `Close` command: later events are dropped.
    closed: bool,
}

impl Disk {
    fn new(dir: PathBuf, counters: Arc<Counters>) -> Disk {
        Disk {
            dir,
            dirty: HashSet::new(),
            counters,
            name_warning: WarnLimiter::default(),
            io_warning: WarnLimiter::default(),
            closed: false,
        }
    }

    /// Writes one batch of commands in order; returns whether a `Close` was among them.
    fn handle(&mut self, cmds: Vec<Command>) -> bool {
        let mut pending = Pending::default();
        for cmd in cmds {
            match cmd {
                Command::Event(event) => {
                    self.counters
                        .queued_bytes
                        .fetch_sub(event.weight(), Ordering::Relaxed);
                    if self.closed {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.render(&event, &mut pending);
                    }
                }
                Command::Flush(ack) => {
                    self.write(std::mem::take(&mut pending));
                    self.sync();
                    let _ = ack.send(());
                }
                Command::Close(ack) => {
                    self.write(std::mem::take(&mut pending));
                    self.sync();
                    self.closed = true;
                    let _ = ack.send(());
                }
            }
        }
        self.write(pending);
        if self.dirty.len() > MAX_DIRTY {
            self.sync();
        }
        self.closed
    }

    /// The path component for a user or room name, or `None` (with a warning) if the
    /// name does not follow the name rule and so must not become a path.
    fn component(&self, what: &str, name: &str) -> Option<String> {
        let key = natter_proto::validate_username(name)
            .ok()
            .map(|()| natter_proto::name_key(name))
            // Implied by the rule; checked again because this is what keeps us inside
            // the directory.
            .filter(|k| !k.is_empty() && k != "." && k != ".." && !k.contains(['/', '\\']));
        if key.is_none() && self.name_warning.allow() {
            tracing::warn!(
                what,
                name = %escape(name),
                "conversation log refused an invalid name; event dropped"
            );
        }
        key
    }

    /// Renders `event` into lines for its files.
    fn render(&self, event: &Event, pending: &mut Pending) {
        match event {
            Event::Private {
                from,
                to,
                text,
                ts_ms,
            } => {
                let (Some(f), Some(t)) = (self.component("user", from), self.component("user", to))
                else {
                    return;
                };
                let line = format!("{} <{from}> -> <{to}> {}\n", iso8601(*ts_ms), escape(text));
                let users = self.dir.join("users");
                if f != t {
                    pending.push(users.join(&t).join(format!("{f}.log")), &line);
                }
                pending.push(users.join(&f).join(format!("{t}.log")), &line);
            }
            Event::Room {
                room,
                from,
                text,
                ts_ms,
            } => {
                let (Some(r), Some(_)) =
                    (self.component("room", room), self.component("user", from))
                else {
                    return;
                };
                let line = format!("{} <{from}> {}\n", iso8601(*ts_ms), escape(text));
                pending.push(self.room_path(&r), &line);
            }
            Event::RoomPresence {
                room,
                user,
                joined,
                reason,
                ts_ms,
            } => {
                let (Some(r), Some(_)) =
                    (self.component("room", room), self.component("user", user))
                else {
                    return;
                };
                let ts = iso8601(*ts_ms);
                let (verb, word) = if *joined {
                    ("joined", "join")
                } else {
                    ("left", "leave")
                };
                let mut room_line = format!("{ts} * {user} {verb}");
                let mut system_line = format!("{ts} {word} room={room} user={user}");
                if let Some(reason) = reason {
                    let reason = escape(reason);
                    let _ = write!(room_line, " ({reason})");
                    let _ = write!(system_line, " reason={reason}");
                }
                room_line.push('\n');
                system_line.push('\n');
                pending.push(self.room_path(&r), &room_line);
                pending.push(self.dir.join(SYSTEM_LOG), &system_line);
            }
            Event::System {
                kind,
                detail,
                ts_ms,
            } => {
                let mut line = format!("{} {}", iso8601(*ts_ms), escape(kind));
                if !detail.is_empty() {
                    line.push(' ');
                    line.push_str(&escape(detail));
                }
                line.push('\n');
                pending.push(self.dir.join(SYSTEM_LOG), &line);
            }
        }
    }

    /// `logs/rooms/<key>.log`.
    fn room_path(&self, key: &str) -> PathBuf {
        self.dir.join("rooms").join(format!("{key}.log"))
    }

    /// Appends every pending buffer to its file.
    fn write(&mut self, pending: Pending) {
        for (path, bytes) in pending.files {
            match self.append(&path, &bytes) {
                Ok(()) => {
                    self.dirty.insert(path);
                }
                Err(e) if self.io_warning.allow() => {
                    let path = path.display();
                    tracing::warn!(%path, error = %e, "conversation log write failed");
                }
                Err(_) => {}
            }
        }
    }

    /// Appends `bytes` to `path` with one write, creating the file (0600) and its
    /// directories (0700) if needed.
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = match open_append(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    self.make_dirs(parent)?;
                }
                open_append(path)?
            }
            other => other?,
        };
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(bytes) {
            // Cut a partial write back off so the file holds only whole lines; only
            // this task writes logs, so nothing else can have appended meanwhile.
            let _ = file.set_len(before);
            return Err(e);
        }
        Ok(())
    }

    /// Creates `dir` and any missing directory between it and the logs directory, each
    /// with mode 0700 (`create_dir_all` would give the intermediate ones the umask's).
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        let rel = dir
            .strip_prefix(&self.dir)
            .map_err(|_| io::Error::other("log path outside the logs directory"))?;
        if !self.dir.is_dir() {
            crate::fsutil::private_dir(&self.dir)?;
        }
        let mut at = self.dir.clone();
        for part in rel.components() {
            at.push(part);
            let mut builder = fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            match builder.create(&at) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Fsyncs every file written since the last sync, and their directories (so newly
    /// created files survive a crash too).
    ///
    /// On Linux one `syncfs` of the logs' filesystem does it all: with many
    /// conversations (private messages among a thousand users touch a new pair of files
    /// almost every time) a fsync per file and directory cost a fifth of the server's
    /// CPU and a disk flush each.
    fn sync(&mut self) {
        #[cfg(target_os = "linux")]
        if !self.dirty.is_empty() {
            match File::open(&self.dir)
                .and_then(|d| nix::unistd::syncfs(&d).map_err(io::Error::from))
            {
                Ok(()) => {
                    self.dirty.clear();
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "syncfs of the logs failed; syncing file by file");
                }
            }
        }
        let mut dirs = HashSet::new();
        for path in self.dirty.drain() {
            if let Err(e) = File::open(&path).and_then(|f| f.sync_data())
                && self.io_warning.allow()
            {
                tracing::warn!(path = %path.display(), error = %e, "conversation log fsync failed");
            }
            if let Some(parent) = path.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
        for dir in dirs {
            sync_dir(&dir);
        }
    }

    /// Removes lines older than `keep` from every log file; see the module doc.
    fn prune(&mut self, keep: Duration) {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let Some(cutoff_ms) = crate::now_ms().checked_sub(keep_ms) else {
            return; // the retention reaches back before 1970: nothing is old enough
        };
        let cutoff = iso8601(cutoff_ms);
        let mut files = Vec::new();
        let mut user_dirs = Vec::new();
        collect_logs(&self.dir, &mut files);
        collect_logs(&self.dir.join("rooms"), &mut files);
        if let Ok(entries) = fs::read_dir(self.dir.join("users")) {
            for entry in entries.flatten() {
                // `file_type` does not follow symlinks: we never prune through one.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    collect_logs(&entry.path(), &mut files);
                    user_dirs.push(entry.path());
                }
            }
        }
        for path in files {
            if let Err(e) = prune_file(&path, &cutoff) {
                let path = path.display();
                tracing::warn!(%path, error = %e, "pruning a conversation log failed");
            }
        }
        for dir in user_dirs {
            // Fails, as intended, unless retention emptied the directory.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Opens `path` for appending, creating it with mode 0600.
fn open_append(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Fsyncs a directory's entries; best effort (not every platform can open a directory).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "fsync of a log directory failed");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Adds the regular `*.log` files in `dir` to `out`, and removes retention's temporary
/// files left there by a crash.
fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log") {
            out.push(entry.path());
        } else if name.starts_with('.') && name.ends_with(PRUNE_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether `line` starts with a timestamp earlier than `cutoff`; lines without a
/// timestamp are never old.
fn is_old(line: &[u8], cutoff: &str) -> bool {
    line.get(..TS_LEN)
        .is_some_and(|ts| is_timestamp(ts) && ts < cutoff.as_bytes())
}

/// Whether `ts` has the shape `dddd-dd-ddTdd:dd:dd.dddZ`.
fn is_timestamp(ts: &[u8]) -> bool {
    const SHAPE: &[u8; TS_LEN] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    ts.len() == TS_LEN
        && ts.iter().zip(SHAPE).all(|(&c, &s)| {
            if s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
}

/// Rewrites `path` without its lines older than `cutoff`, or deletes it if none remain.
fn prune_file(path: &Path, cutoff: &str) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    // First pass, read only: most files have nothing to prune and stay untouched.
    let mut any_old = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if is_old(&line, cutoff) {
            any_old = true;
            break;
        }
    }
    if !any_old {
        return Ok(());
    }
    reader.rewind()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}{PRUNE_SUFFIX}"));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut out = BufWriter::new(opts.open(&tmp)?);
        let mut kept = false;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if !is_old(&line, cutoff) {
                out.write_all(&line)?;
                kept = true;
            }
        }
        if kept {
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
        } else {
            drop(out);
            fs::remove_file(&tmp)?;
            fs::remove_file(path)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    result
}

/// Escapes `text` so it stays on one line and shows every control; see the module doc.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Controls (C0, DEL, C1), which could end a line or drive a terminal, and the Unicode
/// line separators and bidi controls, which could make a line display as another.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Formats milliseconds since the Unix epoch as UTC ISO-8601 with milliseconds,
/// `2026-11-22T02:31:23.123Z` (always [`TS_LEN`] characters; clamped to year 9999).
///
/// Written here rather than taken from a crate because it is a dozen lines of well-known
/// arithmetic (Howard Hinnant's `civil_from_days`) and the tests pin it to known dates.
fn iso8601(ts_ms: u64) -> String {
    let ms = ts_ms.min(MAX_TS_MS);
    let secs = ms / 1000;
    let day_secs = secs % 86_400;
    let (year, month, day) = civil_from_days(secs / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Upper bound for every wait in these tests.
    const WAIT: Duration = Duration::from_secs(30);

    async fn flush(t: &Transcript) {
        tokio::time::timeout(WAIT, t.flush())
            .await
            .expect("flush timed out");
    }

    async fn close(t: &Transcript) {
        tokio::time::timeout(WAIT, t.close())
            .await
            .expect("close timed out");
    }

    fn read_lines(path: &Path) -> Vec<String> {
        let text =
            fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
        text.lines().map(str::to_string).collect()
    }

    /// Splits `<ISO timestamp> <rest>`, checking the timestamp's shape.
    fn split_line(line: &str) -> (&str, &str) {
        let (ts, rest) = line
            .split_at_checked(TS_LEN)
            .unwrap_or_else(|| panic!("short line {line:?}"));
        assert!(is_timestamp(ts.as_bytes()), "bad timestamp in {line:?}");
        let rest = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space after timestamp in {line:?}"));
        (ts, rest)
    }

    /// Every file below `dir` (following nothing but real directories).
    fn all_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in fs::read_dir(&d).expect("read_dir").flatten() {
                let kind = entry.file_type().expect("file_type");
                if kind.is_dir() {
                    todo.push(entry.path());
                } else {
                    out.push(entry.path());
                }
            }
        }
        out
    }

    const TS: u64 = 1_795_314_683_123; // 2026-11-22T02:31:23.123Z

    #[test]
    fn timestamps_are_iso8601_utc_with_millis() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(TS), "2026-11-22T02:31:23.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(951_782_399_999), "2000-02-28T23:59:59.999Z");
        assert_eq!(iso8601(u64::MAX), "9999-12-31T23:59:59.999Z");
        // Text order is time order, which retention relies on.
        assert!(iso8601(TS - 1) < iso8601(TS));
        assert!(iso8601(9_999_999_999) < iso8601(10_000_000_000));
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            escape("a\nb\rc\td\u{1b}[31m\\e\u{7f}\u{85}\u{2028}\u{202e}"),
            "a\\nb\\rc\\td\\u{1b}[31m\\\\e\\u{7f}\\u{85}\\u{2028}\\u{202e}"
        );
    }

    #[tokio::test]
    async fn conversations_rooms_and_system_events_are_logged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        t.record(Event::System {
            kind: "start",
            detail: "version=0.1.0".into(),
            ts_ms: TS,
        });
        t.record(Event::Private {
            from: "Alice".into(),
            to: "bob".into(),
            text: "hi bob".into(),
            ts_ms: TS,
        });
        t.record(Event::Private {
            from: "bob".into(),
            to: "alice".into(),
            text: "hi alice".into(),
            ts_ms: TS + 1,
        });
        t.record(Event::RoomPresence {
            room: "Lobby".into(),
            user: "alice".into(),
            joined: true,
            reason: None,
            ts_ms: TS + 2,
        });
        t.record(Event::Room {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hello room".into(),
            ts_ms: TS + 3,
        });
        t.record(Event::RoomPresence {
            room: "lobby".into(),
            user: "alice".into(),
            joined: false,
            reason: Some("quit".into()),
            ts_ms: TS + 4,
        });
        t.record(Event::System {
            kind: "login_failed",
            detail: "user=mallory addr=1.2.3.4".into(),
            ts_ms: TS + 5,
        });
        flush(&t).await;

        let alice = read_lines(&logs.join("users/alice/bob.log"));
        let bob = read_lines(&logs.join("users/bob/alice.log"));
        assert_eq!(alice, bob, "both participants hold the same conversation");
        assert_eq!(
            alice,
            [
                "2026-11-22T02:31:23.123Z <Alice> -> <bob> hi bob",
                "2026-11-22T02:31:23.124Z <bob> -> <alice> hi alice",
            ]
        );
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            [
                "2026-11-22T02:31:23.125Z * alice joined",
                "2026-11-22T02:31:23.126Z <alice> hello room",
                "2026-11-22T02:31:23.127Z * alice left (quit)",
            ]
        );
        assert_eq!(
            read_lines(&logs.join(SYSTEM_LOG)),
            [
                "2026-11-22T02:31:23.123Z start version=0.1.0",
                "2026-11-22T02:31:23.125Z join room=Lobby user=alice",
                "2026-11-22T02:31:23.127Z leave room=lobby user=alice reason=quit",
                "2026-11-22T02:31:23.128Z login_failed user=mallory addr=1.2.3.4",
            ]
        );
        let mut files = all_files(&logs);
        files.sort();
        assert_eq!(files.len(), 4, "{files:?}");
        for file in files {
            for line in read_lines(&file) {
                split_line(&line);
            }
        }
        close(&t).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_recorders_produce_whole_lines() {
        const TASKS: usize = 8;
        const EACH: usize = 500;
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Arc::new(Transcript::start(logs.clone(), None).expect("start"));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                let fill = char::from(b'a' + task as u8);
                for i in 0..EACH {
                    // Every seventh text is ~4 KiB, to make a torn write show.
                    let len = if i.is_multiple_of(7) { 4096 } else { 10 };
                    let text = format!("t{task} n{i} {}", fill.to_string().repeat(len));
                    t.record(Event::Room {
                        room: "lobby".into(),
                        from: format!("user{task}"),
                        text: text.clone(),
                        ts_ms: crate::now_ms(),
                    });
                    t.record(Event::Private {
                        from: format!("user{task}"),
                        to: "sink".into(),
                        text,
                        ts_ms: crate::now_ms(),
                    });
                    if i.is_multiple_of(50) {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for task in tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("recorder timed out")
                .expect("recorder panicked");
        }
        flush(&t).await;
        assert_eq!(t.dropped(), 0);

        let check = |line: &str, seen: &mut BTreeSet<(usize, usize)>| {
            let (_, rest) = split_line(line);
            let text = rest
                .rsplit_once("> ")
                .unwrap_or_else(|| panic!("no sender in {rest:?}"))
                .1;
            let mut words = text.split(' ');
            let task: usize = words
                .next()
                .and_then(|w| w.strip_prefix('t'))
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("bad task in {text:?}"));
            let i: usize = words
                .next()
                .and_then(|w| w.strip_prefix('n'))
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("bad index in {text:?}"));
            let fill = words
                .next()
                .unwrap_or_else(|| panic!("no fill in {text:?}"));
            let want = if i.is_multiple_of(7) { 4096 } else { 10 };
            let c = char::from(b'a' + task as u8);
            assert!(
                fill.len() == want && fill.chars().all(|x| x == c) && words.next().is_none(),
                "interleaved line: {line:.200}"
            );
            assert!(seen.insert((task, i)), "duplicate line {task}/{i}");
        };

        let room = read_lines(&logs.join("rooms/lobby.log"));
        assert_eq!(room.len(), TASKS * EACH);
        let mut seen = BTreeSet::new();
        for line in &room {
            check(line, &mut seen);
        }
        assert_eq!(seen.len(), TASKS * EACH);

        let mut seen = BTreeSet::new();
        let mut total = 0;
        for task in 0..TASKS {
            let mine = read_lines(&logs.join(format!("users/user{task}/sink.log")));
            let theirs = read_lines(&logs.join(format!("users/sink/user{task}.log")));
            assert_eq!(mine, theirs);
            total += mine.len();
            for line in &mine {
                check(line, &mut seen);
            }
        }
        assert_eq!(total, TASKS * EACH);
        assert_eq!(seen.len(), TASKS * EACH);
        close(&t).await;
    }

    #[tokio::test]
    async fn path_like_names_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        let bad = [
            "../etc", "a/b", ".", "..", "", "/abs", "a\\b", "alice\n", "a.log", "x y",
        ];
        for name in bad {
            t.record(Event::Private {
                from: name.into(),
                to: "bob".into(),
                text: "x".into(),
                ts_ms: TS,
            });
            t.record(Event::Private {
                from: "bob".into(),
                to: name.into(),
                text: "x".into(),
                ts_ms: TS,
            });
            t.record(Event::Room {
                room: name.into(),
                from: "bob".into(),
                text: "x".into(),
                ts_ms: TS,
            });
            t.record(Event::Room {
                room: "lobby".into(),
                from: name.into(),
                text: "x".into(),
                ts_ms: TS,
            });
            t.record(Event::RoomPresence {
                room: name.into(),
                user: "bob".into(),
                joined: true,
                reason: None,
                ts_ms: TS,
            });
            t.record(Event::RoomPresence {
                room: "lobby".into(),
                user: name.into(),
                joined: false,
                reason: None,
                ts_ms: TS,
            });
        }
        flush(&t).await;
        assert_eq!(all_files(tmp.path()), Vec::<PathBuf>::new());
        let mut dirs: Vec<_> = fs::read_dir(tmp.path())
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        dirs.sort();
        assert_eq!(dirs, ["logs"]);

        // The writer survived and still logs valid names.
        t.record(Event::Room {
            room: "lobby".into(),
            from: "bob".into(),
            text: "still here".into(),
            ts_ms: TS,
        });
        flush(&t).await;
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            ["2026-11-22T02:31:23.123Z <bob> still here"]
        );
        close(&t).await;
    }

    #[tokio::test]
    async fn control_characters_stay_on_one_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        let forged = "hi\n2026-11-22T02:31:23.123Z <bob> -> <alice> forged\r\u{1b}[2K";
        t.record(Event::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: forged.into(),
            ts_ms: TS,
        });
        t.record(Event::System {
            kind: "disconnect",
            detail: "user=alice reason=a\nb".into(),
            ts_ms: TS,
        });
        t.record(Event::RoomPresence {
            room: "lobby".into(),
            user: "alice".into(),
            joined: false,
            reason: Some("x\ry".into()),
            ts_ms: TS,
        });
        flush(&t).await;
        assert_eq!(
            read_lines(&logs.join("users/alice/bob.log")),
            [concat!(
                "2026-11-22T02:31:23.123Z <alice> -> <bob> hi\\n2026-11-22T02:31:23.123Z ",
                "<bob> -> <alice> forged\\r\\u{1b}[2K"
            )]
        );
        assert_eq!(
            read_lines(&logs.join(SYSTEM_LOG)),
            [
                "2026-11-22T02:31:23.123Z disconnect user=alice reason=a\\nb",
                "2026-11-22T02:31:23.123Z leave room=lobby user=alice reason=x\\ry",
            ]
        );
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            ["2026-11-22T02:31:23.123Z * alice left (x\\ry)"]
        );
        close(&t).await;
    }

    #[tokio::test]
    async fn retention_prunes_old_lines_and_empty_files_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        fs::create_dir_all(logs.join("rooms")).expect("mkdir");
        fs::create_dir_all(logs.join("users/alice")).expect("mkdir");
        fs::create_dir_all(logs.join("users/carol")).expect("mkdir");
        let new = format!("{} <alice> new", iso8601(crate::now_ms()));
        fs::write(
            logs.join("rooms/lobby.log"),
            format!("2000-01-01T00:00:00.000Z <alice> old\nno timestamp here\n{new}\n"),
        )
        .expect("write");
        fs::write(
            logs.join("users/alice/bob.log"),
            "2000-01-01T00:00:00.000Z <alice> -> <bob> old\n",
        )
        .expect("write");
        fs::write(
            logs.join("users/carol/dave.log"),
            "2001-01-01T00:00:00.000Z <carol> -> <dave> old\n",
        )
        .expect("write");
        fs::write(logs.join("users/carol/notes.txt"), "not a log\n").expect("write");
        fs::write(logs.join(SYSTEM_LOG), format!("{new}\n")).expect("write");

        let day = Duration::from_secs(24 * 60 * 60);
        let t = Transcript::start(logs.clone(), Some(day)).expect("start");
        flush(&t).await;
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            ["no timestamp here".to_string(), new.clone()]
        );
        assert!(!logs.join("users/alice/bob.log").exists());
        assert!(!logs.join("users/alice").exists(), "empty user dir removed");
        assert!(!logs.join("users/carol/dave.log").exists());
        assert!(
            logs.join("users/carol/notes.txt").exists(),
            "only logs are pruned"
        );
        assert_eq!(read_lines(&logs.join(SYSTEM_LOG)), [new]);
        let leftovers: Vec<_> = all_files(&logs)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(PRUNE_SUFFIX))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // Appending after a rewrite goes to the new file.
        t.record(Event::Room {
            room: "lobby".into(),
            from: "alice".into(),
            text: "after".into(),
            ts_ms: crate::now_ms(),
        });
        flush(&t).await;
        assert_eq!(read_lines(&logs.join("rooms/lobby.log")).len(), 3);
        close(&t).await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_0600_and_dirs_0700() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        t.record(Event::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: "x".into(),
            ts_ms: TS,
        });
        t.record(Event::Room {
            room: "lobby".into(),
            from: "alice".into(),
            text: "x".into(),
            ts_ms: TS,
        });
        t.record(Event::System {
            kind: "start",
            detail: String::new(),
            ts_ms: TS,
        });
        flush(&t).await;
        let mode = |p: &Path| {
            fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        for dir in ["", "users", "users/alice", "users/bob", "rooms"] {
            assert_eq!(mode(&logs.join(dir)), 0o700, "{dir}");
        }
        for file in [
            "users/alice/bob.log",
            "users/bob/alice.log",
            "rooms/lobby.log",
            SYSTEM_LOG,
        ] {
            assert_eq!(mode(&logs.join(file)), 0o600, "{file}");
        }
        assert_eq!(
            read_lines(&logs.join(SYSTEM_LOG)),
            ["2026-11-22T02:31:23.123Z start"]
        );
        close(&t).await;
    }

    // A current-thread runtime: the writer cannot run until the test awaits, so the
    // queue fills deterministically.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start_with(logs.clone(), None, 4).expect("start");
        for i in 0..10 {
            t.record(Event::System {
                kind: "test",
                detail: format!("n={i}"),
                ts_ms: TS,
            });
        }
        assert_eq!(t.dropped(), 6);
        flush(&t).await;
        assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 4);
        assert_eq!(t.counters.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn close_is_idempotent_and_later_events_are_dropped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        let t = Transcript::start(logs.clone(), None).expect("start");
        t.record(Event::System {
            kind: "stop",
            detail: String::new(),
            ts_ms: TS,
        });
        close(&t).await;
        assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 1);
        close(&t).await;
        flush(&t).await;
        t.record(Event::System {
            kind: "late",
            detail: String::new(),
            ts_ms: TS,
        });
        assert_eq!(t.dropped(), 1);
        assert_eq!(read_lines(&logs.join(SYSTEM_LOG)).len(), 1);
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Transcript::start(tmp.path().join("logs"), None),
            Err(TranscriptError::NoRuntime)
        ));
    }
}
