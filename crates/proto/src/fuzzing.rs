//! The body of the frame-decoder fuzz target, shared with the test that replays the
//! fuzz corpus, so CI exercises every corpus and crash input without running the fuzzer.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::{LineCodec, decode_client, decode_server, encode, neutralize};

/// Feeds arbitrary bytes through the line codec and both frame decoders.
///
/// Panics if an invariant breaks: a line longer than the limit, a decoded frame that
/// does not survive an encode/decode round trip, or neutralised text that still holds a
/// dangerous character.
pub fn decode_bytes(data: &[u8]) {
    // The first byte picks the line limit (1 to 16 321 bytes) and so the chunking:
    // short inputs reach the over-limit paths as well as whole frames.
    let (max, rest) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b) * 64 + 1, rest),
        None => return,
    };
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let chunk = (max / 3).max(1);
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        // Each call consumes at least one line or stops; bounded by the input length.
        for _ in 0..=rest.len() {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => {
                    assert!(line.len() <= max, "line over the limit");
                    check_line(&line);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // Also decode the whole input as one line, as a transport without the codec would.
    check_line(rest);
}

fn check_line(line: &[u8]) {
    if let Ok(frame) = decode_client(line) {
        let bytes = encode(&frame);
        let back = decode_client(&bytes[..bytes.len() - 1]).expect("re-encoded frame decodes");
        assert_eq!(back, frame, "client frame round trip");
    }
    if let Ok(frame) = decode_server(line) {
        let bytes = encode(&frame);
        let back = decode_server(&bytes[..bytes.len() - 1]).expect("re-encoded frame decodes");
        assert_eq!(back, frame, "server frame round trip");
    }
    if let Ok(text) = std::str::from_utf8(line) {
        assert!(!neutralize(text).chars().any(crate::text::is_dangerous));
    }
}
