//! A throwaway Redis server for tests: Debian's `redis-server` on a free loopback port,
//! without persistence, in a temporary directory; killed on drop.
//!
//! When `redis-server` is missing, [`TestRedis::start`] returns `None` after saying why,
//! and the test skips; with `NATTER_REQUIRE_ENGINES=1` (as CI sets it) that is a failure
//! instead. [`TestRedis::stop`] and [`TestRedis::restart`] let a test take the server
//! away and bring it back on the same port, empty (as after a crash without
//! persistence).
#![allow(dead_code, missing_docs)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest the server may take to answer `PING`.
const READY: Duration = Duration::from_secs(20);

/// A running (or, between [`TestRedis::stop`] and [`TestRedis::restart`], stopped)
/// Redis server on 127.0.0.1, without password.
pub struct TestRedis {
    /// The server process, while it runs.
    child: Option<Child>,
    /// The `redis-server` binary.
    binary: PathBuf,
    /// Its working directory and log; removed on drop.
    dir: tempfile::TempDir,
    /// The port it listens on, kept across restarts.
    pub port: u16,
}

/// Skips (returning `None` from the caller) or, under `NATTER_REQUIRE_ENGINES=1`, fails.
fn unavailable(why: &str) -> Option<TestRedis> {
    if std::env::var("NATTER_REQUIRE_ENGINES").is_ok_and(|v| v == "1") {
        panic!("Redis is required (NATTER_REQUIRE_ENGINES=1) but {why}");
    }
    eprintln!("SKIPPED: Redis tests need a local redis-server, but {why}");
    None
}

/// `name` on PATH, else in /usr/bin or /usr/sbin.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        ["/usr/bin", "/usr/sbin"]
            .iter()
            .map(|d| PathBuf::from(d).join(name))
            .find(|p| p.is_file())
    })
}

/// A port nobody on 127.0.0.1 listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestRedis {
    /// Starts a server, or returns `None` (after a notice) when `redis-server` is not
    /// installed and not required.
    pub async fn start() -> Option<TestRedis> {
        let Some(binary) = find_binary("redis-server") else {
            return unavailable("redis-server was not found on PATH, /usr/bin or /usr/sbin");
        };
        let dir = tempfile::Builder::new()
            .prefix("natter-redis")
            .tempdir()
            .expect("temporary directory");
        let mut server = TestRedis {
            child: None,
            binary,
            dir,
            port: free_port(),
        };
        server.spawn().await;
        Some(server)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, as a crash) and waits for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it still runs),
    /// and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Starts `redis-server` on `self.port` and waits, bounded, until it answers `PING`.
    /// Retries a few times when the port is still held (just after a stop).
    async fn spawn(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            let log = File::options()
                .create(true)
                .append(true)
                .open(self.dir.path().join("log"))
                .expect("server log");
            let child = Command::new(&self.binary)
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--daemonize", "no"])
                .arg("--dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("server log"))
                .stderr(log)
                .spawn()
                .expect("start redis-server");
            self.child = Some(child);
            match self.wait_ready(deadline).await {
                Ok(()) => return,
                Err(exited) if Instant::now() < deadline => {
                    // Most likely the port was not free yet; try again shortly.
                    self.child = None;
                    eprintln!("redis-server exited early ({exited}); starting it again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(exited) => panic!(
                    "redis-server did not become ready ({exited}); its log:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Waits until the server answers `PING` with `PONG`, or fails with why not: the
    /// process exited, or `deadline` passed.
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            let child = self.child.as_mut().expect("a started server");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("no PONG in time".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether a Redis server on `port` answers a RESP `PING` with `+PONG`, within a second.
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        tcp.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 64];
        while !answer.ends_with(b"\r\n") {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        Some(answer.starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
