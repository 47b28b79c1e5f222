//! `history` answers split into frames that each fit in one line (PROTOCOL.md §5.8).
//!
//! Sizes are measured by encoding: the frame around the messages (type, the echoed id
//! with its JSON escapes, room or user name, flag) and each message as it will be
//! written, so no estimate can be off.

use std::io;

use natter_proto::{FrameId, HistoryEntry, MAX_ID_LEN, MAX_LINE, MAX_USERNAME_LEN, ServerFrame};

/// Decimal digits of the largest `u64` (`msg_id`, `ts`).
const U64_DIGITS: usize = 20;

/// Bytes of the longest line holding one stored message, besides the message's text:
/// a private `history` frame whose echoed id is 64 control characters (`\u0001` is six
/// bytes once escaped), with 32-character `with`, `from` and `to` and the largest ids
/// and timestamp. `crate::config::MAX_MESSAGE_BYTES` is derived from it.
pub const WORST_OVERHEAD: usize = r#"{"type":"history","id":"","with":"","messages":[{"msg_id":,"from":"","to":"","text":"","ts":}],"last":false}"#.len()
    + 6 * MAX_ID_LEN
    + 3 * MAX_USERNAME_LEN
    + 2 * U64_DIGITS;

/// Marks a stored message shortened to fit in a line.
const CUT: char = '…';

/// Splits history entries into `history` frames whose encoded lines stay within the
/// protocol's line limit; the last frame has `last: true` (there is always one).
///
/// A message too long to fit in a line with the envelope, which only a message stored
/// under a larger, older limit can be, is shortened and ends with `…`.
pub fn history_frames(
    id: Option<FrameId>,
    room: Option<String>,
    with: Option<String>,
    entries: impl Iterator<Item = HistoryEntry>,
) -> Vec<ServerFrame> {
    let envelope = json_len(&ServerFrame::History {
        id: id.clone(),
        room: room.clone(),
        with: with.clone(),
        messages: Vec::new(),
        // The longer of the two values, so the measure holds for every chunk.
        last: false,
    });
    // What the messages of one frame may take, commas included.
    let budget = MAX_LINE.saturating_sub(envelope);
    let mut chunks: Vec<Vec<HistoryEntry>> = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let e = fit(e, budget);
        let n = json_len(&e);
        // After the first message of a frame, each one also takes a comma.
        if size > 0 && size + 1 + n > budget {
            chunks.push(Vec::new());
            size = 0;
        }
        size += usize::from(size > 0) + n;
        if let Some(c) = chunks.last_mut() {
            c.push(e);
        }
    }
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, messages)| ServerFrame::History {
            id: id.clone(),
            room: room.clone(),
            with: with.clone(),
            messages,
            last: i + 1 == count,
        })
        .collect()
}

/// Shortens `e`'s text, if needed, so that it encodes in at most `room` bytes.
fn fit(mut e: HistoryEntry, room: usize) -> HistoryEntry {
    let len = json_len(&e);
    if len <= room {
        return e;
    }
    // Drop characters from the end until their escaped size covers the excess and the
    // mark. Bounded by the text's length.
    let mut drop = len - room + CUT.len_utf8();
    let mut cut = e.text.len();
    for (i, c) in e.text.char_indices().rev() {
        if drop == 0 {
            break;
        }
        drop = drop.saturating_sub(escaped_len(c));
        cut = i;
    }
    e.text.truncate(cut);
    e.text.push(CUT);
    if json_len(&e) > room {
        // Only when even the names and numbers do not fit; cannot happen within
        // MAX_LINE, but the line limit must hold whatever is stored.
        e.text = CUT.to_string();
    }
    e
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

/// Length of `value` encoded as compact JSON, without building the bytes.
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    let mut count = Count(0);
    // Writing to a counter cannot fail, and frames are plain data; on failure the
    // largest size makes the caller treat the value as not fitting.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX / 2,
    }
}

/// An `io::Write` that only counts bytes.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_proto::{encode, neutralize};

    /// The longest id there is once escaped.
    fn worst_id() -> Option<FrameId> {
        Some(FrameId::Str("\u{1}".repeat(MAX_ID_LEN)))
    }

    fn entry(msg_id: u64, text: &str) -> HistoryEntry {
        HistoryEntry {
            msg_id,
            from: "x".repeat(MAX_USERNAME_LEN),
            to: Some("y".repeat(MAX_USERNAME_LEN)),
            text: text.to_string(),
            ts: u64::MAX,
        }
    }

    /// Encodes `frames`, checks every line against the limit and `last` flags, and
    /// returns the messages in order.
    fn lines_fit(frames: &[ServerFrame]) -> Vec<HistoryEntry> {
        let mut all = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let line = encode(f);
            assert!(line.len() - 1 <= MAX_LINE, "a {}-byte line", line.len() - 1);
            let ServerFrame::History { messages, last, .. } = f else {
                panic!("history frame");
            };
            assert_eq!(*last, i + 1 == frames.len());
            all.extend(messages.iter().cloned());
        }
        all
    }

    #[test]
    fn the_worst_overhead_is_what_encoding_the_worst_frame_measures() {
        let text = neutralize(&"\u{7f}".repeat(crate::config::MAX_MESSAGE_BYTES)).into_owned();
        let frame = ServerFrame::History {
            id: worst_id(),
            room: None,
            with: Some("y".repeat(MAX_USERNAME_LEN)),
            messages: vec![HistoryEntry {
                msg_id: u64::MAX,
                ..entry(0, &text)
            }],
            last: false,
        };
        let line = encode(&frame).len() - 1;
        assert_eq!(line - text.len(), WORST_OVERHEAD);
        assert!(line <= MAX_LINE, "{line}");
        // The limit is as large as it can be.
        assert!(line + 3 > MAX_LINE, "{line}");
    }

    #[test]
    fn the_longest_messages_go_one_per_line_with_the_longest_id() {
        let text = neutralize(&"\u{7f}".repeat(crate::config::MAX_MESSAGE_BYTES)).into_owned();
        let entries = (0..20).map(|i| HistoryEntry {
            msg_id: u64::MAX - i,
            ..entry(0, &text)
        });
        let frames = history_frames(worst_id(), None, Some("y".repeat(32)), entries);
        assert_eq!(frames.len(), 20, "one huge message per frame");
        let all = lines_fit(&frames);
        assert_eq!(all.len(), 20);
        assert!(all.iter().all(|e| e.text == text), "nothing shortened");
        let frames = history_frames(
            worst_id(),
            Some("r".repeat(32)),
            None,
            (0..3).map(|i| entry(i, &text)),
        );
        assert_eq!(lines_fit(&frames).len(), 3);
    }

    #[test]
    fn lines_are_filled_up_to_the_limit_and_not_beyond() {
        // Messages of every size around the chunk boundary.
        for size in [1, 50, 333, 1000, 4096, 5000] {
            let entries: Vec<_> = (0..200).map(|i| entry(i, &"\"".repeat(size))).collect();
            let frames = history_frames(
                worst_id(),
                Some("lobby".into()),
                None,
                entries.clone().into_iter(),
            );
            assert_eq!(lines_fit(&frames), entries, "size {size}");
            // Each frame but the last could not take the first message of the next.
            for pair in frames.windows(2) {
                let [
                    ServerFrame::History { messages, .. },
                    ServerFrame::History { messages: next, .. },
                ] = pair
                else {
                    panic!("history frames");
                };
                let mut bigger = pair[0].clone();
                if let (ServerFrame::History { messages: m, .. }, Some(first)) =
                    (&mut bigger, next.first())
                {
                    m.push(first.clone());
                }
                assert!(
                    encode(&bigger).len() - 1 > MAX_LINE,
                    "{} messages",
                    messages.len()
                );
            }
        }
    }

    #[test]
    fn a_message_stored_under_a_larger_limit_is_shortened_to_fit() {
        // 5290 was the largest limit before the id's escapes were counted.
        let old = neutralize(&"\u{7f}".repeat(5290)).into_owned();
        let mixed = "\u{1}\"é🎉".repeat(2000);
        for text in [old, mixed, "y".repeat(20_000)] {
            let frames = history_frames(
                worst_id(),
                None,
                Some("y".repeat(32)),
                [entry(1, &text), entry(2, "hi")].into_iter(),
            );
            let all = lines_fit(&frames);
            assert_eq!(all.len(), 2);
            assert!(all[0].text.ends_with(CUT));
            let kept = all[0].text.trim_end_matches(CUT);
            assert!(
                text.starts_with(kept) && kept.len() > 4000,
                "{}",
                kept.len()
            );
            assert_eq!(all[1].text, "hi");
        }
    }

    #[test]
    fn small_and_empty_answers_are_one_frame() {
        let small = (0..50).map(|i| HistoryEntry {
            msg_id: i,
            from: "a".into(),
            to: None,
            text: "hi".into(),
            ts: 1,
        });
        assert_eq!(
            history_frames(None, Some("lobby".into()), None, small).len(),
            1
        );
        let none = history_frames(None, Some("lobby".into()), None, std::iter::empty());
        assert!(
            matches!(&none[..], [ServerFrame::History { last: true, messages, .. }] if messages.is_empty())
        );
    }

    #[test]
    fn escaped_len_matches_serde_json() {
        for c in [
            'a', '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1}', '\u{1f}', '\u{7f}',
            'é', '\u{FFFD}', '🎉', '\u{2028}',
        ] {
            let json = serde_json::to_string(&c.to_string()).expect("encodes");
            assert_eq!(escaped_len(c), json.len() - 2, "{c:?}");
        }
    }
}
