//! The login flow against a scripted server: plain logins, and the interactive offer to
//! create a missing account on the same connection.

mod common;

use common::{FakeServer, T};
use natter_client::login::{self, LoginError, Prompter};
use natter_client::{Authenticated, Connection};
use natter_proto::{ClientFrame, ErrorCode, ServerFrame};
use tokio::time::timeout;

/// Answers questions from a script and records what was asked.
#[derive(Default)]
struct Script {
    create: bool,
    repeated_password: String,
    asked: Vec<String>,
}

impl Prompter for Script {
    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        self.asked.push(question.to_string());
        Ok(self.create)
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<String> {
        self.asked.push(prompt.to_string());
        Ok(self.repeated_password.clone())
    }
}

fn auth(user: &str, password: &str, register: bool) -> ClientFrame {
    ClientFrame::Auth {
        id: None,
        user: user.into(),
        password: password.into(),
        register,
    }
}

fn auth_failed() -> ServerFrame {
    ServerFrame::error(None, ErrorCode::AuthFailed, "invalid user name or password")
}

fn auth_ok(user: &str, registered: bool) -> ServerFrame {
    ServerFrame::AuthOk {
        id: None,
        user: user.into(),
        registered,
    }
}

/// Runs the login (not `Send`, so on this task) alongside the server's script.
async fn run_login<F>(
    conn: &mut Connection,
    register: bool,
    prompter: Option<&mut dyn Prompter>,
    server_script: F,
) -> Result<Authenticated, LoginError>
where
    F: Future<Output = ()>,
{
    let (result, ()) = timeout(T, async {
        tokio::join!(
            login::login(conn, "Bob", "pw-1234567", register, prompter),
            server_script
        )
    })
    .await
    .expect("login finishes in time");
    result
}

#[tokio::test]
async fn login_and_register_report_the_servers_spelling_and_flag() {
    let (mut conn, mut server) = FakeServer::start().await;
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", true));
        server.send(auth_ok("bob", true)).await;
    };
    let ok = run_login(&mut conn, true, None, script).await.expect("ok");
    assert_eq!(
        ok,
        Authenticated {
            user: "bob".into(),
            registered: true
        }
    );
}

#[tokio::test]
async fn plain_mode_asks_nothing_after_a_failed_login() {
    let (mut conn, mut server) = FakeServer::start().await;
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
    };
    let err = run_login(&mut conn, false, None, script)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            &err,
            LoginError::Refused {
                code: ErrorCode::AuthFailed,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn accepting_the_offer_registers_on_the_same_connection() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script {
        create: true,
        repeated_password: "pw-1234567".into(),
        ..Script::default()
    };
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", true));
        server.send(auth_ok("Bob", true)).await;
    };
    let ok = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect("registered");
    assert!(ok.registered);
    assert_eq!(
        answers.asked,
        vec![
            "Login failed. Create a new account 'Bob'? [y/N] ".to_string(),
            "Repeat password: ".to_string()
        ]
    );
}

#[tokio::test]
async fn declining_the_offer_sends_nothing_more() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::default();
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
    };
    let err = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect_err("declined");
    assert!(matches!(err, LoginError::Refused { .. }), "{err:?}");
    assert_eq!(answers.asked.len(), 1, "no password asked after no");
    drop(conn);
    assert_eq!(server.recv().await, None, "no second auth was sent");
}

#[tokio::test]
async fn a_mistyped_repeat_creates_nothing() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script {
        create: true,
        repeated_password: "pw-typo".into(),
        ..Script::default()
    };
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
    };
    let err = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect_err("mismatch");
    assert!(matches!(err, LoginError::PasswordMismatch), "{err:?}");
    drop(conn);
    assert_eq!(server.recv().await, None, "no registration was sent");
}

#[tokio::test]
async fn username_taken_on_the_retry_means_the_password_was_wrong() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script {
        create: true,
        repeated_password: "pw-1234567".into(),
        ..Script::default()
    };
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", true));
        server
            .send(ServerFrame::error(
                None,
                ErrorCode::UsernameTaken,
                "name taken",
            ))
            .await;
    };
    let err = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&err, LoginError::WrongPassword { user } if user == "Bob"),
        "{err:?}"
    );
    assert!(err.to_string().contains("wrong password"), "{err}");
}

#[tokio::test]
async fn other_refusals_are_not_offered_an_account() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script {
        create: true,
        ..Script::default()
    };
    let script = async {
        server.expect().await;
        server
            .send(ServerFrame::error(
                None,
                ErrorCode::InvalidPassword,
                "password too short",
            ))
            .await;
    };
    let err = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            LoginError::Refused {
                code: ErrorCode::InvalidPassword,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(answers.asked.is_empty());
}
