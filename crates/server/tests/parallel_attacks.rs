//! Attacks made of many requests at once, over real sockets: parallel password guesses,
//! registration used to enumerate names, parallel operator logins, and presence floods
//! made of joins and parts. Each limit must hold under concurrency, not only for
//! requests one after another.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use natter_client::{ClientError, Connection};
use natter_proto::{ClientFrame, ErrorCode, ServerFrame};
use natter_server::Config;
use natter_server::throttle::LoginLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Small delays so the documented schedule is quick to run: 40 ms doubling to 160 ms.
fn quick_limits() -> LoginLimits {
    LoginLimits {
        base_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(160),
        ..Config::default().logins
    }
}

/// The documented schedule: the total wait of `n` failures one after another, where
/// the k-th attempt (from 0) waits for `k - free` failures beyond the free ones.
fn schedule(limits: &LoginLimits, n: u32, free: u32) -> Duration {
    (0..n)
        .map(|k| match k.saturating_sub(free) {
            0 => Duration::ZERO,
            f => limits
                .base_delay
                .saturating_mul(2u32.saturating_pow(f - 1))
                .min(limits.max_delay),
        })
        .sum()
}

/// A TCP connection to `addr` from the loopback address `from` (e.g. 127.0.0.2).
async fn tcp_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(from, 0)).expect("bind source");
    tokio::time::timeout(WAIT, sock.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A typed client connected from the loopback address `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> Connection {
    let tcp = tcp_from(from, addr).await;
    let (conn, _hello) = tokio::time::timeout(WAIT, Connection::over(Box::new(tcp)))
        .await
        .expect("hello in time")
        .expect("hello");
    conn
}

fn refused_with(r: &Result<String, ClientError>, want: ErrorCode) -> bool {
    matches!(r, Err(ClientError::Refused { code, .. }) if *code == want)
}

/// Runs `n` logins (or registrations) at once, each on its own connection from
/// 127.0.0.1, and returns when the last is answered, with every answer.
async fn at_once(
    addr: SocketAddr,
    n: usize,
    user: impl Fn(usize) -> String,
    password: &'static str,
    register: bool,
) -> Vec<Result<String, ClientError>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(connect(addr).await);
    }
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let name = user(i);
            tokio::spawn(async move { c.login(&name, password, register).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("answered in time")
                .expect("task"),
        );
    }
    answers
}

#[tokio::test]
async fn parallel_guesses_wait_like_sequential_ones_and_the_owner_elsewhere_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = quick_limits();
    let config = Config {
        logins: limits.clone(),
        auth_timeout: Duration::from_secs(120),
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    drop(register(srv.addr, "alice").await);

    let guesses = 50;
    let addr = srv.addr;
    let start = Instant::now();
    let attack = tokio::spawn(async move {
        at_once(addr, guesses, |_| "alice".into(), "wrong guess", false).await
    });
    // The owner logs in from another address while the guesses are queued.
    let mut owner = connect_from([127, 0, 0, 2].into(), srv.addr).await;
    let asked = Instant::now();
    owner
        .login("alice", PASSWORD, false)
        .await
        .expect("the owner logs in during the attack");
    let owner_waited = asked.elapsed();
    let answers = attack.await.expect("attack task");
    let attack_took = start.elapsed();

    assert!(
        answers
            .iter()
            .all(|r| refused_with(r, ErrorCode::AuthFailed)),
        "{answers:?}"
    );
    // 50 guesses at once cost at least what 50 guesses one after another cost.
    let documented = schedule(&limits, guesses as u32, 0);
    assert!(
        attack_took >= documented,
        "50 parallel guesses took {attack_took:?}, the schedule says at least {documented:?}"
    );
    // The owner was not queued behind the guesses: answered before the attack ended,
    // in less time than the schedule's remaining waits.
    assert!(
        owner_waited < documented / 2,
        "the owner waited {owner_waited:?} (attack {attack_took:?})"
    );
}

#[tokio::test]
async fn registration_attempts_on_taken_names_are_delayed_like_failed_logins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = LoginLimits {
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        ..Config::default().logins
    };
    let config = Config {
        logins: limits.clone(),
        auth_timeout: Duration::from_secs(120),
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_with(config).await;
    let names: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    for name in &names {
        drop(register(srv.addr, name).await);
    }

    // Twenty probes of taken names at once from one address.
    let probe = names.clone();
    let start = Instant::now();
    let answers = at_once(
        srv.addr,
        20,
        move |i| probe[i].clone(),
        "new password",
        true,
    )
    .await;
    let took = start.elapsed();
    assert!(
        answers
            .iter()
            .all(|r| refused_with(r, ErrorCode::UsernameTaken)),
        "{answers:?}"
    );
    let documented = schedule(&limits, 20, limits.free_per_ip);
    assert!(
        took >= documented,
        "20 probes took {took:?}, the schedule says at least {documented:?}"
    );
    // The probes count for the address's logins too.
    let mut c = connect(srv.addr).await;
    let start = Instant::now();
    let _ = c.login("user0", "wrong guess", false).await;
    assert!(start.elapsed() >= limits.max_delay, "{:?}", start.elapsed());
    // A new name from another address is registered without waiting for them.
    let mut other = connect_from([127, 0, 0, 2].into(), srv.addr).await;
    let start = Instant::now();
    other
        .login("newcomer", PASSWORD, true)
        .await
        .expect("registered");
    assert!(start.elapsed() < documented / 2, "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_connection_probing_taken_names_is_closed_like_one_guessing_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    drop(register(srv.addr, "alice").await);
    let mut c = connect(srv.addr).await;
    for _ in 0..3 {
        send(
            &mut c,
            ClientFrame::Auth {
                id: None,
                user: "alice".into(),
                password: "new password".into(),
                register: true,
            },
        )
        .await;
    }
    let seen = until_closed(&mut c).await;
    let taken = seen
        .iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::UsernameTaken,
                    ..
                }
            )
        })
        .count();
    assert_eq!(taken, 3, "{seen:?}");
    assert!(
        seen.iter()
            .any(|f| matches!(f, ServerFrame::Bye { reason, .. } if reason.contains("too many failed logins"))),
        "{seen:?}"
    );
}

/// Posts `body` to the operator login over a fresh connection; returns the status.
async fn operator_login(web: SocketAddr, body: &str) -> u16 {
    let mut tcp = tokio::time::timeout(WAIT, TcpStream::connect(web))
        .await
        .expect("connect in time")
        .expect("connect");
    let req = format!(
        "POST /api/admin/login HTTP/1.1\r\nHost: {web}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut resp))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn parallel_operator_logins_are_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        admin_password: Some(natter_server::config::Secret("operator secret 1".into())),
        ..plain_config(dir.path())
    };
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");
    let tasks: Vec<_> = (0..40)
        .map(|_| tokio::spawn(operator_login(web, r#"{"password":"guess"}"#)))
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 40, "{statuses:?}");
    // Default delays (250 ms doubling; more than a second is refused at once): only the
    // guesses whose delay is at most a second are checked: 0, 250, 500 ms and 1 s.
    assert!(
        checked <= 4,
        "{checked} of 40 parallel guesses were checked: {statuses:?}"
    );
}

#[tokio::test]
async fn pipelined_joins_and_parts_cannot_flood_a_room_with_presence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start(dir.path()).await;
    let mut watcher = register(srv.addr, "watcher").await;
    let mut bystander = register(srv.addr, "bystander").await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send(b"{\"type\":\"auth\",\"user\":\"mallory\",\"password\":\"correct horse battery\",\"register\":true}\n")
        .await;
    assert!(matches!(raw.frame().await, ServerFrame::AuthOk { .. }));
    raw.skip_lobby_welcome().await;
    until(
        &mut watcher,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "mallory"),
    )
    .await;
    sync(&mut bystander).await;

    // 20 000 part+join pairs of the lobby in one write, read by a task so that the
    // attacker is not dropped as a slow reader before the limit is seen.
    let mut attack = Vec::new();
    for _ in 0..20_000 {
        attack.extend_from_slice(
            b"{\"type\":\"part\",\"room\":\"lobby\"}\n{\"type\":\"join\",\"room\":\"lobby\"}\n",
        );
    }
    let Raw { reader, mut writer } = raw;
    let drain = tokio::spawn(async move {
        let mut reader = reader;
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut all)).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    // The server may close before it read everything; a broken pipe is fine.
    let _ = writer.write_all(&attack).await;
    let answers = drain.await.expect("drain");
    assert!(
        answers.contains("\"rate_limited\""),
        "joins and parts were not limited"
    );
    assert!(
        answers.contains("disconnected for flooding"),
        "the attacker kept going and was not disconnected"
    );

    // Everything the watcher got about mallory: a burst's worth and the final leave.
    let seen = sync(&mut watcher).await;
    let presence = seen
        .iter()
        .filter(|f| {
            matches!(
                f,
                ServerFrame::Presence { .. } | ServerFrame::PresenceSummary { .. }
            )
        })
        .count();
    let burst = Config::default().room_ops.burst as usize;
    assert!(
        presence <= burst + 5,
        "the watcher got {presence} presence frames (burst {burst})"
    );
    // Nobody else was disconnected: both still chat.
    send(
        &mut bystander,
        ClientFrame::Public {
            id: None,
            room: None,
            text: "still here".into(),
            client_id: None,
        },
    )
    .await;
    until(
        &mut watcher,
        |f| matches!(f, ServerFrame::Public { text, .. } if text == "still here"),
    )
    .await;
    sync(&mut bystander).await;
}
