//! A cluster under faults (issue 25), with the engines and clients of
//! `tests/cluster.rs`:
//!
//! - a node killed (SIGKILL) under load loses no acknowledged message, its users leave
//!   the others' rooms ("node lost") within seconds, and they catch up from history
//!   on another node;
//! - a Redis restart mid-chat loses no acknowledged message for anyone connected;
//! - while PostgreSQL is down, messages are refused with `unavailable` (never `ok`), and
//!   sending works again once it is back, without restarting the nodes.

#[path = "support/cluster_client.rs"]
mod cluster_client;
mod common;
#[path = "support/load.rs"]
mod load;
#[path = "support/node.rs"]
mod node;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/redis.rs"]
mod redis;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use natter_proto::{ClientFrame, PresenceEvent, ServerFrame};
use tokio::sync::watch;

use cluster_client::*;
use load::*;

/// Upper bound for one awaited event.
const WAIT: Duration = Duration::from_secs(10);
/// How long a lost node may stay in the others' member lists (issue: about 5 s), with
/// slack for a loaded two-core machine.
const NODE_LOST_WITHIN: Duration = Duration::from_secs(8);
/// How long after Redis (or PostgreSQL) returns the cluster may take to catch up.
const RECOVERY: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// 2. A node killed under load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acknowledged_message() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let mut nodes = engines.nodes(3).await;
    let mut clients = register_all(
        &nodes,
        &[
            (0, "a1"),
            (0, "a2"),
            (1, "b1"),
            (1, "b2"),
            (2, "c1"),
            (2, "c2"),
        ],
    )
    .await;
    join_all(&mut clients, "#load").await;
    clients[0]
        .await_members(Some("load"), &["a1", "a2", "b1", "b2", "c1", "c2"], WAIT)
        .await;

    let (stop, stopped) = watch::channel(false);
    let (senders, listeners) = start_load(clients, "load", Duration::from_millis(10), &stopped);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[2].kill().await;
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.send(true).expect("the load is running");

    let mut sent: Vec<(String, Vec<Sent>)> = Vec::new();
    let mut survivors = Vec::new();
    let mut old_c2 = None;
    for t in senders {
        let (c, s) = t.await.expect("a sender");
        sent.push((c.name.clone(), s));
        if c.node != "n3" {
            survivors.push(c);
        }
    }
    // A private message to c2 while the others still think its node is alive: stored
    // as pending until a node delivers it, so it is not lost with the node.
    let (reply, echo) = survivors[0]
        .private("c2", "sent while your node was dying")
        .await;
    assert!(
        matches!(reply, ServerFrame::Ok { .. } | ServerFrame::Queued { .. }),
        "the private to c2 is accepted: {reply:?}"
    );
    let dying_pm = echo.expect("the sender sees its private");
    for t in listeners {
        let c = t.await.expect("a listener");
        if c.node == "n3" {
            old_c2 = Some(c);
        } else {
            survivors.push(c);
        }
    }
    let old_c2 = old_c2.expect("c2's first session");
    let acked: HashSet<String> = sent
        .iter()
        .flat_map(|(_, s)| {
            s.iter()
                .filter(|m| m.acked.is_some())
                .map(|m| m.text.clone())
        })
        .collect();
    for (name, s) in &sent {
        let after = s
            .iter()
            .filter(|m| m.acked.is_some_and(|t| t > killed_at))
            .count();
        let errors: Vec<_> = s.iter().filter_map(|m| m.error).collect();
        eprintln!(
            "{name}: {} sent, {} acknowledged ({after} after the kill), errors {errors:?}",
            s.len(),
            s.iter().filter(|m| m.acked.is_some()).count()
        );
        if !name.starts_with('c') {
            assert!(
                after > 0,
                "{name}: the surviving nodes kept accepting messages after the kill"
            );
        }
    }

    // Every acknowledged message reached every member still connected, once.
    let deadline = Instant::now() + WAIT;
    for c in &mut survivors {
        let missing = await_texts(c, "load", &acked, deadline).await;
        assert!(
            missing.is_empty(),
            "{}: {} acknowledged messages never arrived: {}",
            c.label(),
            missing.len(),
            some(&missing)
        );
        let dups = duplicates(c, "load");
        assert!(
            dups.is_empty(),
            "{}: messages received twice: {}",
            c.label(),
            some(&dups)
        );
        assert!(
            !c.closed,
            "{}: its connection to a surviving node ended",
            c.label()
        );
    }

    // The lost node's users leave everybody's rooms, "node lost", within seconds.
    for c in &mut survivors {
        for gone in ["c1", "c2"] {
            let left_by = killed_at + NODE_LOST_WITHIN;
            let limit = left_by.saturating_duration_since(Instant::now());
            let pred = |f: &ServerFrame| {
                matches!(f, ServerFrame::Presence { room, user, event: PresenceEvent::Leave, .. }
                    if room == "load" && user == gone)
            };
            let leave = c.find_within(limit, &pred).await.unwrap_or_else(|why| {
                panic!(
                    "{}: {why}: no leave of {gone} (on the killed node) in #load within {NODE_LOST_WITHIN:?} of the kill; last frames:{}",
                    c.label(),
                    c.recent()
                )
            });
            assert!(
                matches!(&leave, ServerFrame::Presence { reason: Some(r), .. } if r == "node lost"),
                "{}: the leave of {gone} says why: {leave:?}",
                c.label()
            );
            let at = c
                .seen
                .iter()
                .find(|(_, f)| *f == leave)
                .map(|(at, _)| at.saturating_duration_since(killed_at));
            eprintln!("{}: {gone} left {at:?} after the kill", c.label());
        }
    }
    // survivors: a1@n1, b1@n2, a2@n1, b2@n2.
    let alive = ["a1", "a2", "b1", "b2"];
    for i in [0, 1] {
        survivors[i]
            .await_members(Some("load"), &alive, Duration::ZERO)
            .await;
        survivors[i]
            .await_members(None, &alive, Duration::ZERO)
            .await;
    }

    // Everything acknowledged is in the history (on both surviving nodes).
    for i in [0, 1] {
        let history = survivors[i].full_history("load").await;
        let texts: HashSet<String> = history.iter().map(|m| m.text.clone()).collect();
        let mut missing: Vec<&String> = acked.difference(&texts).collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "{}: {} acknowledged messages are not in the history of #load: {}",
            survivors[i].label(),
            missing.len(),
            some(&missing)
        );
        let ids: HashSet<u64> = history.iter().map(|m| m.msg_id).collect();
        assert_eq!(ids.len(), history.len(), "one history entry per message");
    }

    // c2 comes back on n1 and gets what it missed from the history.
    let had: HashSet<String> = old_c2.publics("load").into_iter().map(|m| m.2).collect();
    let missed: HashSet<String> = acked.difference(&had).cloned().collect();
    let mut c2 = Client::login(&nodes[0], "c2").await;
    c2.until(
        "the private sent while its node was dying",
        |f| matches!(f, ServerFrame::Private { msg_id, late: true, .. } if *msg_id == dying_pm),
    )
    .await;
    let (members, on_join) = c2.join("#load").await;
    let members: BTreeSet<String> = members.into_iter().collect();
    assert_eq!(
        members,
        ["a1", "a2", "b1", "b2", "c2"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "c2@n1: the members of #load after the node loss"
    );
    let full = c2.full_history("load").await;
    let tail: Vec<u64> = full[full.len().saturating_sub(on_join.len())..]
        .iter()
        .map(|m| m.msg_id)
        .collect();
    let joined_ids: Vec<u64> = on_join.iter().map(|m| m.msg_id).collect();
    assert_eq!(
        joined_ids, tail,
        "c2@n1: the history on join is the newest of #load"
    );
    let caught_up: HashSet<String> = full.into_iter().map(|m| m.text).collect();
    let mut still: Vec<&String> = missed.difference(&caught_up).collect();
    still.sort();
    assert!(
        still.is_empty(),
        "c2@n1: {} of the {} messages it missed are not in the history: {}",
        still.len(),
        missed.len(),
        some(&still)
    );
    eprintln!(
        "c2 missed {} acknowledged messages while its node was down",
        missed.len()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Redis restarted mid-chat

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_acknowledged_message() {
    let Some(mut engines) = Engines::start().await else {
        return;
    };
    let nodes = engines.nodes(2).await;
    let mut clients = register_all(&nodes, &[(0, "a1"), (0, "a2"), (1, "b1"), (1, "b2")]).await;
    join_all(&mut clients, "#chat").await;

    let (stop, stopped) = watch::channel(false);
    let (senders, listeners) = start_load(clients, "chat", Duration::from_millis(20), &stopped);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    engines.redis.stop();
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engines.redis.restart().await;
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send(true).expect("the load is running");

    let mut acked = HashSet::new();
    let mut clients = Vec::new();
    for t in senders {
        let (c, s) = t.await.expect("a sender");
        let during = s
            .iter()
            .filter(|m| m.acked.is_some_and(|t| t > stopped_at && t < back_at))
            .count();
        let errors: Vec<_> = s.iter().filter_map(|m| m.error).collect();
        eprintln!(
            "{}: {} sent, {} acknowledged ({during} while Redis was down), errors {errors:?}",
            c.label(),
            s.len(),
            s.iter().filter(|m| m.acked.is_some()).count()
        );
        acked.extend(s.into_iter().filter(|m| m.acked.is_some()).map(|m| m.text));
        clients.push(c);
    }
    for t in listeners {
        clients.push(t.await.expect("a listener"));
    }

    let deadline = back_at + RECOVERY;
    for c in &mut clients {
        assert!(
            !c.closed,
            "{}: the connection ended with Redis gone",
            c.label()
        );
        let missing = await_texts(c, "chat", &acked, deadline).await;
        assert!(
            missing.is_empty(),
            "{}: {} acknowledged messages never arrived ({RECOVERY:?} after Redis returned): {}",
            c.label(),
            missing.len(),
            some(&missing)
        );
        let dups = duplicates(c, "chat");
        assert!(
            dups.is_empty(),
            "{}: messages received twice: {}",
            c.label(),
            some(&dups)
        );
    }
    let history = clients[0].full_history("chat").await;
    let texts: HashSet<String> = history.into_iter().map(|m| m.text).collect();
    let mut missing: Vec<&String> = acked.difference(&texts).collect();
    missing.sort();
    assert!(missing.is_empty(), "not in the history: {}", some(&missing));

    // Presence lives in Redis too: after the restart every node still sees everyone.
    // clients: a1@n1, b1@n2, a2@n1, b2@n2.
    let everyone = ["a1", "a2", "b1", "b2"];
    for i in [0, 1] {
        clients[i]
            .await_members(Some("chat"), &everyone, RECOVERY)
            .await;
        clients[i].await_members(None, &everyone, WAIT).await;
    }
    // And messages still cross nodes as they happen.
    clients[1]
        .send(ClientFrame::Public {
            id: None,
            room: Some("chat".into()),
            text: "after the restart".into(),
            client_id: None,
        })
        .await;
    clients[0]
        .until(
            "a message from the other node",
            |f| matches!(f, ServerFrame::Public { text, .. } if text == "after the restart"),
        )
        .await;
}

// ---------------------------------------------------------------------------------------
// 4. PostgreSQL down for a few seconds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_means_unavailable_never_ok() {
    let Some(mut engines) = Engines::start().await else {
        return;
    };
    let nodes = engines.nodes(2).await;
    let mut clients = register_all(&nodes, &[(0, "ann"), (1, "bob")]).await;
    let (ann, bob) = (0, 1);

    /// Sends a public to the lobby with an id and returns the answer.
    async fn say(c: &mut Client, text: &str, limit: Duration) -> ServerFrame {
        let id = c.next_id();
        c.send(ClientFrame::Public {
            id: Some(id.clone()),
            room: None,
            text: text.to_string(),
            client_id: None,
        })
        .await;
        c.until_within(limit, &format!("the answer to {text:?}"), |f| {
            replies_to(f, &id)
        })
        .await
    }

    let answer = say(&mut clients[ann], "before", WAIT).await;
    assert!(matches!(answer, ServerFrame::Ok { .. }), "{answer:?}");
    clients[bob]
        .until(
            "the first message",
            |f| matches!(f, ServerFrame::Public { text, .. } if text == "before"),
        )
        .await;

    tokio::task::block_in_place(|| engines.pg.stop());
    let mut refused = Vec::new();
    let mut acked = vec!["before".to_string()];
    for i in 1..=2 {
        let text = format!("while down {i}");
        let answer = say(&mut clients[ann], &text, Duration::from_secs(20)).await;
        assert_eq!(
            error_code(&answer),
            Some("unavailable"),
            "a message sent while PostgreSQL is down: expected error `unavailable`, got {answer:?}"
        );
        refused.push(text);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (answer, _) = clients[ann].private("bob", "private while down").await;
    assert_eq!(
        error_code(&answer),
        Some("unavailable"),
        "a private message sent while PostgreSQL is down: expected error `unavailable`, got {answer:?}"
    );
    refused.push("private while down".into());
    assert!(
        !clients[ann].closed && !clients[bob].closed,
        "clients stay connected"
    );

    engines.pg.start_again().await;
    let back_at = Instant::now();
    let mut up = None;
    for i in 1..=100 {
        let text = format!("back {i}");
        let answer = say(&mut clients[ann], &text, Duration::from_secs(20)).await;
        match error_code(&answer) {
            None => {
                acked.push(text.clone());
                up = Some(text);
                break;
            }
            Some("unavailable") if back_at.elapsed() < RECOVERY => refused.push(text),
            _ => panic!(
                "{:?} after PostgreSQL returned: {answer:?}",
                back_at.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up = up.expect("sending works again");
    eprintln!(
        "sending worked again {:?} after PostgreSQL returned",
        back_at.elapsed()
    );
    clients[bob]
        .until(
            "the first message after PostgreSQL returned",
            |f| matches!(f, ServerFrame::Public { text, .. } if *text == up),
        )
        .await;
    let (answer, _) = clients[ann].private("bob", "private when back").await;
    assert!(matches!(answer, ServerFrame::Ok { .. }), "{answer:?}");
    clients[bob]
        .until(
            "the private after PostgreSQL returned",
            |f| matches!(f, ServerFrame::Private { text, .. } if text == "private when back"),
        )
        .await;

    // Nothing refused was delivered or stored; everything acknowledged was stored.
    for c in &clients {
        let delivered: Vec<String> = c
            .seen
            .iter()
            .filter_map(|(_, f)| match f {
                ServerFrame::Public { text, .. } | ServerFrame::Private { text, .. } => {
                    Some(text.clone())
                }
                _ => None,
            })
            .filter(|t| refused.contains(t))
            .collect();
        assert!(
            delivered.is_empty(),
            "{}: received refused messages: {delivered:?}",
            c.label()
        );
    }
    let history = clients[bob].full_history("lobby").await;
    let texts: Vec<String> = history.into_iter().map(|m| m.text).collect();
    for t in &refused {
        assert!(!texts.contains(t), "refused but stored: {t:?} in {texts:?}");
    }
    for t in &acked {
        assert!(
            texts.contains(t),
            "acknowledged but not stored: {t:?} in {texts:?}"
        );
    }
}
