//! Typed deliveries: what the hub fans out, encoded at most once per wire format.
//!
//! A [`Delivery`] holds one or more [`ServerFrame`]s (a run of messages committed
//! together for one room travels as one delivery) and a lazily filled cache of their
//! encoding per format. The first recipient of a format encodes; every other recipient
//! of that format shares the same bytes (a reference-counted [`Bytes`], not a copy).
//! So "serialize once" holds with several formats in one room.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use natter_proto::ServerFrame;

use crate::codec::{Encoder, FORMATS};

/// Frames for many recipients, with their encodings per format.
pub struct Delivery {
    /// The frames, in order.
    frames: Vec<ServerFrame>,
    /// The frames' encoding per format slot, filled on first use.
    encoded: [OnceLock<Bytes>; FORMATS],
}

impl Delivery {
    /// A delivery of one frame.
    pub fn one(frame: ServerFrame) -> Arc<Delivery> {
        Delivery::batch(vec![frame])
    }

    /// A delivery of several frames, delivered together and in order.
    pub fn batch(frames: Vec<ServerFrame>) -> Arc<Delivery> {
        Arc::new(Delivery {
            frames,
            encoded: Default::default(),
        })
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[ServerFrame] {
        &self.frames
    }

    /// How many frames it holds (each counts against a recipient's queue bound).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames encoded by `encoder`: encoded on the first call for its format, shared
    /// afterwards.
    pub fn encoded(&self, encoder: &dyn Encoder) -> &Bytes {
        self.encoded[encoder.slot() % FORMATS].get_or_init(|| {
            let mut out = Vec::with_capacity(self.frames.len() * 192);
            for frame in &self.frames {
                encoder.encode_into(frame, &mut out);
            }
            out.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::codec::JsonLines;

    /// Counts its encodings; writes the frame's kind in upper case.
    struct Shouting(AtomicUsize);

    impl Encoder for Shouting {
        fn slot(&self) -> usize {
            3
        }
        fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>) {
            self.0.fetch_add(1, Ordering::Relaxed);
            let ServerFrame::System { text } = frame else {
                return;
            };
            out.extend_from_slice(text.to_uppercase().as_bytes());
            out.push(b'\n');
        }
    }

    #[test]
    fn each_format_is_encoded_once_and_shared() {
        let d = Delivery::batch(vec![
            ServerFrame::System { text: "a".into() },
            ServerFrame::System { text: "b".into() },
        ]);
        let shout = Shouting(AtomicUsize::new(0));
        let first = d.encoded(&shout).clone();
        for _ in 0..100 {
            assert_eq!(d.encoded(&shout).as_ptr(), first.as_ptr(), "shared bytes");
        }
        assert_eq!(&first[..], b"A\nB\n");
        assert_eq!(
            shout.0.load(Ordering::Relaxed),
            2,
            "two frames, encoded once"
        );
        let json = d.encoded(&JsonLines);
        assert_eq!(
            &json[..],
            b"{\"type\":\"system\",\"text\":\"a\"}\n{\"type\":\"system\",\"text\":\"b\"}\n"
        );
        assert_eq!(d.len(), 2);
    }
}
