//! End to end with a real IRC client: Debian's `irssi`, inside tmux, against the real
//! `natter-server` binary's IRC gateway over TLS, with a natter client (plain mode) in the
//! same room.
//!
//! irssi logs in with SASL PLAIN, trusting the server's self-signed certificate through
//! `-tls_cafile` (the certificate in the server's data directory, checked against the name
//! `localhost`) and pinning its fingerprint (`-tls_pinned_cert`, as printed by the
//! server). The commands typed are those of docs/IRC.md. irssi's home is a temporary
//! directory, and only loopback is used.
//!
//! Bob, on natter, speaks in the lobby before Alice's irssi joins it: irssi must show that
//! line as history. Then lines go both ways, in the lobby and privately.
//!
//! Skipped with a notice when irssi or tmux is missing; with `NATTER_REQUIRE_IRC_CLIENT=1`
//! (set by `.ci/run`) that is a failure instead. The screen is read with
//! `tmux capture-pane` (see [`support::tmux`]).

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::timeout;

mod support;

use support::bins::{command as scrubbed, server_binary};
use support::tmux::{Tmux, last_line};

/// Upper bound for every wait outside the screen.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// What Bob says before Alice's irssi joins the lobby.
const BEFORE: &str = "said before alice joined";

/// Whether irssi and tmux are there. When they are not, says what to install and returns
/// false, or fails if `NATTER_REQUIRE_IRC_CLIENT=1`.
fn can_run() -> bool {
    let missing = if !Tmux::available() {
        "tmux is not installed (`apt-get install tmux`)"
    } else if !runs("irssi", "--version") {
        "irssi is not installed (`apt-get install irssi`)"
    } else {
        return true;
    };
    let required = std::env::var("NATTER_REQUIRE_IRC_CLIENT").is_ok_and(|v| v == "1");
    assert!(!required, "NATTER_REQUIRE_IRC_CLIENT=1, but {missing}");
    eprintln!("SKIPPED irssi test: {missing}");
    false
}

/// Whether `program arg` runs and succeeds.
fn runs(program: &str, arg: &str) -> bool {
    StdCommand::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The server binary's arguments for an IRC gateway on loopback that speaks TLS (the
/// gateway picks plaintext on loopback unless `--irc-tls on`).
async fn irc_listen_args() -> Vec<&'static str> {
    vec!["--irc-listen", "127.0.0.1:0", "--irc-tls", "on"]
}

/// A running server, as its start-up lines describe it.
struct Server {
    process: Child,
    /// The chat listener, `127.0.0.1:port`.
    chat: String,
    /// The IRC gateway's port (on 127.0.0.1).
    irc_port: u16,
    /// The certificate's SHA-256 fingerprint, as printed.
    fingerprint: String,
    /// The certificate, PEM.
    cert: PathBuf,
}

/// Starts the server (self-signed TLS) with its chat listener and IRC gateway on free
/// loopback ports.
async fn start_server(dir: &Path) -> Server {
    let data = dir.join("data");
    let mut process = scrubbed(server_binary().await)
        .args(["--listen", "127.0.0.1:0", "--web-listen", "off"])
        .args(irc_listen_args().await)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut out = BufReader::new(process.stdout.take().expect("stdout")).lines();
    let (mut chat, mut irc, mut fingerprint) = (None, None, None);
    let mut seen = Vec::new();
    while fingerprint.is_none() {
        assert!(seen.len() < 20, "no fingerprint in {seen:#?}");
        let line = timeout(T, out.next_line())
            .await
            .unwrap_or_else(|_| panic!("start-up lines in time: {seen:#?}"))
            .expect("readable")
            .unwrap_or_else(|| panic!("the server ended: {seen:#?}"));
        if let Some(at) = line.strip_prefix("natter-server listening on ") {
            chat = Some(at.to_string());
        } else if line.starts_with("IRC gateway (") {
            irc = Some(line.clone());
        } else if let Some(fp) = line.strip_prefix("TLS certificate SHA-256 fingerprint: ") {
            fingerprint = Some(fp.to_string());
        }
        seen.push(line);
    }
    // Keep draining: the server prints more after starting, and a closed pipe would stop it.
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    let irc = irc.expect("the server prints where the IRC gateway listens");
    assert!(
        irc.starts_with("IRC gateway (TLS)"),
        "the test needs the gateway to speak TLS on loopback: {irc}"
    );
    let irc_port = irc
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {irc}"));
    Server {
        process,
        chat: chat.expect("the server prints its chat address"),
        irc_port,
        fingerprint: fingerprint.expect("checked above"),
        cert: data.join("tls/cert.pem"),
    }
}

/// The known-servers file of the test's natter clients (never the user's own).
fn known_servers(dir: &Path) -> PathBuf {
    dir.join("known_servers")
}

/// Creates the account `user` (password [`PASSWORD`]), pinning the server's certificate
/// in the test's known-servers file.
async fn create_account(dir: &Path, server: &Server, user: &str) {
    support::bins::create_account(&known_servers(dir), &server.chat, user, PASSWORD).await;
}

/// Bob: a natter client in plain mode, typing on stdin and printing on stdout.
struct Bob {
    process: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
}

impl Bob {
    /// Registers Bob and waits until he is in the lobby.
    async fn start(dir: &Path, server: &Server) -> Bob {
        let mut process = scrubbed(env!("CARGO_BIN_EXE_natter"))
            .args([
                "--server",
                &server.chat,
                "--user",
                "bob",
                "--register",
                "--plain",
            ])
            .arg("--known-servers")
            .arg(known_servers(dir))
            .env("NATTER_PASSWORD", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bob starts");
        let input = process.stdin.take().expect("stdin");
        let output = BufReader::new(process.stdout.take().expect("stdout")).lines();
        let mut bob = Bob {
            process,
            input,
            output,
        };
        bob.sees("[system] registered and logged in as bob").await;
        bob.sees("[joined] #lobby (1 member: bob)").await;
        bob
    }

    async fn says(&mut self, line: &str) {
        timeout(T, self.input.write_all(format!("{line}\n").as_bytes()))
            .await
            .expect("bob types in time")
            .expect("write");
    }

    /// Reads Bob's output until the line `expected` (boundedly); returns the lines before.
    async fn sees(&mut self, expected: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            assert!(before.len() < 50, "bob never saw {expected:?}: {before:#?}");
            let line = timeout(T, self.output.next_line())
                .await
                .unwrap_or_else(|_| panic!("bob never saw {expected:?}: {before:#?}"))
                .expect("readable")
                .unwrap_or_else(|| panic!("bob's client ended: {before:#?}"));
            if line == expected {
                return before;
            }
            before.push(line);
        }
    }
}

/// Starts irssi with a fresh home directory in a fresh tmux server and waits for its
/// status window. After irssi exits, the pane shows `EXIT=status`.
async fn start_irssi(dir: &Path, test: &str) -> Tmux {
    let home = dir.join("irssi");
    std::fs::create_dir_all(&home).expect("irssi home");
    let script = dir.join("irssi.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nirssi --home='{}'\necho EXIT=$?\nsleep 600\n",
            home.display()
        ),
    )
    .expect("write script");
    let tmux = Tmux::start(test, &script);
    tmux.wait_for("irssi's status window", |s| {
        s.contains("Irssi v") && last_line(s) == "[(status)]"
    })
    .await;
    tmux
}

/// Types a command into irssi and waits for its answer.
async fn command(tmux: &Tmux, line: &str, answer: &str) -> String {
    tmux.keys(&[line, "Enter"]);
    tmux.wait_for(answer, |s| s.contains(answer)).await
}

/// Sets up the network and server as docs/IRC.md says (SASL PLAIN, TLS with the server's
/// certificate), connects, and waits for the welcome.
async fn connect(tmux: &Tmux, server: &Server) {
    command(
        tmux,
        &format!(
            "/network add -nick alice -sasl_username alice -sasl_password '{PASSWORD}' \
             -sasl_mechanism PLAIN natter"
        ),
        "Network natter saved",
    )
    .await;
    command(
        tmux,
        &format!(
            "/server add -tls -tls_cafile {} -tls_pinned_cert {} -network natter localhost {}",
            server.cert.display(),
            server.fingerprint,
            server.irc_port
        ),
        "Server localhost saved",
    )
    .await;
    tmux.keys(&["/connect natter", "Enter"]);
    let screen = tmux
        .wait_for("the welcome", |s| s.contains("Welcome to natter, alice"))
        .await;
    assert!(screen.contains("SASL authentication succeeded"), "{screen}");
    assert!(
        !screen.contains("Could not verify") && !screen.contains("Subject Alt Names"),
        "{screen}"
    );
}

/// Everything up to irssi's welcome: a server, Alice's account, Bob in the lobby having
/// said [`BEFORE`], and irssi logged in as Alice.
struct Scene {
    server: Server,
    bob: Bob,
    irssi: Tmux,
    _dir: tempfile::TempDir,
}

async fn scene(test: &str) -> Scene {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path()).await;
    std::fs::write(
        known_servers(dir.path()),
        format!("{} {}\n", server.chat, server.fingerprint),
    )
    .expect("pin the server for the natter clients");
    create_account(dir.path(), &server, "alice").await;
    let mut bob = Bob::start(dir.path(), &server).await;
    bob.says(BEFORE).await;
    // The server sends a room message back to its sender once it is accepted (and kept).
    bob.sees(&format!("#lobby <bob> {BEFORE}")).await;

    let irssi = start_irssi(dir.path(), test).await;
    connect(&irssi, &server).await;
    Scene {
        server,
        bob,
        irssi,
        _dir: dir,
    }
}

#[tokio::test]
async fn irssi_over_tls_with_sasl_sees_history_and_talks_with_a_natter_client() {
    if !can_run() {
        return;
    }
    let Scene {
        mut server,
        mut bob,
        irssi,
        _dir,
    } = scene("irssi-chat").await;

    // Joining the lobby shows it with its members and what Bob said before.
    join_lobby(&irssi).await;
    // IRC clients join the rooms they ask for; Bob sees Alice arrive.
    bob.sees("[join] #lobby alice").await;

    // natter -> irssi.
    bob.says("hello from natter").await;
    irssi
        .wait_for("bob's message", |s| s.contains("< bob> hello from natter"))
        .await;

    // irssi -> natter (irssi prints its own line; it does not ask for echo-message).
    irssi.keys(&["hello from irssi", "Enter"]);
    bob.sees("#lobby <alice> hello from irssi").await;
    irssi
        .wait_for("alice's own line", |s| {
            s.contains("< alice> hello from irssi")
        })
        .await;

    // Privately, both ways.
    irssi.keys(&["/msg bob psst from irssi", "Enter"]);
    bob.sees("*alice -> bob* psst from irssi").await;
    bob.says("/msg alice psst from natter").await;
    bob.sees("*bob -> alice* psst from natter").await;
    irssi.keys(&["/query bob", "Enter"]);
    irssi
        .wait_for("bob's private message in the query window", |s| {
            last_line(s) == "[bob]" && s.contains("<bob> psst from natter")
        })
        .await;

    // /quit: Bob sees Alice leave, and irssi ends normally.
    irssi.keys(&["/quit see you", "Enter"]);
    let screen = irssi
        .wait_for("irssi's exit", |s| s.contains("EXIT="))
        .await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    let before = bob.sees("[leave] #lobby alice (quit): see you").await;
    assert!(
        !before.iter().any(|l| l.contains("alice")),
        "nothing else from alice: {before:#?}"
    );

    drop(bob.input);
    let status = timeout(T, bob.process.wait())
        .await
        .expect("bob exits in time")
        .expect("wait");
    assert!(status.success());
    let _ = server.process.start_kill();
}

/// `/join #lobby` in irssi: its window shows the members and Bob's earlier line.
async fn join_lobby(irssi: &Tmux) {
    irssi.keys(&["/join #lobby", "Enter"]);
    let screen = irssi
        .wait_for("the lobby window with its history", |s| {
            last_line(s) == "[#lobby]" && s.contains(&format!("< bob> {BEFORE}"))
        })
        .await;
    assert!(
        screen.contains("alice [alice@natter] has joined #lobby"),
        "{screen}"
    );
    assert!(screen.contains("Total of 2 nicks"), "{screen}");
}
