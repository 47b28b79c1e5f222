//! One cluster node for tests: the real `natter-server` binary, plaintext on a free
//! loopback port (and, when asked, its IRC gateway and web interface on others), with its
//! own temporary data directory, sharing a PostgreSQL database and a Redis server with
//! the other nodes. Killed (SIGKILL) on drop; when the test is
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
    /// Where its IRC gateway (plaintext, loopback) accepts clients, when asked for with
    /// [`NodeBuilder::irc`].
    pub irc: Option<SocketAddr>,
    /// Where its web interface (HTTP, loopback) listens, when asked for with
    /// [`NodeBuilder::web`].
    pub web: Option<SocketAddr>,
    /// The operator password the node generated and printed: only the first node
    /// started against a fresh database without `--admin-password` prints one; the
    /// others use it (it is kept in PostgreSQL).
    pub operator_password: Option<String>,
    /// The server process, until killed.
    child: Option<Child>,
    /// Its data directory and log.
    dir: tempfile::TempDir,
}

/// How to start a node: [`Node::builder`], then [`NodeBuilder::spawn`].
pub struct NodeBuilder {
    id: String,
    postgres: String,
    redis: String,
    irc: bool,
    web: bool,
    /// `(flag, value)` pairs: [`TEST_SETTINGS`], overridden or extended by
    /// [`NodeBuilder::setting`].
    settings: Vec<(String, String)>,
}

impl NodeBuilder {
    /// Also serves IRC on a free loopback port (plaintext, as on loopback by default).
    pub fn irc(mut self) -> NodeBuilder {
        self.irc = true;
        self
    }

    /// Also serves the web interface (console, browser chat) on a free loopback port,
    /// over HTTP.
    pub fn web(mut self) -> NodeBuilder {
        self.web = true;
        self
    }

    /// Sets `flag` (e.g. `--message-rate`) to `value`, replacing the test setting of
    /// that flag if there is one (the binary refuses a flag given twice).
    pub fn setting(mut self, flag: &str, value: &str) -> NodeBuilder {
        match self.settings.iter_mut().find(|(f, _)| f == flag) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.settings.push((flag.to_string(), value.to_string())),
        }
        self
    }

    /// Starts the node and waits until it listens on everything asked for.
    pub async fn spawn(self) -> Node {
        let id = self.id.as_str();
        let dir = tempfile::Builder::new()
            .prefix(&format!("natter-node-{id}-"))
            .tempdir()
            .expect("temporary directory");
        let log = std::fs::File::create(dir.path().join("log")).expect("node log");
        let on = |wanted: bool| if wanted { "127.0.0.1:0" } else { "off" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_natter-server"))
            .args(["--plaintext", "--listen", "127.0.0.1:0"])
            .args(["--web-listen", on(self.web), "--irc-listen", on(self.irc)])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--cluster-postgres", &self.postgres])
            .args(["--cluster-redis", &self.redis])
            .args(["--node-id", id])
            .args(self.settings.iter().flat_map(|(f, v)| [f, v]))
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
        // What the binary prints at start, up to its last line (the plaintext warning):
        // the chat address first, then the IRC and web addresses and the generated
        // operator password when there are some. Bounded in lines and time.
        let printed = tokio::time::timeout(START, async {
            let mut printed = Printed::default();
            for _ in 0..100 {
                match stdout.next_line().await {
                    Ok(Some(line)) => {
                        if printed.read(&line) {
                            return Ok(printed);
                        }
                    }
                    _ => return Err(printed),
                }
            }
            Err(printed)
        })
        .await;
        let printed = match printed {
            Ok(Ok(p))
                if p.chat.is_some()
                    && p.irc.is_some() == self.irc
                    && p.web.is_some() == self.web =>
            {
                p
            }
            other => {
                let _ = child.start_kill();
                let status = child.wait().await;
                panic!(
                    "node {id} did not start ({}; exit {status:?}); its log:\n{}",
                    match other {
                        Err(_) => "not everything printed in time".to_string(),
                        Ok(Err(p)) => format!("stdout ended early after {p:?}"),
                        Ok(Ok(p)) => format!("printed {p:?}"),
                    },
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        // Drain the rest of stdout so the node never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Node {
            id: id.to_string(),
            addr: printed.chat.expect("a chat address"),
            irc: printed.irc,
            web: printed.web,
            operator_password: printed.password,
            child: Some(child),
            dir,
        }
    }
}

/// What a node printed on stdout at start.
#[derive(Debug, Default)]
struct Printed {
    chat: Option<SocketAddr>,
    irc: Option<SocketAddr>,
    web: Option<SocketAddr>,
    password: Option<String>,
}

impl Printed {
    /// Takes in one line; true once it was the last line printed at start.
    fn read(&mut self, line: &str) -> bool {
        let addr = |s: &str| s.trim().parse::<SocketAddr>().ok();
        if let Some(rest) = line.strip_prefix("natter-server listening on ") {
            self.chat = addr(rest);
        } else if let Some(rest) = line.strip_prefix("IRC gateway (plaintext) listening on ") {
            self.irc = addr(rest);
        } else if let Some(rest) = line.strip_prefix("web console on http://") {
            self.web = rest.split_once("/console").and_then(|(a, _)| addr(a));
        } else if line.starts_with("operator password (shown once") {
            self.password = line.rsplit_once(": ").map(|(_, p)| p.trim().to_string());
        }
        line.starts_with("WARNING: plaintext mode: passwords")
    }
}

impl Node {
    /// How to start node `id` on the cluster's PostgreSQL database `postgres` and Redis
    /// server `redis`: by default as [`Node::spawn`] does.
    pub fn builder(id: &str, postgres: &str, redis: &str) -> NodeBuilder {
        NodeBuilder {
            id: id.to_string(),
            postgres: postgres.to_string(),
            redis: redis.to_string(),
            irc: false,
            web: false,
            settings: TEST_SETTINGS
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .collect(),
        }
    }

    /// Starts node `id` on the cluster's PostgreSQL database `postgres` and Redis server
    /// `redis`, chat listener only, and waits until it listens.
    pub async fn spawn(id: &str, postgres: &str, redis: &str) -> Node {
        Node::builder(id, postgres, redis).spawn().await
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
