//! A session's handle as the hub holds it: its outbox, its wire format, its closer.

use std::sync::Arc;

use bytes::Bytes;
use natter_proto::ServerFrame;
use tokio_util::sync::CancellationToken;

use crate::codec::{Encoder, json_lines};
use crate::delivery::Delivery;
use crate::outbox::{Outbox, Push};
use crate::transport_kind::TransportKind;

/// The hub's handle on one session: its outgoing queue, its wire format, and the way to
/// end it.
#[derive(Clone)]
pub struct SessionHandle {
    /// The session's bounded outgoing queue of encoded frames.
    pub outbox: Arc<Outbox>,
    /// The server's shutdown token, shared by every session; closing one session for a
    /// reason goes through its outbox ([`Outbox::closing`]).
    token: CancellationToken,
    /// Encodes frames in the format of the session's transport.
    encoder: Arc<dyn Encoder>,
    /// Whether the encoder may leave deliveries out ([`Encoder::may_skip`]).
    may_skip: bool,
    /// Whether the session joins the lobby when it logs in (natter's clients expect it;
    /// IRC clients join the channels they were told to).
    lobby: bool,
    /// The transport the session came over (a label for metrics and the console).
    transport: TransportKind,
}

impl SessionHandle {
    /// A handle on `outbox`, encoding with `encoder`, ending when `token` (the server's
    /// shutdown token) is cancelled or the session is closed, for a session that came
    /// over `transport`.
    pub fn new(
        outbox: Arc<Outbox>,
        token: CancellationToken,
        encoder: Arc<dyn Encoder>,
        transport: TransportKind,
    ) -> Self {
        SessionHandle {
            may_skip: encoder.may_skip(),
            lobby: true,
            outbox,
            token,
            encoder,
            transport,
        }
    }

    /// A handle on a new outbox of at most `max_frames` frames that a writer task
    /// drains, in natter's JSON format, with a token of its own (transport `natter`).
    pub fn queued(max_frames: usize) -> SessionHandle {
        SessionHandle::new(
            Arc::new(Outbox::new(max_frames)),
            CancellationToken::new(),
            json_lines(),
            TransportKind::Natter,
        )
    }

    /// This handle, for a session that does not join the lobby when it logs in.
    pub fn without_lobby(mut self) -> SessionHandle {
        self.lobby = false;
        self
    }

    /// Whether the session joins the lobby when it logs in.
    pub fn joins_lobby(&self) -> bool {
        self.lobby
    }

    /// The transport the session came over.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Asks the session to end for `reason` (first reason wins).
    pub fn close(&self, reason: impl Into<String>) {
        self.outbox.set_close_reason(reason.into());
    }

    /// Resolves once the session must end: [`SessionHandle::close`] was called, a write
    /// failed, or the server is shutting down.
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = self.outbox.closing() => {}
        }
    }

    /// The reason given to [`SessionHandle::close`], if any (none on shutdown).
    pub fn close_reason(&self) -> Option<&str> {
        self.outbox.close_reason()
    }

    /// The session's wire format.
    pub fn encoder(&self) -> &dyn Encoder {
        &*self.encoder
    }

    /// Queues a shared delivery in this session's format without waiting (unless its
    /// format leaves it out, see [`Encoder::skips`]); a full queue closes the session.
    pub fn deliver(&self, delivery: &Delivery) {
        if self.may_skip && self.encoder.skips(delivery.frames()) {
            return;
        }
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

    fn push(&self, bytes: &Bytes, frames: usize) {
        match self.outbox.push(bytes, frames) {
            Push::Queued => {}
            Push::Full => self.close("slow consumer: outgoing queue full"),
            // The session is already ending; nothing to do.
            Push::Closed => {}
        }
    }
}
