//! Admission of what a session sends: message text rules and the account's rate limits
//! (messages; joins and parts), with escalation to mutes and disconnection.

use natter_proto::{ErrorCode, FrameId, ServerFrame};
use tokio::time::Instant;

use super::{Flow, Session};
use crate::ratelimit::{MessageLimiter, Verdict};
use crate::transcript::Event;

impl Session {
    /// Checks a chat message's text against the text rules (not empty, not too long);
    /// `Err` once the error was reported.
    pub(super) fn check_text(&self, id: &Option<FrameId>, text: &str) -> Result<(), Flow> {
        if text.trim().is_empty() {
            self.error(id.clone(), ErrorCode::EmptyMessage, "message is empty");
            return Err(Flow::Continue);
        }
        let max = self.shared.config.max_message_bytes;
        if text.len() > max {
            self.error(
                id.clone(),
                ErrorCode::MessageTooLong,
                format!("message is {} bytes; the limit is {max}", text.len()),
            );
            return Err(Flow::Continue);
        }
        Ok(())
    }

    /// Takes a token from `limiter` for the logged-in account; on refusal reports it
    /// (rate limited, muted) and says what to do instead: the error was already
    /// reported, but for `Flow::Close` the caller still says bye.
    pub(super) fn admit_rate(
        &self,
        id: &Option<FrameId>,
        limiter: &MessageLimiter,
        spend: Spend,
    ) -> Result<(), Flow> {
        let Some(me) = &self.user else {
            return Err(Flow::Continue);
        };
        let nodes = self.shared.bus.nodes_of(&me.name);
        let verdict =
            limiter.check_shared(&natter_proto::name_key(&me.name), nodes, Instant::now());
        let not_done = spend.not_done();
        let retry = |d: std::time::Duration| Some(d.as_millis().max(1) as u64);
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Limited(wait) => {
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), ErrorCode::RateLimited.as_str());
                self.shared.emit(Event::System {
                    kind: "rate_limited",
                    detail: format!("user={}", me.name),
                    ts_ms: crate::now_ms(),
                });
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::RateLimited,
                    message: format!(
                        "slow down: {not_done}; you can {} again in {} ms",
                        spend.verb(),
                        wait.as_millis().max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::MutedByOperator(wait) => {
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), ErrorCode::Muted.as_str());
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::Muted,
                    message: format!(
                        "an operator muted you; {not_done}; the mute ends in {} s",
                        wait.as_millis().div_ceil(1000).max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::Muted(wait) => {
                self.shared
                    .metrics
                    .rejected(self.handle.transport(), ErrorCode::Muted.as_str());
                self.shared.emit(Event::System {
                    kind: "muted",
                    detail: format!("user={} secs={}", me.name, wait.as_millis().div_ceil(1000)),
                    ts_ms: crate::now_ms(),
                });
                tracing::info!(peer = %self.peer, user = %me.name, secs = wait.as_secs(), "muted for flooding");
                self.reply(&ServerFrame::Error {
                    id: id.clone(),
                    code: ErrorCode::Muted,
                    message: format!(
                        "you are muted for flooding; {not_done}; the mute ends in {} s",
                        wait.as_millis().div_ceil(1000).max(1)
                    ),
                    retry_after_ms: retry(wait),
                });
                Err(Flow::Continue)
            }
            Verdict::Disconnect => {
                tracing::warn!(peer = %self.peer, user = %me.name, what = spend.verb(), "disconnected for flooding");
                // The caller says bye, after publishing what was accepted before.
                Err(Flow::Close("disconnected for flooding".into()))
            }
        }
    }
}

/// What a rate-limit token pays for; names the refused action in errors.
#[derive(Debug, Clone, Copy)]
pub(super) enum Spend {
    /// A chat message (public or private).
    Message,
    /// Joining or leaving a room.
    RoomOp,
}

impl Spend {
    /// What did not happen, for the error message.
    fn not_done(self) -> &'static str {
        match self {
            Spend::Message => "message not sent",
            Spend::RoomOp => "too many joins and parts",
        }
    }

    /// What the user may do again later.
    fn verb(self) -> &'static str {
        match self {
            Spend::Message => "send",
            Spend::RoomOp => "join or leave rooms",
        }
    }
}
