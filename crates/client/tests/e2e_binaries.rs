//! End to end: the real `natter-server` and `natter` binaries in plain mode, with a
//! temporary data directory. Bob waits with stdin open; Alice says something publicly and
//! privately and closes her stdin; Bob must see it all, Alice must leave cleanly.
//!
//! The main scenario runs over TLS with default settings: the server's self-signed
//! certificate is pinned on first use by Bob (with a notice on stderr) in a temporary
//! known-servers file, which Alice then uses. One case runs with `--plaintext` on both
//! sides; one checks that a client without it refuses a plaintext server. Clients always
//! get `--known-servers` in the temp dir (and `XDG_CONFIG_HOME` there too, as a guard), so
//! the user's real config is never touched.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

mod support;

use support::bins::{command, server_binary};

/// Upper bound for every wait on a process.
const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// A child process that is killed when the guard goes away, on every path.
struct Proc {
    /// For messages.
    name: String,
    /// The process.
    child: tokio::process::Child,
    /// Its stdout, line by line (taken out by tests that read it).
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    /// Its stdin, while open.
    stdin: Option<ChildStdin>,
    /// Where its stderr goes, shown if the test fails.
    stderr_path: PathBuf,
    /// Every stdout line read so far, for failure messages.
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().map(|out| BufReader::new(out).lines());
        let stdin = child.stdin.take();
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stdin,
            stderr_path,
            seen: Vec::new(),
        }
    }

    /// The next stdout line; `None` at its end.
    async fn next_line(&mut self) -> Option<String> {
        let name = self.name.clone();
        let lines = self.stdout.as_mut().expect("stdout piped");
        let line = timeout(T, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name}: no output line within {T:?}; saw {:?}", self.seen))
            .unwrap_or_else(|e| panic!("{name}: cannot read stdout: {e}"));
        if let Some(l) = &line {
            self.seen.push(l.clone());
        }
        line
    }

    /// Reads lines until one satisfies `pred`; returns it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..1000 {
            match self.next_line().await {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "{}: stdout ended before {what}; saw {:?}; stderr: {}",
                    self.name,
                    self.seen,
                    self.stderr()
                ),
            }
        }
        panic!("{}: too many lines before {what}", self.name);
    }

    async fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        timeout(T, async {
            stdin.write_all(text.as_bytes()).await?;
            stdin.flush().await
        })
        .await
        .expect("stdin write in time")
        .expect("stdin write");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit, reading (and keeping) the rest of its stdout.
    async fn wait(&mut self) -> ExitStatus {
        while self.next_line().await.is_some() {}
        let name = self.name.clone();
        timeout(T, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name} did not exit within {T:?}"))
            .expect("wait for exit")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("--- {} stderr ---\n{}", self.name, self.stderr());
        }
    }
}

/// A running server and what it printed at start.
struct StartedServer {
    /// The process, kept for its guard (killed on drop).
    _proc: Proc,
    /// `HOST:PORT` it listens on.
    addr: String,
    /// The certificate fingerprint it printed; `None` in plaintext mode.
    fingerprint: Option<String>,
    /// `HOST:PORT` of its web interface.
    web: String,
    /// The generated operator password it printed (TLS mode; first start only).
    operator_password: Option<String>,
}

/// Starts the real server on a free port with its data in `dir/data`; TLS unless
/// `plaintext`.
async fn start_server(dir: &Path, plaintext: bool) -> StartedServer {
    let mut cmd = command(server_binary().await);
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--web-listen")
        .arg("127.0.0.1:0")
        .arg("--irc-listen")
        .arg("off")
        .arg("--data-dir")
        .arg(dir.join("data"));
    if plaintext {
        cmd.arg("--plaintext");
    }
    let mut proc = Proc::spawn("natter-server", cmd, dir);
    let listening = proc
        .wait_for("the listening line", |l| {
            l.starts_with("natter-server listening on ")
        })
        .await;
    let addr = listening
        .trim_start_matches("natter-server listening on ")
        .trim()
        .to_string();
    let web_line = proc
        .wait_for("the web console line", |l| l.starts_with("web console on "))
        .await;
    let web = web_line
        .trim_start_matches("web console on http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let fingerprint = if plaintext {
        None
    } else {
        let line = proc
            .wait_for("the fingerprint", |l| {
                l.starts_with("TLS certificate SHA-256 fingerprint: ")
            })
            .await;
        Some(
            line.trim_start_matches("TLS certificate SHA-256 fingerprint: ")
                .to_string(),
        )
    };
    let operator_password = proc
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("operator password (shown once; "))
        .and_then(|rest| rest.rsplit(' ').next())
        .map(str::to_string);
    StartedServer {
        _proc: proc,
        addr,
        fingerprint,
        web,
        operator_password,
    }
}

/// One HTTP/1.1 request to the web interface; returns the status and body.
async fn http(web: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut tcp = timeout(T, tokio::net::TcpStream::connect(web))
        .await
        .expect("connect in time")
        .expect("connect to the web interface");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    timeout(T, tcp.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_server_binary_serves_the_web_console_and_shows_its_password_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), false).await;
    let password = server
        .operator_password
        .clone()
        .expect("the first start prints a generated operator password");
    assert_eq!(password.len(), 24, "{password}");
    assert_eq!(
        http(&server.web, "GET", "/healthz", "").await,
        (200, "ok\n".to_string())
    );
    let wrong = http(
        &server.web,
        "POST",
        "/api/admin/login",
        r#"{"password":"guess"}"#,
    )
    .await;
    assert_eq!(wrong.0, 401);
    let login = format!(r#"{{"password":"{password}"}}"#);
    let (status, body) = http(&server.web, "POST", "/api/admin/login", &login).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("csrf"), "{body}");
    drop(server);

    // The second start uses the stored hash and prints no password.
    let again = start_server(dir.path(), false).await;
    assert_eq!(again.operator_password, None);
    let (status, _) = http(&again.web, "POST", "/api/admin/login", &login).await;
    assert_eq!(status, 200, "the generated password still works");
}

#[tokio::test]
async fn the_server_log_has_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Plaintext: the start-up log then has a warning as well as the "started" line.
    let server = start_server(dir.path(), true).await;
    let deadline = tokio::time::Instant::now() + T;
    let log = loop {
        let log = server._proc.stderr();
        if log.contains("started") {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no start-up log in time: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(log.contains("WARN"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file: {log:?}");
}

/// The known-servers file every client of a test uses.
fn known_servers(dir: &Path) -> PathBuf {
    dir.join("known_servers")
}

/// A plain-mode client that registers `user`, pinning in `dir`'s known-servers file.
fn client(dir: &Path, addr: &str, user: &str) -> Command {
    let mut cmd = command(env!("CARGO_BIN_EXE_natter"));
    cmd.args(["--server", addr, "--user", user, "--register", "--plain"])
        .arg("--known-servers")
        .arg(known_servers(dir))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .env("NATTER_PASSWORD", PASSWORD);
    cmd
}

#[tokio::test]
async fn two_plain_clients_chat_through_the_real_server_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path(), false).await;
    let addr = server.addr.clone();
    let fingerprint = server.fingerprint.clone().expect("a TLS server");
    let known = known_servers(dir.path());

    let mut bob = Proc::spawn("bob", client(dir.path(), &addr, "bob"), dir.path());
    let first = bob.next_line().await;
    assert_eq!(
        first.as_deref(),
        Some("[system] registered and logged in as bob"),
        "bob's stderr: {}",
        bob.stderr()
    );
    // First use: pinned, with a notice on stderr (ssh's accept-new).
    let notice = format!(
        "natter: pinned new server {addr} with fingerprint {fingerprint} (in {})",
        known.display()
    );
    assert!(
        bob.stderr().lines().any(|l| l == notice),
        "bob's stderr lacks {notice:?}: {}",
        bob.stderr()
    );
    let pinned = std::fs::read_to_string(&known).expect("known servers written");
    assert!(
        pinned.lines().any(|l| l == format!("{addr} {fingerprint}")),
        "{pinned}"
    );

    let mut alice = Proc::spawn("alice", client(dir.path(), &addr, "alice"), dir.path());
    alice.write_stdin("hello all\n/msg bob psst\n").await;
    alice.close_stdin();

    bob.wait_for("alice's join", |l| l == "[join] #lobby alice")
        .await;
    bob.wait_for("alice's public message", |l| {
        l == "#lobby <alice> hello all"
    })
    .await;
    bob.wait_for("alice's private message", |l| l == "*alice -> bob* psst")
        .await;

    let status = alice.wait().await;
    assert!(
        status.success(),
        "alice exited with {status}; stdout {:?}; stderr {}",
        alice.seen,
        alice.stderr()
    );
    assert_eq!(
        alice.seen.first().map(String::as_str),
        Some("[system] registered and logged in as alice")
    );
    for want in ["#lobby <alice> hello all", "*alice -> bob* psst"] {
        assert!(
            alice.seen.iter().any(|l| l == want),
            "alice did not see her own {want:?}: {:?}",
            alice.seen
        );
    }
    assert_eq!(alice.seen.last().map(String::as_str), Some("[bye] quit"));
    // Alice used Bob's pin: nothing new, nothing said.
    assert!(
        alice.stderr().trim().is_empty(),
        "alice's stderr: {}",
        alice.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(&known).expect("known servers"),
        pinned,
        "no second pin"
    );

    // Bob leaves by closing stdin, and also exits cleanly.
    bob.close_stdin();
    let status = bob.wait().await;
    assert!(status.success(), "bob exited with {status}: {:?}", bob.seen);
    assert_eq!(bob.seen.last().map(String::as_str), Some("[bye] quit"));
    assert!(
        !dir.path().join("xdg-config").exists(),
        "the default config directory was not used"
    );
    drop(server);
}

#[tokio::test]
async fn plaintext_on_both_sides_works_with_a_warning_and_login_failure_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path(), true).await;

    // No such account, and no --register: plain mode asks nothing.
    let mut cmd = command(env!("CARGO_BIN_EXE_natter"));
    cmd.args([
        "--server",
        &server.addr,
        "--user",
        "nobody",
        "--plain",
        "--plaintext",
    ])
    .arg("--known-servers")
    .arg(known_servers(dir.path()))
    .env("NATTER_PASSWORD", PASSWORD);
    let mut nobody = Proc::spawn("nobody", cmd, dir.path());
    let status = nobody.wait().await;
    assert_eq!(status.code(), Some(1), "stdout {:?}", nobody.seen);
    assert_eq!(nobody.seen.len(), 1, "{:?}", nobody.seen);
    assert!(
        nobody.seen[0].starts_with("[error] ") && nobody.seen[0].ends_with("(auth_failed)"),
        "{:?}",
        nobody.seen
    );
    assert!(
        nobody.stderr().lines().any(|l| l
            == "natter: WARNING: --plaintext: your password and messages cross the network unencrypted"),
        "{}",
        nobody.stderr()
    );

    // The environment variable works like the flag; a registration succeeds.
    let mut cmd = client(dir.path(), &server.addr, "plainbob");
    cmd.env("NATTER_PLAINTEXT", "true");
    let mut bob = Proc::spawn("plainbob", cmd, dir.path());
    bob.close_stdin();
    let status = bob.wait().await;
    assert!(
        status.success(),
        "{status}: {:?} {}",
        bob.seen,
        bob.stderr()
    );
    assert_eq!(
        bob.seen.first().map(String::as_str),
        Some("[system] registered and logged in as plainbob")
    );
    assert!(bob.stderr().contains("--plaintext"), "{}", bob.stderr());
    assert!(
        !known_servers(dir.path()).exists(),
        "nothing pinned in plaintext"
    );
    drop(server);
}

#[tokio::test]
async fn a_client_without_plaintext_refuses_a_plaintext_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path(), true).await;
    let mut eve = Proc::spawn("eve", client(dir.path(), &server.addr, "eve"), dir.path());
    let status = eve.wait().await;
    assert_eq!(status.code(), Some(1), "stdout {:?}", eve.seen);
    assert!(eve.seen.is_empty(), "{:?}", eve.seen);
    let err = eve.stderr();
    assert!(
        err.contains(&format!(
            "natter: TLS handshake with {} failed: ",
            server.addr
        )) && err.contains(
            "if the server runs with --plaintext (local testing only), connect with --plaintext"
        ),
        "{err}"
    );
    assert!(!known_servers(dir.path()).exists(), "nothing pinned");
    drop(server);
}

#[tokio::test]
async fn a_changed_certificate_is_refused_by_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path(), false).await;
    let fingerprint = server.fingerprint.clone().expect("a TLS server");
    // A pin from "before the reinstall", on line 2.
    let known = known_servers(dir.path());
    let old = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    std::fs::write(&known, format!("# mine\n{} {old}\n", server.addr)).expect("write pin");
    let mut mallory = Proc::spawn(
        "mallory",
        client(dir.path(), &server.addr, "mallory"),
        dir.path(),
    );
    let status = mallory.wait().await;
    assert_eq!(status.code(), Some(1), "stdout {:?}", mallory.seen);
    assert!(mallory.seen.is_empty(), "{:?}", mallory.seen);
    let err = mallory.stderr();
    for needle in [
        format!(
            "natter: WARNING: THE TLS CERTIFICATE OF {} HAS CHANGED!",
            server.addr
        ),
        old.to_string(),
        fingerprint,
        format!("remove line 2 of {} and connect again", known.display()),
    ] {
        assert!(err.contains(&needle), "lacks {needle:?}:\n{err}");
    }
    drop(server);
}

#[tokio::test]
async fn plain_mode_without_a_user_or_password_explains_what_to_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = command(env!("CARGO_BIN_EXE_natter"));
    cmd.args(["--plain", "--server", "127.0.0.1:9"]);
    let mut p = Proc::spawn("no-user", cmd, dir.path());
    let status = p.wait().await;
    assert_eq!(status.code(), Some(1));
    let err = p.stderr();
    assert!(
        err.contains("--user") && err.contains("NATTER_USER"),
        "{err}"
    );
}

/// `server` and `user` in config.toml stand in for `--server` and `--user` when neither
/// the command line nor the environment gives them; the command line still wins.
#[tokio::test]
async fn the_config_file_gives_the_default_server_and_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_server(dir.path(), true).await;
    let xdg = dir.path().join("xdg-config");
    std::fs::create_dir_all(xdg.join("natter")).expect("config dir");
    std::fs::write(
        xdg.join("natter").join("config.toml"),
        format!("server = \"{}\"\nuser = \"cfguser\"\n", server.addr),
    )
    .expect("config");
    let run = |args: &[&str]| {
        let mut cmd = command(env!("CARGO_BIN_EXE_natter"));
        cmd.args(args)
            .args(["--plain", "--plaintext", "--register"])
            .arg("--known-servers")
            .arg(known_servers(dir.path()))
            .env("XDG_CONFIG_HOME", &xdg)
            .env("NATTER_PASSWORD", PASSWORD);
        cmd
    };
    let mut from_config = Proc::spawn("cfguser", run(&[]), dir.path());
    from_config.close_stdin();
    let status = from_config.wait().await;
    assert!(status.success(), "{status}: {}", from_config.stderr());
    assert_eq!(
        from_config.seen.first().map(String::as_str),
        Some("[system] registered and logged in as cfguser")
    );
    // The command line wins over the file.
    let mut named = Proc::spawn("flaguser", run(&["--user", "flaguser"]), dir.path());
    named.close_stdin();
    assert!(named.wait().await.success(), "{}", named.stderr());
    assert_eq!(
        named.seen.first().map(String::as_str),
        Some("[system] registered and logged in as flaguser")
    );
    drop(server);
}
