//! One benchmark user's connection(s), speaking natter's JSON lines, RESP or IRC.
//!
//! The receive path is built for one generator core to keep up with millions of
//! deliveries per second: a reader owns one large buffer that it fills with a single
//! read per readiness event, frames are split with memchr and decoded in place, and the
//! usual natter message frame is picked apart by byte search instead of a JSON parse
//! (anything unusual is decoded with natter-proto into a [`ServerFrame`]); an IRC
//! `PRIVMSG` line is taken apart in one pass as well (`irc_privmsg`).
//!
//! natter is spoken through natter-proto's types: every frame sent is a
//! [`ClientFrame`] encoded with [`natter_proto::encode_into`] (into a reused buffer, with
//! reused strings, so sending allocates nothing per message), and every frame received
//! outside the delivery fast path is decoded with [`natter_proto::decode_server`]. The
//! fast path's byte patterns are pinned to natter-proto's encoding by unit tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use memchr::memmem::Finder;
use natter_proto::{ClientFrame, ErrorCode, FrameId, ServerFrame};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::client::TlsStream;

mod event;
mod irc;
mod resp;
mod writer;

use event::{Raw, Span};
use irc::{irc_code, irc_privmsg, irc_refusal, irc_registration};
use resp::{resp, resp_message, resp_value};

pub use event::{Event, PingArg};
pub use writer::{Writer, drain_session};

/// Password of every benchmark account.
pub const PASSWORD: &str = "bench-password-1";
/// Room (natter), channel (Redis) or IRC channel (without `#`) of the fan-out workloads.
pub const ROOM: &str = "lobby";
/// Time allowed for one connection to connect and log in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Read buffer per connection: big enough that a receiver which fell behind empties its
/// socket in one system call. Pages are only touched as far as data arrives.
const READ_BUF: usize = 64 * 1024;
/// Largest frame accepted (the buffer grows up to this for long lines such as a
/// `joined` frame with 400 member names or a long IRC NAMES reply).
const MAX_FRAME: usize = 16 * 1024 * 1024;

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
    /// natter's IRC gateway (`--irc-listen`): IRC lines, but every user logs in to a
    /// natter account (`PASS account:password` before NICK/USER; the nick is the
    /// account); like every IRC client it joins its channels itself.
    #[value(name = "natter-irc")]
    #[serde(rename = "natter-irc")]
    NatterIrc,
}

impl Kind {
    /// Name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Natter => "natter",
            Kind::Redis => "redis",
            Kind::Irc => "ngircd",
            Kind::NatterIrc => "natter-irc",
        }
    }

    /// Whether the generator speaks IRC to this server.
    pub fn is_irc(self) -> bool {
        matches!(self, Kind::Irc | Kind::NatterIrc)
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

/// Reading half of a connection: plain TCP halves need no lock between reader and
/// writer, unlike a split TLS stream.
enum ReadSide {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// Writing half of a connection (see [`ReadSide`]).
enum WriteSide {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

impl ReadSide {
    /// Reads into the spare capacity of `buf`; 0 means end of stream.
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            ReadSide::Tcp(r) => r.read_buf(buf).await,
            ReadSide::Tls(r) => r.read_buf(buf).await,
        }
    }
}

impl WriteSide {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            WriteSide::Tcp(w) => w.write_all(bytes).await,
            // tokio-rustls accepts data into the TLS session even when the socket would
            // block, and only a flush guarantees it goes out: without it a lone message
            // (the join workload's probe) sat in the session until the next write.
            WriteSide::Tls(w) => {
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }
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

    /// A TLS target (natter's protocol or its IRC gateway) trusting the certificate in
    /// `cert_pem` for "localhost".
    pub fn tls(kind: Kind, addr: SocketAddr, cert_pem: &Path) -> Result<Target> {
        if !matches!(kind, Kind::Natter | Kind::NatterIrc) {
            bail!("TLS is for natter's protocol and its IRC gateway only");
        }
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
            kind,
            addr,
            tls: Some(Arc::new(config)),
        })
    }

    async fn connect(&self) -> Result<(ReadSide, WriteSide)> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => {
                let (r, w) = tcp.into_split();
                Ok((ReadSide::Tcp(r), WriteSide::Tcp(w)))
            }
            Some(config) => {
                let name = ServerName::try_from("localhost")?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                let (r, w) = tokio::io::split(tls);
                Ok((ReadSide::Tls(r), WriteSide::Tls(w)))
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
        let (rd, wr) = self.connect().await?;
        let mut reader = Reader::new(self.kind, rd);
        let mut writer = Writer {
            kind: self.kind,
            wr,
            out: Vec::with_capacity(256),
            strings: Default::default(),
            sub: None,
        };
        match self.kind {
            Kind::Natter => {
                reader
                    .expect_frame(|f| matches!(f, ServerFrame::Hello { .. }))
                    .await?;
                writer.auth(name, register).await?;
                loop {
                    match reader.frame().await? {
                        ServerFrame::AuthOk { .. } => break,
                        ServerFrame::Error {
                            code: ErrorCode::UsernameTaken,
                            ..
                        } if register => writer.auth(name, false).await?,
                        ServerFrame::Error { code, message, .. } => {
                            bail!("login of {name} refused: {code}: {message}")
                        }
                        ServerFrame::Bye { reason } => bail!("login of {name} refused: {reason}"),
                        _ => {}
                    }
                }
                // The login sequence ends with the lobby history's last frame.
                reader.expect_frame(is_last_history).await?;
                if let Some(room) = channel
                    && room != ROOM
                {
                    writer.join(room).await?;
                    reader.expect_frame(is_last_history).await?;
                }
            }
            Kind::Redis => {
                if let Some(ch) = channel {
                    writer.join(ch).await?;
                    reader.expect_joined(ch).await?;
                }
                if sender {
                    let (prd, pwr) = self.connect().await?;
                    // Drain PUBLISH replies (":<receivers>\r\n") forever.
                    tokio::spawn(drain(prd));
                    writer.sub = Some(std::mem::replace(&mut writer.wr, pwr));
                }
            }
            Kind::Irc | Kind::NatterIrc => {
                writer
                    .raw(irc_registration(self.kind, name).as_bytes())
                    .await?;
                loop {
                    let line = reader.line().await?;
                    if let Some(rest) = line.strip_prefix(b"PING ") {
                        let pong = [b"PONG ", rest, b"\r\n"].concat();
                        writer.raw(&pong).await?;
                    } else if irc_code(line) == Some(b"001".as_slice()) {
                        break;
                    } else if irc_refusal(line) {
                        bail!(
                            "IRC registration of {name} refused: {}",
                            String::from_utf8_lossy(line)
                        );
                    }
                }
                // IRC sessions (ngircd's, natter's gateway's) join only what they ask
                // for.
                if let Some(ch) = channel {
                    writer.join(ch).await?;
                    reader.expect_joined(ch).await?;
                }
            }
        }
        Ok((reader, writer))
    }
}

/// Whether `f` is the last chunk of a `history` answer, which ends a login or a join.
fn is_last_history(f: &ServerFrame) -> bool {
    matches!(f, ServerFrame::History { last: true, .. })
}

/// Reads and discards a connection's input until it ends (Redis PUBLISH replies).
async fn drain(mut rd: ReadSide) {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Ok(n) = rd.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        buf.clear();
    }
}

/// Reading side of a session.
pub struct Reader {
    kind: Kind,
    rd: ReadSide,
    /// Received bytes; `buf[pos..]` is not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// Unescaped strings of the last fully parsed natter frame.
    scratch: Vec<u8>,
    bytes: u64,
}

/// What natter-proto's encoding of [`ServerFrame::Public`] puts around its values:
/// `HEAD` msg_id `ROOM` room `FROM` from `TEXT` text `TS` ts `}`, for the delivery fast
/// path ([`Reader::natter_public`]). Constants rather than derived from an encoding at
/// start-up, so that the comparisons compile to a few word compares; the test
/// `public_frame_patterns_are_natter_protos_encoding` rebuilds a frame encoded with
/// natter-proto from them, so a change in the encoding fails a test, not a benchmark.
mod public_frame {
    /// Up to the `msg_id` value.
    pub const HEAD: &[u8] = b"{\"type\":\"public\",\"msg_id\":";
    /// Between `msg_id` and the room.
    pub const ROOM: &[u8] = b",\"room\":\"";
    /// Between the room and the sender.
    pub const FROM: &[u8] = b"\",\"from\":\"";
    /// Between the sender and the text.
    pub const TEXT: &[u8] = b"\",\"text\":\"";
    /// Between the text and the timestamp.
    pub const TS: &[u8] = b"\",\"ts\":";
}

static FROM_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"from\":\""));
static TEXT_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"text\":\""));

/// The plain (escape-free) JSON string value of the key `finder` finds in
/// `line[from..]`, as absolute offsets into `line`; `None` when the key is missing or the
/// value contains an escape (the caller then parses the frame properly). A key pattern
/// like `"from":"` cannot occur inside a JSON string value, whose quotes are escaped, so
/// the first match is the key itself.
#[inline]
fn plain_value(line: &[u8], from: usize, finder: &Finder<'_>) -> Option<(usize, usize)> {
    let start = from + finder.find(&line[from..])? + finder.needle().len();
    let len = memchr::memchr2(b'"', b'\\', &line[start..])?;
    let end = start + len;
    (line[end] == b'"').then_some((start, end))
}

impl Reader {
    fn new(kind: Kind, rd: ReadSide) -> Reader {
        Reader {
            kind,
            rd,
            buf: Vec::with_capacity(READ_BUF),
            pos: 0,
            scratch: Vec::new(),
            bytes: 0,
        }
    }

    /// Bytes received on this connection so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    /// Waits for more input and appends it to the buffer (one read system call); errors
    /// at end of stream. Events borrowed from the reader must be dropped before.
    pub async fn fill(&mut self) -> Result<()> {
        if self.pos > 0 {
            // What is left is at most one partial frame, so this copy is short; reading
            // from the front again keeps the touched part of the buffer small.
            self.buf.copy_within(self.pos.., 0);
            self.buf.truncate(self.buf.len() - self.pos);
            self.pos = 0;
        }
        if self.buf.len() == self.buf.capacity() {
            if self.buf.len() >= MAX_FRAME {
                bail!("server sent a frame longer than {MAX_FRAME} bytes");
            }
            self.buf.reserve(self.buf.capacity().max(READ_BUF));
        }
        let n = self.rd.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.bytes += n as u64;
        Ok(())
    }

    /// Takes the next complete line from the buffer (offsets, without the line ending).
    #[inline]
    fn take_line(&mut self) -> Option<(usize, usize)> {
        let nl = self.pos + memchr::memchr(b'\n', &self.buf[self.pos..])?;
        let start = self.pos;
        self.pos = nl + 1;
        let end = if nl > start && self.buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        Some((start, end))
    }

    /// Reads one line (without the line ending); errors at end of stream.
    async fn line(&mut self) -> Result<&[u8]> {
        loop {
            if let Some((a, b)) = self.take_line() {
                return Ok(&self.buf[a..b]);
            }
            self.fill().await?;
        }
    }

    /// Reads the next natter frame and decodes it with natter-proto (login and join
    /// only: deliveries go through [`Reader::next`]); an invalid frame is an error.
    async fn frame(&mut self) -> Result<ServerFrame> {
        let line = self.line().await?;
        natter_proto::decode_server(line).map_err(|e| {
            anyhow!(
                "invalid frame from the server ({}: {}): {}",
                e.code,
                e.message,
                String::from_utf8_lossy(&line[..line.len().min(200)])
            )
        })
    }

    /// Skips natter frames until one satisfies `want`; a `bye` on the way is an error.
    async fn expect_frame(&mut self, want: impl Fn(&ServerFrame) -> bool) -> Result<()> {
        loop {
            let frame = self.frame().await?;
            if want(&frame) {
                return Ok(());
            }
            if let ServerFrame::Bye { reason } = frame {
                bail!("server ended the session: {reason}");
            }
        }
    }

    /// Waits for the acknowledgement of joining `room`, failing on errors.
    async fn expect_joined(&mut self, room: &str) -> Result<()> {
        loop {
            match self.next().await? {
                Event::Joined(r) if r.eq_ignore_ascii_case(room.as_bytes()) => return Ok(()),
                Event::Error(e) | Event::Closed(e) => bail!("joining {room} failed: {e}"),
                _ => {}
            }
        }
    }

    /// Receives the next event, reading from the connection when nothing is buffered.
    pub async fn next(&mut self) -> Result<Event<'_>> {
        loop {
            if let Some(raw) = self.take_raw()? {
                return Ok(self.event(raw));
            }
            self.fill().await?;
        }
    }

    /// The next event that is already buffered, without reading; `None` when the
    /// buffer holds no complete frame (then call [`Reader::fill`]).
    #[inline]
    pub fn try_next(&mut self) -> Result<Option<Event<'_>>> {
        if self.kind.is_irc()
            && let Some(msg) = irc_privmsg(&self.buf[self.pos..])
        {
            let at = self.pos;
            self.pos += msg.len;
            return Ok(Some(Event::Msg {
                from: Some(&self.buf[at + msg.nick.0..at + msg.nick.1]),
                text: &self.buf[at + msg.text.0..at + msg.text.1],
            }));
        }
        Ok(self.take_raw()?.map(|raw| self.event(raw)))
    }

    fn span(&self, s: Span) -> &[u8] {
        match s {
            Span::Buf(a, b) => &self.buf[a..b],
            Span::Scratch(a, b) => &self.scratch[a..b],
        }
    }

    fn event(&self, raw: Raw) -> Event<'_> {
        match raw {
            Raw::Msg { from, text } => Event::Msg {
                from: from.map(|s| self.span(s)),
                text: self.span(text),
            },
            Raw::Joined(s) => Event::Joined(self.span(s)),
            Raw::Ping(a) => Event::Ping(a),
            Raw::Error(e) => Event::Error(e),
            Raw::Closed(e) => Event::Closed(e),
            Raw::Ack => Event::Ack,
            Raw::Other => Event::Other,
        }
    }

    #[inline]
    fn take_raw(&mut self) -> Result<Option<Raw>> {
        match self.kind {
            Kind::Natter => {
                if let Some(raw) = self.natter_public() {
                    return Ok(Some(raw));
                }
                Ok(self.take_line().map(|(a, b)| self.natter(a, b)))
            }
            Kind::Irc | Kind::NatterIrc => Ok(self.take_line().map(|(a, b)| self.irc(a, b))),
            Kind::Redis => self.redis(),
        }
    }

    /// The next frame if it is a complete `public` frame in the server's field order
    /// (`type`, `msg_id`, `room`, `from`, `text`, `ts`) without escapes, taken in one
    /// pass; `None` for anything else, which [`Reader::natter`] then parses. Deliveries
    /// are most of what a receiver reads, and searching each line for its end and its
    /// keys cost about a quarter of the generator's time.
    #[inline]
    fn natter_public(&mut self) -> Option<Raw> {
        use public_frame::{FROM, HEAD, ROOM, TEXT, TS};
        let base = self.pos;
        let b = &self.buf[base..];
        let mut i = HEAD.len();
        if !b.starts_with(HEAD) {
            return None;
        }
        let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += digits(i);
        // A plain string value at `i` after the expected `key`: its end.
        let value = |i: usize, key: &[u8]| -> Option<usize> {
            let start = i + key.len();
            if b.get(i..start)? != key {
                return None;
            }
            let end = start + memchr::memchr2(b'"', b'\\', b.get(start..)?)?;
            (b[end] == b'"').then_some(end)
        };
        let room_end = value(i, ROOM)?;
        let from_end = value(room_end, FROM)?;
        let text_end = value(from_end, TEXT)?;
        let mut j = text_end + TS.len();
        if b.get(text_end..j)? != TS {
            return None;
        }
        j += digits(j);
        let line_end = if b.get(j..j + 2)? == b"}\n" {
            j + 2
        } else if b.get(j..j + 3)? == b"}\r\n" {
            j + 3
        } else {
            return None;
        };
        self.pos = base + line_end;
        Some(Raw::Msg {
            from: Some(Span::Buf(base + room_end + FROM.len(), base + from_end)),
            text: Span::Buf(base + from_end + TEXT.len(), base + text_end),
        })
    }

    /// One natter frame, `buf[a..b]`.
    #[inline]
    fn natter(&mut self, a: usize, b: usize) -> Raw {
        const TYPE: &[u8] = b"{\"type\":\"";
        let line = &self.buf[a..b];
        let Some(rest) = line.strip_prefix(TYPE) else {
            return self.natter_full(a, b);
        };
        let Some(q) = memchr::memchr(b'"', rest) else {
            return self.natter_full(a, b);
        };
        let after = TYPE.len() + q + 1;
        match &rest[..q] {
            b"public" | b"private" => {
                if let Some((fa, fb)) = plain_value(line, after, &FROM_KEY)
                    && let Some((ta, tb)) = plain_value(line, after, &TEXT_KEY)
                {
                    return Raw::Msg {
                        from: Some(Span::Buf(a + fa, a + fb)),
                        text: Span::Buf(a + ta, a + tb),
                    };
                }
                self.natter_full(a, b)
            }
            // Rare (a join's answer, probes, the end): decoded properly.
            b"joined" | b"ping" | b"bye" | b"error" => self.natter_full(a, b),
            b"ok" => Raw::Ack,
            // Presence (also any coalesced form), history, acknowledgements, system
            // notices and types this generator does not know: nothing to check.
            _ => Raw::Other,
        }
    }

    /// The slow path: `buf[a..b]` decoded with natter-proto.
    #[cold]
    fn natter_full(&mut self, a: usize, b: usize) -> Raw {
        let line = &self.buf[a..b];
        if line.iter().all(u8::is_ascii_whitespace) {
            return Raw::Other;
        }
        let frame = match natter_proto::decode_server(line) {
            Ok(f) => f,
            Err(e) => {
                return Raw::Error(format!(
                    "invalid frame ({}: {}): {}",
                    e.code,
                    e.message,
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                ));
            }
        };
        self.scratch.clear();
        let mut stash = |s: &str| {
            let start = self.scratch.len();
            self.scratch.extend_from_slice(s.as_bytes());
            Span::Scratch(start, self.scratch.len())
        };
        match frame {
            ServerFrame::Public { from, text, .. } | ServerFrame::Private { from, text, .. } => {
                let from = stash(&from);
                let text = stash(&text);
                Raw::Msg {
                    from: Some(from),
                    text,
                }
            }
            ServerFrame::Joined { room, .. } => Raw::Joined(stash(&room)),
            ServerFrame::Ping { id } => Raw::Ping(PingArg::Natter(id)),
            ServerFrame::Bye { reason } => Raw::Closed(reason),
            ServerFrame::Error { code, message, .. } => Raw::Error(format!("{code}: {message}")),
            _ => Raw::Other,
        }
    }

    /// One IRC line, `buf[a..b]`.
    #[inline]
    fn irc(&self, a: usize, b: usize) -> Raw {
        // `buf[a..]` holds the whole line with its ending, as `irc_privmsg` wants it.
        if let Some(msg) = irc_privmsg(&self.buf[a..]) {
            return Raw::Msg {
                from: Some(Span::Buf(a + msg.nick.0, a + msg.nick.1)),
                text: Span::Buf(a + msg.text.0, a + msg.text.1),
            };
        }
        let line = &self.buf[a..b];
        if let Some(rest) = line.strip_prefix(b"PING ") {
            return Raw::Ping(PingArg::Irc(String::from_utf8_lossy(rest).into_owned()));
        }
        if line.starts_with(b"ERROR") {
            return Raw::Closed(String::from_utf8_lossy(line).into_owned());
        }
        // ":server NNN nick params"
        if line.first() != Some(&b':') {
            return Raw::Other;
        }
        let Some(sp) = memchr::memchr(b' ', line) else {
            return Raw::Other;
        };
        let cmd = &line[sp + 1..];
        let code = cmd.get(..3).unwrap_or_default();
        if cmd.get(3) == Some(&b' ') && code.iter().all(u8::is_ascii_digit) {
            if code == b"366" {
                // "366 nick #channel :End of NAMES list"
                let nick = &cmd[4..];
                if let Some(n) = memchr::memchr(b' ', nick) {
                    let mut start = sp + 1 + 4 + n + 1;
                    let end =
                        start + memchr::memchr(b' ', &line[start..]).unwrap_or(line.len() - start);
                    if line.get(start) == Some(&b'#') {
                        start += 1;
                    }
                    return Raw::Joined(Span::Buf(a + start, a + end.max(start)));
                }
            } else if matches!(code[0], b'4' | b'5') && code != b"422" {
                // 4xx/5xx are error replies, except 422 "MOTD file is missing", which
                // a server without a message of the day sends after every login.
                return Raw::Error(String::from_utf8_lossy(line).into_owned());
            }
        }
        Raw::Other
    }

    /// One complete RESP value from the buffer, if there is one.
    #[inline]
    fn redis(&mut self) -> Result<Option<Raw>> {
        let at = self.pos;
        let data = &self.buf[at..];
        if data.is_empty() {
            return Ok(None);
        }
        if let Some((ts, te, end)) = resp_message(data) {
            self.pos = at + end;
            return Ok(Some(Raw::Msg {
                from: None,
                text: Span::Buf(at + ts, at + te),
            }));
        }
        let mut items = [(0usize, 0usize); 3];
        let mut count = 0;
        let Some((end, top)) = resp_value(data, 0, 0, &mut |span| {
            if count < items.len() {
                items[count] = span;
            }
            count += 1;
        })?
        else {
            return Ok(None);
        };
        self.pos = at + end;
        let span = |(s, e): (usize, usize)| Span::Buf(at + s, at + e);
        let raw = match data[0] {
            b'*' if count == 3 => {
                let kind = &data[items[0].0..items[0].1];
                if kind == b"message" {
                    Raw::Msg {
                        from: None,
                        text: span(items[2]),
                    }
                } else if kind == b"subscribe" {
                    Raw::Joined(span(items[1]))
                } else {
                    Raw::Other
                }
            }
            b'-' => Raw::Error(
                top.map(|(s, e)| String::from_utf8_lossy(&data[s..e]).into_owned())
                    .unwrap_or_default(),
            ),
            _ => Raw::Other,
        };
        Ok(Some(raw))
    }
}

#[cfg(test)]
mod tests;
