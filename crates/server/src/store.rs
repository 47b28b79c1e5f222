//! Durable state behind the [`Store`] trait; SQLite is the embedded default.
//!
//! [`SqliteStore`] owns its `rusqlite::Connection` on a dedicated thread and takes
//! commands over a bounded channel, so no async worker ever blocks on disk and there is
//! exactly one owner of the database handle. A PostgreSQL store can implement the same
//! trait later.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

/// A boxed future returned by [`Store`] methods (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account name is already registered (case-insensitively).
    #[error("user name already taken")]
    NameTaken,
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
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
}

/// Persistent storage used by the server.
pub trait Store: Send + Sync + 'static {
    /// Creates an account; fails with [`StoreError::NameTaken`] if the name exists.
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()>;
    /// Looks an account up by name, case-insensitively.
    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>>;
}

/// One request to the store thread, with the channel for its answer.
enum Command {
    CreateUser {
        name: String,
        hash: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    GetUser {
        name: String,
        reply: oneshot::Sender<Result<Option<UserRecord>, StoreError>>,
    },
    /// Stop serving after the requests queued before this one.
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
const STORE_QUEUE: usize = 1024;

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

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Store for SqliteStore {
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.call(|reply| Command::CreateUser {
            name: name.to_string(),
            hash: password_hash.to_string(),
            reply,
        }))
    }

    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>> {
        Box::pin(self.call(|reply| Command::GetUser {
            name: name.to_string(),
            reply,
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
            created_at    INTEGER NOT NULL
        );",
    )?;
    Ok(())
}

fn serve(conn: Connection, mut rx: mpsc::Receiver<Command>) {
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Command::CreateUser { name, hash, reply } => {
                let _ = reply.send(create_user(&conn, &name, &hash));
            }
            Command::GetUser { name, reply } => {
                let _ = reply.send(get_user(&conn, &name));
            }
            Command::Shutdown => break,
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::error!(error = %e, "closing the database failed");
    }
}

fn create_user(conn: &Connection, name: &str, hash: &str) -> Result<(), StoreError> {
    let now = crate::now_ms();
    let res = conn.execute(
        "INSERT INTO users (name, name_key, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, natter_proto::name_key(name), hash, now as i64],
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
        .query_row(
            "SELECT name, password_hash FROM users WHERE name_key = ?1",
            params![natter_proto::name_key(name)],
            |row| {
                Ok(UserRecord {
                    name: row.get(0)?,
                    password_hash: row.get(1)?,
                })
            },
        )
        .optional()?)
}
