//! End to end in a real terminal: `natter` in its full-screen mode (the default on a
//! terminal) inside tmux, against a real server over TLS, with a plain-mode client on the
//! other side: the layout appears, typed lines are sent, a private message opens a buffer
//! with a mention mark, Alt+number switches, `/join` switches, and Ctrl-D leaves with the
//! terminal restored. Skipped (with a note) when tmux is not installed.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use natter_server::Config;
use support::Running;
use support::bins::{command as scrubbed, create_account};
use support::tmux::{Tmux, last_line};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

/// Upper bound for every wait.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// Runs Dave's full-screen client in tmux; after it exits the pane shows `EXIT=status`
/// and `TTY=SANE` or `TTY=RAW`.
fn start_dave(dir: &Path, addr: &str) -> Tmux {
    let script = dir.join("dave.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nXDG_CONFIG_HOME='{}' NATTER_PASSWORD='{PASSWORD}' '{}' --server {addr} \
             --user dave --known-servers '{}'\n\
             echo EXIT=$?\nstty -a | grep -q -- '-icanon' && echo TTY=RAW || echo TTY=SANE\nsleep 600\n",
            dir.display(),
            env!("CARGO_BIN_EXE_natter"),
            dir.join("known_servers").display(),
        ),
    )
    .expect("write script");
    Tmux::start("fullscreen", &script)
}

#[tokio::test]
async fn full_screen_buffers_mentions_switching_and_ctrl_d() {
    if !Tmux::available() {
        eprintln!("tmux not installed: skipping the full-screen terminal test");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = Running::start(Config::with_data_dir(dir.path().join("data"))).await;
    let addr = srv.server();
    let known = dir.path().join("known_servers");
    create_account(&known, &addr, "dave", PASSWORD).await;

    let tmux = start_dave(dir.path(), &addr);
    let screen = tmux
        .wait_for("the full-screen layout", |s| {
            last_line(s).starts_with("[#lobby] >") && s.contains("1 server")
        })
        .await;
    assert!(screen.contains("2 #lobby"), "{screen}");
    assert!(screen.contains("dave on 127.0.0.1"), "{screen}");
    assert!(screen.contains("TLS (pinned)"), "{screen}");
    // The status line shows the measured round trip (the first probe goes out at once).
    tmux.wait_for("the lag on the status line", |s| {
        s.lines()
            .any(|l| l.contains("connected │ lag ") && l.contains(" ms"))
    })
    .await;

    let mut carol = scrubbed(env!("CARGO_BIN_EXE_natter"))
        .args([
            "--server",
            &addr,
            "--user",
            "carol",
            "--register",
            "--plain",
        ])
        .arg("--known-servers")
        .arg(&known)
        .env("NATTER_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("carol starts");
    let mut carol_in = carol.stdin.take().expect("stdin");
    let mut carol_out = BufReader::new(carol.stdout.take().expect("stdout")).lines();
    tmux.wait_for("carol's join", |s| s.contains("[join] #lobby carol"))
        .await;

    // A private message opens buffer 3 with a mention mark and one unread line.
    carol_in
        .write_all(b"/msg dave psst dave\n")
        .await
        .expect("carol types");
    tmux.wait_for("the private buffer with a mention", |s| {
        s.lines()
            .any(|l| l.starts_with("3 @carol") && l.contains("!1"))
    })
    .await;

    // Typed lines go to the room on screen.
    tmux.keys(&["-l", "hello all"]);
    tmux.keys(&["Enter"]);
    let mut seen = false;
    for _ in 0..20 {
        let line = timeout(T, carol_out.next_line())
            .await
            .expect("carol hears in time")
            .expect("readable")
            .expect("carol still running");
        if line == "#lobby <dave> hello all" {
            seen = true;
            break;
        }
    }
    assert!(seen, "carol never saw dave's line");

    // Alt+3 shows the private conversation; the mark goes.
    tmux.keys(&["M-3"]);
    let screen = tmux
        .wait_for("the private buffer", |s| {
            last_line(s).starts_with("[@carol] >")
        })
        .await;
    assert!(screen.contains("<carol> psst dave"), "{screen}");
    assert!(
        !screen
            .lines()
            .any(|l| l.starts_with("3 @carol") && l.contains("!1")),
        "{screen}"
    );

    // /join switches to the new room's buffer once joined.
    tmux.keys(&["-l", "/join rust"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the new room", |s| {
        last_line(s).starts_with("[#rust] >") && s.contains("4 #rust")
    })
    .await;

    // Ctrl-D on the empty line leaves; the terminal is back to normal.
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("TTY=")).await;
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("TTY=SANE"), "{screen}");
    drop(carol_in);
    let _ = timeout(T, carol.wait()).await;
    srv.stop().await;
}
