//! Per-room order on one node: room messages from this node's sessions and from other
//! nodes arrive in any order, and members here get them in sequence order, each once.
//!
//! The store numbers each room's messages 1, 2, 3, ... in commit order. For every room
//! with members here the sequencer knows the next number owed; a message with that
//! number goes out at once (with any held ones that follow it), a later one is held,
//! an earlier one was delivered already and is dropped. A room with held messages has
//! a gap: after a short grace (the missing message may simply be on its way) the
//! cluster bus fills it from the store. No I/O here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use natter_proto::ServerFrame;
use tokio::time::Instant;

/// Messages held per room at most; beyond, the oldest gap is given up (the messages
/// are in the history) so one broken room cannot grow without bound.
pub const MAX_HELD: usize = 4096;

/// One room's position.
#[derive(Debug)]
struct RoomSeq {
    /// The sequence number owed next.
    next: u64,
    /// Messages that came early, by sequence number.
    held: BTreeMap<u64, ServerFrame>,
    /// Since when something has been held.
    gap_since: Option<Instant>,
}

/// Every room's position on this node.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// By canonical room name.
    rooms: HashMap<String, RoomSeq>,
}

/// What [`Sequencer::accept`] decided.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    /// Frames to deliver now, in order.
    pub deliver: Vec<ServerFrame>,
    /// A gap opened (messages are held and were not before).
    pub gap: bool,
}

impl Sequencer {
    /// Whether the messages numbered `seqs` (ascending) are exactly the ones owed next
    /// in `room` with nothing held (or the room is new here): then they can be
    /// delivered as they are, and are marked delivered.
    pub fn fast_path(&mut self, room: &str, seqs: &[u64]) -> bool {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return false;
        };
        let contiguous = seqs.windows(2).all(|w| w[1] == w[0] + 1);
        if !contiguous {
            return false;
        }
        match self.rooms.get_mut(room) {
            None => {
                self.rooms.insert(
                    room.to_string(),
                    RoomSeq {
                        next: last + 1,
                        held: BTreeMap::new(),
                        gap_since: None,
                    },
                );
                true
            }
            Some(r) if r.next == first && r.held.is_empty() => {
                r.next = last + 1;
                true
            }
            Some(_) => false,
        }
    }

    /// Takes messages of `room` as `(sequence, frame)` pairs in any order: returns those
    /// to deliver now, in order. The first messages seen in a room set its start.
    pub fn accept(&mut self, room: &str, msgs: Vec<(u64, ServerFrame)>, now: Instant) -> Accepted {
        let Some(lowest) = msgs.iter().map(|(s, _)| *s).min() else {
            return Accepted::default();
        };
        let r = self
            .rooms
            .entry(room.to_string())
            .or_insert_with(|| RoomSeq {
                next: lowest,
                held: BTreeMap::new(),
                gap_since: None,
            });
        let had_gap = !r.held.is_empty();
        for (seq, frame) in msgs {
            if seq >= r.next {
                r.held.insert(seq, frame);
            }
        }
        let mut out = Accepted::default();
        while let Some(frame) = r.held.remove(&r.next) {
            out.deliver.push(frame);
            r.next += 1;
        }
        if r.held.len() > MAX_HELD {
            // Give up the oldest gap: skip to the first held message.
            if let Some(&first) = r.held.keys().next() {
                tracing::warn!(room, from = r.next, to = first, "gap given up");
                r.next = first;
                while let Some(frame) = r.held.remove(&r.next) {
                    out.deliver.push(frame);
                    r.next += 1;
                }
            }
        }
        if r.held.is_empty() {
            r.gap_since = None;
        } else if r.gap_since.is_none() {
            r.gap_since = Some(now);
        }
        out.gap = !had_gap && !r.held.is_empty();
        out
    }

    /// Sets where `room` starts when nothing has been seen of it yet: the next message
    /// owed is `next`.
    pub fn start_at(&mut self, room: &str, next: u64) {
        self.rooms
            .entry(room.to_string())
            .or_insert_with(|| RoomSeq {
                next,
                held: BTreeMap::new(),
                gap_since: None,
            });
    }

    /// Forgets `room` (it has no members here any more).
    pub fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Rooms whose gap is older than `grace`, with the last sequence delivered: where
    /// to fill from.
    pub fn overdue(&self, now: Instant, grace: Duration) -> Vec<(String, u64)> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.gap_since.is_some_and(|t| now.duration_since(t) >= grace))
            .map(|(name, r)| (name.clone(), r.next - 1))
            .collect()
    }

    /// Every room known, with the last sequence delivered (for the periodic check).
    pub fn positions(&self) -> Vec<(String, u64)> {
        self.rooms
            .iter()
            .map(|(name, r)| (name.clone(), r.next.saturating_sub(1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> (u64, ServerFrame) {
        (
            seq,
            ServerFrame::System {
                text: seq.to_string(),
            },
        )
    }

    fn texts(a: &Accepted) -> Vec<String> {
        a.deliver
            .iter()
            .map(|f| match f {
                ServerFrame::System { text } => text.clone(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn messages_go_out_in_sequence_order_once() {
        let mut s = Sequencer::default();
        let now = Instant::now();
        assert_eq!(texts(&s.accept("r", vec![msg(5)], now)), ["5"]);
        let early = s.accept("r", vec![msg(7), msg(8)], now);
        assert!(early.deliver.is_empty() && early.gap);
        assert_eq!(s.overdue(now, Duration::ZERO), [("r".to_string(), 5)]);
        assert!(s.overdue(now, Duration::from_secs(1)).is_empty());
        // The missing one arrives (from the store, or late from Redis), then duplicates.
        let filled = s.accept("r", vec![msg(6), msg(7)], now);
        assert_eq!(texts(&filled), ["6", "7", "8"]);
        assert!(!filled.gap);
        assert!(s.accept("r", vec![msg(6), msg(8)], now).deliver.is_empty());
        assert!(s.overdue(now, Duration::ZERO).is_empty());
        assert_eq!(s.positions(), [("r".to_string(), 8)]);
    }

    #[test]
    fn the_fast_path_takes_only_what_is_owed_next() {
        let mut s = Sequencer::default();
        assert!(s.fast_path("r", &[1, 2, 3]));
        assert!(s.fast_path("r", &[4]));
        assert!(!s.fast_path("r", &[6]), "5 is missing");
        assert!(!s.fast_path("r", &[5, 7]), "not contiguous");
        assert!(!s.fast_path("r", &[]));
        let now = Instant::now();
        s.accept("r", vec![msg(6)], now);
        assert!(
            !s.fast_path("r", &[5]),
            "6 is held: the slow path orders both"
        );
        assert_eq!(texts(&s.accept("r", vec![msg(5)], now)), ["5", "6"]);
        assert!(s.fast_path("r", &[7]));
    }

    #[test]
    fn a_start_is_kept_until_forgotten_and_held_messages_are_bounded() {
        let mut s = Sequencer::default();
        s.start_at("r", 10);
        s.start_at("r", 3);
        let now = Instant::now();
        assert!(s.accept("r", vec![msg(9)], now).deliver.is_empty());
        assert_eq!(texts(&s.accept("r", vec![msg(10)], now)), ["10"]);
        s.forget("r");
        assert_eq!(texts(&s.accept("r", vec![msg(2)], now)), ["2"]);
        let many: Vec<_> = (4..4 + MAX_HELD as u64 + 1).map(msg).collect();
        let given_up = s.accept("r", many, now);
        assert_eq!(given_up.deliver.len(), MAX_HELD + 1, "skipped past 3");
        assert!(s.overdue(now, Duration::ZERO).is_empty());
    }
}
