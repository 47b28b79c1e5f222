//! Rooms, durable history and offline delivery through the client library against the
//! REAL server running in-process (plaintext, on 127.0.0.1:0, a temporary data directory).
//!
//! Each client is the library's plain mode ([`natter_client::plain::run`]) over a real TCP
//! connection, with stdin and stdout as in-memory pipes: the test types lines and reads
//! the exact display lines a script would see. Nothing waits with sleeps: every wait is a
//! bounded read of the next line. That something did NOT arrive is shown with a marker
//! sent after it by the same sender: the server handles one connection's frames in order,
//! so anything wrongly delivered would have come before the marker.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use natter_client::session::RunError;
use natter_client::{Connection, SessionOptions, plain};
use natter_server::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound for every awaited event.
mod support;

use support::Running;

const T: Duration = Duration::from_secs(30);

/// Most lines read while looking for one.
const MAX_LINES: usize = 500;

const PASSWORD: &str = "correct horse battery staple";

/// A plaintext server with its data in `dir`.
fn config(dir: &Path) -> Config {
    Config {
        plaintext: true,
        ..Config::with_data_dir(dir.join("data"))
    }
}

/// A plain-mode client of the library, logged in, running as a task.
struct Client {
    /// For messages.
    name: String,
    /// What the user types; dropped to end the input.
    stdin: Option<DuplexStream>,
    /// What plain mode prints.
    stdout: Lines<BufReader<DuplexStream>>,
    /// Every line read so far.
    seen: Vec<String>,
    /// The chat loop.
    task: JoinHandle<Result<String, RunError>>,
}

impl Client {
    /// Connects to `addr`, logs in as `user` (registering first when `register`) and
    /// starts plain mode.
    async fn start(addr: SocketAddr, user: &str, register: bool) -> Client {
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
        let task = tokio::spawn(async move {
            plain::run(&mut conn, &login, input, output, &SessionOptions::default()).await
        });
        let mut client = Client {
            name: user.to_string(),
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
            seen: Vec::new(),
            task,
        };
        let first = client.line().await;
        assert!(first.ends_with(&format!("logged in as {user}")), "{first}");
        // Every login joins the lobby: `joined`, then its history, then late messages.
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

    /// Reads lines until one satisfies `pred`; returns the lines before it and it.
    async fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> (Vec<String>, String) {
        let mut before = Vec::new();
        for _ in 0..MAX_LINES {
            let line = self.line().await;
            if pred(&line) {
                return (before, line);
            }
            before.push(line);
        }
        panic!("{}: no {what} in {MAX_LINES} lines: {before:?}", self.name);
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.until(what, pred).await.1
    }

    /// Reads lines until exactly `want`.
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

    /// Types a line and returns the next `n` lines printed.
    async fn answer(&mut self, line: &str, n: usize) -> Vec<String> {
        self.type_line(line).await;
        let mut lines = Vec::new();
        for _ in 0..n {
            lines.push(self.line().await);
        }
        lines
    }

    /// Ends the input and waits for the clean end (`quit` answered with `bye`).
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

#[tokio::test]
async fn rooms_keep_conversations_apart_and_can_be_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(config(dir.path())).await;

    let mut alice = Client::start(srv.addr, "alice", true).await;
    let mut bob = Client::start(srv.addr, "bob", true).await;
    let mut carol = Client::start(srv.addr, "carol", true).await;
    alice.expect_line("[join] #lobby bob").await;
    alice.expect_line("[join] #lobby carol").await;

    alice.type_line("/join rust").await;
    alice.expect_line("[joined] #rust (1 member: alice)").await;
    // Any spelling of the room is the same room.
    bob.type_line("/join #Rust").await;
    bob.expect_line("[joined] #rust (2 members: alice, bob)")
        .await;
    alice.expect_line("[join] #rust bob").await;

    // Plain lines now go to #rust: only its members get them.
    alice.type_line("hello rust").await;
    alice.expect_line("#rust <alice> hello rust").await;
    bob.expect_line("#rust <alice> hello rust").await;
    // /join of a room already joined switches back to it.
    alice.type_line("/join lobby").await;
    alice
        .expect_line("[joined] #lobby (3 members: alice, bob, carol)")
        .await;
    alice.type_line("lobby marker").await;
    let (before, _) = carol
        .until("the marker", |l| l == "#lobby <alice> lobby marker")
        .await;
    assert!(
        !before
            .iter()
            .any(|l| l.contains("hello rust") || l.contains("#rust")),
        "carol is not in #rust: {before:?}"
    );
    bob.expect_line("#lobby <alice> lobby marker").await;

    // Listing rooms and members.
    assert_eq!(
        carol.answer("/rooms", 1).await,
        ["[rooms] #lobby (3), #rust (2)"]
    );
    assert_eq!(
        carol.answer("/who #RUST", 1).await,
        ["[who] #rust: alice, bob"]
    );
    assert_eq!(
        bob.answer("/who", 1).await,
        ["[who] #rust: alice, bob"],
        "bob's current room is #rust"
    );
    assert_eq!(
        carol.answer("/list", 1).await,
        ["[online] alice, bob, carol"]
    );
    // Carol is not in #rust: the server refuses, the client shows why.
    let refused = carol.answer("/part rust", 1).await;
    assert!(
        refused[0].starts_with("[error] ") && refused[0].ends_with("(not_in_room)"),
        "{refused:?}"
    );

    // Bob leaves #rust: alice sees it there; his next line goes to the lobby.
    assert_eq!(bob.answer("/part", 1).await, ["[parted] #rust"]);
    let leave = alice
        .wait_for("bob leaving #rust", |l| l.starts_with("[leave] #rust bob"))
        .await;
    assert!(!leave.contains("#lobby"), "{leave}");
    bob.type_line("back in the lobby").await;
    bob.expect_line("#lobby <bob> back in the lobby").await;
    carol.expect_line("#lobby <bob> back in the lobby").await;
    // And he is in no room after leaving the lobby too.
    assert_eq!(bob.answer("/part", 1).await, ["[parted] #lobby"]);
    assert_eq!(
        bob.answer("anyone?", 1).await,
        ["[error] you are in no room; /join ROOM"]
    );
    carol.expect_line("[leave] #lobby bob (part)").await;

    for c in [alice, bob, carol] {
        c.quit().await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart_pages_back_and_is_the_same_on_two_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small_history = || Config {
        history_on_join: 3,
        ..config(dir.path())
    };
    let srv = Running::start(small_history()).await;
    let mut alice = Client::start(srv.addr, "alice", true).await;
    let bob = Client::start(srv.addr, "bob", true).await;
    alice.type_line("/join rust").await;
    alice.expect_line("[joined] #rust (1 member: alice)").await;
    for i in 1..=6 {
        alice.type_line(&format!("m{i}")).await;
        alice.expect_line(&format!("#rust <alice> m{i}")).await;
    }
    for i in 1..=2 {
        alice.type_line(&format!("/msg bob p{i}")).await;
        alice.expect_line(&format!("*alice -> bob* p{i}")).await;
    }
    alice.quit().await;
    bob.quit().await;
    srv.stop().await;

    // A new server process on the same data: the history is still there.
    let srv = Running::start(small_history()).await;
    let mut one = Client::start(srv.addr, "alice", false).await;
    let mut two = Client::start(srv.addr, "alice", false).await;
    for c in [&mut one, &mut two] {
        // Joining shows the latest messages (here 3), oldest first.
        assert_eq!(
            c.answer("/join #rust", 4).await,
            [
                "[joined] #rust (1 member: alice)",
                "[history] #rust <alice> m4",
                "[history] #rust <alice> m5",
                "[history] #rust <alice> m6",
            ]
        );
    }
    let mut pages = Vec::new();
    for c in [&mut one, &mut two] {
        let mut lines = c.answer("/history 2", 2).await;
        lines.extend(c.answer("/history 2", 1).await);
        lines.extend(c.answer("/history", 1).await);
        lines.extend(c.answer("/history bob 1", 1).await);
        lines.extend(c.answer("/history BOB", 1).await);
        lines.extend(c.answer("/history bob", 1).await);
        pages.push(lines);
    }
    assert_eq!(
        pages[0],
        [
            "[history] #rust <alice> m2",
            "[history] #rust <alice> m3",
            "[history] #rust <alice> m1",
            "[history] #rust: no earlier messages",
            "[history] *alice -> bob* p2",
            "[history] *alice -> bob* p1",
            "[history] @bob: no earlier messages",
        ]
    );
    assert_eq!(pages[0], pages[1], "the same account sees the same history");
    one.quit().await;
    two.quit().await;
    srv.stop().await;
}

#[tokio::test]
async fn a_private_message_to_an_offline_user_is_queued_and_delivered_late_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(config(dir.path())).await;
    let bob = Client::start(srv.addr, "bob", true).await;
    bob.quit().await;

    let mut alice = Client::start(srv.addr, "alice", true).await;
    alice.type_line("/msg Bob are you there?").await;
    let (_, echo) = alice
        .until("the echo", |l| l.starts_with("*alice -> bob*"))
        .await;
    assert_eq!(echo, "*alice -> bob* are you there?");
    alice
        .expect_line("[queued] bob is offline; your message will be delivered when they log in")
        .await;

    // Bob logs in: the message arrives once, marked late, with its original time.
    let mut bob = Client::start(srv.addr, "bob", false).await;
    let late = bob
        .wait_for("the late message", |l| l.contains("are you there?"))
        .await;
    let (text, stamp) = late
        .split_once(" (sent ")
        .unwrap_or_else(|| panic!("no original time: {late}"));
    assert_eq!(text, "*alice -> bob* are you there?");
    let stamp = stamp
        .strip_suffix(" UTC, delivered late)")
        .unwrap_or_else(|| panic!("not marked late: {late}"));
    // YYYY-MM-DD HH:MM
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert!(
        stamp.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 => c == ':',
            _ => c.is_ascii_digit(),
        }),
        "{stamp}"
    );
    // Once: not again on this client, nor on a second session logging in later.
    bob.type_line("/list").await;
    let (before, _) = bob
        .until("the online list", |l| l.starts_with("[online] "))
        .await;
    assert!(
        !before.iter().any(|l| l.contains("are you there?")),
        "{before:?}"
    );
    let mut again = Client::start(srv.addr, "bob", false).await;
    again.type_line("/list").await;
    let (before, _) = again
        .until("the online list", |l| l.starts_with("[online] "))
        .await;
    assert!(
        !again.seen.iter().any(|l| l.contains("are you there?")),
        "{before:?}"
    );
    // A message to someone online is not queued.
    alice.type_line("/msg bob welcome back").await;
    let (before, _) = alice
        .until("the echo", |l| l == "*alice -> bob* welcome back")
        .await;
    assert!(
        !before.iter().any(|l| l.starts_with("[queued]")),
        "{before:?}"
    );
    bob.expect_line("*alice -> bob* welcome back").await;

    for c in [alice, bob, again] {
        c.quit().await;
    }
    srv.stop().await;
}
