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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use natter_server::Config;
use natter_server::config::Secret;
use tokio::time::timeout;

mod support;

use support::Running;
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

/// Runs `e2e/browser/<script>` against a fresh server and asserts it succeeds.
async fn run_script(script: &str) {
    if !prerequisites() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.admin_password = Some(Secret(ADMIN_PASSWORD.to_string()));
    let (server, web) = Running::start_with_web(config).await;

    // The chat port's self-signed certificate, pinned for the terminal clients (they
    // run with --strict-trust, so nothing else would be accepted).
    let known = dir.path().join("known_servers");
    std::fs::write(
        &known,
        format!("{} {}\n", server.server(), server.fingerprint()),
    )
    .expect("write known servers");

    // stdout and stderr into one file, in the order they were written.
    let log_path = dir.path().join(format!("{script}.log"));
    let log = std::fs::File::create(&log_path).expect("create log");
    let mut cmd = command("node");
    cmd.arg(script)
        .current_dir(scripts_dir())
        .env("WEB_URL", format!("http://{web}"))
        .env("CHAT_ADDR", server.server())
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
    server.stop().await;
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
