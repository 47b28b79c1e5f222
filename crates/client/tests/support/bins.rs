//! The real binaries for end-to-end tests: commands without the test environment's
//! natter settings, and the server binary (built if missing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

/// Upper bound for building the server binary when it is missing.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Upper bound for a started server's first lines.
const WAIT: Duration = Duration::from_secs(20);

/// Environment variables of either binary that must not leak in from the test's environment.
const SCRUBBED_ENV: &[&str] = &[
    "NATTER_SERVER",
    "NATTER_USER",
    "NATTER_PASSWORD",
    "NATTER_CONFIG",
    "NATTER_LISTEN",
    "NATTER_DATA_DIR",
    "NATTER_TLS_CERT",
    "NATTER_TLS_KEY",
    "NATTER_PLAINTEXT",
    "NATTER_CA_CERT",
    "NATTER_STRICT_TRUST",
    "NATTER_KNOWN_SERVERS",
];

/// A command for `program` without any natter settings from the test's environment,
/// killed if the test drops it.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// The `natter-server` binary next to the `natter` binary under test, brought up to date
/// once per test process (a no-op when it is): `cargo test -p natter-client` alone does
/// not rebuild another package's binary, and a stale server would test old behaviour.
pub async fn server_binary() -> PathBuf {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let client = Path::new(env!("CARGO_BIN_EXE_natter"));
            let server =
                client.with_file_name(format!("natter-server{}", std::env::consts::EXE_SUFFIX));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
            let status = timeout(
                BUILD_TIMEOUT,
                Command::new(cargo)
                    .args(["build", "-p", "natter-server", "--bin", "natter-server"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .kill_on_drop(true)
                    .status(),
            )
            .await
            .expect("building natter-server in time")
            .expect("cargo runs");
            assert!(status.success(), "building natter-server failed: {status}");
            assert!(server.exists(), "no server binary at {}", server.display());
            server
        })
        .await
        .clone()
}

/// Creates the account `user` with `password` on the server at `addr` with a plain
/// `natter` client that registers and leaves at once; it also pins the server's
/// certificate in `known_servers`.
pub async fn create_account(known_servers: &Path, addr: &str, user: &str, password: &str) {
    let status = timeout(
        Duration::from_secs(20),
        command(env!("CARGO_BIN_EXE_natter"))
            .args(["--server", addr, "--user", user, "--register", "--plain"])
            .arg("--known-servers")
            .arg(known_servers)
            .env("NATTER_PASSWORD", password)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status(),
    )
    .await
    .expect("the account is created in time")
    .expect("the client runs");
    assert!(status.success(), "creating {user}: {status}");
}

/// Starts the real server binary (TLS with a self-signed certificate, state in `dir`)
/// listening on `listen`: the process, its address and its certificate's fingerprint.
pub async fn start_server_on(dir: &Path, listen: &str) -> (tokio::process::Child, String, String) {
    let mut server = command(server_binary().await)
        .arg("--listen")
        .arg(listen)
        .arg("--web-listen")
        .arg("off")
        .arg("--irc-listen")
        .arg("off")
        // Room for the pastes of the type-ahead test (the default burst is 10 messages).
        .arg("--message-burst")
        .arg("100")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let mut server_out = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let line = timeout(WAIT, server_out.next_line())
        .await
        .expect("listening line in time")
        .expect("readable")
        .expect("a line");
    let addr = line
        .strip_prefix("natter-server listening on ")
        .expect("listening line")
        .to_string();
    let mut fingerprint = None;
    for _ in 0..10 {
        let line = timeout(WAIT, server_out.next_line())
            .await
            .expect("start-up lines in time")
            .expect("readable")
            .expect("a line");
        if let Some(fp) = line.strip_prefix("TLS certificate SHA-256 fingerprint: ") {
            fingerprint = Some(fp.to_string());
            break;
        }
    }
    let fingerprint = fingerprint.expect("the server prints its fingerprint");
    // Keep draining: the server prints more after starting, and a closed pipe would stop it.
    tokio::spawn(async move { while let Ok(Some(_)) = server_out.next_line().await {} });
    (server, addr, fingerprint)
}
