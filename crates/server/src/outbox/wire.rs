//! Where a direct outbox writes: a TCP socket's write half, plain or through the
//! connection's shared TLS state, written without waiting (vectored `sendmsg`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;

use crate::tls::TlsConn;

/// Most buffers handed to one vectored write (the kernel takes up to 1 024).
const MAX_IOV: usize = 64;

/// Where a direct outbox writes.
pub enum Wire {
    /// A plain TCP connection's write half: the bytes go as they are.
    Tcp(OwnedWriteHalf),
    /// A TLS connection's write half and its TLS state (shared with
    /// [`crate::tls::TlsReader`]), which encrypts the bytes into records.
    Tls(OwnedWriteHalf, Arc<TlsConn>),
}

impl Wire {
    /// The socket's write half.
    pub(super) fn tcp(&self) -> &OwnedWriteHalf {
        match self {
            Wire::Tcp(tcp) | Wire::Tls(tcp, _) => tcp,
        }
    }

    /// Writes as much of `chunk` as the socket takes now, dropping what was written;
    /// `Ok(true)` once nothing is left, here or in the TLS state.
    pub(super) fn write_now(&self, chunk: &mut VecDeque<Bytes>) -> io::Result<bool> {
        match self {
            Wire::Tcp(tcp) => {
                write_now(tcp, chunk)?;
                Ok(chunk.is_empty())
            }
            Wire::Tls(tcp, tls) => write_tls_now(tcp, tls, chunk),
        }
    }
}

/// Points `slices` at the first buffers of `chunk`; how many.
fn slices<'a>(chunk: &'a VecDeque<Bytes>, slices: &mut [IoSlice<'a>; MAX_IOV]) -> usize {
    chunk
        .iter()
        .zip(slices.iter_mut())
        .map(|(b, s)| *s = IoSlice::new(b))
        .count()
}

/// One vectored write to the socket without waiting (`WouldBlock` if it is full).
fn send(sink: &OwnedWriteHalf, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // `sendmsg` rather than tokio's `writev`: the same for the socket, without the
    // file-system layer `writev` passes through (5 % of a busy server's time).
    let stream: &tokio::net::TcpStream = sink.as_ref();
    stream.try_io(tokio::io::Interest::WRITABLE, || {
        socket2::SockRef::from(stream).send_vectored(bufs)
    })
}

/// Writes as much of `chunk` as the socket takes now, dropping what was written.
fn write_now(sink: &OwnedWriteHalf, chunk: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !chunk.is_empty() {
        let wrote = {
            let mut bufs = [IoSlice::new(&[]); MAX_IOV];
            let n = slices(chunk, &mut bufs);
            send(sink, &bufs[..n])
        };
        match wrote {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => consume(chunk, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Encrypts as much of `chunk` as the TLS state takes (its buffer of unsent records is
/// bounded) and writes records while the socket takes them, dropping what was taken;
/// `Ok(true)` once `chunk` is empty and every record is written.
fn write_tls_now(
    sink: &OwnedWriteHalf,
    tls: &TlsConn,
    chunk: &mut VecDeque<Bytes>,
) -> io::Result<bool> {
    let mut st = tls.lock()?;
    loop {
        // Set once the TLS state refuses data for good (it failed on what the peer
        // sent): what is queued is dropped, but the alert telling the peer why still
        // goes out.
        let broken = st.encrypt(chunk).err();
        let done = st.write_records(|b| send(sink, &[IoSlice::new(b)]))?;
        match broken {
            Some(e) => return Err(e),
            None if !done => return Ok(false),
            None if chunk.is_empty() => return Ok(true),
            // The records of this round are written; encrypt the next ones.
            None => {}
        }
    }
}

/// Drops the first `n` bytes of `chunk`.
fn consume(chunk: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = chunk.front_mut() else {
            return;
        };
        if front.len() > n {
            front.advance(n);
            return;
        }
        n -= front.len();
        chunk.pop_front();
    }
}
