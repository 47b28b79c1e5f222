//! Where lines go and how they get there: log paths, the check that keeps names from
//! becoming paths outside the logs directory, bounded appends and fsyncs.
//!
//! **Names never escape the directory.** User and room names are checked against the
//! user-name rule (`natter_proto::validate_username`: `[A-Za-z0-9_-]{1,32}`) right where
//! a path is built, although the session already validates them; an event with a name
//! that fails is dropped with a (rate-limited) warning and creates no file. Directory and
//! file names use the case-folded name (`natter_proto::name_key`), so "Alice" and
//! "alice" share one log; the lines themselves keep the case that was given.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::format::{escape, presence_lines, private_line, room_line, system_line};
use super::{Command, Counters, Event, MAX_DIRTY, WarnLimiter};

/// The system log's file name, directly in the logs directory.
pub(super) const SYSTEM_LOG: &str = "system_events.log";

/// Lines waiting to be appended, grouped by file, in event order within each file.
#[derive(Default)]
struct Pending {
    /// File → the bytes to append to it.
    files: HashMap<PathBuf, Lines>,
}

/// The bytes for one file, and the second name the same lines belong under.
#[derive(Default)]
struct Lines {
    /// What to append.
    bytes: Vec<u8>,
    /// A private conversation's other copy (`users/<b>/<a>.log` for the file
    /// `users/<a>/<b>.log`, a before b): the same file under a second name when it can
    /// be, else a file of its own that gets the same bytes.
    mirror: Option<PathBuf>,
}

impl Pending {
    /// Queues `line` (which ends with `\n`) for `path`.
    fn push(&mut self, path: PathBuf, line: &str) {
        self.files
            .entry(path)
            .or_default()
            .bytes
            .extend_from_slice(line.as_bytes());
    }

    /// Queues `line` for `path` and for its second name `mirror`.
    fn push_pair(&mut self, path: PathBuf, mirror: PathBuf, line: &str) {
        let lines = self.files.entry(path).or_default();
        lines.bytes.extend_from_slice(line.as_bytes());
        lines.mirror = Some(mirror);
    }
}

/// The writer's disk side; lives on the blocking pool while a batch is written.
pub(super) struct Disk {
    /// The logs directory; every path we touch is below it.
    pub(super) dir: PathBuf,
    /// Files appended to since the last fsync.
    dirty: HashSet<PathBuf>,
    /// Queue accounting, updated as events are taken off the queue.
    pub(super) counters: Arc<Counters>,
    /// Rate limit of warnings about refused names.
    name_warning: WarnLimiter,
    /// Rate limit of warnings about failed writes.
    io_warning: WarnLimiter,
    /// Set by a `Close` command: later events are dropped.
    closed: bool,
}

impl Disk {
    /// Disk state for `dir`, with nothing written yet.
    pub(super) fn new(dir: PathBuf, counters: Arc<Counters>) -> Disk {
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
    pub(super) fn handle(&mut self, cmds: Vec<Command>) -> bool {
        let mut pending = Pending::default();
        for cmd in cmds {
            match cmd {
                Command::Event(event) => {
                    self.counters.release(&event);
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

    /// Renders `event` into lines for its files (see `format` for the lines).
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
                let line = private_line(*ts_ms, from, to, text);
                let users = self.dir.join("users");
                if f == t {
                    pending.push(users.join(&f).join(format!("{t}.log")), &line);
                    return;
                }
                // Both directions of a conversation go to one file, in event order,
                // named after the smaller key first; the other name is its mirror.
                let (a, b) = if f < t { (&f, &t) } else { (&t, &f) };
                pending.push_pair(
                    users.join(a).join(format!("{b}.log")),
                    users.join(b).join(format!("{a}.log")),
                    &line,
                );
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
                pending.push(self.room_path(&r), &room_line(*ts_ms, from, text));
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
                let (room_line, system_line) =
                    presence_lines(*ts_ms, room, user, *joined, reason.as_deref());
                pending.push(self.room_path(&r), &room_line);
                pending.push(self.dir.join(SYSTEM_LOG), &system_line);
            }
            Event::System {
                kind,
                detail,
                ts_ms,
            } => {
                pending.push(
                    self.dir.join(SYSTEM_LOG),
                    &system_line(*ts_ms, kind, detail),
                );
            }
        }
    }

    /// `logs/rooms/<key>.log`.
    fn room_path(&self, key: &str) -> PathBuf {
        self.dir.join("rooms").join(format!("{key}.log"))
    }

    /// Appends every pending buffer to its file (and to its mirror, unless the mirror
    /// is the same file under a second name).
    fn write(&mut self, pending: Pending) {
        for (path, lines) in pending.files {
            let written = self.append(&path, &lines.bytes);
            if let Some(mirror) = lines.mirror {
                // A failed write of the first name must not cost the mirror its lines.
                let linked = match &written {
                    Ok(file) => self.linked(file, &path, &mirror),
                    Err(_) => false,
                };
                if linked {
                    self.dirty.insert(mirror);
                } else {
                    let copied = self.append(&mirror, &lines.bytes);
                    self.finish(mirror, copied);
                }
            }
            self.finish(path, written);
        }
    }

    /// Records a write's outcome: the file to sync, or a (rate-limited) warning.
    fn finish(&mut self, path: PathBuf, written: io::Result<Appended>) {
        match written {
            Ok(_) => {
                self.dirty.insert(path);
            }
            Err(e) if self.io_warning.allow() => {
                let path = path.display();
                tracing::warn!(%path, error = %e, "conversation log write failed");
            }
            Err(_) => {}
        }
    }

    /// Whether `mirror` is the file just appended to at `path`. It becomes so when the
    /// file was empty before this append (new, usually) and `mirror` does not exist: it
    /// is then made a second name of the file (one inode and one write per batch
    /// instead of two), which shows nothing written before. It is so when it was made
    /// so earlier. A mirror that exists as a file of its own (an operator removed or
    /// rotated one copy, or the logs are older than this) stays separate, and so does
    /// one that is missing while the file already had lines: a removed copy must not
    /// come back with the whole conversation.
    fn linked(&self, file: &Appended, path: &Path, mirror: &Path) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if file.was_empty {
                let mut link = fs::hard_link(path, mirror);
                if link
                    .as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
                    && let Some(parent) = mirror.parent()
                    && self.make_dirs(parent).is_ok()
                {
                    link = fs::hard_link(path, mirror);
                }
                match link {
                    Ok(()) => return true,
                    // Perhaps a second name already: the identity check below decides.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(_) => return false,
                }
            }
            fs::metadata(mirror)
                .is_ok_and(|m| m.dev() == file.meta.dev() && m.ino() == file.meta.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = (file, path, mirror);
            false
        }
    }

    /// Appends `bytes` to `path` with one write, creating the file (0600) and its
    /// directories (0700) if needed.
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<Appended> {
        let mut file = match open_append(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    self.make_dirs(parent)?;
                }
                open_append(path)?
            }
            other => other?,
        };
        let meta = file.metadata()?;
        if let Err(e) = file.write_all(bytes) {
            // Cut a partial write back off so the file holds only whole lines; only
            // this task writes logs, so nothing else can have appended meanwhile.
            let _ = file.set_len(meta.len());
            return Err(e);
        }
        Ok(Appended {
            was_empty: meta.len() == 0,
            meta,
        })
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
    pub(super) fn sync(&mut self) {
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
}

/// A file appended to: its metadata from before the write, and whether it was empty.
struct Appended {
    /// The file's metadata before the write (its identity, for mirrors).
    meta: fs::Metadata,
    /// Whether the file was empty before the write (created by it, usually).
    was_empty: bool,
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
pub(super) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "fsync of a log directory failed");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Transcript;
    use crate::transcript::testkit::*;

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
}
