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

use crate::delivery::Delivery;
use crate::transport_kind::PerTransport;
use few::Few;

mod few;
mod handle;

pub use handle::SessionHandle;

/// Identifies one session, unique across nodes: the node that holds it (the top 16
/// bits) and a counter of that node's (the low 48 bits, enough for 2^48 sessions per
/// start). Eight bytes, as it is kept several times per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// Session `local` of node `node`.
    pub fn new(node: u16, local: u64) -> SessionId {
        SessionId((u64::from(node) << 48) | (local & ((1 << 48) - 1)))
    }

    /// The node that holds the session.
    pub fn node(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The session's number on its node.
    pub fn local(self) -> u64 {
        self.0 & ((1 << 48) - 1)
    }
}

/// Registered session: whose it is, how to reach it, where it is.
///
/// Names are shared (`Arc<str>`) between the hub's maps: a user's case-folded and
/// display names are allocated once however many maps and rooms list them.
struct Entry {
    /// Case-folded account name.
    user_key: Arc<str>,
    /// Queue and close token.
    handle: SessionHandle,
    /// Rooms this session is in (canonical names, shared with `State::rooms`).
    rooms: Few<Arc<str>>,
}

/// An account that has at least one session online.
struct OnlineUser {
    /// Display name (case as registered).
    name: Arc<str>,
    /// Its sessions, usually one.
    sessions: Few<SessionId>,
}

/// A room with at least one member.
#[derive(Default)]
struct Room {
    /// Sessions in the room, with their handles so fan-out needs no lookups.
    sessions: Vec<(SessionId, SessionHandle)>,
    /// Members by case-folded name (so in the order `who` lists them): display name and
    /// how many of their sessions are in.
    members: BTreeMap<Arc<str>, (Arc<str>, usize)>,
    /// Joins and leaves not yet announced (large rooms only).
    pending: Option<Summary>,
    /// When the room got its first member (ms since the epoch); a room lasts while it
    /// has members.
    created_ms: u64,
}

impl Room {
    /// The first [`MAX_NAMES`] members in order, and how many there are in all.
    fn member_names(&self) -> Members {
        Members {
            names: self
                .members
                .values()
                .take(MAX_NAMES)
                .map(|(name, _)| name.to_string())
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
    /// This node's id, part of every session id it hands out.
    node: u16,
    /// Last session counter handed out.
    next_id: u64,
    /// Every authenticated session. Boxed entries keep the table's slots small: a hash
    /// table is up to half empty, and an empty slot costs what a full one does.
    sessions: HashMap<SessionId, Box<Entry>>,
    /// Authenticated sessions by the transport they came over.
    by_transport: PerTransport,
    /// Online accounts by case-folded name (boxed, as `sessions`).
    users: HashMap<Arc<str>, Box<OnlineUser>>,
    /// Rooms with members, by canonical name.
    rooms: HashMap<Arc<str>, Room>,
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
    fn part(
        &mut self,
        id: SessionId,
        user_key: &str,
        room_name: &str,
        reason: &str,
        message: Option<&str>,
    ) -> bool {
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
        let name = name.to_string();
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
                message: message.map(str::to_string),
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
    /// rooms with at least `large_room` members, handing out session ids of node 0.
    pub fn new(max_rooms: usize, large_room: usize) -> Hub {
        Hub::on_node(0, max_rooms, large_room)
    }

    /// Like [`Hub::new`], for node `node`: its session ids never collide with another
    /// node's.
    pub fn on_node(node: u16, max_rooms: usize, large_room: usize) -> Hub {
        Hub {
            state: Mutex::new(State {
                node,
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
        let id = SessionId::new(st.node, st.next_id);
        let user_key = match st.users.get_key_value(key.as_str()) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(key);
                let online = Box::new(OnlineUser {
                    name: Arc::from(user),
                    sessions: Few::default(),
                });
                st.users.insert(k.clone(), online);
                k
            }
        };
        if let Some(online) = st.users.get_mut(&user_key) {
            online.sessions.push(id);
        }
        st.by_transport.add(handle.transport(), 1);
        st.sessions.insert(
            id,
            Box::new(Entry {
                user_key,
                handle,
                rooms: Few::default(),
            }),
        );
        id
    }

    /// Removes a session: it leaves every room with `reason` (and the user's parting
    /// `message`), and the account goes offline if this was its last session. Returns
    /// the rooms the user left.
    pub fn disconnect(&self, id: SessionId, reason: &str, message: Option<&str>) -> Vec<String> {
        let mut st = self.lock();
        let Some(entry) = st.sessions.remove(&id) else {
            return Vec::new();
        };
        st.by_transport.sub(entry.handle.transport(), 1);
        let mut left = Vec::new();
        for room in entry.rooms.iter() {
            if st.part(id, &entry.user_key, room, reason, message) {
                left.push(room.to_string());
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
        if entry.rooms.iter().any(|r| &**r == room) {
            let members = rooms.get(room).map(Room::member_names).unwrap_or_default();
            return Ok((members, false));
        }
        if entry.rooms.len() >= self.max_rooms {
            return Err(RoomError::TooManyRooms);
        }
        let room_key = match rooms.get_key_value(room) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(room);
                let new = Room {
                    created_ms: crate::clock::now_ms(),
                    ..Room::default()
                };
                rooms.insert(k.clone(), new);
                k
            }
        };
        entry.rooms.push(room_key.clone());
        let key = entry.user_key.clone();
        let name = users
            .get(&key)
            .map_or_else(|| key.clone(), |u| u.name.clone());
        let Some(r) = rooms.get_mut(&room_key) else {
            return Err(RoomError::NoSession);
        };
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
                user: name.to_string(),
                event: PresenceEvent::Join,
                reason: None,
                message: None,
            });
            deliver_room(r, &join);
        }
        r.sessions.push((id, entry.handle.clone()));
        r.members.entry(key).or_insert((name, 0)).1 += 1;
        Ok((r.member_names(), first))
    }

    /// Takes session `id` out of `room`, announcing the leave with `reason` (and the
    /// user's parting `message`) if it was the user's last session there (then returns
    /// true).
    pub fn part_room(
        &self,
        id: SessionId,
        room: &str,
        reason: &str,
        message: Option<&str>,
    ) -> Result<bool, RoomError> {
        let mut st = self.lock();
        let entry = st.sessions.get_mut(&id).ok_or(RoomError::NoSession)?;
        let before = entry.rooms.len();
        entry.rooms.retain(|r| &**r != room);
        if entry.rooms.len() == before {
            return Err(RoomError::NotInRoom);
        }
        let key = entry.user_key.clone();
        Ok(st.part(id, &key, room, reason, message))
    }

    /// Whether session `id` is in `room`.
    pub fn in_room(&self, id: SessionId, room: &str) -> bool {
        self.lock()
            .sessions
            .get(&id)
            .is_some_and(|e| e.rooms.iter().any(|r| &**r == room))
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
            .is_some_and(|e| e.rooms.iter().any(|r| &**r == room));
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
        let Some(online) = st.users.get(name_key(user).as_str()) else {
            return 0;
        };
        for id in online.sessions.iter() {
            if let Some(e) = st.sessions.get(id) {
                e.handle.close(reason);
            }
        }
        online.sessions.len()
    }

    /// Everyone online with their sessions counted by transport, sorted
    /// case-insensitively.
    pub fn online_sessions(&self) -> Vec<(String, PerTransport)> {
        let st = self.lock();
        let mut keys: Vec<&Arc<str>> = st.users.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let user = &st.users[k];
                let mut per = PerTransport::default();
                for e in user.sessions.iter().filter_map(|id| st.sessions.get(id)) {
                    per.add(e.handle.transport(), 1);
                }
                (user.name.to_string(), per)
            })
            .collect()
    }

    /// Sends a frame to every session of `user`; false if they have none.
    pub fn send_to_user(&self, user: &str, frame: &ServerFrame) -> bool {
        let st = self.lock();
        let Some(online) = st.users.get(name_key(user).as_str()) else {
            return false;
        };
        let delivery = Delivery::one(frame.clone());
        for id in online.sessions.iter() {
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
        let target = st
            .users
            .get(to_key.as_str())
            .ok_or(PrivateError::NotOnline)?;
        let delivery = Delivery::one(frame_for(&target.name));
        let from_key = name_key(from);
        let sender = st
            .users
            .get(from_key.as_str())
            .filter(|_| from_key != to_key);
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
            .get(name_key(user).as_str())
            .map(|u| u.name.to_string())
    }

    /// When each room got its first member (ms since the epoch), by canonical name.
    pub fn rooms_created(&self) -> HashMap<String, u64> {
        let st = self.lock();
        st.rooms
            .iter()
            .map(|(name, r)| (name.to_string(), r.created_ms))
            .collect()
    }

    /// The rooms `user` is in with any of their sessions (canonical names, sorted).
    pub fn rooms_of(&self, user: &str) -> Vec<String> {
        let st = self.lock();
        let Some(online) = st.users.get(name_key(user).as_str()) else {
            return Vec::new();
        };
        let mut rooms: Vec<String> = online
            .sessions
            .iter()
            .filter_map(|id| st.sessions.get(id))
            .flat_map(|e| e.rooms.iter().map(|r| r.to_string()))
            .collect();
        rooms.sort();
        rooms.dedup();
        rooms
    }

    /// Names of everyone online, sorted case-insensitively.
    pub fn online_users(&self) -> Vec<String> {
        let st = self.lock();
        let mut keys: Vec<&Arc<str>> = st.users.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| st.users[k].name.to_string())
            .collect()
    }

    /// Every room with its member count, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let st = self.lock();
        let mut out: Vec<RoomInfo> = st
            .rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                name: name.to_string(),
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
            let Some(room) = st.rooms.get_mut(name.as_str()) else {
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

    /// Wakes every session whose deadline (ping or ping timeout) has passed by `now`
    /// ([`crate::outbox::Outbox::wake_if_due`]); returns how many it woke.
    pub fn wake_due(&self, now: tokio::time::Instant) -> usize {
        let st = self.lock();
        st.sessions
            .values()
            .filter(|e| e.handle.outbox.wake_if_due(now))
            .count()
    }

    /// Delivers to every session in `room` without asking who sent it (messages that
    /// came from another node); returns the sessions reached, 0 when it has none here.
    pub fn deliver_to_room(&self, room: &str, delivery: &Delivery) -> usize {
        self.lock()
            .rooms
            .get(room)
            .map_or(0, |r| deliver_room(r, delivery))
    }

    /// Announces that `name` joined (`joined`) or left `room` somewhere else (another
    /// node), as this hub announces its own: one notice, or in the next summary of a
    /// large room. Does nothing when the room has no members here.
    pub fn announce(
        &self,
        room: &str,
        name: &str,
        joined: bool,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let mut st = self.lock();
        let (closing, large_room) = (st.closing, st.large_room);
        let State { rooms, dirty, .. } = &mut *st;
        let Some(r) = rooms.get_mut(room) else { return };
        if r.members.len() >= large_room {
            let summary = r.pending.get_or_insert_with(|| {
                dirty.push(room.to_string());
                Summary::default()
            });
            if joined {
                note(&mut summary.joined, &mut summary.joined_more, name);
            } else {
                note(&mut summary.left, &mut summary.left_more, name);
            }
        } else if !closing {
            let event = if joined {
                PresenceEvent::Join
            } else {
                PresenceEvent::Leave
            };
            deliver_room(
                r,
                &Delivery::one(ServerFrame::Presence {
                    room: room.to_string(),
                    user: name.to_string(),
                    event,
                    reason: reason.map(str::to_string),
                    message: message.map(str::to_string),
                }),
            );
        }
    }

    /// Every member of `room` here: case-folded and display name, sorted by the first.
    pub fn room_members(&self, room: &str) -> Vec<(String, String)> {
        self.lock().rooms.get(room).map_or_else(Vec::new, |r| {
            r.members
                .iter()
                .map(|(k, (name, _))| (k.to_string(), name.to_string()))
                .collect()
        })
    }

    /// The display name of session `id`'s account and its transport.
    pub fn session_user(
        &self,
        id: SessionId,
    ) -> Option<(String, crate::transport_kind::TransportKind)> {
        let st = self.lock();
        let e = st.sessions.get(&id)?;
        let name = st.users.get(&e.user_key).map(|u| u.name.to_string())?;
        Some((name, e.handle.transport()))
    }

    /// Whether `room` has members here.
    pub fn has_room(&self, room: &str) -> bool {
        self.lock().rooms.contains_key(room)
    }

    /// Whether the account `user_key` (case-folded) has a session in `room`.
    pub fn is_member(&self, room: &str, user_key: &str) -> bool {
        self.lock()
            .rooms
            .get(room)
            .is_some_and(|r| r.members.contains_key(user_key))
    }

    /// Everyone online here: display name, sessions by transport, and the rooms any of
    /// their sessions is in (sorted). What another node needs to know of this one.
    pub fn snapshot(&self) -> Vec<(String, PerTransport, Vec<String>)> {
        let st = self.lock();
        st.users
            .values()
            .map(|u| {
                let mut per = PerTransport::default();
                let mut rooms = Vec::new();
                for e in u.sessions.iter().filter_map(|id| st.sessions.get(id)) {
                    per.add(e.handle.transport(), 1);
                    rooms.extend(e.rooms.iter().map(|r| r.to_string()));
                }
                rooms.sort();
                rooms.dedup();
                (u.name.to_string(), per, rooms)
            })
            .collect()
    }

    /// Number of authenticated sessions.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Authenticated sessions by the transport they came over.
    pub fn sessions_by_transport(&self) -> PerTransport {
        self.lock().by_transport
    }

    /// Marks the server as shutting down: no more presence notices.
    pub fn set_closing(&self) {
        self.lock().closing = true;
    }
}

#[cfg(test)]
mod tests;
