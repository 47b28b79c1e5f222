//! What the store makes good when Redis loses something: room gaps, a room's starting
//! point, and private messages kept pending while a node could not be reached.

use std::sync::Arc;
use std::time::Duration;

use natter_proto::ServerFrame;
use tokio_util::sync::CancellationToken;

use super::ClusterBus;
use super::wire::RoomMessage;
use crate::store::{StoredMessage, Target};

/// How long a gap may stay open before it is filled from the store: the missing
/// message is usually a publish still on its way.
pub const GAP_GRACE: Duration = Duration::from_millis(40);

/// How often every room with members here is compared with the store, for a lost
/// publish that no later message revealed.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Messages asked of the store at once when filling.
const FILL_PAGE: u32 = 500;

/// Pages filled per room per pass at most.
const FILL_PAGES: usize = 20;

/// The store's message as it travels between nodes (room messages only).
fn room_message(m: StoredMessage) -> Option<RoomMessage> {
    Some(RoomMessage {
        seq: m.room_seq?,
        id: m.id,
        from: m.msg.from,
        text: m.msg.text,
        ts: m.msg.ts,
    })
}

/// Delivers what the store has of `room` after sequence `after`.
async fn fill(bus: &ClusterBus, room: &str, mut after: u64) {
    for _ in 0..FILL_PAGES {
        match bus.store().room_since(room, after, FILL_PAGE).await {
            Ok(msgs) => {
                let full = msgs.len() == FILL_PAGE as usize;
                let msgs: Vec<RoomMessage> = msgs.into_iter().filter_map(room_message).collect();
                let Some(last) = msgs.last().map(|m| m.seq) else {
                    return;
                };
                bus.take_room(room, msgs);
                if !full {
                    return;
                }
                after = last;
            }
            Err(e) => {
                tracing::warn!(room, error = %e, "cannot fill a room's gap from the store");
                return;
            }
        }
    }
}

/// Fills gaps until `stop`: each gap after [`GAP_GRACE`], and every room every
/// [`CHECK_EVERY`].
pub async fn run(bus: Arc<ClusterBus>, stop: CancellationToken) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let rooms = tokio::select! {
            _ = stop.cancelled() => return,
            _ = bus.gap_opened() => {
                tokio::time::sleep(GAP_GRACE).await;
                bus.overdue(GAP_GRACE)
            }
            _ = every.tick() => bus.positions(),
        };
        for (room, after) in rooms {
            fill(&bus, &room, after).await;
        }
    }
}

/// Fills every room with members here (the link came back: anything may have been
/// missed).
pub async fn fill_all(bus: Arc<ClusterBus>) {
    for (room, after) in bus.positions() {
        fill(&bus, &room, after).await;
    }
}

/// Sets where `room` starts here (a first member joined): after its latest message in
/// the store, so a lost first publish is noticed by the periodic check.
pub fn start_room_later(bus: Arc<ClusterBus>, room: &str) {
    let room = room.to_string();
    tokio::spawn(async move {
        match bus.store().room_history(&room, None, 1).await {
            Ok(last) => {
                let latest = last.last().and_then(|m| m.room_seq).unwrap_or(0);
                bus.start_room(&room, latest);
            }
            Err(e) => tracing::warn!(room, error = %e, "cannot read a room's latest message"),
        }
    });
}

/// Delivers the pending private messages of everyone online here, each once (another
/// node stored them while it could not reach this one).
pub async fn deliver_pending(bus: Arc<ClusterBus>) {
    for user in bus.local_users() {
        let msgs = match bus.store().take_pending(&user).await {
            Ok(msgs) => msgs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot deliver pending private messages");
                return;
            }
        };
        for m in msgs {
            let Target::User { to, .. } = m.msg.target else {
                continue;
            };
            crate::bus::Bus::send_to_user(
                &*bus,
                &user,
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
}
