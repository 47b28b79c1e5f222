//! Tests of the SQLite store itself; the trait's promises are checked by `store::conformance`.

use super::*;

use crate::store::conformance::{dm, room_msg};

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

/// The messages table exactly as the version before room sequences created it.
const OLD_MESSAGES: &str = "CREATE TABLE messages (
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
CREATE INDEX messages_room ON messages(room, id) WHERE room IS NOT NULL;
CREATE INDEX messages_pair ON messages(pair, id) WHERE pair IS NOT NULL;
CREATE INDEX messages_pending ON messages(recipient_key) WHERE pending = 1;
CREATE INDEX messages_ts ON messages(ts);";

fn seqs(msgs: &[StoredMessage]) -> Vec<(String, Option<u64>)> {
    msgs.iter()
        .map(|m| (m.msg.text.clone(), m.room_seq))
        .collect()
}

#[tokio::test]
async fn old_messages_get_room_sequences_in_id_order_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = Connection::open(dir.path().join("natter.db")).expect("old db");
        conn.execute_batch(OLD_MESSAGES).expect("old schema");
        // Rooms interleaved, a private message between them, ids not starting at 1
        // (an earlier message was pruned).
        conn.execute_batch(
            "INSERT INTO messages (id, ts, sender, room, text) VALUES (3, 1, 'al', 'lobby', 'l1');
             INSERT INTO messages (id, ts, sender, room, text) VALUES (4, 2, 'al', 'rust', 'r1');
             INSERT INTO messages (id, ts, sender, recipient, recipient_key, pair, text, pending)
                 VALUES (5, 3, 'al', 'Bo', 'bo', 'al:bo', 'dm', 1);
             INSERT INTO messages (id, ts, sender, room, text) VALUES (6, 4, 'bo', 'lobby', 'l2');
             INSERT INTO messages (id, ts, sender, room, text) VALUES (9, 5, 'bo', 'lobby', 'l3');",
        )
        .expect("old rows");
    }
    let store = SqliteStore::open(dir.path()).expect("open migrates");
    let lobby = store.room_history("lobby", None, 10).await.expect("h");
    assert_eq!(
        seqs(&lobby),
        [
            ("l1".to_string(), Some(1)),
            ("l2".to_string(), Some(2)),
            ("l3".to_string(), Some(3))
        ]
    );
    let rust = store.room_history("rust", None, 10).await.expect("h");
    assert_eq!(seqs(&rust), [("r1".to_string(), Some(1))]);
    let pending = store.take_pending("bo").await.expect("take");
    assert_eq!(seqs(&pending), [("dm".to_string(), None)]);
    // New messages continue each room's sequence, and ids stay above the old ones.
    let next = store
        .append_message(room_msg("al", "Lobby", "l4", 6))
        .await
        .expect("append");
    assert_eq!(next.room_seq, Some(4));
    assert!(next.id > 9, "AUTOINCREMENT keeps ids rising: {}", next.id);
    let since = store.room_since("lobby", 2, 10).await.expect("since");
    assert_eq!(
        seqs(&since),
        [("l3".to_string(), Some(3)), ("l4".to_string(), Some(4))]
    );
    store.close().await;
    // Opening a migrated database again changes nothing.
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let next = store
        .append_message(room_msg("al", "rust", "r2", 7))
        .await
        .expect("append");
    assert_eq!(next.room_seq, Some(2));
    store.close().await;
}

#[tokio::test]
async fn a_failed_migration_leaves_the_old_database_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("natter.db");
    {
        let conn = Connection::open(&path).expect("old db");
        conn.execute_batch(OLD_MESSAGES).expect("old schema");
        // A trigger refusing every update makes the backfill fail after the migration
        // has already added the column.
        conn.execute_batch(
            "INSERT INTO messages (ts, sender, room, text) VALUES (1, 'al', 'lobby', 'x');
             CREATE TRIGGER frozen BEFORE UPDATE ON messages BEGIN SELECT RAISE(ABORT, 'frozen'); END;",
        )
        .expect("obstacle");
    }
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::Db(_))
    ));
    let conn = Connection::open(&path).expect("db");
    let has = conn.prepare("SELECT room_seq FROM messages").is_ok();
    assert!(
        !has,
        "the column added by the failed migration was rolled back"
    );
}

#[tokio::test]
async fn sequences_continue_after_pruning_a_whole_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        for i in 0..3 {
            store
                .append_message(room_msg("al", "lobby", &format!("old{i}"), 1))
                .await
                .expect("append");
        }
        assert_eq!(store.prune_before(10).await.expect("prune"), 3);
        store.close().await;
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let next = store
        .append_message(room_msg("al", "lobby", "new", 20))
        .await
        .expect("append");
    assert_eq!(next.room_seq, Some(4), "the sequence does not start again");
    store.close().await;
}

#[tokio::test]
async fn two_stores_on_one_file_share_room_sequences() {
    // Two processes on one database are two connections; BEGIN IMMEDIATE serialises
    // their batches and each batch reads the counter under the write lock.
    let dir = tempfile::tempdir().expect("tempdir");
    let a = std::sync::Arc::new(SqliteStore::open(dir.path()).expect("open a"));
    let b = std::sync::Arc::new(SqliteStore::open(dir.path()).expect("open b"));
    // Taking turns: each store's cached counter is stale at every turn.
    for i in 1..=6u64 {
        let s = if i % 2 == 1 { &a } else { &b };
        let m = s
            .append_message(room_msg("al", "turns", &format!("{i}"), i))
            .await
            .expect("append");
        assert_eq!(m.room_seq, Some(i), "turn {i}");
    }
    let writers: Vec<_> = (0..40u64)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                s.append_message(room_msg("al", "lobby", &format!("{i}"), i))
                    .await
            })
        })
        .collect();
    let mut got = Vec::new();
    for w in writers {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), w)
            .await
            .expect("in time")
            .expect("join")
            .expect("append");
        got.push((m.id, m.room_seq));
    }
    got.sort_unstable();
    let seqs: Vec<_> = got.iter().map(|(_, s)| *s).collect();
    let want: Vec<_> = (1..=40).map(Some).collect();
    assert_eq!(seqs, want, "gapless and in id (commit) order");
    a.close().await;
    b.close().await;
}
