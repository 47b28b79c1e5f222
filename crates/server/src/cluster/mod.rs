//! A node of a cluster: the [`Bus`] over this node's hub and the other nodes, reached
//! through Redis pub/sub.
//!
//! PostgreSQL (the shared [`Store`]) is the single source of truth and order: a message
//! is stored, numbered in its room and acknowledged before anyone sees it. Redis only
//! carries what happened to the other nodes, at most once: every call that changes
//! something (a room message, a private message, a join, a kick, ...) is applied to the
//! local hub at once and published as one [`wire::Envelope`]; every node applies the
//! others' envelopes to its own hub and keeps a [`remote::Remote`] view of who is where.
//! What pub/sub loses is made good without it:
//!
//! - room messages carry their per-room sequence; the [`sequencer`] delivers each room
//!   in order, and a gap (or a Redis reconnect, or the periodic check of each local
//!   room's latest sequence) is filled from the store ([`fill`]);
//! - presence: a node that sees another's envelope count skip asks it for a snapshot;
//! - private messages for someone only reachable through a Redis that is down are
//!   stored as pending, and every node delivers its users' pending messages when its
//!   link comes back.
//!
//! Each node also keeps a heartbeat key with a short TTL ([`link`]); a node silent for
//! [`NODE_SILENCE`] whose key has expired is lost: its users leave every room with the
//! reason "node lost".

pub mod fill;
pub mod link;
mod receive;
pub mod remote;
pub mod sequencer;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use natter_proto::{RoomInfo, ServerFrame, name_key};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::bus::{Bus, LocalBus};
use crate::delivery::Delivery;
use crate::hub::{Hub, Members, PrivateError, RoomError, SessionHandle, SessionId};
use crate::monitor::Monitor;
use crate::store::Store;
use crate::transcript::Event;
use crate::transport_kind::PerTransport;
use remote::{Change, Remote};
use sequencer::Sequencer;
use wire::{Body, Envelope, RoomMessage};

/// How long a node may stay silent before its heartbeat key is checked.
pub const NODE_SILENCE: Duration = Duration::from_secs(3);

/// Envelopes waiting to be published; beyond, new ones are dropped (the receivers
/// notice the skipped counts and recover).
const OUTGOING: usize = 65_536;

/// Reason given to members when a node's users disappear with it.
pub const NODE_LOST: &str = "node lost";

/// Publishing side: the envelope count and the queue to the link, under one lock so
/// that counts go out in order.
struct Outgoing {
    /// Envelopes numbered so far.
    n: u64,
    /// To the link task.
    tx: mpsc::Sender<Vec<u8>>,
}

/// The cluster's bus on one node.
pub struct ClusterBus {
    /// This node's hub and mutes.
    local: LocalBus,
    /// This node's id.
    node: String,
    /// The other nodes.
    remote: Mutex<Remote>,
    /// Room order on this node.
    seq: Mutex<Sequencer>,
    /// Envelopes to publish.
    out: Mutex<Outgoing>,
    /// Whether the link to Redis is up.
    up: AtomicBool,
    /// The shared store (gap filling, pending messages).
    store: Arc<dyn Store>,
    /// The consoles' live feed on this node.
    monitor: Monitor,
    /// Wakes the gap filler.
    gap: Notify,
    /// This bus, for the tasks it starts.
    me: Weak<ClusterBus>,
}

/// Locks `m`, recovering from a panic elsewhere (as the hub does).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClusterBus {
    /// A bus for node `node` over `local`, storing in `store`, feeding `monitor`; the
    /// receiver is for [`link::run`].
    pub fn new(
        node: String,
        local: LocalBus,
        store: Arc<dyn Store>,
        monitor: Monitor,
    ) -> (Arc<ClusterBus>, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(OUTGOING);
        let bus = Arc::new_cyclic(|me| ClusterBus {
            local,
            node,
            remote: Mutex::default(),
            seq: Mutex::default(),
            out: Mutex::new(Outgoing { n: 0, tx }),
            up: AtomicBool::new(false),
            store,
            monitor,
            gap: Notify::new(),
            me: me.clone(),
        });
        (bus, rx)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn hub(&self) -> &Hub {
        self.local.hub()
    }

    /// Whether the link to Redis is up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Publishes `body` to the other nodes (dropped when the queue is full).
    fn publish(&self, body: Body) {
        let mut out = lock(&self.out);
        out.n += 1;
        let env = Envelope {
            node: self.node.clone(),
            n: out.n,
            body,
        };
        if out.tx.try_send(wire::encode(&env)).is_err() {
            tracing::debug!("cluster queue full; an envelope was dropped");
        }
    }

    /// Everyone online here, as a snapshot for the others.
    fn snapshot(&self) -> Body {
        Body::Snapshot {
            users: self
                .hub()
                .snapshot()
                .into_iter()
                .map(|(name, per, rooms)| wire::SnapshotUser {
                    name,
                    sessions: per.counts(),
                    rooms,
                })
                .collect(),
        }
    }

    /// The link came up: say hello (everyone answers with a snapshot), send ours, and
    /// forget how long others were silent (we could not hear them).
    pub fn link_up(&self) {
        self.up.store(true, Ordering::Relaxed);
        let now = Instant::now();
        for view in lock(&self.remote).nodes.values_mut() {
            view.last_seen = now;
        }
        self.publish(Body::Hello);
        self.publish(self.snapshot());
    }

    /// The link went down.
    pub fn link_down(&self) {
        self.up.store(false, Ordering::Relaxed);
    }

    /// The node is leaving: says goodbye (best effort).
    pub fn goodbye(&self) {
        self.publish(Body::Bye);
    }

    /// Nodes silent for longer than [`NODE_SILENCE`].
    pub fn silent_nodes(&self) -> Vec<String> {
        let Some(before) = Instant::now().checked_sub(NODE_SILENCE) else {
            return Vec::new();
        };
        lock(&self.remote).silent_since(before)
    }

    /// `node` is gone: its users leave every room they were in only there.
    pub fn node_lost(&self, node: &str, reason: &str) {
        let changes = lock(&self.remote).remove(node);
        if !changes.is_empty() {
            tracing::warn!(node, reason, "cluster node gone; its users left");
        }
        self.announce(changes, reason);
    }

    /// Announces membership changes seen on other nodes to the members here, where the
    /// user's membership changed cluster-wide.
    fn announce(&self, changes: Vec<Change>, reason: &str) {
        for c in changes {
            let key = name_key(&c.user);
            let elsewhere =
                self.hub().is_member(&c.room, &key) || lock(&self.remote).is_member(&c.room, &key);
            if c.joined || !elsewhere {
                self.hub()
                    .announce(&c.room, &c.user, c.joined, Some(reason), None);
            }
        }
    }

    /// Room messages from another node (or the store): delivered here in order.
    pub fn take_room(&self, room: &str, msgs: Vec<RoomMessage>) {
        let hub = self.hub();
        let mut seq = lock(&self.seq);
        if !hub.has_room(room) {
            seq.forget(room);
            return;
        }
        let frames = msgs
            .into_iter()
            .map(|m| {
                (
                    m.seq,
                    ServerFrame::Public {
                        msg_id: m.id,
                        room: room.to_string(),
                        from: m.from,
                        text: m.text,
                        ts: m.ts,
                    },
                )
            })
            .collect();
        let accepted = seq.accept(room, frames, Instant::now());
        if !accepted.deliver.is_empty() {
            hub.deliver_to_room(room, &Delivery::batch(accepted.deliver));
        }
        drop(seq);
        if accepted.gap {
            self.gap.notify_one();
        }
    }

    /// Sets where `room` starts here when nothing of it was seen yet (a first member
    /// joined): the next message owed follows `latest`.
    pub fn start_room(&self, room: &str, latest: u64) {
        lock(&self.seq).start_at(room, latest + 1);
    }

    /// Whether this node knows where `room` stands.
    pub fn has_position(&self, room: &str) -> bool {
        lock(&self.seq).knows(room)
    }

    /// Rooms with gaps older than `grace`, and the last sequence delivered in each.
    pub fn overdue(&self, grace: Duration) -> Vec<(String, u64)> {
        lock(&self.seq).overdue(Instant::now(), grace)
    }

    /// Every room with members here and the last sequence delivered in it.
    pub fn positions(&self) -> Vec<(String, u64)> {
        lock(&self.seq).positions()
    }

    /// Waits until a gap opens.
    pub async fn gap_opened(&self) {
        self.gap.notified().await
    }

    /// The store the cluster shares.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Everyone online on this node (for delivering their pending messages).
    pub fn local_users(&self) -> Vec<String> {
        self.hub().online_users()
    }

    /// Forgets a room's position once it has no members here.
    fn maybe_forget(&self, room: &str) {
        if !self.hub().has_room(room) {
            lock(&self.seq).forget(room);
        }
    }

    /// `members` here merged with the other nodes' members of `room`.
    fn merged_members(&self, room: &str, local: Option<Members>) -> Option<Members> {
        let remote = lock(&self.remote).room_members(room);
        if remote.is_empty() {
            return local;
        }
        let mut all: BTreeMap<String, String> = self.hub().room_members(room).into_iter().collect();
        for (k, name) in remote {
            all.entry(k).or_insert(name);
        }
        Some(Members {
            names: all
                .values()
                .take(natter_proto::MAX_NAMES)
                .cloned()
                .collect(),
            total: all.len(),
        })
    }
}

impl Bus for ClusterBus {
    fn connect(&self, user: &str, handle: SessionHandle) -> SessionId {
        let transport = handle.transport();
        let id = self.local.connect(user, handle);
        self.publish(Body::Connect {
            user: user.to_string(),
            transport: transport.index(),
        });
        id
    }

    fn disconnect(&self, id: SessionId, reason: &str, message: Option<&str>) -> Vec<String> {
        let who = self.hub().session_user(id);
        let left = self.local.disconnect(id, reason, message);
        if let Some((user, transport)) = who {
            for room in &left {
                self.publish(Body::Part {
                    user: user.clone(),
                    room: room.clone(),
                    reason: reason.to_string(),
                    message: message.map(str::to_string),
                });
                self.maybe_forget(room);
            }
            self.publish(Body::Disconnect {
                user,
                transport: transport.index(),
            });
        }
        left
    }

    fn join_room(&self, id: SessionId, room: &str) -> Result<(Members, bool), RoomError> {
        let (members, first) = self.local.join_room(id, room)?;
        if first && let Some((user, _)) = self.hub().session_user(id) {
            self.publish(Body::Join {
                user,
                room: room.to_string(),
            });
        }
        let members = self.merged_members(room, Some(members)).unwrap_or_default();
        Ok((members, first))
    }

    fn part_room(
        &self,
        id: SessionId,
        room: &str,
        reason: &str,
        message: Option<&str>,
    ) -> Result<bool, RoomError> {
        let left = self.local.part_room(id, room, reason, message)?;
        if left {
            if let Some((user, _)) = self.hub().session_user(id) {
                self.publish(Body::Part {
                    user,
                    room: room.to_string(),
                    reason: reason.to_string(),
                    message: message.map(str::to_string),
                });
            }
            self.maybe_forget(room);
        }
        Ok(left)
    }

    fn joined<'a>(&'a self, room: &'a str) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(fill::start_room(self, room))
    }

    fn in_room(&self, id: SessionId, room: &str) -> bool {
        self.local.in_room(id, room)
    }

    fn publish_room(
        &self,
        from: SessionId,
        room: &str,
        seqs: &[u64],
        messages: &Delivery,
    ) -> Result<usize, RoomError> {
        if !self.local.in_room(from, room) {
            return Err(RoomError::NotInRoom);
        }
        let msgs: Vec<RoomMessage> = messages
            .frames()
            .iter()
            .zip(seqs)
            .filter_map(|(f, &seq)| match f {
                ServerFrame::Public {
                    msg_id,
                    from,
                    text,
                    ts,
                    ..
                } => Some(RoomMessage {
                    seq,
                    id: *msg_id,
                    from: from.clone(),
                    text: text.clone(),
                    ts: *ts,
                }),
                _ => None,
            })
            .collect();
        let hub = self.hub();
        let mut seq = lock(&self.seq);
        let reached = if seqs.len() == messages.len() && seq.fast_path(room, seqs) {
            hub.deliver_to_room(room, messages)
        } else {
            let frames = messages.frames().iter().cloned();
            let accepted = seq.accept(
                room,
                seqs.iter().copied().zip(frames).collect(),
                Instant::now(),
            );
            let n = if accepted.deliver.is_empty() {
                0
            } else {
                hub.deliver_to_room(room, &Delivery::batch(accepted.deliver))
            };
            if accepted.gap {
                self.gap.notify_one();
            }
            n
        };
        drop(seq);
        self.publish(Body::Room {
            room: room.to_string(),
            msgs,
        });
        Ok(reached)
    }

    fn send_private(
        &self,
        from: &str,
        to: &str,
        frame: &dyn Fn(&str) -> ServerFrame,
    ) -> Result<usize, PrivateError> {
        let (to_remote, from_remote, remote_name) = if self.is_up() {
            let r = lock(&self.remote);
            (r.sessions_of(to), r.sessions_of(from), r.online_name(to))
        } else {
            (0, 0, None)
        };
        let local = self.local.send_private(from, to, frame);
        let display = match (&local, remote_name) {
            (_, Some(name)) => name,
            (Ok(_), None) => self.local.online_name(to).unwrap_or_else(|| to.to_string()),
            (Err(_), None) => return local,
        };
        if local.is_err() && name_key(from) != name_key(to) {
            // Nobody here to deliver to, but the sender's own sessions here see it.
            self.hub().send_to_user(from, &frame(&display));
        }
        if to_remote + from_remote > 0 {
            self.publish(Body::Private {
                from: from.to_string(),
                to: display.clone(),
                frame: frame(&display),
            });
        }
        Ok(local.unwrap_or(0) + to_remote)
    }

    fn delivers_here(&self, user: &str) -> bool {
        self.local.online_name(user).is_some()
    }

    fn send_to_user(&self, user: &str, frame: &ServerFrame) -> bool {
        let here = self.local.send_to_user(user, frame);
        let there = self.is_up() && lock(&self.remote).sessions_of(user) > 0;
        // Published even when no session elsewhere is known yet: one may be logging in
        // on another node right now (a late private message must reach it too).
        if self.is_up() {
            self.publish(Body::ToUser {
                user: user.to_string(),
                frame: frame.clone(),
            });
        }
        here || there
    }

    fn send_to_room(&self, room: &str, frame: &ServerFrame) -> Option<usize> {
        let here = self.local.send_to_room(room, frame);
        let there = Some(lock(&self.remote).room_members(room).len()).filter(|n| *n > 0);
        self.publish(Body::ToRoom {
            room: room.to_string(),
            frame: frame.clone(),
        });
        match (here, there) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        }
    }

    fn broadcast(&self, frame: &ServerFrame) -> usize {
        self.publish(Body::Broadcast {
            frame: frame.clone(),
        });
        let there: usize = lock(&self.remote)
            .users()
            .values()
            .map(|(_, per)| per.total())
            .sum();
        self.local.broadcast(frame) + there
    }

    fn kick(&self, user: &str, reason: &str) -> usize {
        self.publish(Body::Kick {
            user: user.to_string(),
            reason: reason.to_string(),
        });
        self.local.kick(user, reason) + lock(&self.remote).sessions_of(user)
    }

    fn mute(&self, user: &str, duration: Duration) {
        self.publish(Body::Mute {
            user: user.to_string(),
            ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        });
        self.local.mute(user, duration);
    }

    fn unmute(&self, user: &str) -> bool {
        self.publish(Body::Unmute {
            user: user.to_string(),
        });
        self.local.unmute(user)
    }

    fn online_name(&self, user: &str) -> Option<String> {
        self.local.online_name(user).or_else(|| {
            // Someone only reachable through a Redis that is down is offline for now:
            // their private messages wait in the store.
            self.is_up()
                .then(|| lock(&self.remote).online_name(user))
                .flatten()
        })
    }

    fn rooms_of(&self, user: &str) -> Vec<String> {
        let mut rooms = self.local.rooms_of(user);
        rooms.extend(lock(&self.remote).rooms_of(user));
        rooms.sort();
        rooms.dedup();
        rooms
    }

    fn rooms_created(&self) -> HashMap<String, u64> {
        let mut created = self.local.rooms_created();
        for room in lock(&self.remote).rooms().into_keys() {
            created.entry(room).or_insert(0);
        }
        created
    }

    fn online_users(&self) -> Vec<String> {
        self.online_sessions().into_iter().map(|(n, _)| n).collect()
    }

    fn online_sessions(&self) -> Vec<(String, PerTransport)> {
        let mut all: BTreeMap<String, (String, PerTransport)> =
            lock(&self.remote).users().into_iter().collect();
        for (name, per) in self.local.online_sessions() {
            let entry = all
                .entry(name_key(&name))
                .or_insert_with(|| (name.clone(), PerTransport::default()));
            entry.0 = name;
            entry.1.add_all(&per);
        }
        all.into_values().collect()
    }

    fn rooms(&self) -> Vec<RoomInfo> {
        let mut all = lock(&self.remote).rooms();
        for info in self.local.rooms() {
            let members = all.entry(info.name.clone()).or_default();
            for (k, name) in self.hub().room_members(&info.name) {
                members.insert(k, name);
            }
        }
        let mut out: Vec<RoomInfo> = all
            .into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(name, m)| RoomInfo {
                name,
                members: u32::try_from(m.len()).unwrap_or(u32::MAX),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn who(&self, room: &str) -> Option<Members> {
        let local = self.local.who(room);
        self.merged_members(room, local).filter(|m| m.total > 0)
    }

    fn session_count(&self) -> usize {
        self.local.session_count()
    }

    fn sessions_by_transport(&self) -> PerTransport {
        self.local.sessions_by_transport()
    }

    fn flush_presence(&self) -> usize {
        self.local.flush_presence()
    }

    fn wake_due(&self, now: tokio::time::Instant) -> usize {
        self.local.wake_due(now)
    }

    fn set_closing(&self) {
        self.local.set_closing()
    }

    fn nodes_of(&self, user: &str) -> usize {
        1 + lock(&self.remote).nodes_with(user)
    }

    fn share_event(&self, event: &Event) {
        // Messages reach the other nodes anyway; they show them from there.
        if matches!(event, Event::Room { .. } | Event::Private { .. }) {
            return;
        }
        if let Some(json) = Monitor::encode(event) {
            self.publish(Body::Feed { json });
        }
    }
}
