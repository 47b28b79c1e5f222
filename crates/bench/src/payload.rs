//! The 100-byte benchmark message: sender, sequence number, send time and a filler that
//! depends on all three, so a receiver can verify every byte it got.

/// Length of every benchmark message text in bytes.
pub const LEN: usize = 100;

/// What a verified message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the sender.
    pub sender: u32,
    /// Sequence number (increasing per sender).
    pub seq: u64,
    /// Send time, nanoseconds since the generator's start instant.
    pub sent_ns: u64,
}

fn filler(stamp: Stamp, i: usize) -> u8 {
    let x = (stamp.sender as u64)
        .wrapping_mul(7)
        .wrapping_add(stamp.seq.wrapping_mul(13))
        .wrapping_add(stamp.sent_ns % 101)
        .wrapping_add(i as u64);
    b'a' + (x % 26) as u8
}

/// Writes the message text for `stamp` into `out` (cleared first).
pub fn encode(stamp: Stamp, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(
        out,
        "m{:05}:{:012}:{:016}:",
        stamp.sender, stamp.seq, stamp.sent_ns
    );
    let head = out.len();
    for i in head..LEN {
        out.push(char::from(filler(stamp, i)));
    }
}

/// Checks a received text byte for byte and returns what it carried.
pub fn decode(text: &str) -> Option<Stamp> {
    let b = text.as_bytes();
    if b.len() != LEN || b[0] != b'm' || b[6] != b':' || b[19] != b':' || b[36] != b':' {
        return None;
    }
    let sender = text.get(1..6)?.parse().ok()?;
    let seq = text.get(7..19)?.parse().ok()?;
    let sent_ns = text.get(20..36)?.parse().ok()?;
    let stamp = Stamp {
        sender,
        seq,
        sent_ns,
    };
    (37..LEN).all(|i| b[i] == filler(stamp, i)).then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Stamp {
            sender: 3,
            seq: 123_456,
            sent_ns: 987_654_321,
        };
        let mut t = String::new();
        encode(s, &mut t);
        assert_eq!(t.len(), LEN);
        assert_eq!(decode(&t), Some(s));
        let mut bad = t.clone().into_bytes();
        bad[80] = if bad[80] == b'a' { b'b' } else { b'a' };
        assert_eq!(decode(std::str::from_utf8(&bad).expect("ascii")), None);
        assert_eq!(decode(&t[..99]), None);
    }
}
