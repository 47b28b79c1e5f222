//! [`SqliteStore`]: the embedded store, one thread owning the SQLite connection.
//!
//! The thread takes jobs over a bounded channel, so no async worker ever blocks on disk
//! and there is exactly one owner of the database handle. It commits in groups: it takes
//! every job that is waiting, runs them all in one transaction, commits once (one
//! fsync), and only then answers each caller, in the order the jobs were queued. A
//! message is therefore on disk before anyone is told it was sent, at the cost of one
//! fsync per batch rather than per message.
//!
//! Room sequence numbers are counted by the thread: it keeps each room's last number in
//! memory (read once from the database at the room's first message), so numbering a
//! message costs no query. A cached number is only trusted while this connection is the
//! database's only writer: each batch starts by reading `PRAGMA data_version`, which
//! changes when another connection (another process) has committed, and then forgets
//! every cached number. A batch that fails to commit forgets them too, since its
//! numbers were rolled back with it.

use std::collections::HashMap;
use std::path::Path;
use std::thread::JoinHandle;

use natter_proto::name_key;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::schema::migrate;
use super::{
    AuditEntry, Commit, NewMessage, Store, StoreError, StoreFuture, StoredMessage, Target,
    UserRecord, pair_key,
};

#[cfg(test)]
mod tests;

/// A unit of work for the store thread; runs inside the batch's transaction (or not at
/// all, given `None`, when the transaction could not begin) and returns what to do once
/// the batch's commit outcome is known.
type Job = Box<dyn FnOnce(Option<&mut Db>) -> Finish + Send>;
/// Delivers a job's answer, given the commit error of its batch, if any.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// Something for the store thread to do.
enum Command {
    /// Work to run in the next batch.
    Job(Job),
    /// Stop serving after the commands queued before this one.
    Shutdown,
}

/// What the store thread owns.
struct Db {
    /// The one connection to the database.
    conn: Connection,
    /// The last sequence number given in each room, by room key, for the rooms written
    /// since the cache was last forgotten.
    seqs: HashMap<String, u64>,
    /// `PRAGMA data_version` when `seqs` was last known to be right; another value
    /// means another connection has written since.
    data_version: i64,
}

/// Most rooms whose counters are cached; past it the cache starts again, so a flood of
/// room names cannot grow it without bound.
const MAX_CACHED_ROOMS: usize = 10_000;

/// Turns rusqlite's error into the store's own, so no rusqlite type leaves this module.
fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Db(Box::new(e))
}

/// An error a job may return: the store's own, or rusqlite's (converted on the way out).
trait JobError {
    /// The store's error for it.
    fn into_store(self) -> StoreError;
}

impl JobError for StoreError {
    fn into_store(self) -> StoreError {
        self
    }
}

impl JobError for rusqlite::Error {
    fn into_store(self) -> StoreError {
        db_error(self)
    }
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
    /// Opens (creating if needed) the database in `data_dir`, migrates its schema and
    /// starts its thread.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = data_dir.join("natter.db");
        // Create the file 0600 before SQLite opens it; SQLite gives its -wal and -shm
        // files the database file's mode.
        crate::fsutil::create_private_file(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let mut conn = Connection::open(&path).map_err(db_error)?;
        migrate(&mut conn).map_err(db_error)?;
        let db = Db {
            conn,
            seqs: HashMap::new(),
            data_version: 0,
        };
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("natter-store".into())
            .spawn(move || serve(db, rx))
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
    async fn call<T: Send + 'static, E: JobError>(
        &self,
        work: impl FnOnce(&mut Db) -> Result<T, E> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.enqueue(work).await?.await
    }

    /// Queues `work` for the store thread (jobs run in the order they are queued) and
    /// returns, once it is queued, a future of its result after the batch's commit.
    async fn enqueue<T: Send + 'static, E: JobError>(
        &self,
        work: impl FnOnce(&mut Db) -> Result<T, E> + Send + 'static,
    ) -> Result<Commit<T>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = db.map(|db| work(db).map_err(JobError::into_store));
            Box::new(move |commit_error: Option<&str>| {
                let result = match (commit_error, result) {
                    (None, Some(result)) => result,
                    (Some(e), _) => Err(StoreError::Commit(e.to_string())),
                    // Not run although the batch did not fail: cannot happen, since a
                    // job is skipped only when the transaction is gone, and then the
                    // batch's COMMIT fails.
                    (None, None) => Err(StoreError::Commit("not run".into())),
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
        Box::pin(self.call(move |db| create_user(&db.conn, &name, &hash)))
    }

    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>> {
        let name = name.to_string();
        Box::pin(self.call(move |db| get_user(&db.conn, &name)))
    }

    fn queue_message(&self, msg: NewMessage) -> StoreFuture<'_, Commit<StoredMessage>> {
        Box::pin(self.enqueue(move |db| append_message(db, msg)))
    }

    fn room_history<'a>(
        &'a self,
        room: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        let room = name_key(room);
        Box::pin(self.call(move |db| {
            newest_messages(
                &db.conn,
                "room = ?1 AND id < ?2",
                params![room, to_sql(before.unwrap_or(u64::MAX)), limit],
            )
        }))
    }

    fn room_since<'a>(
        &'a self,
        room: &'a str,
        after_seq: u64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        let room = name_key(room);
        Box::pin(self.call(move |db| {
            let from = first_id_after_seq(&db.conn, &room, after_seq)?;
            let mut stmt = db.conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages
                 WHERE room = ?1 AND id >= ?2 AND room_seq > ?3 ORDER BY id LIMIT ?4"
            ))?;
            stmt.query_map(
                params![room, to_sql(from), to_sql(after_seq), limit],
                message_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
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
        Box::pin(self.call(move |db| {
            newest_messages(
                &db.conn,
                "pair = ?1 AND id < ?2",
                params![pair, to_sql(before.unwrap_or(u64::MAX)), limit],
            )
        }))
    }

    fn take_pending<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<StoredMessage>> {
        let key = name_key(user);
        Box::pin(self.call(move |db| {
            // The batch holds the database's write lock (BEGIN IMMEDIATE) and the store
            // thread runs one job at a time, so select-then-update is atomic with
            // respect to every other caller, in this process or another.
            let msgs = newest_messages(
                &db.conn,
                "recipient_key = ?1 AND pending = 1 AND id < ?2",
                params![key, i64::MAX, u32::MAX],
            )?;
            db.conn.execute(
                "UPDATE messages SET pending = 0 WHERE recipient_key = ?1 AND pending = 1",
                params![key],
            )?;
            Ok::<_, rusqlite::Error>(msgs)
        }))
    }

    fn mark_pending(&self, msg_id: u64) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |db| {
            db.conn.execute(
                "UPDATE messages SET pending = 1 WHERE id = ?1 AND recipient_key IS NOT NULL",
                params![to_sql(msg_id)],
            )?;
            Ok::<_, rusqlite::Error>(())
        }))
    }

    fn mark_delivered(&self, msg_id: u64) -> StoreFuture<'_, bool> {
        Box::pin(self.call(move |db| {
            let changed = db.conn.execute(
                "UPDATE messages SET pending = 0
                 WHERE id = ?1 AND recipient_key IS NOT NULL AND pending = 1",
                params![to_sql(msg_id)],
            )?;
            Ok::<_, rusqlite::Error>(changed > 0)
        }))
    }

    fn prune_before(&self, ts: u64) -> StoreFuture<'_, u64> {
        Box::pin(self.call(move |db| {
            // A room's counter is the highest number among its messages, so record the
            // counters of the rooms being pruned first: sequences go on afterwards.
            db.conn.execute(
                "INSERT INTO room_seqs (room, last_seq)
                 SELECT room, MAX(room_seq) FROM messages
                 WHERE ts < ?1 AND room IS NOT NULL GROUP BY room
                 ON CONFLICT (room) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                params![to_sql(ts)],
            )?;
            // Undelivered messages are kept: their recipient has not seen them yet.
            let n = db.conn.execute(
                "DELETE FROM messages WHERE ts < ?1 AND pending = 0",
                params![to_sql(ts)],
            )?;
            Ok::<_, rusqlite::Error>(n as u64)
        }))
    }

    fn set_banned<'a>(&'a self, name: &'a str, banned: bool) -> StoreFuture<'a, Option<String>> {
        let key = name_key(name);
        Box::pin(self.call(move |db| {
            db.conn
                .prepare_cached("UPDATE users SET banned = ?2 WHERE name_key = ?1 RETURNING name")?
                .query_row(params![key, banned], |row| row.get(0))
                .optional()
        }))
    }

    fn setting<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        let name = name.to_string();
        Box::pin(self.call(move |db| {
            db.conn
                .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
                .query_row(params![name], |row| row.get(0))
                .optional()
        }))
    }

    fn init_setting<'a>(&'a self, name: &'a str, value: &'a str) -> StoreFuture<'a, String> {
        let (name, value) = (name.to_string(), value.to_string());
        Box::pin(self.call(move |db| {
            db.conn
                .prepare_cached("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)")?
                .execute(params![name, value])?;
            db.conn
                .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
                .query_row(params![name], |row| row.get(0))
        }))
    }

    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |db| {
            db.conn
                .prepare_cached(
                    "INSERT INTO audit (ts, operator, action, target, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    to_sql(entry.ts),
                    entry.operator,
                    entry.action,
                    entry.target,
                    entry.detail
                ])?;
            Ok::<_, rusqlite::Error>(())
        }))
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.call(move |db| {
            // Ordered by id, not ts: ids follow insertion even if the clock steps back.
            let mut stmt = db.conn.prepare_cached(
                "SELECT ts, operator, action, target, detail FROM audit
                 ORDER BY id DESC LIMIT ?1",
            )?;
            stmt.query_map(params![limit], |row| {
                Ok(AuditEntry {
                    ts: from_sql(row.get(0)?),
                    operator: row.get(1)?,
                    action: row.get(2)?,
                    target: row.get(3)?,
                    detail: row.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        }))
    }
}

/// The store thread: serves batches until shut down or every sender is gone.
fn serve(mut db: Db, mut rx: mpsc::Receiver<Command>) {
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
        run_batch(&mut db, jobs);
    }
    if let Err((_, e)) = db.conn.close() {
        tracing::error!(error = %e, "closing the database failed");
    }
}

/// Runs jobs in one transaction, commits once, then answers every caller in order.
fn run_batch(db: &mut Db, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let error = match db.conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing runs outside a transaction: it would be committed piecemeal while
        // its callers are told it failed.
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a database transaction");
            Some(e.to_string())
        }
        Ok(()) => {
            db.check_data_version();
            let finishes: Vec<Finish> = jobs
                .into_iter()
                .map(|job| {
                    // Some failures (a full disk) roll the whole transaction back; the
                    // jobs after one must not run in autocommit mode, piecemeal.
                    if db.conn.is_autocommit() {
                        job(None)
                    } else {
                        job(Some(db))
                    }
                })
                .collect();
            let error = db.conn.execute_batch("COMMIT").err().map(|e| {
                tracing::error!(error = %e, "database commit failed");
                let _ = db.conn.execute_batch("ROLLBACK");
                // The numbers given in this batch were rolled back with it.
                db.seqs.clear();
                e.to_string()
            });
            for finish in finishes {
                finish(error.as_deref());
            }
            return;
        }
    };
    for job in jobs {
        job(None)(error.as_deref());
    }
}

impl Db {
    /// Forgets the cached room counters if another connection has committed since they
    /// were right; called at the start of each batch, under its write lock.
    fn check_data_version(&mut self) {
        let version = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)));
        match version {
            Ok(v) if v == self.data_version => {}
            Ok(v) => {
                self.seqs.clear();
                self.data_version = v;
            }
            // Unknown: trust nothing cached.
            Err(_) => self.seqs.clear(),
        }
    }

    /// The sequence number the next message to `room` (a room key) gets.
    fn next_room_seq(&mut self, room: &str) -> rusqlite::Result<u64> {
        if let Some(last) = self.seqs.get(room) {
            return Ok(last + 1);
        }
        // The number of the room's newest message (numbers rise with ids), or the one
        // recorded before its messages were pruned; both lookups are index seeks.
        let last = self
            .conn
            .prepare_cached(
                "SELECT MAX(
                     COALESCE((SELECT last_seq FROM room_seqs WHERE room = ?1), 0),
                     COALESCE((SELECT room_seq FROM messages WHERE room = ?1
                               ORDER BY id DESC LIMIT 1), 0))",
            )?
            .query_row(params![room], |row| row.get::<_, i64>(0))
            .map(from_sql)?;
        if self.seqs.len() >= MAX_CACHED_ROOMS {
            self.seqs.clear();
        }
        self.seqs.insert(room.to_owned(), last);
        Ok(last + 1)
    }

    /// Records that `seq` was given in `room` (after its insert succeeded, so a failed
    /// insert leaves no gap).
    fn used_room_seq(&mut self, room: &str, seq: u64) {
        if let Some(last) = self.seqs.get_mut(room) {
            *last = seq;
        }
    }
}

/// A `u64` as SQLite's `INTEGER`, saturating (ids, times and counters stay far below).
fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An `INTEGER` read back as `u64`; negative values (never written) read as 0.
fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn create_user(conn: &Connection, name: &str, hash: &str) -> Result<(), StoreError> {
    let now = crate::clock::now_ms();
    let res = conn.execute(
        "INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, name_key(name), hash, to_sql(now)],
    );
    match res {
        Ok(_) => Ok(()),
        // The unique index on name_key decides, so two creations at once cannot both win.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::NameTaken)
        }
        Err(e) => Err(db_error(e)),
    }
}

fn get_user(conn: &Connection, name: &str) -> rusqlite::Result<Option<UserRecord>> {
    conn.prepare_cached("SELECT name, password_hash, banned FROM users WHERE name_key = ?1")?
        .query_row(params![name_key(name)], |row| {
            Ok(UserRecord {
                name: row.get(0)?,
                password_hash: row.get(1)?,
                banned: row.get(2)?,
            })
        })
        .optional()
}

fn append_message(db: &mut Db, m: NewMessage) -> Result<StoredMessage, StoreError> {
    let client_key = m.client_key();
    if let Some(key) = &client_key {
        // One writer: a check in the batch's transaction sees every earlier insert.
        let original = db
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE client_key = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row(params![key], message_row).optional())
            .map_err(db_error)?;
        if let Some(original) = original {
            return Err(StoreError::Duplicate(Box::new(original)));
        }
    }
    let (room, recipient, recipient_key, pair, pending) = match &m.target {
        Target::Room(room) => (Some(name_key(room)), None, None, None, false),
        Target::User { to, pending } => (
            None,
            Some(to.as_str()),
            Some(name_key(to)),
            Some(pair_key(&m.from, to)),
            *pending,
        ),
    };
    let room_seq = match &room {
        Some(room) => Some(db.next_room_seq(room).map_err(db_error)?),
        None => None,
    };
    db.conn
        .prepare_cached(
            "INSERT INTO messages
             (ts, sender, room, recipient, recipient_key, pair, text, pending, room_seq,
              client_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                to_sql(m.ts),
                m.from,
                room,
                recipient,
                recipient_key,
                pair,
                m.text,
                pending,
                room_seq.map(to_sql),
                client_key
            ])
        })
        .map_err(db_error)?;
    let id = from_sql(db.conn.last_insert_rowid());
    if let (Some(room), Some(seq)) = (&room, room_seq) {
        db.used_room_seq(room, seq);
    }
    Ok(StoredMessage {
        id,
        room_seq,
        msg: m,
    })
}

/// The lowest id from which `room`'s messages have numbers above `after_seq`.
///
/// Numbers rise with ids within a room, so this is a binary search over ids, each step
/// one seek in `messages_room` and one row: about log2(ids) steps, where an index on
/// `(room, room_seq)` would cost every insert a second room index.
fn first_id_after_seq(conn: &Connection, room: &str, after_seq: u64) -> rusqlite::Result<u64> {
    if after_seq == 0 {
        return Ok(0);
    }
    let newest: Option<i64> = conn
        .prepare_cached("SELECT MAX(id) FROM messages WHERE room = ?1")?
        .query_row(params![room], |row| row.get(0))?;
    let Some(newest) = newest else {
        return Ok(0);
    };
    let mut first = conn.prepare_cached(
        "SELECT id, room_seq FROM messages WHERE room = ?1 AND id >= ?2 ORDER BY id LIMIT 1",
    )?;
    // Invariant: the room's messages below `lo` are numbered at most `after_seq`; the
    // first at or after `hi`, if any, above it.
    let (mut lo, mut hi) = (0u64, from_sql(newest).saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let next = first
            .query_row(params![room, to_sql(mid)], |row| {
                Ok((from_sql(row.get(0)?), row.get::<_, Option<i64>>(1)?))
            })
            .optional()?;
        match next {
            Some((id, Some(seq))) if from_sql(seq) <= after_seq => lo = id + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The columns [`message_row`] reads, in its order.
const COLUMNS: &str = "id, ts, sender, room, recipient, text, pending, room_seq";

/// A message from a row of [`COLUMNS`].
fn message_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
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
        id: from_sql(row.get(0)?),
        room_seq: row.get::<_, Option<i64>>(7)?.map(from_sql),
        msg: NewMessage {
            from: row.get(2)?,
            target,
            text: row.get(5)?,
            ts: from_sql(row.get(1)?),
            client_id: None,
        },
    })
}

/// The newest `limit` messages matching `filter` (parameters ?1, ?2 = before id, ?3 =
/// limit), returned oldest first.
fn newest_messages(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE {filter} ORDER BY id DESC LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = stmt
        .query_map(params, message_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}
