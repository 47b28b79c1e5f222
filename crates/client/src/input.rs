//! Reading input lines from a byte stream (stdin in plain mode), bounded and cancel-safe.
//!
//! [`InputLines::next_line`] can be raced in `tokio::select!` against the network without
//! losing input: its only await point is `fill_buf`, and bytes are consumed only after it
//! returned. A line longer than the limit is skipped up to its newline and reported once as
//! [`InputLine::TooLong`], so a huge paste costs bounded memory and the next line still works.
//! Invalid UTF-8 is replaced with `�` rather than ending the input.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputLine {
    /// A complete line, without its `\n` or `\r\n`.
    Line(String),
    /// A line longer than the limit; its content was dropped.
    TooLong,
}

/// Splits a byte stream into lines of at most `max_len` bytes.
#[derive(Debug)]
pub struct InputLines<R> {
    /// Where the bytes come from.
    reader: R,
    /// The current line so far (never more than `max_len` bytes).
    buf: Vec<u8>,
    /// Longest accepted line in bytes, line ending excluded.
    max_len: usize,
    /// The current line went over `max_len`; skip to its end.
    overflowed: bool,
}

impl<R: AsyncBufRead + Unpin> InputLines<R> {
    /// Reads lines of at most `max_len` bytes from `reader`.
    pub fn new(reader: R, max_len: usize) -> Self {
        InputLines {
            reader,
            buf: Vec::new(),
            max_len,
            overflowed: false,
        }
    }

    /// The next line, or `Ok(None)` at the end of the input. Cancel-safe.
    ///
    /// A last line without a newline still counts.
    pub async fn next_line(&mut self) -> std::io::Result<Option<InputLine>> {
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                if self.overflowed || !self.buf.is_empty() {
                    return Ok(Some(self.finish()));
                }
                return Ok(None);
            }
            let (part, used, complete) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !self.overflowed {
                // Allow one extra byte for a '\r' that turns out to precede the newline.
                if self.buf.len() + part.len() > self.max_len + 1 {
                    self.overflowed = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            self.reader.consume(used);
            if complete {
                return Ok(Some(self.finish()));
            }
        }
    }

    /// Ends the current line and resets for the next one.
    fn finish(&mut self) -> InputLine {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = if self.overflowed || self.buf.len() > self.max_len {
            InputLine::TooLong
        } else {
            InputLine::Line(String::from_utf8_lossy(&self.buf).into_owned())
        };
        self.buf.clear();
        self.overflowed = false;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use tokio::io::{AsyncWriteExt, BufReader};

    async fn all(input: &[u8], max: usize) -> Vec<InputLine> {
        let mut lines = InputLines::new(BufReader::with_capacity(4, input), max);
        let mut out = Vec::new();
        for _ in 0..100 {
            match lines.next_line().await {
                Ok(Some(l)) => out.push(l),
                Ok(None) => return out,
                Err(e) => panic!("read error {e}"),
            }
        }
        panic!("no end of input");
    }

    fn l(s: &str) -> InputLine {
        InputLine::Line(s.into())
    }

    #[tokio::test]
    async fn splits_lines_strips_crlf_and_keeps_a_last_unterminated_line() {
        assert_eq!(
            all(b"one\r\ntwo\n\nthree", 64).await,
            vec![l("one"), l("two"), l(""), l("three")]
        );
        assert_eq!(all(b"", 64).await, vec![]);
    }

    #[tokio::test]
    async fn long_lines_are_reported_once_and_skipped() {
        assert_eq!(
            all(b"12345\n123456\nok\n1234567890123\nend", 5).await,
            vec![
                l("12345"),
                InputLine::TooLong,
                l("ok"),
                InputLine::TooLong,
                l("end")
            ]
        );
        assert_eq!(all(b"12345\r\n", 5).await, vec![l("12345")]);
        assert_eq!(all(b"123456\r\n", 5).await, vec![InputLine::TooLong]);
        assert_eq!(all(b"1234567", 5).await, vec![InputLine::TooLong]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            all(b"a\xffb\nnext\n", 64).await,
            vec![l("a\u{FFFD}b"), l("next")]
        );
    }

    #[tokio::test]
    async fn cancelling_a_read_loses_nothing() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut lines = InputLines::new(BufReader::new(rx), 64);
        tx.write_all(b"hal").await.expect("write");
        // The line is incomplete: one poll takes in "hal" and then has to wait...
        assert_eq!(lines.next_line().now_or_never().map(|r| r.ok()), None);
        // ...and dropping that read keeps what it had taken in.
        tx.write_all(b"lo\n").await.expect("write");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line())
            .await
            .expect("line arrives");
        assert_eq!(got.expect("no error"), Some(l("hallo")));
    }
}
