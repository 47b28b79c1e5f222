//! A session's outgoing queue: encoded lines waiting to be written to the connection.
//!
//! A message is encoded once; fan-out queues a reference to those bytes (a [`Bytes`],
//! shared by every recipient, not a copy) in each recipient's outbox, and whoever writes
//! takes everything queued at once and hands it to the socket in one vectored write. So
//! a burst costs a recipient one write and no copy in user space, and an idle session
//! holds no buffer at all. The queue is bounded in frames: a recipient that does not
//! keep up is refused further frames, and the hub then closes it as a slow consumer.
//!
//! Who writes depends on the transport. A TCP connection's outbox is *direct*, plain or
//! TLS: it holds the socket's write half (and, for TLS, the connection's shared TLS
//! state, which encrypts on the way), and the first frame into an empty outbox puts it
//! on the server's [`Flusher`] queue, whose one task writes each queued outbox without
//! waiting, in turn. Only when a socket would block does a task of its own wait for the
//! socket and finish the job. So a message to a large room costs no task wake-up per
//! member, members are written in the order they were queued, and an idle connection
//! has no writer task. WebSocket connections run a writer task that waits in
//! [`Outbox::take`].

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::tls::TlsConn;

/// Most buffers handed to one vectored write (the kernel takes up to 1 024).
const MAX_IOV: usize = 64;

/// Most outboxes the flusher writes before letting other tasks run: sessions reading
/// new messages and publishing commits must not wait for a whole room's writes.
const FLUSH_BATCH: usize = 32;

/// What happened to frames offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued for the writer.
    Queued,
    /// Refused: the outbox holds as many frames as allowed.
    Full,
    /// Refused: the session is ending.
    Closed,
}

/// Bytes and bookkeeping behind the lock.
#[derive(Default)]
struct State {
    /// Encoded lines not yet written, in order; never holds an empty buffer.
    queue: VecDeque<Bytes>,
    /// Frames in `queue`.
    frames: usize,
    /// Set once the session ended; what is queued is still written, then the writer stops.
    closed: bool,
    /// Direct outboxes: on the flusher's queue or being written by it. While set (or
    /// `stalled`), pushes only append; when both are clear, `queue` is empty.
    scheduled: bool,
    /// Direct outboxes: the socket would block, and a drain task writes until empty.
    stalled: bool,
    /// The drain task, so that a connection giving up on its peer can stop it.
    drainer: Option<tokio::task::AbortHandle>,
    /// Direct TLS outboxes: the connection has records of its own to send (an alert, a
    /// key update, close_notify), so the writer must run even with `queue` empty.
    kicked: bool,
    /// Nothing more is written: a write failed or the connection gave up on its peer.
    dead: bool,
}

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
    fn tcp(&self) -> &OwnedWriteHalf {
        match self {
            Wire::Tcp(tcp) | Wire::Tls(tcp, _) => tcp,
        }
    }

    /// Writes as much of `chunk` as the socket takes now, dropping what was written;
    /// `Ok(true)` once nothing is left, here or in the TLS state.
    fn write_now(&self, chunk: &mut VecDeque<Bytes>) -> io::Result<bool> {
        match self {
            Wire::Tcp(tcp) => {
                write_now(tcp, chunk)?;
                Ok(chunk.is_empty())
            }
            Wire::Tls(tcp, tls) => write_tls_now(tcp, tls, chunk),
        }
    }
}

/// A TCP connection's writing side, for direct outboxes.
struct Direct {
    /// The socket's write half; written only by the flusher or the drain task, one at a
    /// time (see `State::scheduled` and `State::stalled`).
    sink: Wire,
    /// The server's flusher, which writes this outbox when it is queued.
    flusher: Arc<Flusher>,
    /// Ends the session when a write fails.
    token: CancellationToken,
}

/// A bounded queue of encoded lines for one connection, filled by many, drained by one.
pub struct Outbox {
    /// The queue; held only to append or take, never across an `.await` or a write.
    state: Mutex<State>,
    /// Wakes the writer task when bytes arrive in an empty outbox, or on close; for a
    /// direct outbox, wakes whoever waits in [`Outbox::drained`].
    ready: Notify,
    /// Most frames queued at once.
    max_frames: usize,
    /// Why the session is being closed, if it is (first reason wins); kept here so a
    /// session needs one shared allocation, not two.
    close_reason: OnceLock<String>,
    /// Set for a direct outbox (TCP, plain or TLS).
    direct: Option<Box<Direct>>,
}

impl Outbox {
    /// An empty outbox holding at most `max_frames` frames, drained by a writer task.
    pub fn new(max_frames: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max_frames,
            close_reason: OnceLock::new(),
            direct: None,
        }
    }

    /// An empty direct outbox writing to `sink` through `flusher`; a failed write cancels
    /// `token`.
    pub fn direct(
        max_frames: usize,
        sink: Wire,
        flusher: Arc<Flusher>,
        token: CancellationToken,
    ) -> Outbox {
        Outbox {
            direct: Some(Box::new(Direct {
                sink,
                flusher,
                token,
            })),
            ..Outbox::new(max_frames)
        }
    }

    /// Records why the session is being closed, unless a reason was recorded already.
    pub fn set_close_reason(&self, reason: String) {
        let _ = self.close_reason.set(reason);
    }

    /// The first reason recorded by [`Outbox::set_close_reason`].
    pub fn close_reason(&self) -> Option<&str> {
        self.close_reason.get().map(String::as_str)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a queue, counters and flags; a panic elsewhere cannot leave it
        // inconsistent, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `lines`, which hold `frames` complete encoded lines (shared, not copied).
    pub fn push(self: &Arc<Self>, lines: &Bytes, frames: usize) -> Push {
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return Push::Closed;
            }
            if st.frames + frames > self.max_frames {
                return Push::Full;
            }
            if lines.is_empty() {
                return Push::Queued;
            }
            let was_empty = st.queue.is_empty();
            st.queue.push_back(lines.clone());
            st.frames += frames;
            match &self.direct {
                // A writer that is busy finds the new bytes when it comes back; only an
                // idle one needs waking.
                Some(_) if !st.scheduled && !st.stalled => {
                    st.scheduled = true;
                    true
                }
                Some(_) => false,
                None => was_empty,
            }
        };
        if wake {
            match &self.direct {
                Some(d) => d.flusher.schedule(self.clone()),
                None => self.ready.notify_one(),
            }
        }
        Push::Queued
    }

    /// Has a direct outbox's writer run although nothing is queued: the TLS state has
    /// records of its own to send.
    pub fn kick(self: &Arc<Self>) {
        let Some(d) = &self.direct else { return };
        let wake = {
            let mut st = self.lock();
            if st.dead {
                return;
            }
            st.kicked = true;
            let idle = !st.scheduled && !st.stalled;
            st.scheduled |= idle;
            idle
        };
        if wake {
            d.flusher.schedule(self.clone());
        }
    }

    /// Takes everything queued as one buffer, waiting until there is something; `None`
    /// once the outbox is closed and drained. (For writer tasks; a direct outbox has
    /// none.)
    pub async fn take(&self) -> Option<Bytes> {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            // `notify_one` keeps a permit when nobody waits, so a push between the check
            // above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// Takes everything queued without waiting: `Some(Some(bytes))` if there was
    /// something, `Some(None)` if closed and drained, `None` if empty but open.
    pub fn try_take(&self) -> Option<Option<Bytes>> {
        let taken = {
            let mut st = self.lock();
            if st.queue.is_empty() {
                return st.closed.then_some(None);
            }
            take_all(&mut st)
        };
        // Joined outside the lock; a writer task's transport (TLS records, WebSocket
        // messages) wants one buffer, and a single one needs no copy.
        Some(Some(concat(taken)))
    }

    /// Refuses further frames; what is queued is still written.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Resolves once a closed direct outbox has written everything (or failed to).
    pub async fn drained(&self) {
        loop {
            {
                let st = self.lock();
                if st.closed && st.queue.is_empty() && !st.scheduled && !st.stalled {
                    return;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Stops writing a direct outbox whose peer does not read: drops what is queued and
    /// stops the drain task, so the socket can close.
    pub fn abandon(&self) {
        let drainer = {
            let mut st = self.lock();
            st.closed = true;
            st.dead = true;
            st.queue = VecDeque::new();
            st.frames = 0;
            st.drainer.take()
        };
        if let Some(task) = drainer {
            task.abort();
        }
    }

    /// Ends a closed direct outbox's stream once everything queued is written: a TLS
    /// connection sends its close_notify, then the socket's sending direction is shut
    /// down, so the peer reads the end of the stream after the last frame. Waits as long
    /// as the peer takes to read; callers bound it.
    pub async fn finish(self: &Arc<Self>) {
        self.drained().await;
        let Some(d) = &self.direct else { return };
        if let Wire::Tls(_, tls) = &d.sink {
            if let Ok(mut conn) = tls.lock() {
                conn.send_close_notify();
            }
            self.kick();
            self.drained().await;
        }
        let _ = socket2::SockRef::from(d.sink.tcp().as_ref()).shutdown(std::net::Shutdown::Write);
    }

    /// The flusher's turn: writes what is queued without waiting. On a socket that would
    /// block, hands the rest to a drain task that waits for the socket.
    fn flush(self: &Arc<Self>) {
        let Some(d) = &self.direct else { return };
        let mut chunk = {
            let mut st = self.lock();
            if st.dead || (st.queue.is_empty() && !st.kicked) {
                st.scheduled = false;
                drop(st);
                self.ready.notify_one();
                return;
            }
            st.kicked = false;
            take_all(&mut st)
        };
        match d.sink.write_now(&mut chunk) {
            Err(e) => self.fail(&e),
            Ok(true) => {
                let more = {
                    let mut st = self.lock();
                    st.scheduled = !st.dead && (!st.queue.is_empty() || st.kicked);
                    st.scheduled
                };
                if more {
                    d.flusher.schedule(self.clone());
                } else {
                    self.ready.notify_one();
                }
            }
            Ok(false) => {
                let mut st = self.lock();
                st.scheduled = false;
                if st.dead {
                    drop(st);
                    self.ready.notify_one();
                    return;
                }
                put_back(&mut st, chunk);
                st.stalled = true;
                let task = tokio::spawn(drain(self.clone()));
                st.drainer = Some(task.abort_handle());
            }
        }
    }

    /// A failed write: the connection is broken, so nothing more is written and the
    /// session ends.
    fn fail(&self, e: &io::Error) {
        {
            let mut st = self.lock();
            st.closed = true;
            st.dead = true;
            st.queue = VecDeque::new();
            st.frames = 0;
            st.scheduled = false;
            st.stalled = false;
            st.kicked = false;
            st.drainer = None;
        }
        self.set_close_reason(format!("write failed: {e}"));
        if let Some(d) = &self.direct {
            d.token.cancel();
        }
        self.ready.notify_one();
    }
}

/// Takes the queued buffers out of `st`.
fn take_all(st: &mut State) -> VecDeque<Bytes> {
    st.frames = 0;
    std::mem::take(&mut st.queue)
}

/// The buffers of `queue` as one.
fn concat(mut queue: VecDeque<Bytes>) -> Bytes {
    if queue.len() == 1
        && let Some(one) = queue.pop_front()
    {
        return one;
    }
    let mut all = BytesMut::with_capacity(queue.iter().map(Bytes::len).sum());
    for b in &queue {
        all.extend_from_slice(b);
    }
    all.freeze()
}

/// Puts the unwritten rest of a chunk back in front of what was queued since.
fn put_back(st: &mut State, mut rest: VecDeque<Bytes>) {
    rest.append(&mut st.queue);
    // The first buffer may start in the middle of a frame; its newline still counts it.
    st.frames = rest
        .iter()
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .sum();
    st.queue = rest;
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

/// `io::Write` over a socket that never waits, for TLS records.
struct TrySend<'a>(&'a OwnedWriteHalf);

impl io::Write for TrySend<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encrypts as much of `chunk` as the TLS state takes (its buffer of unsent records is
/// bounded) and writes records while the socket takes them, dropping what was taken;
/// `Ok(true)` once `chunk` is empty and every record is written.
fn write_tls_now(
    sink: &OwnedWriteHalf,
    tls: &TlsConn,
    chunk: &mut VecDeque<Bytes>,
) -> io::Result<bool> {
    use std::io::Write;
    let mut conn = tls.lock()?;
    // Set once the TLS state refuses data for good (it failed on what the peer sent):
    // what is queued is dropped, but the alert telling the peer why still goes out.
    let mut broken = None;
    loop {
        // Many queued buffers go into as few records as they fit (up to 16 KiB each).
        while !chunk.is_empty() {
            let took = {
                let mut bufs = [IoSlice::new(&[]); MAX_IOV];
                let n = slices(chunk, &mut bufs);
                conn.writer().write_vectored(&bufs[..n])
            };
            match took {
                Ok(0) => break,
                Ok(took) => consume(chunk, took),
                Err(e) => {
                    chunk.clear();
                    broken = Some(e);
                }
            }
        }
        if !conn.wants_write() {
            return match broken {
                Some(e) => Err(e),
                None if chunk.is_empty() => Ok(true),
                // Refusing plaintext with no records waiting would never end.
                None => Err(io::Error::other("the TLS state takes no more data")),
            };
        }
        match conn.write_tls(&mut TrySend(sink)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return broken.map_or(Ok(false), Err);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
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

/// Writes a stalled direct outbox as its socket allows, until it is empty; then pushes
/// go to the flusher again.
async fn drain(out: Arc<Outbox>) {
    let Some(d) = &out.direct else { return };
    // Whether the last write left something behind (so the socket must drain first).
    let mut blocked = true;
    loop {
        if blocked && let Err(e) = d.sink.tcp().writable().await {
            out.fail(&e);
            return;
        }
        let mut chunk = {
            let mut st = out.lock();
            if st.dead {
                return;
            }
            if !blocked && st.queue.is_empty() && !st.kicked {
                st.stalled = false;
                st.drainer = None;
                drop(st);
                out.ready.notify_one();
                return;
            }
            st.kicked = false;
            take_all(&mut st)
        };
        match d.sink.write_now(&mut chunk) {
            Err(e) => {
                out.fail(&e);
                return;
            }
            Ok(done) => {
                blocked = !done;
                if !chunk.is_empty() {
                    put_back(&mut out.lock(), chunk);
                }
            }
        }
    }
}

/// Writes direct outboxes in the order they got something to write (see the module
/// documentation); one per server.
#[derive(Default)]
pub struct Flusher {
    /// Outboxes with bytes to write; each appears at most once (`State::scheduled`).
    queue: Mutex<VecDeque<Arc<Outbox>>>,
    /// Wakes the flusher task when the queue stops being empty.
    wake: Notify,
}

impl Flusher {
    /// A flusher with an empty queue; [`Flusher::run`] does the writing.
    pub fn new() -> Arc<Flusher> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Outbox>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `out` for writing.
    fn schedule(&self, out: Arc<Outbox>) {
        let first = {
            let mut q = self.lock();
            q.push_back(out);
            q.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Writes queued outboxes until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(FLUSH_BATCH);
        loop {
            {
                let mut q = self.lock();
                let n = q.len().min(FLUSH_BATCH);
                batch.extend(q.drain(..n));
            }
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = stop.cancelled() => return,
                }
            }
            for out in batch.drain(..) {
                out.flush();
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_taken_in_one_piece_and_the_bound_is_in_frames() {
        let out = Arc::new(Outbox::new(3));
        let b = Bytes::from_static;
        assert_eq!(out.push(&b(b"a\n"), 1), Push::Queued);
        assert_eq!(out.push(&b(b"b\nc\n"), 2), Push::Queued);
        assert_eq!(out.push(&b(b"d\n"), 1), Push::Full);
        assert_eq!(out.try_take(), Some(Some(b(b"a\nb\nc\n"))));
        assert_eq!(out.try_take(), None, "empty and open");
        assert_eq!(out.push(&Bytes::new(), 0), Push::Queued);
        assert_eq!(out.try_take(), None, "nothing to write is not queued");
        assert_eq!(
            out.push(&b(b"d\n"), 1),
            Push::Queued,
            "taking frees the room"
        );
        out.close();
        assert_eq!(out.push(&b(b"e\n"), 1), Push::Closed);
        assert_eq!(out.try_take(), Some(Some(b(b"d\n"))));
        assert_eq!(out.try_take(), Some(None), "closed and drained");
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_bytes_and_for_close() {
        let out = Arc::new(Outbox::new(8));
        let writer = {
            let out = out.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(chunk) = out.take().await {
                    got.extend_from_slice(&chunk);
                }
                got
            })
        };
        tokio::task::yield_now().await;
        out.push(&Bytes::from_static(b"x\n"), 1);
        tokio::task::yield_now().await;
        out.push(&Bytes::from_static(b"y\n"), 1);
        out.close();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
            .await
            .expect("writer ends once closed")
            .expect("writer task");
        assert_eq!(got, b"x\ny\n");
    }

    /// A connected pair on loopback: our side's direct outbox (flusher running) and the
    /// peer's socket.
    async fn direct_pair(
        max_frames: usize,
    ) -> (Arc<Outbox>, tokio::net::TcpStream, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let peer = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (ours, _) = listener.accept().await.expect("accept");
        let (_rd, wr) = ours.into_split();
        let flusher = Flusher::new();
        tokio::spawn(flusher.clone().run(CancellationToken::new()));
        let token = CancellationToken::new();
        let out = Arc::new(Outbox::direct(
            max_frames,
            Wire::Tcp(wr),
            flusher,
            token.clone(),
        ));
        (out, peer, token)
    }

    #[tokio::test]
    async fn a_direct_outbox_is_written_by_the_flusher_in_order_and_ends_with_eof() {
        let (out, mut peer, _token) = direct_pair(1_000_000).await;
        let mut want = Vec::new();
        for i in 0..2000 {
            let line = Bytes::from(format!("frame {i}\n"));
            assert_eq!(out.push(&line, 1), Push::Queued);
            want.extend_from_slice(&line);
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        out.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), out.drained())
            .await
            .expect("drained");
        out.finish().await;
        let got = read_to_end(&mut peer).await.expect("read");
        assert_eq!(got, want);
    }

    /// Everything `r` yields until its end, within 10 s.
    async fn read_to_end(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), r.read_to_end(&mut got))
            .await
            .expect("read to the end")?;
        Ok(got)
    }

    /// Queues far more than the socket buffers hold while the peer reads nothing, and
    /// checks that a drain task took over; the frame queued and how many times.
    async fn stall(out: &Arc<Outbox>) -> (Bytes, usize) {
        let frame = Bytes::from(format!("{}\n", "x".repeat(1023)));
        let frames = 20_000;
        for i in 0..frames {
            assert_eq!(out.push(&frame, 1), Push::Queued);
            if i % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // Let the flusher meet the full socket.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            out.lock().stalled,
            "the socket filled up and a drain task took over"
        );
        (frame, frames)
    }

    /// Reads everything `peer` sends on a task of its own, so that the test can wait for
    /// the writer meanwhile; [`joined`] gives the result.
    fn spawn_read(
        mut peer: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<io::Result<Vec<u8>>> {
        use tokio::io::AsyncReadExt;
        tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got)
        })
    }

    /// What the [`spawn_read`] task read, within 20 s.
    async fn joined(read: tokio::task::JoinHandle<io::Result<Vec<u8>>>) -> io::Result<Vec<u8>> {
        tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("peer reads to the end")
            .expect("reader task")
    }

    /// `got` is `frame`, `frames` times.
    fn assert_all(got: &[u8], frame: &[u8], frames: usize) {
        assert_eq!(got.len(), frames * frame.len());
        assert!(got.chunks(frame.len()).all(|c| c == frame));
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_stalls_its_outbox_and_gets_everything_later() {
        let (out, peer, _token) = direct_pair(1_000_000).await;
        let (frame, frames) = stall(&out).await;
        out.close();
        let read = spawn_read(peer);
        tokio::time::timeout(std::time::Duration::from_secs(20), out.drained())
            .await
            .expect("drained once the peer reads");
        out.finish().await;
        let got = joined(read).await.expect("read");
        assert_all(&got, &frame, frames);
    }

    /// A TLS connection on loopback after its handshake: our side's direct outbox
    /// (flusher running) and reader, and the peer's TLS client stream.
    async fn tls_pair(
        max_frames: usize,
    ) -> (
        Arc<Outbox>,
        crate::tls::TlsReader,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        tempfile::TempDir,
    ) {
        use rustls_pki_types::pem::PemObject;
        let dir = tempfile::tempdir().expect("temp dir");
        let id = crate::tls::load_or_create(dir.path(), None, None).expect("certificate");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(&id.cert_path).expect("pem") {
            roots.add(cert.expect("certificate")).expect("trusted");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .expect("client handshake")
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        let (tcp, conn) = id
            .acceptor
            .accept(tcp)
            .await
            .expect("server handshake")
            .into_inner();
        let peer = client.await.expect("client task");
        let (rd, wr) = tcp.into_split();
        let tls = crate::tls::TlsConn::new(conn);
        let flusher = Flusher::new();
        tokio::spawn(flusher.clone().run(CancellationToken::new()));
        let out = Arc::new(Outbox::direct(
            max_frames,
            Wire::Tls(wr, tls.clone()),
            flusher,
            CancellationToken::new(),
        ));
        out.kick();
        let reader = crate::tls::TlsReader::new(rd, tls, out.clone());
        (out, reader, peer, dir)
    }

    #[tokio::test]
    async fn a_tls_peer_that_stops_reading_gets_everything_later_then_close_notify() {
        let (out, _reader, peer, _dir) = tls_pair(1_000_000).await;
        let (frame, frames) = stall(&out).await;
        out.close();
        let read = spawn_read(peer);
        tokio::time::timeout(std::time::Duration::from_secs(20), out.finish())
            .await
            .expect("finished once the peer reads");
        // A TLS stream that ends without close_notify reads as an error here.
        let got = joined(read)
            .await
            .expect("the stream ends with close_notify");
        assert_all(&got, &frame, frames);
    }

    #[tokio::test]
    async fn the_tls_reader_decrypts_what_the_peer_sends_and_ends_at_its_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (out, mut reader, mut peer, _dir) = tls_pair(1000).await;
        let mut want = Vec::new();
        for i in 0..3000 {
            want.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        peer.write_all(&want).await.expect("write");
        // The server writes while it reads: both directions share the TLS state.
        out.push(&Bytes::from_static(b"welcome\n"), 1);
        peer.shutdown().await.expect("close_notify");
        let got = read_to_end(&mut reader).await.expect("read");
        assert_eq!(got, want);
        let mut line = [0u8; 8];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            peer.read_exact(&mut line),
        )
        .await
        .expect("the flusher wrote")
        .expect("read");
        assert_eq!(&line, b"welcome\n");
    }

    #[tokio::test]
    async fn a_peer_sending_a_forged_record_gets_an_alert_even_with_frames_queued() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (out, mut reader, mut peer, _dir) = tls_pair(1000).await;
        // An application-data record that does not decrypt, past the client's TLS layer.
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        forged.extend_from_slice(&[0xAB; 0x20]);
        peer.get_mut().0.write_all(&forged).await.expect("write");
        let read = read_to_end(&mut reader).await;
        assert!(read.is_err(), "a forged record is an error: {read:?}");
        // The session then queues its goodbye, which cannot be sent any more.
        out.push(&Bytes::from_static(b"bye\n"), 1);
        out.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), out.finish())
            .await
            .expect("finished");
        let mut got = Vec::new();
        let err = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            peer.read_to_end(&mut got),
        )
        .await
        .expect("the peer hears back")
        .expect_err("the peer gets an alert, not data");
        assert!(
            err.to_string().contains("alert"),
            "the peer is told why: {err}"
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn a_broken_peer_ends_the_session() {
        let (out, peer, token) = direct_pair(1000).await;
        drop(peer);
        // Writing to a socket whose peer is gone fails (reset) within a few writes.
        let failed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                out.push(&Bytes::from_static(b"hello\n"), 1);
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                }
            }
        })
        .await;
        assert!(failed.is_ok(), "the write never failed");
        assert!(token.is_cancelled(), "a failed write cancels the session");
        assert!(
            out.close_reason()
                .is_some_and(|r| r.starts_with("write failed")),
            "{:?}",
            out.close_reason()
        );
        assert_eq!(out.push(&Bytes::from_static(b"more\n"), 1), Push::Closed);
    }
}
