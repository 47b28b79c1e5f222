//! A cluster of `natter-server` nodes seen through its other doors (issue 25, continued
//! from `cluster.rs`): real processes sharing one PostgreSQL database and one Redis
//! server, with the IRC gateway and the web console of one node facing the users of
//! another.
//!
//! - an IRC user on node 2 and a natter user on node 1 talk in a room and in private,
//!   see each other join and leave, and node 2's NAMES and WHO list the node-1 user;
//! - the operator console of node 2, logged in with the password node 1 generated, sees
//!   the whole cluster (online users, rooms, the live feed) and its kick, mute, ban and
//!   notices reach the users of node 1; a ban holds on every node;
//! - an account sending through two nodes at once shares one message rate limit.
//!
//! Each test starts its own PostgreSQL and Redis (skipping with a notice when either is
//! missing, unless `NATTER_REQUIRE_ENGINES=1`), as `cluster.rs` does.

mod common;
#[path = "support/console.rs"]
mod console;
#[path = "support/irc.rs"]
mod irc;
#[path = "support/node.rs"]
mod node;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/redis.rs"]
mod redis;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{LineClient, PASSWORD};
use console::Console;
use natter_client::Connection;
use natter_proto::{ClientFrame, ErrorCode, FrameId, PresenceEvent, ServerFrame};
use node::{Node, NodeBuilder};
use postgres::TestPostgres;
use redis::TestRedis;
use serde_json::{Value, json};

/// Upper bound for one awaited event.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Engines

/// One test's PostgreSQL server, fresh database and Redis server.
struct Engines {
    _pg: TestPostgres,
    redis: TestRedis,
    db: String,
}

impl Engines {
    /// Starts both engines, or `None` (the test skips) when one is missing and not
    /// required.
    async fn start() -> Option<Engines> {
        let redis = TestRedis::start().await?;
        let pg = TestPostgres::start().await?;
        let db = pg.fresh_database().await;
        Some(Engines { _pg: pg, redis, db })
    }

    /// How to start node `id` on these engines.
    fn node(&self, id: &str) -> NodeBuilder {
        Node::builder(id, &self.db, &self.redis.url())
    }
}

// ---------------------------------------------------------------------------------------
// natter clients

/// A logged-in natter (JSON protocol) client that keeps the frames it has not yet taken.
struct Nat {
    name: String,
    conn: Connection,
    /// Every frame received, in order (for failure messages and negative checks).
    seen: Vec<ServerFrame>,
    requests: u64,
}

impl Nat {
    /// Connects to `addr` and registers `name` (or logs it in), past the lobby welcome.
    async fn open(addr: SocketAddr, name: &str, register: bool) -> Nat {
        let mut conn = common::connect(addr).await;
        tokio::time::timeout(WAIT, conn.login(name, PASSWORD, register))
            .await
            .unwrap_or_else(|_| panic!("{name}: log in at {addr} in time"))
            .unwrap_or_else(|e| panic!("{name}: log in at {addr} (register: {register}): {e}"));
        let mut nat = Nat {
            name: name.to_string(),
            conn,
            seen: Vec::new(),
            requests: 0,
        };
        nat.until(
            "the lobby history",
            |f| matches!(f, ServerFrame::History { room: Some(r), last: true, .. } if r == "lobby"),
        )
        .await;
        nat
    }

    fn next_id(&mut self) -> FrameId {
        self.requests += 1;
        FrameId::Str(format!("r{}", self.requests))
    }

    async fn send(&mut self, frame: ClientFrame) {
        self.conn
            .send(&frame)
            .await
            .unwrap_or_else(|e| panic!("{}: send {frame:?}: {e}", self.name));
    }

    /// The next frame within `limit`; `None` when the connection closed. Fails on time.
    async fn next_within(&mut self, limit: Duration, what: &str) -> Option<ServerFrame> {
        match tokio::time::timeout(limit, self.conn.recv()).await {
            Err(_) => panic!(
                "{}: nothing more within {limit:?} while waiting for {what}; last frames:{}",
                self.name,
                self.recent()
            ),
            Ok(Ok(Some(frame))) => {
                if let ServerFrame::Ping { id } = &frame {
                    let _ = self.conn.send(&ClientFrame::Pong { id: id.clone() }).await;
                }
                self.seen.push(frame.clone());
                Some(frame)
            }
            Ok(Ok(None) | Err(_)) => None,
        }
    }

    fn recent(&self) -> String {
        let from = self.seen.len().saturating_sub(15);
        self.seen[from..]
            .iter()
            .map(|f| format!("\n    {f:?}"))
            .collect()
    }

    /// Reads until a frame matches `pred`, within [`WAIT`] (and 1000 frames).
    async fn until(&mut self, what: &str, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        let deadline = Instant::now() + WAIT;
        for _ in 0..1000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left, what).await {
                Some(f) if pred(&f) => return f,
                Some(_) => {}
                None => panic!(
                    "{}: closed while waiting for {what}; last frames:{}",
                    self.name,
                    self.recent()
                ),
            }
        }
        panic!("{}: no {what} in 1000 frames", self.name);
    }

    /// Reads until the server closes the connection; returns the `bye` reason, if any.
    async fn until_closed(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        let mut reason = None;
        for _ in 0..1000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left, "the connection to close").await {
                Some(ServerFrame::Bye { reason: r }) => reason = Some(r),
                Some(_) => {}
                None => return reason,
            }
        }
        panic!("{}: still open after 1000 frames", self.name);
    }

    /// Joins `room`, past its history.
    async fn join(&mut self, room: &str) {
        let id = self.next_id();
        self.send(ClientFrame::Join {
            id: Some(id.clone()),
            room: room.to_string(),
        })
        .await;
        let got = self
            .until(&format!("joined #{room}"), |f| {
                matches!(f, ServerFrame::Joined { id: Some(g), .. } | ServerFrame::Error { id: Some(g), .. } if *g == id)
            })
            .await;
        assert!(
            matches!(got, ServerFrame::Joined { .. }),
            "{}: join #{room}: {got:?}",
            self.name
        );
        self.until(
            &format!("the history of #{room}"),
            |f| matches!(f, ServerFrame::History { room: Some(r), last: true, .. } if r == room),
        )
        .await;
    }

    /// Sends a public message to `room` with an id; returns the answer (`ok` or `error`).
    async fn say(&mut self, room: &str, text: &str) -> ServerFrame {
        let id = self.next_id();
        self.send(ClientFrame::Public {
            id: Some(id.clone()),
            room: Some(room.to_string()),
            text: text.to_string(),
            client_id: None,
        })
        .await;
        self.until(&format!("the answer to {text:?}"), |f| replies_to(f, &id))
            .await
    }

    /// Waits for a presence event about `user` in `room`.
    async fn presence(&mut self, room: &str, user: &str, event: PresenceEvent) -> ServerFrame {
        self.until(&format!("{user} {event:?} #{room}"), |f| {
            matches!(f, ServerFrame::Presence { room: r, user: u, event: e, .. }
                if r == room && u == user && *e == event)
        })
        .await
    }

    /// Waits for the system frame `text`.
    async fn system(&mut self, text: &str) {
        self.until(
            &format!("the system frame {text:?}"),
            |f| matches!(f, ServerFrame::System { text: t } if t == text),
        )
        .await;
    }
}

/// Whether `f` is the `ok` or `error` answering request `id`.
fn replies_to(f: &ServerFrame, id: &FrameId) -> bool {
    match f {
        ServerFrame::Ok { id: got } => got == id,
        ServerFrame::Error { id: Some(got), .. } => got == id,
        _ => false,
    }
}

/// Tries to log `name` in at `addr`; returns the error code of the refusal, or `None`
/// when the login succeeded.
async fn login_refusal(addr: SocketAddr, name: &str) -> Option<ErrorCode> {
    let mut conn = common::connect(addr).await;
    let id = FrameId::Str("login".into());
    conn.send(&ClientFrame::Auth {
        id: Some(id.clone()),
        user: name.into(),
        password: PASSWORD.into(),
        register: false,
    })
    .await
    .expect("send auth");
    for _ in 0..100 {
        match common::next(&mut conn).await {
            ServerFrame::AuthOk { .. } => return None,
            ServerFrame::Error { code, .. } => return Some(code),
            _ => {}
        }
    }
    panic!("{name}: no answer to auth in 100 frames");
}

// ---------------------------------------------------------------------------------------
// 1. IRC across nodes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_irc_user_on_one_node_and_a_natter_user_on_another_talk() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let n1 = engines.node("n1").spawn().await;
    let n2 = engines.node("n2").irc().spawn().await;
    let irc = n2.irc.expect("node 2's IRC gateway");

    // ivy's account is made with a natter client (on node 1); she uses IRC on node 2.
    common::account(n1.addr, "ivy").await;
    let mut nat = Nat::open(n1.addr, "nat", true).await;
    nat.join("bridge").await;
    let mut ivy = LineClient::irc_sasl(irc, "ivy").await;

    // ivy joins: nat (node 1) sees it; node 2's NAMES and WHO list nat.
    ivy.send("JOIN #bridge").await;
    let joined = ivy.until(" 366 ivy #bridge ").await;
    assert!(
        joined
            .iter()
            .any(|l| l.starts_with(":ivy!ivy@natter JOIN #bridge")),
        "{joined:#?}"
    );
    nat.presence("bridge", "ivy", PresenceEvent::Join).await;
    let names = ivy
        .poll("NAMES #bridge", " 366 ivy #bridge ", |l| {
            l.starts_with(":natter 353 ivy = #bridge :")
                && l.split(':')
                    .nth(2)
                    .is_some_and(|n| n.split(' ').any(|n| n == "nat"))
        })
        .await;
    let listed: BTreeSet<&str> = names
        .iter()
        .filter_map(|l| l.strip_prefix(":natter 353 ivy = #bridge :"))
        .flat_map(|n| n.split(' '))
        .collect();
    assert_eq!(listed, BTreeSet::from(["ivy", "nat"]), "{names:#?}");
    let who = ivy
        .poll("WHO #bridge", " 315 ivy #bridge ", |l| {
            l.starts_with(":natter 352 ivy #bridge nat natter natter nat H")
        })
        .await;
    assert_eq!(
        who.iter().filter(|l| l.contains(" 352 ")).count(),
        2,
        "a 352 per member: {who:#?}"
    );
    // WHO by nick finds a user of another node too.
    ivy.send("WHO nat").await;
    let by_nick = ivy.until(" 315 ivy nat ").await;
    assert!(
        by_nick
            .iter()
            .any(|l| l.contains(" 352 ivy ") && l.contains(" nat H")),
        "{by_nick:#?}"
    );

    // Room messages both ways.
    assert!(matches!(
        nat.say("bridge", "hello from node 1").await,
        ServerFrame::Ok { .. }
    ));
    ivy.until(":nat!nat@natter PRIVMSG #bridge :hello from node 1")
        .await;
    ivy.send("PRIVMSG #bridge :hello from node 2").await;
    nat.until("ivy's room message", |f| {
        matches!(f, ServerFrame::Public { room, from, text, .. }
            if room == "bridge" && from == "ivy" && text == "hello from node 2")
    })
    .await;

    // Private messages both ways.
    let id = nat.next_id();
    nat.send(ClientFrame::Private {
        id: Some(id.clone()),
        to: "ivy".into(),
        text: "psst, node 2".into(),
        client_id: None,
    })
    .await;
    let reply = nat
        .until("the answer to the private", |f| replies_to(f, &id))
        .await;
    assert!(
        matches!(reply, ServerFrame::Ok { .. }),
        "a private to an IRC user on another node: {reply:?}"
    );
    ivy.until(":nat!nat@natter PRIVMSG ivy :psst, node 2").await;
    ivy.send("PRIVMSG nat :psst, node 1").await;
    nat.until("ivy's private", |f| {
        matches!(f, ServerFrame::Private { from, text, .. } if from == "ivy" && text == "psst, node 1")
    })
    .await;

    // nat's join and part, seen on IRC on the other node.
    ivy.send("JOIN #second").await;
    ivy.until(" 366 ivy #second ").await;
    nat.join("second").await;
    ivy.until(":nat!nat@natter JOIN #second").await;
    nat.send(ClientFrame::Part {
        id: None,
        room: "second".into(),
        message: Some("gone fishing".into()),
    })
    .await;
    ivy.until(":nat!nat@natter PART #second :gone fishing")
        .await;
    // ivy's part, seen by nat on the other node, with her words.
    ivy.send("PART #bridge :see you").await;
    ivy.until(":ivy!ivy@natter PART #bridge :see you").await;
    let left = nat.presence("bridge", "ivy", PresenceEvent::Leave).await;
    assert!(
        matches!(&left, ServerFrame::Presence { message: Some(m), .. } if m == "see you"),
        "{left:?}"
    );
    // Nothing came twice on IRC (one PRIVMSG per message, one JOIN per join).
    let rest = ivy.sync().await;
    assert!(
        !rest
            .iter()
            .any(|l| l.contains("PRIVMSG") || l.contains(" JOIN ")),
        "nothing repeated: {rest:#?}"
    );

    // WHOIS finds nat on the other node.
    ivy.send("WHOIS nat").await;
    let whois = ivy.until(" 318 ivy nat ").await;
    assert!(
        whois.iter().any(|l| l.starts_with(":natter 311 ivy nat ")),
        "{whois:#?}"
    );

    // nat quits on node 1: ivy, back in #bridge, sees the QUIT. A private to nat now is
    // kept, and reaches nat's next session on node 1.
    ivy.send("JOIN #bridge").await;
    ivy.until(" 366 ivy #bridge ").await;
    nat.presence("bridge", "ivy", PresenceEvent::Join).await;
    nat.send(ClientFrame::Quit {
        id: None,
        message: Some("bye all".into()),
    })
    .await;
    nat.until_closed().await;
    ivy.until(":nat!nat@natter QUIT :Quit: bye all").await;
    ivy.send("PRIVMSG nat :while you were out").await;
    ivy.until("nat is offline; your message is kept").await;
    let mut nat = Nat::open(n1.addr, "nat", false).await;
    nat.until("the private kept while offline", |f| {
        matches!(f, ServerFrame::Private { from, text, .. } if from == "ivy" && text == "while you were out")
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. One node's console, the whole cluster

/// The names in the `online` list of an overview or `stats` message.
fn online(stats: &Value) -> BTreeSet<String> {
    stats["online"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["user"].as_str().map(str::to_string))
        .collect()
}

/// The member count of `room` in an overview or `stats` message.
fn room_members(stats: &Value, room: &str) -> Option<u64> {
    stats["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == room)
        .and_then(|r| r["members"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_of_one_node_sees_and_acts_on_the_whole_cluster() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let n1 = engines.node("n1").spawn().await;
    let n2 = engines.node("n2").web().spawn().await;
    let password = n1
        .operator_password
        .clone()
        .expect("node 1 (first on a fresh database) prints the operator password");
    assert_eq!(
        n2.operator_password, None,
        "node 2 uses node 1's password and prints none"
    );
    let console = Console::login(n2.web.expect("node 2's web interface"), &password).await;
    let mut feed = console.monitor().await;

    // Users of node 1 only.
    let mut kim = Nat::open(n1.addr, "kim", true).await;
    let mut mo = Nat::open(n1.addr, "mo", true).await;
    let mut ben = Nat::open(n1.addr, "ben", true).await;
    mo.join("ops").await;

    // The live feed of node 2 shows node 1's events: a registration, a room message.
    let ev = console::monitor_until(&mut feed, WAIT, |v| {
        v["kind"] == "register" && v["user"] == "kim"
    })
    .await;
    assert!(
        ev.is_some(),
        "node 2's feed shows kim's registration on node 1"
    );
    assert!(matches!(
        mo.say("ops", "status green").await,
        ServerFrame::Ok { .. }
    ));
    let ev = console::monitor_until(&mut feed, WAIT, |v| {
        v["kind"] == "public" && v["text"] == "status green"
    })
    .await;
    assert!(
        ev.as_ref()
            .is_some_and(|v| v["user"] == "mo" && v["room"] == "ops"),
        "node 2's feed shows mo's message on node 1 in #ops (nobody on node 2 is in it): {ev:?}"
    );

    // Online users and rooms include node 1's.
    let deadline = Instant::now() + WAIT;
    let want: BTreeSet<String> = ["ben", "kim", "mo"].map(String::from).into();
    let overview = loop {
        let o = console.overview().await;
        if online(&o) == want
            && room_members(&o, "ops") == Some(1)
            && room_members(&o, "lobby") == Some(3)
        {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "node 2's overview: online {:?} (want {want:?}), #ops {:?} (want 1), #lobby {:?} (want 3): {o}",
            online(&o),
            room_members(&o, "ops"),
            room_members(&o, "lobby")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for user in overview["online"].as_array().expect("online") {
        assert_eq!(
            (&user["sessions"], &user["transports"]),
            (&json!(1), &json!({ "natter": 1 })),
            "a node-1 user in node 2's overview: {user}"
        );
    }

    // A notice to #ops reaches mo on node 1; then one to everyone reaches all three,
    // kim without the #ops one before it.
    let msg = console
        .act(
            "/api/admin/notice",
            json!({ "text": "ops only", "room": "ops" }),
        )
        .await;
    assert_eq!(msg, "notice sent to #ops (1 session)");
    mo.system("[notice] ops only").await;
    let msg = console
        .act("/api/admin/notice", json!({ "text": "hello all" }))
        .await;
    assert!(msg.contains("3 session"), "{msg}");
    for c in [&mut kim, &mut mo, &mut ben] {
        c.system("[notice] hello all").await;
    }
    assert!(
        !kim.seen
            .iter()
            .any(|f| matches!(f, ServerFrame::System { text } if text.contains("ops only"))),
        "the #ops notice reached kim, who is not in #ops"
    );

    // Mute: mo is told, and the next message is refused with `muted`.
    let msg = console
        .act("/api/admin/mute", json!({ "user": "mo", "seconds": 60 }))
        .await;
    assert_eq!(msg, "muted mo for 60 s");
    mo.system("an operator muted you for 60 s").await;
    let refused = mo.say("ops", "can you hear me").await;
    assert!(
        matches!(
            refused,
            ServerFrame::Error {
                code: ErrorCode::Muted,
                ..
            }
        ),
        "a message after an operator mute from another node: {refused:?}"
    );
    let msg = console
        .act("/api/admin/unmute", json!({ "user": "mo" }))
        .await;
    assert_eq!(msg, "unmuted mo");
    mo.system("an operator lifted your mute").await;
    let sent = mo.say("ops", "thanks").await;
    assert!(
        matches!(sent, ServerFrame::Ok { .. }),
        "a message after an unmute from another node: {sent:?}"
    );

    // Kick: kim's session on node 1 ends with the reason.
    let msg = console
        .act(
            "/api/admin/kick",
            json!({ "user": "kim", "reason": "cool off" }),
        )
        .await;
    assert_eq!(msg, "kicked kim (1 session)");
    assert_eq!(
        kim.until_closed().await.as_deref(),
        Some("kicked by an operator: cool off")
    );

    // Ban: ben is disconnected, and refused on every node afterwards.
    let msg = console
        .act("/api/admin/ban", json!({ "user": "ben", "reason": "spam" }))
        .await;
    assert_eq!(msg, "banned ben; 1 session disconnected");
    assert_eq!(
        ben.until_closed().await.as_deref(),
        Some("banned by an operator: spam")
    );
    for node in [&n1, &n2] {
        assert_eq!(
            login_refusal(node.addr, "ben").await,
            Some(ErrorCode::Banned),
            "ben's login on node {}",
            node.id
        );
    }
    // Someone else still logs in (the refusals were bans, not an outage).
    assert_eq!(login_refusal(n1.addr, "kim").await, None);
    let msg = console
        .act("/api/admin/unban", json!({ "user": "ben" }))
        .await;
    assert_eq!(msg, "unbanned ben");
    assert_eq!(
        login_refusal(n1.addr, "ben").await,
        None,
        "ben after the unban"
    );
    let ev = console::monitor_until(&mut feed, WAIT, |v| {
        v["kind"] == "login_refused" && v["user"] == "ben"
    })
    .await;
    assert!(
        ev.is_some(),
        "node 2's feed shows ben refused (on node 1 or 2)"
    );
}

// ---------------------------------------------------------------------------------------
// 3. One message rate limit across nodes

/// Sends `count` public messages to the lobby at once (ids `b0`…), then reads their
/// answers; returns how many were accepted and the error codes of the others.
async fn burst(c: &mut Nat, count: usize) -> (usize, Vec<ErrorCode>) {
    for i in 0..count {
        c.send(ClientFrame::Public {
            id: Some(FrameId::Str(format!("b{i}"))),
            room: None,
            text: format!("{} {i}", c.name),
            client_id: None,
        })
        .await;
    }
    answers(c, count).await
}

/// Reads the answers to `b0`…`b<count-1>`, in whatever order they come (refusals come
/// at once, acceptances after the commit).
async fn answers(c: &mut Nat, count: usize) -> (usize, Vec<ErrorCode>) {
    let ids: Vec<FrameId> = (0..count).map(|i| FrameId::Str(format!("b{i}"))).collect();
    let (mut ok, mut refused) = (0, Vec::new());
    while ok + refused.len() < count {
        match c
            .until("the answers to b0…", |f| {
                ids.iter().any(|id| replies_to(f, id))
            })
            .await
        {
            ServerFrame::Ok { .. } => ok += 1,
            ServerFrame::Error { code, .. } => refused.push(code),
            _ => unreachable!("matched an answer"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_on_two_nodes_shares_one_message_rate_limit() {
    let Some(engines) = Engines::start().await else {
        return;
    };
    let limited = |id: &str| {
        engines
            .node(id)
            .setting("--message-rate", "2")
            .setting("--message-burst", "4")
    };
    let n1 = limited("n1").spawn().await;
    let n2 = limited("n2").spawn().await;

    // Control: an account on one node gets its burst of 4, no more.
    let mut solo = Nat::open(n1.addr, "solo", true).await;
    let (ok, refused) = burst(&mut solo, 8).await;
    assert_eq!(
        ok, 4,
        "one session on one node: the burst, refused {refused:?}"
    );

    // duo on both nodes; presence needs about a second to reach the other node.
    let mut duo1 = Nat::open(n1.addr, "duo", true).await;
    let mut duo2 = Nat::open(n2.addr, "duo", false).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Both sessions send at once, as fast as they can.
    for c in [&mut duo1, &mut duo2] {
        for i in 0..8 {
            c.send(ClientFrame::Public {
                id: Some(FrameId::Str(format!("b{i}"))),
                room: None,
                text: format!("duo@{i}"),
                client_id: None,
            })
            .await;
        }
    }
    let (ok1, refused1) = answers(&mut duo1, 8).await;
    let (ok2, refused2) = answers(&mut duo2, 8).await;
    eprintln!("duo's burst: {ok1} accepted on node 1, {ok2} on node 2");
    let refused: Vec<ErrorCode> = refused1.into_iter().chain(refused2).collect();
    assert!(
        refused.iter().all(|c| *c == ErrorCode::RateLimited),
        "refusals are rate limits: {refused:?}"
    );
    assert!(
        (3..=5).contains(&(ok1 + ok2)),
        "an account on two nodes gets about one burst (4) in all, not one per node (8): \
         {ok1} accepted on node 1, {ok2} on node 2"
    );

    // Once the session on node 2 has left, node 1 gives duo the whole limit again: after
    // two seconds (a full bucket at 2 a second), the whole burst.
    duo2.send(ClientFrame::Quit {
        id: None,
        message: None,
    })
    .await;
    duo2.until_closed().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (ok, refused) = burst(&mut duo1, 8).await;
    assert_eq!(
        ok, 4,
        "duo alone again (on node 1): the whole burst; refused {refused:?}"
    );
}
