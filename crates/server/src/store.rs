//! Durable state behind the [`Store`] trait; SQLite is the embedded default.
//!
//! [`SqliteStore`] owns its `rusqlite::Connection` on a dedicated thread and takes jobs
//! over a bounded channel, so no async worker ever blocks on disk and there is exactly one
//! owner of the database handle. The thread commits in groups: it takes every job that is
//! waiting, runs them all in one transaction, commits once (one fsync), and only then
//! answers each caller. A message is therefore on disk before anyone is told it was sent,
//! at the cost of one fsync per batch rather than per message. A PostgreSQL store can
//! implement the same trait later.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::thread::JoinHandle;

use natter_proto::name_key;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

/// A boxed future returned by [`Store`] methods (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Resolves once queued work is committed (see [`Store::queue_message`]).
pub type Commit<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + Sync + 'static>>;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account name is already registered (case-insensitively).
    #[error("user name already taken")]
    NameTaken,
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The batch this request was part of could not be committed.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The data directory could not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store thread is gone (server shutting down).
    #[error("store is closed")]
    Closed,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The name in the case it was registered with.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Banned by an operator: the account may not log in.
    pub banned: bool,
}

/// One operator action, kept so moderation can be reviewed later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When the action was taken, Unix milliseconds.
    pub ts: u64,
    /// Display name of the operator who took it.
    pub operator: String,
    /// What was done (for example `ban`, `mute`, `kick`).
    pub action: String,
    /// Whom or what it was done to.
    pub target: String,
    /// Free-form particulars (duration, reason, ...).
    pub detail: String,
}

/// A message to store: public (to a room) or private (to a user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Sender's display name.
    pub from: String,
    /// Where it goes.
    pub target: Target,
    /// Text as delivered (already neutralised).
    pub text: String,
    /// Server time of acceptance, Unix milliseconds.
    pub ts: u64,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A room, by its (case-folded) name.
    Room(String),
    /// A user, by display name; `pending` when they are offline and it awaits delivery.
    User {
        /// Recipient's display name.
        to: String,
        /// Not yet delivered.
        pending: bool,
    },
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server-assigned id, increasing with time of storage.
    pub id: u64,
    /// The message.
    pub msg: NewMessage,
}

/// Persistent storage used by the server.
pub trait Store: Send + Sync + 'static {
    /// Creates an account; fails with [`StoreError::NameTaken`] if the name exists.
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()>;
    /// Looks an account up by name, case-insensitively.
    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>>;
    /// Queues a message for storage. Resolves once it is queued, so messages queued one
    /// after another are stored (and numbered) in that order; the returned [`Commit`]
    /// resolves with the stored message once it is durable. A session can therefore have
    /// several messages committing at once and still publish them in order.
    fn queue_message(&self, msg: NewMessage) -> StoreFuture<'_, Commit<StoredMessage>>;
    /// Stores a message durably and returns it with its id.
    fn append_message(&self, msg: NewMessage) -> StoreFuture<'_, StoredMessage> {
        Box::pin(async move { self.queue_message(msg).await?.await })
    }
    /// Up to `limit` messages of `room` with ids below `before`, oldest first.
    fn room_history<'a>(
        &'a self,
        room: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>>;
    /// Up to `limit` private messages between `a` and `b` with ids below `before`,
    /// oldest first.
    fn private_history<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>>;
    /// Takes every pending private message for `user` and marks them delivered, in one
    /// step: concurrent callers never both get the same message.
    fn take_pending<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<StoredMessage>>;
    /// Marks a stored private message as awaiting delivery (its recipient went offline
    /// before it could be delivered).
    fn mark_pending(&self, msg_id: u64) -> StoreFuture<'_, ()>;
    /// Deletes messages older than `ts` (Unix ms); returns how many.
    fn prune_before(&self, ts: u64) -> StoreFuture<'_, u64>;
    /// Sets or clears the ban flag of the account matching `name` case-insensitively;
    /// returns its display name, or `None` when there is no such account.
    fn set_banned<'a>(&'a self, name: &'a str, banned: bool) -> StoreFuture<'a, Option<String>>;
    /// Records an operator action durably (committed before this resolves).
    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, ()>;
    /// Up to `limit` audit entries, newest first.
    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;
}

/// A unit of work for the store thread; runs inside the batch's transaction and returns
/// what to do once the batch's commit outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> Finish + Send>;
/// Delivers a job's answer, given the commit error of its batch, if any.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// Something for the store thread to do.
enum Command {
    /// Work to run in the next batch.
    Job(Job),
    /// Stop serving after the commands queued before this one.
    Shutdown,
}

/// SQLite store in `DATA_DIR/natter.db` (WAL mode), served by one thread.
pub struct SqliteStore {
    /// Requests to the store thread; bounded so a burst waits instead of piling up.
    tx: mpsc::Sender<Command>,
    /// The store thread, joined on [`SqliteStore::close`].
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Depth of the store's request queue.
const STORE_QUEUE: usize = 16384;
/// Most jobs committed together.
const MAX_BATCH: usize = 4096;

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and starts its thread.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = data_dir.join("natter.db");
        // Create the file 0600 before SQLite opens it; SQLite gives its -wal and -shm
        // files the database file's mode.
        crate::fsutil::create_private_file(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open(&path)?;
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("natter-store".into())
            .spawn(move || serve(conn, rx))
            .map_err(|source| StoreError::Io { path, source })?;
        Ok(SqliteStore {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Finishes the requests queued so far, closes the database and joins its thread.
    pub async fn close(&self) {
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            // Requests are served in order, so everything queued before this is done.
            let _ = self.tx.send(Command::Shutdown).await;
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Runs `work` on the store thread in the next batch and returns its result once the
    /// batch is committed.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.enqueue(work).await?.await
    }

    /// Queues `work` for the store thread (jobs run in the order they are queued) and
    /// returns, once it is queued, a future of its result after the batch's commit.
    async fn enqueue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Commit<T>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            Box::new(move |commit_error: Option<&str>| {
                let result = match commit_error {
                    Some(e) => Err(StoreError::Commit(e.to_string())),
                    None => result,
                };
                let _ = reply.send(result);
            })
        });
        self.tx
            .send(Command::Job(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::Closed)?
        }))
    }
}

impl Store for SqliteStore {
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()> {
        let (name, hash) = (name.to_string(), password_hash.to_string());
        Box::pin(self.call(move |c| create_user(c, &name, &hash)))
    }

    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>> {
        let name = name.to_string();
        Box::pin(self.call(move |c| get_user(c, &name)))
    }

    fn queue_message(&self, msg: NewMessage) -> StoreFuture<'_, Commit<StoredMessage>> {
        Box::pin(self.enqueue(move |c| {
            let id = append_message(c, &msg)?;
            Ok(StoredMessage { id, msg })
        }))
    }

    fn room_history<'a>(
        &'a self,
        room: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        let room = name_key(room);
        Box::pin(self.call(move |c| {
            select_messages(
                c,
                "room = ?1 AND id < ?2",
                params![room, before_id(before), limit],
            )
        }))
    }

    fn private_history<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        let pair = pair_key(a, b);
        Box::pin(self.call(move |c| {
            select_messages(
                c,
                "pair = ?1 AND id < ?2",
                params![pair, before_id(before), limit],
            )
        }))
    }

    fn take_pending<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<StoredMessage>> {
        let key = name_key(user);
        Box::pin(self.call(move |c| {
            // The store thread runs one job at a time, so select-then-update is atomic
            // with respect to every other caller.
            let msgs = select_messages(
                c,
                "recipient_key = ?1 AND pending = 1 AND id < ?2",
                params![key, i64::MAX, u32::MAX],
            )?;
            c.execute(
                "UPDATE messages SET pending = 0 WHERE recipient_key = ?1 AND pending = 1",
                params![key],
            )?;
            Ok(msgs)
        }))
    }

    fn mark_pending(&self, msg_id: u64) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |c| {
            c.execute(
                "UPDATE messages SET pending = 1 WHERE id = ?1 AND recipient_key IS NOT NULL",
                params![msg_id as i64],
            )?;
            Ok(())
        }))
    }

    fn prune_before(&self, ts: u64) -> StoreFuture<'_, u64> {
        Box::pin(self.call(move |c| {
            // Undelivered messages are kept: their recipient has not seen them yet.
            let n = c.execute(
                "DELETE FROM messages WHERE ts < ?1 AND pending = 0",
                params![ts as i64],
            )?;
            Ok(n as u64)
        }))
    }

    fn set_banned<'a>(&'a self, name: &'a str, banned: bool) -> StoreFuture<'a, Option<String>> {
        let key = name_key(name);
        Box::pin(self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE users SET banned = ?2 WHERE name_key = ?1 RETURNING name",
            )?;
            Ok(stmt
                .query_row(params![key, banned], |row| row.get(0))
                .optional()?)
        }))
    }

    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |c| {
            c.prepare_cached(
                "INSERT INTO audit (ts, operator, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                i64::try_from(entry.ts).unwrap_or(i64::MAX),
                entry.operator,
                entry.action,
                entry.target,
                entry.detail
            ])?;
            Ok(())
        }))
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.call(move |c| {
            // Ordered by id, not ts: ids follow insertion even if the clock steps back.
            let mut stmt = c.prepare_cached(
                "SELECT ts, operator, action, target, detail FROM audit
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let entries = stmt
                .query_map(params![limit], |row| {
                    Ok(AuditEntry {
                        ts: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                        operator: row.get(1)?,
                        action: row.get(2)?,
                        target: row.get(3)?,
                        detail: row.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(entries)
        }))
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit reported to a user survives power loss, not just a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (
            id            INTEGER PRIMARY KEY,
            name          TEXT NOT NULL,
            name_key      TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at    INTEGER NOT NULL,
            banned        INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS audit (
            id       INTEGER PRIMARY KEY,
            ts       INTEGER NOT NULL,
            operator TEXT NOT NULL,
            action   TEXT NOT NULL,
            target   TEXT NOT NULL,
            detail   TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS messages (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            ts            INTEGER NOT NULL,
            sender        TEXT NOT NULL,
            room          TEXT,
            recipient     TEXT,
            recipient_key TEXT,
            pair          TEXT,
            text          TEXT NOT NULL,
            pending       INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS messages_room ON messages(room, id) WHERE room IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_pair ON messages(pair, id) WHERE pair IS NOT NULL;
        CREATE INDEX IF NOT EXISTS messages_pending ON messages(recipient_key) WHERE pending = 1;
        CREATE INDEX IF NOT EXISTS messages_ts ON messages(ts);",
    )?;
    // Databases created before bans existed have a users table without the column;
    // `CREATE TABLE IF NOT EXISTS` leaves such a table alone, so add it here.
    if !has_column(conn, "users", "banned")? {
        conn.execute_batch("ALTER TABLE users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// Whether `table` has a column called `column`.
fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

fn serve(conn: Connection, mut rx: mpsc::Receiver<Command>) {
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut jobs = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Job(job) => jobs.push(job),
                Command::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if jobs.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        run_batch(&conn, jobs);
    }
    if let Err((_, e)) = conn.close() {
        tracing::error!(error = %e, "closing the database failed");
    }
}

/// Runs jobs in one transaction, commits once, then answers every caller.
fn run_batch(conn: &Connection, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let began = conn.execute_batch("BEGIN IMMEDIATE");
    let finishes: Vec<Finish> = jobs.into_iter().map(|job| job(conn)).collect();
    let outcome = began.and_then(|()| conn.execute_batch("COMMIT"));
    let error = outcome.err().map(|e| {
        tracing::error!(error = %e, "database commit failed");
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    for finish in finishes {
        finish(error.as_deref());
    }
}

fn create_user(conn: &Connection, name: &str, hash: &str) -> Result<(), StoreError> {
    let now = crate::clock::now_ms();
    let res = conn.execute(
        "INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, name_key(name), hash, now as i64],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::NameTaken)
        }
        Err(e) => Err(e.into()),
    }
}

fn get_user(conn: &Connection, name: &str) -> Result<Option<UserRecord>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name, password_hash, banned FROM users WHERE name_key = ?1")?
        .query_row(params![name_key(name)], |row| {
            Ok(UserRecord {
                name: row.get(0)?,
                password_hash: row.get(1)?,
                banned: row.get(2)?,
            })
        })
        .optional()?)
}

/// The key under which both directions of a private conversation are stored.
fn pair_key(a: &str, b: &str) -> String {
    let (a, b) = (name_key(a), name_key(b));
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

fn before_id(before: Option<u64>) -> i64 {
    before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX))
}

fn append_message(conn: &Connection, m: &NewMessage) -> Result<u64, StoreError> {
    let (room, recipient, recipient_key, pair, pending) = match &m.target {
        Target::Room(room) => (Some(name_key(room)), None, None, None, false),
        Target::User { to, pending } => (
            None,
            Some(to.clone()),
            Some(name_key(to)),
            Some(pair_key(&m.from, to)),
            *pending,
        ),
    };
    conn.prepare_cached(
        "INSERT INTO messages (ts, sender, room, recipient, recipient_key, pair, text, pending)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        m.ts as i64,
        m.from,
        room,
        recipient,
        recipient_key,
        pair,
        m.text,
        pending
    ])?;
    Ok(conn.last_insert_rowid() as u64)
}

/// The newest `limit` messages matching `filter` (parameters ?1, ?2 = before id, ?3 =
/// limit), returned oldest first.
fn select_messages(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredMessage>, StoreError> {
    let sql = format!(
        "SELECT id, ts, sender, room, recipient, text, pending FROM messages
         WHERE {filter} ORDER BY id DESC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out: Vec<StoredMessage> = stmt
        .query_map(params, |row| {
            let room: Option<String> = row.get(3)?;
            let recipient: Option<String> = row.get(4)?;
            let target = match (room, recipient) {
                (Some(room), _) => Target::Room(room),
                (None, to) => Target::User {
                    to: to.unwrap_or_default(),
                    pending: row.get(6)?,
                },
            };
            Ok(StoredMessage {
                id: row.get::<_, i64>(0)? as u64,
                msg: NewMessage {
                    from: row.get(2)?,
                    target,
                    text: row.get(5)?,
                    ts: row.get::<_, i64>(1)? as u64,
                },
            })
        })?
        .collect::<Result<_, _>>()?;
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_msg(from: &str, room: &str, text: &str, ts: u64) -> NewMessage {
        NewMessage {
            from: from.into(),
            target: Target::Room(room.into()),
            text: text.into(),
            ts,
        }
    }

    fn dm(from: &str, to: &str, text: &str, pending: bool) -> NewMessage {
        NewMessage {
            from: from.into(),
            target: Target::User {
                to: to.into(),
                pending,
            },
            text: text.into(),
            ts: 5,
        }
    }

    #[tokio::test]
    async fn history_pages_backwards_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        for i in 0..10 {
            store
                .append_message(room_msg("al", "Lobby", &format!("m{i}"), i))
                .await
                .expect("append");
        }
        store
            .append_message(room_msg("al", "other", "elsewhere", 1))
            .await
            .expect("append");
        let last3 = store.room_history("lobby", None, 3).await.expect("history");
        let texts: Vec<_> = last3.iter().map(|m| m.msg.text.as_str()).collect();
        assert_eq!(texts, ["m7", "m8", "m9"]);
        let before = store
            .room_history("LOBBY", Some(last3[0].id), 4)
            .await
            .expect("history");
        let texts: Vec<_> = before.iter().map(|m| m.msg.text.as_str()).collect();
        assert_eq!(texts, ["m3", "m4", "m5", "m6"]);
        store.close().await;
    }

    #[tokio::test]
    async fn private_history_has_both_directions_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .append_message(dm("al", "Bo", "1", false))
            .await
            .expect("a");
        store
            .append_message(dm("bo", "al", "2", false))
            .await
            .expect("b");
        store
            .append_message(dm("al", "cy", "3", false))
            .await
            .expect("c");
        let h = store
            .private_history("BO", "al", None, 10)
            .await
            .expect("h");
        let texts: Vec<_> = h.iter().map(|m| m.msg.text.as_str()).collect();
        assert_eq!(texts, ["1", "2"]);
    }

    #[tokio::test]
    async fn pending_messages_are_taken_exactly_once_under_concurrency() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(SqliteStore::open(dir.path()).expect("open"));
        for i in 0..20 {
            store
                .append_message(dm("al", "bo", &format!("p{i}"), true))
                .await
                .expect("append");
        }
        store
            .append_message(dm("al", "bo", "seen", false))
            .await
            .expect("append");
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.take_pending("BO").await })
            })
            .collect();
        let mut total = 0;
        for t in takers {
            total += t.await.expect("join").expect("take").len();
        }
        assert_eq!(total, 20);
        assert!(store.take_pending("bo").await.expect("again").is_empty());
    }

    #[tokio::test]
    async fn messages_survive_reopening_and_prune_keeps_undelivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            store
                .append_message(room_msg("al", "lobby", "old", 1))
                .await
                .expect("a");
            store
                .append_message(dm("al", "bo", "queued", true))
                .await
                .expect("b");
            store
                .append_message(room_msg("al", "lobby", "new", 100))
                .await
                .expect("c");
            store.close().await;
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        assert_eq!(store.prune_before(50).await.expect("prune"), 1);
        let h = store.room_history("lobby", None, 10).await.expect("h");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].msg.text, "new");
        assert_eq!(store.take_pending("bo").await.expect("take").len(), 1);
    }

    async fn is_banned(store: &SqliteStore, name: &str) -> bool {
        store
            .get_user(name)
            .await
            .expect("get")
            .expect("user exists")
            .banned
    }

    #[tokio::test]
    async fn ban_and_unban_round_trip_case_insensitively() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store.create_user("Alice", "hash").await.expect("create");
        let fresh = store.get_user("alice").await.expect("get").expect("exists");
        assert!(!fresh.banned);
        assert_eq!(
            store.set_banned("ALICE", true).await.expect("ban"),
            Some("Alice".to_string())
        );
        assert!(is_banned(&store, "Alice").await);
        assert_eq!(
            store.set_banned("alice", false).await.expect("unban"),
            Some("Alice".to_string())
        );
        assert!(!is_banned(&store, "alice").await);
        assert_eq!(store.set_banned("nobody", true).await.expect("ban"), None);
        assert!(store.get_user("nobody").await.expect("get").is_none());
        store.close().await;
    }

    fn audit(ts: u64, action: &str) -> AuditEntry {
        AuditEntry {
            ts,
            operator: "Op".into(),
            action: action.into(),
            target: "bo".into(),
            detail: format!("detail {ts}"),
        }
    }

    #[tokio::test]
    async fn audit_log_is_newest_first_limited_and_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            assert!(store.audit_log(10).await.expect("empty").is_empty());
            for (i, action) in ["ban", "mute", "unban"].iter().enumerate() {
                store
                    .append_audit(audit(i as u64 + 1, action))
                    .await
                    .expect("append");
            }
            store.close().await;
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        let all = store.audit_log(10).await.expect("log");
        assert_eq!(all, [audit(3, "unban"), audit(2, "mute"), audit(1, "ban")]);
        let two = store.audit_log(2).await.expect("log");
        assert_eq!(two, [audit(3, "unban"), audit(2, "mute")]);
        assert!(store.audit_log(0).await.expect("log").is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn old_users_table_is_migrated_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // The users table exactly as the previous version created it.
            let conn = Connection::open(dir.path().join("natter.db")).expect("old db");
            conn.execute_batch(
                "CREATE TABLE users (
                    id            INTEGER PRIMARY KEY,
                    name          TEXT NOT NULL,
                    name_key      TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    created_at    INTEGER NOT NULL
                );
                INSERT INTO users (name, name_key, password_hash, created_at)
                VALUES ('Bo', 'bo', 'oldhash', 1);",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(dir.path()).expect("open migrates");
        let bo = store.get_user("BO").await.expect("get").expect("kept");
        assert_eq!(bo.password_hash, "oldhash");
        assert!(!bo.banned);
        assert_eq!(
            store.set_banned("bo", true).await.expect("ban"),
            Some("Bo".to_string())
        );
        assert!(is_banned(&store, "bo").await);
        store
            .append_audit(audit(1, "ban"))
            .await
            .expect("audit table created");
        store.close().await;
        // Opening an already-migrated database again is a no-op.
        let store = SqliteStore::open(dir.path()).expect("reopen");
        assert!(is_banned(&store, "bo").await);
        store.close().await;
    }

    #[tokio::test]
    async fn many_concurrent_writers_are_committed_in_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(SqliteStore::open(dir.path()).expect("open"));
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.append_message(room_msg("al", "lobby", &format!("{i}"), i))
                        .await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for w in writers {
            ids.push(w.await.expect("join").expect("append").id);
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200, "every message got its own id");
        assert_eq!(
            store
                .room_history("lobby", None, 500)
                .await
                .expect("h")
                .len(),
            200
        );
    }
}
