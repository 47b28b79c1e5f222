//! Plain mode driven through the library: stdin and stdout are in-memory pipes, and the test
//! plays the server on an in-memory connection.

mod common;

use std::time::Duration;

use common::{FakeServer, Output, T};
use natter_client::session::RunError;
use natter_client::{Authenticated, ClientError, SessionOptions, plain};
use natter_proto::{ClientFrame, ErrorCode, FrameId, PresenceEvent, ServerFrame};
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
    ClientFrame::Public {
        id: None,
        text: text.into(),
    }
}

fn private(to: &str, text: &str) -> ClientFrame {
    ClientFrame::Private {
        id: None,
        to: to.into(),
        text: text.into(),
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

    assert_eq!(c.server.expect().await, public("hello all"));
    assert_eq!(c.server.expect().await, private("bob", "psst"));
    assert_eq!(c.server.expect().await, ClientFrame::List { id: None });
    assert_eq!(c.server.expect().await, ClientFrame::Quit { id: None });

    // Quit was sent, but the client keeps showing what arrives until the server's bye.
    c.server
        .send(ServerFrame::Public {
            from: "alice".into(),
            text: "hello all".into(),
            ts: 1,
        })
        .await;
    assert_eq!(c.stdout.line().await, "<alice> hello all");
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
    assert_eq!(c.server.expect().await, public("first"));
    assert_eq!(c.server.expect().await, ClientFrame::Quit { id: None });
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
        c.server.expect().await,
        ClientFrame::Pong {
            id: Some(FrameId::Str("k1".into()))
        }
    );
    c.server.send(ServerFrame::Ping { id: None }).await;
    assert_eq!(c.server.expect().await, ClientFrame::Pong { id: None });
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
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
        },
        ServerFrame::Public {
            from: "bob".into(),
            text: "two\nlines".into(),
            ts: 1,
        },
        ServerFrame::Private {
            from: "bob".into(),
            to: "alice".into(),
            text: "psst\r\n".into(),
            ts: 2,
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
        },
        ServerFrame::error(None, ErrorCode::UserOffline, "carol is not online"),
        ServerFrame::Pong { id: None },
        ServerFrame::Presence {
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("connection lost".into()),
        },
    ];
    for e in events {
        c.server.send(e).await;
    }
    let expected = [
        "[join] bob",
        "<bob> two⏎lines",
        "*bob -> alice* psst⏎",
        "[system] note",
        "[online] alice, bob",
        "[error] carol is not online (user_offline)",
        "[leave] bob (connection lost)",
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
    assert_eq!(c.server.expect().await, private("bob", "hi"));
    assert!(
        c.stdout
            .line()
            .await
            .starts_with("[error] unknown command '/bogus'")
    );
    assert_eq!(c.stdout.line().await, "[focus] back to the public chat");
    assert_eq!(c.server.expect().await, public("all"));
    assert_eq!(c.server.expect().await, public("/shrug"));
    let help = c.stdout.line().await;
    assert!(help.starts_with("[help] "), "{help}");
    // The unknown command sent nothing: the next frame is the quit after EOF.
    c.close_stdin();
    assert_eq!(c.server.expect().await, ClientFrame::Quit { id: None });
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
    assert_eq!(c.server.expect().await, public("short"));
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
    };
    let mut c = Client::start(options).await;
    c.close_stdin();
    assert_eq!(c.server.expect().await, ClientFrame::Quit { id: None });
    let (result, _) = c.finish().await;
    assert!(
        matches!(result, Err(RunError::QuitTimeout(d)) if d == Duration::from_secs(3)),
        "{result:?}"
    );
}
