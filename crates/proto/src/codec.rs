//! Line framing with a hard maximum length, and JSON encoding of frames.
//!
//! [`LineCodec`] never buffers more than `max_len` bytes (plus one read's worth) while it
//! looks for a newline: a longer line is an error and the caller closes the connection.
//! Lines are handed out as raw bytes so that invalid UTF-8 or JSON in one line becomes an
//! error for that line alone and the connection stays usable.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{ClientFrame, ErrorCode, FrameId, ServerFrame};
use crate::members;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A line grew past the limit before its newline arrived.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into `\n`-terminated lines of at most `max_len` bytes.
///
/// A trailing `\r` is removed. Encoding writes pre-serialized lines (see [`encode`]), so a
/// message serialized once can be shared by every recipient.
#[derive(Debug, Clone)]
pub struct LineCodec {
    /// Longest accepted line, newline excluded.
    max_len: usize,
    /// How far the buffer was already searched for a newline, so each byte is scanned once.
    next_index: usize,
}

impl LineCodec {
    /// A codec that rejects lines longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            next_index: 0,
        }
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        // Only look at most max_len + 1 bytes ahead: the newline may be at index max_len.
        let search_end = buf.len().min(self.max_len + 1);
        match buf[self.next_index.min(search_end)..search_end]
            .iter()
            .position(|b| *b == b'\n')
        {
            Some(offset) => {
                let newline = self.next_index + offset;
                self.next_index = 0;
                let mut line = buf.split_to(newline + 1);
                line.truncate(newline);
                if line.last() == Some(&b'\r') {
                    line.truncate(newline - 1);
                }
                Ok(Some(line))
            }
            None if buf.len() > self.max_len => Err(CodecError::LineTooLong { max: self.max_len }),
            None => {
                self.next_index = search_end;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            // A final line without a newline still counts, as with `BufRead::lines`.
            None if !buf.is_empty() => {
                self.next_index = 0;
                Ok(Some(buf.split()))
            }
            None => Ok(None),
        }
    }
}

impl Encoder<Bytes> for LineCodec {
    type Error = CodecError;

    fn encode(&mut self, line: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(line.len());
        dst.put(line);
        Ok(())
    }
}

/// Serializes a frame as one JSON line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> Bytes {
    let mut out = Vec::with_capacity(128);
    encode_into(frame, &mut out);
    Bytes::from(out)
}

/// Appends `frame` as one line (JSON and a newline) to `out`, so several frames can share
/// one buffer and one write.
pub fn encode_into<T: Serialize>(frame: &T, out: &mut Vec<u8>) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, frame).is_err() {
        // Frames are plain structs of strings and numbers; serialization cannot fail.
        out.truncate(start);
        out.extend_from_slice(br#"{"type":"error","code":"internal","message":"encoding failed"}"#);
    }
    out.push(b'\n');
}

/// Why a line is not a valid frame, with the error frame to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The id found in the line, if it was JSON with an `id` member.
    pub id: Option<FrameId>,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Explanation for the peer.
    pub message: String,
}

impl FrameError {
    /// The `error` frame reporting this problem.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::error(self.id.clone(), self.code, self.message.clone())
    }
}

/// Decodes one line as a frame of type `T`; with `unique`, a member repeated in any
/// object makes it a `bad_frame` (serde alone would keep the last one).
fn decode_line<T: serde::de::DeserializeOwned>(line: &[u8], unique: bool) -> Result<T, FrameError> {
    let text = std::str::from_utf8(line).map_err(|e| FrameError {
        id: None,
        code: ErrorCode::BadUtf8,
        message: format!(
            "line is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ),
    })?;
    let bad_json = |e: serde_json::Error| FrameError {
        id: None,
        code: ErrorCode::BadJson,
        message: format!("not valid JSON: {}", clip(&e.to_string())),
    };
    if unique {
        // Syntax first, so that invalid JSON stays bad_json whatever else is wrong.
        let scan = members::scan(text).map_err(bad_json)?;
        if let Some(name) = scan.duplicate {
            return Err(FrameError {
                id: scan.id,
                code: ErrorCode::BadFrame,
                message: format!("not a valid frame: duplicate member `{}`", clip(&name)),
            });
        }
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => FrameError {
            // Valid JSON but not a frame: recover the id so the error can echo it.
            id: members::scan(text).ok().and_then(|s| s.id),
            code: ErrorCode::BadFrame,
            message: format!("not a valid frame: {}", clip(&e.to_string())),
        },
        _ => bad_json(e),
    })
}

/// Longest piece of peer-supplied text quoted back in an error message, in characters.
pub const MAX_QUOTE: usize = 200;

/// Shortens text quoted back to a peer, so that an error about a huge input stays small.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTE) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}...", &text[..cut])),
    }
}

/// Decodes one line from a client.
///
/// A member repeated in any object of the line is a `bad_frame` (PROTOCOL.md §2.1).
pub fn decode_client(line: &[u8]) -> Result<ClientFrame, FrameError> {
    decode_line(line, true)
}

/// Decodes one line from a server.
pub fn decode_server(line: &[u8]) -> Result<ServerFrame, FrameError> {
    decode_line(line, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(codec: &mut LineCodec, input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        for _ in 0..100 {
            match codec.decode(&mut buf) {
                Ok(Some(l)) => out.push(Ok(l.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_cr() {
        let mut c = LineCodec::new(16);
        assert_eq!(
            lines(&mut c, b"ab\ncd\r\nef"),
            vec![Ok(b"ab".to_vec()), Ok(b"cd".to_vec())]
        );
    }

    #[test]
    fn line_at_the_limit_is_accepted_and_one_over_is_rejected() {
        let mut c = LineCodec::new(4);
        assert_eq!(lines(&mut c, b"abcd\n"), vec![Ok(b"abcd".to_vec())]);
        let mut c = LineCodec::new(4);
        assert_eq!(
            lines(&mut c, b"abcde\n"),
            vec![Err("line longer than 4 bytes".into())]
        );
    }

    #[test]
    fn overlong_line_is_rejected_before_its_newline_arrives() {
        let mut c = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"de");
        assert!(matches!(
            c.decode(&mut buf),
            Err(CodecError::LineTooLong { max: 4 })
        ));
    }

    #[test]
    fn incremental_input_is_scanned_once() {
        let mut c = LineCodec::new(64);
        let mut buf = BytesMut::new();
        for b in b"hello" {
            buf.put_u8(*b);
            assert!(matches!(c.decode(&mut buf), Ok(None)));
        }
        buf.put_u8(b'\n');
        assert_eq!(
            c.decode(&mut buf).ok().flatten().as_deref(),
            Some(&b"hello"[..])
        );
    }

    #[test]
    fn decode_errors_are_classified() {
        assert_eq!(
            decode_client(b"\xff\xfe").map_err(|e| e.code),
            Err(ErrorCode::BadUtf8)
        );
        assert_eq!(
            decode_client(b"{nope").map_err(|e| e.code),
            Err(ErrorCode::BadJson)
        );
        let e = decode_client(br#"{"type":"launch","id":"r1"}"#).expect_err("unknown type");
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert_eq!(e.id, Some(FrameId::Str("r1".into())));
        let e = decode_client(br#"{"type":"public","text":5,"id":3}"#).expect_err("wrong type");
        assert_eq!((e.code, e.id), (ErrorCode::BadFrame, Some(FrameId::Num(3))));
        let e = decode_client(br#"{"type":"private","text":"x"}"#).expect_err("missing to");
        assert!(e.message.contains("missing field `to`"), "{}", e.message);
    }

    #[test]
    fn repeated_members_are_bad_frames_echoing_the_first_id() {
        let e = decode_client(br#"{"type":"ping","id":"d4","zz":1,"zz":2}"#).expect_err("dup");
        assert_eq!(
            (e.code, e.id),
            (ErrorCode::BadFrame, Some(FrameId::Str("d4".into())))
        );
        assert!(e.message.contains("duplicate member `zz`"), "{}", e.message);
        let e = decode_client(br#"{"type":"ping","id":1,"id":2}"#).expect_err("dup id");
        assert_eq!((e.code, e.id), (ErrorCode::BadFrame, Some(FrameId::Num(1))));
        let e = decode_client(br#"{"type":"launch","id":1,"id":2}"#).expect_err("dup id");
        assert_eq!((e.code, e.id), (ErrorCode::BadFrame, Some(FrameId::Num(1))));
        // Invalid JSON is reported as such even when it also repeats a member.
        let e = decode_client(br#"{"type":"ping","zz":1,"zz":2"#).expect_err("truncated");
        assert_eq!(e.code, ErrorCode::BadJson);
        // Server frames are decoded leniently: only the server enforces the rule.
        assert!(decode_server(br#"{"type":"pong","zz":1,"zz":2}"#).is_ok());
    }

    #[test]
    fn an_over_long_id_is_not_echoed() {
        let line = format!(r#"{{"type":"teleport","id":"{}"}}"#, "i".repeat(16_000));
        let e = decode_client(line.as_bytes()).expect_err("unknown type");
        assert_eq!((e.code, e.id.clone()), (ErrorCode::BadFrame, None));
        assert!(encode(&e.to_frame()).len() < 2 * MAX_QUOTE + 100);
    }

    #[test]
    fn errors_about_huge_input_stay_small() {
        let huge = format!(r#"{{"type":"{}"}}"#, "x".repeat(20_000));
        let e = decode_client(huge.as_bytes()).expect_err("unknown type");
        assert!(e.message.len() < 2 * MAX_QUOTE, "{}", e.message.len());
        let e = decode_client(&huge.as_bytes()[..15_000]).expect_err("truncated");
        assert!(e.message.len() < 2 * MAX_QUOTE, "{}", e.message.len());
    }

    #[test]
    fn encode_produces_one_line() {
        let b = encode(&ServerFrame::System {
            text: "a\nb".into(),
        });
        assert_eq!(b.iter().filter(|c| **c == b'\n').count(), 1);
        assert!(b.ends_with(b"\n"));
        let back = decode_server(&b[..b.len() - 1]).expect("round trip");
        assert_eq!(
            back,
            ServerFrame::System {
                text: "a\nb".into()
            }
        );
    }
}
