//! Loading, precedence and validation of the configuration.

use clap::Parser;

use super::*;

#[test]
fn defaults_listen_on_all_interfaces() {
    let c = Config::load(&Options::default()).expect("defaults are valid");
    assert_eq!(c.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(c.data_dir, PathBuf::from("natter-data"));
}

#[test]
fn flags_override_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("natter.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:7000\"\ndata_dir = \"/srv/natter\"\nsession_queue = 64\n",
    )
    .expect("write");
    let opts = Options {
        config: Some(path),
        listen: Some("127.0.0.1:7001".into()),
        ..Options::default()
    };
    let c = Config::load(&opts).expect("valid");
    assert_eq!(c.listen.to_string(), "127.0.0.1:7001");
    assert_eq!(c.data_dir, PathBuf::from("/srv/natter"));
    assert_eq!(c.session_queue, 64);
}

#[test]
fn bad_values_are_refused_with_the_option_name() {
    let opts = Options {
        listen: Some("localhost".into()),
        ..Options::default()
    };
    let e = Config::load(&opts).expect_err("bad listen").to_string();
    assert!(e.contains("listen") && e.contains("localhost"), "{e}");
    let opts = Options {
        session_queue: Some(0),
        ..Options::default()
    };
    let e = Config::load(&opts).expect_err("bad queue").to_string();
    assert!(e.contains("session_queue"), "{e}");
}

#[test]
fn web_options() {
    let c = Config::load(&Options::default()).expect("defaults");
    assert_eq!(
        c.web_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:8000")
    );
    let opts = Options {
        web_listen: Some("off".into()),
        admin_password: Some(Secret("a long enough secret".into())),
        ..Options::default()
    };
    let c = Config::load(&opts).expect("valid");
    assert_eq!(c.web_listen, None);
    assert!(
        !format!("{c:?}").contains("long enough"),
        "Debug hides the password"
    );
    let opts = Options {
        web_listen: Some("localhost:80".into()),
        ..Options::default()
    };
    let e = Config::load(&opts).expect_err("bad address").to_string();
    assert!(e.contains("web_listen") && e.contains("off"), "{e}");
    let opts = Options {
        admin_password: Some(Secret("short".into())),
        ..Options::default()
    };
    let e = Config::load(&opts).expect_err("short password").to_string();
    assert!(
        e.contains("admin_password") && !e.contains("short\""),
        "{e}"
    );
}

#[test]
fn web_listener_limits_and_names() {
    let c = Config::load(&Options::default()).expect("defaults");
    assert_eq!(c.web_max_per_ip, 64);
    assert_eq!(c.web_header_timeout, Duration::from_secs(10));
    assert_eq!(c.web_idle_timeout, Duration::from_secs(60));
    assert!(c.web_host.is_empty() && c.metrics_token.is_none());
    let o = Options {
        max_connections_per_ip: Some(5),
        ..Options::default()
    };
    assert_eq!(
        Config::load(&o).expect("valid").web_max_per_ip,
        5,
        "follows the chat cap unless set"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("natter.toml");
    std::fs::write(
        &path,
        "web_max_per_ip = 8\nweb_header_timeout_secs = 3\nweb_idle_timeout_secs = 20\n\
         web_host = [\"Chat.Example.\", \"[2001:db8::1]\", \"192.0.2.7\"]\n\
         metrics_token = \"0123456789abcdef-token\"\n",
    )
    .expect("write");
    let o = Options {
        config: Some(path),
        ..Options::default()
    };
    let c = Config::load(&o).expect("valid");
    assert_eq!(c.web_max_per_ip, 8);
    assert_eq!(c.web_header_timeout, Duration::from_secs(3));
    assert_eq!(c.web_idle_timeout, Duration::from_secs(20));
    assert_eq!(c.web_host, ["chat.example", "2001:db8::1", "192.0.2.7"]);
    assert!(!format!("{c:?}").contains("0123456789"), "Debug hides it");

    let o = Options::try_parse_from([
        "natter-server",
        "--web-host",
        "a.example,b.example",
        "--web-idle-timeout-secs",
        "5",
    ])
    .expect("parses");
    let c = Config::load(&o).expect("valid");
    assert_eq!(c.web_host, ["a.example", "b.example"]);
    assert_eq!(c.web_idle_timeout, Duration::from_secs(5));

    for (o, option) in [
        (
            Options {
                web_host: Some(vec!["chat.example:8000".into()]),
                ..Options::default()
            },
            "web_host",
        ),
        (
            Options {
                web_host: Some(vec!["evil/example".into()]),
                ..Options::default()
            },
            "web_host",
        ),
        (
            Options {
                web_header_timeout_secs: Some(0),
                ..Options::default()
            },
            "web_header_timeout_secs",
        ),
        (
            Options {
                web_idle_timeout_secs: Some(0),
                ..Options::default()
            },
            "web_idle_timeout_secs",
        ),
        (
            Options {
                web_max_per_ip: Some(0),
                ..Options::default()
            },
            "web_max_per_ip",
        ),
        (
            Options {
                metrics_token: Some(Secret("short".into())),
                ..Options::default()
            },
            "metrics_token",
        ),
        (
            Options {
                metrics_token: Some(Secret("a token with spaces in it".into())),
                ..Options::default()
            },
            "metrics_token",
        ),
        (
            Options {
                cluster_postgres: Some(Secret("postgres://db/natter".into())),
                ..Options::default()
            },
            "cluster_redis",
        ),
        (
            Options {
                cluster_redis: Some(Secret("redis://bus/".into())),
                ..Options::default()
            },
            "cluster_postgres",
        ),
        (
            Options {
                cluster_postgres: Some(Secret("mysql://db/natter".into())),
                cluster_redis: Some(Secret("redis://bus/".into())),
                ..Options::default()
            },
            "cluster_postgres",
        ),
        (
            Options {
                node_id: Some("node one".into()),
                ..Options::default()
            },
            "node_id",
        ),
    ] {
        let e = Config::load(&o).expect_err(option).to_string();
        assert!(e.contains(option), "{e}");
    }
    let cmd = <Options as clap::CommandFactory>::command();
    for (id, env) in [
        ("web_max_per_ip", "NATTER_WEB_MAX_PER_IP"),
        ("web_header_timeout_secs", "NATTER_WEB_HEADER_TIMEOUT_SECS"),
        ("web_idle_timeout_secs", "NATTER_WEB_IDLE_TIMEOUT_SECS"),
        ("web_host", "NATTER_WEB_HOST"),
        ("metrics_token", "NATTER_METRICS_TOKEN"),
        ("cluster_postgres", "NATTER_CLUSTER_POSTGRES"),
        ("cluster_postgres_ca", "NATTER_CLUSTER_POSTGRES_CA"),
        ("cluster_redis", "NATTER_CLUSTER_REDIS"),
        ("node_id", "NATTER_NODE_ID"),
    ] {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == id)
            .expect("declared");
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env));
    }
}

#[test]
fn unknown_file_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("natter.toml");
    std::fs::write(&path, "lisen = \"127.0.0.1:7000\"\n").expect("write");
    let opts = Options {
        config: Some(path),
        ..Options::default()
    };
    let e = Config::load(&opts).expect_err("typo").to_string();
    assert!(e.contains("lisen"), "{e}");
}

/// Every frame the server builds, at its largest: the longest names, the id that
/// grows most when escaped, the largest numbers and lists, and the longest message
/// made of characters that grow most when delivered.
#[test]
fn every_frame_the_server_builds_fits_in_one_line_in_the_worst_case() {
    use natter_proto::{
        ErrorCode, FrameId, HistoryEntry, MAX_ID_LEN, MAX_LINE, MAX_NAMES, MAX_ROOMS,
        PresenceEvent, RoomInfo, ServerFrame, encode, neutralize,
    };
    let name = |c: char| c.to_string().repeat(natter_proto::MAX_USERNAME_LEN);
    let id = || Some(FrameId::Str("\u{1}".repeat(MAX_ID_LEN)));
    let names = |n: usize| vec![name('n'); n];
    // DEL becomes U+FFFD (three bytes); '"' and '\\' become two.
    let text = neutralize(&"\u{7f}".repeat(MAX_MESSAGE_BYTES)).into_owned();
    let quote = format!("{}...", "\u{1}".repeat(natter_proto::codec::MAX_QUOTE));
    let frames = [
        ServerFrame::Public {
            msg_id: u64::MAX,
            room: name('r'),
            from: name('f'),
            text: text.clone(),
            ts: u64::MAX,
        },
        ServerFrame::Private {
            msg_id: u64::MAX,
            from: name('f'),
            to: name('t'),
            text: text.clone(),
            ts: u64::MAX,
            late: true,
        },
        ServerFrame::System {
            text: format!("[notice] {text}"),
        },
        ServerFrame::History {
            id: id(),
            room: None,
            with: Some(name('w')),
            messages: vec![HistoryEntry {
                msg_id: u64::MAX,
                from: name('f'),
                to: Some(name('t')),
                text: text.clone(),
                ts: u64::MAX,
            }],
            last: false,
        },
        ServerFrame::Joined {
            id: id(),
            room: name('r'),
            members: names(MAX_NAMES),
            more: u32::MAX,
        },
        ServerFrame::Who {
            id: id(),
            room: name('r'),
            users: names(MAX_NAMES),
            more: u32::MAX,
        },
        ServerFrame::List {
            id: id(),
            users: names(MAX_NAMES),
            more: u32::MAX,
        },
        ServerFrame::Rooms {
            id: id(),
            rooms: vec![
                RoomInfo {
                    name: name('r'),
                    members: u32::MAX,
                };
                MAX_ROOMS
            ],
            more: u32::MAX,
        },
        ServerFrame::PresenceSummary {
            room: name('r'),
            members: u32::MAX,
            joined: names(50),
            joined_more: u32::MAX,
            left: names(50),
            left_more: u32::MAX,
        },
        ServerFrame::Presence {
            room: name('r'),
            user: name('u'),
            event: PresenceEvent::Leave,
            reason: Some(format!("banned by an operator: {quote}")),
            message: None,
        },
        ServerFrame::Queued {
            id: id(),
            msg_id: u64::MAX,
            to: name('t'),
        },
        ServerFrame::Error {
            id: id(),
            code: ErrorCode::TooManyConnections,
            message: format!("not a valid frame: {quote} and some explanation"),
            retry_after_ms: Some(u64::MAX),
        },
    ];
    for f in &frames {
        let line = encode(f).len() - 1;
        assert!(line <= MAX_LINE, "{line} bytes: {:.200}", format!("{f:?}"));
    }
    let too_big = Options {
        max_message_bytes: Some(MAX_MESSAGE_BYTES + 1),
        ..Options::default()
    };
    assert!(Config::load(&too_big).is_err());
}

#[test]
fn plaintext_flag_and_file_key() {
    let o = Options::try_parse_from(["natter-server", "--plaintext"]).expect("parses");
    assert!(Config::load(&o).expect("valid").plaintext);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("natter.toml");
    std::fs::write(&path, "plaintext = true\nmessage_rate = 2.5\n").expect("write");
    let o = Options {
        config: Some(path),
        ..Options::default()
    };
    let c = Config::load(&o).expect("valid");
    assert!(c.plaintext);
    assert_eq!(c.messages.rate, 2.5);
    let o = Options {
        tls_cert: Some("c.pem".into()),
        ..Options::default()
    };
    assert!(Config::load(&o).is_err(), "cert without key is refused");
}

#[test]
fn env_is_read_by_the_flag_parser() {
    // clap reads NATTER_* through `env = ...`; parse an explicit environment-free
    // argument list to show flags alone work, and check the env names are declared.
    let o = Options::try_parse_from(["natter-server", "--listen", "127.0.0.1:1"]).expect("parses");
    assert_eq!(o.listen.as_deref(), Some("127.0.0.1:1"));
    let cmd = <Options as clap::CommandFactory>::command();
    let listen = cmd
        .get_arguments()
        .find(|a| a.get_id() == "listen")
        .expect("listen arg");
    assert_eq!(
        listen.get_env().and_then(|e| e.to_str()),
        Some("NATTER_LISTEN")
    );
}

#[test]
fn irc_listen_defaults_to_6697_on_every_address_and_parses() {
    let c = Config::load(&Options::default()).expect("defaults");
    assert_eq!(
        c.irc_listen.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:6697")
    );
    let o = Options::try_parse_from(["natter-server", "--irc-listen", "127.0.0.1:6667"])
        .expect("parses");
    assert_eq!(
        Config::load(&o)
            .expect("valid")
            .irc_listen
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.0.1:6667")
    );
    let o = Options {
        irc_listen: Some("off".into()),
        ..Options::default()
    };
    assert_eq!(Config::load(&o).expect("valid").irc_listen, None);
    let o = Options {
        irc_listen: Some("irc.example:6697".into()),
        ..Options::default()
    };
    let e = Config::load(&o).expect_err("bad address").to_string();
    assert!(e.contains("irc_listen") && e.contains("off"), "{e}");
}

#[test]
fn irc_options_are_checked() {
    let load = |args: &[&str]| {
        let mut all = vec!["natter-server"];
        all.extend_from_slice(args);
        Config::load(&Options::try_parse_from(all).expect("parses"))
    };
    let c = load(&["--irc-tls", "on", "--irc-server-name", "irc.example.org"]).expect("valid");
    assert_eq!(c.irc_tls, Some(true));
    assert_eq!(c.irc_server_name, "irc.example.org");
    assert_eq!(load(&["--irc-tls", "auto"]).expect("valid").irc_tls, None);
    let e = load(&["--irc-tls", "maybe"]).expect_err("bad").to_string();
    assert!(e.contains("irc_tls"), "{e}");
    let e = load(&["--irc-tls", "on", "--plaintext"])
        .expect_err("no cert")
        .to_string();
    assert!(e.contains("irc_tls"), "{e}");
    let e = load(&["--irc-server-name", "bad name"])
        .expect_err("bad")
        .to_string();
    assert!(e.contains("irc_server_name"), "{e}");
    // Guests without passwords only where nothing crosses a network.
    let e = load(&["--irc-conformance-guests"])
        .expect_err("not loopback")
        .to_string();
    assert!(e.contains("irc_conformance_guests"), "{e}");
    let c = load(&[
        "--irc-conformance-guests",
        "--irc-listen",
        "127.0.0.1:6667",
        "--irc-password",
        "letmein",
    ])
    .expect("valid");
    assert!(c.irc_conformance_guests);
    assert_eq!(c.irc_password.map(|p| p.0).as_deref(), Some("letmein"));
}
