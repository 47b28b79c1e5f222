//! Lines from a byte stream, with a read buffer that exists only while it holds
//! something: most connections are idle most of the time, and an idle connection should
//! cost no buffer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use natter_proto::{CodecError, LineCodec};
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

/// First allocation of a read buffer; it doubles when a peer sends more at once. Login
/// and join lines fit.
pub const READ_BUFFER: usize = 128;

/// Splits a byte stream into lines with a [`LineCodec`], like tokio-util's `FramedRead`,
/// except that the read buffer is released whenever a read would wait with nothing
/// buffered (a `FramedRead` keeps its largest buffer for the connection's life).
pub struct Lines<R> {
    /// The byte stream.
    rd: R,
    /// Finds the lines, within the length limit.
    codec: LineCodec,
    /// Bytes read but not yet handed out as lines; unallocated while empty and idle.
    buf: BytesMut,
    /// The stream ended: what is left is decoded as a last line, then nothing.
    eof: bool,
}

impl<R> Lines<R> {
    /// Lines of `rd`, split by `codec`.
    pub fn new(rd: R, codec: LineCodec) -> Lines<R> {
        Lines {
            rd,
            codec,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The byte stream, for reading what is left at the end.
    pub fn into_inner(self) -> R {
        self.rd
    }
}

impl<R: AsyncRead + Unpin> Stream for Lines<R> {
    type Item = Result<BytesMut, CodecError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.eof {
                return Poll::Ready(this.codec.decode_eof(&mut this.buf).transpose());
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(line)) => return Poll::Ready(Some(Ok(line))),
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(None) => {}
            }
            if this.buf.capacity() == 0 {
                this.buf.reserve(READ_BUFFER);
            } else {
                // Room for at least one byte, so a read of 0 means the end of the stream.
                this.buf.reserve(1);
            }
            match poll_read_buf(Pin::new(&mut this.rd), cx, &mut this.buf) {
                Poll::Pending => {
                    if this.buf.is_empty() {
                        // Nothing pending: the connection is idle until the next read.
                        this.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn lines_across_reads_then_the_last_without_newline() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut lines = Lines::new(rx, LineCodec::new(1024));
        tx.write_all(b"one\ntw").await.expect("write");
        assert_eq!(&lines.next().await.expect("line").expect("ok")[..], b"one");
        tx.write_all(b"o\r\nthree").await.expect("write");
        assert_eq!(&lines.next().await.expect("line").expect("ok")[..], b"two");
        drop(tx);
        assert_eq!(
            &lines.next().await.expect("line").expect("ok")[..],
            b"three"
        );
        assert!(lines.next().await.is_none());
        assert!(lines.next().await.is_none());
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer() {
        let (mut tx, rx) = tokio::io::duplex(4096);
        let mut lines = Lines::new(rx, LineCodec::new(8192));
        let long = vec![b'x'; 3000];
        tx.write_all(&long).await.expect("write");
        tx.write_all(b"\n").await.expect("write");
        assert_eq!(lines.next().await.expect("line").expect("ok").len(), 3000);
        // Nothing more to read: the next poll waits, and the buffer goes.
        assert!(futures::poll!(lines.next()).is_pending());
        assert_eq!(lines.buf.capacity(), 0);
        tx.write_all(b"next\n").await.expect("write");
        assert_eq!(&lines.next().await.expect("line").expect("ok")[..], b"next");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_an_error() {
        let (mut tx, rx) = tokio::io::duplex(4096);
        let mut lines = Lines::new(rx, LineCodec::new(100));
        tx.write_all(&[b'x'; 300]).await.expect("write");
        assert!(matches!(
            lines.next().await,
            Some(Err(CodecError::LineTooLong { max: 100 }))
        ));
    }
}
