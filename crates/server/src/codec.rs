//! Wire formats: how a connection's bytes become [`ClientFrame`]s and how
//! [`ServerFrame`]s become bytes.
//!
//! A transport adapter (TCP, TLS, WebSocket; later IRC) owns one [`Codec`] and is the
//! only code that knows its format. The session sees frames only. Outgoing frames are
//! encoded by the recipient's [`Encoder`]; a frame fanned out to many recipients is
//! encoded at most once per format (see [`crate::delivery`]).

use natter_proto::{ClientFrame, FrameError, ServerFrame, decode_client, encode_into};

/// Formats a [`crate::delivery::Delivery`] can cache an encoding for at once.
pub const FORMATS: usize = 4;

/// Turns server frames into a connection's bytes.
pub trait Encoder: Send + Sync + 'static {
    /// This format's cache slot in a delivery, below [`FORMATS`]; two encoders share a
    /// slot only if they produce the same bytes for every frame.
    fn slot(&self) -> usize;
    /// Appends `frame`'s encoding, terminator included, to `out`.
    fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>);

    /// Whether this connection leaves out a delivery of these frames altogether (the IRC
    /// gateway: a client without echo-message does not get its own messages back). A
    /// delivery is skipped whole or kept whole, so its encoding stays shared.
    fn skips(&self, _frames: &[ServerFrame]) -> bool {
        false
    }

    /// Whether [`Encoder::skips`] can ever be true for this connection; asked once, so
    /// that fan-out to formats that never skip costs no call per delivery.
    fn may_skip(&self) -> bool {
        false
    }
}

/// A wire format in both directions.
pub trait Codec: Encoder {
    /// Decodes one unit of input (a line without its terminator, or one WebSocket
    /// message) into a frame, or classifies why it is not one.
    fn decode(&self, unit: &[u8]) -> Result<ClientFrame, FrameError>;
}

/// natter's own format: one JSON object per line (docs/PROTOCOL.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

/// The cache slot of [`JsonLines`].
pub const JSON_SLOT: usize = 0;

/// One shared [`JsonLines`] for every connection that speaks it (no allocation each).
pub fn json_lines() -> std::sync::Arc<JsonLines> {
    static JSON: std::sync::LazyLock<std::sync::Arc<JsonLines>> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(JsonLines));
    JSON.clone()
}

impl Encoder for JsonLines {
    fn slot(&self) -> usize {
        JSON_SLOT
    }

    fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>) {
        encode_into(frame, out);
    }
}

impl Codec for JsonLines {
    fn decode(&self, unit: &[u8]) -> Result<ClientFrame, FrameError> {
        decode_client(unit)
    }
}

impl<C: Encoder + ?Sized> Encoder for std::sync::Arc<C> {
    fn slot(&self) -> usize {
        (**self).slot()
    }

    fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>) {
        (**self).encode_into(frame, out);
    }

    fn skips(&self, frames: &[ServerFrame]) -> bool {
        (**self).skips(frames)
    }

    fn may_skip(&self) -> bool {
        (**self).may_skip()
    }
}

impl<C: Codec + ?Sized> Codec for std::sync::Arc<C> {
    fn decode(&self, unit: &[u8]) -> Result<ClientFrame, FrameError> {
        (**self).decode(unit)
    }
}
