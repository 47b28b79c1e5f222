//! The SQLite schema and its migrations, applied when the database is opened.
//!
//! Everything after the connection's pragmas runs in one `IMMEDIATE` transaction, so a
//! migration either completes or leaves the database as it was, and two processes
//! opening one old database at once cannot both migrate it.

use rusqlite::{Connection, TransactionBehavior};

/// Tables and indexes as this version creates them; `IF NOT EXISTS` leaves older
/// tables alone, so columns added since are added by [`migrate`].
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS users (
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
        pending       INTEGER NOT NULL DEFAULT 0,
        -- No index of its own: within a room, numbers rise with ids (both are given
        -- in insert order under the write lock), so `messages_room` orders them too and
        -- an insert updates one room index, not two.
        room_seq      INTEGER
    );
    -- The highest sequence number of each pruned room, recorded before its messages are
    -- deleted, so that pruning cannot make a room's sequence start again.
    CREATE TABLE IF NOT EXISTS room_seqs (
        room     TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS messages_room ON messages(room, id) WHERE room IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_pair ON messages(pair, id) WHERE pair IS NOT NULL;
    CREATE INDEX IF NOT EXISTS messages_pending ON messages(recipient_key) WHERE pending = 1;
    CREATE INDEX IF NOT EXISTS messages_ts ON messages(ts);";

/// Sets the connection's pragmas, then creates or migrates the schema in one
/// transaction.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit reported to a user survives power loss, not just a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    // Databases created before bans existed have a users table without the column.
    if !has_column(&tx, "users", "banned")? {
        tx.execute_batch("ALTER TABLE users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0")?;
    }
    if !has_column(&tx, "messages", "room_seq")? {
        add_room_seq(&tx)?;
    }
    if !has_column(&tx, "messages", "client_key")? {
        // The sender's key and client id of messages sent with one: a retried send is
        // found instead of stored twice.
        tx.execute_batch(
            "ALTER TABLE messages ADD COLUMN client_key TEXT;
             CREATE UNIQUE INDEX messages_client ON messages(client_key)
                 WHERE client_key IS NOT NULL;",
        )?;
    }
    tx.commit()
}

/// Gives the room messages of a database from before room sequences their numbers: per
/// room 1, 2, 3, ... in id order (the order they were stored in); new messages continue
/// from each room's highest.
fn add_room_seq(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE messages ADD COLUMN room_seq INTEGER;
         WITH numbered AS (
             SELECT id, ROW_NUMBER() OVER (PARTITION BY room ORDER BY id) AS seq
             FROM messages WHERE room IS NOT NULL
         )
         UPDATE messages SET room_seq = numbered.seq
         FROM numbered WHERE messages.id = numbered.id;",
    )
}

/// Whether `table` has a column called `column`.
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}
