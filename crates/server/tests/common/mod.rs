//! Shared helpers for the server's integration tests: a real server on 127.0.0.1:0 with a
//! temp data dir, typed clients, raw byte-level clients, and bounded waits.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use natter_client::Connection;
use natter_proto::{ClientFrame, ServerFrame, decode_server};
use natter_server::{Config, Listeners, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single awaited event.
pub const WAIT: Duration = Duration::from_secs(10);
/// Password used by test accounts.
pub const PASSWORD: &str = "correct horse battery";

/// Default configuration, but plaintext, in `dir`.
pub fn plain_config(dir: &Path) -> Config {
    Config {
        plaintext: true,
        ..Config::with_data_dir(dir)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The web interface's address, when started with [`TestServer::start_web`].
    pub web: Option<SocketAddr>,
    /// The IRC gateway's address (plaintext, loopback), when started with
    /// [`TestServer::start_web_irc`].
    pub irc: Option<SocketAddr>,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A plaintext server with default limits (TLS has its own tests).
    pub async fn start(dir: &Path) -> TestServer {
        TestServer::start_with(plain_config(dir)).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        TestServer::start_full(config, false, false).await
    }

    /// A server with its web interface on another 127.0.0.1 port.
    pub async fn start_web(config: Config) -> TestServer {
        TestServer::start_full(config, true, false).await
    }

    /// A server with its web interface and the IRC gateway, each on another 127.0.0.1
    /// port.
    pub async fn start_web_irc(config: Config) -> TestServer {
        TestServer::start_full(config, true, true).await
    }

    async fn start_full(config: Config, web: bool, irc: bool) -> TestServer {
        let dir = config.data_dir.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bind = |wanted: bool, what: &'static str| async move {
            if wanted {
                Some(TcpListener::bind("127.0.0.1:0").await.expect(what))
            } else {
                None
            }
        };
        let web_listener = bind(web, "bind web").await;
        let irc_listener = bind(irc, "bind irc").await;
        let local = |l: &Option<TcpListener>| l.as_ref().map(|l| l.local_addr().expect("addr"));
        let (web, irc) = (local(&web_listener), local(&irc_listener));
        let server = Server::open(config).await.expect("open server");
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            chat: listener,
            web: web_listener,
            irc: irc_listener,
        };
        let task = tokio::spawn(server.run_with(listeners, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            web,
            irc,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers graceful shutdown and waits (bounded) for run() to return.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("server stops within its grace period")
                .expect("server task");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

pub async fn connect(addr: SocketAddr) -> Connection {
    let (conn, hello) = tokio::time::timeout(WAIT, Connection::connect(&addr.to_string()))
        .await
        .expect("connect in time")
        .expect("connect");
    assert!(matches!(
        hello,
        ServerFrame::Hello {
            protocol: natter_proto::PROTOCOL_VERSION,
            ..
        }
    ));
    conn
}

/// Registers `name` and returns the logged-in connection, past the automatic lobby
/// `joined` and `history`.
pub async fn register(addr: SocketAddr, name: &str) -> Connection {
    let (c, others) = register_welcomed(addr, name).await;
    assert!(
        others.is_empty(),
        "unexpected frames during the welcome: {others:?}"
    );
    c
}

/// Registers `name` and reads the lobby welcome, returning the connection and every
/// other frame that arrived during the welcome (see [`lobby_welcome`]).
pub async fn register_welcomed(addr: SocketAddr, name: &str) -> (Connection, Vec<ServerFrame>) {
    let mut c = connect(addr).await;
    let user = tokio::time::timeout(WAIT, c.login(name, PASSWORD, true))
        .await
        .expect("register in time")
        .expect("register");
    assert_eq!(user, name);
    let (_, others) = lobby_welcome(&mut c).await;
    (c, others)
}

/// Logs `name` in on a new connection, past the automatic lobby `joined` and `history`.
pub async fn login(addr: SocketAddr, name: &str) -> Connection {
    let mut c = connect(addr).await;
    tokio::time::timeout(WAIT, c.login(name, PASSWORD, false))
        .await
        .expect("login in time")
        .expect("login");
    skip_lobby_welcome(&mut c).await;
    c
}

/// After `auth_ok` the server joins the session to the lobby: `joined`, then `history`
/// chunks up to the one marked `last`. Returns the lobby history.
pub async fn skip_lobby_welcome(c: &mut Connection) -> Vec<natter_proto::HistoryEntry> {
    let (history, others) = lobby_welcome(c).await;
    assert!(
        others.is_empty(),
        "unexpected frames during the welcome: {others:?}"
    );
    history
}

/// Reads the lobby welcome (`joined`, then `history` chunks up to `last`), returning the
/// history and every other frame that arrived in between: deliveries to the account
/// (another session's late messages, room traffic) may interleave with it (PROTOCOL.md
/// §3.3).
pub async fn lobby_welcome(
    c: &mut Connection,
) -> (Vec<natter_proto::HistoryEntry>, Vec<ServerFrame>) {
    let mut joined = false;
    let mut history = Vec::new();
    let mut others = Vec::new();
    for _ in 0..1000 {
        match next(c).await {
            ServerFrame::Joined { room, .. } if room == "lobby" && !joined => joined = true,
            ServerFrame::History { messages, last, .. } if joined => {
                history.extend(messages);
                if last {
                    return (history, others);
                }
            }
            other => others.push(other),
        }
    }
    panic!("no complete lobby welcome within 1000 frames");
}

/// The next frame, failing the test if none arrives in time or the connection ends.
pub async fn next(c: &mut Connection) -> ServerFrame {
    tokio::time::timeout(WAIT, c.recv())
        .await
        .expect("frame in time")
        .expect("recv ok")
        .expect("connection open")
}

/// Skips frames until one matches `pred` (at most 100 frames), and returns it.
pub async fn until(c: &mut Connection, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
    for _ in 0..100 {
        let f = next(c).await;
        if pred(&f) {
            return f;
        }
    }
    panic!("no matching frame within 100 frames");
}

/// Sends a frame.
pub async fn send(c: &mut Connection, f: ClientFrame) {
    c.send(&f).await.expect("send");
}

/// Round-trips a ping so every frame sent before it has been handled, and returns every
/// frame received before the pong.
pub async fn sync(c: &mut Connection) -> Vec<ServerFrame> {
    let id = natter_proto::FrameId::Str("sync".into());
    send(
        c,
        ClientFrame::Ping {
            id: Some(id.clone()),
        },
    )
    .await;
    let mut before = Vec::new();
    for _ in 0..1000 {
        match next(c).await {
            ServerFrame::Pong { id: Some(got) } if got == id => return before,
            other => before.push(other),
        }
    }
    panic!("no pong within 1000 frames");
}

/// Waits until the server closes the connection, returning the frames seen before.
pub async fn until_closed(c: &mut Connection) -> Vec<ServerFrame> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        match tokio::time::timeout(WAIT, c.recv())
            .await
            .expect("close in time")
        {
            Ok(Some(f)) => seen.push(f),
            Ok(None) | Err(_) => return seen,
        }
    }
    panic!("connection not closed after 1000 frames");
}

/// A byte-level client for malformed input.
pub struct Raw {
    pub reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pub writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (r, w) = tcp.into_split();
        let mut raw = Raw {
            reader: BufReader::new(r),
            writer: w,
        };
        assert!(matches!(raw.frame().await, ServerFrame::Hello { .. }));
        raw
    }

    /// Reads the automatic lobby `joined` and `history` frames that follow `auth_ok`,
    /// asserting that nothing else arrives in between (as [`skip_lobby_welcome`]).
    pub async fn skip_lobby_welcome(&mut self) {
        let first = self.frame().await;
        assert!(
            matches!(&first, ServerFrame::Joined { room, .. } if room == "lobby"),
            "expected the lobby joined, got {first:?}"
        );
        let mut others = Vec::new();
        for _ in 0..1000 {
            match self.frame().await {
                ServerFrame::History { last: true, .. } => {
                    assert!(
                        others.is_empty(),
                        "unexpected frames during the welcome: {others:?}"
                    );
                    return;
                }
                ServerFrame::History { .. } => {}
                other => others.push(other),
            }
        }
        panic!("no last history chunk");
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Reads one line and decodes it as a server frame.
    pub async fn frame(&mut self) -> ServerFrame {
        self.frame_within(WAIT).await
    }

    /// Like [`Raw::frame`], with an explicit upper bound.
    pub async fn frame_within(&mut self, limit: Duration) -> ServerFrame {
        let line = self.line_within(limit).await;
        decode_server(&line).expect("server sends valid frames")
    }

    /// Reads one line as sent, without its `\n` (and without a length limit, so tests
    /// can check the server's).
    pub async fn line(&mut self) -> Vec<u8> {
        self.line_within(WAIT).await
    }

    async fn line_within(&mut self, limit: Duration) -> Vec<u8> {
        let mut line = Vec::new();
        let n = tokio::time::timeout(limit, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("line in time")
            .expect("read");
        assert!(n > 0, "connection closed while a frame was expected");
        assert_eq!(line.pop(), Some(b'\n'), "newline-terminated");
        line
    }

    /// Asserts that the server closes the connection (EOF or reset) in time.
    pub async fn expect_closed(&mut self) {
        let mut buf = [0u8; 1024];
        for _ in 0..1000 {
            match tokio::time::timeout(WAIT, self.reader.read(&mut buf))
                .await
                .expect("close in time")
            {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
        panic!("connection still open");
    }
}

/// A client of a line-based format other than natter's JSON (IRC, test formats).
pub struct LineClient {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    /// The line terminator this format sends.
    eol: &'static str,
}

impl LineClient {
    /// Connects to `addr`; `eol` ends every line sent ("\r\n" for IRC).
    pub async fn connect(addr: SocketAddr, eol: &'static str) -> LineClient {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (r, writer) = tcp.into_split();
        LineClient {
            lines: BufReader::new(r).lines(),
            writer,
            eol,
        }
    }

    /// Sends one line.
    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}{}", self.eol).as_bytes())
            .await
            .expect("write");
    }

    /// Reads lines until one matches `pred` (at most 200), returning the lines read, the
    /// matching one last; fails if none arrives in time or the connection closes.
    pub async fn until_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..200 {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .expect("line in time")
                .expect("read");
            let Some(line) = line else {
                panic!("closed before {what}; read {seen:#?}");
            };
            let done = pred(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no line {what} in {seen:#?}");
    }
}

/// Creates the account `name` (password [`PASSWORD`]) and leaves.
pub async fn account(addr: SocketAddr, name: &str) {
    let mut c = register(addr, name).await;
    send(
        &mut c,
        ClientFrame::Quit {
            id: None,
            message: None,
        },
    )
    .await;
    until_closed(&mut c).await;
}

/// Whether `f` tells of someone leaving a room.
pub fn is_leave(f: &ServerFrame) -> bool {
    matches!(
        f,
        ServerFrame::Presence {
            event: natter_proto::PresenceEvent::Leave,
            ..
        }
    )
}
