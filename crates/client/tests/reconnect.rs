//! Reconnecting by itself, through the client library against the REAL server running
//! in-process (plaintext, 127.0.0.1:0, a temporary data directory).
//!
//! Alice's client is the library's plain front end with reconnecting
//! ([`plain::run_reconnecting`], the same chat loop as the interactive client) behind a
//! TCP proxy ([`support::proxy`]) that can refuse connections, swallow what the server
//! says (so a message is stored but never acknowledged), or cut every connection. Bob is
//! an ordinary plain-mode client. Every wait is a bounded read of the next line.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use natter_client::reconnect::{Backoff, Credentials, Dial, Reconnector};
use natter_client::session::RunError;
use natter_client::{ClientError, Connection, SessionOptions, plain};
use natter_proto::{ClientFrame, FrameId, ServerFrame};
use natter_server::Config;
use rand::SeedableRng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;
use tokio::time::timeout;

mod support;

use support::Running;
use support::proxy::{Mode, Proxy};

/// Upper bound for every awaited event.
const T: Duration = Duration::from_secs(30);

/// Most lines read while looking for one.
const MAX_LINES: usize = 500;

const PASSWORD: &str = "correct horse battery staple";

fn config(dir: &Path) -> Config {
    Config {
        plaintext: true,
        ..Config::with_data_dir(dir.join("data"))
    }
}

/// Plain TCP to a fixed address.
struct Tcp(SocketAddr);

impl Dial for Tcp {
    async fn dial(&mut self) -> Result<Connection, ClientError> {
        Connection::connect(&self.0.to_string())
            .await
            .map(|(conn, _)| conn)
    }
}

/// A plain-mode client of the library, logged in, running as a task.
struct Client {
    name: String,
    stdin: Option<DuplexStream>,
    stdout: Lines<BufReader<DuplexStream>>,
    /// Every line read so far.
    seen: Vec<String>,
    task: JoinHandle<Result<String, RunError>>,
}

impl Client {
    /// Logs in as `user` at `addr` (registering when `register`); reconnects by itself
    /// when `reconnecting`.
    async fn start(addr: SocketAddr, user: &str, register: bool, reconnecting: bool) -> Client {
        let (mut conn, _hello) = timeout(T, Connection::connect(&addr.to_string()))
            .await
            .expect("connect in time")
            .expect("connect");
        let login = timeout(T, conn.authenticate(user, PASSWORD, register))
            .await
            .expect("login in time")
            .expect("login");
        let (stdin, input) = tokio::io::duplex(1 << 16);
        let (output, stdout) = tokio::io::duplex(1 << 20);
        let credentials = Credentials {
            user: user.to_string(),
            password: PASSWORD.to_string(),
        };
        let task = tokio::spawn(async move {
            let options = SessionOptions::default();
            if reconnecting {
                let mut reconnector = Reconnector {
                    dial: Tcp(addr),
                    credentials,
                    backoff: Backoff::with_rng(rand::rngs::StdRng::seed_from_u64(26)),
                };
                plain::run_reconnecting(
                    &mut conn,
                    &login,
                    input,
                    output,
                    &options,
                    &mut reconnector,
                )
                .await
            } else {
                plain::run(&mut conn, &login, input, output, &options).await
            }
        });
        let mut client = Client {
            name: user.to_string(),
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
            seen: Vec::new(),
            task,
        };
        client
            .wait_for("the lobby join", |l| l.starts_with("[joined] #lobby ("))
            .await;
        client
    }

    async fn line(&mut self) -> String {
        let line = timeout(T, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no line within {T:?}; saw {:?}", self.name, self.seen))
            .expect("readable output")
            .unwrap_or_else(|| panic!("{}: output ended; saw {:?}", self.name, self.seen));
        self.seen.push(line.clone());
        line
    }

    /// Reads lines until one satisfies `pred`; returns the lines before it.
    async fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut before = Vec::new();
        for _ in 0..MAX_LINES {
            let line = self.line().await;
            if pred(&line) {
                return before;
            }
            before.push(line);
        }
        panic!("{}: no {what} in {MAX_LINES} lines: {before:?}", self.name);
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        self.until(what, pred).await;
    }

    async fn expect_line(&mut self, want: &str) {
        self.wait_for(want, |l| l == want).await;
    }

    async fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        timeout(T, stdin.write_all(format!("{line}\n").as_bytes()))
            .await
            .expect("typed in time")
            .expect("client reads stdin");
    }

    /// How many lines seen so far contain `text`.
    fn count(&self, text: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    /// Ends the input and waits for the clean end.
    async fn quit(mut self) {
        self.stdin = None;
        self.wait_for("bye", |l| l == "[bye] quit").await;
        let result = timeout(T, self.task)
            .await
            .expect("client ends in time")
            .expect("no panic");
        assert_eq!(result.expect("clean end"), "quit");
    }
}

/// The texts of a room's stored messages (newest 200), read by a fresh session of `user`.
async fn stored_texts(addr: SocketAddr, user: &str, room: &str) -> Vec<String> {
    let (mut conn, _) = Connection::connect(&addr.to_string())
        .await
        .expect("connect");
    conn.authenticate(user, PASSWORD, false)
        .await
        .expect("login");
    if room != "lobby" {
        conn.send(&ClientFrame::Join {
            id: None,
            room: room.into(),
        })
        .await
        .expect("join");
    }
    conn.send(&ClientFrame::History {
        id: Some(FrameId::Str("check".into())),
        room: Some(room.into()),
        with: None,
        before: None,
        limit: Some(200),
    })
    .await
    .expect("history");
    let mut texts = Vec::new();
    for _ in 0..MAX_LINES {
        let frame = timeout(T, conn.recv())
            .await
            .expect("history in time")
            .expect("readable")
            .expect("open");
        if let ServerFrame::History {
            id: Some(FrameId::Str(id)),
            messages,
            last,
            ..
        } = frame
            && id == "check"
        {
            texts.extend(messages.into_iter().map(|m| m.text));
            if last {
                return texts;
            }
        }
    }
    panic!("no complete history answer");
}

/// The server restarts on the same port; while Alice cannot reach it, Bob writes in the
/// lobby, in #rust and privately to her, and she types a line herself. When she is let
/// back in, she sees each missed message exactly once (the private one arrives both as a
/// late delivery and in the history), her line is sent once, and the chat goes on.
#[tokio::test]
async fn after_a_server_restart_missed_messages_appear_once_and_the_chat_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(config(dir.path())).await;
    let addr = srv.addr;
    let proxy = Proxy::start(addr).await;
    let mut bob = Client::start(addr, "bob", true, false).await;
    let mut alice = Client::start(proxy.addr, "alice", true, true).await;
    alice.type_line("/join rust").await;
    alice.expect_line("[joined] #rust (1 member: alice)").await;
    bob.type_line("/join rust").await;
    bob.expect_line("[joined] #rust (2 members: alice, bob)")
        .await;
    bob.type_line("before").await;
    alice.expect_line("#rust <bob> before").await;
    alice.type_line("/msg bob hi bob").await;
    alice.expect_line("*alice -> bob* hi bob").await;

    // The server goes down; Alice is told and starts waiting.
    proxy.set(Mode::Closed);
    srv.stop().await;
    alice
        .wait_for("the first attempt", |l| {
            l.starts_with("-- connection lost; reconnecting in ") && l.ends_with("(attempt 1) --")
        })
        .await;
    let _ = timeout(T, bob.task).await.expect("bob's session ends");

    // Back up on the same port, but still out of Alice's reach.
    let srv = Running::restart_on(addr, config(dir.path())).await;
    let mut bob = Client::start(addr, "bob", false, false).await;
    bob.type_line("/join rust").await;
    bob.expect_line("[joined] #rust (1 member: bob)").await;
    for i in 1..=3 {
        bob.type_line(&format!("missed {i}")).await;
        bob.expect_line(&format!("#rust <bob> missed {i}")).await;
    }
    bob.type_line("/msg public").await;
    bob.type_line("/part rust").await;
    bob.expect_line("[parted] #rust").await;
    bob.type_line("missed in the lobby").await;
    bob.expect_line("#lobby <bob> missed in the lobby").await;
    bob.type_line("/msg alice missed privately").await;
    bob.wait_for("queued", |l| l.starts_with("[queued]")).await;
    // Typed while disconnected: kept and sent after the reconnect.
    alice.type_line("typed while away").await;
    alice
        .expect_line("-- not connected: the message will be sent once reconnected --")
        .await;

    proxy.set(Mode::Open);
    let during = alice
        .until("the reconnect", |l| l == "-- reconnected --")
        .await;
    let missed: Vec<&String> = during
        .iter()
        .filter(|l| l.contains("missed") || l.contains("typed while away"))
        .collect();
    assert_eq!(
        missed,
        [
            "[history] #rust <bob> missed 1",
            "[history] #rust <bob> missed 2",
            "[history] #rust <bob> missed 3",
            "[history] #lobby <bob> missed in the lobby",
            // Delivered late at login (it was queued for her) and also in the history
            // fetched afterwards: shown once, as the late delivery.
            "*bob -> alice* missed privately (sent ",
        ]
        .iter()
        .zip(&missed)
        .filter(|(want, got)| got.starts_with(*want))
        .map(|(_, got)| *got)
        .collect::<Vec<_>>(),
        "each missed message once, in order; all lines: {during:?}"
    );
    // What she typed while away reaches her room (#rust) once, and the chat goes on.
    alice.expect_line("#rust <alice> typed while away").await;
    bob.type_line("/join rust").await;
    bob.expect_line("[joined] #rust (2 members: alice, bob)")
        .await;
    bob.expect_line("[history] #rust <alice> typed while away")
        .await;
    bob.type_line("after").await;
    alice.expect_line("#rust <bob> after").await;
    alice.type_line("/msg bob back again").await;
    bob.expect_line("*alice -> bob* back again").await;
    alice.expect_line("*alice -> bob* back again").await;
    for text in [
        "before",
        "missed 1",
        "missed 3",
        "missed privately",
        "typed while away",
    ] {
        assert_eq!(alice.count(text), 1, "{text:?} once: {:?}", alice.seen);
    }
    assert_eq!(bob.count("typed while away"), 1);
    assert_eq!(
        stored_texts(addr, "bob", "rust")
            .await
            .iter()
            .filter(|t| *t == "typed while away")
            .count(),
        1
    );
    alice.quit().await;
    bob.quit().await;
    srv.stop().await;
}

/// Alice's first message reaches the server but its answer does not (stored, never
/// acknowledged); her second never reaches the server. After the connection is cut she
/// reconnects and sends both again with their client ids: each is stored once.
#[tokio::test]
async fn unacknowledged_messages_are_resent_and_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(config(dir.path())).await;
    let addr = srv.addr;
    let proxy = Proxy::start(addr).await;
    let mut bob = Client::start(addr, "bob", true, false).await;
    let mut alice = Client::start(proxy.addr, "alice", true, true).await;

    proxy.set(Mode::SwallowReplies);
    alice.type_line("stored but not acknowledged").await;
    // Bob's line proves it was stored and delivered.
    bob.expect_line("#lobby <alice> stored but not acknowledged")
        .await;
    proxy.set(Mode::SwallowAll);
    alice.type_line("never arrived").await;
    // A marker from Bob, after which "never arrived" would have shown had it arrived.
    bob.type_line("marker").await;
    bob.expect_line("#lobby <bob> marker").await;
    assert_eq!(bob.count("never arrived"), 0);

    proxy.set(Mode::Open);
    proxy.cut();
    alice
        .until("the reconnect", |l| l == "-- reconnected --")
        .await;
    bob.expect_line("#lobby <alice> never arrived").await;
    alice.expect_line("#lobby <alice> never arrived").await;
    bob.type_line("end").await;
    bob.expect_line("#lobby <bob> end").await;
    alice.expect_line("#lobby <bob> end").await;

    assert_eq!(
        bob.count("stored but not acknowledged"),
        1,
        "{:?}",
        bob.seen
    );
    assert_eq!(bob.count("never arrived"), 1, "{:?}", bob.seen);
    assert_eq!(
        alice.count("stored but not acknowledged"),
        1,
        "{:?}",
        alice.seen
    );
    assert_eq!(alice.count("never arrived"), 1, "{:?}", alice.seen);
    let stored = stored_texts(addr, "bob", "lobby").await;
    assert_eq!(
        stored,
        [
            "stored but not acknowledged",
            "marker",
            "never arrived",
            "end"
        ],
        "each message stored once"
    );
    alice.quit().await;
    bob.quit().await;
    srv.stop().await;
}

/// A login that is no longer accepted ends the session instead of retrying forever.
#[tokio::test]
async fn a_refused_login_stops_reconnecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(config(dir.path())).await;
    let proxy = Proxy::start(srv.addr).await;
    let (mut conn, _) = Connection::connect(&proxy.addr.to_string())
        .await
        .expect("connect");
    let login = conn
        .authenticate("alice", PASSWORD, true)
        .await
        .expect("register");
    let (stdin, input) = tokio::io::duplex(1 << 16);
    let (output, stdout) = tokio::io::duplex(1 << 16);
    let mut reconnector = Reconnector {
        dial: Tcp(proxy.addr),
        credentials: Credentials {
            user: "alice".into(),
            password: "not the password at all".into(),
        },
        backoff: Backoff::with_rng(rand::rngs::StdRng::seed_from_u64(1)),
    };
    let task = tokio::spawn(async move {
        let options = SessionOptions::default();
        plain::run_reconnecting(&mut conn, &login, input, output, &options, &mut reconnector).await
    });
    let mut lines = BufReader::new(stdout).lines();
    timeout(T, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("[joined] #lobby") {
                break;
            }
        }
    })
    .await
    .expect("joined in time");
    proxy.cut();
    let result = timeout(T, task)
        .await
        .expect("ends in time")
        .expect("no panic");
    let err = result.expect_err("the session ends with an error");
    assert!(
        matches!(&err, RunError::Reconnect(why) if why.contains("auth_failed")),
        "{err}"
    );
    drop(stdin);
    srv.stop().await;
}
