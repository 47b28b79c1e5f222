//! The IRC gateway over real sockets: registration with SASL PLAIN and with PASS, the
//! welcome, and IRC and natter clients talking to each other in the same rooms.

mod common;
#[path = "support/irc.rs"]
mod irc;
#[path = "support/irc_gateway.rs"]
mod irc_gateway;

use common::*;
use natter_proto::{ClientFrame, PresenceEvent, ServerFrame};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use irc::{Client, base64};
use irc_gateway::*;

#[tokio::test]
async fn sasl_plain_registration_ends_with_the_welcome_after_cap_end() {
    let s = Irc::start().await;
    account(s.chat, "alice").await;
    let mut c = Client::irc(s.irc).await;
    c.send("CAP LS 302").await;
    let ls = c.until("CAP * LS").await;
    let ls = ls.last().expect("line");
    for cap in [
        "sasl=PLAIN",
        "server-time",
        "message-tags",
        "echo-message",
        "multi-prefix",
    ] {
        assert!(ls.contains(cap), "{ls}");
    }
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    c.send("CAP REQ :sasl server-time").await;
    c.until("CAP alice ACK :sasl server-time").await;
    c.send("AUTHENTICATE PLAIN").await;
    c.until("AUTHENTICATE +").await;
    c.send(&format!(
        "AUTHENTICATE {}",
        base64(format!("\0alice\0{PASSWORD}").as_bytes())
    ))
    .await;
    let seen = c.until(" 903 ").await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with(":natter 900 alice alice!alice@natter alice ")),
        "{seen:#?}"
    );
    let early = |l: &String| l.contains(" 001 ") || l.contains(" JOIN ");
    assert!(!seen.iter().any(early), "nothing before CAP END: {seen:#?}");
    // Registration is not over until CAP END: no welcome, no lobby yet.
    let before = c.sync().await;
    assert!(!before.iter().any(early), "{before:#?}");
    c.send("CAP END").await;
    let mut welcome = c.until(" 422 ").await;
    assert!(
        !welcome.iter().any(|l| l.contains(" JOIN ")),
        "IRC clients join the rooms they ask for: {welcome:#?}"
    );
    c.send("JOIN #lobby").await;
    welcome.extend(c.until(" 366 ").await);
    let first = welcome
        .iter()
        .position(|l| l.contains(" 001 "))
        .expect("001");
    assert!(
        welcome[first].starts_with(":natter 001 alice :Welcome"),
        "{welcome:#?}"
    );
    for code in [" 002 ", " 003 ", " 004 ", " 005 "] {
        assert!(
            welcome.iter().any(|l| l.contains(code)),
            "{code} in {welcome:#?}"
        );
    }
    let isupport = welcome.iter().find(|l| l.contains(" 005 ")).expect("005");
    for token in [
        "NICKLEN=32",
        "CHANNELLEN=33",
        "CHANTYPES=#",
        "TARGMAX=",
        "LINELEN=512",
        "UTF8ONLY",
        "CASEMAPPING=ascii",
    ] {
        assert!(isupport.contains(token), "{token} in {isupport}");
    }
    let join = welcome
        .iter()
        .position(|l| l.starts_with(":alice!alice@natter JOIN #lobby"))
        .expect("lobby join");
    assert!(
        join > first,
        "the lobby JOIN comes after the welcome: {welcome:#?}"
    );
    assert!(
        welcome
            .iter()
            .any(|l| l.starts_with(":natter 353 alice = #lobby :")),
        "{welcome:#?}"
    );
}

#[tokio::test]
async fn sasl_with_a_wrong_password_gets_904_and_no_welcome() {
    let s = Irc::start().await;
    account(s.chat, "alice").await;
    let mut c = Client::irc(s.irc).await;
    c.send("CAP REQ :sasl").await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    c.send("AUTHENTICATE PLAIN").await;
    c.until("AUTHENTICATE +").await;
    c.send(&format!(
        "AUTHENTICATE {}",
        base64(b"\0alice\0wrong password")
    ))
    .await;
    let seen = c.until(" 904 ").await;
    assert!(!seen.iter().any(|l| l.contains(" 903 ")), "{seen:#?}");
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    c.until(" 908 alice PLAIN ").await;
}

#[tokio::test]
async fn pass_registration_and_the_nick_must_be_the_account() {
    let s = Irc::start().await;
    account(s.chat, "alice").await;
    let mut c = irc_login(s.irc, "alice", &[]).await;
    c.send("NICK bob").await;
    c.until(" 432 alice bob ").await;

    let mut wrong = Client::irc(s.irc).await;
    wrong.send("PASS alice:nope nope").await;
    wrong.send("NICK alice").await;
    wrong.send("USER alice 0 * :Alice").await;
    wrong.until(" 464 alice ").await;

    let mut other = Client::irc(s.irc).await;
    other.send(&format!("PASS :alice:{PASSWORD}")).await;
    other.send("NICK mallory").await;
    other.send("USER m 0 * :M").await;
    let seen = other.until(" 432 mallory mallory ").await;
    assert!(
        seen.last().expect("line").contains("account name (alice)"),
        "{seen:#?}"
    );
    other.send("NICK Alice").await;
    other.until(" 001 alice ").await;

    // Logged in but never welcomed (the nick is not the account's): QUIT still gets its
    // ERROR, which the held outbox would not deliver.
    let mut stuck = Client::irc(s.irc).await;
    stuck.send("CAP REQ :sasl").await;
    stuck.send("NICK mallory").await;
    stuck.send("USER m 0 * :M").await;
    stuck.send("AUTHENTICATE PLAIN").await;
    stuck.until("AUTHENTICATE +").await;
    let plain = base64(format!("\0alice\0{PASSWORD}").as_bytes());
    stuck.send(&format!("AUTHENTICATE {plain}")).await;
    stuck.until(" 903 ").await;
    stuck.send("CAP END").await;
    stuck.until(" 432 mallory mallory ").await;
    stuck.send("QUIT").await;
    stuck.until("ERROR :Closing link: quit").await;
}

#[tokio::test]
async fn without_a_login_nothing_can_be_said() {
    let s = Irc::start().await;
    let mut c = Client::irc(s.irc).await;
    c.send("NICK ghost").await;
    c.send("USER ghost 0 * :Ghost").await;
    let told = c.until("NOTICE ghost").await;
    assert!(
        told.last().expect("line").contains("no anonymous users"),
        "{told:#?}"
    );
    c.send("PRIVMSG #lobby :hello?").await;
    let seen = c.until(" 451 ghost ").await;
    assert!(!seen.iter().any(|l| l.contains(" 001 ")), "{seen:#?}");
    c.until("no anonymous users").await;
    c.send("JOIN #lobby").await;
    c.until(" 451 ghost ").await;
}

#[tokio::test]
async fn irc_and_natter_clients_talk_both_ways() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut alice = register(s.chat, "alice").await;
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    until(&mut alice, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Join, .. } if user == "bob")
    })
    .await;

    // natter → IRC, in the room.
    send(
        &mut alice,
        ClientFrame::Public {
            id: None,
            room: None,
            text: "hello from natter".into(),
            client_id: None,
        },
    )
    .await;
    bob.until(":alice!alice@natter PRIVMSG #lobby :hello from natter")
        .await;
    // IRC → natter; without echo-message bob does not get his own line back.
    bob.send("PRIVMSG #lobby :hello from irc").await;
    until(&mut alice, |f| {
        matches!(f, ServerFrame::Public { from, text, .. } if from == "bob" && text == "hello from irc")
    })
    .await;
    let echoed = bob.sync().await;
    assert!(
        !echoed.iter().any(|l| l.contains("hello from irc")),
        "{echoed:#?}"
    );

    // Private messages both ways.
    bob.send("PRIVMSG alice :psst").await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Private { from, text, .. } if from == "bob" && text == "psst"),
    )
    .await;
    send(
        &mut alice,
        ClientFrame::Private {
            id: None,
            to: "bob".into(),
            text: "yes?".into(),
            client_id: None,
        },
    )
    .await;
    bob.until(":alice!alice@natter PRIVMSG bob :yes?").await;

    // Joins seen both ways.
    bob.send("JOIN #rust").await;
    bob.until(" 366 bob #rust ").await;
    send(
        &mut alice,
        ClientFrame::Join {
            id: None,
            room: "rust".into(),
        },
    )
    .await;
    bob.until(":alice!alice@natter JOIN #rust").await;
    bob.send("PART #rust").await;
    bob.until(":bob!bob@natter PART #rust").await;
    until(&mut alice, |f| {
        matches!(f, ServerFrame::Presence { user, room, event: PresenceEvent::Leave, .. } if user == "bob" && room == "rust")
    })
    .await;

    // Errors become numerics; a NOTICE is never answered.
    bob.send("PRIVMSG #rust :not in it").await;
    bob.until(":natter 404 bob #rust ").await;
    bob.send("PRIVMSG nobody :hi").await;
    bob.until(":natter 401 bob nobody ").await;
    bob.send("NOTICE nobody :hi").await;
    bob.send("PART #rust").await;
    let seen = bob.until(" 442 bob #rust ").await;
    assert!(!seen.iter().any(|l| l.contains(" 401 ")), "{seen:#?}");
    bob.send("NAMES #lobby").await;
    let names = bob.until(" 366 bob #lobby ").await;
    assert!(
        names
            .iter()
            .any(|l| l.starts_with(":natter 353 bob = #lobby :") && l.contains("alice")),
        "{names:#?}"
    );
    bob.send("FROB").await;
    bob.until(":natter 421 bob FROB ").await;

    bob.send("QUIT :bye").await;
    bob.until("ERROR :Closing link: quit").await;
    until(&mut alice, |f| {
        matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Leave, .. } if user == "bob")
    })
    .await;
}

#[tokio::test]
async fn without_echo_message_own_messages_are_skipped_live_but_replayed_in_history() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut alice = register(s.chat, "alice").await;
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    bob.send("PRIVMSG #lobby :first").await;
    bob.send("PRIVMSG alice :private first").await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Private { text, .. } if text == "private first"),
    )
    .await;
    let live = bob.sync().await;
    assert!(!live.iter().any(|l| l.contains("first")), "{live:#?}");
    // A second connection of the same account replays the room's history, own lines too.
    let mut again = Client::irc(s.irc).await;
    again.send(&format!("PASS :bob:{PASSWORD}")).await;
    again.send("NICK bob").await;
    again.send("USER bob 0 * :bob").await;
    again.until(" 001 ").await;
    again.send("JOIN #lobby").await;
    again.until(":bob!bob@natter PRIVMSG #lobby :first").await;
}

#[tokio::test]
async fn echo_message_and_server_time_when_negotiated() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut bob = irc_login(s.irc, "bob", &["echo-message", "server-time"]).await;
    bob.send("PRIVMSG #lobby :mine").await;
    let line = bob.until("PRIVMSG #lobby :mine").await.pop().expect("line");
    assert!(
        line.starts_with("@time=") && line.contains(" :bob!bob@natter PRIVMSG"),
        "{line}"
    );
}

#[tokio::test]
async fn an_overlong_line_gets_417_and_the_connection_goes_on() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    bob.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600)))
        .await;
    bob.until(":natter 417 bob ").await;
    // Tags have their own budget.
    bob.send(&format!("@+tag={} PRIVMSG #lobby :short", "t".repeat(1000)))
        .await;
    bob.sync().await;
    // A line beyond even that ends the connection, with 417 first.
    bob.send(&"y".repeat(20_000)).await;
    bob.until(" 417 ").await;
    bob.until("ERROR :Closing link").await;
}

#[tokio::test]
async fn the_gateway_runs_over_tls_with_the_servers_certificate() {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    // The real listener, told to use TLS on loopback too.
    let s = Irc::start_with(|c| {
        c.plaintext = false;
        c.irc_tls = Some(true);
    })
    .await;
    let cert = s.shared.config.data_dir.join("tls/cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cert).expect("pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(s.irc).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake with the server's certificate");
    let (rd, mut wr) = tokio::io::split(tls);
    let mut lines = BufReader::new(rd).lines();
    // Many answers (within the 64 lines allowed before logging in), so that the
    // server's writes go out as several records.
    let mut pings = String::new();
    for i in 0..50 {
        pings.push_str(&format!("PING :over-tls-{i}\r\n"));
    }
    wr.write_all(pings.as_bytes()).await.expect("write");
    let mut next = 0;
    let mut seen = Vec::new();
    while next < 50 {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("line in time")
            .expect("read")
            .expect("open");
        if line == format!(":natter PONG natter :over-tls-{next}") {
            next += 1;
        } else {
            seen.push(line);
            assert!(seen.len() < 10, "{seen:#?}");
        }
    }
    wr.write_all(b"QUIT :bye\r\n").await.expect("write");
    // The goodbye, then the end of the stream: the server closes TLS with close_notify
    // (a TCP close without it is an error for the client).
    let mut tail = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("line or end in time")
            .expect("a clean TLS close");
        match line {
            Some(line) => {
                tail.push(line);
                assert!(tail.len() < 10, "{tail:#?}");
            }
            None => break,
        }
    }
    assert!(
        tail.iter().any(|l| l.starts_with("ERROR :Closing link")),
        "{tail:#?}"
    );
}

#[tokio::test]
async fn chat_and_irc_share_the_connection_limits() {
    let s = Irc::start_with(|c| c.max_connections_per_ip = 1).await;
    let _alice = connect(s.chat).await;
    let mut refused = Client::irc(s.irc).await;
    refused
        .until("ERROR :Closing link: too many connections")
        .await;
}

#[tokio::test]
async fn an_irc_connection_that_never_logs_in_is_closed_at_the_login_deadline() {
    let s = Irc::start_with(|c| c.auth_timeout = std::time::Duration::from_secs(1)).await;
    let mut c = Client::irc(s.irc).await;
    c.send("NICK ghost").await;
    c.send("USER ghost 0 * :Ghost").await;
    c.until("ERROR :Closing link: login timed out").await;
}

#[tokio::test]
async fn parting_words_reach_natter_clients_and_the_leaver() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut alice = register(s.chat, "alice").await;
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    bob.send("PART #lobby :off to lunch").await;
    bob.until(":bob!bob@natter PART #lobby :off to lunch").await;
    let leave = until(&mut alice, is_leave).await;
    assert!(
        matches!(&leave, ServerFrame::Presence { user, message: Some(m), reason: Some(r), .. }
            if user == "bob" && m == "off to lunch" && r == "part"),
        "{leave:?}"
    );
    bob.send("QUIT :see you").await;
    let mut again = irc_login(s.irc, "bob", &[]).await;
    again.send("QUIT :bye now").await;
    let quit = until(&mut alice, is_leave).await;
    assert!(
        matches!(&quit, ServerFrame::Presence { message: Some(m), reason: Some(r), .. }
            if m == "bye now" && r == "quit"),
        "{quit:?}"
    );
}

#[tokio::test]
async fn clients_without_sasl_register_and_log_in_with_nickserv_or_register() {
    let s = Irc::start().await;
    // NickServ: welcomed without an account, nothing works until REGISTER.
    let mut c = Client::irc(s.irc).await;
    c.send("NICK carol").await;
    c.send("USER carol 0 * :Carol").await;
    c.until(" 001 carol ").await;
    c.until("NickServ IDENTIFY").await;
    c.send("JOIN #lobby").await;
    c.until(" 451 carol ").await;
    c.send("WHO #lobby").await;
    c.until(" 451 carol ").await;
    c.send("PRIVMSG NickServ :REGISTER short").await;
    c.until(":NickServ!NickServ@natter NOTICE carol :Refused")
        .await;
    c.send(&format!("PRIVMSG NickServ :REGISTER {PASSWORD}"))
        .await;
    c.until("Account carol created").await;
    c.until(" 900 carol ").await;
    c.send("JOIN #lobby").await;
    c.until(" 366 carol #lobby ").await;
    c.send("QUIT").await;

    // IDENTIFY on a new connection, with the NS alias.
    let mut again = Client::irc(s.irc).await;
    again.send("NICK carol").await;
    again.send("USER carol 0 * :Carol").await;
    again.until(" 001 carol ").await;
    again.send("NS IDENTIFY wrong-password").await;
    again.until("Refused").await;
    again.send(&format!("NS IDENTIFY {PASSWORD}")).await;
    again.until("You are now identified for carol").await;

    // draft/account-registration before connecting.
    let mut dave = Client::irc(s.irc).await;
    dave.send("CAP LS 302").await;
    let ls = dave.until("CAP * LS").await;
    assert!(
        ls.last()
            .expect("line")
            .contains("draft/account-registration=before-connect"),
        "{ls:?}"
    );
    dave.send("NICK dave").await;
    dave.send(&format!("REGISTER * * :{PASSWORD}")).await;
    dave.until("REGISTER SUCCESS dave").await;
    dave.send("USER dave 0 * :Dave").await;
    dave.send("CAP END").await;
    dave.until(" 001 dave ").await;
    let mut taken = Client::irc(s.irc).await;
    taken.send("NICK dave").await;
    taken.send(&format!("REGISTER * * :{PASSWORD}")).await;
    taken.until("FAIL REGISTER ACCOUNT_EXISTS").await;
}

#[tokio::test]
async fn operator_mutes_kicks_and_bans_reach_irc_users() {
    use natter_server::moderation::{self, Operator};
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let op = Operator {
        name: "operator".into(),
        addr: "test".into(),
    };
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    moderation::mute(&s.shared, &op, "bob", 60)
        .await
        .expect("mute");
    bob.until("an operator muted you").await;
    bob.send("PRIVMSG #lobby :can you hear me").await;
    let refused = bob.until(" 404 bob #lobby ").await;
    assert!(
        refused.last().expect("line").contains("muted"),
        "{refused:#?}"
    );
    moderation::kick(&s.shared, &op, "bob", Some("calm down"))
        .await
        .expect("kick");
    let bye = bob.until("ERROR").await;
    assert!(
        bye.last()
            .expect("line")
            .contains("kicked by an operator: calm down"),
        "{bye:#?}"
    );
    let mut bob = irc_login(s.irc, "bob", &[]).await;
    moderation::ban(&s.shared, &op, "bob", Some("spam"))
        .await
        .expect("ban");
    bob.until("ERROR :Closing link: banned by an operator")
        .await;
    let mut again = Client::irc(s.irc).await;
    again.send(&format!("PASS :bob:{PASSWORD}")).await;
    again.send("NICK bob").await;
    again.send("USER bob 0 * :bob").await;
    again.until(" 465 ").await;
}

#[tokio::test]
async fn chathistory_answers_in_order_with_msgids_in_a_batch() {
    let s = Irc::start().await;
    account(s.chat, "bob").await;
    let mut alice = register(s.chat, "alice").await;
    let caps = [
        "batch",
        "draft/chathistory",
        "labeled-response",
        "message-tags",
    ];
    let mut bob = irc_login(s.irc, "bob", &caps).await;
    // No wait between the message and the question: the answer comes after the message
    // is stored.
    bob.send("PRIVMSG #lobby :one").await;
    bob.send("PRIVMSG alice :psst").await;
    bob.send("@label=q1 CHATHISTORY LATEST #LOBBY * 10").await;
    let lines = bob.until("BATCH -").await;
    let start = lines
        .iter()
        .position(|l| l.contains("BATCH +"))
        .expect("batch start");
    assert!(
        lines[start].starts_with("@label=q1 :natter BATCH +")
            && lines[start].ends_with(" chathistory #LOBBY"),
        "{lines:#?}"
    );
    let id = lines[start]
        .split(" BATCH +")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("batch id")
        .to_string();
    let msg = &lines[start + 1];
    assert!(
        msg.starts_with(&format!("@batch={id};time="))
            && msg.contains(";msgid=")
            && msg.contains(";account=bob ")
            && msg.ends_with(" :bob!bob@natter PRIVMSG #lobby :one"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), start + 3, "{lines:#?}");
    let msgid = msg
        .split(";msgid=")
        .nth(1)
        .and_then(|r| r.split([' ', ';']).next())
        .expect("msgid")
        .to_string();
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Private { text, .. } if text == "psst"),
    )
    .await;
    send(
        &mut alice,
        ClientFrame::Private {
            id: None,
            to: "bob".into(),
            text: "back".into(),
            client_id: None,
        },
    )
    .await;
    bob.until("PRIVMSG bob :back").await;
    bob.send("CHATHISTORY AFTER alice timestamp=2000-01-01T00:00:00.000Z 10")
        .await;
    let lines = bob.until("BATCH -").await;
    let texts: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" PRIVMSG "))
        .map(|l| l.split(" PRIVMSG ").nth(1).unwrap_or_default())
        .collect();
    assert_eq!(texts, ["alice :psst", "bob :back"], "{lines:#?}");
    bob.send(&format!("CHATHISTORY BEFORE #lobby msgid={msgid} 10"))
        .await;
    let lines = bob.until("BATCH -").await;
    assert!(!lines.iter().any(|l| l.contains(" PRIVMSG ")), "{lines:#?}");
    bob.send("CHATHISTORY LATEST #elsewhere * 10").await;
    bob.until("FAIL CHATHISTORY INVALID_TARGET LATEST #elsewhere")
        .await;
    bob.send("CHATHISTORY BEFORE #lobby * 10").await;
    bob.until("FAIL CHATHISTORY INVALID_PARAMS BEFORE *").await;

    // A client with draft/chathistory gets no replay after JOIN; one without does.
    let mut again = Client::irc(s.irc).await;
    again.send("CAP REQ :draft/chathistory").await;
    again.until("ACK").await;
    again.send("CAP END").await;
    again.send(&format!("PASS :bob:{PASSWORD}")).await;
    again.send("NICK bob").await;
    again.send("USER bob 0 * :bob").await;
    again.until(" 001 ").await;
    again.send("JOIN #lobby").await;
    again.until(" 366 ").await;
    let seen = again.sync().await;
    assert!(!seen.iter().any(|l| l.contains("PRIVMSG")), "{seen:#?}");
    let mut plain = irc_login(s.irc, "bob", &[]).await;
    plain.until(":bob!bob@natter PRIVMSG #lobby :one").await;
}

#[tokio::test]
async fn away_is_told_to_away_notify_clients_sharing_a_room() {
    let s = Irc::start().await;
    for name in ["ann", "bob", "cid"] {
        account(s.chat, name).await;
    }
    let mut ann = irc_login(s.irc, "ann", &[]).await;
    let mut bob = irc_login(s.irc, "bob", &["away-notify"]).await;
    let mut cid = irc_login(s.irc, "cid", &[]).await;
    ann.send("AWAY :out to lunch").await;
    ann.until(" 306 ann ").await;
    bob.until(":ann!ann@natter AWAY :out to lunch").await;
    // Without away-notify nothing comes; WHO and PRIVMSG still tell.
    let quiet = cid.sync().await;
    assert!(!quiet.iter().any(|l| l.contains("AWAY")), "{quiet:#?}");
    cid.send("PRIVMSG ann :there?").await;
    cid.until(" 301 cid ann :out to lunch").await;
    ann.send("AWAY").await;
    ann.until(" 305 ann ").await;
    let back = bob.until("AWAY").await;
    assert_eq!(
        back.last().map(String::as_str),
        Some(":ann!ann@natter AWAY")
    );
}

#[tokio::test]
async fn a_connection_that_only_claims_a_nick_changes_nothing_others_see() {
    let s = Irc::start().await;
    for name in ["bob", "cid"] {
        account(s.chat, name).await;
    }
    let _bob = irc_login(s.irc, "bob", &[]).await;
    let mut impostor = Client::irc(s.irc).await;
    impostor.send("NICK bob").await;
    impostor.send("USER evil 0 * :Not Bob").await;
    impostor.until(" 001 bob ").await;
    let mut cid = irc_login(s.irc, "cid", &[]).await;
    cid.send("WHOIS bob").await;
    let whois = cid.until(" 318 cid ").await;
    let user = whois.iter().find(|l| l.contains(" 311 ")).expect("311");
    assert!(
        user.contains(" bob bob ") && !user.contains("Not Bob"),
        "{whois:#?}"
    );
}
