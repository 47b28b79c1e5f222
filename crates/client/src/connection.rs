//! A framed connection to a natter server.
//!
//! [`Connection::connect_tls`] is the normal way in: TLS with the server verified as
//! [`crate::trust`] describes, nothing sent before trust is settled.
//! [`Connection::connect`] speaks plain TCP (the client's `--plaintext`, for local testing,
//! and tests of plaintext servers). [`Connection::over`] wraps any other transport.

use futures::{SinkExt, StreamExt};
use natter_proto::{
    ClientFrame, ErrorCode, LineCodec, MAX_LINE, ServerFrame, decode_server, encode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::prompt::Prompter;
use crate::trust::{TrustConfig, TrustError, TrustOutcome};

/// Any byte stream a connection can run over (TCP, TLS, an in-memory pipe in tests).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Errors talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the server.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The connection failed while in use.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent a line that is not a frame.
    #[error("server sent an invalid frame: {0}")]
    BadFrame(String),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server did not start with `hello`.
    #[error("not a natter server (no hello frame)")]
    NoHello,
    /// The TLS handshake failed (for example because the server speaks plaintext); the
    /// reason says what to do.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The address tried.
        addr: String,
        /// What went wrong, with a hint.
        reason: String,
    },
    /// The server was not trusted, or the trust settings are unusable.
    #[error(transparent)]
    Trust(TrustError),
    /// The server refused a request.
    #[error("{message} ({code})")]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Server's explanation.
        message: String,
    },
}

impl From<TrustError> for ClientError {
    fn from(e: TrustError) -> ClientError {
        // Reaching the server and the handshake are connection errors, whatever layer
        // found them.
        match e {
            TrustError::Connect { addr, source } => ClientError::Connect { addr, source },
            TrustError::Handshake { addr, reason } => ClientError::Tls { addr, reason },
            other => ClientError::Trust(other),
        }
    }
}

/// A successful login, as reported by the server's `auth_ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The account name as registered (original case), which may differ from what was typed.
    pub user: String,
    /// True when this login created the account.
    pub registered: bool,
}

/// A framed, line-delimited JSON connection to a server.
pub struct Connection {
    /// The framed transport; lines are bounded by [`MAX_LINE`] in both directions.
    framed: Framed<Box<dyn Transport>, LineCodec>,
}

impl Connection {
    /// Connects over plain TCP and reads the server's `hello`.
    pub async fn connect(addr: &str) -> Result<(Connection, ServerFrame), ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // Chat lines are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        Connection::over(Box::new(tcp)).await
    }

    /// Connects over TLS, verifies the server as [`crate::trust`] describes (asking through
    /// `prompter` about an unknown server in interactive mode; pinning it without one unless
    /// `trust.strict`), then reads the server's `hello`.
    ///
    /// Nothing is sent to the server before it is trusted. A [`TrustOutcome::NewlyPinned`]
    /// should be shown to the user (see [`TrustOutcome::notice`]).
    pub async fn connect_tls(
        addr: &str,
        trust: &TrustConfig,
        prompter: Option<&mut dyn Prompter>,
    ) -> Result<(Connection, ServerFrame, TrustOutcome), ClientError> {
        let (tls, outcome) = crate::trust::establish(addr, trust, prompter).await?;
        let (conn, hello) = Connection::over(Box::new(tls)).await?;
        Ok((conn, hello, outcome))
    }

    /// Wraps an established transport and reads the server's `hello`.
    pub async fn over(io: Box<dyn Transport>) -> Result<(Connection, ServerFrame), ClientError> {
        let mut conn = Connection {
            framed: Framed::new(io, LineCodec::new(MAX_LINE)),
        };
        match conn.recv().await? {
            Some(hello @ ServerFrame::Hello { .. }) => Ok((conn, hello)),
            Some(_) => Err(ClientError::NoHello),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.framed.send(encode(frame)).await.map_err(codec_err)
    }

    /// Receives the next frame; `Ok(None)` when the server closed the connection cleanly.
    pub async fn recv(&mut self) -> Result<Option<ServerFrame>, ClientError> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(codec_err(e)),
            Some(Ok(line)) => decode_server(&line)
                .map(Some)
                .map_err(|e| ClientError::BadFrame(e.message)),
        }
    }

    /// Logs in (or registers, then logs in) and returns the account's canonical name.
    ///
    /// Frames that arrive before the answer (none are expected) are skipped.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
        register: bool,
    ) -> Result<String, ClientError> {
        self.authenticate(user, password, register)
            .await
            .map(|ok| ok.user)
    }

    /// Like [`Connection::login`], but also reports whether the account was just created.
    pub async fn authenticate(
        &mut self,
        user: &str,
        password: &str,
        register: bool,
    ) -> Result<Authenticated, ClientError> {
        self.send(&ClientFrame::Auth {
            id: None,
            user: user.to_string(),
            password: password.to_string(),
            register,
        })
        .await?;
        // Bounded: a server that never answers is cut off by the transport, not by us.
        loop {
            match self.recv().await? {
                Some(ServerFrame::AuthOk {
                    user, registered, ..
                }) => return Ok(Authenticated { user, registered }),
                Some(ServerFrame::Error { code, message, .. }) => {
                    return Err(ClientError::Refused { code, message });
                }
                Some(ServerFrame::Bye { reason }) => {
                    return Err(ClientError::Refused {
                        code: ErrorCode::Unknown,
                        message: reason,
                    });
                }
                Some(_) => continue,
                None => return Err(ClientError::Closed),
            }
        }
    }
}

fn codec_err(e: natter_proto::CodecError) -> ClientError {
    match e {
        // TLS reports a connection closed without its close_notify (a crashed or killed
        // server) as an unexpected EOF; a partial last line is dropped, never delivered.
        natter_proto::CodecError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ClientError::Closed
        }
        natter_proto::CodecError::Io(io) => ClientError::Io(io),
        other => ClientError::BadFrame(other.to_string()),
    }
}
