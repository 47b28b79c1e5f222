//! What nodes tell each other over Redis: one JSON [`Envelope`] per pub/sub message on
//! the cluster's channel.
//!
//! Redis delivers one connection's publishes to a subscriber in order, and each node
//! publishes through one connection, so each envelope carries its node's running count
//! `n`: a receiver that sees a count skip knows it missed something of that node (a
//! Redis reconnect, a dropped publish) and asks the node for a [`Body::Snapshot`].
//! Room messages need no such care: their per-room sequence from the store shows gaps,
//! which are filled from the store.

use natter_proto::ServerFrame;
use serde::{Deserialize, Serialize};

/// Counts of sessions per transport, in `TransportKind::ALL` order.
pub type Counts = [usize; 3];

/// One message on the cluster channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that sent it.
    pub node: String,
    /// The node's count of envelopes sent since it started: 1, 2, 3, ...
    pub n: u64,
    /// What it says.
    pub body: Body,
}

/// A room message as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomMessage {
    /// Its place in the room (from the store).
    pub seq: u64,
    /// The store's id.
    pub id: u64,
    /// Sender's display name.
    pub from: String,
    /// Text as delivered.
    pub text: String,
    /// Server time of acceptance, Unix ms.
    pub ts: u64,
}

/// One online account in a [`Body::Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotUser {
    /// Display name.
    pub name: String,
    /// Sessions on the node, per transport.
    pub sessions: Counts,
    /// Rooms any of those sessions is in.
    pub rooms: Vec<String>,
}

/// What a node says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Body {
    /// The node (re)joined the channel: everyone answers with a snapshot.
    Hello,
    /// Still alive (about once a second).
    Heartbeat,
    /// Asks `to` for a snapshot (the asker missed some of its envelopes).
    SnapshotPlease {
        /// The node asked.
        to: String,
    },
    /// Everyone online on the node, replacing what others knew of it.
    Snapshot {
        /// The accounts.
        users: Vec<SnapshotUser>,
    },
    /// The node is shutting down: its users are gone.
    Bye,
    /// A session of `user` logged in on the node.
    Connect {
        /// Display name.
        user: String,
        /// Index in `TransportKind::ALL`.
        transport: usize,
    },
    /// A session of `user` ended on the node.
    Disconnect {
        /// Display name.
        user: String,
        /// Index in `TransportKind::ALL`.
        transport: usize,
    },
    /// `user` joined `room` on the node (their first session there on that node).
    Join {
        /// Display name.
        user: String,
        /// Canonical room name.
        room: String,
    },
    /// `user` left `room` on the node (their last session there on that node).
    Part {
        /// Display name.
        user: String,
        /// Canonical room name.
        room: String,
        /// Why ("part", "quit", ...).
        reason: String,
        /// The user's parting words.
        message: Option<String>,
    },
    /// Committed messages of `room`, in sequence order.
    Room {
        /// Canonical room name.
        room: String,
        /// The messages.
        msgs: Vec<RoomMessage>,
    },
    /// A committed private message, for the sessions of its sender and recipient.
    Private {
        /// Sender's display name.
        from: String,
        /// Recipient's display name.
        to: String,
        /// The frame the sessions get.
        frame: ServerFrame,
    },
    /// A frame for every session of `user`.
    ToUser {
        /// Display name or any case of it.
        user: String,
        /// The frame.
        frame: ServerFrame,
    },
    /// A frame for every member of `room`.
    ToRoom {
        /// Canonical room name.
        room: String,
        /// The frame.
        frame: ServerFrame,
    },
    /// A frame for every session.
    Broadcast {
        /// The frame.
        frame: ServerFrame,
    },
    /// End every session of `user`.
    Kick {
        /// The account.
        user: String,
        /// Told to the sessions.
        reason: String,
    },
    /// Mute `user` for `ms` milliseconds.
    Mute {
        /// The account.
        user: String,
        /// How long.
        ms: u64,
    },
    /// Lift `user`'s mute.
    Unmute {
        /// The account.
        user: String,
    },
    /// An event for the operator consoles' live feed, encoded as they show it.
    Feed {
        /// The console's JSON.
        json: String,
    },
}

/// Encodes an envelope for publishing.
pub fn encode(env: &Envelope) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    serde_json::to_vec(env).unwrap_or_default()
}

/// Decodes a published envelope; `None` for anything else on the channel.
pub fn decode(bytes: &[u8]) -> Option<Envelope> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_garbage_is_ignored() {
        let env = Envelope {
            node: "n1".into(),
            n: 7,
            body: Body::Room {
                room: "lobby".into(),
                msgs: vec![RoomMessage {
                    seq: 3,
                    id: 9,
                    from: "ann".into(),
                    text: "hi \"there\"".into(),
                    ts: 5,
                }],
            },
        };
        assert_eq!(decode(&encode(&env)), Some(env));
        let private = Envelope {
            node: "n2".into(),
            n: 1,
            body: Body::Private {
                from: "a".into(),
                to: "b".into(),
                frame: ServerFrame::System { text: "x".into() },
            },
        };
        assert_eq!(decode(&encode(&private)), Some(private));
        assert_eq!(decode(b"{\"node\":1}"), None);
        assert_eq!(decode(b"\xff"), None);
    }
}
