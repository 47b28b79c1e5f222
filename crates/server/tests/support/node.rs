//! One cluster node for tests: the real `natter-server` binary, plaintext on a free
//! loopback port, with its own temporary data directory, sharing a PostgreSQL database
//! and a Redis server with the other nodes. Killed (SIGKILL) on drop; when the test is
//! failing, the end of its log is printed then.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest a node may take to connect to its engines and listen.
const START: Duration = Duration::from_secs(30);

/// Settings that keep tests fast and free of the limits meant for real users.
const TEST_SETTINGS: &[&str] = &[
    "--message-rate",
    "1000",
    "--message-burst",
    "1000",
    "--room-op-rate",
    "100",
    "--room-op-burst",
    "100",
    "--login-delay-ms",
    "1",
    "--history-on-join",
    "200",
    "--shutdown-grace-secs",
    "1",
];

/// A running node.
pub struct Node {
    /// The node's name in the cluster (`--node-id`).
    pub id: String,
    /// Where its chat listener accepts clients.
    pub addr: SocketAddr,
    /// The server process, until killed.
    child: Option<Child>,
    /// Its data directory and log.
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts node `id` on the cluster's PostgreSQL database `postgres` and Redis server
    /// `redis`, and waits until it listens.
    pub async fn spawn(id: &str, postgres: &str, redis: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("natter-node-{id}-"))
            .tempdir()
            .expect("temporary directory");
        let log = std::fs::File::create(dir.path().join("log")).expect("node log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_natter-server"))
            .args(["--plaintext", "--listen", "127.0.0.1:0"])
            .args(["--web-listen", "off", "--irc-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--cluster-postgres", postgres])
            .args(["--cluster-redis", redis])
            .args(["--node-id", id])
            .args(TEST_SETTINGS)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("NATTER_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start natter-server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let log_path = dir.path().join("log");
        let first = tokio::time::timeout(START, async {
            // The address line comes first; anything else before it is skipped (bounded).
            for _ in 0..100 {
                match stdout.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(addr) = line.strip_prefix("natter-server listening on ") {
                            return Some(addr.to_string());
                        }
                    }
                    _ => return None,
                }
            }
            None
        })
        .await;
        let addr = match first {
            Ok(Some(addr)) => addr,
            other => {
                let _ = child.start_kill();
                let status = child.wait().await;
                panic!(
                    "node {id} did not start ({}; exit {status:?}); its log:\n{}",
                    if other.is_err() {
                        "no address in time"
                    } else {
                        "no address line"
                    },
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        // Drain the rest of stdout so the node never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Node {
            id: id.to_string(),
            addr: addr.parse().expect("a socket address"),
            child: Some(child),
            dir,
        }
    }

    /// Kills the node at once (SIGKILL: no goodbye to anyone) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    /// Whether the process has exited by itself (for diagnosis).
    pub fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// The node's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "---- last {} log lines of node {} ----\n{}",
                tail.len(),
                self.id,
                tail.join("\n")
            );
        }
    }
}
