//! TLS for the chat listener: the operator's PEM certificate, or a self-signed one that
//! the server creates in the data directory on first start.
//!
//! Clients that cannot check the self-signed certificate against a CA pin its SHA-256
//! fingerprint on first use, so the server prints the fingerprint at every start.
//!
//! After the handshake a connection's TLS state ([`TlsConn`]) is shared by its two
//! directions: [`TlsReader`] decrypts what the peer sends, and the server's flusher
//! encrypts and writes the session's outbox (see [`crate::outbox`]), as it does for
//! plain TCP, so a TLS connection needs no writer task either.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Buf;
use rustls::ServerConfig;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsAcceptor;

/// Socket reads one [`TlsReader::poll_read`] makes without producing plaintext before
/// it lets other tasks run (a peer sending only non-data records must not hog a worker).
const READS_PER_POLL: usize = 16;

/// Errors preparing TLS; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid PEM of the expected kind.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate/key pair.
    #[error("unusable certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ready TLS acceptor and what to tell the operator about it.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Performs server-side handshakes (IRC and the web listener's).
    pub acceptor: TlsAcceptor,
    /// The configuration, for natter's own connections (see [`handshake`]).
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the end-entity certificate, as colon-separated upper-case hex.
    pub fingerprint: String,
    /// Where the certificate chain was read from.
    pub cert_path: PathBuf,
    /// True if this start created the self-signed certificate.
    pub generated: bool,
}

/// Most bytes read from the socket at once into a connection's buffer of received
/// records.
const READ_CHUNK: usize = 4096;

/// Most plaintext encrypted into one record at once (TLS's limit).
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// Room first offered for a record rustls encodes by itself (alerts, tickets,
/// handshake messages); it asks for more when it needs it.
const SMALL_RECORD: usize = 256;

/// Bytes a record adds to its plaintext at most (header, content type, tag), with room
/// to spare.
const RECORD_OVERHEAD: usize = 64;

/// Encrypted records not yet written beyond which the writer stops encrypting more
/// until the socket takes them (so a peer that does not read costs a bounded buffer).
const MAX_OUTGOING: usize = 64 * 1024;

/// Encrypts into the buffer of records to send, once application data may be sent.
type Encrypting<'a> = dyn FnMut(&mut WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) + 'a;

/// What processing received records led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// The handshake is done: application data may be sent.
    Traffic,
    /// The handshake needs more from the peer.
    Blocked,
    /// Both sides have closed.
    Closed,
}

/// A connection's TLS state: rustls's unbuffered connection and the buffers this server
/// owns for it. rustls's own (buffered) connection keeps a 4 KiB buffer of received
/// records for the connection's whole life; here each buffer exists only while it holds
/// something, so an idle connection has none.
pub struct TlsState {
    /// The TLS state machine.
    conn: UnbufferedServerConnection,
    /// Records received and not yet processed (at rest, at most part of one record).
    incoming: Vec<u8>,
    /// Records for the peer, not yet written, from `sent` on.
    outgoing: Vec<u8>,
    /// How much of `outgoing` was written.
    sent: usize,
    /// Decrypted data not yet read, from `taken` on.
    plaintext: Vec<u8>,
    /// How much of `plaintext` was read.
    taken: usize,
    /// The peer sent close_notify, or the socket ended.
    peer_done: bool,
    /// Why the connection failed, once it has: nothing more is read or encrypted, but the
    /// alert telling the peer why still goes out.
    failed: Option<rustls::Error>,
    /// Set when the handshake ends: what the peer sent right after it may already be in
    /// `incoming`, unprocessed, and no socket read will announce it.
    unread: bool,
    /// close_notify was queued by [`TlsWriter`]'s shutdown.
    close_notify_sent: bool,
}

impl TlsState {
    /// A new server-side TLS state with `config`, before the handshake.
    fn new(config: Arc<ServerConfig>) -> Result<TlsState, rustls::Error> {
        Ok(TlsState {
            conn: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            plaintext: Vec::new(),
            taken: 0,
            peer_done: false,
            failed: None,
            unread: false,
            close_notify_sent: false,
        })
    }

    /// Whether there are records to write.
    pub fn wants_write(&self) -> bool {
        self.sent < self.outgoing.len()
    }

    /// Processes the records received so far: decrypted data goes to `plaintext`, records
    /// the connection must send (handshake, alerts, tickets, key updates) to `outgoing`.
    /// With `write`, once application data may be sent, encrypts through it.
    fn process(
        &mut self,
        mut write: Option<&mut Encrypting<'_>>,
    ) -> Result<Progress, rustls::Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let TlsState {
            conn,
            incoming,
            outgoing,
            plaintext,
            peer_done,
            failed,
            ..
        } = self;
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(incoming);
            let progress = match state {
                Err(e) => {
                    // rustls has queued an alert; encoded below, on the next rounds.
                    *failed = Some(e.clone());
                    None
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(record) = r.next_record() {
                        match record {
                            Ok(record) => plaintext.extend_from_slice(record.payload),
                            Err(e) => {
                                *failed = Some(e);
                                break;
                            }
                        }
                    }
                    None
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    encode_into(outgoing, SMALL_RECORD, |out| {
                        e.encode(out).map_err(|e| match e {
                            EncodeError::InsufficientSize(s) => Some(s.required_size),
                            EncodeError::AlreadyEncoded => None,
                        })
                    });
                    None
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // Transmitted in order with everything else in `outgoing`.
                    t.done();
                    None
                }
                Ok(ConnectionState::PeerClosed) => {
                    *peer_done = true;
                    None
                }
                Ok(ConnectionState::Closed) => {
                    *peer_done = true;
                    Some(Progress::Closed)
                }
                Ok(ConnectionState::BlockedHandshake) => Some(Progress::Blocked),
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    if failed.is_none()
                        && let Some(write) = write.as_mut()
                    {
                        write(&mut w, outgoing);
                    }
                    Some(Progress::Traffic)
                }
                // Early data is never accepted (the configuration allows none).
                Ok(_) => Some(Progress::Blocked),
            };
            incoming.drain(..discard.min(incoming.len()));
            if incoming.is_empty() {
                // Nothing partial waits: the buffer goes until the next read.
                *incoming = Vec::new();
            }
            if let Some(e) = failed {
                // Only the alert's encoding is left to do.
                drain_alerts(conn, outgoing);
                return Err(e.clone());
            }
            if let Some(progress) = progress {
                return Ok(progress);
            }
        }
    }

    /// Reads what the socket has without waiting into the buffer of received records;
    /// `Ok(0)` at the end of the stream.
    fn read_from(&mut self, tcp: &TcpStream) -> io::Result<usize> {
        self.incoming.reserve(READ_CHUNK);
        let n = tcp.try_read_buf(&mut self.incoming);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        n
    }

    /// Moves decrypted data into `buf`; how much.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> usize {
        let n = (self.plaintext.len() - self.taken).min(buf.remaining());
        buf.put_slice(&self.plaintext[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.taken = 0;
        }
        n
    }

    /// Encrypts as much of `chunk` as fits under [`MAX_OUTGOING`] (many small buffers
    /// into as few records as they fit), dropping what was taken; records the connection
    /// must send anyway are queued too. Fails if the connection has failed (the alert
    /// still goes out).
    ///
    /// The buffers are `Bytes` from an outbox, or a borrowed slice ([`TlsWriter`]): both
    /// are encrypted where they are, never copied first.
    pub fn encrypt<B>(&mut self, chunk: &mut VecDeque<B>) -> io::Result<()>
    where
        B: Buf + std::ops::Deref<Target = [u8]>,
    {
        let mut scratch = Vec::new();
        let mut exhausted = false;
        let progress = self.process(Some(&mut |w, outgoing| {
            while !chunk.is_empty() && outgoing.len() < MAX_OUTGOING {
                // One buffer alone (or a large one) is encrypted where it is; several
                // small ones are joined first, so they share records.
                let alone = chunk.len() == 1
                    || chunk
                        .front()
                        .is_some_and(|f| f.len() >= MAX_RECORD_PLAINTEXT);
                if !alone {
                    scratch.clear();
                    while scratch.len() < MAX_RECORD_PLAINTEXT {
                        let Some(front) = chunk.front_mut() else {
                            break;
                        };
                        let n = front.len().min(MAX_RECORD_PLAINTEXT - scratch.len());
                        scratch.extend_from_slice(&front[..n]);
                        front.advance(n);
                        if front.is_empty() {
                            chunk.pop_front();
                        }
                    }
                }
                let data = match chunk.front() {
                    Some(front) if alone => &front[..front.len().min(MAX_RECORD_PLAINTEXT)],
                    _ => &scratch[..],
                };
                let taken = data.len();
                // Room for the data and a record's overhead, so one try usually does.
                let ok = encode_into(outgoing, taken + RECORD_OVERHEAD, |out| {
                    w.encrypt(data, out).map_err(|e| match e {
                        EncryptError::InsufficientSize(s) => Some(s.required_size),
                        EncryptError::EncryptExhausted => None,
                    })
                });
                if !ok {
                    exhausted = true;
                    return;
                }
                if alone && let Some(front) = chunk.front_mut() {
                    front.advance(taken);
                    if front.is_empty() {
                        chunk.pop_front();
                    }
                }
            }
        }));
        match progress {
            Err(e) => {
                chunk.clear();
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Ok(_) if exhausted => Err(io::Error::other("TLS encryption keys exhausted")),
            // Before the handshake is done nothing is encrypted; callers only write after.
            Ok(_) => Ok(()),
        }
    }

    /// Queues close_notify for the peer (once the handshake is done).
    pub fn send_close_notify(&mut self) {
        let _ = self.process(Some(&mut |w, outgoing| {
            encode_into(outgoing, SMALL_RECORD, |out| {
                w.queue_close_notify(out).map_err(|e| match e {
                    EncryptError::InsufficientSize(s) => Some(s.required_size),
                    EncryptError::EncryptExhausted => None,
                })
            });
        }));
    }

    /// Writes records while the socket takes them, with `send` (a non-blocking write);
    /// `Ok(true)` once none is left.
    pub fn write_records(
        &mut self,
        mut send: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        while self.wants_write() {
            match send(&self.outgoing[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // All written: the buffer goes until there is more.
        self.outgoing = Vec::new();
        self.sent = 0;
        Ok(true)
    }
}

/// Appends what `encode` writes to `out`, growing `out` as `encode` asks (`Err(Some(n))`:
/// it needs `n` bytes); false if it cannot encode at all.
fn encode_into(
    out: &mut Vec<u8>,
    room: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> bool {
    let start = out.len();
    let mut room = room;
    loop {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return true;
            }
            Err(Some(needed)) if needed > room => room = needed,
            Err(_) => {
                out.truncate(start);
                return false;
            }
        }
    }
}

/// Encodes the alerts a failed connection has queued.
fn drain_alerts(conn: &mut UnbufferedServerConnection, outgoing: &mut Vec<u8>) {
    // Bounded: each round either encodes a record or stops.
    for _ in 0..8 {
        match conn.process_tls_records(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut e)) => {
                encode_into(outgoing, SMALL_RECORD, |out| {
                    e.encode(out).map_err(|e| match e {
                        EncodeError::InsufficientSize(s) => Some(s.required_size),
                        EncodeError::AlreadyEncoded => None,
                    })
                });
            }
            Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
            _ => return,
        }
    }
}

/// Completes a server-side TLS handshake with `config` on `tcp`; the connection's state,
/// ready for application data.
pub async fn handshake(config: Arc<ServerConfig>, tcp: &TcpStream) -> io::Result<TlsState> {
    let mut st = TlsState::new(config).map_err(io::Error::other)?;
    loop {
        let progress = st.process(None);
        while st.wants_write() {
            tcp.writable().await?;
            st.write_records(|b| tcp.try_write(b))?;
        }
        match progress.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
            Progress::Traffic => {
                st.unread = !st.incoming.is_empty();
                return Ok(st);
            }
            Progress::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Progress::Blocked => loop {
                tcp.readable().await?;
                match st.read_from(tcp) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            },
        }
    }
}

/// One connection's TLS state after the handshake, shared by its reader and its writer
/// (the flusher or a drain task); each holds the lock only to decrypt or encrypt and
/// move records, never across an `.await`.
pub struct TlsConn(Mutex<TlsState>);

impl TlsConn {
    /// Shares `state` between the directions.
    pub fn new(state: TlsState) -> Arc<TlsConn> {
        Arc::new(TlsConn(Mutex::new(state)))
    }

    /// The state, or an error if a panic while holding it left it unusable.
    pub fn lock(&self) -> io::Result<MutexGuard<'_, TlsState>> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("TLS state unusable after a panic"))
    }
}

/// Tells a connection's writer that its TLS state has records of its own to send.
pub type WakeWriter = Box<dyn Fn() + Send + Sync>;

/// The reading direction of a TLS connection: records from the socket, decrypted under
/// the shared lock. Records that reading makes the connection send (alerts, key update
/// answers, session tickets) are left to the connection's writer, which `wake` tells.
pub struct TlsReader {
    /// The socket's read half.
    tcp: OwnedReadHalf,
    /// The connection's TLS state.
    tls: Arc<TlsConn>,
    /// Tells whoever writes this connection that reading left records to send.
    wake: WakeWriter,
}

impl TlsReader {
    /// Reads `tcp` through `tls`; `wake` tells the connection's writer (the outbox, in
    /// the server) when there are records to send.
    pub fn new(tcp: OwnedReadHalf, tls: Arc<TlsConn>, wake: WakeWriter) -> TlsReader {
        TlsReader { tcp, tls, wake }
    }

    /// The socket's read half, for reading and discarding what is left at the end.
    pub fn into_tcp(self) -> OwnedReadHalf {
        self.tcp
    }

    /// Bytes the connection's own buffers hold (received records, records to send,
    /// decrypted data), allocated or not.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.tls.lock().map_or(usize::MAX, |st| {
            st.incoming.capacity() + st.outgoing.capacity() + st.plaintext.capacity()
        })
    }
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..READS_PER_POLL {
            // What one turn did: whether the connection now has records to send, and
            // whether the socket had nothing to read.
            let (to_send, empty, failed) = {
                let mut st = this.tls.lock()?;
                if st.take_plaintext(buf) > 0 {
                    return Poll::Ready(Ok(()));
                }
                if st.peer_done {
                    // close_notify, or TCP closed without it: for a line protocol both
                    // are the end of the stream (a cut line is never a frame).
                    return Poll::Ready(Ok(()));
                }
                if let Some(e) = &st.failed {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e.clone())));
                }
                let tcp: &TcpStream = this.tcp.as_ref();
                let read = if std::mem::take(&mut st.unread) {
                    // Records that came with the end of the handshake.
                    Ok(1)
                } else {
                    st.read_from(tcp)
                };
                match read {
                    Ok(0) => {
                        // End of TCP: what was decrypted is still read, then the end.
                        st.peer_done = true;
                        (false, false, None)
                    }
                    Ok(_) => match st.process(None) {
                        Ok(_) => (st.wants_write(), false, None),
                        // rustls has queued an alert for the peer; send it, then fail.
                        Err(e) => (true, false, Some(e)),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, true, None),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => (false, false, None),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            };
            if to_send {
                (this.wake)();
            }
            if let Some(e) = failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
            if empty {
                // `try_read` cleared the readiness, so this registers for the next data.
                match this.tcp.as_ref().poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The writing direction of a TLS connection as an `AsyncWrite`, for writers that take
/// one (the IRC gateway's): what is written is encrypted at once under the shared lock,
/// and the records go out as the socket takes them. A write is accepted once encrypted;
/// `flush` waits until every record has gone, including those reading left to send
/// (the connection's writer flushes when its reader's wake-up says so).
pub struct TlsWriter {
    /// The socket's write half.
    tcp: OwnedWriteHalf,
    /// The connection's TLS state.
    tls: Arc<TlsConn>,
}

impl TlsWriter {
    /// Writes `tcp` through `tls`.
    pub fn new(tcp: OwnedWriteHalf, tls: Arc<TlsConn>) -> TlsWriter {
        TlsWriter { tcp, tls }
    }

    /// Writes queued records until none is left, or the socket is full (then it is
    /// registered for the next chance to write).
    fn poll_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Bounded: each round writes something or waits for the socket.
        loop {
            let done = self
                .tls
                .lock()?
                .write_records(|bytes| self.tcp.try_write(bytes))?;
            if done {
                return Poll::Ready(Ok(()));
            }
            // `try_write` cleared the readiness, so this registers for the next chance.
            std::task::ready!(self.tcp.as_ref().poll_write_ready(cx))?;
        }
    }
}

impl AsyncWrite for TlsWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Records from before first, so what is queued stays bounded.
        std::task::ready!(this.poll_records(cx))?;
        let mut chunk = VecDeque::from([buf]);
        this.tls.lock()?.encrypt(&mut chunk)?;
        let left: usize = chunk.iter().map(|rest| rest.len()).sum();
        // Encrypted is accepted: what the socket does not take now goes on the next write
        // or flush.
        if let Poll::Ready(Err(e)) = this.poll_records(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len() - left))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_records(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        {
            let mut st = this.tls.lock()?;
            // Once: a second poll after Pending must not queue it again.
            if !st.close_notify_sent {
                st.close_notify_sent = true;
                st.send_close_notify();
            }
        }
        std::task::ready!(this.poll_records(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// Loads `cert`/`key` when given; otherwise loads or creates `DATA_DIR/tls/cert.pem` and
/// `key.pem` (key mode 0600).
pub fn load_or_create(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsIdentity, TlsError> {
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf(), false),
        _ => {
            let dir = data_dir.join("tls");
            crate::fsutil::private_dir(&dir).map_err(|source| TlsError::Io {
                path: dir.clone(),
                source,
            })?;
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            let generated = !c.exists() || !k.exists();
            if generated {
                generate_self_signed(&c, &k)?;
            }
            (c, k, generated)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| pem_err(&cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&cert_path, e))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Pem {
            path: cert_path,
            message: "no CERTIFICATE block found".into(),
        });
    };
    let fingerprint = fingerprint(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_err(&key_path, e))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    let config = Arc::new(config);
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(config.clone()),
        config,
        fingerprint,
        cert_path,
        generated,
    })
}

/// SHA-256 of DER bytes as `AB:CD:...`, the form clients show and pin.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_err(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn generate_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && natter_proto::validate_username(&host.replace('.', "-")).is_ok() {
            names.push(host.to_string());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    write_private(cert_path, certified.cert.pem().as_bytes())?;
    Ok(())
}

/// Writes a file that only the owner can read, created with that mode from the start.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    crate::fsutil::restrict_file(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses_the_same_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path(), None, None).expect("create");
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let second = load_or_create(dir.path(), None, None).expect("reuse");
        assert!(!second.generated);
        assert_eq!(first.fingerprint, second.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_pem_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not pem").expect("write");
        std::fs::write(&key, "not pem").expect("write");
        let err = load_or_create(dir.path(), Some(&cert), Some(&key))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("c.pem"), "{err}");
    }
}
