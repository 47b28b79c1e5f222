//! End to end in a real terminal: the interactive `natter` inside tmux reconnects by
//! itself when the real server (over TLS, its certificate pinned) is killed and started
//! again on the same port, while a line is half typed. Skipped (with a note) when tmux is
//! not installed.
//!
//! Dave reaches the server through a TCP proxy ([`support::proxy`]) that keeps him out
//! until Carol has written while he was away, so what he missed is known.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

mod support;

use support::bins::{command as scrubbed, create_account, start_server_on};
use support::proxy::{Mode, Proxy};
use support::tmux::{Tmux, last_line};

/// Upper bound for every wait.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

fn known_servers(dir: &Path) -> PathBuf {
    dir.join("known_servers")
}

/// Starts the server (TLS, self-signed, its data in `dir`) listening on `listen`;
/// returns it and its address.
async fn start_server(dir: &Path, listen: &str) -> (tokio::process::Child, String) {
    let (server, addr, _) = start_server_on(dir, listen).await;
    (server, addr)
}

/// A plain-mode client logged in as `user` (stdin kept open).
async fn start_plain(
    dir: &Path,
    addr: &str,
    user: &str,
) -> (
    tokio::process::Child,
    tokio::process::ChildStdin,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = scrubbed(env!("CARGO_BIN_EXE_natter"))
        .args(["--server", addr, "--user", user, "--plain"])
        .arg("--known-servers")
        .arg(known_servers(dir))
        .env("NATTER_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plain client starts");
    let stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = timeout(T, out.next_line())
        .await
        .expect("in time")
        .expect("readable");
    assert_eq!(first, Some(format!("[system] logged in as {user}")));
    (child, stdin, out)
}

/// Reads a plain client's output until `want`; returns every line read.
async fn read_until(
    out: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    want: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let line = timeout(T, out.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} in time; saw {seen:?}"))
            .expect("readable")
            .expect("still running");
        seen.push(line.clone());
        if line == want {
            return seen;
        }
    }
    panic!("no {want:?} in 200 lines: {seen:?}");
}

#[tokio::test]
async fn a_restarted_server_is_rejoined_with_the_half_typed_line_intact() {
    if !Tmux::available() {
        eprintln!("tmux not installed: skipping the interactive reconnect test");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr) = start_server(dir.path(), "127.0.0.1:0").await;
    let proxy = Proxy::start(addr.parse().expect("address")).await;
    let via_proxy = proxy.addr.to_string();
    // Accounts, and the certificate pinned for both addresses.
    create_account(&known_servers(dir.path()), &via_proxy, "dave", PASSWORD).await;
    create_account(&known_servers(dir.path()), &addr, "carol", PASSWORD).await;

    let script = dir.path().join("dave.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nXDG_CONFIG_HOME='{}' NATTER_PASSWORD='{PASSWORD}' '{}' \
             --server {via_proxy} --user dave --line --known-servers '{}'\necho EXIT=$?\nsleep 600\n",
            dir.path().display(),
            env!("CARGO_BIN_EXE_natter"),
            known_servers(dir.path()).display(),
        ),
    )
    .expect("write script");
    let tmux = Tmux::start("reconnect", &script);
    tmux.wait_for("the lobby prompt", |s| last_line(s) == "[#lobby] >")
        .await;
    let (_carol, _carol_in, mut carol_out) = start_plain(dir.path(), &addr, "carol").await;
    tmux.wait_for("carol's arrival", |s| s.contains("[join] #lobby carol"))
        .await;

    tmux.keys(&["half typed"]);
    tmux.wait_for("the typed text", |s| {
        last_line(s) == "[#lobby] > half typed"
    })
    .await;

    // The server is killed; Dave's client says it is reconnecting, the line untouched.
    proxy.set(Mode::Closed);
    server.kill().await.expect("kill the server");
    let _ = timeout(T, carol_out.next_line()).await;
    let screen = tmux
        .wait_for("the reconnecting status", |s| {
            s.contains("-- connection lost; reconnecting in ")
        })
        .await;
    assert_eq!(last_line(&screen), "[#lobby] > half typed", "{screen}");

    // Started again on the same port; Carol writes while Dave cannot get in yet.
    let (mut server, again) = start_server(dir.path(), &addr).await;
    assert_eq!(again, addr);
    let (_carol, mut carol_in, mut carol_out) = start_plain(dir.path(), &addr, "carol").await;
    read_until(&mut carol_out, "[joined] #lobby (1 member: carol)").await;
    for i in 1..=2 {
        let line = format!("while you were away {i}\n");
        carol_in.write_all(line.as_bytes()).await.expect("write");
        read_until(
            &mut carol_out,
            &format!("#lobby <carol> while you were away {i}"),
        )
        .await;
    }

    proxy.set(Mode::Open);
    let screen = tmux
        .wait_for("the reconnect", |s| s.contains("-- reconnected --"))
        .await;
    assert_eq!(last_line(&screen), "[#lobby] > half typed", "{screen}");
    for i in 1..=2 {
        let missed = format!("[history] #lobby <carol> while you were away {i}");
        assert_eq!(
            screen.lines().filter(|l| l.contains(&missed)).count(),
            1,
            "{missed:?} once:\n{screen}"
        );
    }

    // The line, finished and sent, arrives once.
    tmux.keys(&[" now", "Enter"]);
    let seen = read_until(&mut carol_out, "#lobby <dave> half typed now").await;
    carol_in.write_all(b"marker\n").await.expect("write");
    let after = read_until(&mut carol_out, "#lobby <carol> marker").await;
    let sent = seen.iter().chain(&after);
    assert_eq!(sent.filter(|l| l.contains("half typed")).count(), 1);
    let screen = tmux
        .wait_for("dave's own line and carol's marker", |s| {
            s.contains("#lobby <carol> marker")
        })
        .await;
    assert_eq!(
        screen
            .lines()
            .filter(|l| l.contains("<dave> half typed now"))
            .count(),
        1,
        "{screen}"
    );
    assert_eq!(last_line(&screen), "[#lobby] >", "{screen}");

    // Ctrl-D still leaves.
    tmux.keys(&["C-d"]);
    tmux.wait_for("the exit", |s| s.contains("EXIT=0")).await;
    server.kill().await.expect("kill the server");
}

/// The full-screen client (the default in a terminal) reconnects the same way: its
/// status line says so, the half-typed line stays in the input line, the rooms are
/// rejoined, what was missed appears once, and the finished line is sent once.
#[tokio::test]
async fn the_full_screen_client_reconnects_with_the_half_typed_line_intact() {
    if !Tmux::available() {
        eprintln!("tmux not installed: skipping the full-screen reconnect test");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr) = start_server(dir.path(), "127.0.0.1:0").await;
    let proxy = Proxy::start(addr.parse().expect("address")).await;
    let via_proxy = proxy.addr.to_string();
    create_account(&known_servers(dir.path()), &via_proxy, "erin", PASSWORD).await;
    create_account(&known_servers(dir.path()), &addr, "carol", PASSWORD).await;
    let script = dir.path().join("erin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nXDG_CONFIG_HOME='{}' NATTER_PASSWORD='{PASSWORD}' '{}' \
             --server {via_proxy} --user erin --known-servers '{}'\necho EXIT=$?\nsleep 600\n",
            dir.path().display(),
            env!("CARGO_BIN_EXE_natter"),
            known_servers(dir.path()).display(),
        ),
    )
    .expect("write script");
    let tmux = Tmux::start("fullscreen-reconnect", &script);
    tmux.wait_for("the full screen, connected", |s| {
        s.contains("connected") && s.contains("[#lobby] >")
    })
    .await;
    tmux.keys(&["half typed"]);
    tmux.wait_for("the typed text", |s| s.contains("[#lobby] > half typed"))
        .await;

    proxy.set(Mode::Closed);
    server.kill().await.expect("kill the server");
    let screen = tmux
        .wait_for("the reconnecting status", |s| {
            s.contains("reconnecting in ")
        })
        .await;
    assert!(screen.contains("[#lobby] > half typed"), "{screen}");

    let (mut server, again) = start_server(dir.path(), &addr).await;
    assert_eq!(again, addr);
    let (_carol, mut carol_in, mut carol_out) = start_plain(dir.path(), &addr, "carol").await;
    read_until(&mut carol_out, "[joined] #lobby (1 member: carol)").await;
    carol_in
        .write_all(b"while you were away\n")
        .await
        .expect("write");
    read_until(&mut carol_out, "#lobby <carol> while you were away").await;

    proxy.set(Mode::Open);
    let screen = tmux
        .wait_for("the reconnect and the missed message", |s| {
            s.contains("-- reconnected --") && s.contains("<carol> while you were away")
        })
        .await;
    assert!(screen.contains("[#lobby] > half typed"), "{screen}");
    assert_eq!(
        screen.matches("<carol> while you were away").count(),
        1,
        "the missed message once:\n{screen}"
    );

    tmux.keys(&[" now", "Enter"]);
    let seen = read_until(&mut carol_out, "#lobby <erin> half typed now").await;
    carol_in.write_all(b"marker\n").await.expect("write");
    let after = read_until(&mut carol_out, "#lobby <carol> marker").await;
    assert_eq!(
        seen.iter()
            .chain(&after)
            .filter(|l| l.contains("half typed"))
            .count(),
        1
    );
    tmux.keys(&["C-d"]);
    tmux.wait_for("the exit", |s| s.contains("EXIT=0")).await;
    server.kill().await.expect("kill the server");
}
