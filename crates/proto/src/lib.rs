//! The natter wire protocol, shared by every transport and every client.
//!
//! A natter connection carries newline-delimited JSON objects ("frames"), each with a
//! `"type"` field. [`frame`] defines the frames, [`codec`] splits a byte stream into
//! bounded lines, and [`name`] validates user names. Nothing here does I/O policy:
//! the server, the terminal client, tests and benchmarks all build on these types.

pub mod codec;
pub mod frame;
pub mod fuzzing;
pub mod name;
pub mod text;

pub use codec::{CodecError, FrameError, LineCodec, clip, decode_client, decode_server, encode};
pub use frame::{ClientFrame, ErrorCode, FrameId, PresenceEvent, ServerFrame};
pub use name::{MAX_USERNAME_LEN, NameError, name_key, validate_username};
pub use text::neutralize;

/// Version of the protocol described in docs/PROTOCOL.md; sent in the server's `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted line in bytes, excluding the newline. Longer lines end the connection.
pub const MAX_LINE: usize = 16 * 1024;

/// Default TCP port of a natter server.
pub const DEFAULT_PORT: u16 = 9999;
