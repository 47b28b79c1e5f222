//! The hub: who is online, who is in which room, and fan-out of frames to sessions.
//!
//! The hub is the single owner of presence and room membership. It sits behind one std
//! `Mutex` that is only held for short, non-async sections (never across an `.await`).
//! Delivering means handing each recipient a shared, typed [`Delivery`]: the recipient's
//! handle takes the delivery's bytes in its own wire format (encoded once per format, on
//! first use) and appends them to its bounded [`Outbox`]; a burst of messages is one
//! delivery, so one chunk. The hub never does I/O and knows no wire format. A recipient whose outbox is full is a slow consumer: it is told to
//! close (through its [`SessionHandle::close`]) instead of making the hub, or anyone else, wait.
//!
//! Rooms are joined per session (like IRC channels); a user is a member of a room while
//! at least one of their sessions is in it, and join/leave notices go to the room when
//! the first session enters and the last one leaves. A room exists while it has members.
//!
//! In a large room one notice per join would cost every member a frame per join, so
//! 10 000 people arriving would mean 50 million frames. Rooms with at least
//! `large_room` members therefore collect joins and leaves and announce them in one
//! `presence_summary` per room when [`Hub::flush_presence`] runs (about once a second).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use natter_proto::{MAX_NAMES, PresenceEvent, RoomInfo, ServerFrame, name_key};
use tokio_util::sync::CancellationToken;

use crate::codec::{Encoder, JsonLines};
use crate::delivery::Delivery;
use crate::outbox::{Outbox, Push};

/// Identifies one connection's session within the hub.
pub type SessionId = u64;

/// The hub's handle on one session: its outgoing queue, its wire format, and the way to
/// end it.
#[derive(Clone)]
pub struct SessionHandle {
    /// The session's bounded outgoing queue of encoded frames.
    pub outbox: Arc<Outbox>,
    /// Fires when the session must end: closed for a reason (slow consumer, kick, ban)
    /// or, with no reason, because the server is shutting down.
    token: CancellationToken,
    /// Encodes frames in the format of the session's transport.
    encoder: Arc<dyn Encoder>,
}

impl SessionHandle {
    /// A handle on `outbox`, encoding with `encoder`, ending when `token` is cancelled
    /// (the connection's shutdown token: one token serves for shutdown and closing).
    pub fn new(outbox: Arc<Outbox>, token: CancellationToken, encoder: Arc<dyn Encoder>) -> Self {
        SessionHandle {
            outbox,
            token,
            encoder,
        }
    }

    /// A handle on a new outbox of at most `max_frames` frames that a writer task
    /// drains, in natter's JSON format, with a token of its own.
    pub fn queued(max_frames: usize) -> SessionHandle {
        SessionHandle::new(
            Arc::new(Outbox::new(max_frames)),
            CancellationToken::new(),
            Arc::new(JsonLines),
        )
    }

    /// Asks the session to end for `reason` (first reason wins).
    pub fn close(&self, reason: impl Into<String>) {
        self.outbox.set_close_reason(reason.into());
        self.token.cancel();
    }

    /// Resolves once the session must end: [`SessionHandle::close`] was called or the
    /// server is shutting down.
    pub async fn closed(&self) {
        self.token.cancelled().await
    }

    /// The reason given to [`SessionHandle::close`], if any (none on shutdown).
    pub fn close_reason(&self) -> Option<&str> {
        self.outbox.close_reason()
    }

    /// The session's wire format.
    pub fn encoder(&self) -> &dyn Encoder {
        &*self.encoder
    }

    /// Queues a shared delivery in this session's format without waiting; a full queue
    /// closes the session.
    pub fn deliver(&self, delivery: &Delivery) {
        self.push(delivery.encoded(&*self.encoder), delivery.len());
    }

    /// Queues frames for this session alone (replies), encoded here, as one chunk.
    pub fn send(&self, frames: &[ServerFrame]) {
        if frames.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(frames.len() * 64);
        for f in frames {
            self.encoder.encode_into(f, &mut out);
        }
        self.push(&out.into(), frames.len());
    }

    fn push(&self, bytes: &bytes::Bytes, frames: usize) {
        match self.outbox.push(bytes, frames) {
            Push::Queued => {}
            Push::Full => self.close("slow consumer: outgoing queue full"),
            // The session is already ending; nothing to do.
            Push::Closed => {}
        }
    }
}

/// Registered session: whose it is, how to reach it, where it is.
struct Entry {
    /// Case-folded account name.
    user_key: String,
    /// Queue and close token.
    handle: SessionHandle,
    /// Rooms this session is in (canonical names).
    rooms: Vec<String>,
}

/// An account that has at least one session online.
struct OnlineUser {
    /// Display name (case as registered).
    name: String,
    /// Its sessions, usually one.
    sessions: Vec<SessionId>,
}

/// A room with at least one member.
#[derive(Default)]
struct Room {
    /// Sessions in the room, with their handles so fan-out needs no lookups.
    sessions: Vec<(SessionId, SessionHandle)>,
    /// Members by case-folded name (so in the order `who` lists them): display name and
    /// how many of their sessions are in.
    members: BTreeMap<String, (String, usize)>,
    /// Joins and leaves not yet announced (large rooms only).
    pending: Option<Summary>,
}

impl Room {
    /// The first [`MAX_NAMES`] members in order, and how many there are in all.
    fn member_names(&self) -> Members {
        Members {
            names: self
                .members
                .values()
                .take(MAX_NAMES)
                .map(|(name, _)| name.clone())
                .collect(),
            total: self.members.len(),
        }
    }
}

/// Some of a room's members, as `joined` and `who` show them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Members {
    /// Display names, sorted case-insensitively, at most [`MAX_NAMES`].
    pub names: Vec<String>,
    /// Members in all.
    pub total: usize,
}

/// Names listed per kind in a `presence_summary`; the rest are counted. A summary goes
/// to every member each second, so it stays small: a mass arrival in a room of 10 000
/// would otherwise send each member a list of hundreds of names every second.
pub const SUMMARY_NAMES: usize = 50;

/// Joins and leaves of a large room collected for its next `presence_summary`.
#[derive(Default)]
struct Summary {
    /// Who joined, in order, at most [`SUMMARY_NAMES`].
    joined: Vec<String>,
    /// Joins beyond those listed.
    joined_more: u32,
    /// Who left, in order, at most [`SUMMARY_NAMES`].
    left: Vec<String>,
    /// Leaves beyond those listed.
    left_more: u32,
}

/// Adds `name` to a capped list, counting it in `more` once the list is full.
fn note(list: &mut Vec<String>, more: &mut u32, name: &str) {
    if list.len() < SUMMARY_NAMES {
        list.push(name.to_string());
    } else {
        *more = more.saturating_add(1);
    }
}

#[derive(Default)]
struct State {
    /// Next session id to hand out.
    next_id: SessionId,
    /// Every authenticated session.
    sessions: HashMap<SessionId, Entry>,
    /// Online accounts by case-folded name.
    users: HashMap<String, OnlineUser>,
    /// Rooms with members, by canonical name.
    rooms: HashMap<String, Room>,
    /// Rooms with joins or leaves waiting for a summary.
    dirty: Vec<String>,
    /// Member count from which a room's presence is summarised.
    large_room: usize,
    /// Set during shutdown: suppresses presence notices nobody needs.
    closing: bool,
}

/// Delivers to every session of `room`; returns the sessions it was queued to.
fn deliver_room(room: &Room, delivery: &Delivery) -> usize {
    for (_, handle) in &room.sessions {
        handle.deliver(delivery);
    }
    room.sessions.len()
}

impl State {
    /// Removes session `id` from `room`; announces the user's leave if it was their last
    /// session there. Returns whether the user left the room.
    fn part(&mut self, id: SessionId, user_key: &str, room_name: &str, reason: &str) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        room.sessions.retain(|(s, _)| *s != id);
        let mut left = None;
        if let Some((name, count)) = room.members.get_mut(user_key) {
            *count -= 1;
            if *count == 0 {
                left = Some(name.clone());
            }
        }
        let Some(name) = left else { return false };
        let large = room.members.len() >= self.large_room;
        room.members.remove(user_key);
        if room.members.is_empty() {
            self.rooms.remove(room_name);
        } else if large {
            let summary = room.pending.get_or_insert_with(|| {
                self.dirty.push(room_name.to_string());
                Summary::default()
            });
            note(&mut summary.left, &mut summary.left_more, &name);
        } else if !self.closing {
            let leave = Delivery::one(ServerFrame::Presence {
                room: room_name.to_string(),
                user: name,
                event: PresenceEvent::Leave,
                reason: Some(reason.to_string()),
            });
            if let Some(room) = self.rooms.get(room_name) {
                deliver_room(room, &leave);
            }
        }
        true
    }
}

/// Why a room operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    /// The session is not in that room.
    NotInRoom,
    /// The session is in as many rooms as allowed.
    TooManyRooms,
    /// The session is not registered (already gone).
    NoSession,
}

/// Why a private message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateError {
    /// The recipient has no session online.
    NotOnline,
}

/// Presence, rooms and fan-out for all authenticated sessions.
pub struct Hub {
    /// All hub state; see the module doc for the locking rule.
    state: Mutex<State>,
    /// Most rooms one session may be in at once.
    max_rooms: usize,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new(64, 200)
    }
}

impl Hub {
    /// An empty hub allowing `max_rooms` rooms per session, summarising the presence of
    /// rooms with at least `large_room` members.
    pub fn new(max_rooms: usize, large_room: usize) -> Hub {
        Hub {
            state: Mutex::new(State {
                large_room: large_room.max(1),
                ..State::default()
            }),
            max_rooms,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters more than stopping chat for everyone, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated session of `user` (in no room yet) and returns its id.
    pub fn connect(&self, user: &str, handle: SessionHandle) -> SessionId {
        let key = name_key(user);
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.users
            .entry(key.clone())
            .or_insert_with(|| OnlineUser {
                name: user.to_string(),
                sessions: Vec::new(),
            })
            .sessions
            .push(id);
        st.sessions.insert(
            id,
            Entry {
                user_key: key,
                handle,
                rooms: Vec::new(),
            },
        );
        id
    }

    /// Removes a session: it leaves every room with `reason`, and the account goes
    /// offline if this was its last session. Returns the rooms the user left.
    pub fn disconnect(&self, id: SessionId, reason: &str) -> Vec<String> {
        let mut st = self.lock();
        let Some(entry) = st.sessions.remove(&id) else {
            return Vec::new();
        };
        let mut left = Vec::new();
        for room in &entry.rooms {
            if st.part(id, &entry.user_key, room, reason) {
                left.push(room.clone());
            }
        }
        if let Some(online) = st.users.get_mut(&entry.user_key) {
            online.sessions.retain(|s| *s != id);
            if online.sessions.is_empty() {
                st.users.remove(&entry.user_key);
            }
        }
        left
    }

    /// Puts session `id` into `room` (canonical name). Announces the user to the room if
    /// this is their first session there (at once, or in the next summary of a large
    /// room). Returns the members after joining and whether the user is new in the room;
    /// joining a room the session is already in just returns the members.
    pub fn join_room(&self, id: SessionId, room: &str) -> Result<(Members, bool), RoomError> {
        let mut st = self.lock();
        let closing = st.closing;
        let large_room = st.large_room;
        let State {
            sessions,
            users,
            rooms,
            dirty,
            ..
        } = &mut *st;
        let entry = sessions.get_mut(&id).ok_or(RoomError::NoSession)?;
        if entry.rooms.iter().any(|r| r == room) {
            let members = rooms.get(room).map(Room::member_names).unwrap_or_default();
            return Ok((members, false));
        }
        if entry.rooms.len() >= self.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        entry.rooms.push(room.to_string());
        let key = entry.user_key.clone();
        let name = users
            .get(&key)
            .map_or_else(|| key.clone(), |u| u.name.clone());
        let r = rooms.entry(room.to_string()).or_default();
        let first = !r.members.contains_key(&key);
        if first && r.members.len() + 1 >= large_room {
            let summary = r.pending.get_or_insert_with(|| {
                dirty.push(room.to_string());
                Summary::default()
            });
            note(&mut summary.joined, &mut summary.joined_more, &name);
        } else if first && !closing {
            let join = Delivery::one(ServerFrame::Presence {
                room: room.to_string(),
                user: name.clone(),
                event: PresenceEvent::Join,
                reason: None,
            });
            deliver_room(r, &join);
        }
        r.sessions.push((id, entry.handle.clone()));
        r.members.entry(key).or_insert((name, 0)).1 += 1;
        Ok((r.member_names(), first))
    }

    /// Takes session `id` out of `room`, announcing the leave with `reason` if it was the
    /// user's last session there (then returns true).
    pub fn part_room(&self, id: SessionId, room: &str, reason: &str) -> Result<bool, RoomError> {
        let mut st = self.lock();
        let entry = st.sessions.get_mut(&id).ok_or(RoomError::NoSession)?;
        let before = entry.rooms.len();
        entry.rooms.retain(|r| r != room);
        if entry.rooms.len() == before {
            return Err(RoomError::NotInRoom);
        }
        let key = entry.user_key.clone();
        Ok(st.part(id, &key, room, reason))
    }

    /// Whether session `id` is in `room`.
    pub fn in_room(&self, id: SessionId, room: &str) -> bool {
        self.lock()
            .sessions
            .get(&id)
            .is_some_and(|e| e.rooms.iter().any(|r| r == room))
    }

    /// Delivers to every session in `room`, if session `from` is in it, one shared
    /// delivery for all members: a burst of messages costs each member one write.
    /// Returns the number of sessions it was queued to.
    pub fn broadcast_room(
        &self,
        from: SessionId,
        room: &str,
        delivery: &Delivery,
    ) -> Result<usize, RoomError> {
        let st = self.lock();
        let in_room = st
            .sessions
            .get(&from)
            .is_some_and(|e| e.rooms.iter().any(|r| r == room));
        let r = st
            .rooms
            .get(room)
            .filter(|_| in_room)
            .ok_or(RoomError::NotInRoom)?;
        Ok(deliver_room(r, delivery))
    }

    /// Sends `frame` to every session in `room` (an operator's notice); `None` if the
    /// room has no members.
    pub fn send_to_room(&self, room: &str, frame: &ServerFrame) -> Option<usize> {
        let st = self.lock();
        let r = st.rooms.get(room)?;
        Some(deliver_room(r, &Delivery::one(frame.clone())))
    }

    /// Sends a frame to every authenticated session; returns how many.
    pub fn broadcast(&self, frame: &ServerFrame) -> usize {
        let delivery = Delivery::one(frame.clone());
        let st = self.lock();
        for e in st.sessions.values() {
            e.handle.deliver(&delivery);
        }
        st.sessions.len()
    }

    /// Ends every session of `user` with `reason`; returns how many were told to close.
    pub fn kick(&self, user: &str, reason: &str) -> usize {
        let st = self.lock();
        let Some(online) = st.users.get(&name_key(user)) else {
            return 0;
        };
        for id in &online.sessions {
            if let Some(e) = st.sessions.get(id) {
                e.handle.close(reason);
            }
        }
        online.sessions.len()
    }

    /// Everyone online with their number of sessions, sorted case-insensitively.
    pub fn online_sessions(&self) -> Vec<(String, usize)> {
        let st = self.lock();
        let mut keys: Vec<&String> = st.users.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| (st.users[k].name.clone(), st.users[k].sessions.len()))
            .collect()
    }

    /// Sends a frame to every session of `user`; false if they have none.
    pub fn send_to_user(&self, user: &str, frame: &ServerFrame) -> bool {
        let st = self.lock();
        let Some(online) = st.users.get(&name_key(user)) else {
            return false;
        };
        let delivery = Delivery::one(frame.clone());
        for id in &online.sessions {
            if let Some(e) = st.sessions.get(id) {
                e.handle.deliver(&delivery);
            }
        }
        true
    }

    /// Delivers a private message to every session of `to` and of `from`; returns the
    /// number of the recipient's sessions it was queued to.
    ///
    /// `frame_for` builds the frame from the recipient's display name; it is called
    /// under the hub lock only when the recipient is online.
    pub fn send_private(
        &self,
        from: &str,
        to: &str,
        frame_for: impl FnOnce(&str) -> ServerFrame,
    ) -> Result<usize, PrivateError> {
        let st = self.lock();
        let to_key = name_key(to);
        let target = st.users.get(&to_key).ok_or(PrivateError::NotOnline)?;
        let delivery = Delivery::one(frame_for(&target.name));
        let from_key = name_key(from);
        let sender = st.users.get(&from_key).filter(|_| from_key != to_key);
        for id in target
            .sessions
            .iter()
            .chain(sender.into_iter().flat_map(|u| u.sessions.iter()))
        {
            if let Some(e) = st.sessions.get(id) {
                e.handle.deliver(&delivery);
            }
        }
        Ok(target.sessions.len())
    }

    /// The display name of `user` if they are online.
    pub fn online_name(&self, user: &str) -> Option<String> {
        self.lock()
            .users
            .get(&name_key(user))
            .map(|u| u.name.clone())
    }

    /// Names of everyone online, sorted case-insensitively.
    pub fn online_users(&self) -> Vec<String> {
        let st = self.lock();
        let mut keys: Vec<&String> = st.users.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| st.users[k].name.clone()).collect()
    }

    /// Every room with its member count, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let st = self.lock();
        let mut out: Vec<RoomInfo> = st
            .rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                name: name.clone(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Members of `room`, sorted (the first [`MAX_NAMES`]); `None` if the room has no
    /// members.
    pub fn who(&self, room: &str) -> Option<Members> {
        self.lock().rooms.get(room).map(Room::member_names)
    }

    /// Announces the joins and leaves collected in large rooms: one `presence_summary`
    /// to each such room's members. Returns the number of rooms announced to.
    pub fn flush_presence(&self) -> usize {
        let mut st = self.lock();
        let dirty = std::mem::take(&mut st.dirty);
        let closing = st.closing;
        let mut announced = 0;
        for name in dirty {
            let Some(room) = st.rooms.get_mut(&name) else {
                continue;
            };
            let Some(summary) = room.pending.take() else {
                continue;
            };
            if closing {
                continue;
            }
            let summary = Delivery::one(ServerFrame::PresenceSummary {
                room: name,
                members: u32::try_from(room.members.len()).unwrap_or(u32::MAX),
                joined: summary.joined,
                joined_more: summary.joined_more,
                left: summary.left,
                left_more: summary.left_more,
            });
            deliver_room(room, &summary);
            announced += 1;
        }
        announced
    }

    /// Number of authenticated sessions.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Marks the server as shutting down: no more presence notices.
    pub fn set_closing(&self) {
        self.lock().closing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(depth: usize) -> (SessionHandle, Arc<Outbox>) {
        let h = SessionHandle::queued(depth);
        let outbox = h.outbox.clone();
        (h, outbox)
    }

    fn frames(outbox: &mut Arc<Outbox>) -> Vec<ServerFrame> {
        let Some(Some(bytes)) = outbox.try_take() else {
            return Vec::new();
        };
        bytes[..]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| natter_proto::decode_server(l).expect("valid frame"))
            .collect()
    }

    fn members(names: &[&str]) -> Members {
        Members {
            names: names.iter().map(|n| n.to_string()).collect(),
            total: names.len(),
        }
    }

    fn presence(room: &str, user: &str, event: PresenceEvent, reason: Option<&str>) -> ServerFrame {
        ServerFrame::Presence {
            room: room.into(),
            user: user.into(),
            event,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn room_presence_is_announced_once_per_account() {
        let hub = Hub::default();
        let (a, mut arx) = session(8);
        let (b1, _b1rx) = session(8);
        let (b2, _b2rx) = session(8);
        let a = hub.connect("alice", a);
        hub.join_room(a, "lobby").expect("join");
        let b1 = hub.connect("Bob", b1);
        let b2 = hub.connect("Bob", b2);
        assert_eq!(
            hub.join_room(b1, "lobby"),
            Ok((members(&["alice", "Bob"]), true))
        );
        assert_eq!(
            hub.join_room(b2, "lobby"),
            Ok((members(&["alice", "Bob"]), false)),
            "a second session is no new member"
        );
        assert!(hub.disconnect(b1, "quit").is_empty());
        assert_eq!(
            hub.disconnect(b2, "connection lost"),
            vec!["lobby".to_string()]
        );
        assert_eq!(
            frames(&mut arx),
            vec![
                presence("lobby", "Bob", PresenceEvent::Join, None),
                presence(
                    "lobby",
                    "Bob",
                    PresenceEvent::Leave,
                    Some("connection lost")
                ),
            ]
        );
    }

    #[test]
    fn room_messages_reach_only_members_and_need_membership() {
        let hub = Hub::default();
        let (a, mut arx) = session(8);
        let (b, mut brx) = session(8);
        let (a, b) = (hub.connect("alice", a), hub.connect("bob", b));
        hub.join_room(a, "rust").expect("join");
        hub.join_room(b, "lobby").expect("join");
        let f = ServerFrame::System { text: "x".into() };
        let d = Delivery::one(f.clone());
        assert_eq!(hub.broadcast_room(a, "rust", &d), Ok(1));
        assert_eq!(hub.broadcast_room(b, "rust", &d), Err(RoomError::NotInRoom));
        assert_eq!(frames(&mut arx), vec![f]);
        assert!(frames(&mut brx).is_empty());
        assert_eq!(
            hub.rooms(),
            vec![
                RoomInfo {
                    name: "lobby".into(),
                    members: 1
                },
                RoomInfo {
                    name: "rust".into(),
                    members: 1
                }
            ]
        );
        hub.part_room(a, "rust", "part").expect("part");
        assert_eq!(hub.who("rust"), None, "an empty room disappears");
        assert_eq!(hub.part_room(a, "rust", "part"), Err(RoomError::NotInRoom));
    }

    #[test]
    fn rooms_per_session_are_bounded() {
        let hub = Hub::new(2, 200);
        let (a, _rx) = session(8);
        let a = hub.connect("alice", a);
        hub.join_room(a, "r1").expect("join");
        hub.join_room(a, "r2").expect("join");
        assert_eq!(hub.join_room(a, "r3"), Err(RoomError::TooManyRooms));
        assert!(
            hub.join_room(a, "r1").is_ok(),
            "rejoining is not a new room"
        );
    }

    #[test]
    fn private_reaches_target_and_sender_sessions_only() {
        let hub = Hub::default();
        let (a, mut arx) = session(8);
        let (b, mut brx) = session(8);
        let (c, mut crx) = session(8);
        hub.connect("alice", a);
        hub.connect("bob", b);
        hub.connect("carol", c);
        let make = |to: &str| ServerFrame::Private {
            msg_id: 1,
            from: "alice".into(),
            to: to.into(),
            text: "hi".into(),
            ts: 1,
            late: false,
        };
        assert_eq!(hub.send_private("alice", "BOB", make), Ok(1));
        assert_eq!(frames(&mut arx), vec![make("bob")]);
        assert_eq!(frames(&mut brx), vec![make("bob")]);
        assert!(frames(&mut crx).is_empty());
        assert_eq!(
            hub.send_private("alice", "dave", make),
            Err(PrivateError::NotOnline)
        );
    }

    #[test]
    fn full_queue_closes_only_that_session() {
        let hub = Hub::default();
        let (slow, _slow_rx) = session(1);
        let slow_handle = slow.clone();
        let (fast, mut fast_rx) = session(64);
        let fast_handle = fast.clone();
        hub.connect("slow", slow);
        hub.connect("fast", fast);
        for i in 0..3 {
            hub.broadcast(&ServerFrame::System {
                text: format!("n{i}"),
            });
        }
        assert!(
            slow_handle
                .close_reason()
                .is_some_and(|r| r.contains("slow consumer"))
        );
        assert_eq!(fast_handle.close_reason(), None);
        assert_eq!(frames(&mut fast_rx).len(), 3);
    }

    #[test]
    fn list_is_sorted_case_insensitively() {
        let hub = Hub::default();
        let mut receivers = Vec::new();
        for n in ["carol", "Alice", "bob"] {
            let (h, rx) = session(8);
            receivers.push(rx);
            hub.connect(n, h);
        }
        assert_eq!(hub.online_users(), vec!["Alice", "bob", "carol"]);
    }

    #[test]
    fn kick_closes_every_session_of_the_user_and_notices_reach_a_room() {
        let hub = Hub::default();
        let (a1, _a1rx) = session(8);
        let (a2, _a2rx) = session(8);
        let (b, mut brx) = session(8);
        let (c1, c2) = (a1.clone(), a2.clone());
        let bc = b.clone();
        hub.connect("Alice", a1);
        hub.connect("alice", a2);
        let bid = hub.connect("bob", b);
        hub.join_room(bid, "rust").expect("join");
        assert_eq!(
            hub.online_sessions(),
            vec![("Alice".into(), 2), ("bob".into(), 1)]
        );
        assert_eq!(hub.kick("ALICE", "kicked"), 2);
        assert_eq!(
            (c1.close_reason(), c2.close_reason(), bc.close_reason()),
            (Some("kicked"), Some("kicked"), None)
        );
        assert_eq!(hub.kick("nobody", "x"), 0);
        let f = ServerFrame::System {
            text: "[notice] hi".into(),
        };
        assert_eq!(hub.send_to_room("rust", &f), Some(1));
        assert_eq!(hub.send_to_room("empty", &f), None);
        assert_eq!(frames(&mut brx), vec![f]);
    }

    #[test]
    fn large_rooms_announce_joins_and_leaves_in_summaries() {
        let hub = Hub::new(64, 3);
        let mut outboxes = Vec::new();
        let mut ids = Vec::new();
        for name in ["ann", "bob", "cy", "dan", "eve"] {
            let (h, rx) = session(64);
            let id = hub.connect(name, h);
            hub.join_room(id, "big").expect("join");
            ids.push(id);
            outboxes.push(rx);
        }
        // Below three members, joins are announced one by one.
        assert_eq!(
            frames(&mut outboxes[0]),
            vec![presence("big", "bob", PresenceEvent::Join, None)]
        );
        assert!(frames(&mut outboxes[0]).is_empty(), "the rest waits");
        hub.disconnect(ids[1], "quit");
        assert_eq!(hub.flush_presence(), 1);
        let summary = ServerFrame::PresenceSummary {
            room: "big".into(),
            members: 4,
            joined: vec!["cy".into(), "dan".into(), "eve".into()],
            joined_more: 0,
            left: vec!["bob".into()],
            left_more: 0,
        };
        assert_eq!(frames(&mut outboxes[0]), vec![summary.clone()]);
        assert_eq!(frames(&mut outboxes[4]), vec![summary]);
        assert_eq!(hub.flush_presence(), 0, "nothing new, nothing sent");
        let Ok((listed, _)) = hub.join_room(ids[0], "big") else {
            panic!("rejoin")
        };
        assert_eq!(listed, members(&["ann", "cy", "dan", "eve"]));
    }
}
