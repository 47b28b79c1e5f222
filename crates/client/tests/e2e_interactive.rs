//! End to end in a real terminal: `natter` in interactive mode inside tmux, against the real
//! server over TLS, with a plain-mode client on the other side. Skipped (with a note) when
//! tmux is not installed.
//!
//! The server's self-signed certificate is unknown at first: Dave's interactive client
//! shows its fingerprint and asks whether to trust it; he answers yes, which pins it in a
//! temporary known-servers file that Carol's plain client then uses.
//!
//! Dave also joins and leaves a room: the prompt names it as soon as it is handed out.
//!
//! The screen is read with `tmux capture-pane`; waiting for text polls it until a deadline,
//! since a terminal offers no event to await.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

mod support;

use support::bins::{command as scrubbed, start_server_on};
use support::tmux::{Tmux, last_line};

/// Upper bound for every wait.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// The known-servers file of a test's clients (never the user's own).
fn known_servers(dir: &Path) -> PathBuf {
    dir.join("known_servers")
}

/// Starts the server (TLS, self-signed) on a free port; returns it, its address and its
/// certificate fingerprint.
async fn start_server(dir: &Path) -> (tokio::process::Child, String, String) {
    start_server_on(dir, "127.0.0.1:0").await
}

/// Runs Dave's interactive client in a fresh tmux server, trusts the server's certificate
/// when asked (checking the fingerprint shown), and waits for his first prompt.
/// After the client exits, the pane shows `EXIT=status` and `TTY=SANE` or `TTY=RAW`.
async fn start_dave(dir: &Path, addr: &str, fingerprint: &str, test: &str) -> Tmux {
    let script = dir.join("dave.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nXDG_CONFIG_HOME='{}' NATTER_PASSWORD='{PASSWORD}' '{}' --server {addr} \
             --user dave --register --line --known-servers '{}'\n\
             echo EXIT=$?\nstty -a | grep -q -- '-icanon' && echo TTY=RAW || echo TTY=SANE\nsleep 600\n",
            dir.join("xdg-config").display(),
            env!("CARGO_BIN_EXE_natter"),
            known_servers(dir).display(),
        ),
    )
    .expect("write script");
    let tmux = Tmux::start(test, &script);
    let question = "Trust this server and remember it? [y/N]";
    let screen = tmux
        .wait_for("the trust question", |s| last_line(s) == question)
        .await;
    // The pane is 100 columns wide: the fingerprint (95) fits on one line.
    assert!(
        screen.contains(addr) && screen.contains(fingerprint),
        "the question shows the server and its fingerprint:\n{screen}"
    );
    tmux.keys(&["y", "Enter"]);
    tmux.wait_for("the lobby prompt", |s| {
        s.contains("[system] registered and logged in as dave") && last_line(s) == "[#lobby] >"
    })
    .await;
    tmux
}

/// Starts Carol: a plain-mode client (stdin kept open) that pins nothing new; waits for her
/// login line and for Dave's screen to show her arrival.
async fn start_carol(
    dir: &Path,
    addr: &str,
    tmux: &Tmux,
) -> (
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut carol = scrubbed(env!("CARGO_BIN_EXE_natter"))
        .args(["--server", addr, "--user", "carol", "--register", "--plain"])
        .arg("--known-servers")
        .arg(known_servers(dir))
        .env("NATTER_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("carol starts");
    let carol_in = carol.stdin.take().expect("stdin");
    let mut carol_out = BufReader::new(carol.stdout.take().expect("stdout")).lines();
    let first = timeout(T, carol_out.next_line())
        .await
        .expect("in time")
        .expect("readable");
    assert_eq!(
        first.as_deref(),
        Some("[system] registered and logged in as carol")
    );
    tmux.wait_for("carol's join", |s| s.contains("[join] #lobby carol"))
        .await;
    (carol, carol_in, carol_out)
}

/// Reads Carol's output until `expected.len()` messages from Dave arrived (other lines are
/// skipped, boundedly) and checks they are exactly `expected`, in order.
async fn carol_sees_from_dave(
    carol_out: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    expected: &[String],
) {
    let mut got = Vec::new();
    for _ in 0..(expected.len() + 50) {
        if got.len() == expected.len() {
            break;
        }
        let line = timeout(T, carol_out.next_line())
            .await
            .unwrap_or_else(|_| panic!("carol got only {got:?} in time"))
            .expect("readable")
            .expect("carol still running");
        if line.contains("<dave>") {
            got.push(line);
        }
    }
    assert_eq!(got, expected);
}

/// Whether this test can run here; says why not otherwise.
fn can_run() -> bool {
    if !Tmux::available() {
        eprintln!("tmux not installed: skipping the interactive terminal test");
        return false;
    }
    true
}

#[tokio::test]
async fn interactive_prompt_focus_incoming_messages_and_ctrl_d() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, fingerprint) = start_server(dir.path()).await;
    let tmux = start_dave(dir.path(), &addr, &fingerprint, "chat").await;
    let pinned = std::fs::read_to_string(known_servers(dir.path())).expect("pinned by dave");
    assert!(
        pinned.lines().any(|l| l == format!("{addr} {fingerprint}")),
        "{pinned}"
    );
    assert!(
        !dir.path().join("xdg-config").exists(),
        "the default config directory was not used"
    );

    // Carol: plain mode, stdin kept open.
    let (mut carol, mut carol_in, mut carol_out) = start_carol(dir.path(), &addr, &tmux).await;

    // Focus on carol: the very next prompt is the focused one.
    tmux.keys(&["/msg carol", "Enter"]);
    tmux.wait_for("the focused prompt", |s| last_line(s) == "[@carol] >")
        .await;

    // A half-typed line survives an incoming message printed above it.
    tmux.keys(&["half typed"]);
    tmux.wait_for("the typed text", |s| {
        last_line(s) == "[@carol] > half typed"
    })
    .await;
    timeout(T, carol_in.write_all(b"hello dave\n"))
        .await
        .expect("in time")
        .expect("write");
    let screen = tmux
        .wait_for("carol's message", |s| {
            s.contains("#lobby <carol> hello dave")
        })
        .await;
    assert_eq!(last_line(&screen), "[@carol] > half typed", "{screen}");

    // Finishing the line sends it privately to carol.
    tmux.keys(&[" now", "Enter"]);
    let mut got = None;
    for _ in 0..20 {
        let line = timeout(T, carol_out.next_line())
            .await
            .expect("carol gets lines in time")
            .expect("readable")
            .expect("carol still running");
        if line.starts_with("*dave") {
            got = Some(line);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some("*dave -> carol* half typed now"));

    // /join: the very next prompt names the new room (the switch happens on the server's
    // answer, which the editor waits for), and plain lines go there.
    tmux.keys(&["/join #Rust", "Enter"]);
    // (The notice is printed above the prompt by the printer thread, so wait for both.)
    tmux.wait_for("the room prompt and the join notice", |s| {
        last_line(s) == "[#rust] >" && s.contains("[joined] #rust (1 member: dave)")
    })
    .await;
    tmux.keys(&["in rust", "Enter"]);
    tmux.wait_for("the room message", |s| s.contains("#rust <dave> in rust"))
        .await;
    tmux.keys(&["/part", "Enter"]);
    tmux.wait_for("the lobby prompt again", |s| {
        s.contains("[parted] #rust") && last_line(s) == "[#lobby] >"
    })
    .await;

    // Ctrl-D leaves cleanly and gives the terminal back in its normal state.
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("TTY=")).await;
    assert!(screen.contains("[bye] quit"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("TTY=SANE"), "{screen}");

    drop(carol_in);
    let status = timeout(T, carol.wait())
        .await
        .expect("carol exits in time")
        .expect("wait");
    assert!(status.success());
    let _ = server.start_kill();
}

#[tokio::test]
async fn server_ending_the_session_mid_line_reconnects_and_ctrl_d_still_leaves() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, fingerprint) = start_server(dir.path()).await;
    let tmux = start_dave(dir.path(), &addr, &fingerprint, "shutdown").await;
    tmux.keys(&["not finished"]);
    tmux.wait_for("the typed text", |s| {
        last_line(s) == "[#lobby] > not finished"
    })
    .await;

    // A graceful shutdown (SIGTERM): the server says why, and the client waits to
    // reconnect instead of leaving, the unfinished line as it was.
    let pid = server.id().expect("server running").to_string();
    let status = StdCommand::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let screen = tmux
        .wait_for("the reconnecting status", |s| {
            s.contains("-- connection lost; reconnecting in ")
        })
        .await;
    assert!(screen.contains("server is shutting down"), "{screen}");
    assert_eq!(last_line(&screen), "[#lobby] > not finished", "{screen}");
    let _ = timeout(T, server.wait()).await;

    // Ctrl-C clears the line, Ctrl-D leaves while still disconnected.
    tmux.keys(&["C-c"]);
    tmux.wait_for("the cleared line", |s| last_line(s) == "[#lobby] >")
        .await;
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("TTY=")).await;
    assert!(screen.contains("[bye] quit"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("TTY=SANE"), "{screen}");
}

#[tokio::test]
async fn a_changed_certificate_after_a_crash_ends_the_session_and_restores_the_terminal() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, fingerprint) = start_server(dir.path()).await;
    let tmux = start_dave(dir.path(), &addr, &fingerprint, "crash").await;
    tmux.keys(&["not finished"]);
    tmux.wait_for("the typed text", |s| {
        last_line(s) == "[#lobby] > not finished"
    })
    .await;

    // SIGKILL: the connection just ends, without bye; the client starts reconnecting.
    server.start_kill().expect("kill server");
    tmux.wait_for("the reconnecting status", |s| {
        s.contains("-- connection lost; reconnecting in ")
    })
    .await;
    let _ = timeout(T, server.wait()).await;
    // Another server on the same port, with another certificate: the pin refuses it and
    // the client stops instead of retrying, with the terminal restored.
    let other = tempfile::tempdir().expect("temp dir");
    let (mut server, again, other_fingerprint) = start_server_on(other.path(), &addr).await;
    assert_eq!(again, addr);
    assert_ne!(other_fingerprint, fingerprint);
    let screen = tmux.wait_for("the exit", |s| s.contains("TTY=")).await;
    assert!(
        screen.contains("connection lost and not restored"),
        "{screen}"
    );
    assert!(screen.contains("EXIT=1"), "{screen}");
    assert!(screen.contains("TTY=SANE"), "{screen}");
    let _ = server.start_kill();
    let _ = timeout(T, server.wait()).await;
}

#[tokio::test]
async fn type_ahead_bursts_and_pastes_are_all_sent_in_order() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, fingerprint) = start_server(dir.path()).await;
    let tmux = start_dave(dir.path(), &addr, &fingerprint, "typeahead").await;
    let (mut carol, mut carol_in, mut carol_out) = start_carol(dir.path(), &addr, &tmux).await;
    let said = |room: &str, lines: &[&str]| -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("#{room} <dave> {l}"))
            .collect()
    };

    // Three lines typed faster than the client answers them (one tmux call, one burst).
    tmux.keys(&["one", "Enter", "two", "Enter", "three", "Enter"]);
    carol_sees_from_dave(&mut carol_out, &said("lobby", &["one", "two", "three"])).await;

    // A line typed right after /join goes to the new room once the server answered.
    timeout(T, carol_in.write_all(b"/join fast\n"))
        .await
        .expect("in time")
        .expect("write");
    tmux.keys(&["/join fast", "Enter", "first in fast", "Enter"]);
    carol_sees_from_dave(&mut carol_out, &said("fast", &["first in fast"])).await;

    // A paste of 15 lines without bracketed paste: the terminal types them all at once.
    let lines: Vec<String> = (1..=15).map(|i| format!("pasted line {i}")).collect();
    let paste = dir.path().join("paste.txt");
    std::fs::write(&paste, lines.join("\n") + "\n").expect("write paste");
    let paste = paste.to_string_lossy().into_owned();
    tmux.run(&["load-buffer", &paste]);
    tmux.run(&["paste-buffer", "-t", "t"]);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    carol_sees_from_dave(&mut carol_out, &said("fast", &refs)).await;

    // A bracketed paste is put on the edit line to be looked at; Enter sends each of
    // its lines as a message of its own.
    tmux.run(&["paste-buffer", "-p", "-t", "t"]);
    tmux.wait_for("the pasted block on the edit line", |s| {
        last_line(s) == "pasted line 15"
    })
    .await;
    tmux.keys(&["Enter"]);
    carol_sees_from_dave(&mut carol_out, &said("fast", &refs)).await;

    drop(carol_in);
    let _ = timeout(T, carol.wait()).await;
    let _ = server.start_kill();
}

#[tokio::test]
async fn ctrl_c_clears_a_half_typed_line_and_leaves_on_an_empty_one() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, fingerprint) = start_server(dir.path()).await;
    let tmux = start_dave(dir.path(), &addr, &fingerprint, "ctrlc").await;
    let (mut carol, carol_in, mut carol_out) = start_carol(dir.path(), &addr, &tmux).await;

    tmux.keys(&["half typed"]);
    tmux.wait_for("the typed text", |s| {
        last_line(s) == "[#lobby] > half typed"
    })
    .await;
    tmux.keys(&["C-c"]);
    tmux.wait_for("an empty edit line", |s| last_line(s) == "[#lobby] >")
        .await;
    // Still connected, and the cleared text is not sent with the next line.
    tmux.keys(&["after", "Enter"]);
    carol_sees_from_dave(&mut carol_out, &["#lobby <dave> after".to_string()]).await;

    // On an empty line Ctrl-C leaves, like /exit.
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("TTY=")).await;
    assert!(screen.contains("[bye] quit"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("TTY=SANE"), "{screen}");

    drop(carol_in);
    let _ = timeout(T, carol.wait()).await;
    let _ = server.start_kill();
}

/// Creates the account `user` (password [`PASSWORD`]), pinning the server's certificate
/// in the test's known-servers file.
async fn create_account(dir: &Path, addr: &str, user: &str) {
    support::bins::create_account(&known_servers(dir), addr, user, PASSWORD).await;
}

/// Runs the interactive client for an existing `user` in a fresh tmux server, without
/// NATTER_PASSWORD, and waits for the password prompt.
async fn start_login(dir: &Path, addr: &str, user: &str, test: &str) -> Tmux {
    let script = dir.join(format!("{user}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n'{}' --server {addr} --user {user} --line --known-servers '{}'\n\
             echo EXIT=$?\nsleep 600\n",
            env!("CARGO_BIN_EXE_natter"),
            known_servers(dir).display(),
        ),
    )
    .expect("write script");
    let tmux = Tmux::start(test, &script);
    let prompt = format!("Password for {user}:");
    tmux.wait_for("the password prompt", |s| last_line(s) == prompt)
        .await;
    tmux
}

/// How often `text` appears on the screen.
fn count(screen: &str, text: &str) -> usize {
    screen.matches(text).count()
}

/// The question after a failed login, as the screen shows it (trailing space trimmed).
const AFTER_FAILURE: &str = "Login failed. [R]etry password / [c]reate account 'erin' / [q]uit:";

#[tokio::test]
async fn a_mistyped_password_is_retried_with_enter() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, _) = start_server(dir.path()).await;
    create_account(dir.path(), &addr, "erin").await;
    let tmux = start_login(dir.path(), &addr, "erin", "retry").await;

    tmux.keys(&["wrong password", "Enter"]);
    tmux.wait_for("the question after the failure", |s| {
        last_line(s) == AFTER_FAILURE
    })
    .await;
    // Enter is the default: retry the password.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the password prompt again", |s| {
        last_line(s) == "Password for erin:" && count(s, "Password for erin:") == 2
    })
    .await;
    tmux.keys(&[PASSWORD, "Enter"]);
    let screen = tmux
        .wait_for("the lobby prompt", |s| last_line(s) == "[#lobby] >")
        .await;
    assert!(screen.contains("[system] logged in as erin"), "{screen}");
    assert!(!screen.contains("already exists"), "{screen}");
    let _ = server.start_kill();
}

#[tokio::test]
async fn creating_a_taken_name_and_a_mismatched_repeat_lead_back_to_the_prompts() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, _) = start_server(dir.path()).await;
    create_account(dir.path(), &addr, "erin").await;
    let tmux = start_login(dir.path(), &addr, "erin", "create").await;

    tmux.keys(&["wrong password", "Enter"]);
    tmux.wait_for("the question after the failure", |s| {
        last_line(s) == AFTER_FAILURE
    })
    .await;
    tmux.keys(&["c", "Enter"]);
    tmux.wait_for("the repeat prompt", |s| last_line(s) == "Repeat password:")
        .await;
    // A mismatched repeat asks again instead of ending.
    tmux.keys(&["something else", "Enter"]);
    let screen = tmux
        .wait_for("the new password prompt", |s| {
            last_line(s) == "New password for erin:"
        })
        .await;
    assert!(
        screen.contains("The passwords do not match; try again."),
        "{screen}"
    );
    tmux.keys(&["wrong password", "Enter"]);
    tmux.wait_for("the repeat prompt again", |s| {
        last_line(s) == "Repeat password:" && count(s, "Repeat password:") == 2
    })
    .await;
    tmux.keys(&["wrong password", "Enter"]);
    // The name is taken: back to the password prompt.
    let screen = tmux
        .wait_for("the password prompt again", |s| {
            last_line(s) == "Password for erin:" && count(s, "Password for erin:") == 2
        })
        .await;
    assert!(
        screen.contains("The account 'erin' already exists, so the password was wrong."),
        "{screen}"
    );
    tmux.keys(&[PASSWORD, "Enter"]);
    let screen = tmux
        .wait_for("the lobby prompt", |s| last_line(s) == "[#lobby] >")
        .await;
    assert!(screen.contains("[system] logged in as erin"), "{screen}");
    let _ = server.start_kill();
}

#[tokio::test]
async fn after_the_server_gives_up_on_failed_logins_the_client_reconnects() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr, _) = start_server(dir.path()).await;
    create_account(dir.path(), &addr, "erin").await;
    let tmux = start_login(dir.path(), &addr, "erin", "reconnect").await;

    // Three failures on one connection: the server ends it (MAX_AUTH_FAILURES).
    for failures in 1..=3 {
        tmux.keys(&["wrong password", "Enter"]);
        tmux.wait_for("the question after the failure", |s| {
            last_line(s) == AFTER_FAILURE && count(s, AFTER_FAILURE) == failures
        })
        .await;
        tmux.keys(&["Enter"]);
        tmux.wait_for("the password prompt again", |s| {
            last_line(s) == "Password for erin:" && count(s, "Password for erin:") == failures + 1
        })
        .await;
    }
    tmux.keys(&[PASSWORD, "Enter"]);
    let screen = tmux
        .wait_for("the lobby prompt", |s| last_line(s) == "[#lobby] >")
        .await;
    assert!(
        screen.contains("The server ended the connection: too many failed logins. Reconnecting."),
        "{screen}"
    );
    assert!(screen.contains("[system] logged in as erin"), "{screen}");
    let _ = server.start_kill();
}
