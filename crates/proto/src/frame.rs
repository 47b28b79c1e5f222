//! Frame types: every JSON object that travels between client and server.
//!
//! Frames are serde enums tagged by `"type"` with snake_case names. Optional fields are
//! omitted when empty so that frames stay small on the wire.

use serde::{Deserialize, Serialize};

/// A client-chosen request id, echoed on the reply or error the request causes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FrameId {
    /// A numeric id.
    Num(u64),
    /// A string id.
    Str(String),
}

/// A frame sent by a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Log in, or create the account first when `register` is true.
    Auth {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Account name (see [`crate::validate_username`]).
        user: String,
        /// Password in clear; the transport is what protects it.
        password: String,
        /// Create the account instead of logging in.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        register: bool,
    },
    /// A message to a room the session has joined (`lobby` when `room` is absent).
    Public {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Target room; see [`crate::parse_room`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Message text.
        text: String,
        /// The client's own unique name for this message (1 to [`crate::MAX_ID_LEN`]
        /// bytes): a retried send with the same one gets the stored original back
        /// instead of a second copy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// A message to one user's sessions.
    Private {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Recipient's user name.
        to: String,
        /// Message text.
        text: String,
        /// As for [`ClientFrame::Public`]: the client's unique name for this message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// A notice to a room or to one user: delivered to whoever is there now, never
    /// stored (bots' output, IRC's NOTICE). Exactly one of `room` and `to`.
    Notice {
        /// Request id, echoed on errors only (a notice is not answered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Room name, for a notice to a room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Recipient's user name, for a notice to a user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Notice text.
        text: String,
    },
    /// Ask who is online.
    List {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Join a room, creating it if needed; answered with `joined` and `history`.
    Join {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Room name.
        room: String,
    },
    /// Leave a room; answered with `parted`.
    Part {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Room name.
        room: String,
        /// Parting words shown to the room's members (message text rules apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Ask for every room and its member count.
    Rooms {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Ask for a room's members.
    Who {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Room name.
        room: String,
    },
    /// Ask for stored messages of a room (`room`) or of a private conversation (`with`).
    History {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Room whose history to fetch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other participant of the private conversation to fetch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Only messages with a `msg_id` below this (paging backwards).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// How many messages at most (server default when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Liveness probe; the server answers `pong`.
    Ping {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Answer to a server `ping`.
    Pong {
        /// The id of the server's ping.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Leave gracefully; the server answers `bye` and closes.
    Quit {
        /// Request id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Parting words shown to the members of the user's rooms, when this was the
        /// user's last session (message text rules apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl ClientFrame {
    /// The request id carried by this frame, if any.
    pub fn id(&self) -> Option<&FrameId> {
        match self {
            ClientFrame::Auth { id, .. }
            | ClientFrame::Public { id, .. }
            | ClientFrame::Private { id, .. }
            | ClientFrame::Notice { id, .. }
            | ClientFrame::List { id }
            | ClientFrame::Join { id, .. }
            | ClientFrame::Part { id, .. }
            | ClientFrame::Rooms { id }
            | ClientFrame::Who { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::Ping { id }
            | ClientFrame::Pong { id }
            | ClientFrame::Quit { id, .. } => id.as_ref(),
        }
    }

    /// The frame's `type` name as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Public { .. } => "public",
            ClientFrame::Private { .. } => "private",
            ClientFrame::Notice { .. } => "notice",
            ClientFrame::List { .. } => "list",
            ClientFrame::Join { .. } => "join",
            ClientFrame::Part { .. } => "part",
            ClientFrame::Rooms { .. } => "rooms",
            ClientFrame::Who { .. } => "who",
            ClientFrame::History { .. } => "history",
            ClientFrame::Ping { .. } => "ping",
            ClientFrame::Pong { .. } => "pong",
            ClientFrame::Quit { .. } => "quit",
        }
    }
}

/// Whether a presence notice reports someone arriving or leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    /// The user's first session entered the room.
    Join,
    /// The user's last session left the room.
    Leave,
}

/// Machine-readable reason carried by an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not valid JSON.
    BadJson,
    /// The line is not valid UTF-8.
    BadUtf8,
    /// Valid JSON, but not a known frame: unknown type, missing or wrong-typed field.
    BadFrame,
    /// The line exceeded the maximum length; the server closes the connection.
    LineTooLong,
    /// The frame needs a logged-in session.
    NotAuthenticated,
    /// `auth` on a session that is already logged in.
    AlreadyAuthenticated,
    /// Wrong user name or password (deliberately not saying which).
    AuthFailed,
    /// The user name breaks the naming rules.
    InvalidUsername,
    /// The password breaks the password rules.
    InvalidPassword,
    /// Registration of a name that already exists.
    UsernameTaken,
    /// A message with no visible text.
    EmptyMessage,
    /// A message longer than the server allows.
    MessageTooLong,
    /// A private message to a name with no account.
    NoSuchUser,
    /// A private message to a user with no session online.
    UserOffline,
    /// Too many frames before logging in; the server closes the connection.
    TooManyFrames,
    /// The room name breaks the naming rules.
    InvalidRoom,
    /// The session is not in that room.
    NotInRoom,
    /// The session is already in as many rooms as allowed.
    TooManyRooms,
    /// Sending too fast; `retry_after_ms` says when sending works again.
    RateLimited,
    /// Muted for flooding or by an operator; `retry_after_ms` says when the mute ends.
    Muted,
    /// The account is banned by an operator; login is refused.
    Banned,
    /// The server or this address has too many connections; the server closes.
    TooManyConnections,
    /// The server failed internally; details are in its log.
    Internal,
    /// A request id longer than [`crate::MAX_ID_LEN`] bytes.
    IdTooLong,
    /// The database is unreachable for now: the request had no effect and may be
    /// retried shortly.
    Unavailable,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code's wire name, e.g. `"auth_failed"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadUtf8 => "bad_utf8",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AlreadyAuthenticated => "already_authenticated",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::InvalidPassword => "invalid_password",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::NoSuchUser => "no_such_user",
            ErrorCode::UserOffline => "user_offline",
            ErrorCode::TooManyFrames => "too_many_frames",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Muted => "muted",
            ErrorCode::Banned => "banned",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::Internal => "internal",
            ErrorCode::IdTooLong => "id_too_long",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A room and how many users are in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Canonical room name.
    pub name: String,
    /// Users in the room.
    pub members: u32,
}

/// One stored message in a `history` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Server-assigned message id.
    pub msg_id: u64,
    /// Sender's user name.
    pub from: String,
    /// Recipient, for private messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Message text.
    pub text: String,
    /// Server time of acceptance, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A frame sent by the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        /// Always `"natter"`.
        server: String,
        /// Server software version.
        version: String,
        /// Protocol version, see [`crate::PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// Login (or registration and login) succeeded.
    AuthOk {
        /// Echo of the `auth` frame's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The account name as it was registered (original case).
        user: String,
        /// True when this `auth` created the account.
        #[serde(default)]
        registered: bool,
    },
    /// A message in a room, delivered to every session in the room.
    Public {
        /// Server-assigned message id (increasing; use it to page history).
        msg_id: u64,
        /// The room.
        room: String,
        /// Sender's user name.
        from: String,
        /// Message text.
        text: String,
        /// Server time of acceptance, milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A notice (never stored), to a room's members or to a user's sessions, and to the
    /// sender's.
    Notice {
        /// The room, for a notice to a room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Sender's user name.
        from: String,
        /// Recipient's user name, for a notice to a user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Notice text.
        text: String,
        /// Server time, milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A private message, delivered to the recipient's and the sender's sessions.
    Private {
        /// Server-assigned message id.
        msg_id: u64,
        /// Sender's user name.
        from: String,
        /// Recipient's user name.
        to: String,
        /// Message text.
        text: String,
        /// Server time of acceptance, milliseconds since the Unix epoch.
        ts: u64,
        /// True when it was stored while the recipient was offline and is delivered now.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    /// A private message to an offline user was stored for later delivery.
    Queued {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The stored message's id.
        msg_id: u64,
        /// The offline recipient.
        to: String,
    },
    /// This session joined a room.
    Joined {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The room (canonical name).
        room: String,
        /// Members now in the room, sorted case-insensitively (at most
        /// [`crate::MAX_NAMES`]).
        members: Vec<String>,
        /// How many further members were left out to keep the line short.
        #[serde(default, skip_serializing_if = "is_zero")]
        more: u32,
    },
    /// This session left a room.
    Parted {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The room.
        room: String,
    },
    /// Answer to `rooms`.
    Rooms {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Rooms with members, sorted by name (at most [`crate::MAX_NAMES`]).
        rooms: Vec<RoomInfo>,
        /// How many further rooms were left out.
        #[serde(default, skip_serializing_if = "is_zero")]
        more: u32,
    },
    /// Answer to `who`.
    Who {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The room.
        room: String,
        /// Its members, sorted case-insensitively (at most [`crate::MAX_NAMES`]).
        users: Vec<String>,
        /// How many further members were left out.
        #[serde(default, skip_serializing_if = "is_zero")]
        more: u32,
    },
    /// Stored messages, oldest first: after `joined`, or in answer to `history`.
    History {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// The room, for room history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other participant, for private history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// The messages of this chunk.
        messages: Vec<HistoryEntry>,
        /// True on the final chunk of this answer (an answer is split so that every
        /// line fits the line limit).
        last: bool,
    },
    /// A notice from the server itself (shutdown, announcements).
    System {
        /// Human-readable text.
        text: String,
    },
    /// Someone entered or left a room.
    Presence {
        /// The room.
        room: String,
        /// The user concerned.
        user: String,
        /// Join or leave.
        event: PresenceEvent,
        /// Why they left (`"quit"`, `"connection lost"`, ...), on leave only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The user's parting words (`part` or `quit` with a message), on leave only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Joins and leaves in a large room, summarised (instead of one `presence` frame per
    /// user) at most about once a second.
    PresenceSummary {
        /// The room.
        room: String,
        /// Members after these changes.
        members: u32,
        /// Users who joined since the last summary, in order (at most 50).
        joined: Vec<String>,
        /// Further joins not listed.
        #[serde(default)]
        joined_more: u32,
        /// Users who left since the last summary, in order (at most 50).
        left: Vec<String>,
        /// Further leaves not listed.
        #[serde(default)]
        left_more: u32,
    },
    /// Answer to `list`: the users online, sorted case-insensitively.
    List {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// User names (at most [`crate::MAX_NAMES`]).
        users: Vec<String>,
        /// How many further users were left out.
        #[serde(default, skip_serializing_if = "is_zero")]
        more: u32,
    },
    /// Acknowledges a request that has no other reply (only sent when it carried an id).
    Ok {
        /// Echo of the request id.
        id: FrameId,
    },
    /// A request failed, or the connection is about to end for a protocol violation.
    Error {
        /// Echo of the id of the request that failed, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation, safe to show to the user.
        message: String,
        /// For `rate_limited` and `muted`: milliseconds until sending works again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Liveness probe; answer with `pong` carrying the same id.
    Ping {
        /// Probe id to echo.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Answer to a client `ping`.
    Pong {
        /// Echo of the ping's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FrameId>,
    },
    /// Last frame before the server closes the connection.
    Bye {
        /// Why the connection ends.
        reason: String,
    },
}

impl ServerFrame {
    /// Shorthand for an `error` frame.
    pub fn error(id: Option<FrameId>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            id,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_round_trip_with_wire_names() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"auth","user":"al","password":"pw","id":7}"#)
                .expect("auth decodes");
        assert_eq!(
            f,
            ClientFrame::Auth {
                id: Some(FrameId::Num(7)),
                user: "al".into(),
                password: "pw".into(),
                register: false
            }
        );
        let f: ClientFrame =
            serde_json::from_str(r##"{"type":"join","room":"#Rust"}"##).expect("join decodes");
        assert_eq!(
            f,
            ClientFrame::Join {
                id: None,
                room: "#Rust".into()
            }
        );
        let json = serde_json::to_string(&ClientFrame::Private {
            id: Some(FrameId::Str("x".into())),
            to: "bo".into(),
            text: "hi".into(),
            client_id: None,
        })
        .expect("encodes");
        assert_eq!(json, r#"{"type":"private","id":"x","to":"bo","text":"hi"}"#);
    }

    #[test]
    fn server_frames_use_snake_case_tags() {
        let json = serde_json::to_string(&ServerFrame::AuthOk {
            id: None,
            user: "al".into(),
            registered: true,
        })
        .expect("encodes");
        assert_eq!(json, r#"{"type":"auth_ok","user":"al","registered":true}"#);
        let json = serde_json::to_string(&ServerFrame::error(
            None,
            ErrorCode::UserOffline,
            "bob is not online",
        ))
        .expect("encodes");
        assert_eq!(
            json,
            r#"{"type":"error","code":"user_offline","message":"bob is not online"}"#
        );
    }

    #[test]
    fn unknown_error_codes_decode_as_unknown() {
        let f: ServerFrame =
            serde_json::from_str(r#"{"type":"error","code":"from_the_future","message":"m"}"#)
                .expect("decodes");
        assert!(matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn unknown_fields_in_client_frames_are_ignored_for_forward_compatibility() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"list","colour":"red"}"#)
            .expect("extra fields are tolerated");
        assert_eq!(f, ClientFrame::List { id: None });
    }
}
