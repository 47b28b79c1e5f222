//! The real `natter-server` binary, logging at the most verbose level, never writes a
//! password or a password hash: not on registration, login, failed login or shutdown.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{PASSWORD, WAIT};
use natter_client::Connection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args(["--listen", "127.0.0.1:0", "--plaintext", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let first = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("address in time")
        .expect("read")
        .expect("a line");
    let addr = first
        .strip_prefix("natter-server listening on ")
        .expect("address line")
        .to_string();
    // Drain the rest of stdout so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    let (mut c, _) = Connection::connect(&addr).await.expect("connect");
    c.login("alice", PASSWORD, true).await.expect("register");
    let (mut c2, _) = Connection::connect(&addr).await.expect("connect");
    c2.login("alice", PASSWORD, false).await.expect("login");
    let (mut c3, _) = Connection::connect(&addr).await.expect("connect");
    let wrong = "WrongButSecret-123";
    assert!(c3.login("alice", wrong, false).await.is_err());
    drop((c, c2, c3));

    // Graceful stop, then read everything the server logged.
    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("server exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.expect("stderr");
    assert!(
        log.contains("logged in"),
        "the log is verbose enough to matter:\n{log}"
    );
    assert!(log.contains("failed login"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    for secret in [PASSWORD, wrong, "$argon2", "argon2id"] {
        assert!(!log.contains(secret), "log contains {secret:?}:\n{log}");
    }
}
