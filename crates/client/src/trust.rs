//! Verifying the server over TLS: a CA, the system roots, or trust on first use.
//!
//! The order of checks (docs/SECURITY.md, "Transport security"):
//!
//! 1. With `--ca-cert FILE` ([`TrustConfig::ca_cert`]) the chain must verify against that
//!    CA alone, for the host name of `--server`. Anything else is refused; there is no
//!    fallback to pinning.
//! 2. Otherwise a chain that verifies against the system's root certificates for the host
//!    name is accepted without pinning.
//! 3. Otherwise the SHA-256 fingerprint of the end-entity certificate (DER), written like
//!    the server prints it (`AB:CD:...`), is looked up for `HOST:PORT` (as typed) in the
//!    known-servers file ([`KnownServers`]):
//!    - the same fingerprint: accepted;
//!    - a different one: the handshake is refused and [`TrustError::Changed`] names both
//!      fingerprints and the line to remove, like ssh's `known_hosts`;
//!    - no entry: the handshake completes provisionally and, before a single byte of the
//!      protocol is sent, it is decided: with a [`Prompter`] (interactive mode) the user
//!      is asked ([`new_server_question`]); without one (plain mode) the pin is added and
//!      the caller prints [`pinned_notice`] on stderr, like ssh's `accept-new`;
//!      `--strict-trust` ([`TrustConfig::strict`]) refuses ([`TrustError::Unknown`])
//!      without asking.
//!
//! The handshake signatures are always checked with the ring provider's algorithms, so a
//! matching fingerprint proves the server holds the certificate's private key. TLS session
//! resumption is off, so every connection goes through this verifier.
//!
//! The known-servers file holds one `HOST:PORT FINGERPRINT` per line; blank lines and
//! lines starting with `#` are ignored. It is created with mode 0600 (its directory
//! 0700), and a pin is added by appending one line in a single write.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::RootCertStore;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::prompt::Prompter;

/// Name of the known-servers file inside the natter config directory.
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

/// Longest wait for the TCP connection plus the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The warning printed (after `natter: `) when the user chooses `--plaintext`.
pub const PLAINTEXT_WARNING: &str =
    "WARNING: --plaintext: your password and messages cross the network unencrypted";

/// The hint added to a failed handshake that may be due to a plaintext server.
pub const PLAINTEXT_HINT: &str =
    "if the server runs with --plaintext (local testing only), connect with --plaintext";

/// How to verify the server.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The file of pinned fingerprints (`--known-servers`).
    pub known_servers: PathBuf,
    /// Verify against this CA (PEM) only, instead of the system roots and pinning.
    pub ca_cert: Option<PathBuf>,
    /// Refuse servers that are neither CA-verified nor pinned, instead of pinning them.
    pub strict: bool,
    /// Try the system's root certificates before pinning (on by default; tests that must
    /// not depend on the machine's store can turn it off).
    pub system_roots: bool,
}

impl TrustConfig {
    /// Trust on first use with pins in `known_servers`, after the system roots.
    pub fn new(known_servers: impl Into<PathBuf>) -> TrustConfig {
        TrustConfig {
            known_servers: known_servers.into(),
            ca_cert: None,
            strict: false,
            system_roots: true,
        }
    }
}

/// Why the server was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustOutcome {
    /// The chain verified against `--ca-cert`.
    CaCert,
    /// The chain verified against the system's root certificates.
    SystemRoots,
    /// The fingerprint matched the one pinned earlier.
    Pinned {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The server was unknown and has just been pinned.
    NewlyPinned {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
        /// The known-servers file the pin was added to.
        file: PathBuf,
    },
}

impl TrustOutcome {
    /// What to tell the user (after `natter: `, on stderr) about this outcome, if anything.
    pub fn notice(&self, server: &str) -> Option<String> {
        match self {
            TrustOutcome::NewlyPinned { fingerprint, file } => {
                Some(pinned_notice(server, fingerprint, file))
            }
            _ => None,
        }
    }
}

/// Why the server was not trusted, or the trust settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Could not reach the server.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (for example because the server speaks plaintext); the
    /// reason says what to do.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// The address tried.
        addr: String,
        /// What went wrong, with a hint.
        reason: String,
    },
    /// The server presented a certificate other than the pinned one.
    #[error("{}", changed_message(.server, .expected, .presented, .file, .lines))]
    Changed {
        /// `HOST:PORT` as given.
        server: String,
        /// The pinned fingerprint (the first one, if several lines name the server).
        expected: String,
        /// The fingerprint presented now.
        presented: String,
        /// The known-servers file.
        file: PathBuf,
        /// The 1-based line numbers that pin this server.
        lines: Vec<usize>,
    },
    /// An unknown server under `--strict-trust`.
    #[error("{}", unknown_message(.server, .fingerprint, .file))]
    Unknown {
        /// `HOST:PORT` as given.
        server: String,
        /// The fingerprint presented.
        fingerprint: String,
        /// The known-servers file.
        file: PathBuf,
    },
    /// The user answered no to trusting an unknown server.
    #[error("not connecting to {server}: its certificate was not trusted; nothing was sent")]
    Declined {
        /// `HOST:PORT` as given.
        server: String,
    },
    /// The known-servers file could not be read or written.
    #[error("known servers file {path}: {source}")]
    KnownServers {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `--ca-cert` file is unusable.
    #[error("--ca-cert {path}: {message}")]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The host part of `--server` is neither a DNS name nor an IP address.
    #[error("invalid server name in '{server}': {message}")]
    ServerName {
        /// `HOST:PORT` as given.
        server: String,
        /// What is wrong.
        message: String,
    },
    /// Asking the user failed.
    #[error("cannot read your answer: {0}")]
    Prompt(std::io::Error),
}

/// SHA-256 of DER bytes as colon-separated upper-case hex (`AB:CD:...`), exactly as the
/// server prints its fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(digest.as_ref().len() * 3);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The default known-servers file: `$XDG_CONFIG_HOME/natter/known_servers` when that
/// variable holds an absolute path, else `$HOME/.config/natter/known_servers`; `None`
/// when neither is set.
pub fn default_known_servers() -> Option<PathBuf> {
    default_known_servers_from(
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`default_known_servers`] with the two variables passed in.
pub fn default_known_servers_from(
    xdg_config_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let config = match xdg_config_home.filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => home.filter(|p| !p.as_os_str().is_empty())?.join(".config"),
    };
    Some(config.join("natter").join(KNOWN_SERVERS_FILE))
}

/// The notice after a new pin: `pinned new server HOST:PORT with fingerprint FP (in FILE)`.
pub fn pinned_notice(server: &str, fingerprint: &str, file: &Path) -> String {
    format!(
        "pinned new server {server} with fingerprint {fingerprint} (in {})",
        file.display()
    )
}

/// The question asked in interactive mode about an unknown server.
pub fn new_server_question(server: &str, fingerprint: &str) -> String {
    format!(
        "The server {server} is not known yet, and its certificate is not signed by a \
         trusted CA.\n\
         Its TLS certificate SHA-256 fingerprint is:\n  {fingerprint}\n\
         Compare it with the fingerprint the server's operator published (the server prints \
         it at every start).\n\
         Trust this server and remember it? [y/N] "
    )
}

fn changed_message(
    server: &str,
    expected: &str,
    presented: &str,
    file: &Path,
    lines: &[usize],
) -> String {
    let which = match lines {
        [one] => format!("line {one}"),
        many => format!(
            "lines {}",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "WARNING: THE TLS CERTIFICATE OF {server} HAS CHANGED! Refusing to connect; nothing \
         was sent.\n\
         \x20 pinned fingerprint:    {expected}\n\
         \x20 presented fingerprint: {presented}\n\
         Someone could be intercepting the connection (a man-in-the-middle attack), or the \
         server has a new certificate.\n\
         Ask the server's operator for its fingerprint (the server prints \"TLS certificate \
         SHA-256 fingerprint: ...\" at start) and compare.\n\
         If you trust the new certificate (the server was reinstalled or its certificate \
         renewed), remove {which} of {} and connect again.",
        file.display()
    )
}

fn unknown_message(server: &str, fingerprint: &str, file: &Path) -> String {
    format!(
        "refusing to connect to {server} (--strict-trust): its certificate is not signed by \
         a trusted CA and the server is not in {file}; nothing was sent.\n\
         \x20 presented fingerprint: {fingerprint}\n\
         If this is the fingerprint the server's operator published, add this line to {file}:\n\
         \x20 {server} {fingerprint}\n\
         or connect once without --strict-trust to pin it.",
        file = file.display()
    )
}

/// One pin in the known-servers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServer {
    /// 1-based line number.
    pub line: usize,
    /// `HOST:PORT` as typed when it was pinned.
    pub server: String,
    /// The pinned fingerprint.
    pub fingerprint: String,
}

/// The parsed known-servers file.
#[derive(Debug, Clone, Default)]
pub struct KnownServers {
    /// Every pin, in file order.
    pub entries: Vec<KnownServer>,
}

impl KnownServers {
    /// Parses the file's text; blank lines, `#` comments and malformed lines are skipped.
    pub fn parse(text: &str) -> KnownServers {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let mut words = line.split_whitespace();
                let (server, fingerprint) = (words.next()?, words.next()?);
                Some(KnownServer {
                    line: i + 1,
                    server: server.to_string(),
                    fingerprint: fingerprint.to_ascii_uppercase(),
                })
            })
            .collect();
        KnownServers { entries }
    }

    /// Reads the file; a missing file has no pins.
    pub fn load(path: &Path) -> Result<KnownServers, TrustError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(KnownServers::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownServers::default()),
            Err(source) => Err(TrustError::KnownServers {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The pins for `server` (compared exactly, as typed).
    pub fn lookup<'a>(&'a self, server: &'a str) -> impl Iterator<Item = &'a KnownServer> + 'a {
        self.entries.iter().filter(move |e| e.server == server)
    }

    /// Appends a pin to the file, creating it (0600) and its directory (0700) if needed.
    pub fn append(path: &Path, server: &str, fingerprint: &str) -> Result<(), TrustError> {
        let err = |source| TrustError::KnownServers {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir).map_err(err)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(err)?;
        let mut text = String::new();
        let len = file.metadata().map_err(err)?.len();
        if len == 0 {
            text.push_str(
                "# natter known servers: one 'HOST:PORT SHA-256-FINGERPRINT' per line.\n\
                 # Written on first connection; remove a line to accept a new certificate.\n",
            );
        } else if !ends_with_newline(&mut file, len).map_err(err)? {
            text.push('\n');
        }
        text.push_str(&format!("{server} {fingerprint}\n"));
        // One write of one short line: appends from concurrent clients do not interleave.
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

fn ends_with_newline(file: &mut std::fs::File, len: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The name to verify the certificate for: the host part of `HOST:PORT` (brackets around
/// an IPv6 address removed); IP addresses are allowed.
pub fn server_name(server: &str) -> Result<ServerName<'static>, TrustError> {
    let host = match server.rsplit_once(':') {
        Some((host, _port)) => host,
        None => server,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host)
        .map(|name| name.to_owned())
        .map_err(|e| TrustError::ServerName {
            server: server.to_string(),
            message: e.to_string(),
        })
}

/// What the verifier concluded about the certificate of one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Verified against `--ca-cert`.
    CaCert,
    /// Verified against the system roots.
    SystemRoots,
    /// Matched a pin.
    Pinned(String),
    /// No pin: accepted provisionally; the caller decides before sending anything.
    Unknown(String),
    /// A pin exists and differs: refused.
    Changed(String),
}

/// Checks the server's certificate as described in the module docs and records why.
#[derive(Debug)]
struct TrustVerifier {
    /// `--ca-cert`: when set, the only check.
    ca: Option<Arc<WebPkiServerVerifier>>,
    /// The system roots, when there are any.
    system: Option<Arc<WebPkiServerVerifier>>,
    /// Pinned fingerprints for this server (upper case); empty when unknown.
    pins: Vec<String>,
    /// The provider's signature algorithms, for the handshake signatures.
    algorithms: WebPkiSupportedAlgorithms,
    /// The verdict of the last handshake, read by [`establish`] afterwards.
    verdict: Mutex<Option<Verdict>>,
}

impl TrustVerifier {
    fn record(&self, verdict: Verdict) {
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
    }

    fn take_verdict(&self) -> Option<Verdict> {
        self.verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(ca) = &self.ca {
            let ok =
                ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
            self.record(Verdict::CaCert);
            return Ok(ok);
        }
        if let Some(system) = &self.system
            && let Ok(ok) = system.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        {
            self.record(Verdict::SystemRoots);
            return Ok(ok);
        }
        let presented = fingerprint(end_entity.as_ref());
        if self.pins.is_empty() {
            // Provisional: the caller decides before anything is sent.
            self.record(Verdict::Unknown(presented));
            Ok(ServerCertVerified::assertion())
        } else if self.pins.contains(&presented) {
            self.record(Verdict::Pinned(presented));
            Ok(ServerCertVerified::assertion())
        } else {
            self.record(Verdict::Changed(presented));
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The parts of a verifier that stay the same across the connections of one
/// [`establish`] call.
struct Anchors {
    /// ring, for the handshake and the signature checks.
    provider: Arc<CryptoProvider>,
    /// Verifier for `--ca-cert`, when given (then the only check).
    ca: Option<Arc<WebPkiServerVerifier>>,
    /// Verifier for the system roots; `None` when the store is empty or unreadable.
    system: Option<Arc<WebPkiServerVerifier>>,
}

impl Anchors {
    fn load(trust: &TrustConfig) -> Result<Anchors, TrustError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let build = |roots: RootCertStore| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
        };
        if let Some(path) = &trust.ca_cert {
            let ca_err = |message: String| TrustError::CaCert {
                path: path.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert.map_err(|e| ca_err(e.to_string()))?)
                    .map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("no CERTIFICATE block found".into()));
            }
            let ca = build(roots).map_err(|e| ca_err(e.to_string()))?;
            return Ok(Anchors {
                provider,
                ca: Some(ca),
                system: None,
            });
        }
        let system = if trust.system_roots {
            // Unreadable or missing certificates are tolerated: pinning still works.
            let mut roots = RootCertStore::empty();
            let (_added, _ignored) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            build(roots).ok()
        } else {
            None
        };
        Ok(Anchors {
            provider,
            ca: None,
            system,
        })
    }

    fn verifier(&self, pins: Vec<String>) -> Arc<TrustVerifier> {
        Arc::new(TrustVerifier {
            ca: self.ca.clone(),
            system: self.system.clone(),
            pins,
            algorithms: self.provider.signature_verification_algorithms,
            verdict: Mutex::new(None),
        })
    }
}

/// The pinned fingerprints for `server` and the lines they are on.
fn pins_for(trust: &TrustConfig, server: &str) -> Result<(Vec<String>, Vec<usize>), TrustError> {
    if trust.ca_cert.is_some() {
        return Ok((Vec::new(), Vec::new()));
    }
    let known = KnownServers::load(&trust.known_servers)?;
    Ok(known
        .lookup(server)
        .map(|e| (e.fingerprint.clone(), e.line))
        .unzip())
}

/// Connects to `server` (`HOST:PORT`), performs the TLS handshake and settles trust as the
/// module docs describe. Returns the stream, on which nothing has been sent yet.
pub async fn establish(
    server: &str,
    trust: &TrustConfig,
    prompter: Option<&mut dyn Prompter>,
) -> Result<(TlsStream<TcpStream>, TrustOutcome), TrustError> {
    let name = server_name(server)?;
    let anchors = Anchors::load(trust)?;
    let (pins, lines) = pins_for(trust, server)?;
    let (tls, verdict) = handshake(server, &name, trust, &anchors, pins.clone(), &lines).await?;
    let fingerprint = match verdict {
        Verdict::CaCert => return Ok((tls, TrustOutcome::CaCert)),
        Verdict::SystemRoots => return Ok((tls, TrustOutcome::SystemRoots)),
        Verdict::Pinned(fingerprint) => return Ok((tls, TrustOutcome::Pinned { fingerprint })),
        Verdict::Unknown(fingerprint) => fingerprint,
        // handshake() turns this into an error.
        Verdict::Changed(presented) => {
            return Err(changed(server, trust, &pins, presented, lines));
        }
    };
    let file = trust.known_servers.clone();
    if trust.strict {
        return Err(TrustError::Unknown {
            server: server.to_string(),
            fingerprint,
            file,
        });
    }
    let asked = match prompter {
        None => false,
        Some(prompter) => {
            let yes = prompter
                .confirm(&new_server_question(server, &fingerprint))
                .map_err(TrustError::Prompt)?;
            if !yes {
                return Err(TrustError::Declined {
                    server: server.to_string(),
                });
            }
            true
        }
    };
    KnownServers::append(&file, server, &fingerprint)?;
    let outcome = TrustOutcome::NewlyPinned {
        fingerprint: fingerprint.clone(),
        file,
    };
    if !asked {
        return Ok((tls, outcome));
    }
    // The user may have taken longer than the server's login timeout to answer: start
    // afresh, now verified against the new pin (which also catches a switch meanwhile).
    drop(tls);
    let (pins, lines) = pins_for(trust, server)?;
    let (tls, verdict) = handshake(server, &name, trust, &anchors, pins, &lines).await?;
    match verdict {
        Verdict::Pinned(_) | Verdict::SystemRoots => Ok((tls, outcome)),
        other => Err(TrustError::Handshake {
            addr: server.to_string(),
            reason: format!("the server's certificate changed during the connection ({other:?})"),
        }),
    }
}

/// One TCP connection and TLS handshake, bounded by [`HANDSHAKE_TIMEOUT`].
async fn handshake(
    server: &str,
    name: &ServerName<'static>,
    trust: &TrustConfig,
    anchors: &Anchors,
    pins: Vec<String>,
    lines: &[usize],
) -> Result<(TlsStream<TcpStream>, Verdict), TrustError> {
    let verifier = anchors.verifier(pins.clone());
    let mut config = rustls::ClientConfig::builder_with_provider(anchors.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Handshake {
            addr: server.to_string(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // Every connection must go through the verifier.
    config.resumption = Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));
    let attempt = async {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|source| TrustError::Connect {
                addr: server.to_string(),
                source,
            })?;
        // Chat lines are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| handshake_error(server, trust, name, e))
    };
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(TrustError::Handshake {
                addr: server.to_string(),
                reason: format!("no answer within {} s", HANDSHAKE_TIMEOUT.as_secs()),
            })
        });
    let verdict = verifier.take_verdict();
    match (result, verdict) {
        (_, Some(Verdict::Changed(presented))) => {
            Err(changed(server, trust, &pins, presented, lines.to_vec()))
        }
        (Ok(tls), Some(verdict)) => Ok((tls, verdict)),
        (Ok(_), None) => Err(TrustError::Handshake {
            addr: server.to_string(),
            reason: "the certificate was not verified".into(),
        }),
        (Err(e), _) => Err(e),
    }
}

fn changed(
    server: &str,
    trust: &TrustConfig,
    pins: &[String],
    presented: String,
    lines: Vec<usize>,
) -> TrustError {
    TrustError::Changed {
        server: server.to_string(),
        expected: pins.first().cloned().unwrap_or_default(),
        presented,
        file: trust.known_servers.clone(),
        lines,
    }
}

/// Explains a failed handshake, with what to do about it.
fn handshake_error(
    server: &str,
    trust: &TrustConfig,
    name: &ServerName<'_>,
    e: std::io::Error,
) -> TrustError {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let reason = match (tls_error, &trust.ca_cert) {
        (Some(rustls::Error::InvalidCertificate(why)), Some(ca)) => format!(
            "the server's certificate does not verify against --ca-cert {} for {}: {why}",
            ca.display(),
            name.to_str()
        ),
        (Some(rustls::Error::InvalidMessage(_)), _) => {
            format!("the server does not speak TLS ({e}); {PLAINTEXT_HINT}")
        }
        _ if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the server closed the connection during the handshake; {PLAINTEXT_HINT}")
        }
        _ => format!("{e}; {PLAINTEXT_HINT}"),
    };
    TrustError::Handshake {
        addr: server.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests;
