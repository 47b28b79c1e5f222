//! [`PostgresStore`]: the store on a PostgreSQL database that several nodes may share.
//!
//! Reads and most writes take a connection from a pool and run as one statement (its
//! own transaction). Messages go another way, to keep [`Store::queue_message`]'s order:
//! one writer task per store takes every message waiting, inserts them all in one
//! transaction (pipelined, one round trip), commits once, and only then answers each
//! caller, in the order they were queued. Ids come from an identity column, so the
//! messages of one store get increasing ids in queue order.
//!
//! Room sequence numbers live in `room_seqs`, one counter row per room that is ever
//! written. A batch first raises the counter of each of its rooms by the number of its
//! messages to that room (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), in the
//! order of the room keys, and numbers the messages from the result. The counter row
//! stays locked until the batch commits, so the numbers of one room are given in
//! commit order with no gap, also across processes; taking the locks in key order
//! means two batches of different processes cannot deadlock on them. Pruning never
//! touches the counters, so a pruned room's numbers go on.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use natter_proto::name_key;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

mod writer;

use writer::write_messages;

use super::{
    AuditEntry, Commit, NewMessage, Store, StoreError, StoreFuture, StoredMessage, Target,
    UserRecord, pair_key,
};

/// Tables and indexes, created if missing (under an advisory lock, so two nodes starting
/// at once do not race each other's `CREATE`).
const SCHEMA: &str = "
    SELECT pg_advisory_xact_lock(7228519470036123401);
    CREATE TABLE IF NOT EXISTS users (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name          TEXT NOT NULL,
        name_key      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        banned        BOOLEAN NOT NULL DEFAULT false
    );
    CREATE TABLE IF NOT EXISTS audit (
        id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts       BIGINT NOT NULL,
        operator TEXT NOT NULL,
        action   TEXT NOT NULL,
        target   TEXT NOT NULL,
        detail   TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS messages (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts            BIGINT NOT NULL,
        sender        TEXT NOT NULL,
        room          TEXT,
        recipient     TEXT,
        recipient_key TEXT,
        pair          TEXT,
        text          TEXT NOT NULL,
        pending       BOOLEAN NOT NULL DEFAULT false,
        room_seq      BIGINT
    );
    -- The last number given in each room ever written; never deleted.
    CREATE TABLE IF NOT EXISTS room_seqs (
        room     TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL
    );
    -- The sender's key and client id of messages sent with one (NewMessage::client_key):
    -- a retried send is found instead of stored twice.
    ALTER TABLE messages ADD COLUMN IF NOT EXISTS client_key TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS messages_client ON messages (client_key)
        WHERE client_key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id) WHERE room IS NOT NULL;
    -- Across processes ids need not follow a room's numbers, so `room_since` has an
    -- index of its own; unique, so a repeated number could never be stored.
    CREATE UNIQUE INDEX IF NOT EXISTS messages_room_seq ON messages (room, room_seq)
        WHERE room IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_pair ON messages (pair, id) WHERE pair IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_pending ON messages (recipient_key, id) WHERE pending;
    CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);";

/// The columns [`message_row`] reads, in its order.
const COLUMNS: &str = "id, ts, sender, room, recipient, text, pending, room_seq";

/// Connections in each store's pool.
const POOL_SIZE: usize = 16;
/// Depth of the message queue.
const QUEUE: usize = 16384;
/// Most messages committed together.
const MAX_BATCH: usize = 1024;
/// Connect timeout when the URL gives none, so an unreachable database fails calls
/// instead of hanging them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a pooled connection (or a new one) before a request fails with
/// `unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(3);

/// A message waiting for the writer task.
struct Queued {
    /// The message.
    msg: NewMessage,
    /// Where its outcome goes once its batch is committed (or failed).
    reply: oneshot::Sender<Result<StoredMessage, StoreError>>,
}

/// A store on a PostgreSQL database, reached through a pool of connections.
pub struct PostgresStore {
    /// Connections for everything but message inserts.
    pool: Pool,
    /// Messages for the writer task.
    tx: mpsc::Sender<Queued>,
}

/// The TLS connector for `sslmode=require`: rustls, trusting `ca` (a PEM file) or the
/// system's roots.
fn tls_connector(
    ca: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |e: String| StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| bad(e.to_string()))?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no CERTIFICATE block found".into()));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Db(Box::new(e)))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Whether `e` means the database cannot be reached (rather than refusing a request):
/// the connection is closed or failed, or the server is shutting down or starting
/// (SQLSTATE classes 08 and 57P).
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// tokio-postgres's error as the store's own, so no library type leaves this module:
/// [`StoreError::Unavailable`] when the database cannot be reached.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    if unreachable(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Db(Box::new(e))
    }
}

/// The pool's error (no connection could be had in time) as the store's own: the
/// database is unavailable.
fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A `u64` as `BIGINT`, saturating (ids, times and counters stay far below).
fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `BIGINT` read back as `u64`; negative values (never written) read as 0.
fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db` or key=value
    /// form) without a CA of its own: see [`PostgresStore::connect_with`].
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, None).await
    }

    /// Connects to the database at `url`, creates the schema if missing and starts the
    /// writer task. Must be called inside a Tokio runtime.
    ///
    /// TLS follows the URL's `sslmode`: `require` (or `prefer`) encrypts and checks the
    /// server's certificate against `ca` (a PEM file) or, without one, the system's
    /// roots; `disable`, or no `sslmode` at all, connects in plaintext (a private
    /// network or loopback).
    pub async fn connect_with(url: &str, ca: Option<&Path>) -> Result<PostgresStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(db_error)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if !url.contains("sslmode") {
            // tokio-postgres would otherwise try TLS first ("prefer"), and a server with
            // a certificate nobody can check would be refused for it.
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let manager = Manager::from_config(
            config,
            tls_connector(ca)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: with the database down, requests fail with `unavailable` after
        // a few seconds instead of hanging, and the pool reconnects once it is back.
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Db(Box::new(e)))?;
        {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            // "already exists, skipping" notices on every start are noise in the log.
            tx.batch_execute("SET LOCAL client_min_messages TO warning")
                .await
                .map_err(db_error)?;
            tx.batch_execute(SCHEMA).await.map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_messages(pool.clone(), rx));
        Ok(PostgresStore { pool, tx })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// The messages of one query over [`COLUMNS`].
    async fn messages(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
        let rows = client.query(&stmt, params).await.map_err(db_error)?;
        rows.iter().map(message_row).collect()
    }
}

impl Store for PostgresStore {
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            let now = to_sql(crate::clock::now_ms());
            let res = client
                .execute(
                    "INSERT INTO users (name, name_key, password_hash, created_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&name, &name_key(name), &password_hash, &now],
                )
                .await;
            match res {
                Ok(_) => Ok(()),
                // The unique constraint on name_key decides, so two creations at once
                // (from any process) cannot both win.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    Err(StoreError::NameTaken)
                }
                Err(e) => Err(db_error(e)),
            }
        })
    }

    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT name, password_hash, banned FROM users WHERE name_key = $1",
                    &[&name_key(name)],
                )
                .await
                .map_err(db_error)?;
            row.map(|row| {
                Ok(UserRecord {
                    name: row.try_get(0).map_err(db_error)?,
                    password_hash: row.try_get(1).map_err(db_error)?,
                    banned: row.try_get(2).map_err(db_error)?,
                })
            })
            .transpose()
        })
    }

    fn queue_message(&self, msg: NewMessage) -> StoreFuture<'_, Commit<StoredMessage>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.tx
                .send(Queued { msg, reply })
                .await
                .map_err(|_| StoreError::Closed)?;
            let commit: Commit<StoredMessage> =
                Box::pin(async move { answer.await.map_err(|_| StoreError::Closed)? });
            Ok(commit)
        })
    }

    fn room_history<'a>(
        &'a self,
        room: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        Box::pin(async move {
            let before = to_sql(before.unwrap_or(u64::MAX));
            let mut out = self
                .messages(
                    &format!(
                        "SELECT {COLUMNS} FROM messages WHERE room = $1 AND id < $2
                         ORDER BY id DESC LIMIT $3"
                    ),
                    &[&name_key(room), &before, &i64::from(limit)],
                )
                .await?;
            out.reverse();
            Ok(out)
        })
    }

    fn room_since<'a>(
        &'a self,
        room: &'a str,
        after_seq: u64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        Box::pin(async move {
            self.messages(
                &format!(
                    "SELECT {COLUMNS} FROM messages WHERE room = $1 AND room_seq > $2
                     ORDER BY room_seq LIMIT $3"
                ),
                &[&name_key(room), &to_sql(after_seq), &i64::from(limit)],
            )
            .await
        })
    }

    fn private_history<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>> {
        Box::pin(async move {
            let before = to_sql(before.unwrap_or(u64::MAX));
            let mut out = self
                .messages(
                    &format!(
                        "SELECT {COLUMNS} FROM messages WHERE pair = $1 AND id < $2
                         ORDER BY id DESC LIMIT $3"
                    ),
                    &[&pair_key(a, b), &before, &i64::from(limit)],
                )
                .await?;
            out.reverse();
            Ok(out)
        })
    }

    fn take_pending<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<StoredMessage>> {
        Box::pin(async move {
            // One statement, one transaction: the rows it takes are locked (rows another
            // taker holds are skipped: they are that taker's), and a row another taker
            // marked delivered meanwhile no longer matches when re-checked under the
            // lock, so each pending message goes to exactly one caller.
            let mut out = self
                .messages(
                    &format!(
                        "UPDATE messages SET pending = false WHERE id IN (
                             SELECT id FROM messages WHERE recipient_key = $1 AND pending
                             FOR UPDATE SKIP LOCKED)
                         RETURNING {COLUMNS}"
                    ),
                    &[&name_key(user)],
                )
                .await?;
            out.sort_unstable_by_key(|m| m.id);
            // RETURNING shows each row as updated (delivered); like SQLite's, the
            // messages come back as they were when taken: pending.
            for m in &mut out {
                if let Target::User { pending, .. } = &mut m.msg.target {
                    *pending = true;
                }
            }
            Ok(out)
        })
    }

    fn mark_delivered(&self, msg_id: u64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let changed = client
                .execute(
                    "UPDATE messages SET pending = false
                     WHERE id = $1 AND recipient_key IS NOT NULL AND pending",
                    &[&to_sql(msg_id)],
                )
                .await
                .map_err(db_error)?;
            Ok(changed > 0)
        })
    }

    fn mark_pending(&self, msg_id: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE messages SET pending = true
                     WHERE id = $1 AND recipient_key IS NOT NULL",
                    &[&to_sql(msg_id)],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn prune_before(&self, ts: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            // Counters are in room_seqs, which pruning leaves alone: numbers go on.
            // Undelivered messages are kept: their recipient has not seen them yet.
            client
                .execute(
                    "DELETE FROM messages WHERE ts < $1 AND NOT pending",
                    &[&to_sql(ts)],
                )
                .await
                .map_err(db_error)
        })
    }

    fn set_banned<'a>(&'a self, name: &'a str, banned: bool) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "UPDATE users SET banned = $2 WHERE name_key = $1 RETURNING name",
                    &[&name_key(name), &banned],
                )
                .await
                .map_err(db_error)?;
            row.map(|row| row.try_get(0).map_err(db_error)).transpose()
        })
    }

    fn setting<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
                .await
                .map_err(db_error)?;
            row.map(|row| row.try_get(0).map_err(db_error)).transpose()
        })
    }

    fn init_setting<'a>(&'a self, name: &'a str, value: &'a str) -> StoreFuture<'a, String> {
        Box::pin(async move {
            let client = self.client().await?;
            // The insert either wins or waits for the winner's commit, so the select
            // that follows sees the value that holds.
            client
                .execute(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    &[&name, &value],
                )
                .await
                .map_err(db_error)?;
            let row = client
                .query_one("SELECT value FROM settings WHERE name = $1", &[&name])
                .await
                .map_err(db_error)?;
            row.try_get(0).map_err(db_error)
        })
    }

    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO audit (ts, operator, action, target, detail)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &to_sql(entry.ts),
                        &entry.operator,
                        &entry.action,
                        &entry.target,
                        &entry.detail,
                    ],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let client = self.client().await?;
            // Ordered by id, not ts: ids follow insertion even if the clock steps back.
            let rows = client
                .query(
                    "SELECT ts, operator, action, target, detail FROM audit
                     ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| {
                    Ok(AuditEntry {
                        ts: from_sql(row.try_get(0).map_err(db_error)?),
                        operator: row.try_get(1).map_err(db_error)?,
                        action: row.try_get(2).map_err(db_error)?,
                        target: row.try_get(3).map_err(db_error)?,
                        detail: row.try_get(4).map_err(db_error)?,
                    })
                })
                .collect()
        })
    }
}

/// A message from a row of [`COLUMNS`].
fn message_row(row: &Row) -> Result<StoredMessage, StoreError> {
    let room: Option<String> = row.try_get(3).map_err(db_error)?;
    let recipient: Option<String> = row.try_get(4).map_err(db_error)?;
    let target = match (room, recipient) {
        (Some(room), _) => Target::Room(room),
        (None, to) => Target::User {
            to: to.unwrap_or_default(),
            pending: row.try_get(6).map_err(db_error)?,
        },
    };
    Ok(StoredMessage {
        id: from_sql(row.try_get(0).map_err(db_error)?),
        room_seq: row
            .try_get::<_, Option<i64>>(7)
            .map_err(db_error)?
            .map(from_sql),
        msg: NewMessage {
            from: row.try_get(2).map_err(db_error)?,
            target,
            text: row.try_get(5).map_err(db_error)?,
            ts: from_sql(row.try_get(1).map_err(db_error)?),
            client_id: None,
        },
    })
}
