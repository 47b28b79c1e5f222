//! The bus between sessions and the hub.
//!
//! Everything a session (or an operator action) publishes goes through [`Bus`]: room
//! and private messages, presence (connecting, joining, leaving), kicks, bans, mutes
//! and notices, and the questions asked about who is where. [`LocalBus`], the
//! single-process bus, is today's [`Hub`] plus the message limiter that holds mutes.
//! A cluster bus implements the same trait over a local hub, carrying each call to the
//! other nodes (Redis pub/sub); ids are unique across nodes ([`SessionId`] names its
//! node, message ids and per-room sequences come from the shared store), so a node can
//! tell messages apart and notice a gap in a room's sequence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use natter_proto::{RoomInfo, ServerFrame, name_key};
use tokio::time::Instant;

use crate::delivery::Delivery;
use crate::hub::{Hub, Members, PrivateError, RoomError, SessionHandle, SessionId};
use crate::ratelimit::MessageLimiter;
use crate::transport_kind::PerTransport;

/// What sessions and operators publish, and what they ask about presence.
pub trait Bus: Send + Sync + 'static {
    /// Registers an authenticated session of `user` (in no room yet); returns its id.
    fn connect(&self, user: &str, handle: SessionHandle) -> SessionId;
    /// Removes a session: it leaves every room with `reason` and the user's parting
    /// `message`, announced where it was the user's last session. Returns the rooms the
    /// user left.
    fn disconnect(&self, id: SessionId, reason: &str, message: Option<&str>) -> Vec<String>;
    /// Puts a session into `room` (canonical name): the members after joining, and
    /// whether the user is new there (then the room was told).
    fn join_room(&self, id: SessionId, room: &str) -> Result<(Members, bool), RoomError>;
    /// A session joined `room` and is about to read its history: a cluster node fixes
    /// here, before that read, where the room's live messages start on this node, so
    /// that each message is in the history read or delivered live. Nothing to do in one
    /// process.
    fn joined<'a>(&'a self, _room: &'a str) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Takes a session out of `room` with the user's parting `message`; true if the
    /// user left it (the room was told).
    fn part_room(
        &self,
        id: SessionId,
        room: &str,
        reason: &str,
        message: Option<&str>,
    ) -> Result<bool, RoomError>;
    /// Whether a session is in `room`.
    fn in_room(&self, id: SessionId, room: &str) -> bool;
    /// Publishes committed messages of `room` to its members, if session `from` is in
    /// it; returns the sessions reached on this node. `seqs` are the messages' per-room
    /// sequence numbers from the store, in order: a cluster bus sends them along so that
    /// a node noticing a gap fills it with `Store::room_since`.
    fn publish_room(
        &self,
        from: SessionId,
        room: &str,
        seqs: &[u64],
        messages: &Delivery,
    ) -> Result<usize, RoomError>;
    /// Publishes a committed private message to every session of `to` and of `from`;
    /// `frame` builds it from the recipient's display name. `NotOnline` when `to` has no
    /// session anywhere.
    fn send_private(
        &self,
        from: &str,
        to: &str,
        frame: &dyn Fn(&str) -> ServerFrame,
    ) -> Result<usize, PrivateError>;
    /// Whether a private message to `user` (online) is delivered by this node itself.
    /// Otherwise it is stored as pending, and the node that delivers it live marks it
    /// delivered ([`crate::store::Store::mark_delivered`]): if that node is lost first,
    /// the message waits for the next login instead of being lost. Always true in one
    /// process.
    fn delivers_here(&self, _user: &str) -> bool {
        true
    }
    /// Sends a frame to every session of `user`; false if they have none.
    fn send_to_user(&self, user: &str, frame: &ServerFrame) -> bool;
    /// Sends a frame to every member of `room` (a notice); `None` if it has none.
    fn send_to_room(&self, room: &str, frame: &ServerFrame) -> Option<usize>;
    /// Sends a frame to every session (a notice to everyone); returns how many.
    fn broadcast(&self, frame: &ServerFrame) -> usize;
    /// Ends every session of `user` with `reason` (kick, ban); returns how many.
    fn kick(&self, user: &str, reason: &str) -> usize;
    /// Mutes `user` by operator decision for `duration`.
    fn mute(&self, user: &str, duration: Duration);
    /// Lifts `user`'s mute; whether one was running.
    fn unmute(&self, user: &str) -> bool;
    /// The display name of `user` if they have a session.
    fn online_name(&self, user: &str) -> Option<String>;
    /// The rooms `user` is in with any of their sessions (canonical names, sorted).
    fn rooms_of(&self, user: &str) -> Vec<String>;
    /// When each room got its first member (ms since the epoch), by canonical name.
    fn rooms_created(&self) -> HashMap<String, u64>;
    /// Everyone online, sorted case-insensitively.
    fn online_users(&self) -> Vec<String>;
    /// Everyone online with their sessions counted by transport, sorted
    /// case-insensitively.
    fn online_sessions(&self) -> Vec<(String, PerTransport)>;
    /// Every room with its member count, sorted by name.
    fn rooms(&self) -> Vec<RoomInfo>;
    /// The members of `room`; `None` if it has none.
    fn who(&self, room: &str) -> Option<Members>;
    /// Sessions on this node.
    fn session_count(&self) -> usize;
    /// Sessions on this node by the transport they came over.
    fn sessions_by_transport(&self) -> PerTransport;
    /// Announces the joins and leaves collected in large rooms (about once a second).
    fn flush_presence(&self) -> usize;
    /// Wakes this node's sessions whose deadline has passed by `now` (about four times
    /// a second; see [`Hub::wake_due`]); returns how many.
    fn wake_due(&self, now: Instant) -> usize;
    /// The server is shutting down: no more presence notices.
    fn set_closing(&self);
    /// On how many nodes `user` has sessions (at least 1: this one); each node limits
    /// the account's rate alone, so they share the limit by this count.
    fn nodes_of(&self, _user: &str) -> usize {
        1
    }
    /// Shows a logged event on the other nodes' consoles too (a cluster's live feed is
    /// the whole cluster's); nothing to do in one process.
    fn share_event(&self, _event: &crate::transcript::Event) {}
}

/// The single-process bus: the hub, and the limiter that keeps mutes.
pub struct LocalBus {
    /// Presence and fan-out.
    hub: Hub,
    /// Chat message limits, where operator mutes live.
    messages: Arc<MessageLimiter>,
}

impl LocalBus {
    /// A bus over `hub`, muting through `messages`.
    pub fn new(hub: Hub, messages: Arc<MessageLimiter>) -> LocalBus {
        LocalBus { hub, messages }
    }

    /// The hub of this process (a cluster bus adds the other nodes around it).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl Bus for LocalBus {
    fn connect(&self, user: &str, handle: SessionHandle) -> SessionId {
        self.hub.connect(user, handle)
    }

    fn disconnect(&self, id: SessionId, reason: &str, message: Option<&str>) -> Vec<String> {
        self.hub.disconnect(id, reason, message)
    }

    fn join_room(&self, id: SessionId, room: &str) -> Result<(Members, bool), RoomError> {
        self.hub.join_room(id, room)
    }

    fn part_room(
        &self,
        id: SessionId,
        room: &str,
        reason: &str,
        message: Option<&str>,
    ) -> Result<bool, RoomError> {
        self.hub.part_room(id, room, reason, message)
    }

    fn in_room(&self, id: SessionId, room: &str) -> bool {
        self.hub.in_room(id, room)
    }

    fn publish_room(
        &self,
        from: SessionId,
        room: &str,
        _seqs: &[u64],
        messages: &Delivery,
    ) -> Result<usize, RoomError> {
        // One process sees every message of a room in order: nothing to check.
        self.hub.broadcast_room(from, room, messages)
    }

    fn send_private(
        &self,
        from: &str,
        to: &str,
        frame: &dyn Fn(&str) -> ServerFrame,
    ) -> Result<usize, PrivateError> {
        self.hub.send_private(from, to, frame)
    }

    fn send_to_user(&self, user: &str, frame: &ServerFrame) -> bool {
        self.hub.send_to_user(user, frame)
    }

    fn send_to_room(&self, room: &str, frame: &ServerFrame) -> Option<usize> {
        self.hub.send_to_room(room, frame)
    }

    fn broadcast(&self, frame: &ServerFrame) -> usize {
        self.hub.broadcast(frame)
    }

    fn kick(&self, user: &str, reason: &str) -> usize {
        self.hub.kick(user, reason)
    }

    fn mute(&self, user: &str, duration: Duration) {
        self.messages
            .mute(&name_key(user), duration, Instant::now());
    }

    fn unmute(&self, user: &str) -> bool {
        self.messages.unmute(&name_key(user))
    }

    fn online_name(&self, user: &str) -> Option<String> {
        self.hub.online_name(user)
    }

    fn rooms_of(&self, user: &str) -> Vec<String> {
        self.hub.rooms_of(user)
    }

    fn rooms_created(&self) -> HashMap<String, u64> {
        self.hub.rooms_created()
    }

    fn online_users(&self) -> Vec<String> {
        self.hub.online_users()
    }

    fn online_sessions(&self) -> Vec<(String, PerTransport)> {
        self.hub.online_sessions()
    }

    fn rooms(&self) -> Vec<RoomInfo> {
        self.hub.rooms()
    }

    fn who(&self, room: &str) -> Option<Members> {
        self.hub.who(room)
    }

    fn session_count(&self) -> usize {
        self.hub.session_count()
    }

    fn sessions_by_transport(&self) -> PerTransport {
        self.hub.sessions_by_transport()
    }

    fn flush_presence(&self) -> usize {
        self.hub.flush_presence()
    }

    fn wake_due(&self, now: Instant) -> usize {
        self.hub.wake_due(now)
    }

    fn set_closing(&self) {
        self.hub.set_closing()
    }
}
