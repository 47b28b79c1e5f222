//! Helpers of the cluster tests (`tests/cluster.rs`): each test's engines, and a
//! JSON-protocol client that records what it receives.
#![allow(dead_code)]

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use natter_client::Connection;
use natter_proto::{ClientFrame, FrameId, HistoryEntry, PresenceEvent, ServerFrame};

use crate::WAIT;
use crate::node::Node;
use crate::postgres::TestPostgres;
use crate::redis::TestRedis;

// ---------------------------------------------------------------------------------------
// Engines and nodes

/// One test's PostgreSQL server, database and Redis server.
pub struct Engines {
    pub pg: TestPostgres,
    pub redis: TestRedis,
    /// The URL of this test's (fresh) database.
    pub db: String,
}

impl Engines {
    /// Starts both engines, or returns `None` (the test skips) when one is missing and
    /// not required.
    pub async fn start() -> Option<Engines> {
        let redis = TestRedis::start().await?;
        let pg = TestPostgres::start().await?;
        let db = pg.fresh_database().await;
        Some(Engines { pg, redis, db })
    }

    /// Starts node `id` on these engines.
    pub async fn node(&self, id: &str) -> Node {
        Node::spawn(id, &self.db, &self.redis.url()).await
    }

    /// Starts nodes `n1` … `n<count>`, one after the other.
    pub async fn nodes(&self, count: usize) -> Vec<Node> {
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
pub enum Got {
    Frame(ServerFrame),
    Closed,
    Timeout,
}

/// A logged-in client of one node that keeps every frame it receives.
pub struct Client {
    /// The account's name (always registered in lower case here).
    pub name: String,
    /// The node it is connected to.
    pub node: String,
    pub conn: Connection,
    /// Every frame received, with its arrival time, in order.
    pub seen: Vec<(Instant, ServerFrame)>,
    /// Frames received but not yet taken by [`Client::until`].
    pub pending: VecDeque<ServerFrame>,
    /// Whether the connection has ended.
    pub closed: bool,
    /// Request ids made so far (`r1`, `r2`, …).
    pub requests: u64,
}

impl Client {
    /// Connects to `node` and registers `name`, or logs it in, past the lobby welcome.
    pub async fn open(node: &Node, name: &str, register: bool) -> Client {
        let (mut conn, _hello) =
            tokio::time::timeout(WAIT, Connection::connect(&node.addr.to_string()))
                .await
                .unwrap_or_else(|_| panic!("{name}: connect to node {} in time", node.id))
                .unwrap_or_else(|e| panic!("{name}: connect to node {}: {e}", node.id));
        tokio::time::timeout(WAIT, conn.login(name, crate::common::PASSWORD, register))
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

    pub async fn register(node: &Node, name: &str) -> Client {
        Client::open(node, name, true).await
    }

    pub async fn login(node: &Node, name: &str) -> Client {
        Client::open(node, name, false).await
    }

    /// "name@node", for messages.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.node)
    }

    pub fn next_id(&mut self) -> FrameId {
        self.requests += 1;
        FrameId::Str(format!("r{}", self.requests))
    }

    /// Sends a frame; false when the connection is gone.
    pub async fn try_send(&mut self, frame: ClientFrame) -> bool {
        if self.closed {
            return false;
        }
        if self.conn.send(&frame).await.is_err() {
            self.closed = true;
        }
        !self.closed
    }

    pub async fn send(&mut self, frame: ClientFrame) {
        let what = format!("{frame:?}");
        assert!(
            self.try_send(frame).await,
            "{}: connection closed, cannot send {what}",
            self.label()
        );
    }

    /// The next frame before `deadline`, kept in `seen` and `pending`. Server pings are
    /// answered on the way.
    pub async fn recv_until(&mut self, deadline: Instant) -> Got {
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
    pub fn recent(&self) -> String {
        let from = self.seen.len().saturating_sub(15);
        self.seen[from..]
            .iter()
            .map(|(_, f)| format!("\n    {f:?}"))
            .collect()
    }

    /// Takes the first frame matching `pred`, from those received but not yet taken or
    /// else from the connection, within [`WAIT`].
    pub async fn until(&mut self, what: &str, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        self.until_within(WAIT, what, pred).await
    }

    pub async fn until_within(
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
    pub async fn find_within(
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
    pub async fn room_history(&mut self, room: &str, id: Option<FrameId>) -> Vec<HistoryEntry> {
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
    pub async fn join(&mut self, room: &str) -> (Vec<String>, Vec<HistoryEntry>) {
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
    pub async fn who(&mut self, room: &str) -> BTreeSet<String> {
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
    pub async fn list(&mut self) -> BTreeSet<String> {
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
    pub async fn await_members(&mut self, room: Option<&str>, want: &[&str], limit: Duration) {
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
    pub async fn full_history(&mut self, room: &str) -> Vec<HistoryEntry> {
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
    pub fn publics(&self, room: &str) -> Vec<(u64, String, String)> {
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
    pub fn privates_with(&self, msg_id: u64) -> Vec<ServerFrame> {
        self.seen
            .iter()
            .filter(|(_, f)| matches!(f, ServerFrame::Private { msg_id: m, .. } if *m == msg_id))
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Waits for a `presence` about `user` in `room`.
    pub async fn await_presence(
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
    pub async fn private(&mut self, to: &str, text: &str) -> (ServerFrame, Option<u64>) {
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
pub fn replies_to(f: &ServerFrame, id: &FrameId) -> bool {
    match f {
        ServerFrame::Ok { id: got } => got == id,
        ServerFrame::Queued { id: Some(got), .. } | ServerFrame::Error { id: Some(got), .. } => {
            got == id
        }
        _ => false,
    }
}

/// The wire name of an error frame's code ("unavailable", …), or `None` for others.
pub fn error_code(f: &ServerFrame) -> Option<&'static str> {
    match f {
        ServerFrame::Error { code, .. } => Some(code.as_str()),
        _ => None,
    }
}

/// Registers each `(node index, name)` in order; after each registration, waits until
/// every earlier user saw the newcomer join the lobby, wherever they are.
pub async fn register_all(nodes: &[Node], who: &[(usize, &str)]) -> Vec<Client> {
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
pub async fn join_all(clients: &mut [Client], room: &str) -> Vec<String> {
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
