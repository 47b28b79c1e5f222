//! The natter wire protocol, shared by every transport and every client.
//!
//! A natter connection carries newline-delimited JSON objects ("frames"), each with a
//! `"type"` field. [`frame`] defines the frames, [`codec`] splits a byte stream into
//! bounded lines, and [`name`] validates user names. Nothing here does I/O policy:
//! the server, the terminal client, tests and benchmarks all build on these types.

pub mod codec;
pub mod frame;
pub mod fuzzing;
mod members;
pub mod name;
pub mod text;

pub use codec::{
    CodecError, FrameError, LineCodec, clip, decode_client, decode_server, encode, encode_into,
};
pub use frame::{
    ClientFrame, ErrorCode, FrameId, HistoryEntry, PresenceEvent, RoomInfo, ServerFrame,
};
pub use name::{
    DEFAULT_ROOM, MAX_USERNAME_LEN, NameError, name_key, parse_room, validate_username,
};
pub use text::neutralize;

/// Version of the protocol described in docs/PROTOCOL.md; sent in the server's `hello`.
/// Version 3 added `presence_summary` (joins and leaves of large rooms, about once a
/// second) and pipelined `public` messages; version 2 servers never send it.
pub const PROTOCOL_VERSION: u32 = 3;

/// Longest accepted line in bytes, excluding the newline. Longer lines end the connection.
pub const MAX_LINE: usize = 16 * 1024;

/// Longest string request id, in bytes; longer ids are refused so echoes stay small.
pub const MAX_ID_LEN: usize = 64;

/// Most names (users, rooms) in one list frame; the rest are counted in `more`.
/// 400 names of at most 32 characters fit comfortably in one line.
pub const MAX_NAMES: usize = 400;

/// Most rooms in one `rooms` frame; the rest are counted in `more`. A room entry takes
/// up to 65 bytes, so 200 fit in one line with the worst-case id (400 would not).
pub const MAX_ROOMS: usize = 200;

/// Default TCP port of a natter server.
pub const DEFAULT_PORT: u16 = 9999;
