//! The promises of [`Store`], as checks any implementation's tests run.
//!
//! Each check takes handles to one fresh, empty database: one handle per simulated
//! process (for SQLite, several [`super::SqliteStore`]s opened on one file; for
//! PostgreSQL, several pools). Checks about concurrency spread their callers over all
//! handles, so a promise that holds in one process but not across processes fails. A
//! check panics with what went wrong; every check is bounded by [`CHECK_TIMEOUT`].
//! [`run_all`] runs every check, each on a database of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Barrier;

use super::{AuditEntry, NewMessage, Store, StoreError, StoredMessage, Target};

/// Handles to one fresh, empty database (at least one).
pub type Handles = Vec<Arc<dyn Store>>;

/// Longest any one check may take; a store that hangs fails instead of stalling tests.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs every check, each on the database `fresh` returns for it.
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Handles>,
{
    accounts(fresh().await).await;
    queued_messages_keep_their_order(fresh().await).await;
    history_pages_oldest_first(fresh().await).await;
    room_sequence_is_gapless_in_commit_order(fresh().await).await;
    room_since_fills_gaps(fresh().await).await;
    take_pending_exactly_once(fresh().await).await;
    mark_pending_requeues_private_messages(fresh().await).await;
    prune_keeps_undelivered_and_sequences(fresh().await).await;
    audit_log_newest_first(fresh().await).await;
    the_first_setting_wins(fresh().await).await;
    a_retried_send_gets_the_original(fresh().await).await;
}

/// Runs `check`, failing it when it takes longer than [`CHECK_TIMEOUT`].
async fn bounded(what: &str, check: impl Future<Output = ()>) {
    if tokio::time::timeout(CHECK_TIMEOUT, check).await.is_err() {
        panic!("store conformance: {what} did not finish within {CHECK_TIMEOUT:?}");
    }
}

/// The value of a store call that must succeed.
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("store conformance: {what} failed: {e}"))
}

/// The first handle; every check needs at least one.
fn first(stores: &Handles) -> Arc<dyn Store> {
    match stores.first() {
        Some(s) => s.clone(),
        None => panic!("store conformance: no store handle given"),
    }
}

/// The handle the `i`th concurrent caller uses.
fn pick(stores: &Handles, i: usize) -> Arc<dyn Store> {
    stores[i % stores.len()].clone()
}

/// Awaits a spawned task, propagating its panic.
async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("store conformance: a task did not finish: {e}"),
        },
    }
}

/// A room message from `from` (shared with the SQLite store's own tests).
pub(crate) fn room_msg(from: &str, room: &str, text: &str, ts: u64) -> NewMessage {
    NewMessage {
        from: from.into(),
        target: Target::Room(room.into()),
        text: text.into(),
        ts,
        client_id: None,
    }
}

/// A private message from `from` to `to` (shared with the SQLite store's own tests).
pub(crate) fn dm(from: &str, to: &str, text: &str, pending: bool) -> NewMessage {
    NewMessage {
        from: from.into(),
        target: Target::User {
            to: to.into(),
            pending,
        },
        text: text.into(),
        ts: 5,
        client_id: None,
    }
}

fn texts(msgs: &[StoredMessage]) -> Vec<&str> {
    msgs.iter().map(|m| m.msg.text.as_str()).collect()
}

fn room_seqs(msgs: &[StoredMessage]) -> Vec<u64> {
    msgs.iter()
        .map(|m| match m.room_seq {
            Some(seq) => seq,
            None => panic!("store conformance: room message {} has no room_seq", m.id),
        })
        .collect()
}

/// Accounts: creation, case-insensitive uniqueness (also when racing), lookup, bans.
pub async fn accounts(stores: Handles) {
    bounded("accounts", async move {
        let s = first(&stores);
        ok(s.create_user("Alice", "hash-a").await, "create Alice");
        assert!(
            matches!(
                s.create_user("aLICE", "other").await,
                Err(StoreError::NameTaken)
            ),
            "a name taken in another case must fail with NameTaken"
        );
        let alice = ok(s.get_user("ALICE").await, "get").expect("Alice exists");
        assert_eq!(
            (
                alice.name.as_str(),
                alice.password_hash.as_str(),
                alice.banned
            ),
            ("Alice", "hash-a", false),
            "the account keeps its registered case and hash"
        );
        assert!(ok(s.get_user("nobody").await, "get nobody").is_none());

        assert_eq!(
            ok(s.set_banned("alice", true).await, "ban"),
            Some("Alice".into())
        );
        assert!(ok(s.get_user("alice").await, "get").is_some_and(|u| u.banned));
        assert_eq!(
            ok(s.set_banned("ALICE", false).await, "unban"),
            Some("Alice".into())
        );
        assert!(ok(s.get_user("Alice").await, "get").is_some_and(|u| !u.banned));
        assert_eq!(ok(s.set_banned("nobody", true).await, "ban nobody"), None);
        assert!(
            ok(s.get_user("nobody").await, "get").is_none(),
            "ban creates nothing"
        );

        // Sixteen creations of one name in different cases at once: exactly one wins.
        let start = Arc::new(Barrier::new(16));
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let (s, start) = (pick(&stores, i), start.clone());
                let name = if i % 2 == 0 { "Racer" } else { "rACER" };
                tokio::spawn(async move {
                    start.wait().await;
                    s.create_user(name, &format!("hash-{i}")).await
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            match join(r).await {
                Ok(()) => won += 1,
                Err(StoreError::NameTaken) => {}
                Err(e) => panic!("store conformance: racing create failed: {e}"),
            }
        }
        assert_eq!(won, 1, "exactly one of the racing creations succeeds");
        assert!(ok(s.get_user("racer").await, "get racer").is_some());
    })
    .await;
}

/// Messages queued one after another get increasing ids and room sequences, are stored
/// as given, and their commits resolve in order.
pub async fn queued_messages_keep_their_order(stores: Handles) {
    bounded("queued messages keep their order", async move {
        let s = first(&stores);
        let mut sent = Vec::new();
        let mut commits = Vec::new();
        for i in 0..60u64 {
            let msg = match i % 3 {
                0 => room_msg("al", "Lobby", &format!("m{i}"), i),
                1 => room_msg("bo", "rust", &format!("m{i}"), i),
                _ => dm("al", "bo", &format!("m{i}"), false),
            };
            sent.push(msg.clone());
            commits.push(ok(s.queue_message(msg).await, "queue"));
        }
        let Some(last) = commits.pop() else {
            return;
        };
        let last = ok(last.await, "last commit");
        // Commits resolve in order: once the last has, every earlier one already has.
        let mut stored = Vec::new();
        for (i, commit) in commits.into_iter().enumerate() {
            match commit.now_or_never() {
                Some(result) => stored.push(ok(result, "commit")),
                None => panic!("store conformance: commit {i} unresolved after a later one"),
            }
        }
        stored.push(last);
        let mut seqs: BTreeMap<&str, u64> = BTreeMap::new();
        for (m, want) in stored.iter().zip(&sent) {
            assert_eq!(&m.msg, want, "a message is stored as given");
            match &want.target {
                Target::Room(room) => {
                    let next = seqs.entry(room.as_str()).or_insert(0);
                    *next += 1;
                    assert_eq!(
                        m.room_seq,
                        Some(*next),
                        "room {room}: 1, 2, 3, ... in order"
                    );
                }
                Target::User { .. } => assert_eq!(m.room_seq, None, "private: no room_seq"),
            }
        }
        for pair in stored.windows(2) {
            assert!(pair[0].id < pair[1].id, "ids increase in queue order");
        }
        let again = ok(
            s.append_message(room_msg("al", "LOBBY", "after", 99)).await,
            "append",
        );
        assert!(again.id > stored[stored.len() - 1].id);
        assert_eq!(again.room_seq, Some(21), "room keys are case-insensitive");
    })
    .await;
}

/// History: newest page first, each page oldest first, ids below `before`; rooms and
/// private pairs kept apart; names case-insensitive.
pub async fn history_pages_oldest_first(stores: Handles) {
    bounded("history pages oldest first", async move {
        let s = first(&stores);
        for i in 0..10u64 {
            ok(
                s.append_message(room_msg("al", "Lobby", &format!("m{i}"), i))
                    .await,
                "append",
            );
            if i % 3 == 0 {
                ok(
                    s.append_message(room_msg("al", "other", "elsewhere", i))
                        .await,
                    "append",
                );
                ok(
                    s.append_message(dm("al", "bo", "private", false)).await,
                    "append",
                );
            }
        }
        let last3 = ok(s.room_history("lobby", None, 3).await, "history");
        assert_eq!(texts(&last3), ["m7", "m8", "m9"]);
        assert_eq!(
            room_seqs(&last3),
            [8, 9, 10],
            "history carries room sequences"
        );
        let page = ok(s.room_history("LOBBY", Some(last3[0].id), 4).await, "page");
        assert_eq!(texts(&page), ["m3", "m4", "m5", "m6"]);
        let rest = ok(s.room_history("lobby", Some(page[0].id), 100).await, "page");
        assert_eq!(texts(&rest), ["m0", "m1", "m2"]);
        assert!(ok(s.room_history("lobby", Some(rest[0].id), 100).await, "end").is_empty());
        assert!(ok(s.room_history("lobby", None, 0).await, "limit 0").is_empty());
        assert!(ok(s.room_history("nowhere", None, 10).await, "empty room").is_empty());

        ok(s.append_message(dm("al", "Bo", "1", false)).await, "dm");
        ok(s.append_message(dm("bo", "AL", "2", true)).await, "dm");
        ok(s.append_message(dm("al", "cy", "3", false)).await, "dm");
        let both = ok(s.private_history("BO", "al", None, 2).await, "private");
        assert_eq!(
            texts(&both),
            ["1", "2"],
            "both directions, newest two, oldest first"
        );
        assert!(both.iter().all(|m| m.room_seq.is_none()));
        let older = ok(
            s.private_history("al", "bo", Some(both[0].id), 100).await,
            "page",
        );
        assert_eq!(texts(&older), ["private"; 4]);
        let cy = ok(s.private_history("cy", "al", None, 10).await, "private");
        assert_eq!(texts(&cy), ["3"], "other pairs stay apart");
    })
    .await;
}

/// Writers per task.
const WRITERS: usize = 16;
/// Messages each writer queues.
const PER_WRITER: u64 = 25;

/// Room sequences under concurrent writers (spread over every handle): per room 1..n with
/// no gap or repeat, increasing per writer, and in commit order: once a message's commit
/// has resolved, every lower number of its room is visible.
pub async fn room_sequence_is_gapless_in_commit_order(stores: Handles) {
    bounded("room sequence is gapless in commit order", async move {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let s = pick(&stores, w);
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let mut commits = std::collections::VecDeque::new();
                    for i in 0..PER_WRITER {
                        let room = if (w + i as usize).is_multiple_of(4) {
                            "quiet"
                        } else {
                            "busy"
                        };
                        let msg = room_msg(&format!("w{w}"), room, &format!("{w}/{i}"), i);
                        commits.push_back(ok(s.queue_message(msg).await, "queue"));
                        // Several in flight at once, as a session pipelines them.
                        if commits.len() == 4
                            && let Some(c) = commits.pop_front()
                        {
                            mine.push(ok(c.await, "commit"));
                        }
                    }
                    for c in commits {
                        mine.push(ok(c.await, "commit"));
                    }
                    for m in mine.iter().step_by(3) {
                        let Target::Room(room) = &m.msg.target else {
                            continue;
                        };
                        let seq = m.room_seq.unwrap_or(0);
                        let seen = ok(s.room_since(room, 0, u32::MAX).await, "since");
                        let below: Vec<u64> = room_seqs(&seen)
                            .into_iter()
                            .take_while(|&n| n <= seq)
                            .collect();
                        let want: Vec<u64> = (1..=seq).collect();
                        assert_eq!(below, want, "everything before {room} #{seq} is visible");
                    }
                    mine
                })
            })
            .collect();
        let mut per_room: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for w in writers {
            let mine = join(w).await;
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            for m in &mine {
                let Target::Room(room) = &m.msg.target else {
                    panic!("store conformance: a room message came back private");
                };
                let seq = room_seqs(std::slice::from_ref(m))[0];
                let prev = last.insert(room.clone(), seq).unwrap_or(0);
                assert!(
                    seq > prev,
                    "one writer's messages to {room} get rising numbers"
                );
                per_room.entry(room.clone()).or_default().push(seq);
            }
        }
        let s = first(&stores);
        for (room, mut seqs) in per_room {
            seqs.sort_unstable();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, want, "{room}: every number once, none missing");
            let stored = ok(s.room_since(&room, 0, u32::MAX).await, "since");
            assert_eq!(room_seqs(&stored), want, "{room}: the store agrees");
            let history = ok(s.room_history(&room, None, u32::MAX).await, "history");
            let mut in_history = room_seqs(&history);
            in_history.sort_unstable();
            assert_eq!(in_history, want, "{room}: history has every message");
        }
    })
    .await;
}

/// `room_since`: the messages after a sequence number, oldest first, bounded by `limit`.
pub async fn room_since_fills_gaps(stores: Handles) {
    bounded("room_since fills gaps", async move {
        let s = first(&stores);
        for i in 1..=10u64 {
            ok(
                s.append_message(room_msg("al", "Lobby", &format!("m{i}"), i))
                    .await,
                "append",
            );
            ok(
                s.append_message(room_msg("al", "other", "x", i)).await,
                "append",
            );
            ok(s.append_message(dm("al", "bo", "p", false)).await, "append");
        }
        let head = ok(s.room_since("lobby", 0, 3).await, "since 0");
        assert_eq!(texts(&head), ["m1", "m2", "m3"]);
        assert_eq!(room_seqs(&head), [1, 2, 3]);
        let gap = ok(s.room_since("LOBBY", 5, 1).await, "since 5");
        assert_eq!(room_seqs(&gap), [6], "saw 5 and then 7: fetch 6");
        let tail = ok(s.room_since("lobby", 3, 100).await, "since 3");
        assert_eq!(room_seqs(&tail), (4..=10).collect::<Vec<_>>());
        assert!(
            tail.iter()
                .all(|m| m.msg.target == Target::Room("lobby".into()))
        );
        assert!(ok(s.room_since("lobby", 10, 100).await, "caught up").is_empty());
        assert!(ok(s.room_since("lobby", 0, 0).await, "limit 0").is_empty());
        assert!(ok(s.room_since("nowhere", 0, 10).await, "no room").is_empty());
    })
    .await;
}

/// Pending messages each go to exactly one of many concurrent takers (spread over every
/// handle), oldest first, while others are still being written; other users' and
/// delivered messages are not taken.
pub async fn take_pending_exactly_once(stores: Handles) {
    bounded("take_pending exactly once", async move {
        let s = first(&stores);
        let mut want = BTreeSet::new();
        for i in 0..100 {
            let to = ["bo", "Bo", "BO"][i % 3];
            let m = ok(
                s.append_message(dm("al", to, &format!("p{i}"), true)).await,
                "append",
            );
            want.insert(m.id);
        }
        ok(
            s.append_message(dm("al", "bo", "delivered", false)).await,
            "append",
        );
        let cy = ok(
            s.append_message(dm("al", "cy", "for cy", true)).await,
            "append",
        );

        // Sixteen takers at once.
        let start = Arc::new(Barrier::new(16));
        let takers: Vec<_> = (0..16)
            .map(|i| {
                let (s, start) = (pick(&stores, i), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    ok(
                        s.take_pending(if i % 2 == 0 { "bo" } else { "bO" }).await,
                        "take",
                    )
                })
            })
            .collect();
        let mut got = BTreeSet::new();
        for t in takers {
            let taken = join(t).await;
            assert!(taken.windows(2).all(|p| p[0].id < p[1].id), "oldest first");
            for m in taken {
                assert!(got.insert(m.id), "message {} delivered twice", m.id);
            }
        }
        assert_eq!(got, want, "every pending message delivered exactly once");

        // Writers and takers at once, then one last take: still exactly once.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = pick(&stores, w);
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for i in 0..25 {
                        let m = dm("al", "bo", &format!("late {w}/{i}"), true);
                        ids.push(ok(s.append_message(m).await, "append").id);
                    }
                    ids
                })
            })
            .collect();
        let takers: Vec<_> = (0..8)
            .map(|i| {
                let s = pick(&stores, i + 1);
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for _ in 0..10 {
                        ids.extend(ok(s.take_pending("bo").await, "take").iter().map(|m| m.id));
                    }
                    ids
                })
            })
            .collect();
        let mut want = BTreeSet::new();
        for w in writers {
            want.extend(join(w).await);
        }
        let mut got = BTreeSet::new();
        let drained = ok(s.take_pending("bo").await, "drain");
        for id in takers_ids(takers)
            .await
            .into_iter()
            .chain(drained.iter().map(|m| m.id))
        {
            assert!(got.insert(id), "message {id} delivered twice");
        }
        assert_eq!(
            got, want,
            "every message written while taking delivered once"
        );

        let for_cy = ok(s.take_pending("CY").await, "take cy");
        assert_eq!(for_cy.iter().map(|m| m.id).collect::<Vec<_>>(), [cy.id]);
        let back = &for_cy[0].msg;
        assert_eq!((back.from.as_str(), back.text.as_str()), ("al", "for cy"));
        assert!(ok(s.take_pending("cy").await, "again").is_empty());
    })
    .await;
}

/// Every id the taker tasks got, in no particular order.
async fn takers_ids(takers: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> Vec<u64> {
    let mut all = Vec::new();
    for t in takers {
        all.extend(join(t).await);
    }
    all
}

/// `mark_pending` makes a delivered private message pending again, once; it ignores room
/// messages and unknown ids.
pub async fn mark_pending_requeues_private_messages(stores: Handles) {
    bounded("mark_pending requeues private messages", async move {
        let s = first(&stores);
        let m = ok(
            s.append_message(dm("al", "bo", "hi", false)).await,
            "append",
        );
        let r = ok(
            s.append_message(room_msg("al", "lobby", "room", 1)).await,
            "append",
        );
        assert!(
            ok(s.take_pending("bo").await, "take").is_empty(),
            "delivered: not pending"
        );
        ok(s.mark_pending(m.id).await, "mark");
        ok(s.mark_pending(r.id).await, "mark a room message");
        ok(
            s.mark_pending(m.id + r.id + 1000).await,
            "mark an unknown id",
        );
        let taken = ok(s.take_pending("bo").await, "take");
        assert_eq!(texts(&taken), ["hi"]);
        assert_eq!(taken[0].id, m.id);
        assert!(
            ok(s.take_pending("bo").await, "again").is_empty(),
            "taken once"
        );
        assert!(ok(s.take_pending("lobby").await, "room").is_empty());
        // Delivered live by the recipient's node: no longer pending, once.
        let live = ok(
            s.append_message(dm("al", "bo", "live", true)).await,
            "append",
        );
        assert!(ok(s.mark_delivered(live.id).await, "delivered"));
        assert!(!ok(s.mark_delivered(live.id).await, "again"), "only once");
        assert!(!ok(s.mark_delivered(r.id).await, "a room message"));
        assert!(ok(s.take_pending("bo").await, "take").is_empty());
    })
    .await;
}

/// `prune_before` deletes old messages except undelivered ones, and a pruned room's
/// sequence goes on instead of starting again.
pub async fn prune_keeps_undelivered_and_sequences(stores: Handles) {
    bounded("prune keeps undelivered and sequences", async move {
        let s = first(&stores);
        ok(
            s.append_message(room_msg("al", "lobby", "old", 1)).await,
            "append",
        );
        ok(
            s.append_message(room_msg("al", "gone", "old 1", 1)).await,
            "append",
        );
        ok(
            s.append_message(room_msg("al", "gone", "old 2", 2)).await,
            "append",
        );
        let mut queued = dm("al", "bo", "queued", true);
        queued.ts = 1;
        ok(s.append_message(queued).await, "append");
        let mut seen = dm("al", "bo", "seen", false);
        seen.ts = 1;
        ok(s.append_message(seen).await, "append");
        ok(
            s.append_message(room_msg("al", "lobby", "new", 100)).await,
            "append",
        );

        assert_eq!(ok(s.prune_before(50).await, "prune"), 4);
        let lobby = ok(s.room_history("lobby", None, 10).await, "history");
        assert_eq!(texts(&lobby), ["new"]);
        assert_eq!(room_seqs(&lobby), [2]);
        assert!(ok(s.private_history("al", "bo", None, 10).await, "dm").len() == 1);
        assert_eq!(texts(&ok(s.take_pending("bo").await, "take")), ["queued"]);
        let next = ok(
            s.append_message(room_msg("al", "gone", "again", 200)).await,
            "append",
        );
        assert_eq!(next.room_seq, Some(3), "a pruned room's sequence goes on");
        assert_eq!(
            room_seqs(&ok(s.room_since("gone", 0, 10).await, "since")),
            [3]
        );
        // The queued message, delivered since, is now old like the rest.
        assert_eq!(ok(s.prune_before(50).await, "prune again"), 1);
    })
    .await;
}

/// The audit log: newest first in the order recorded (whatever the timestamps), limited.
pub async fn audit_log_newest_first(stores: Handles) {
    bounded("audit log newest first", async move {
        let s = first(&stores);
        assert!(ok(s.audit_log(10).await, "empty log").is_empty());
        let entry = |ts: u64, action: &str| AuditEntry {
            ts,
            operator: "Op".into(),
            action: action.into(),
            target: "bo".into(),
            detail: format!("detail {ts}"),
        };
        // The clock stepped back between the first two.
        for (ts, action) in [(30, "ban"), (10, "mute"), (20, "unban")] {
            ok(s.append_audit(entry(ts, action)).await, "append");
        }
        let all = ok(s.audit_log(10).await, "log");
        assert_eq!(
            all,
            [entry(20, "unban"), entry(10, "mute"), entry(30, "ban")]
        );
        assert_eq!(ok(s.audit_log(2).await, "log").len(), 2);
        assert!(ok(s.audit_log(0).await, "log").is_empty());
    })
    .await;
}

/// Settings: unset until initialised; of concurrent initialisations from every handle,
/// one value wins and everyone gets it.
pub async fn the_first_setting_wins(stores: Handles) {
    bounded("the first setting wins", async move {
        let s = first(&stores);
        assert_eq!(ok(s.setting("k").await, "unset"), None);
        let tries = stores.iter().cycle().take(8).enumerate().map(|(i, st)| {
            let st = st.clone();
            async move { ok(st.init_setting("k", &format!("v{i}")).await, "init") }
        });
        let got = futures::future::join_all(tries).await;
        let winner = got[0].clone();
        assert!(got.iter().all(|v| *v == winner), "{got:?}");
        for st in &stores {
            assert_eq!(ok(st.setting("k").await, "read"), Some(winner.clone()));
        }
        assert_eq!(ok(s.init_setting("k", "later").await, "again"), winner);
        assert_eq!(ok(s.setting("other").await, "other"), None);
    })
    .await;
}

/// Client ids: a repeat (later, in the same batch, or at once from every handle) is not
/// stored and answers with the original; the room's sequence does not move; the same id
/// from another sender is another message.
pub async fn a_retried_send_gets_the_original(stores: Handles) {
    bounded("a retried send gets the original", async move {
        let s = first(&stores);
        let with_id = |from: &str, text: &str, cid: &str| NewMessage {
            client_id: Some(cid.into()),
            ..room_msg(from, "lobby", text, 1)
        };
        let original = ok(s.append_message(with_id("al", "one", "c1")).await, "first");
        match s.append_message(with_id("AL", "one again", "c1")).await {
            Err(StoreError::Duplicate(o)) => {
                assert_eq!((o.id, o.room_seq), (original.id, Some(1)));
                assert_eq!(o.msg.text, "one", "the original comes back");
            }
            other => panic!("a repeat is a duplicate, got {other:?}"),
        }
        let other = ok(
            s.append_message(with_id("bo", "bo's", "c1")).await,
            "other sender",
        );
        assert_eq!(other.room_seq, Some(2), "no number was used by the repeat");
        // Twice in one batch.
        let a = ok(s.queue_message(with_id("al", "two", "c2")).await, "queue");
        let b = ok(s.queue_message(with_id("al", "two", "c2")).await, "queue");
        let (a, b) = (a.await, b.await);
        assert_eq!(ok(a, "first of the batch").room_seq, Some(3));
        assert!(matches!(b, Err(StoreError::Duplicate(o)) if o.room_seq == Some(3)));
        // At once from every handle.
        let tries = stores.iter().cycle().take(6).map(|st| {
            let st = st.clone();
            async move { st.append_message(with_id("al", "three", "c3")).await }
        });
        let results = futures::future::join_all(tries).await;
        let stored: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(stored.len(), 1, "exactly one stored: {results:?}");
        let id = stored[0].id;
        for r in &results {
            match r {
                Ok(m) => assert_eq!(m.room_seq, Some(4)),
                Err(StoreError::Duplicate(o)) => assert_eq!(o.id, id),
                Err(e) => panic!("a repeat is a duplicate, got {e}"),
            }
        }
        let next = ok(
            s.append_message(room_msg("al", "lobby", "four", 2)).await,
            "next",
        );
        assert_eq!(next.room_seq, Some(5), "gapless after the repeats");
        let history = ok(s.room_since("lobby", 0, 10).await, "since");
        assert_eq!(history.len(), 5);
    })
    .await;
}
