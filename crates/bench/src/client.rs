//! One benchmark user's connection(s), speaking natter's JSON lines, RESP or IRC.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;

/// Password of every benchmark account.
pub const PASSWORD: &str = "bench-password-1";
/// Room (natter), channel (Redis) or IRC channel (without `#`) of the fan-out workloads.
pub const ROOM: &str = "lobby";
/// Time allowed for one connection to connect and log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Which server the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// natter's JSON-lines protocol.
    Natter,
    /// Redis pub/sub over RESP2.
    Redis,
    /// IRC (tested with ngircd).
    Irc,
}

impl Kind {
    /// Name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Natter => "natter",
            Kind::Redis => "redis",
            Kind::Irc => "ngircd",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// Protocol.
    pub kind: Kind,
    /// Server address.
    pub addr: SocketAddr,
    /// TLS client configuration (natter only), trusting the server's own certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// A plaintext target.
    pub fn plain(kind: Kind, addr: SocketAddr) -> Target {
        Target {
            kind,
            addr,
            tls: None,
        }
    }

    /// A natter TLS target trusting the certificate in `cert_pem` for "localhost".
    pub fn natter_tls(addr: SocketAddr, cert_pem: &Path) -> Result<Target> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem)
            .with_context(|| format!("reading {}", cert_pem.display()))?
        {
            roots.add(cert.context("bad certificate")?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Target {
            kind: Kind::Natter,
            addr,
            tls: Some(Arc::new(config)),
        })
    }

    async fn stream(&self) -> Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => {
                let name = ServerName::try_from("localhost")?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Connects and logs `name` in. `channel` is the room (or, for Redis, the channel)
    /// to be in; `None` only registers (IRC) or stays unsubscribed (Redis). `sender`
    /// asks for a way to send (for Redis a second, publishing connection). `register`
    /// creates the natter account (an existing one is fine).
    pub async fn login(
        &self,
        name: &str,
        channel: Option<&str>,
        sender: bool,
        register: bool,
    ) -> Result<(Reader, Writer)> {
        tokio::time::timeout(
            LOGIN_TIMEOUT,
            self.login_inner(name, channel, sender, register),
        )
        .await
        .map_err(|_| anyhow!("login of {name} timed out"))?
    }

    async fn login_inner(
        &self,
        name: &str,
        channel: Option<&str>,
        sender: bool,
        register: bool,
    ) -> Result<(Reader, Writer)> {
        let stream = self.stream().await?;
        let (rd, wr) = tokio::io::split(stream);
        let mut reader = Reader {
            kind: self.kind,
            rd: BufReader::with_capacity(64 * 1024, rd),
            buf: Vec::with_capacity(512),
            range: (0, 0),
            from: (0, 0),
        };
        let mut writer = Writer {
            kind: self.kind,
            wr,
            out: Vec::with_capacity(256),
            keep: None,
        };
        match self.kind {
            Kind::Natter => {
                reader
                    .expect_line(|l| l.contains("\"type\":\"hello\""))
                    .await?;
                let auth = serde_json::json!({
                    "type": "auth", "user": name, "password": PASSWORD, "register": register,
                });
                writer.raw(format!("{auth}\n").as_bytes()).await?;
                loop {
                    let line = reader.line_str().await?;
                    if line.contains("\"type\":\"auth_ok\"") {
                        break;
                    }
                    if line.contains("\"type\":\"error\"") {
                        if register && line.contains("username_taken") {
                            let auth = serde_json::json!({
                                "type": "auth", "user": name, "password": PASSWORD,
                            });
                            writer.raw(format!("{auth}\n").as_bytes()).await?;
                            continue;
                        }
                        bail!("login of {name} refused: {line}");
                    }
                    if line.contains("\"type\":\"bye\"") {
                        bail!("login of {name} refused: {line}");
                    }
                }
                // The login sequence ends with the lobby history's last frame.
                reader
                    .expect_line(|l| {
                        l.contains("\"type\":\"history\"") && l.contains("\"last\":true")
                    })
                    .await?;
                if let Some(room) = channel
                    && room != ROOM
                {
                    let join = serde_json::json!({"type": "join", "room": room});
                    writer.raw(format!("{join}\n").as_bytes()).await?;
                    reader
                        .expect_line(|l| {
                            l.contains("\"type\":\"history\"") && l.contains("\"last\":true")
                        })
                        .await?;
                }
            }
            Kind::Redis => {
                if let Some(ch) = channel {
                    writer.raw(&resp(&["SUBSCRIBE", ch])).await?;
                    // *3 $9 subscribe $n channel :1
                    reader.expect_line(|l| l == "subscribe").await?;
                    reader.line_str().await?;
                    reader.line_str().await?;
                    reader.line_str().await?;
                }
                if sender {
                    let pub_stream = self.stream().await?;
                    let (prd, pwr) = tokio::io::split(pub_stream);
                    // Drain PUBLISH replies (":<receivers>\r\n") forever.
                    tokio::spawn(drain(prd));
                    writer.keep = Some(std::mem::replace(&mut writer.wr, pwr));
                }
            }
            Kind::Irc => {
                writer
                    .raw(format!("NICK {name}\r\nUSER {name} 0 * :bench\r\n").as_bytes())
                    .await?;
                loop {
                    let line = reader.line_str().await?.to_string();
                    if let Some(rest) = line.strip_prefix("PING ") {
                        writer.raw(format!("PONG {rest}\r\n").as_bytes()).await?;
                    } else if irc_code(&line) == Some("001") {
                        break;
                    } else if line.starts_with("ERROR") || irc_code(&line) == Some("433") {
                        bail!("IRC registration of {name} refused: {line}");
                    }
                }
                if let Some(ch) = channel {
                    writer.raw(format!("JOIN #{ch}\r\n").as_bytes()).await?;
                    loop {
                        let line = reader.line_str().await?.to_string();
                        if let Some(rest) = line.strip_prefix("PING ") {
                            writer.raw(format!("PONG {rest}\r\n").as_bytes()).await?;
                        } else if irc_code(&line) == Some("366") {
                            break;
                        } else if line.starts_with("ERROR")
                            || matches!(irc_code(&line), Some("471" | "473" | "405"))
                        {
                            bail!("IRC join of {name} refused: {line}");
                        }
                    }
                }
            }
        }
        Ok((reader, writer))
    }
}

fn irc_code(line: &str) -> Option<&str> {
    let mut words = line.split(' ');
    let first = words.next()?;
    if first.starts_with(':') {
        words.next()
    } else {
        Some(first)
    }
}

async fn drain(mut rd: ReadHalf<Box<dyn Stream>>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut rd, &mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Encodes a RESP2 command.
fn resp(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n{p}\r\n", p.len()).as_bytes());
    }
    out
}

/// A byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// What a reader received.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A chat message (public, private, or a Redis message) with its sender if the
    /// protocol names it.
    Msg {
        /// Sender name, when the server tells it.
        from: Option<&'a str>,
        /// Message text.
        text: &'a str,
    },
    /// A liveness probe to answer; its argument.
    Ping(String),
    /// The server ended the session.
    Closed(String),
    /// Anything else (presence, joins, acknowledgements, ...).
    Other,
}

/// Reading side of a session.
pub struct Reader {
    kind: Kind,
    rd: BufReader<ReadHalf<Box<dyn Stream>>>,
    buf: Vec<u8>,
    range: (usize, usize),
    from: (usize, usize),
}

#[derive(serde::Deserialize)]
struct NatterIn<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    from: Option<&'a str>,
    #[serde(default)]
    text: Option<&'a str>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    reason: Option<String>,
}

impl Reader {
    /// Reads one line (without the line ending) into the buffer; errors at EOF.
    async fn line(&mut self) -> Result<&[u8]> {
        self.buf.clear();
        let n = self.rd.read_until(b'\n', &mut self.buf).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(&self.buf)
    }

    async fn line_str(&mut self) -> Result<&str> {
        let line = self.line().await?;
        std::str::from_utf8(line).context("server sent invalid UTF-8")
    }

    async fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> Result<()> {
        loop {
            let line = self.line_str().await?;
            if want(line) {
                return Ok(());
            }
            if line.contains("\"type\":\"bye\"") || line.starts_with("ERROR") {
                bail!("server ended the session: {line}");
            }
        }
    }

    /// Receives the next event.
    pub async fn next(&mut self) -> Result<Event<'_>> {
        match self.kind {
            Kind::Natter => {
                self.line().await?;
                // Fast path: only messages need a real parse.
                let buf = &self.buf;
                let head = &buf[..buf.len().min(20)];
                let is = |t: &[u8]| head.windows(t.len()).any(|w| w == t);
                if !(is(b"\"public\"") || is(b"\"private\"") || is(b"\"ping\"") || is(b"\"bye\"")) {
                    return Ok(Event::Other);
                }
                let f: NatterIn<'_> =
                    serde_json::from_slice(&self.buf).context("server sent invalid JSON")?;
                Ok(match f.ty.as_ref() {
                    "public" | "private" => match (f.from, f.text) {
                        (Some(from), Some(text)) => Event::Msg {
                            from: Some(from),
                            text,
                        },
                        _ => bail!("unexpected escapes in a message frame"),
                    },
                    "ping" => Event::Ping(f.id.map(|v| v.to_string()).unwrap_or_default()),
                    "bye" => Event::Closed(f.reason.unwrap_or_default()),
                    _ => Event::Other,
                })
            }
            Kind::Redis => {
                // Pushes are "*3", "$7", "message", "$n", channel, "$n", payload.
                self.line().await?;
                if self.buf.as_slice() != b"*3" {
                    return Ok(Event::Other);
                }
                let mut parts = Vec::new();
                let mut collected = Vec::new();
                for _ in 0..3 {
                    self.line().await?;
                    if !self.buf.starts_with(b"$") {
                        return Ok(Event::Other);
                    }
                    self.line().await?;
                    parts.push(collected.len());
                    collected.extend_from_slice(&self.buf);
                }
                if !collected.starts_with(b"message") {
                    return Ok(Event::Other);
                }
                let start = parts[2];
                self.buf = collected;
                self.range = (start, self.buf.len());
                let text = std::str::from_utf8(&self.buf[self.range.0..self.range.1])
                    .context("invalid UTF-8 payload")?;
                Ok(Event::Msg { from: None, text })
            }
            Kind::Irc => {
                self.line().await?;
                let line = std::str::from_utf8(&self.buf).context("invalid UTF-8 line")?;
                if let Some(rest) = line.strip_prefix("PING ") {
                    return Ok(Event::Ping(rest.to_string()));
                }
                if line.starts_with("ERROR") {
                    return Ok(Event::Closed(line.to_string()));
                }
                // ":nick!user@host PRIVMSG target :text"
                let Some(at) = line.find(" PRIVMSG ") else {
                    return Ok(Event::Other);
                };
                let prefix = &line[..at];
                let nick_end = prefix.find('!').unwrap_or(prefix.len());
                self.from = (1.min(nick_end), nick_end);
                let after = &line[at + 9..];
                let Some(colon) = after.find(" :") else {
                    return Ok(Event::Other);
                };
                let start = at + 9 + colon + 2;
                self.range = (start, line.len());
                let line = std::str::from_utf8(&self.buf).context("invalid UTF-8 line")?;
                Ok(Event::Msg {
                    from: Some(&line[self.from.0..self.from.1]),
                    text: &line[self.range.0..self.range.1],
                })
            }
        }
    }
}

/// Writing side of a session.
pub struct Writer {
    kind: Kind,
    wr: WriteHalf<Box<dyn Stream>>,
    out: Vec<u8>,
    /// The subscribed connection's write half while `wr` publishes (Redis).
    keep: Option<WriteHalf<Box<dyn Stream>>>,
}

impl Writer {
    async fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.wr.write_all(bytes).await?;
        Ok(())
    }

    /// Sends `text` to the room/channel `room`.
    pub async fn public(&mut self, room: &str, text: &str) -> Result<()> {
        self.out.clear();
        match self.kind {
            Kind::Natter => {
                self.out
                    .extend_from_slice(b"{\"type\":\"public\",\"room\":\"");
                self.out.extend_from_slice(room.as_bytes());
                self.out.extend_from_slice(b"\",\"text\":\"");
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\"}\n");
            }
            Kind::Redis => self.out = resp(&["PUBLISH", room, text]),
            Kind::Irc => self
                .out
                .extend_from_slice(format!("PRIVMSG #{room} :{text}\r\n").as_bytes()),
        }
        self.wr.write_all(&self.out).await?;
        Ok(())
    }

    /// Sends `text` privately to user `to` (for Redis: to channel `to`).
    pub async fn private(&mut self, to: &str, text: &str) -> Result<()> {
        match self.kind {
            Kind::Natter => {
                self.out.clear();
                self.out
                    .extend_from_slice(b"{\"type\":\"private\",\"to\":\"");
                self.out.extend_from_slice(to.as_bytes());
                self.out.extend_from_slice(b"\",\"text\":\"");
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\"}\n");
                self.wr.write_all(&self.out).await?;
                Ok(())
            }
            Kind::Redis | Kind::Irc => {
                // IRC PRIVMSG to a nick; Redis PUBLISH to the user's channel.
                let to = to.trim_start_matches('#');
                self.public_to(to, text).await
            }
        }
    }

    async fn public_to(&mut self, to: &str, text: &str) -> Result<()> {
        self.out.clear();
        match self.kind {
            Kind::Irc => self
                .out
                .extend_from_slice(format!("PRIVMSG {to} :{text}\r\n").as_bytes()),
            _ => self.out = resp(&["PUBLISH", to, text]),
        }
        self.wr.write_all(&self.out).await?;
        Ok(())
    }

    /// Answers a server ping.
    pub async fn pong(&mut self, arg: &str) -> Result<()> {
        match self.kind {
            Kind::Natter if arg.is_empty() => self.raw(b"{\"type\":\"pong\"}\n").await,
            Kind::Natter => {
                self.raw(format!("{{\"type\":\"pong\",\"id\":{arg}}}\n").as_bytes())
                    .await
            }
            Kind::Irc => self.raw(format!("PONG {arg}\r\n").as_bytes()).await,
            Kind::Redis => Ok(()),
        }
    }

    /// Says goodbye (best effort).
    pub async fn quit(&mut self) {
        let bytes: &[u8] = match self.kind {
            Kind::Natter => b"{\"type\":\"quit\"}\n",
            Kind::Irc => b"QUIT :bye\r\n",
            Kind::Redis => b"*1\r\n$4\r\nQUIT\r\n",
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.wr.write_all(bytes)).await;
        let _ = self.keep.take();
    }
}

/// Reads and discards everything (answering pings) until the connection ends.
pub async fn drain_session(mut reader: Reader, writer: Arc<tokio::sync::Mutex<Writer>>) {
    loop {
        match reader.next().await {
            Ok(Event::Ping(arg)) => {
                let _ = writer.lock().await.pong(&arg).await;
            }
            Ok(Event::Closed(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
