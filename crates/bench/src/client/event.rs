//! What a reader hands out: events, and their form before they borrow the reader.

use natter_proto::FrameId;

/// What a reader received.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A chat message (public, private, or a Redis message) with its sender if the
    /// protocol names it.
    Msg {
        /// Sender name, when the server tells it.
        from: Option<&'a [u8]>,
        /// Message text (JSON escapes already resolved).
        text: &'a [u8],
    },
    /// This session is now in a room (natter `joined`, IRC 366 end of NAMES, Redis
    /// subscribe reply); the room or channel name, without IRC's `#`.
    Joined(&'a [u8]),
    /// A liveness probe to answer with [`Writer::pong`](super::Writer::pong).
    Ping(PingArg),
    /// The server reported a protocol error (natter `error`, an IRC 4xx/5xx numeric, a
    /// RESP error) or sent something unparsable.
    Error(String),
    /// The server ended the session.
    Closed(String),
    /// natter's `ok`: a request sent with an id succeeded (for `public`, the message is
    /// stored: the server acknowledges only after the commit).
    Ack,
    /// Anything else (presence, other acknowledgements, frame types this generator does
    /// not know, ...).
    Other,
}

/// What a server's liveness probe carried, to be echoed in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingArg {
    /// natter's `ping` frame's id.
    Natter(Option<FrameId>),
    /// IRC's `PING` argument (everything after `PING `).
    Irc(String),
}

/// Where an event's bytes are: in the read buffer, or in the scratch buffer when the
/// full JSON parse had to unescape them.
#[derive(Clone, Copy)]
pub(super) enum Span {
    Buf(usize, usize),
    Scratch(usize, usize),
}

/// An event before it borrows the reader (so that parsing and refilling can be
/// interleaved without fighting the borrow checker).
pub(super) enum Raw {
    Msg { from: Option<Span>, text: Span },
    Joined(Span),
    Ping(PingArg),
    Error(String),
    Closed(String),
    Ack,
    Other,
}
