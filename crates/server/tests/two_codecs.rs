//! The transport seam is real: one server runs the very same session code over natter's
//! JSON lines and over a second, test-only line format, and people on either talk to
//! each other in the same rooms.

mod common;

use std::sync::Arc;

use common::*;
use natter_proto::{ClientFrame, ErrorCode, FrameError, PresenceEvent, ServerFrame};
use natter_server::Server;
use natter_server::codec::{Codec, Encoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A tiny word-based line format: `VERB arg arg rest of line`.
struct Words;

impl Encoder for Words {
    fn slot(&self) -> usize {
        3
    }

    fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>) {
        let line = match frame {
            ServerFrame::Hello { server, .. } => format!("HELLO {server}"),
            ServerFrame::AuthOk { user, .. } => format!("WELCOME {user}"),
            ServerFrame::Joined { room, members, .. } => {
                format!("JOINED {room} {}", members.join(","))
            }
            ServerFrame::History { room, last, .. } => format!(
                "HISTORY {} {}",
                room.as_deref().unwrap_or("-"),
                if *last { "end" } else { "more" }
            ),
            ServerFrame::Public {
                room, from, text, ..
            } => format!("SAID {room} {from} {text}"),
            ServerFrame::Presence {
                room, user, event, ..
            } => match event {
                PresenceEvent::Join => format!("ARRIVED {room} {user}"),
                PresenceEvent::Leave => format!("LEFT {room} {user}"),
            },
            ServerFrame::Pong { .. } => "PONG".to_string(),
            ServerFrame::Error { code, .. } => format!("OOPS {}", code.as_str()),
            ServerFrame::Bye { reason } => format!("BYE {reason}"),
            other => format!("OTHER {other:?}").replace('\n', " "),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

impl Codec for Words {
    fn decode(&self, unit: &[u8]) -> Result<ClientFrame, FrameError> {
        let bad = |message: &str| FrameError {
            id: None,
            code: ErrorCode::BadFrame,
            message: message.to_string(),
        };
        let line = std::str::from_utf8(unit).map_err(|_| bad("not UTF-8"))?;
        let mut words = line.splitn(3, ' ');
        let verb = words.next().unwrap_or_default();
        let (a, b) = (words.next(), words.next());
        Ok(match (verb, a, b) {
            ("REGISTER", Some(user), Some(password)) => ClientFrame::Auth {
                id: None,
                user: user.into(),
                password: password.into(),
                register: true,
            },
            ("SAY", Some(room), Some(text)) => ClientFrame::Public {
                id: None,
                room: Some(room.into()),
                text: text.into(),
                client_id: None,
            },
            ("JOIN", Some(room), None) => ClientFrame::Join {
                id: None,
                room: room.into(),
            },
            ("PING", None, None) => ClientFrame::Ping { id: None },
            ("QUIT", None, None) => ClientFrame::Quit {
                id: None,
                message: None,
            },
            _ => return Err(bad("unknown command")),
        })
    }
}

/// Reads `c`'s lines until one starts with `prefix`, returning it.
async fn until_words(c: &mut LineClient, prefix: &str) -> String {
    let mut seen = c
        .until_line(&format!("starting with {prefix:?}"), |l| {
            l.starts_with(prefix)
        })
        .await;
    seen.pop().unwrap_or_default()
}

#[tokio::test]
async fn the_same_session_runs_over_json_and_a_second_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::open(plain_config(dir.path()))
        .await
        .expect("open server");
    let shared = server.shared().clone();
    let json = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let json_addr = json.local_addr().expect("addr");
    let words = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let words_addr = words.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(server.run(json, async move { stopped.cancelled().await }));
    let token = stop.clone();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = words.accept().await {
            let shared = shared.clone();
            let token = token.child_token();
            tokio::spawn(natter_server::transport::serve_lines(
                tcp,
                Arc::new(Words),
                peer,
                shared,
                token,
            ));
        }
    });

    let mut alice = register(json_addr, "alice").await;
    let mut bob = LineClient::connect(words_addr, "\n").await;
    assert_eq!(until_words(&mut bob, "HELLO").await, "HELLO natter");
    bob.send("NONSENSE").await;
    assert_eq!(until_words(&mut bob, "OOPS").await, "OOPS bad_frame");
    bob.send(&format!("REGISTER bob {PASSWORD}")).await;
    assert_eq!(until_words(&mut bob, "WELCOME").await, "WELCOME bob");
    assert_eq!(
        until_words(&mut bob, "JOINED").await,
        "JOINED lobby alice,bob"
    );
    until_words(&mut bob, "HISTORY lobby end").await;

    // Presence, messages both ways, in the same room, each in its own format.
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Presence { user, .. } if user == "bob"),
    )
    .await;
    send(
        &mut alice,
        ClientFrame::Public {
            id: None,
            room: None,
            text: "hello from JSON".into(),
            client_id: None,
        },
    )
    .await;
    assert_eq!(
        until_words(&mut bob, "SAID").await,
        "SAID lobby alice hello from JSON"
    );
    bob.send("SAY lobby hello in words").await;
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Public { from, text, .. } if from == "bob" && text == "hello in words"),
    )
    .await;
    // Bob's own message comes back to him in his format too.
    assert_eq!(
        until_words(&mut bob, "SAID").await,
        "SAID lobby bob hello in words"
    );
    // The rules are the session's, whatever the format: an unknown room is refused.
    bob.send("SAY nowhere hi").await;
    assert_eq!(until_words(&mut bob, "OOPS").await, "OOPS not_in_room");
    bob.send("QUIT").await;
    assert_eq!(until_words(&mut bob, "BYE").await, "BYE quit");
    until(
        &mut alice,
        |f| matches!(f, ServerFrame::Presence { user, event: PresenceEvent::Leave, .. } if user == "bob"),
    )
    .await;
    stop.cancel();
}
