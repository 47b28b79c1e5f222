//! What this node knows of the others: who is online on each, in which rooms, and when
//! each was last heard from. Kept from their envelopes (see [`super::wire`]); no I/O.

use std::collections::{BTreeSet, HashMap};

use natter_proto::name_key;
use tokio::time::Instant;

use super::wire::SnapshotUser;
use crate::transport_kind::{PerTransport, TransportKind};

/// One account online on another node.
#[derive(Debug, Clone)]
pub struct RemoteUser {
    /// Display name.
    pub name: String,
    /// Its sessions there, per transport.
    pub sessions: PerTransport,
    /// Rooms it is in there (canonical names).
    pub rooms: BTreeSet<String>,
}

/// Another node.
#[derive(Debug)]
pub struct NodeView {
    /// When its last envelope arrived.
    pub last_seen: Instant,
    /// The count of its last envelope.
    pub last_n: u64,
    /// Whether a snapshot was asked of it and has not come yet.
    pub asked: bool,
    /// Its users by case-folded name.
    pub users: HashMap<String, RemoteUser>,
}

/// A change of room membership seen cluster-wide, to be announced to members here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Canonical room name.
    pub room: String,
    /// Display name.
    pub user: String,
    /// Joined (true) or left.
    pub joined: bool,
}

/// Every other node's users.
#[derive(Debug, Default)]
pub struct Remote {
    /// By node id.
    pub nodes: HashMap<String, NodeView>,
}

impl Remote {
    /// Notes an envelope numbered `n` from `node`: whether it follows the last one
    /// (false: something was missed, or the node is new here, and a snapshot is due
    /// unless one was already asked for).
    pub fn heard(&mut self, node: &str, n: u64, now: Instant) -> bool {
        let view = self.nodes.entry(node.to_string()).or_insert(NodeView {
            last_seen: now,
            last_n: 0,
            asked: false,
            users: HashMap::new(),
        });
        view.last_seen = now;
        let in_order = n == view.last_n + 1;
        view.last_n = n;
        if in_order || view.asked {
            return true;
        }
        view.asked = true;
        false
    }

    /// A session of `user` logged in on `node`.
    pub fn connect(&mut self, node: &str, user: &str, transport: usize) {
        if let Some(view) = self.nodes.get_mut(node) {
            let u = view
                .users
                .entry(name_key(user))
                .or_insert_with(|| RemoteUser {
                    name: user.to_string(),
                    sessions: PerTransport::default(),
                    rooms: BTreeSet::new(),
                });
            if let Some(&kind) = TransportKind::ALL.get(transport) {
                u.sessions.add(kind, 1);
            }
        }
    }

    /// A session of `user` ended on `node`; the account is gone from there with its
    /// last session.
    pub fn disconnect(&mut self, node: &str, user: &str, transport: usize) {
        let Some(view) = self.nodes.get_mut(node) else {
            return;
        };
        let key = name_key(user);
        let Some(u) = view.users.get_mut(&key) else {
            return;
        };
        if let Some(&kind) = TransportKind::ALL.get(transport) {
            u.sessions.sub(kind, 1);
        }
        if u.sessions.total() == 0 {
            view.users.remove(&key);
        }
    }

    /// `user` joined (`joined`) or left `room` on `node`.
    pub fn member(&mut self, node: &str, user: &str, room: &str, joined: bool) {
        let Some(view) = self.nodes.get_mut(node) else {
            return;
        };
        let key = name_key(user);
        if joined {
            view.users
                .entry(key)
                .or_insert_with(|| RemoteUser {
                    name: user.to_string(),
                    sessions: PerTransport::default(),
                    rooms: BTreeSet::new(),
                })
                .rooms
                .insert(room.to_string());
        } else if let Some(u) = view.users.get_mut(&key) {
            u.rooms.remove(room);
        }
    }

    /// Replaces what is known of `node` by its snapshot; returns the memberships that
    /// changed on it (for a node known before; a new node's are all joins).
    pub fn replace(&mut self, node: &str, users: Vec<SnapshotUser>, now: Instant) -> Vec<Change> {
        let view = self.nodes.entry(node.to_string()).or_insert(NodeView {
            last_seen: now,
            last_n: 0,
            asked: false,
            users: HashMap::new(),
        });
        view.asked = false;
        let mut fresh = HashMap::new();
        for u in users {
            fresh.insert(
                name_key(&u.name),
                RemoteUser {
                    sessions: PerTransport::from_array(u.sessions),
                    rooms: u.rooms.into_iter().collect(),
                    name: u.name,
                },
            );
        }
        let old = std::mem::replace(&mut view.users, fresh);
        let mut changes = Vec::new();
        for (key, u) in &view.users {
            let before = old.get(key).map(|o| &o.rooms);
            for room in &u.rooms {
                if before.is_none_or(|b| !b.contains(room)) {
                    changes.push(Change {
                        room: room.clone(),
                        user: u.name.clone(),
                        joined: true,
                    });
                }
            }
        }
        for (key, o) in &old {
            let now_in = view.users.get(key).map(|u| &u.rooms);
            for room in &o.rooms {
                if now_in.is_none_or(|n| !n.contains(room)) {
                    changes.push(Change {
                        room: room.clone(),
                        user: o.name.clone(),
                        joined: false,
                    });
                }
            }
        }
        changes
    }

    /// Removes `node` (it said goodbye or was lost); returns its users' memberships,
    /// now all left.
    pub fn remove(&mut self, node: &str) -> Vec<Change> {
        let Some(view) = self.nodes.remove(node) else {
            return Vec::new();
        };
        view.users
            .into_values()
            .flat_map(|u| {
                u.rooms.into_iter().map(move |room| Change {
                    room,
                    user: u.name.clone(),
                    joined: false,
                })
            })
            .collect()
    }

    /// Nodes not heard from since `before`.
    pub fn silent_since(&self, before: Instant) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, v)| v.last_seen < before)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The display name of `user` if it is online on another node.
    pub fn online_name(&self, user: &str) -> Option<String> {
        let key = name_key(user);
        self.nodes
            .values()
            .find_map(|v| v.users.get(&key).map(|u| u.name.clone()))
    }

    /// Sessions of `user` on other nodes.
    pub fn sessions_of(&self, user: &str) -> usize {
        let key = name_key(user);
        self.nodes
            .values()
            .filter_map(|v| v.users.get(&key))
            .map(|u| u.sessions.total())
            .sum()
    }

    /// On how many other nodes `user` has sessions.
    pub fn nodes_with(&self, user: &str) -> usize {
        let key = name_key(user);
        self.nodes
            .values()
            .filter(|v| v.users.get(&key).is_some_and(|u| u.sessions.total() > 0))
            .count()
    }

    /// Whether `user_key` (case-folded) is in `room` on another node.
    pub fn is_member(&self, room: &str, user_key: &str) -> bool {
        self.nodes.values().any(|v| {
            v.users
                .get(user_key)
                .is_some_and(|u| u.rooms.contains(room))
        })
    }

    /// Every account on other nodes: case-folded name, display name and sessions.
    pub fn users(&self) -> HashMap<String, (String, PerTransport)> {
        let mut out: HashMap<String, (String, PerTransport)> = HashMap::new();
        for (key, u) in self.nodes.values().flat_map(|v| v.users.iter()) {
            out.entry(key.clone())
                .or_insert_with(|| (u.name.clone(), PerTransport::default()))
                .1
                .add_all(&u.sessions);
        }
        out
    }

    /// Members of every room on other nodes: room → case-folded name → display name.
    pub fn rooms(&self) -> HashMap<String, HashMap<String, String>> {
        let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
        for (key, u) in self.nodes.values().flat_map(|v| v.users.iter()) {
            for room in &u.rooms {
                out.entry(room.clone())
                    .or_default()
                    .insert(key.clone(), u.name.clone());
            }
        }
        out
    }

    /// Members of `room` on other nodes: case-folded name → display name.
    pub fn room_members(&self, room: &str) -> HashMap<String, String> {
        self.nodes
            .values()
            .flat_map(|v| v.users.iter())
            .filter(|(_, u)| u.rooms.contains(room))
            .map(|(k, u)| (k.clone(), u.name.clone()))
            .collect()
    }

    /// The rooms `user` is in on other nodes.
    pub fn rooms_of(&self, user: &str) -> Vec<String> {
        let key = name_key(user);
        self.nodes
            .values()
            .filter_map(|v| v.users.get(&key))
            .flat_map(|u| u.rooms.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, rooms: &[&str]) -> SnapshotUser {
        SnapshotUser {
            name: name.into(),
            sessions: [1, 0, 0],
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn envelopes_out_of_order_ask_for_one_snapshot() {
        let mut r = Remote::default();
        let now = Instant::now();
        assert!(!r.heard("a", 5, now), "a new node: a snapshot is due");
        assert!(r.heard("a", 6, now), "asked already");
        r.replace("a", vec![], now);
        assert!(r.heard("a", 7, now));
        assert!(!r.heard("a", 9, now), "8 was missed");
    }

    #[test]
    fn presence_follows_events_snapshots_and_node_loss() {
        let mut r = Remote::default();
        let now = Instant::now();
        r.heard("a", 1, now);
        r.heard("b", 1, now);
        r.connect("a", "Ann", 0);
        r.connect("a", "Ann", 2);
        r.member("a", "Ann", "lobby", true);
        r.replace("b", vec![snap("Bob", &["lobby", "rust"])], now);
        assert_eq!(r.online_name("ann").as_deref(), Some("Ann"));
        assert_eq!(r.sessions_of("ANN"), 2);
        assert!(r.is_member("lobby", "bob") && !r.is_member("rust", "ann"));
        assert_eq!(r.rooms()["lobby"].len(), 2);
        r.disconnect("a", "Ann", 0);
        assert_eq!(r.sessions_of("ann"), 1);
        r.disconnect("a", "Ann", 2);
        assert_eq!(r.online_name("ann"), None);
        let changes = r.replace("b", vec![snap("Bob", &["rust", "go"])], now);
        assert_eq!(
            changes,
            [
                Change {
                    room: "go".into(),
                    user: "Bob".into(),
                    joined: true
                },
                Change {
                    room: "lobby".into(),
                    user: "Bob".into(),
                    joined: false
                }
            ]
        );
        let later = now + std::time::Duration::from_secs(10);
        r.heard("a", 2, later);
        assert_eq!(r.silent_since(later), ["b".to_string()]);
        let gone = r.remove("b");
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|c| !c.joined && c.user == "Bob"));
        assert_eq!(r.online_name("bob"), None);
    }
}
