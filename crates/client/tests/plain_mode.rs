//! Plain mode driven through the library: stdin and stdout are in-memory pipes, and the test
//! plays the server on an in-memory connection.

mod common;

use std::time::Duration;

use common::{FakeServer, Output, T};
use natter_client::session::RunError;
use natter_client::{Authenticated, ClientError, SessionOptions, plain};
use natter_proto::{
    ClientFrame, ErrorCode, FrameId, HistoryEntry, PresenceEvent, RoomInfo, ServerFrame,
};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A plain-mode client running as a task, with its stdin, its stdout and the server end.
struct Client {
    stdin: Option<DuplexStream>,
    stdout: Output,
    server: FakeServer,
    task: JoinHandle<Result<String, RunError>>,
}

impl Client {
    async fn start(options: SessionOptions) -> Client {
        let (mut conn, server) = FakeServer::start().await;
        let (stdin, input) = tokio::io::duplex(1 << 16);
        let (output, stdout) = Output::pipe();
        let login = Authenticated {
            user: "alice".into(),
            registered: false,
        };
        let task =
            tokio::spawn(
                async move { plain::run(&mut conn, &login, input, output, &options).await },
            );
        let mut client = Client {
            stdin: Some(stdin),
            stdout,
            server,
            task,
        };
        assert_eq!(client.stdout.line().await, "[system] logged in as alice");
        client
    }

    async fn type_lines(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        timeout(T, stdin.write_all(text.as_bytes()))
            .await
            .expect("in time")
            .expect("client reads stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    async fn finish(self) -> (Result<String, RunError>, Vec<String>) {
        let Client {
            mut stdout, task, ..
        } = self;
        let result = timeout(T, task)
            .await
            .expect("client ends in time")
            .expect("client task did not panic");
        let mut rest = Vec::new();
        for _ in 0..100 {
            match stdout.next().await {
                Some(line) => rest.push(line),
                None => break,
            }
        }
        (result, rest)
    }
}

fn public(text: &str) -> ClientFrame {
    public_in("lobby", text)
}

fn public_in(room: &str, text: &str) -> ClientFrame {
    ClientFrame::Public {
        id: None,
        room: Some(room.into()),
        text: text.into(),
        client_id: None,
    }
}

fn private(to: &str, text: &str) -> ClientFrame {
    ClientFrame::Private {
        id: None,
        to: to.into(),
        text: text.into(),
        client_id: None,
    }
}

/// A frame as the client sent it, with the request id and client id of a message checked
/// (both present; the client id 32 hex digits) and then removed, to compare with
/// [`public`] and [`private`].
fn sent(frame: ClientFrame) -> ClientFrame {
    let check = |id: &Option<_>, client_id: &Option<String>| {
        assert!(
            id.is_some(),
            "a message goes out with a request id: {frame:?}"
        );
        let client_id = client_id.as_deref().expect("a message has a client id");
        assert!(client_id.len() == 32 && client_id.chars().all(|c| c.is_ascii_hexdigit()));
    };
    match frame.clone() {
        ClientFrame::Public {
            id,
            room,
            text,
            client_id,
        } => {
            check(&id, &client_id);
            ClientFrame::Public {
                id: None,
                room,
                text,
                client_id: None,
            }
        }
        ClientFrame::Private {
            id,
            to,
            text,
            client_id,
            ..
        } => {
            check(&id, &client_id);
            ClientFrame::Private {
                id: None,
                to,
                text,
                client_id: None,
            }
        }
        other => other,
    }
}

fn bye() -> ServerFrame {
    ServerFrame::Bye {
        reason: "quit".into(),
    }
}

#[tokio::test]
async fn input_lines_become_frames_and_eof_quits_only_after_bye() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.type_lines("hello all\n/msg bob psst\n/list\n   \n").await;
    c.close_stdin();

    assert_eq!(sent(c.server.expect().await), public("hello all"));
    assert_eq!(sent(c.server.expect().await), private("bob", "psst"));
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::List { id: None }
    );
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Quit {
            id: None,
            message: None
        }
    );

    // Quit was sent, but the client keeps showing what arrives until the server's bye.
    c.server
        .send(ServerFrame::Public {
            msg_id: 1,
            room: "lobby".into(),
            from: "alice".into(),
            text: "hello all".into(),
            ts: 1,
        })
        .await;
    assert_eq!(c.stdout.line().await, "#lobby <alice> hello all");
    assert!(!c.task.is_finished(), "client left before bye");
    c.server.send(bye()).await;

    let (result, rest) = c.finish().await;
    assert_eq!(result.expect("clean end"), "quit");
    assert_eq!(rest, vec!["[bye] quit"]);
}

#[tokio::test]
async fn exit_command_behaves_like_eof_and_ignores_later_lines() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.type_lines("first\n/exit\nnever sent\n").await;
    assert_eq!(sent(c.server.expect().await), public("first"));
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Quit {
            id: None,
            message: None
        }
    );
    c.server.send(bye()).await;
    // Nothing follows quit: after bye the client closes the connection.
    assert_eq!(c.server.recv().await, None);
    let (result, rest) = c.finish().await;
    assert_eq!(result.expect("clean end"), "quit");
    assert_eq!(rest, vec!["[bye] quit"]);
}

#[tokio::test]
async fn pings_are_answered_with_their_id_and_print_nothing() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.server
        .send(ServerFrame::Ping {
            id: Some(FrameId::Str("k1".into())),
        })
        .await;
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Pong {
            id: Some(FrameId::Str("k1".into()))
        }
    );
    c.server.send(ServerFrame::Ping { id: None }).await;
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Pong { id: None }
    );
    c.server
        .send(ServerFrame::System {
            text: "after pings".into(),
        })
        .await;
    // The first line after the pings is the notice: pings printed nothing.
    assert_eq!(c.stdout.line().await, "[system] after pings");
}

#[tokio::test]
async fn every_event_prints_as_exactly_one_line() {
    let mut c = Client::start(SessionOptions::default()).await;
    let events = [
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
            message: None,
        },
        ServerFrame::Public {
            msg_id: 1,
            room: "lobby".into(),
            from: "bob".into(),
            text: "two\nlines".into(),
            ts: 1,
        },
        ServerFrame::Private {
            msg_id: 2,
            from: "bob".into(),
            to: "alice".into(),
            text: "psst\r\n".into(),
            ts: 2,
            late: false,
        },
        ServerFrame::Ok {
            id: FrameId::Num(1),
        },
        ServerFrame::System {
            text: "note".into(),
        },
        ServerFrame::List {
            id: None,
            users: vec!["alice".into(), "bob".into()],
            more: 0,
        },
        ServerFrame::error(None, ErrorCode::UserOffline, "carol is not online"),
        ServerFrame::Pong { id: None },
        ServerFrame::Presence {
            room: "lobby".into(),
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("connection lost".into()),
            message: None,
        },
    ];
    for e in events {
        c.server.send(e).await;
    }
    let expected = [
        "[join] #lobby bob",
        "#lobby <bob> two⏎lines",
        "*bob -> alice* psst⏎",
        "[system] note",
        "[online] alice, bob",
        "[error] carol is not online (user_offline)",
        "[leave] #lobby bob (connection lost)",
    ];
    for want in expected {
        assert_eq!(c.stdout.line().await, want);
    }
    c.server.send(bye()).await;
    let (result, rest) = c.finish().await;
    assert_eq!(result.expect("bye ends cleanly"), "quit");
    assert_eq!(rest, vec!["[bye] quit"]);
}

#[tokio::test]
async fn focus_mode_local_errors_and_help_work_in_plain_mode() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.type_lines("/msg bob\nhi\n/bogus\n/msg public\nall\n//shrug\n/help\n")
        .await;
    assert!(
        c.stdout
            .line()
            .await
            .starts_with("[focus] talking privately to bob")
    );
    assert_eq!(sent(c.server.expect().await), private("bob", "hi"));
    assert!(
        c.stdout
            .line()
            .await
            .starts_with("[error] unknown command '/bogus'")
    );
    assert_eq!(c.stdout.line().await, "[focus] back to #lobby");
    assert_eq!(sent(c.server.expect().await), public("all"));
    assert_eq!(sent(c.server.expect().await), public("/shrug"));
    let help = c.stdout.line().await;
    assert!(help.starts_with("[help] "), "{help}");
    // The unknown command sent nothing: the next frame is the quit after EOF.
    c.close_stdin();
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Quit {
            id: None,
            message: None
        }
    );
}

#[tokio::test]
async fn an_overlong_input_line_is_refused_and_the_next_one_works() {
    let mut c = Client::start(SessionOptions::default()).await;
    let long = "x".repeat(plain::MAX_INPUT_LINE + 10);
    c.type_lines(&format!("{long}\nshort\n")).await;
    assert!(
        c.stdout.line().await.contains("longer than"),
        "too-long line reported"
    );
    assert_eq!(sent(c.server.expect().await), public("short"));
}

#[tokio::test]
async fn an_undecodable_frame_is_skipped() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.server
        .send_raw(b"{\"type\":\"from_the_future\"}\nnot json\n")
        .await;
    c.server
        .send(ServerFrame::System {
            text: "still here".into(),
        })
        .await;
    assert_eq!(c.stdout.line().await, "[system] still here");
}

#[tokio::test]
async fn server_closing_without_bye_is_an_error_after_printing_what_arrived() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.server
        .send(ServerFrame::error(
            None,
            ErrorCode::TooManyFrames,
            "too many frames",
        ))
        .await;
    assert_eq!(
        c.stdout.line().await,
        "[error] too many frames (too_many_frames)"
    );
    let Client {
        server,
        stdin: _stdin,
        mut stdout,
        task,
    } = c;
    drop(server);
    let result = timeout(T, task)
        .await
        .expect("client ends in time")
        .expect("client task did not panic");
    assert!(
        matches!(result, Err(RunError::Connection(ClientError::Closed))),
        "{result:?}"
    );
    assert_eq!(stdout.next().await, None, "nothing more is printed");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_says_bye_cannot_keep_the_client() {
    let options = SessionOptions {
        quit_timeout: Duration::from_secs(3),
        ..SessionOptions::default()
    };
    let mut c = Client::start(options).await;
    c.close_stdin();
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Quit {
            id: None,
            message: None
        }
    );
    let (result, _) = c.finish().await;
    assert!(
        matches!(result, Err(RunError::QuitTimeout(d)) if d == Duration::from_secs(3)),
        "{result:?}"
    );
}

fn entry(msg_id: u64, from: &str, to: Option<&str>, text: &str) -> HistoryEntry {
    HistoryEntry {
        msg_id,
        from: from.into(),
        to: to.map(Into::into),
        text: text.into(),
        ts: 1_795_356_239_999,
    }
}

fn room_history(
    id: Option<FrameId>,
    room: &str,
    messages: Vec<HistoryEntry>,
    last: bool,
) -> ServerFrame {
    ServerFrame::History {
        id,
        room: Some(room.into()),
        with: None,
        messages,
        last,
    }
}

#[tokio::test]
async fn join_holds_the_next_line_until_answered_then_lines_go_to_the_new_room() {
    let mut c = Client::start(SessionOptions::default()).await;
    // Typed all at once: "hello" must wait for the join's answer to know its room.
    c.type_lines("/join #Rust\nhello\n/who\n/rooms\n/part\nback\n")
        .await;
    let ClientFrame::Join { id: Some(id), room } = c.server.expect().await else {
        panic!("join with an id first");
    };
    assert_eq!(room, "rust");
    c.server
        .send(ServerFrame::Joined {
            id: Some(id.clone()),
            room: "rust".into(),
            members: vec!["alice".into(), "bob".into()],
            more: 0,
        })
        .await;
    c.server
        .send(room_history(
            Some(id),
            "rust",
            vec![entry(7, "bob", None, "earlier")],
            true,
        ))
        .await;
    assert_eq!(
        c.stdout.line().await,
        "[joined] #rust (2 members: alice, bob)"
    );
    assert_eq!(c.stdout.line().await, "[history] #rust <bob> earlier");
    // Had the client not waited, this would have gone to the lobby.
    assert_eq!(sent(c.server.expect().await), public_in("rust", "hello"));
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Who {
            id: None,
            room: "rust".into()
        }
    );
    assert_eq!(
        sent(c.server.expect().await),
        ClientFrame::Rooms { id: None }
    );
    c.server
        .send(ServerFrame::Who {
            id: None,
            room: "rust".into(),
            users: vec!["alice".into(), "bob".into()],
            more: 0,
        })
        .await;
    c.server
        .send(ServerFrame::Rooms {
            id: None,
            rooms: vec![
                RoomInfo {
                    name: "lobby".into(),
                    members: 5,
                },
                RoomInfo {
                    name: "rust".into(),
                    members: 2,
                },
            ],
            more: 0,
        })
        .await;
    assert_eq!(c.stdout.line().await, "[who] #rust: alice, bob");
    assert_eq!(c.stdout.line().await, "[rooms] #lobby (5), #rust (2)");

    // /part leaves the current room; the next line goes back to the lobby.
    let ClientFrame::Part {
        id: Some(id), room, ..
    } = c.server.expect().await
    else {
        panic!("part with an id");
    };
    assert_eq!(room, "rust");
    c.server
        .send(ServerFrame::Parted {
            id: Some(id),
            room: "rust".into(),
        })
        .await;
    assert_eq!(c.stdout.line().await, "[parted] #rust");
    assert_eq!(sent(c.server.expect().await), public("back"));
}

#[tokio::test]
async fn a_refused_join_is_shown_and_lines_stay_in_the_current_room() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.type_lines("/join crowded\nstill here\n").await;
    let ClientFrame::Join { id, .. } = c.server.expect().await else {
        panic!("join first");
    };
    c.server
        .send(ServerFrame::error(
            id,
            ErrorCode::TooManyRooms,
            "you are in too many rooms",
        ))
        .await;
    assert_eq!(
        c.stdout.line().await,
        "[error] you are in too many rooms (too_many_rooms)"
    );
    assert_eq!(sent(c.server.expect().await), public("still here"));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_join_holds_input_only_until_the_answer_timeout() {
    let options = SessionOptions {
        answer_timeout: Duration::from_secs(2),
        ..SessionOptions::default()
    };
    let mut c = Client::start(options).await;
    c.type_lines("/join rust\nanyway\n").await;
    assert!(matches!(c.server.expect().await, ClientFrame::Join { .. }));
    assert_eq!(
        c.stdout.line().await,
        "[error] no answer from the server within 2 s; carrying on"
    );
    assert_eq!(sent(c.server.expect().await), public("anyway"));
}

#[tokio::test]
async fn parting_the_last_room_leaves_plain_lines_nowhere_to_go() {
    let mut c = Client::start(SessionOptions::default()).await;
    c.type_lines("/part\nhello?\n/msg bob still works\n").await;
    let ClientFrame::Part { id, room, .. } = c.server.expect().await else {
        panic!("part first");
    };
    assert_eq!(room, "lobby");
    c.server
        .send(ServerFrame::Parted {
            id,
            room: "lobby".into(),
        })
        .await;
    assert_eq!(c.stdout.line().await, "[parted] #lobby");
    assert_eq!(
        c.stdout.line().await,
        "[error] you are in no room; /join ROOM"
    );
    assert_eq!(sent(c.server.expect().await), private("bob", "still works"));
}

#[tokio::test]
async fn history_pages_back_and_says_when_nothing_is_left() {
    let mut c = Client::start(SessionOptions::default()).await;
    // What the server sends after login: the lobby, its latest messages (in two chunks).
    c.server
        .send(ServerFrame::Joined {
            id: None,
            room: "lobby".into(),
            members: vec!["alice".into()],
            more: 0,
        })
        .await;
    c.server
        .send(room_history(
            None,
            "lobby",
            vec![entry(40, "bob", None, "forty")],
            false,
        ))
        .await;
    c.server
        .send(room_history(
            None,
            "lobby",
            vec![entry(41, "bob", None, "forty-one")],
            true,
        ))
        .await;
    assert_eq!(c.stdout.line().await, "[joined] #lobby (1 member: alice)");
    assert_eq!(c.stdout.line().await, "[history] #lobby <bob> forty");
    assert_eq!(c.stdout.line().await, "[history] #lobby <bob> forty-one");

    c.type_lines("/history 2\n").await;
    let ClientFrame::History {
        id,
        room,
        with,
        before,
        limit,
    } = c.server.expect().await
    else {
        panic!("history request");
    };
    assert_eq!(
        (room.as_deref(), with, before, limit),
        (Some("lobby"), None, Some(40), Some(2))
    );
    c.server
        .send(room_history(
            id.clone(),
            "lobby",
            vec![entry(30, "carol", None, "thirty")],
            false,
        ))
        .await;
    c.server
        .send(room_history(
            id,
            "lobby",
            vec![entry(35, "bob", None, "thirty-five")],
            true,
        ))
        .await;
    assert_eq!(c.stdout.line().await, "[history] #lobby <carol> thirty");
    assert_eq!(c.stdout.line().await, "[history] #lobby <bob> thirty-five");

    c.type_lines("/history\n").await;
    let ClientFrame::History { id, before, .. } = c.server.expect().await else {
        panic!("history request");
    };
    assert_eq!(before, Some(30));
    c.server.send(room_history(id, "lobby", vec![], true)).await;
    assert_eq!(
        c.stdout.line().await,
        "[history] #lobby: no earlier messages"
    );

    // A private conversation.
    c.type_lines("/history Bob 5\n").await;
    let ClientFrame::History {
        id,
        room,
        with,
        before,
        limit,
    } = c.server.expect().await
    else {
        panic!("history request");
    };
    assert_eq!(
        (room, with.as_deref(), before, limit),
        (None, Some("Bob"), None, Some(5))
    );
    c.server
        .send(ServerFrame::History {
            id,
            room: None,
            with: Some("bob".into()),
            messages: vec![
                entry(3, "bob", Some("alice"), "hi"),
                entry(4, "alice", Some("bob"), "hey"),
            ],
            last: true,
        })
        .await;
    assert_eq!(c.stdout.line().await, "[history] *bob -> alice* hi");
    assert_eq!(c.stdout.line().await, "[history] *alice -> bob* hey");
}

#[tokio::test]
async fn queued_and_late_private_messages_are_marked() {
    let mut c = Client::start(SessionOptions::default()).await;
    // Delivered at login, sent while alice was offline.
    c.server
        .send(ServerFrame::Private {
            msg_id: 12,
            from: "bob".into(),
            to: "alice".into(),
            text: "you there?".into(),
            ts: 1_795_356_239_999,
            late: true,
        })
        .await;
    assert_eq!(
        c.stdout.line().await,
        "*bob -> alice* you there? (sent 2026-11-22 14:03 UTC, delivered late)"
    );
    c.type_lines("/msg carol see you\n").await;
    assert_eq!(sent(c.server.expect().await), private("carol", "see you"));
    c.server
        .send(ServerFrame::Private {
            msg_id: 13,
            from: "alice".into(),
            to: "carol".into(),
            text: "see you".into(),
            ts: 1,
            late: false,
        })
        .await;
    c.server
        .send(ServerFrame::Queued {
            id: None,
            msg_id: 13,
            to: "carol".into(),
        })
        .await;
    assert_eq!(c.stdout.line().await, "*alice -> carol* see you");
    assert_eq!(
        c.stdout.line().await,
        "[queued] carol is offline; your message will be delivered when they log in"
    );
}
