//! A cluster of `natter-server` nodes (issue 25): real processes sharing one PostgreSQL
//! database (the durable store, the one order of each room) and one Redis server
//! (cross-node fan-out, presence, heartbeats), driven by JSON-protocol clients.
//!
//! - three nodes act as one server: room messages from every node reach every member
//!   exactly once and in one order, private messages cross nodes exactly once (also
//!   queued for an offline user who comes back on another node), presence crosses nodes;
//! - a message sent the moment a member on another node joins reaches them, in the
//!   history they get on joining or live, never lost between the two;
//! - messages queued for a user who logs in on two nodes at once reach them once.
//!
//! Faults (a node killed, Redis restarted, PostgreSQL stopped) are in
//! `tests/cluster_faults.rs`; IRC, the operator console and rate limits across nodes in
//! `tests/cluster_ops.rs`.
//!
//! Each test starts its own PostgreSQL (`support/postgres.rs`) and Redis
//! (`support/redis.rs`) and skips with a notice when either is not installed, unless
//! `NATTER_REQUIRE_ENGINES=1`, which makes that a failure.

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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use natter_proto::{ClientFrame, FrameId, PresenceEvent, ServerFrame};

use cluster_client::*;
use load::*;

/// Upper bound for one awaited event.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_act_as_one_server() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let nodes = engines.nodes(3).await;
    let mut clients = register_all(
        &nodes,
        &[
            (0, "ann"),
            (1, "bob"),
            (2, "cy"),
            (0, "amy"),
            (1, "bea"),
            (2, "cat"),
        ],
    )
    .await;
    let everyone = ["amy", "ann", "bea", "bob", "cat", "cy"];

    // Presence: who and list on every node show the users of all nodes.
    for i in [0, 1, 2] {
        clients[i]
            .await_members(Some("lobby"), &everyone, WAIT)
            .await;
        clients[i].await_members(None, &everyone, WAIT).await;
    }

    // Everyone joins #all; joins are announced across nodes, and the last joiner is
    // told about the members on every node.
    let members: BTreeSet<String> = join_all(&mut clients, "#all").await.into_iter().collect();
    assert_eq!(
        members,
        everyone.iter().map(|s| s.to_string()).collect(),
        "the members listed in `joined` to the last joiner"
    );
    for i in [0, 1, 2] {
        clients[i].await_members(Some("all"), &everyone, WAIT).await;
    }

    // Everyone sends 10 messages at once (pipelined, with ids); everyone reads until it
    // has 60 messages and its 10 oks.
    const EACH: usize = 10;
    let total = EACH * clients.len();
    let mut tasks = Vec::new();
    for mut c in clients.drain(..) {
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let text = format!("{} {i}", c.name);
                c.send(ClientFrame::Public {
                    id: Some(FrameId::Num(i as u64)),
                    room: Some("all".into()),
                    text,
                    client_id: None,
                })
                .await;
            }
            for i in 0..EACH {
                let ok = c
                    .until_within(
                        Duration::from_secs(20),
                        &format!("the answer to message {i}"),
                        |f| replies_to(f, &FrameId::Num(i as u64)),
                    )
                    .await;
                assert!(
                    matches!(ok, ServerFrame::Ok { .. }),
                    "{}: message {i} answered {ok:?}",
                    c.label()
                );
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.publics("all").len() < total {
                if let Got::Closed | Got::Timeout = c.recv_until(deadline).await {
                    panic!(
                        "{}: got {} of {total} messages of #all: {:?}",
                        c.label(),
                        c.publics("all").len(),
                        c.publics("all")
                    );
                }
            }
            c
        }));
    }
    for t in tasks {
        clients.push(t.await.expect("a client task"));
    }
    // A last message after all of them: whatever duplicate was on its way comes before.
    clients[0]
        .send(ClientFrame::Public {
            id: None,
            room: Some("all".into()),
            text: "fence".into(),
            client_id: None,
        })
        .await;
    for c in &mut clients {
        c.until(
            "the fence message",
            |f| matches!(f, ServerFrame::Public { text, .. } if text == "fence"),
        )
        .await;
    }

    let orders: Vec<Vec<(u64, String, String)>> = clients
        .iter()
        .map(|c| {
            c.publics("all")
                .into_iter()
                .filter(|(_, _, text)| text != "fence")
                .collect()
        })
        .collect();
    for (c, order) in clients.iter().zip(&orders) {
        let ids: HashSet<u64> = order.iter().map(|m| m.0).collect();
        assert_eq!(
            (order.len(), ids.len()),
            (total, total),
            "{}: every message of #all exactly once (messages received, distinct ids): {order:?}",
            c.label()
        );
        for sender in &clients {
            let mine: Vec<&(u64, String, String)> =
                order.iter().filter(|m| m.1 == sender.name).collect();
            let texts: Vec<&str> = mine.iter().map(|m| m.2.as_str()).collect();
            let want: Vec<String> = (0..EACH).map(|i| format!("{} {i}", sender.name)).collect();
            assert_eq!(
                texts,
                want,
                "{}: {}'s messages in send order",
                c.label(),
                sender.name
            );
            assert!(
                mine.windows(2).all(|w| w[0].0 < w[1].0),
                "{}: the msg_ids of one session increase in its send order (PROTOCOL §2.4): {mine:?}",
                c.label()
            );
        }
    }
    for (c, order) in clients.iter().zip(&orders).skip(1) {
        let first: Vec<u64> = orders[0].iter().map(|m| m.0).collect();
        let this: Vec<u64> = order.iter().map(|m| m.0).collect();
        assert_eq!(
            this,
            first,
            "one order per room: {} (node {}) and {} (node {}) saw #all in different orders",
            c.label(),
            c.node,
            clients[0].label(),
            clients[0].node
        );
    }
    for c in &clients {
        let errors: Vec<_> = c
            .seen
            .iter()
            .filter(|(_, f)| error_code(f).is_some())
            .collect();
        assert!(errors.is_empty(), "{}: errors: {errors:?}", c.label());
    }

    // Private messages between users on different nodes, exactly once.
    let by_name = |clients: &[Client], name: &str| {
        clients
            .iter()
            .position(|c| c.name == name)
            .expect("a client of that name")
    };
    for (from, to) in [("ann", "bob"), ("cat", "amy"), ("bea", "cy")] {
        let (s, r) = (by_name(&clients, from), by_name(&clients, to));
        let text = format!("psst {to}, from {from}");
        let (reply, echo) = clients[s].private(to, &text).await;
        assert!(
            matches!(reply, ServerFrame::Ok { .. }),
            "{from} -> {to} (online on another node): {reply:?}"
        );
        let msg_id = echo.unwrap_or_else(|| panic!("{from}: no echo of the private to {to}"));
        let got = clients[r]
            .until(
                &format!("the private from {from}"),
                |f| matches!(f, ServerFrame::Private { msg_id: m, .. } if *m == msg_id),
            )
            .await;
        assert!(
            matches!(&got, ServerFrame::Private { from: f, text: t, late: false, .. } if f == from && *t == text),
            "{to} got {got:?}"
        );
        // A second private behind the first: a duplicate of the first would come before.
        let (reply, _) = clients[s].private(to, "fence").await;
        assert!(matches!(reply, ServerFrame::Ok { .. }), "{reply:?}");
        clients[r]
            .until(
                "the private fence",
                |f| matches!(f, ServerFrame::Private { text, .. } if text == "fence"),
            )
            .await;
        assert_eq!(
            clients[r].privates_with(msg_id).len(),
            1,
            "{to}: the private from {from} exactly once"
        );
        assert_eq!(
            clients[s].privates_with(msg_id).len(),
            1,
            "{from}: the echo of its private to {to} exactly once"
        );
    }

    // An offline recipient: dee registers on n1 and leaves; cy (n3) writes to her and is
    // told the message is queued; she gets it exactly once when she logs in on n2.
    let mut dee = Client::register(&nodes[0], "dee").await;
    for c in &mut clients {
        c.await_presence("lobby", "dee", PresenceEvent::Join).await;
    }
    dee.send(ClientFrame::Quit {
        id: None,
        message: None,
    })
    .await;
    dee.until("bye", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    drop(dee);
    for c in &mut clients {
        c.await_presence("lobby", "dee", PresenceEvent::Leave).await;
    }
    let cy = by_name(&clients, "cy");
    let (reply, echo) = clients[cy].private("dee", "for when you are back").await;
    let ServerFrame::Queued { msg_id, to, .. } = reply else {
        panic!("cy -> dee (offline): expected queued, got {reply:?}");
    };
    assert_eq!(to, "dee");
    assert_eq!(echo, Some(msg_id), "cy's echo and queued carry one msg_id");

    let mut dee = Client::login(&nodes[1], "dee").await;
    let late = dee
        .until(
            "the queued private, late",
            |f| matches!(f, ServerFrame::Private { msg_id: m, .. } if *m == msg_id),
        )
        .await;
    assert!(
        matches!(&late, ServerFrame::Private { from, late: true, text, .. } if from == "cy" && text == "for when you are back"),
        "dee got {late:?}"
    );
    clients[cy]
        .await_presence("lobby", "dee", PresenceEvent::Join)
        .await;
    // A second session of dee, on n3: the queued message is not delivered again.
    let mut dee2 = Client::login(&nodes[2], "dee").await;
    let (reply, _) = clients[cy].private("dee", "now live").await;
    assert!(
        matches!(reply, ServerFrame::Ok { .. }),
        "cy -> dee (online): {reply:?}"
    );
    for d in [&mut dee, &mut dee2] {
        d.until(
            "the live private",
            |f| matches!(f, ServerFrame::Private { text, late: false, .. } if text == "now live"),
        )
        .await;
    }
    assert_eq!(
        dee.privates_with(msg_id).len(),
        1,
        "dee@n2: the queued message exactly once"
    );
    assert_eq!(
        dee2.privates_with(msg_id).len(),
        0,
        "dee@n3 (a later session): the queued message is not delivered again"
    );

    // Leaves cross nodes: bea (n2) parts #all, cat (n3) quits.
    let bea = by_name(&clients, "bea");
    let id = clients[bea].next_id();
    clients[bea]
        .send(ClientFrame::Part {
            id: Some(id.clone()),
            room: "all".into(),
            message: Some("see you".into()),
        })
        .await;
    clients[bea]
        .until(
            "parted",
            |f| matches!(f, ServerFrame::Parted { id: Some(got), .. } if *got == id),
        )
        .await;
    for c in clients.iter_mut().filter(|c| c.name != "bea") {
        let leave = c.await_presence("all", "bea", PresenceEvent::Leave).await;
        assert!(
            matches!(&leave, ServerFrame::Presence { reason: Some(r), message: Some(m), .. } if r == "part" && m == "see you"),
            "{}: {leave:?}",
            c.label()
        );
    }
    let cat = by_name(&clients, "cat");
    clients[cat]
        .send(ClientFrame::Quit {
            id: None,
            message: None,
        })
        .await;
    let mut cat = clients.remove(cat);
    cat.until("bye", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    for c in &mut clients {
        // bea is no longer in #all, but still shares the lobby with cat.
        let room = if c.name == "bea" { "lobby" } else { "all" };
        let leave = c.await_presence(room, "cat", PresenceEvent::Leave).await;
        assert!(
            matches!(&leave, ServerFrame::Presence { reason: Some(r), .. } if r == "quit"),
            "{}: {leave:?}",
            c.label()
        );
    }
    let in_all = ["amy", "ann", "bob", "cy"];
    let online = ["amy", "ann", "bea", "bob", "cy", "dee"];
    for name in ["ann", "bob", "cy"] {
        let i = by_name(&clients, name);
        clients[i].await_members(Some("all"), &in_all, WAIT).await;
        clients[i].await_members(None, &online, WAIT).await;
    }
}

// ---------------------------------------------------------------------------------------
// Steady load: senders that wait for each message's answer, and listeners

/// A member who joins a room on one node gets every message sent after the join, from
/// any node, either in the history after `joined` or live. Here bob (n2) joins 40 quiet
/// rooms at once, being each room's first member on n2, and ann (n1), in all of them,
/// writes one message to each room as soon as she sees bob arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_right_after_a_join_on_another_node_arrives() {
    const ROOMS: u64 = 40;
    let Some(engines) = Engines::start().await else {
        return;
    };
    let nodes = engines.nodes(2).await;
    let mut clients = register_all(&nodes, &[(0, "ann"), (1, "bob")]).await;
    let mut bob = clients.pop().expect("bob");
    let mut ann = clients.pop().expect("ann");
    let room = |k: u64| format!("quiet{k}");
    for k in 1..=ROOMS {
        ann.join(&room(k)).await;
    }
    for k in 1..=ROOMS {
        bob.send(ClientFrame::Join {
            id: Some(FrameId::Num(k)),
            room: room(k),
        })
        .await;
    }
    let ann_side = tokio::spawn(async move {
        for _ in 1..=ROOMS {
            let join = ann
                .until("bob joining one of the rooms", |f| {
                    matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Join, .. } if user == "bob")
                })
                .await;
            let ServerFrame::Presence { room, .. } = join else {
                unreachable!("matched a presence")
            };
            let k: u64 = room
                .trim_start_matches("quiet")
                .parse()
                .expect("a numbered room");
            ann.send(ClientFrame::Public {
                id: Some(FrameId::Num(k)),
                room: Some(room.clone()),
                text: format!("welcome to {room}"),
                client_id: None,
            })
            .await;
        }
        for k in 1..=ROOMS {
            let answer = ann
                .until("an answer", |f| replies_to(f, &FrameId::Num(k)))
                .await;
            assert!(
                matches!(answer, ServerFrame::Ok { .. }),
                "ann, message to #quiet{k}: {answer:?}"
            );
        }
        ann
    });
    let mut on_join = HashMap::new();
    for k in 1..=ROOMS {
        let joined = bob
            .until("joined", |f| {
                matches!(f, ServerFrame::Joined { id: Some(FrameId::Num(got)), .. } if *got == k)
            })
            .await;
        assert!(matches!(joined, ServerFrame::Joined { .. }));
        let history = bob.room_history(&room(k), None).await;
        on_join.insert(k, history);
    }
    let _ann = ann_side.await.expect("ann's side");
    let mut lost = Vec::new();
    for k in 1..=ROOMS {
        let text = format!("welcome to {}", room(k));
        if on_join[&k].iter().any(|m| m.text == text) {
            continue;
        }
        let want = HashSet::from([text.clone()]);
        if !await_texts(
            &mut bob,
            &room(k),
            &want,
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .is_empty()
        {
            lost.push(text);
        }
    }
    assert!(
        lost.is_empty(),
        "bob@n2 got {} of the {ROOMS} acknowledged messages neither in the history after \
         `joined` nor live (waited 5 s each): {}",
        lost.len(),
        some(&lost)
    );
    for k in 1..=ROOMS {
        let dups = duplicates(&bob, &room(k));
        assert!(dups.is_empty(), "#quiet{k}: live twice: {}", some(&dups));
    }
}

/// Messages queued for an offline user who logs in on two nodes at the same moment
/// (two devices): each message reaches them exactly once per session at most and at
/// least once in all, and none stays queued for a later login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_logging_in_at_once_on_two_nodes_get_queued_messages_once() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let nodes = engines.nodes(2).await;
    let mut eve = Client::register(&nodes[0], "eve").await;
    let mut fay = Client::register(&nodes[1], "fay").await;
    eve.send(ClientFrame::Quit {
        id: None,
        message: None,
    })
    .await;
    eve.until("bye", |f| matches!(f, ServerFrame::Bye { .. }))
        .await;
    drop(eve);
    fay.await_presence("lobby", "eve", PresenceEvent::Leave)
        .await;
    let mut queued = Vec::new();
    for i in 0..3 {
        let (reply, _) = fay.private("eve", &format!("queued {i}")).await;
        let ServerFrame::Queued { msg_id, .. } = reply else {
            panic!("fay -> eve (offline): expected queued, got {reply:?}");
        };
        queued.push(msg_id);
    }
    let (mut phone, mut laptop) = tokio::join!(
        Client::login(&nodes[0], "eve"),
        Client::login(&nodes[1], "eve")
    );
    // A live message after both logins: once it has arrived on both, anything queued
    // that was going to arrive has.
    fay.await_presence("lobby", "eve", PresenceEvent::Join)
        .await;
    let (reply, _) = fay.private("eve", "live").await;
    assert!(matches!(reply, ServerFrame::Ok { .. }), "{reply:?}");
    for d in [&mut phone, &mut laptop] {
        d.until(
            "the live private",
            |f| matches!(f, ServerFrame::Private { text, late: false, .. } if text == "live"),
        )
        .await;
    }
    for id in &queued {
        let (on_phone, on_laptop) = (
            phone.privates_with(*id).len(),
            laptop.privates_with(*id).len(),
        );
        assert!(
            on_phone <= 1 && on_laptop <= 1 && on_phone + on_laptop >= 1,
            "queued message {id}: {on_phone} on the phone (n1), {on_laptop} on the laptop (n2)"
        );
    }
    let mut later = Client::login(&nodes[0], "eve").await;
    let (reply, _) = fay.private("eve", "after").await;
    assert!(matches!(reply, ServerFrame::Ok { .. }), "{reply:?}");
    later
        .until(
            "the private after",
            |f| matches!(f, ServerFrame::Private { text, .. } if text == "after"),
        )
        .await;
    for id in &queued {
        assert!(
            later.privates_with(*id).is_empty(),
            "queued message {id} was delivered again to a later session"
        );
    }
}
