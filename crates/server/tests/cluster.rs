//! A cluster of `natter-server` nodes (issue 25): real processes sharing one PostgreSQL
//! database (the durable store, the one order of each room) and one Redis server
//! (cross-node fan-out, presence, heartbeats), driven by JSON-protocol clients.
//!
//! - three nodes act as one server: room messages from every node reach every member
//!   exactly once and in one order, private messages cross nodes exactly once (also
//!   queued for an offline user who comes back on another node), presence crosses nodes;
//! - a node killed (SIGKILL) under load loses no acknowledged message, its users leave
//!   the others' rooms ("node lost") within seconds, and they catch up from history
//!   on another node;
//! - a Redis restart mid-chat loses no acknowledged message for anyone connected;
//! - while PostgreSQL is down, messages are refused with `unavailable` (never `ok`), and
//!   sending works again once it is back, without restarting the nodes.
//!
//! Each test starts its own PostgreSQL (`support/postgres.rs`) and Redis
//! (`support/redis.rs`) and skips with a notice when either is not installed, unless
//! `NATTER_REQUIRE_ENGINES=1`, which makes that a failure.

mod common;
#[path = "support/node.rs"]
mod node;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/redis.rs"]
mod redis;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use natter_client::Connection;
use natter_proto::{ClientFrame, FrameId, HistoryEntry, PresenceEvent, ServerFrame};
use node::Node;
use postgres::TestPostgres;
use redis::TestRedis;
use tokio::sync::watch;

/// Upper bound for one awaited event.
const WAIT: Duration = Duration::from_secs(10);
/// How long a lost node may stay in the others' member lists (issue: about 5 s), with
/// slack for a loaded two-core machine.
const NODE_LOST_WITHIN: Duration = Duration::from_secs(8);
/// How long after Redis (or PostgreSQL) returns the cluster may take to catch up.
const RECOVERY: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Engines and nodes

/// One test's PostgreSQL server, database and Redis server.
struct Engines {
    pg: TestPostgres,
    redis: TestRedis,
    /// The URL of this test's (fresh) database.
    db: String,
}

impl Engines {
    /// Starts both engines, or returns `None` (the test skips) when one is missing and
    /// not required.
    async fn start() -> Option<Engines> {
        let redis = TestRedis::start().await?;
        let pg = TestPostgres::start().await?;
        let db = pg.fresh_database().await;
        Some(Engines { pg, redis, db })
    }

    /// Starts node `id` on these engines.
    async fn node(&self, id: &str) -> Node {
        Node::spawn(id, &self.db, &self.redis.url()).await
    }

    /// Starts nodes `n1` … `n<count>`, one after the other.
    async fn nodes(&self, count: usize) -> Vec<Node> {
        let mut nodes = Vec::new();
        for i in 1..=count {
            nodes.push(self.node(&format!("n{i}")).await);
        }
        nodes
    }
}

// ---------------------------------------------------------------------------------------
// Clients

/// What one bounded receive gave.
enum Got {
    Frame(ServerFrame),
    Closed,
    Timeout,
}

/// A logged-in client of one node that keeps every frame it receives.
struct Client {
    /// The account's name (always registered in lower case here).
    name: String,
    /// The node it is connected to.
    node: String,
    conn: Connection,
    /// Every frame received, with its arrival time, in order.
    seen: Vec<(Instant, ServerFrame)>,
    /// Frames received but not yet taken by [`Client::until`].
    pending: VecDeque<ServerFrame>,
    /// Whether the connection has ended.
    closed: bool,
    /// Request ids made so far (`r1`, `r2`, …).
    requests: u64,
}

impl Client {
    /// Connects to `node` and registers `name`, or logs it in, past the lobby welcome.
    async fn open(node: &Node, name: &str, register: bool) -> Client {
        let (mut conn, _hello) =
            tokio::time::timeout(WAIT, Connection::connect(&node.addr.to_string()))
                .await
                .unwrap_or_else(|_| panic!("{name}: connect to node {} in time", node.id))
                .unwrap_or_else(|e| panic!("{name}: connect to node {}: {e}", node.id));
        tokio::time::timeout(WAIT, conn.login(name, common::PASSWORD, register))
            .await
            .unwrap_or_else(|_| panic!("{name}: log in on node {} in time", node.id))
            .unwrap_or_else(|e| {
                panic!(
                    "{name}: log in on node {} (register: {register}): {e}",
                    node.id
                )
            });
        let mut client = Client {
            name: name.to_string(),
            node: node.id.clone(),
            conn,
            seen: Vec::new(),
            pending: VecDeque::new(),
            closed: false,
            requests: 0,
        };
        client
            .until(
                "the lobby joined",
                |f| matches!(f, ServerFrame::Joined { id: None, room, .. } if room == "lobby"),
            )
            .await;
        client.room_history("lobby", None).await;
        client
    }

    async fn register(node: &Node, name: &str) -> Client {
        Client::open(node, name, true).await
    }

    async fn login(node: &Node, name: &str) -> Client {
        Client::open(node, name, false).await
    }

    /// "name@node", for messages.
    fn label(&self) -> String {
        format!("{}@{}", self.name, self.node)
    }

    fn next_id(&mut self) -> FrameId {
        self.requests += 1;
        FrameId::Str(format!("r{}", self.requests))
    }

    /// Sends a frame; false when the connection is gone.
    async fn try_send(&mut self, frame: ClientFrame) -> bool {
        if self.closed {
            return false;
        }
        if self.conn.send(&frame).await.is_err() {
            self.closed = true;
        }
        !self.closed
    }

    async fn send(&mut self, frame: ClientFrame) {
        let what = format!("{frame:?}");
        assert!(
            self.try_send(frame).await,
            "{}: connection closed, cannot send {what}",
            self.label()
        );
    }

    /// The next frame before `deadline`, kept in `seen` and `pending`. Server pings are
    /// answered on the way.
    async fn recv_until(&mut self, deadline: Instant) -> Got {
        if self.closed {
            return Got::Closed;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.conn.recv()).await {
            Err(_) => Got::Timeout,
            Ok(Ok(Some(frame))) => {
                if let ServerFrame::Ping { id } = &frame {
                    let id = id.clone();
                    let _ = self.try_send(ClientFrame::Pong { id }).await;
                }
                self.seen.push((Instant::now(), frame.clone()));
                self.pending.push_back(frame.clone());
                Got::Frame(frame)
            }
            Ok(Ok(None) | Err(_)) => {
                self.closed = true;
                Got::Closed
            }
        }
    }

    /// The last few frames received, for failure messages.
    fn recent(&self) -> String {
        let from = self.seen.len().saturating_sub(15);
        self.seen[from..]
            .iter()
            .map(|(_, f)| format!("\n    {f:?}"))
            .collect()
    }

    /// Takes the first frame matching `pred`, from those received but not yet taken or
    /// else from the connection, within [`WAIT`].
    async fn until(&mut self, what: &str, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        self.until_within(WAIT, what, pred).await
    }

    async fn until_within(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&ServerFrame) -> bool,
    ) -> ServerFrame {
        match self.find_within(limit, &pred).await {
            Ok(frame) => frame,
            Err(why) => panic!(
                "{}: {why} while waiting for {what} (within {limit:?}); last frames:{}",
                self.label(),
                self.recent()
            ),
        }
    }

    /// Like [`Client::until_within`], but says why nothing came instead of failing.
    async fn find_within(
        &mut self,
        limit: Duration,
        pred: &impl Fn(&ServerFrame) -> bool,
    ) -> Result<ServerFrame, &'static str> {
        if let Some(at) = self.pending.iter().position(pred) {
            return Ok(self.pending.remove(at).expect("a pending frame"));
        }
        let deadline = Instant::now() + limit;
        for _ in 0..1_000_000 {
            match self.recv_until(deadline).await {
                Got::Frame(frame) if pred(&frame) => {
                    self.pending.pop_back();
                    return Ok(frame);
                }
                Got::Frame(_) => {}
                Got::Closed => return Err("the connection closed"),
                Got::Timeout => return Err("nothing matching came"),
            }
        }
        Err("too many frames")
    }

    /// Collects the `history` chunks with `id` for `room`, up to the last.
    async fn room_history(&mut self, room: &str, id: Option<FrameId>) -> Vec<HistoryEntry> {
        let mut messages = Vec::new();
        for _ in 0..1000 {
            let chunk = self
                .until(&format!("history of #{room} (id {id:?})"), |f| {
                    matches!(f, ServerFrame::History { id: got, room: Some(r), .. } if *got == id && r == room)
                })
                .await;
            let ServerFrame::History {
                messages: more,
                last,
                ..
            } = chunk
            else {
                unreachable!("matched a history frame")
            };
            messages.extend(more);
            if last {
                return messages;
            }
        }
        panic!("{}: no last history chunk for #{room}", self.label());
    }

    /// Joins `room`: returns the members in `joined` and the history sent after it.
    async fn join(&mut self, room: &str) -> (Vec<String>, Vec<HistoryEntry>) {
        let id = self.next_id();
        self.send(ClientFrame::Join {
            id: Some(id.clone()),
            room: room.to_string(),
        })
        .await;
        let joined = self
            .until(&format!("joined #{room}"), |f| {
                matches!(f, ServerFrame::Joined { id: Some(got), .. } if *got == id)
                    || matches!(f, ServerFrame::Error { id: Some(got), .. } if *got == id)
            })
            .await;
        let ServerFrame::Joined {
            members,
            room: canonical,
            ..
        } = joined
        else {
            panic!("{}: join {room} refused: {joined:?}", self.label());
        };
        let history = self.room_history(&canonical, None).await;
        (members, history)
    }

    /// The members of `room`, as `who` on this client's node says.
    async fn who(&mut self, room: &str) -> BTreeSet<String> {
        let id = self.next_id();
        self.send(ClientFrame::Who {
            id: Some(id.clone()),
            room: room.to_string(),
        })
        .await;
        match self
            .until(
                &format!("who #{room}"),
                |f| matches!(f, ServerFrame::Who { id: Some(got), .. } if *got == id),
            )
            .await
        {
            ServerFrame::Who { users, .. } => users.into_iter().collect(),
            _ => unreachable!("matched a who frame"),
        }
    }

    /// Who is online, as `list` on this client's node says.
    async fn list(&mut self) -> BTreeSet<String> {
        let id = self.next_id();
        self.send(ClientFrame::List {
            id: Some(id.clone()),
        })
        .await;
        match self
            .until(
                "list",
                |f| matches!(f, ServerFrame::List { id: Some(got), .. } if *got == id),
            )
            .await
        {
            ServerFrame::List { users, .. } => users.into_iter().collect(),
            _ => unreachable!("matched a list frame"),
        }
    }

    /// Asks `who` (or `list`, when `room` is `None`) until the answer is `want`, for at
    /// most `limit`; fails with the last answer.
    async fn await_members(&mut self, room: Option<&str>, want: &[&str], limit: Duration) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + limit;
        loop {
            let got = match room {
                Some(room) => self.who(room).await,
                None => self.list().await,
            };
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {} answers {got:?} after {limit:?}, expected {want:?}",
                    self.label(),
                    room.map_or("list".to_string(), |r| format!("who #{r}"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The whole stored history of `room`, oldest first, paging back 200 at a time.
    async fn full_history(&mut self, room: &str) -> Vec<HistoryEntry> {
        let mut all: Vec<HistoryEntry> = Vec::new();
        let mut before = None;
        for _ in 0..100 {
            let id = self.next_id();
            self.send(ClientFrame::History {
                id: Some(id.clone()),
                room: Some(room.to_string()),
                with: None,
                before,
                limit: Some(200),
            })
            .await;
            let page = self.room_history(room, Some(id)).await;
            let full = page.len() == 200;
            before = page.iter().map(|m| m.msg_id).min();
            all.splice(0..0, page);
            if !full || before.is_none() {
                return all;
            }
        }
        panic!("{}: history of #{room} has no end", self.label());
    }

    /// The `public` messages of `room` received so far, in arrival order.
    fn publics(&self, room: &str) -> Vec<(u64, String, String)> {
        self.seen
            .iter()
            .filter_map(|(_, f)| match f {
                ServerFrame::Public {
                    msg_id,
                    room: r,
                    from,
                    text,
                    ..
                } if r == room => Some((*msg_id, from.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    /// How many `private` frames with `msg_id` arrived (late or not).
    fn privates_with(&self, msg_id: u64) -> Vec<ServerFrame> {
        self.seen
            .iter()
            .filter(|(_, f)| matches!(f, ServerFrame::Private { msg_id: m, .. } if *m == msg_id))
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Waits for a `presence` about `user` in `room`.
    async fn await_presence(
        &mut self,
        room: &str,
        user: &str,
        event: PresenceEvent,
    ) -> ServerFrame {
        self.until(&format!("presence {event:?} of {user} in #{room}"), |f| {
            matches!(f, ServerFrame::Presence { room: r, user: u, event: e, .. }
                if r == room && u == user && *e == event)
        })
        .await
    }

    /// Sends a `private` with an id and returns the reply (`ok`, `queued` or `error`)
    /// and the msg_id of the echo, if one came.
    async fn private(&mut self, to: &str, text: &str) -> (ServerFrame, Option<u64>) {
        let id = self.next_id();
        self.send(ClientFrame::Private {
            id: Some(id.clone()),
            to: to.to_string(),
            text: text.to_string(),
            client_id: None,
        })
        .await;
        let reply = self
            .until(&format!("the answer to a private to {to}"), |f| {
                replies_to(f, &id)
            })
            .await;
        let echo = self.seen.iter().rev().find_map(|(_, f)| match f {
            ServerFrame::Private {
                msg_id,
                to: t,
                text: x,
                ..
            } if t == to && x == text => Some(*msg_id),
            _ => None,
        });
        (reply, echo)
    }
}

/// Whether `f` is the `ok`, `queued` or `error` answering request `id`.
fn replies_to(f: &ServerFrame, id: &FrameId) -> bool {
    match f {
        ServerFrame::Ok { id: got } => got == id,
        ServerFrame::Queued { id: Some(got), .. } | ServerFrame::Error { id: Some(got), .. } => {
            got == id
        }
        _ => false,
    }
}

/// The wire name of an error frame's code ("unavailable", …), or `None` for others.
fn error_code(f: &ServerFrame) -> Option<&'static str> {
    match f {
        ServerFrame::Error { code, .. } => Some(code.as_str()),
        _ => None,
    }
}

/// Registers each `(node index, name)` in order; after each registration, waits until
/// every earlier user saw the newcomer join the lobby, wherever they are.
async fn register_all(nodes: &[Node], who: &[(usize, &str)]) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for &(at, name) in who {
        let client = Client::register(&nodes[at], name).await;
        for earlier in &mut clients {
            earlier
                .await_presence("lobby", name, PresenceEvent::Join)
                .await;
        }
        clients.push(client);
    }
    clients
}

/// Has every client join `room`, one after the other; each waits until every earlier
/// member saw the join. Returns the member list the last one was given.
async fn join_all(clients: &mut [Client], room: &str) -> Vec<String> {
    let mut members = Vec::new();
    for i in 0..clients.len() {
        let (joined_members, _) = clients[i].join(room).await;
        members = joined_members;
        let name = clients[i].name.clone();
        let canonical = room.trim_start_matches('#').to_lowercase();
        for earlier in &mut clients[..i] {
            earlier
                .await_presence(&canonical, &name, PresenceEvent::Join)
                .await;
        }
    }
    members
}

// ---------------------------------------------------------------------------------------
// 1. Three nodes act as one server

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

/// One message a load sender sent.
#[derive(Debug, Clone)]
struct Sent {
    text: String,
    /// When its `ok` arrived; `None` if it got none.
    acked: Option<Instant>,
    /// The error code it got instead, if any.
    error: Option<&'static str>,
}

/// Sends numbered messages to `room`, each with an id, waiting for each answer (at most
/// [`WAIT`]) and pausing `pause` between them, until `stop` or until the connection
/// ends. Keeps receiving all the while.
fn load_sender(
    mut c: Client,
    room: &str,
    pause: Duration,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Client, Vec<Sent>)> {
    let room = room.to_string();
    tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 1..=100_000u64 {
            if *stop.borrow() || c.closed {
                break;
            }
            let text = format!("{} {i}", c.name);
            let id = FrameId::Num(i);
            if !c
                .try_send(ClientFrame::Public {
                    id: Some(id.clone()),
                    room: Some(room.clone()),
                    text: text.clone(),
                    client_id: None,
                })
                .await
            {
                break;
            }
            let answer = c.find_within(WAIT, &|f| replies_to(f, &id)).await;
            let (acked, error) = match &answer {
                Ok(ServerFrame::Ok { .. }) => (Some(Instant::now()), None),
                Ok(other) => (None, error_code(other)),
                Err(_) => (None, None),
            };
            sent.push(Sent { text, acked, error });
            if answer.is_err() && c.closed {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        (c, sent)
    })
}

/// Receives until `stop` (or until the connection ends).
fn listener(mut c: Client, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Got::Closed = c
                .recv_until(Instant::now() + Duration::from_millis(100))
                .await
            {
                break;
            }
        }
        c
    })
}

/// Receives until `c` has every text of `want` among its `public`s of `room`, or until
/// `deadline`; returns the texts still missing.
async fn await_texts(
    c: &mut Client,
    room: &str,
    want: &HashSet<String>,
    deadline: Instant,
) -> Vec<String> {
    loop {
        let have: HashSet<String> = c.publics(room).into_iter().map(|m| m.2).collect();
        let mut missing: Vec<String> = want.difference(&have).cloned().collect();
        if missing.is_empty() {
            return missing;
        }
        if let Got::Closed | Got::Timeout = c.recv_until(deadline).await {
            missing.sort();
            return missing;
        }
    }
}

/// The `public`s of `room` that `c` received more than once (by msg_id).
fn duplicates(c: &Client, room: &str) -> Vec<(u64, String)> {
    let mut count: HashMap<u64, (usize, String)> = HashMap::new();
    for (id, _, text) in c.publics(room) {
        count.entry(id).or_insert((0, text)).0 += 1;
    }
    let mut dups: Vec<(u64, String)> = count
        .into_iter()
        .filter(|(_, (n, _))| *n > 1)
        .map(|(id, (_, text))| (id, text))
        .collect();
    dups.sort();
    dups
}

/// Shortens a list for a failure message.
fn some<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<&T> = items.iter().take(10).collect();
    if items.len() > shown.len() {
        format!("{shown:?} and {} more", items.len() - shown.len())
    } else {
        format!("{shown:?}")
    }
}

// ---------------------------------------------------------------------------------------
// 1b. Joining quiet rooms on another node

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
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for c in clients.drain(..) {
        if c.name.ends_with('1') {
            senders.push(load_sender(
                c,
                "load",
                Duration::from_millis(10),
                stopped.clone(),
            ));
        } else {
            listeners.push(listener(c, stopped.clone()));
        }
    }
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
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for c in clients.drain(..) {
        if c.name.ends_with('1') {
            senders.push(load_sender(
                c,
                "chat",
                Duration::from_millis(20),
                stopped.clone(),
            ));
        } else {
            listeners.push(listener(c, stopped.clone()));
        }
    }
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
