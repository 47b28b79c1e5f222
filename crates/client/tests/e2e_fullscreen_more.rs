//! End to end in a real terminal, the full-screen client's second increment: `natter` in
//! tmux against a real TLS server, with a plain client on the other side and its own
//! config directory (`XDG_CONFIG_HOME`): PageUp past the top fetches older history until
//! "no more history"; a paste of 8 lines asks first and then arrives in order; the
//! timestamp format comes from `config.toml`; after a restart, Up brings back the line
//! typed before (the input history file is private), and a broken `config.toml` is
//! reported in the server buffer. Skipped (with a note) when tmux is not installed.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use natter_server::Config;
use support::Running;
use support::bins::{command as scrubbed, create_account};
use support::tmux::{Tmux, last_line};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::ChildStdout;
use tokio::time::timeout;

/// Upper bound for every wait.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// Runs Dave's full-screen client in tmux twice (the second time once the file `go`
/// exists), with `config` as the config directory.
fn start_dave(dir: &Path, addr: &str, config: &Path) -> Tmux {
    let script = dir.join("dave.sh");
    let run = format!(
        "XDG_CONFIG_HOME='{}' NATTER_PASSWORD='{PASSWORD}' '{}' --server {addr} --user dave \
         --known-servers '{}'\n",
        config.display(),
        env!("CARGO_BIN_EXE_natter"),
        dir.join("known_servers").display(),
    );
    let go = dir.join("go");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{run}echo FIRST=$?\nwhile [ ! -f '{}' ]; do sleep 0.1; done\n{run}\
             echo SECOND=$?\nsleep 600\n",
            go.display()
        ),
    )
    .expect("write script");
    Tmux::start("fullscreen-more", &script)
}

/// Reads carol's output until `line` (false when it never comes).
async fn hear(out: &mut Lines<BufReader<ChildStdout>>, line: &str) -> bool {
    for _ in 0..200 {
        match timeout(T, out.next_line()).await {
            Ok(Ok(Some(l))) if l == line => return true,
            Ok(Ok(Some(_))) => {}
            _ => return false,
        }
    }
    false
}

#[tokio::test]
async fn history_paging_paste_confirmation_config_and_input_history_across_restarts() {
    if !Tmux::available() {
        eprintln!("tmux not installed: skipping the full-screen terminal test");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.history_on_join = 10;
    config.messages.rate = 1000.0;
    config.messages.burst = 1000.0;
    let srv = Running::start(config).await;
    let addr = srv.server();
    let known = dir.path().join("known_servers");
    create_account(&known, &addr, "dave", PASSWORD).await;
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("natter")).expect("config dir");
    std::fs::write(
        xdg.join("natter").join("config.toml"),
        "timestamp = \"%H:%M:%S\"\nbell = false\n",
    )
    .expect("config");

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
    let said: String = (0..70).map(|i| format!("old {i}\n")).collect();
    carol_in
        .write_all(said.as_bytes())
        .await
        .expect("carol types");
    assert!(hear(&mut carol_out, "#lobby <carol> old 69").await);

    let tmux = start_dave(dir.path(), &addr, &xdg);
    let screen = tmux
        .wait_for("the full-screen layout with the join's history", |s| {
            last_line(s).starts_with("[#lobby] >") && s.contains("old 69")
        })
        .await;
    // The timestamp format of config.toml: HH:MM:SS.
    let row = screen.lines().find(|l| l.contains("old 69")).expect("row");
    let time = row.split('│').nth(1).expect("messages column").trim_start();
    let bytes = time.as_bytes();
    assert!(
        bytes.len() > 8 && bytes[2] == b':' && bytes[5] == b':' && bytes[8] == b' ',
        "{row}"
    );
    assert!(!screen.contains("old 59"), "{screen}");

    // PageUp past the top fetches older messages until there are none.
    for _ in 0..12 {
        tmux.keys(&["PPage"]);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tmux.wait_for("the beginning of the room's history", |s| {
        s.contains("no more history")
    })
    .await;
    // A page down from the very top shows the oldest messages, each once.
    tmux.keys(&["NPage"]);
    let screen = tmux
        .wait_for("the oldest messages", |s| {
            s.contains("old 0") && s.contains("old 1")
        })
        .await;
    let ones = screen
        .lines()
        .filter(|l| l.contains("<carol> old 1 "))
        .count();
    assert_eq!(ones, 1, "{screen}");
    // Back to the bottom.
    for _ in 0..40 {
        tmux.keys(&["NPage"]);
    }
    tmux.wait_for("the newest line again", |s| s.contains("old 69"))
        .await;

    // A paste of 8 lines asks first; y sends them in order.
    let pasted: String = (1..=8).map(|i| format!("pasted {i}\n")).collect();
    tmux.run(&["set-buffer", &pasted]);
    tmux.run(&["paste-buffer", "-p", "-t", "t"]);
    tmux.wait_for("the paste question", |s| {
        last_line(s).starts_with("send 8 lines? (y/n)")
    })
    .await;
    tmux.keys(&["y"]);
    for i in 1..=8 {
        let line = format!("#lobby <dave> pasted {i}");
        assert!(hear(&mut carol_out, &line).await, "carol missed {line}");
    }

    // A typed line, then quit; the input history file is private.
    tmux.keys(&["-l", "remember me"]);
    tmux.keys(&["Enter"]);
    assert!(hear(&mut carol_out, "#lobby <dave> remember me").await);
    tmux.keys(&["C-d"]);
    tmux.wait_for("the first exit", |s| s.contains("FIRST=0"))
        .await;
    let history = xdg.join("natter").join("input_history");
    let text = std::fs::read_to_string(&history).expect("history file");
    assert!(text.contains("#lobby\tremember me"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&history)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restart with a broken config: Up brings the line back; the mistake is reported.
    std::fs::write(xdg.join("natter").join("config.toml"), "bell = loud\n").expect("config");
    std::fs::write(dir.path().join("go"), "").expect("go");
    tmux.wait_for("the second start", |s| {
        last_line(s).starts_with("[#lobby] >")
    })
    .await;
    tmux.keys(&["Up"]);
    tmux.wait_for("the line from the last run", |s| {
        last_line(s).starts_with("[#lobby] > remember me")
    })
    .await;
    tmux.keys(&["M-1"]);
    tmux.wait_for("the config mistake in the server buffer", |s| {
        s.contains("config.toml line 1: ")
            && s.contains("using the defaults")
            && last_line(s).starts_with("[server] >")
    })
    .await;
    tmux.keys(&["C-c"]);
    tmux.keys(&["C-d"]);
    tmux.wait_for("the second exit", |s| s.contains("SECOND=0"))
        .await;
    drop(carol_in);
    let _ = timeout(T, carol.wait()).await;
    srv.stop().await;
}
