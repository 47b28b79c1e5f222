//! A throwaway PostgreSQL server for tests: `initdb` in a temporary directory, `postgres`
//! on a free loopback port, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root, so as root both run as the `postgres` user through
//! `runuser` (the directory is handed to that user). When the binaries or `runuser` are
//! missing, [`TestPostgres::start`] returns `None` after saying why, and the test skips;
//! with `NATTER_REQUIRE_ENGINES=1` (as CI sets it) that is a failure instead.
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest the server may take to accept connections.
const READY: Duration = Duration::from_secs(60);

/// A running PostgreSQL server, superuser `postgres` with trust authentication on
/// 127.0.0.1 only.
pub struct TestPostgres {
    /// The server process (or `runuser` around it), while it runs.
    child: Option<Child>,
    /// The data directory and log; removed after the server stops.
    dir: Option<tempfile::TempDir>,
    /// The port it listens on, kept across [`TestPostgres::start_again`].
    pub port: u16,
    /// Databases made so far, naming the next.
    made: AtomicUsize,
    /// The `postgres` binary.
    postgres: PathBuf,
    /// `runuser`, when running as root.
    runuser: Option<PathBuf>,
}

/// Skips (returning `None` from the caller) or, under `NATTER_REQUIRE_ENGINES=1`, fails.
fn unavailable(why: &str) -> Option<TestPostgres> {
    if std::env::var("NATTER_REQUIRE_ENGINES").is_ok_and(|v| v == "1") {
        panic!("PostgreSQL is required (NATTER_REQUIRE_ENGINES=1) but {why}");
    }
    eprintln!("SKIPPED: PostgreSQL tests need a local PostgreSQL, but {why}");
    None
}

/// `name` on PATH, else in the newest /usr/lib/postgresql/*/bin.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse().ok()?;
                Some((v, e.path().join("bin").join(name)))
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, p)| p)
    })
}

/// A command running `program`, as the `postgres` user through `runuser` when given.
fn command(runuser: Option<&Path>, program: &Path) -> Command {
    match runuser {
        Some(runuser) => {
            let mut c = Command::new(runuser);
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A port nobody on 127.0.0.1 listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl TestPostgres {
    /// Starts a server, or returns `None` (after a notice) when PostgreSQL is not
    /// installed and not required.
    pub async fn start() -> Option<TestPostgres> {
        TestPostgres::start_with(None).await
    }

    /// Like [`TestPostgres::start`], with TLS on: the certificate chain and key (PEM)
    /// the server presents.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Option<TestPostgres> {
        TestPostgres::start_with(Some((cert_pem, key_pem))).await
    }

    async fn start_with(tls: Option<(&str, &str)>) -> Option<TestPostgres> {
        let (Some(initdb), Some(postgres)) = (find_binary("initdb"), find_binary("postgres"))
        else {
            return unavailable(
                "initdb or postgres was not found on PATH or in /usr/lib/postgresql",
            );
        };
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let runuser = if root {
            match find_binary("runuser").or_else(|| {
                let p = PathBuf::from("/usr/sbin/runuser");
                p.is_file().then_some(p)
            }) {
                Some(r) => Some(r),
                None => return unavailable("running as root, and runuser was not found"),
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("natter-pg")
            .tempdir()
            .expect("temporary directory");
        let data = dir.path().join("data");
        if root {
            let owned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !owned {
                return unavailable("the directory could not be given to the postgres user");
            }
        }
        let out = command(runuser.as_deref(), &initdb)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(data.join("server.crt"), cert).expect("certificate");
            std::fs::write(data.join("server.key"), key).expect("key");
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("key mode");
            let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
            conf.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
            if root {
                let owned = Command::new("chown")
                    .args(["-R", "postgres:"])
                    .arg(&data)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    owned,
                    "the TLS files could not be given to the postgres user"
                );
            }
        }
        let mut server = TestPostgres {
            child: None,
            dir: Some(dir),
            port: free_port(),
            made: AtomicUsize::new(0),
            postgres,
            runuser,
        };
        server.spawn();
        server.wait_ready().await;
        Some(server)
    }

    /// The temporary directory (data directory `data`, log `log`, socket).
    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the server's directory").path()
    }

    /// Starts `postgres` on the data directory and port, its output appended to the log.
    fn spawn(&mut self) {
        let dir = self.dir().to_path_buf();
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .expect("server log");
        let child = command(self.runuser.as_deref(), &self.postgres)
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&dir)
            // A test database need not survive a power cut.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("server log"))
            .stderr(log_file)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
    }

    /// Waits, bounded, until the server accepts a connection.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            let connected = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls),
            )
            .await;
            if let Ok(Ok(_)) = connected {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "PostgreSQL did not become ready ({exited:?}); its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's log so far (every start of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("log")).unwrap_or_default()
    }

    /// Whether the server runs (it was not stopped with [`TestPostgres::stop`]).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server at once, as a crash would (immediate shutdown: no checkpoint,
    /// connections cut), and waits, bounded, for it to exit. The data directory stays;
    /// [`TestPostgres::start_again`] brings the server back. Idempotent.
    pub fn stop(&mut self) {
        // Immediate shutdown of the postmaster (by its pid: `runuser` may stand between
        // it and our child), then of our child, bounded.
        if self.child.is_none() {
            return;
        }
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same port and data directory (after crash
    /// recovery, with every committed transaction), and waits until it accepts
    /// connections.
    pub async fn start_again(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready().await;
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?connect_timeout=10",
            self.port
        )
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("natter_{}", self.made.fetch_add(1, Ordering::Relaxed) + 1);
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        let conn = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = conn.await;
        self.url(&name)
    }

    /// The server's postmaster pid, from its pid file.
    fn postmaster_pid(&self) -> Option<String> {
        let dir = self.dir.as_ref()?;
        let pid_file = std::fs::read_to_string(dir.path().join("data/postmaster.pid")).ok()?;
        pid_file.lines().next().map(|l| l.trim().to_string())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
        drop(self.dir.take());
    }
}
