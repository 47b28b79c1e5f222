//! Real-browser end to end: the web interface in headless Chromium against the terminal
//! client binary.
//!
//! Each test starts a real server in-process (chat over TLS and the web interface, both
//! on `127.0.0.1:0`, with a temporary data directory and a known operator password) and
//! runs one Node script of `e2e/browser/` (playwright-core driving the Debian `chromium`
//! package) that also starts `natter --plain` clients pinned to the server's
//! certificate. The script must exit with status 0 within [`SCRIPT_TIMEOUT`]; its
//! output is shown when it does not.
//!
//! Needs `npm ci --prefix e2e/browser` and `apt-get install chromium` (`.ci/run` does
//! both). Without them the tests are skipped with a notice saying what to install, like
//! the tmux tests; with `NATTER_REQUIRE_BROWSER=1` (set by `.ci/run`) they fail instead. With `NATTER_SCREENSHOTS=DIR` the
//! scripts also write the screenshots of `docs/screenshots/` to DIR (a relative DIR is
//! taken from the workspace root):
//!
//! ```sh
//! NATTER_SCREENSHOTS=docs/screenshots cargo test -p natter-client --test browser_e2e
//! ```
//!
//! A script can stop and restart the server (same ports, same data directory) through
//! a small control socket at `CONTROL_ADDR`: it sends one command per line and gets one
//! answer line when it is done. `stop` stops the server (gracefully, as on SIGTERM);
//! `start` starts it again with chat and web; `start-chat` starts the chat port only
//! (the web port refuses connections), so that terminal clients can talk while the
//! browser cannot reconnect yet. Answers: `ok CMD` or `error MESSAGE`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use natter_server::config::Secret;
use natter_server::{Config, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

mod support;

use support::bins::command;

/// Upper bound for one script, browser start included (the scripts stop themselves
/// a little earlier).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The operator password the scripts log in with.
const ADMIN_PASSWORD: &str = "operator password for the browser tests";

/// The browser the scripts drive.
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: they are heavy for a small machine.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the scripts and their `node_modules` live.
fn scripts_dir() -> PathBuf {
    workspace().join("e2e/browser")
}

/// Whether Node, the npm packages and Chromium are there. When they are not, says what
/// to install and returns false, or fails if `NATTER_REQUIRE_BROWSER=1`.
fn prerequisites() -> bool {
    let missing = missing_prerequisite();
    let Some(what) = missing else { return true };
    let required = std::env::var("NATTER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(!required, "{what}");
    eprintln!("SKIPPED browser test: {what}");
    false
}

/// The first missing prerequisite, with how to install it.
fn missing_prerequisite() -> Option<String> {
    let dir = scripts_dir();
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        return Some("the browser tests need Node.js (`node` on PATH, version 20 or later)".into());
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(format!(
            "the browser tests need their npm packages in {}: run `npm ci --prefix e2e/browser` \
             in the workspace root",
            dir.join("node_modules").display()
        ));
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "the browser tests need Chromium at {CHROMIUM}: run `apt-get install chromium` \
             (Debian's package; no browser is downloaded)"
        ));
    }
    None
}

/// Upper bound for a graceful stop.
const STOP: Duration = Duration::from_secs(30);

/// A server on fixed addresses that can be stopped and started again on them, with the
/// same configuration (so the same data directory and certificate).
struct Restartable {
    config: Config,
    chat: SocketAddr,
    web: SocketAddr,
    fingerprint: String,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// A listener on `addr` (port 0: any free port) that can be bound again right after
/// the previous one on the same port closed.
fn bind(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket.listen(128).expect("listen")
}

impl Restartable {
    /// Starts on two free loopback ports, chat (TLS) and web (HTTP).
    async fn start(config: Config) -> Restartable {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let chat = bind(any);
        let web = bind(any);
        let mut server = Restartable {
            config,
            chat: chat.local_addr().expect("chat addr"),
            web: web.local_addr().expect("web addr"),
            fingerprint: String::new(),
            running: None,
        };
        server.serve(chat, Some(web)).await;
        server
    }

    async fn serve(&mut self, chat: TcpListener, web: Option<TcpListener>) {
        let server = Server::open(self.config.clone())
            .await
            .expect("open server");
        self.fingerprint = server
            .tls()
            .map(|tls| tls.fingerprint.clone())
            .expect("a TLS server");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_with_web(chat, web, async {
            let _ = stopped.await;
        }));
        self.running = Some((stop, task));
    }

    /// Starts again on the same ports; `with_web: false` leaves the web port closed.
    async fn restart(&mut self, with_web: bool) -> Result<(), String> {
        if self.running.is_some() {
            return Err("the server is running".into());
        }
        let web = with_web.then(|| bind(self.web));
        self.serve(bind(self.chat), web).await;
        Ok(())
    }

    /// Stops gracefully (sessions get `bye`), waiting for the task to end.
    async fn stop(&mut self) -> Result<(), String> {
        let Some((stop, task)) = self.running.take() else {
            return Err("the server is not running".into());
        };
        let _ = stop.send(());
        match timeout(STOP, task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("server task: {e}")),
            Err(_) => Err(format!("the server did not stop within {STOP:?}")),
        }
    }
}

/// Serves the control socket: one command per line, one answer line each.
async fn control(listener: TcpListener, server: Arc<Mutex<Restartable>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let server = server.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let command = line.trim().to_string();
                let result = {
                    let mut server = server.lock().await;
                    match command.as_str() {
                        "stop" => server.stop().await,
                        "start" => server.restart(true).await,
                        "start-chat" => server.restart(false).await,
                        other => Err(format!("unknown command {other:?}")),
                    }
                };
                let answer = match result {
                    Ok(()) => format!("ok {command}\n"),
                    Err(e) => format!("error {e}\n"),
                };
                if write.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Runs `e2e/browser/<script>` against a fresh server and asserts it succeeds.
async fn run_script(script: &str) {
    if !prerequisites() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.admin_password = Some(Secret(ADMIN_PASSWORD.to_string()));
    let server = Restartable::start(config).await;
    let (chat, web, fingerprint) = (server.chat, server.web, server.fingerprint.clone());
    let server = Arc::new(Mutex::new(server));
    let control_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind control");
    let control_addr = control_listener.local_addr().expect("control addr");
    let control_task = tokio::spawn(control(control_listener, server.clone()));

    // The chat port's self-signed certificate, pinned for the terminal clients (they
    // run with --strict-trust, so nothing else would be accepted).
    let known = dir.path().join("known_servers");
    std::fs::write(&known, format!("{chat} {fingerprint}\n")).expect("write known servers");

    // stdout and stderr into one file, in the order they were written.
    let log_path = dir.path().join(format!("{script}.log"));
    let log = std::fs::File::create(&log_path).expect("create log");
    let mut cmd = command("node");
    cmd.arg(script)
        .current_dir(scripts_dir())
        .env("WEB_URL", format!("http://{web}"))
        .env("CHAT_ADDR", chat.to_string())
        .env("CONTROL_ADDR", control_addr.to_string())
        .env("KNOWN_SERVERS", &known)
        .env("NATTER_BIN", env!("CARGO_BIN_EXE_natter"))
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CHROMIUM", CHROMIUM)
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
        .stderr(Stdio::from(log))
        // Its own process group, so that a timeout ends the browser and clients too.
        .process_group(0);
    match std::env::var_os("NATTER_SCREENSHOTS") {
        Some(shots) => {
            cmd.env("NATTER_SCREENSHOTS", workspace().join(shots));
        }
        None => {
            cmd.env_remove("NATTER_SCREENSHOTS");
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let outcome = timeout(SCRIPT_TIMEOUT, child.wait()).await;
    if outcome.is_err()
        && let Some(pid) = child.id()
    {
        // Everything in the script's process group: node, Chromium, the clients.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = timeout(Duration::from_secs(10), child.wait()).await;
    }
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match outcome {
        Err(_) => panic!(
            "node {script} did not finish within {SCRIPT_TIMEOUT:?} and was killed; its \
             output:\n{output}"
        ),
        Ok(status) => {
            let status = status.expect("wait for node");
            assert!(
                status.success(),
                "node {script} failed ({status}); its output:\n{output}"
            );
            println!("--- node {script} ---\n{output}--- end of node {script} ---");
        }
    }
    control_task.abort();
    let mut server = server.lock().await;
    if server.running.is_some() {
        server.stop().await.expect("stop the server");
    }
}

/// The operator console: login, live feed, filters, pause, notice, kick, ban, unban.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_console_in_a_browser_moderates_terminal_clients() {
    run_script("console.mjs").await;
}

/// The browser chat: public and private messages with a terminal user, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_chat_talks_with_a_terminal_client() {
    run_script("chat.mjs").await;
}

/// The browser chat after a server restart: it reconnects by itself with the typed text
/// kept, rejoins its rooms, shows what was said meanwhile once, and sends what was
/// typed while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_chat_reconnects_after_a_server_restart() {
    run_script("reconnect.mjs").await;
}

/// The browser chat's mentions, safe links and input history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_chat_mentions_links_and_input_history() {
    run_script("features.mjs").await;
}
