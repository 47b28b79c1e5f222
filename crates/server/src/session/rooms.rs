//! Rooms, members and history: `join`, `part`, `list`, `rooms`, `who` and `history`.

use natter_proto::{
    ErrorCode, FrameId, HistoryEntry, MAX_NAMES, MAX_ROOMS, ServerFrame, clip, neutralize,
    parse_room, validate_username,
};

use super::Session;
use crate::history::history_frames;
use crate::hub::{Members, RoomError};
use crate::store::Target;
use crate::transcript::Event;

impl Session {
    /// Validates a room name from the peer; reports `invalid_room` and returns `None`
    /// when it is not one.
    pub(super) fn room_arg(&self, id: &Option<FrameId>, room: &str) -> Option<String> {
        match parse_room(room) {
            Ok(room) => Some(room),
            Err(e) => {
                self.error(
                    id.clone(),
                    ErrorCode::InvalidRoom,
                    format!(
                        "'{}' is not a valid room name: {}",
                        neutralize(&clip(room)),
                        room_rule(&e)
                    ),
                );
                None
            }
        }
    }

    /// Joins `room`: `joined` with the members, then its latest history.
    pub(super) async fn join(&self, id: Option<FrameId>, room: &str) {
        let Some(me) = &self.user else { return };
        match self.shared.bus.join_room(me.id, room) {
            Ok((members, new_member)) => {
                if new_member {
                    self.shared.emit(Event::RoomPresence {
                        room: room.to_string(),
                        user: me.name.clone(),
                        joined: true,
                        reason: None,
                        ts_ms: crate::now_ms(),
                    });
                }
                let (members, more) = members_list(members);
                self.reply(&ServerFrame::Joined {
                    id,
                    room: room.to_string(),
                    members,
                    more,
                });
                self.shared.bus.joined(room).await;
                let limit = self.shared.config.history_on_join;
                self.send_history(None, Some(room.to_string()), None, None, limit)
                    .await;
            }
            Err(RoomError::TooManyRooms) => self.error(
                id,
                ErrorCode::TooManyRooms,
                format!(
                    "you are in {} rooms already; /part one first",
                    self.shared.config.max_rooms_per_session
                ),
            ),
            Err(RoomError::NotInRoom | RoomError::NoSession) => {}
        }
    }

    pub(super) fn part(&self, id: Option<FrameId>, room: &str, message: Option<&str>) {
        let Some(me) = &self.user else { return };
        match self.shared.bus.part_room(me.id, room, "part", message) {
            Ok(left) => {
                if left {
                    self.shared.emit(Event::RoomPresence {
                        room: room.to_string(),
                        user: me.name.clone(),
                        joined: false,
                        reason: Some("part".into()),
                        ts_ms: crate::now_ms(),
                    });
                }
                self.reply(&ServerFrame::Parted {
                    id,
                    room: room.to_string(),
                });
            }
            Err(_) => self.error(id, ErrorCode::NotInRoom, format!("you are not in #{room}")),
        }
    }

    pub(super) async fn history(
        &self,
        id: Option<FrameId>,
        room: Option<String>,
        with: Option<String>,
        before: Option<u64>,
        limit: Option<u32>,
    ) {
        let Some(me) = &self.user else { return };
        let limit = limit
            .unwrap_or(self.shared.config.history_on_join.max(1))
            .min(crate::config::MAX_HISTORY);
        match (room, with) {
            (Some(room), None) => {
                let Some(room) = self.room_arg(&id, &room) else {
                    return;
                };
                if !self.shared.bus.in_room(me.id, &room) {
                    self.error(
                        id,
                        ErrorCode::NotInRoom,
                        format!("join #{room} to read its history"),
                    );
                    return;
                }
                self.send_history(id, Some(room), None, before, limit).await;
            }
            (None, Some(with)) => {
                if validate_username(&with).is_err() {
                    self.error(
                        id,
                        ErrorCode::NoSuchUser,
                        format!("'{}' is not a valid user name", neutralize(&clip(&with))),
                    );
                    return;
                }
                self.send_history(id, None, Some(with), before, limit).await;
            }
            _ => self.error(
                id,
                ErrorCode::BadFrame,
                "history needs exactly one of 'room' and 'with'",
            ),
        }
    }

    /// Sends stored messages as `history` frames, split so every line fits.
    pub(super) async fn send_history(
        &self,
        id: Option<FrameId>,
        room: Option<String>,
        with: Option<String>,
        before: Option<u64>,
        limit: u32,
    ) {
        let Some(me) = &self.user else { return };
        let result = match (&room, &with) {
            (Some(room), _) => self.shared.store.room_history(room, before, limit).await,
            (None, Some(with)) => {
                self.shared
                    .store
                    .private_history(&me.name, with, before, limit)
                    .await
            }
            (None, None) => Ok(Vec::new()),
        };
        let msgs = match result {
            Ok(msgs) => msgs,
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        };
        let entries = msgs.into_iter().map(|m| HistoryEntry {
            msg_id: m.id,
            from: m.msg.from,
            to: match m.msg.target {
                Target::User { to, .. } => Some(to),
                Target::Room(_) => None,
            },
            text: m.msg.text,
            ts: m.msg.ts,
        });
        for frame in history_frames(id, room, with, entries) {
            self.reply(&frame);
        }
    }

    /// `list`: who is online.
    pub(super) fn list(&self, id: Option<FrameId>) {
        let (users, more) = cap_names(self.shared.bus.online_users());
        self.reply(&ServerFrame::List { id, users, more });
    }

    /// `rooms`: every room with its member count.
    pub(super) fn rooms(&self, id: Option<FrameId>) {
        let mut rooms = self.shared.bus.rooms();
        let more = rooms.len().saturating_sub(MAX_ROOMS);
        rooms.truncate(MAX_ROOMS);
        self.reply(&ServerFrame::Rooms {
            id,
            rooms,
            more: u32::try_from(more).unwrap_or(u32::MAX),
        });
    }

    /// `who`: the members of `room`.
    pub(super) fn who(&self, id: Option<FrameId>, room: String) {
        let (users, more) = members_list(self.shared.bus.who(&room).unwrap_or_default());
        self.reply(&ServerFrame::Who {
            id,
            room,
            users,
            more,
        });
    }
}

/// Explains why a room name was refused, in room-name terms.
fn room_rule(e: &natter_proto::NameError) -> String {
    use natter_proto::NameError;
    match e {
        NameError::Empty => "room name must not be empty".into(),
        NameError::TooLong => format!(
            "room name must be at most {} characters",
            natter_proto::MAX_USERNAME_LEN
        ),
        NameError::BadChar => {
            "room name may only contain ASCII letters, digits, '_' and '-' (after one optional '#')"
                .into()
        }
    }
}

/// A room's listed members and how many more there are, for `joined` and `who`.
fn members_list(m: Members) -> (Vec<String>, u32) {
    let more = m.total.saturating_sub(m.names.len());
    (m.names, u32::try_from(more).unwrap_or(u32::MAX))
}

/// Caps a name list at [`MAX_NAMES`], returning the names kept and how many were cut.
fn cap_names(mut names: Vec<String>) -> (Vec<String>, u32) {
    let more = names.len().saturating_sub(MAX_NAMES);
    names.truncate(MAX_NAMES);
    (names, u32::try_from(more).unwrap_or(u32::MAX))
}
