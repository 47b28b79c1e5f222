//! What a node does with the other nodes' envelopes.

use std::time::Duration;

use natter_proto::{ServerFrame, name_key};
use tokio::time::Instant;

use super::wire::{self, Body};
use super::{ClusterBus, fill, lock};
use crate::bus::Bus;
use crate::transcript::Event;

impl ClusterBus {
    /// An envelope published by any node (ours included, which is skipped).
    pub fn receive(&self, payload: &[u8]) {
        let Some(env) = wire::decode(payload) else {
            tracing::debug!("undecodable envelope on the cluster channel");
            return;
        };
        if env.node == self.node {
            return;
        }
        let node = env.node;
        let in_order = lock(&self.remote).heard(&node, env.n, Instant::now());
        if !in_order && !matches!(env.body, Body::Snapshot { .. }) {
            self.publish(Body::SnapshotPlease { to: node.clone() });
        }
        let hub = self.hub();
        match env.body {
            Body::Hello => {
                self.publish(self.snapshot());
                // It may have stored private messages as pending while it could not
                // reach us: deliver our users'.
                if let Some(me) = self.me.upgrade() {
                    tokio::spawn(fill::deliver_pending(me));
                }
            }
            Body::Heartbeat => {}
            Body::SnapshotPlease { to } => {
                if to == self.node {
                    self.publish(self.snapshot());
                }
            }
            Body::Snapshot { users } => {
                let changes = lock(&self.remote).replace(&node, users, Instant::now());
                // After the node's restart or our reconnect: joins and leaves we missed.
                self.announce(changes, "quit");
            }
            Body::Bye => self.node_lost(&node, "quit"),
            Body::Connect { user, transport } => {
                lock(&self.remote).connect(&node, &user, transport);
            }
            Body::Disconnect { user, transport } => {
                lock(&self.remote).disconnect(&node, &user, transport);
            }
            Body::Join { user, room } => {
                let key = name_key(&user);
                let before =
                    hub.is_member(&room, &key) || lock(&self.remote).is_member(&room, &key);
                lock(&self.remote).member(&node, &user, &room, true);
                if !before {
                    hub.announce(&room, &user, true, None, None);
                }
            }
            Body::Part {
                user,
                room,
                reason,
                message,
            } => {
                lock(&self.remote).member(&node, &user, &room, false);
                let key = name_key(&user);
                let after = hub.is_member(&room, &key) || lock(&self.remote).is_member(&room, &key);
                if !after {
                    hub.announce(&room, &user, false, Some(&reason), message.as_deref());
                }
            }
            Body::Room { room, msgs } => {
                for m in &msgs {
                    self.emit_remote(&Event::Room {
                        room: room.clone(),
                        from: m.from.clone(),
                        text: m.text.clone(),
                        ts_ms: m.ts,
                    });
                }
                self.take_room(&room, msgs);
            }
            Body::Private { from, to, frame } => {
                if let ServerFrame::Private { text, ts, .. } = &frame {
                    self.emit_remote(&Event::Private {
                        from: from.clone(),
                        to: to.clone(),
                        text: text.clone(),
                        ts_ms: *ts,
                    });
                }
                let delivered = hub.send_to_user(&to, &frame);
                if name_key(&from) != name_key(&to) {
                    hub.send_to_user(&from, &frame);
                }
                // Stored as pending by the sender's node: delivered now.
                if let (true, ServerFrame::Private { msg_id, .. }, Some(me)) =
                    (delivered, &frame, self.me.upgrade())
                {
                    let msg_id = *msg_id;
                    tokio::spawn(async move {
                        if let Err(e) = me.store.mark_delivered(msg_id).await {
                            tracing::warn!(error = %e, "cannot mark a private message delivered");
                        }
                    });
                }
            }
            Body::ToUser { user, frame } => {
                hub.send_to_user(&user, &frame);
            }
            Body::ToRoom { room, frame } => {
                hub.send_to_room(&room, &frame);
            }
            Body::Broadcast { frame } => {
                hub.broadcast(&frame);
            }
            Body::Kick { user, reason } => {
                hub.kick(&user, &reason);
            }
            Body::Mute { user, ms } => self.local.mute(&user, Duration::from_millis(ms)),
            Body::Unmute { user } => {
                self.local.unmute(&user);
            }
            Body::Feed { json } => self.monitor.publish_json(json.into()),
        }
    }

    /// Shows an event of another node on the consoles here (their feed is the
    /// cluster's).
    fn emit_remote(&self, event: &Event) {
        self.monitor.publish(event);
    }
}
