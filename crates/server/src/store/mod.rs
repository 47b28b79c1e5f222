//! Durable state behind the [`Store`] trait; SQLite is the embedded default.
//!
//! The trait is the seam between the server and its database: the session, the web
//! console and moderation see only [`Store`], its value types and [`StoreError`] (which
//! holds no database library's type), so another implementation (PostgreSQL for a
//! cluster of nodes) can slot in. Each method's documentation states the promises every
//! implementation must keep; [`conformance`] checks them against a live store.
//!
//! - `sqlite`: [`SqliteStore`], one thread owning the connection, group commit.
//! - `schema`: the SQLite schema and its migrations.
//! - `postgres`: [`PostgresStore`], a connection pool to a PostgreSQL database that
//!   several nodes may share.
//! - [`conformance`]: the shared test suite of the promises.

pub mod conformance;
mod postgres;
mod schema;
mod sqlite;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The key under which both directions of a private conversation are stored.
fn pair_key(a: &str, b: &str) -> String {
    let (a, b) = (natter_proto::name_key(a), natter_proto::name_key(b));
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

/// A boxed future returned by [`Store`] methods (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Resolves once queued work is committed (see [`Store::queue_message`]).
pub type Commit<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + Sync + 'static>>;

/// The underlying database error, boxed so no database library's type is part of the
/// store's interface.
pub type DbError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account name is already registered (case-insensitively).
    #[error("user name already taken")]
    NameTaken,
    /// The database failed; the source is the implementation's own error.
    #[error("database error: {0}")]
    Db(#[source] DbError),
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
    /// The database cannot be reached for now (a cluster's PostgreSQL is down or
    /// restarting): nothing was done, and the same request may succeed shortly.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The sender stored a message with this `client_id` already: this is it (nothing
    /// new was stored).
    #[error("a message with this client id was stored already")]
    Duplicate(Box<StoredMessage>),
    /// The store is gone (server shutting down).
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
    /// The sender's unique name for it (a client's `client_id`): storing a message whose
    /// sender already stored one with this name stores nothing and fails with
    /// [`StoreError::Duplicate`]. Read back as `None`.
    pub client_id: Option<String>,
}

impl NewMessage {
    /// The key under which the sender's `client_id` is unique, if it has one.
    pub fn client_key(&self) -> Option<String> {
        self.client_id
            .as_ref()
            .map(|c| format!("{}\n{c}", natter_proto::name_key(&self.from)))
    }
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
    /// Store-assigned id, unique in the database; messages queued one after another get
    /// increasing ids (across processes ids need not follow commit order: `room_seq`
    /// does).
    pub id: u64,
    /// The message's place in its room: 1, 2, 3, ... per room with no gaps, in commit
    /// order, so a reader that sees 7 after 5 knows it missed 6. `None` for private
    /// messages.
    pub room_seq: Option<u64>,
    /// The message.
    pub msg: NewMessage,
}

/// Persistent storage used by the server.
///
/// Every implementation keeps the promises written on each method, whether it serves
/// one process (SQLite) or several processes sharing one database (PostgreSQL);
/// [`conformance::run_all`] checks them. "Committed" means durable: it survives a crash
/// of the process and, as far as the database can promise it, of the machine.
pub trait Store: Send + Sync + 'static {
    /// Creates an account; fails with [`StoreError::NameTaken`] if the name exists in
    /// any case.
    ///
    /// Promise: names are unique case-insensitively even under concurrent calls from
    /// several processes: of two creations of `Al` and `al`, exactly one succeeds. An
    /// implementation enforces this with a unique constraint on the case-folded name
    /// (`natter_proto::name_key`), not with a check before the insert. The account is
    /// committed before this resolves `Ok`.
    fn create_user<'a>(&'a self, name: &'a str, password_hash: &'a str) -> StoreFuture<'a, ()>;

    /// Looks an account up by name, case-insensitively.
    ///
    /// Promise: sees every account whose creation has resolved.
    fn get_user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<UserRecord>>;

    /// Queues a message for storage and resolves once it is queued; the returned
    /// [`Commit`] resolves with the stored message once it is durable.
    ///
    /// Promises:
    /// - **Order.** Messages queued one after another (each `queue_message` awaited
    ///   before the next call) are stored in that order: increasing `id`, and for one
    ///   room increasing `room_seq`. Their commits resolve in that order too: when a
    ///   commit has resolved, every commit queued before it on this store has resolved.
    ///   A session can therefore have several messages committing and still publish
    ///   them in order.
    /// - **Durable before visible.** The message is committed before its [`Commit`]
    ///   resolves `Ok`; on `Err` it was not stored.
    /// - **Room sequence.** A room message gets `room_seq` in the same transaction as its
    ///   insert: per room 1, 2, 3, ... with no gap and no repeat, in commit order, also
    ///   when several processes write to one room. (SQL: a per-room counter row updated
    ///   in the inserting transaction, e.g. `UPDATE room_seqs SET last_seq = last_seq + 1
    ///   WHERE room = $1 RETURNING last_seq`; its row lock orders the commits of one
    ///   room.) A private message has `room_seq: None`.
    /// - **Once per client id.** A message whose sender already stored one with the same
    ///   `client_id` (also from another process, also at the same moment) is not stored:
    ///   its commit fails with [`StoreError::Duplicate`] holding the original, and the
    ///   room's sequence does not move.
    fn queue_message(&self, msg: NewMessage) -> StoreFuture<'_, Commit<StoredMessage>>;

    /// Stores a message durably and returns it with its id and room sequence:
    /// [`Store::queue_message`] followed by its [`Commit`], with the same promises.
    fn append_message(&self, msg: NewMessage) -> StoreFuture<'_, StoredMessage> {
        Box::pin(async move { self.queue_message(msg).await?.await })
    }

    /// Up to `limit` messages of `room` (case-insensitive) with ids below `before`
    /// (all when `None`), the newest such, returned oldest first.
    ///
    /// Promise: sees every message whose commit has resolved; pages with `before` = the
    /// first id of the previous page neither skip nor repeat a message.
    fn room_history<'a>(
        &'a self,
        room: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>>;

    /// Up to `limit` messages of `room` (case-insensitive) with `room_seq` above
    /// `after_seq`, the oldest such, oldest first: how a node fills a gap in a room's
    /// stream (it saw 5, then 7: `room_since(room, 5, ..)` starts with 6).
    ///
    /// Promise: sees every message whose commit has resolved, so the sequence numbers
    /// returned are consecutive unless older messages were pruned.
    fn room_since<'a>(
        &'a self,
        room: &'a str,
        after_seq: u64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>>;

    /// Up to `limit` private messages between `a` and `b` (both directions, names
    /// case-insensitive) with ids below `before`, the newest such, oldest first.
    fn private_history<'a>(
        &'a self,
        a: &'a str,
        b: &'a str,
        before: Option<u64>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredMessage>>;

    /// Takes every pending private message for `user` (case-insensitive), oldest first,
    /// and marks them delivered, in one step.
    ///
    /// Promise: exactly once. Each pending message goes to exactly one caller, even with
    /// concurrent callers in different processes; a message marked delivered is not
    /// returned again (until [`Store::mark_pending`]). On `Err` nothing was taken. (SQL:
    /// one transaction, `UPDATE messages SET pending = false WHERE id IN (SELECT id FROM
    /// messages WHERE recipient_key = $1 AND pending FOR UPDATE SKIP LOCKED) RETURNING
    /// ...`, sorted by id.)
    fn take_pending<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<StoredMessage>>;

    /// Marks a stored private message as awaiting delivery again (its recipient went
    /// offline before it could be delivered); does nothing to room messages or unknown
    /// ids. Committed before this resolves.
    fn mark_pending(&self, msg_id: u64) -> StoreFuture<'_, ()>;

    /// Marks a pending private message delivered (the recipient's node delivered it
    /// live); returns whether it was pending. Does nothing to room messages, delivered
    /// ones or unknown ids. Committed before this resolves.
    ///
    /// Promise: a message marked delivered is not returned by a later `take_pending`.
    fn mark_delivered(&self, msg_id: u64) -> StoreFuture<'_, bool>;

    /// Deletes messages older than `ts` (Unix ms) except undelivered private ones;
    /// returns how many.
    ///
    /// Promise: pruning never lets a room's sequence restart or repeat: the next
    /// message of a pruned room continues after the highest `room_seq` ever given.
    fn prune_before(&self, ts: u64) -> StoreFuture<'_, u64>;

    /// Sets or clears the ban flag of the account matching `name` case-insensitively;
    /// returns its display name, or `None` when there is no such account. Committed
    /// before this resolves.
    fn set_banned<'a>(&'a self, name: &'a str, banned: bool) -> StoreFuture<'a, Option<String>>;

    /// Records an operator action durably (committed before this resolves).
    fn append_audit(&self, entry: AuditEntry) -> StoreFuture<'_, ()>;

    /// Up to `limit` audit entries, newest first, in the order they were recorded (not
    /// by their `ts`, which may step back with the clock).
    fn audit_log(&self, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// A server-wide setting by name (the operator password's hash in a cluster), `None`
    /// when unset.
    fn setting<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Sets `name` to `value` unless it is set already; returns the value that holds.
    ///
    /// Promise: the first value committed wins, also when several processes call at
    /// once: every caller gets that same value back. Committed before this resolves.
    fn init_setting<'a>(&'a self, name: &'a str, value: &'a str) -> StoreFuture<'a, String>;
}
