//! TLS and server verification against a real natter server running in-process on
//! 127.0.0.1:0 with its self-signed certificate: trust on first use, a changed certificate,
//! `--strict-trust`, `--ca-cert`, the interactive question, and a plaintext server.
//!
//! Every test uses its own temporary known-servers file, never the user's.

use std::path::Path;
use std::time::Duration;

use natter_client::login::Prompter;
use natter_client::trust::{KnownServers, TrustConfig, TrustError, TrustOutcome};
use natter_client::{ClientError, Connection};
use natter_proto::{ClientFrame, ServerFrame};
use natter_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// Upper bound for every awaited event.
mod support;

use support::Running;

const T: Duration = Duration::from_secs(20);

const PASSWORD: &str = "correct horse battery staple";

/// Trust on first use with pins in `dir/known_servers`.
fn tofu(dir: &Path) -> TrustConfig {
    TrustConfig::new(dir.join("known_servers"))
}

/// Answers every question with `answer` and remembers the questions.
struct Answer {
    answer: bool,
    asked: Vec<String>,
}

impl Prompter for Answer {
    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        self.asked.push(question.to_string());
        Ok(self.answer)
    }

    fn password(&mut self, _prompt: &str) -> std::io::Result<String> {
        Err(std::io::Error::other("no password questions expected"))
    }
}

async fn connect(
    server: &str,
    trust: &TrustConfig,
    prompter: Option<&mut dyn Prompter>,
) -> Result<(Connection, TrustOutcome), ClientError> {
    let (conn, hello, outcome) = timeout(T, Connection::connect_tls(server, trust, prompter))
        .await
        .expect("connect_tls finishes in time")?;
    assert!(matches!(hello, ServerFrame::Hello { .. }), "{hello:?}");
    Ok((conn, outcome))
}

/// Sends a public message and waits until it comes back.
async fn chat(conn: &mut Connection, text: &str) {
    conn.send(&ClientFrame::Public {
        id: None,
        room: None,
        text: text.into(),
        client_id: None,
    })
    .await
    .expect("send");
    for _ in 0..100 {
        let frame = timeout(T, conn.recv())
            .await
            .expect("frame in time")
            .expect("readable")
            .expect("still connected");
        if matches!(&frame, ServerFrame::Public { text: t, .. } if t == text) {
            return;
        }
    }
    panic!("own message never came back");
}

fn pins(path: &Path) -> Vec<(String, String)> {
    KnownServers::load(path)
        .expect("known servers readable")
        .entries
        .into_iter()
        .map(|e| (e.server, e.fingerprint))
        .collect()
}

#[tokio::test]
async fn first_use_pins_in_plain_mode_then_the_pin_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(Config::with_data_dir(dir.path().join("data"))).await;
    let trust = tofu(dir.path());
    let fp = srv.fingerprint();

    let (mut alice, outcome) = connect(&srv.server(), &trust, None)
        .await
        .expect("first use is pinned in plain mode");
    assert_eq!(
        outcome,
        TrustOutcome::NewlyPinned {
            fingerprint: fp.clone(),
            file: trust.known_servers.clone(),
        }
    );
    assert_eq!(
        outcome.notice(&srv.server()).as_deref(),
        Some(
            format!(
                "pinned new server {} with fingerprint {fp} (in {})",
                srv.server(),
                trust.known_servers.display()
            )
            .as_str()
        )
    );
    assert_eq!(pins(&trust.known_servers), [(srv.server(), fp.clone())]);
    let ok = alice
        .authenticate("alice", PASSWORD, true)
        .await
        .expect("register over TLS");
    assert!(ok.registered);
    chat(&mut alice, "over tls").await;

    let (mut again, outcome) = connect(&srv.server(), &trust, None)
        .await
        .expect("the pin matches");
    assert_eq!(
        outcome,
        TrustOutcome::Pinned {
            fingerprint: fp.clone()
        }
    );
    assert!(outcome.notice(&srv.server()).is_none());
    again
        .login("alice", PASSWORD, false)
        .await
        .expect("log in over TLS");
    assert_eq!(pins(&trust.known_servers).len(), 1, "no second pin");
    srv.stop().await;
}

#[tokio::test]
async fn a_changed_certificate_is_refused_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let trust = tofu(dir.path());
    let first = Running::start(Config::with_data_dir(&data)).await;
    let (addr, old_fp) = (first.addr, first.fingerprint());
    connect(&first.server(), &trust, None)
        .await
        .expect("pinned");
    first.stop().await;

    // The server is "reinstalled": a new self-signed certificate on the same address.
    std::fs::remove_dir_all(data.join("tls")).expect("remove tls dir");
    let second = Running::restart_on(addr, Config::with_data_dir(&data)).await;
    let new_fp = second.fingerprint();
    assert_ne!(old_fp, new_fp);
    let pinned_before = std::fs::read_to_string(&trust.known_servers).expect("read");

    let err = connect(&second.server(), &trust, None)
        .await
        .err()
        .expect("refused");
    match &err {
        ClientError::Trust(TrustError::Changed {
            server,
            expected,
            presented,
            file,
            lines,
        }) => {
            assert_eq!(server, &second.server());
            assert_eq!(expected, &old_fp);
            assert_eq!(presented, &new_fp);
            assert_eq!(file, &trust.known_servers);
            assert_eq!(lines, &[3], "two header comment lines, then the pin");
        }
        other => panic!("not a changed-certificate error: {other}"),
    }
    let text = err.to_string();
    for needle in [
        "WARNING".to_string(),
        "CHANGED".into(),
        second.server(),
        old_fp.clone(),
        new_fp.clone(),
        format!(
            "remove line 3 of {} and connect again",
            trust.known_servers.display()
        ),
    ] {
        assert!(text.contains(&needle), "lacks {needle}:\n{text}");
    }
    assert_eq!(
        std::fs::read_to_string(&trust.known_servers).expect("read"),
        pinned_before,
        "the pin is left alone"
    );

    // Following the advice (removing the line) makes the new certificate pinnable.
    std::fs::write(&trust.known_servers, "").expect("clear");
    let (_conn, outcome) = connect(&second.server(), &trust, None)
        .await
        .expect("pinned anew");
    assert!(
        matches!(outcome, TrustOutcome::NewlyPinned { fingerprint, .. } if fingerprint == new_fp)
    );
    second.stop().await;
}

#[tokio::test]
async fn strict_trust_refuses_an_unknown_server_without_asking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(Config::with_data_dir(dir.path().join("data"))).await;
    let trust = TrustConfig {
        strict: true,
        ..tofu(dir.path())
    };
    let mut prompter = Answer {
        answer: true,
        asked: Vec::new(),
    };
    for prompter in [None, Some(&mut prompter as &mut dyn Prompter)] {
        let err = connect(&srv.server(), &trust, prompter)
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(&err, ClientError::Trust(TrustError::Unknown { fingerprint, .. }) if *fingerprint == srv.fingerprint()),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("--strict-trust") && text.contains(&srv.fingerprint()),
            "{text}"
        );
    }
    assert!(
        prompter.asked.is_empty(),
        "nothing asked under --strict-trust"
    );
    assert!(!trust.known_servers.exists(), "nothing pinned");

    // A pinned server is still accepted under --strict-trust.
    KnownServers::append(&trust.known_servers, &srv.server(), &srv.fingerprint())
        .expect("pin by hand");
    let (_conn, outcome) = connect(&srv.server(), &trust, None)
        .await
        .expect("pinned server accepted");
    assert!(matches!(outcome, TrustOutcome::Pinned { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn interactive_mode_asks_before_pinning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(Config::with_data_dir(dir.path().join("data"))).await;
    let trust = tofu(dir.path());

    let mut no = Answer {
        answer: false,
        asked: Vec::new(),
    };
    let err = connect(&srv.server(), &trust, Some(&mut no))
        .await
        .err()
        .expect("declined");
    assert!(
        matches!(err, ClientError::Trust(TrustError::Declined { .. })),
        "{err}"
    );
    assert_eq!(no.asked.len(), 1);
    assert!(!trust.known_servers.exists(), "nothing pinned after no");

    let mut yes = Answer {
        answer: true,
        asked: Vec::new(),
    };
    let (mut conn, outcome) = connect(&srv.server(), &trust, Some(&mut yes))
        .await
        .expect("accepted");
    assert_eq!(yes.asked.len(), 1);
    let question = &yes.asked[0];
    assert!(
        question.contains(&srv.server())
            && question.contains(&srv.fingerprint())
            && question.ends_with("Trust this server and remember it? [y/N] "),
        "{question}"
    );
    assert!(matches!(outcome, TrustOutcome::NewlyPinned { .. }));
    assert_eq!(
        pins(&trust.known_servers),
        [(srv.server(), srv.fingerprint())]
    );
    conn.authenticate("dave", PASSWORD, true)
        .await
        .expect("register after trusting");

    // Known now: no question.
    let mut again = Answer {
        answer: false,
        asked: Vec::new(),
    };
    connect(&srv.server(), &trust, Some(&mut again))
        .await
        .expect("pinned");
    assert!(again.asked.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn ca_cert_verifies_the_host_name_without_pinning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let srv = Running::start(Config::with_data_dir(&data)).await;
    let trust = TrustConfig {
        ca_cert: Some(data.join("tls/cert.pem")),
        ..tofu(dir.path())
    };
    let server = format!("localhost:{}", srv.addr.port());
    let (mut conn, outcome) = connect(&server, &trust, None)
        .await
        .expect("verified by the CA");
    assert_eq!(outcome, TrustOutcome::CaCert);
    conn.authenticate("carol", PASSWORD, true)
        .await
        .expect("register");
    assert!(!trust.known_servers.exists(), "no pin with --ca-cert");

    // Another CA: refused, with no fallback to pinning.
    let other = Running::start(Config::with_data_dir(dir.path().join("other"))).await;
    let wrong = TrustConfig {
        ca_cert: Some(dir.path().join("other/tls/cert.pem")),
        ..tofu(dir.path())
    };
    let err = connect(&server, &wrong, None).await.err().expect("refused");
    let text = err.to_string();
    assert!(
        matches!(err, ClientError::Tls { .. }) && text.contains("--ca-cert"),
        "{text}"
    );
    assert!(!trust.known_servers.exists(), "still no pin");

    // A missing CA file is a clear error.
    let missing = TrustConfig {
        ca_cert: Some(dir.path().join("nope.pem")),
        ..tofu(dir.path())
    };
    let err = connect(&server, &missing, None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    other.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn a_tls_client_refuses_a_plaintext_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(Config {
        plaintext: true,
        ..Config::with_data_dir(dir.path().join("data"))
    })
    .await;
    let trust = tofu(dir.path());
    let err = connect(&srv.server(), &trust, None)
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, ClientError::Tls { .. }), "{text}");
    assert!(
        text.starts_with(&format!("TLS handshake with {} failed: ", srv.server())),
        "{text}"
    );
    assert!(
        text.ends_with(
            "if the server runs with --plaintext (local testing only), connect with --plaintext"
        ),
        "{text}"
    );
    assert!(!trust.known_servers.exists());
    srv.stop().await;
}

#[tokio::test]
async fn nothing_but_a_tls_client_hello_reaches_a_plaintext_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // A plaintext server: hello in clear, then record everything the client sends.
    let fake = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        tcp.write_all(
            b"{\"type\":\"hello\",\"server\":\"natter\",\"version\":\"x\",\"protocol\":1}\n",
        )
        .await
        .expect("hello");
        let mut got = Vec::new();
        let _ = timeout(T, tcp.read_to_end(&mut got)).await;
        got
    });
    let trust = tofu(dir.path());
    let err = connect(&addr, &trust, None).await.err().expect("refused");
    assert!(err.to_string().contains("--plaintext"), "{err}");
    let got = timeout(T, fake)
        .await
        .expect("in time")
        .expect("fake server");
    assert_eq!(got.first(), Some(&0x16), "a TLS handshake record first");
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("auth") && !text.contains(PASSWORD),
        "sent in clear: {text:?}"
    );
}

#[tokio::test]
async fn pins_are_per_host_and_port_as_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Running::start(Config::with_data_dir(dir.path().join("data"))).await;
    let trust = tofu(dir.path());
    // A pin for another port of the same host does not count.
    let elsewhere = format!("127.0.0.1:{}", srv.addr.port().wrapping_add(1));
    KnownServers::append(&trust.known_servers, &elsewhere, "AA:BB").expect("pin");
    let (_conn, outcome) = connect(&srv.server(), &trust, None)
        .await
        .expect("pinned on first use");
    assert!(matches!(outcome, TrustOutcome::NewlyPinned { .. }));
    let by_name = format!("localhost:{}", srv.addr.port());
    let (_conn, outcome) = connect(&by_name, &trust, None)
        .await
        .expect("pinned on first use by name");
    assert!(matches!(outcome, TrustOutcome::NewlyPinned { .. }));
    let servers: Vec<String> = pins(&trust.known_servers)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(servers, [elsewhere, srv.server(), by_name]);
    srv.stop().await;
}
