//! Private messages: delivered to every session of the recipient and of the sender once
//! stored, or kept for the recipient's next login when they are offline (then delivered
//! exactly once, marked late).

use natter_proto::{ErrorCode, FrameId, ServerFrame};

use super::commit::{Committed, PrivateSent};
use super::{Flow, Session, internal};
use crate::store::{StoreError, StoredMessage, Target};
use crate::transcript::Event;

impl Session {
    /// Queues a private message (checked: a valid recipient name, text and rate
    /// admitted) for storage; it is delivered once committed (see
    /// [`Session::deliver_private`]), while the session goes on reading.
    pub(super) async fn private(
        &mut self,
        id: Option<FrameId>,
        to: &str,
        text: &str,
        client_id: Option<String>,
    ) -> Flow {
        if self.user.is_none() {
            return Flow::Continue;
        }
        // The recipient's display name, and whether they exist at all.
        let (to_name, online) = match self.shared.bus.online_name(to) {
            Some(name) => (name, true),
            None => match self.shared.store.get_user(to).await {
                Ok(Some(r)) => (r.name, false),
                Ok(None) => {
                    self.error(id, ErrorCode::NoSuchUser, format!("no user named '{to}'"));
                    return Flow::Continue;
                }
                Err(e) => {
                    self.fail(id, &e);
                    return Flow::Continue;
                }
            },
        };
        let target = Target::User {
            to: to_name.clone(),
            // Someone reached only through another node stays pending until that node
            // delivered it (a node lost meanwhile loses nothing).
            pending: !online || !self.shared.bus.delivers_here(&to_name),
        };
        let Some(msg) = self.new_message(&id, target, text, client_id) else {
            return Flow::Continue;
        };
        match self.shared.store.queue_message(msg).await {
            Ok(commit) => self.inflight.push_back(Box::pin(async move {
                Committed::Private(PrivateSent {
                    id,
                    to: to_name,
                    online,
                    result: commit.await,
                })
            })),
            Err(e) => self.fail(id, &e),
        }
        Flow::Continue
    }

    /// Delivers a committed private message to the recipient's and the sender's
    /// sessions, or queues it for the recipient's next login if they are offline.
    pub(super) async fn deliver_private(&self, sent: PrivateSent) {
        let Some(me) = &self.user else { return };
        let PrivateSent {
            id,
            to: to_name,
            online,
            result,
        } = sent;
        let StoredMessage {
            id: msg_id, msg, ..
        } = match result {
            Ok(stored) => stored,
            Err(StoreError::Duplicate(original)) => {
                // A retry of a message stored before: the original, once.
                self.reply(&super::commit::original_frame(&original));
                self.ok(id);
                return;
            }
            Err(e) => {
                self.fail(id, &e);
                return;
            }
        };
        self.shared
            .emit_message(Event::Private {
                from: msg.from.clone(),
                to: to_name.clone(),
                text: msg.text.clone(),
                ts_ms: msg.ts,
            })
            .await;
        let frame = |to: &str| ServerFrame::Private {
            msg_id,
            from: msg.from.clone(),
            to: to.to_string(),
            text: msg.text.clone(),
            ts: msg.ts,
            late: false,
        };
        let started = std::time::Instant::now();
        let copies = if online {
            self.shared
                .bus
                .send_private(&me.name, &to_name, &frame)
                .ok()
        } else {
            None
        };
        self.shared.metrics.message(
            "private",
            self.handle.transport(),
            copies.unwrap_or(0),
            started.elapsed(),
        );
        if copies.is_some() {
            self.ok(id);
            return;
        }
        if online {
            // They went offline between the check and the delivery: queue it after all.
            if let Err(e) = self.shared.store.mark_pending(msg_id).await {
                self.fail(id, &e);
                return;
            }
        }
        // The sender's own sessions see the message in the conversation.
        self.shared.bus.send_to_user(&me.name, &frame(&to_name));
        self.reply(&ServerFrame::Queued {
            id,
            msg_id,
            to: to_name.clone(),
        });
        // They may have logged in while it was being stored, after their login took
        // the queue; taking it again delivers it now (each message goes out once).
        if self.shared.bus.online_name(&to_name).is_some() {
            self.deliver_pending(&to_name).await;
        }
    }

    /// Delivers the private messages queued for `user` to all their sessions, once.
    pub(super) async fn deliver_pending(&self, user: &str) {
        match self.shared.store.take_pending(user).await {
            Ok(msgs) => {
                for m in msgs {
                    let Target::User { to, .. } = m.msg.target else {
                        continue;
                    };
                    self.shared.metrics.deliveries("private", 1);
                    self.shared.bus.send_to_user(
                        user,
                        &ServerFrame::Private {
                            msg_id: m.id,
                            from: m.msg.from,
                            to,
                            text: m.msg.text,
                            ts: m.msg.ts,
                            late: true,
                        },
                    );
                }
            }
            Err(e) => {
                internal(&e);
            }
        }
    }
}
