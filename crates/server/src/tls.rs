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

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use rustls::{ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
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
    /// Performs server-side handshakes.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the end-entity certificate, as colon-separated upper-case hex.
    pub fingerprint: String,
    /// Where the certificate chain was read from.
    pub cert_path: PathBuf,
    /// True if this start created the self-signed certificate.
    pub generated: bool,
}

/// One connection's TLS state after the handshake, shared by its reader and its writer
/// (the flusher or a drain task); each holds the lock only to decrypt or encrypt and
/// move records, never across an `.await`.
pub struct TlsConn(Mutex<ServerConnection>);

impl TlsConn {
    /// Shares `conn` between the directions.
    pub fn new(conn: ServerConnection) -> Arc<TlsConn> {
        Arc::new(TlsConn(Mutex::new(conn)))
    }

    /// The state, or an error if a panic while holding it left it unusable.
    pub fn lock(&self) -> io::Result<MutexGuard<'_, ServerConnection>> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("TLS state unusable after a panic"))
    }
}

/// Tells a connection's writer that its TLS state has records of its own to send.
pub type WakeWriter = Box<dyn Fn() + Send + Sync>;

/// The reading direction of a TLS connection: records from the socket, decrypted under
/// the shared lock. Records that reading makes the connection send (alerts, key update
/// answers) are left to the connection's writer, which `wake` tells.
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
}

/// `io::Read` over a tokio socket that never waits: `WouldBlock` when nothing is there.
struct TryRead<'a>(&'a OwnedReadHalf);

impl Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
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
                let mut conn = this.tls.lock()?;
                match conn.reader().read(buf.initialize_unfilled()) {
                    // `Ok(0)` is the peer's close_notify: the end of the stream.
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed TCP without close_notify: for a line protocol
                    // that is the end of the stream too (a cut line is never a frame).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
                match conn.read_tls(&mut TryRead(&this.tcp)) {
                    // End of TCP: the next turn's read reports it.
                    Ok(0) => (false, false, None),
                    Ok(_) => match conn.process_new_packets() {
                        Ok(_) => (conn.wants_write(), false, None),
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
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
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
