//! Tests of the parent module.

use super::*;

/// A reader over an in-memory stream holding `input`, for the parsers.
async fn reader_over(kind: Kind, input: &[u8]) -> Reader {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let input = input.to_vec();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(&input).await;
            let _ = s.shutdown().await;
        }
    });
    let (rd, _wr) = Target::plain(kind, addr).connect().await.expect("connect");
    Reader::new(kind, rd)
}

fn show(e: Event<'_>) -> String {
    match e {
        Event::Msg { from, text } => format!(
            "msg {} {}",
            from.map_or("-".into(), |f| String::from_utf8_lossy(f).into_owned()),
            String::from_utf8_lossy(text)
        ),
        Event::Joined(r) => format!("joined {}", String::from_utf8_lossy(r)),
        Event::Ping(PingArg::Natter(id)) => format!("ping {id:?}"),
        Event::Ping(PingArg::Irc(a)) => format!("ping {a}"),
        Event::Error(e) => format!("error {e}"),
        Event::Closed(e) => format!("closed {e}"),
        Event::Ack => "ack".into(),
        Event::Other => "other".into(),
    }
}

/// The events `input` makes, read both ways a reader is used: with [`Reader::next`]
/// (logins, joins) and with [`Reader::try_next`] and [`Reader::fill`] (the receivers'
/// loop, which has fast paths of its own); both must agree.
async fn events(kind: Kind, input: &[u8]) -> Vec<String> {
    let mut r = reader_over(kind, input).await;
    let mut out = Vec::new();
    while let Ok(e) = r.next().await {
        out.push(show(e));
    }
    let mut r = reader_over(kind, input).await;
    let mut polled = Vec::new();
    'read: loop {
        loop {
            match r.try_next() {
                Ok(Some(e)) => polled.push(show(e)),
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        if r.fill().await.is_err() {
            break;
        }
    }
    assert_eq!(out, polled, "next and try_next disagree");
    out
}

#[tokio::test]
async fn natter_frames() {
    let input = concat!(
        r#"{"type":"public","msg_id":12,"room":"lobby","from":"fs0","text":"hello there","ts":1763800000000}"#,
        "\n",
        r#"{"type":"private","msg_id":13,"from":"pu1","to":"pu2","text":"hi","ts":1}"#,
        "\n",
        r#"{"type":"public","msg_id":14,"room":"lobby","from":"fs1","text":"a \"quoted\" \u00e9","ts":1}"#,
        "\n",
        r#"{"type":"public","msg_id":15,"room":"lobby","from":"fs2","text":"crlf","ts":2}"#,
        "\r\n",
        r#"{"type":"public","room":"lobby","msg_id":16,"from":"fs3","text":"other order","ts":3}"#,
        "\n",
        r#"{"type":"presence","room":"lobby","user":"x","event":"join"}"#,
        "\n",
        r#"{"type":"presence_batch","room":"crowd","joined":["a","b"]}"#,
        "\n",
        r#"{"type":"joined","id":3,"room":"crowd","members":["a","from","text"]}"#,
        "\n",
        r#"{"type":"history","room":"lobby","messages":[{"msg_id":1,"from":"a","text":"t","ts":1}],"last":true}"#,
        "\n",
        r#"{"type":"ping","id":7}"#,
        "\r\n",
        r#"{"type":"ok","id":41}"#,
        "\n",
        r#"{"type":"error","code":"rate_limited","message":"slow down"}"#,
        "\n",
        "not json\n",
        r#"{"type":"bye","reason":"shutdown"}"#,
        "\n",
    );
    assert_eq!(
        events(Kind::Natter, input.as_bytes()).await,
        vec![
            "msg fs0 hello there",
            "msg pu1 hi",
            "msg fs1 a \"quoted\" é",
            "msg fs2 crlf",
            "msg fs3 other order",
            "other",
            "other",
            "joined crowd",
            "other",
            "ping Some(Num(7))",
            "ack",
            "error rate_limited: slow down",
            "error invalid frame (bad_json: not valid JSON: expected ident at line 1 column 2): not json",
            "closed shutdown",
        ]
    );
}

/// A `public` delivery as natter-proto encodes it.
fn public(msg_id: u64, from: &str, text: &str) -> Vec<u8> {
    natter_proto::encode(&ServerFrame::Public {
        msg_id,
        room: "lobby".into(),
        from: from.into(),
        text: text.into(),
        ts: 1_763_800_000_123,
    })
    .to_vec()
}

#[test]
fn public_frame_patterns_are_natter_protos_encoding() {
    use public_frame::{FROM, HEAD, ROOM, TEXT, TS};
    let frame = ServerFrame::Public {
        msg_id: 1234,
        room: "RR".into(),
        from: "FF".into(),
        text: "TT".into(),
        ts: 5678,
    };
    let rebuilt = [
        HEAD, b"1234", ROOM, b"RR", FROM, b"FF", TEXT, b"TT", TS, b"5678", b"}\n",
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&natter_proto::encode(&frame)),
        String::from_utf8_lossy(&rebuilt)
    );
}

#[tokio::test]
async fn fast_path_reads_natter_protos_public_frames() {
    let frames = [
        public(1, "fs0", "m00000:hello"),
        public(u64::MAX, "a-very_long-name-of-32-chars-xyz", ""),
    ];
    let mut r = reader_over(Kind::Natter, &frames.concat()).await;
    while r.buf.len() < frames.iter().map(Vec::len).sum() {
        r.fill().await.expect("fill");
    }
    for (from, text) in [
        ("fs0", "m00000:hello"),
        ("a-very_long-name-of-32-chars-xyz", ""),
    ] {
        // The fast path itself, not the fallback, must take the frame.
        let raw = r.natter_public().expect("fast path took the frame");
        assert_eq!(
            r.event(raw),
            Event::Msg {
                from: Some(from.as_bytes()),
                text: text.as_bytes()
            }
        );
    }
    assert_eq!(r.pos, r.buf.len(), "both frames consumed whole");
}

#[tokio::test]
async fn escaped_public_frames_fall_back_to_natter_proto() {
    let text = "a \"quoted\" \\ tab\t é";
    let line = public(7, "fs1", text);
    let mut r = reader_over(Kind::Natter, &line).await;
    r.fill().await.expect("fill");
    assert!(r.natter_public().is_none(), "escapes leave the fast path");
    assert_eq!(
        r.next().await.expect("event"),
        Event::Msg {
            from: Some(b"fs1".as_slice()),
            text: text.as_bytes()
        }
    );
}

/// Everything `drive` writes through a natter [`Writer`], decoded as client frames.
async fn sent_frames<F>(drive: F) -> Vec<ClientFrame>
where
    F: AsyncFnOnce(&mut Writer),
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).await.expect("read");
        bytes
    });
    let (_rd, wr) = Target::plain(Kind::Natter, addr)
        .connect()
        .await
        .expect("connect");
    let mut w = Writer {
        kind: Kind::Natter,
        wr,
        out: Vec::new(),
        strings: Default::default(),
        sub: None,
    };
    drive(&mut w).await;
    drop(w);
    let bytes = tokio::time::timeout(Duration::from_secs(30), peer)
        .await
        .expect("peer timed out")
        .expect("peer panicked");
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            assert_eq!(l.last(), Some(&b'\n'), "whole lines only");
            natter_proto::decode_client(l).expect("a valid client frame")
        })
        .collect()
}

#[tokio::test]
async fn sent_natter_frames_are_natter_protos_client_frames() {
    let frames = sent_frames(async |w| {
        w.auth("fs0", true).await.expect("auth");
        w.push_public("lobby", "first, the longer one");
        w.push_public("crowd", "a \"b\"\n");
        w.send().await.expect("send");
        w.push_public_acked("commit-3", "stored?", 9)
            .expect("natter");
        w.send().await.expect("send");
        w.public("lobby", "x").await.expect("public");
        w.private("pu1", "hi").await.expect("private");
        w.join("crowd").await.expect("join");
        w.pong(&PingArg::Natter(Some(FrameId::Num(7))))
            .await
            .expect("pong");
        w.quit().await;
    })
    .await;
    let public = |room: &str, text: &str| ClientFrame::Public {
        id: None,
        room: Some(room.into()),
        text: text.into(),
        client_id: None,
    };
    assert_eq!(
        frames,
        [
            ClientFrame::Auth {
                id: None,
                user: "fs0".into(),
                password: PASSWORD.into(),
                register: true
            },
            public("lobby", "first, the longer one"),
            public("crowd", "a \"b\"\n"),
            ClientFrame::Public {
                id: Some(FrameId::Num(9)),
                room: Some("commit-3".into()),
                text: "stored?".into(),
                client_id: None,
            },
            public("lobby", "x"),
            ClientFrame::Private {
                id: None,
                to: "pu1".into(),
                text: "hi".into(),
                client_id: None
            },
            ClientFrame::Join {
                id: None,
                room: "crowd".into()
            },
            ClientFrame::Pong {
                id: Some(FrameId::Num(7))
            },
            ClientFrame::Quit {
                id: None,
                message: None
            },
        ]
    );
}

#[tokio::test]
async fn irc_lines() {
    let input = concat!(
        ":fs0!~fs0@localhost PRIVMSG #lobby :m00000:hello world\r\n",
        ":bench.irc 353 ic1 = #crowd :ic0 ic1\r\n",
        ":bench.irc 366 ic1 #crowd :End of NAMES list\r\n",
        ":ic2!~ic2@localhost JOIN :#crowd\r\n",
        "PING :bench.irc\r\n",
        ":bench.irc 404 ic1 #crowd :Cannot send to channel\r\n",
        "ERROR :Closing connection\r\n",
    );
    assert_eq!(
        events(Kind::Irc, input.as_bytes()).await,
        vec![
            "msg fs0 m00000:hello world",
            "other",
            "joined crowd",
            "other",
            "ping :bench.irc",
            "error :bench.irc 404 ic1 #crowd :Cannot send to channel",
            "closed ERROR :Closing connection",
        ]
    );
}

/// What natter's IRC gateway sends: after the welcome the automatic JOIN of `#lobby`
/// (its channel bare, not as a trailing parameter) with NAMES, then deliveries with
/// `nick!nick@natter` prefixes.
#[tokio::test]
async fn natter_irc_lines() {
    let input = concat!(
        ":natter NOTICE * :*** natter: log in with SASL PLAIN or PASS account:password\r\n",
        ":natter 001 fr0 :Welcome to natter, fr0\r\n",
        ":natter 005 fr0 CASEMAPPING=ascii CHANTYPES=# :are supported by this server\r\n",
        ":natter 422 fr0 :MOTD File is missing\r\n",
        ":fr0!fr0@natter JOIN #lobby\r\n",
        ":natter 353 fr0 = #lobby :fs0 fs1 fr0\r\n",
        ":natter 366 fr0 #lobby :End of /NAMES list\r\n",
        ":fs1!fs1@natter PRIVMSG #lobby :m00001:000000000001:0000000000001234:abc\r\n",
        ":natter 366 fr0 #crowd :End of /NAMES list (12 more not listed)\r\n",
        ":ic7!ic7@natter QUIT :connection closed\r\n",
        ":natter PING :natter\r\n",
        "PING 17\r\n",
        ":natter 404 fr0 #crowd :Cannot send to channel\r\n",
        "ERROR :Closing link: server shutting down\r\n",
    );
    assert_eq!(
        events(Kind::NatterIrc, input.as_bytes()).await,
        vec![
            "other",
            "other",
            "other",
            "other",
            "other",
            "other",
            "joined lobby",
            "msg fs1 m00001:000000000001:0000000000001234:abc",
            "joined crowd",
            "other",
            "other",
            "ping 17",
            "error :natter 404 fr0 #crowd :Cannot send to channel",
            "closed ERROR :Closing link: server shutting down",
        ]
    );
}

#[test]
fn irc_privmsg_lines_in_one_pass() {
    let parts = |line: &[u8]| {
        irc_privmsg(line).map(|m| {
            (
                String::from_utf8_lossy(&line[m.nick.0..m.nick.1]).into_owned(),
                String::from_utf8_lossy(&line[m.text.0..m.text.1]).into_owned(),
                m.len,
            )
        })
    };
    let some = |nick: &str, text: &str, len: usize| Some((nick.into(), text.into(), len));
    // natter's gateway, ngircd, a bare nick, a private message, bare LF, an empty text,
    // a text with spaces and colons; whatever follows the line is not looked at.
    let natter = b":fs1!fs1@natter PRIVMSG #lobby :m00001:abc\r\n";
    assert_eq!(
        parts(&[&natter[..], b"PING x\r\n"].concat()),
        some("fs1", "m00001:abc", natter.len())
    );
    let ngircd = b":fs0!~fs0@127.0.0.1 PRIVMSG #lobby :hi\r\n";
    assert_eq!(parts(ngircd), some("fs0", "hi", ngircd.len()));
    let bare = b":fs2 PRIVMSG fr0 :x\n";
    assert_eq!(parts(bare), some("fs2", "x", bare.len()));
    let empty = b":a!b@c PRIVMSG #l :\r\n";
    assert_eq!(parts(empty), some("a", "", empty.len()));
    let spaced = b":a!b@c PRIVMSG #l : two: words \r\n";
    assert_eq!(parts(spaced), some("a", " two: words ", spaced.len()));
    // Not a message (the general parser's business), or not complete yet.
    for other in [
        &b""[..],
        b"PING :natter\r\n",
        b":natter 366 fr0 #lobby :End of /NAMES list\r\n",
        b":fs1!fs1@natter NOTICE #lobby :hi\r\n",
        b":fs1!fs1@natter JOIN #lobby\r\n",
        b"PRIVMSG #lobby :no prefix\r\n",
        b":a!b@c PRIVMSG #l no-colon\r\n",
        b":a!b@c PRIVMSG #lobby\r\n:x PRIVMSG #l :next line\r\n",
        b":a!b@c PRIVMSG\n#l :x\r\n",
        b":nospace\n:a PRIVMSG #l :x\n",
        b":a!b@c PRIVMSG #l :no line end yet",
    ] {
        assert_eq!(parts(other), None, "{}", String::from_utf8_lossy(other));
    }
    // Every prefix of a buffer either holds the whole first line, and then parses as the
    // whole buffer does, or gives `None` (the reader reads more and tries again).
    let buf = [&natter[..], b":fs2!x@y PRIVMSG #l :z\r\n"].concat();
    let whole = parts(&buf);
    for end in 0..buf.len() {
        let got = parts(&buf[..end]);
        if end < natter.len() {
            assert_eq!(got, None, "prefix of {end} bytes");
        } else {
            assert_eq!(got, whole, "prefix of {end} bytes");
        }
    }
}

#[test]
fn irc_registration_logs_in_to_natter_with_pass() {
    assert_eq!(
        irc_registration(Kind::NatterIrc, "fr12"),
        format!("PASS fr12:{PASSWORD}\r\nNICK fr12\r\nUSER fr12 0 * :bench\r\n")
    );
    assert_eq!(
        irc_registration(Kind::Irc, "fr12"),
        "NICK fr12\r\nUSER fr12 0 * :bench\r\n"
    );
}

#[test]
fn irc_refusals_before_the_welcome() {
    for refused in [
        &b":natter 464 fr0 :Password incorrect"[..],
        b":natter 465 fr0 :You are banned",
        b":natter 432 fr0 fr0x :Your nick must be your account name (fr0)",
        b":bench.irc 433 * fr0 :Nickname already in use",
        b"ERROR :Closing link: login timed out",
    ] {
        assert!(irc_refusal(refused), "{}", String::from_utf8_lossy(refused));
    }
    for fine in [
        &b":natter NOTICE * :*** natter: log in with SASL PLAIN or PASS account:password"[..],
        b":natter 001 fr0 :Welcome to natter, fr0",
        b":natter 422 fr0 :MOTD File is missing",
        b"PING :natter",
        b":fr0!fr0@natter JOIN #lobby",
    ] {
        assert!(!irc_refusal(fine), "{}", String::from_utf8_lossy(fine));
    }
}

#[test]
fn kind_names() {
    use clap::ValueEnum as _;
    assert_eq!(Kind::NatterIrc.label(), "natter-irc");
    assert_eq!(
        Kind::from_str("natter-irc", false).expect("a --kind value"),
        Kind::NatterIrc
    );
    assert_eq!(
        serde_json::to_string(&Kind::NatterIrc).expect("json"),
        "\"natter-irc\""
    );
    assert!(Kind::NatterIrc.is_irc() && Kind::Irc.is_irc());
    assert!(!Kind::Natter.is_irc() && !Kind::Redis.is_irc());
}

#[test]
fn malformed_resp_is_an_error_not_a_panic() {
    for bad in [
        &b"\r\n"[..],
        b"?x\r\n",
        b"$99999999999\r\n",
        b"*1\r\n\r\n",
        b"+ok\n",
    ] {
        assert!(resp_value(bad, 0, 0, &mut |_| {}).is_err(), "{bad:?}");
    }
    assert!(matches!(
        resp_value(b"$5\r\nab", 0, 0, &mut |_| {}),
        Ok(None)
    ));
}

#[tokio::test]
async fn resp_pushes() {
    let input = concat!(
        "*3\r\n$9\r\nsubscribe\r\n$5\r\ncrowd\r\n:1\r\n",
        "*3\r\n$7\r\nmessage\r\n$5\r\nlobby\r\n$5\r\nab\r\nc\r\n",
        ":12\r\n",
        "-ERR wrong\r\n",
        "*2\r\n$3\r\nfoo\r\n*1\r\n$-1\r\n",
    );
    assert_eq!(
        events(Kind::Redis, input.as_bytes()).await,
        vec![
            "joined crowd",
            "msg - ab\r\nc",
            "other",
            "error ERR wrong",
            "other"
        ]
    );
}

#[test]
fn tls_is_refused_for_servers_that_do_not_speak_it_here() {
    let addr: SocketAddr = "127.0.0.1:1".parse().expect("address");
    // Refused before the certificate is even read.
    let missing = Path::new("/nonexistent/cert.pem");
    for kind in [Kind::Redis, Kind::Irc] {
        let err = Target::tls(kind, addr, missing).err().expect("refused");
        assert!(err.to_string().contains("TLS is for natter"), "{err}");
    }
    for kind in [Kind::Natter, Kind::NatterIrc] {
        let err = Target::tls(kind, addr, missing)
            .err()
            .expect("no certificate");
        assert!(err.to_string().contains("reading"), "{err}");
    }
}
