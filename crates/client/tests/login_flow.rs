//! The login flow against a scripted server: plain logins; after a failed interactive login,
//! retrying the password (the default), creating the account on the same connection, and
//! reconnecting when the server closed the connection.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use common::{FakeServer, T};
use natter_client::login::{self, LoginError, Prompter, Reconnect, failure_question};
use natter_client::{Authenticated, ClientError, Connection};
use natter_proto::{ClientFrame, ErrorCode, ServerFrame};
use tokio::time::timeout;

/// Answers questions from a script and records what was asked and said.
#[derive(Default)]
struct Script {
    /// Answers to [`Prompter::ask`], in order.
    answers: VecDeque<&'static str>,
    /// Answers to [`Prompter::password`], in order.
    passwords: VecDeque<&'static str>,
    asked: Vec<String>,
    said: Vec<String>,
}

impl Script {
    fn new(answers: &[&'static str], passwords: &[&'static str]) -> Script {
        Script {
            answers: answers.iter().copied().collect(),
            passwords: passwords.iter().copied().collect(),
            ..Script::default()
        }
    }
}

fn unexpected(what: &str) -> std::io::Error {
    std::io::Error::other(format!("unexpected {what}"))
}

impl Prompter for Script {
    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        self.asked.push(question.to_string());
        Err(unexpected("yes/no question"))
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<String> {
        self.asked.push(prompt.to_string());
        let p = self
            .passwords
            .pop_front()
            .ok_or_else(|| unexpected(prompt))?;
        Ok(p.to_string())
    }

    fn ask(&mut self, question: &str) -> std::io::Result<String> {
        self.asked.push(question.to_string());
        let a = self
            .answers
            .pop_front()
            .ok_or_else(|| unexpected(question))?;
        Ok(a.to_string())
    }

    fn say(&mut self, text: &str) -> std::io::Result<()> {
        self.said.push(text.to_string());
        Ok(())
    }
}

/// Hands out one prepared connection.
struct Spare(Option<Connection>);

impl Reconnect for Spare {
    fn reconnect(&mut self) -> Pin<Box<dyn Future<Output = Result<Connection, ClientError>> + '_>> {
        let conn = self.0.take().ok_or(ClientError::Closed);
        Box::pin(async move { conn })
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
            login::login(conn, "Bob", "pw-1234567", register, prompter, None),
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
async fn after_a_failed_login_enter_retries_the_password() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::new(&[""], &["pw-right"]);
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
        assert_eq!(server.expect().await, auth("Bob", "pw-right", false));
        server.send(auth_ok("bob", false)).await;
    };
    let ok = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect("logged in");
    assert!(!ok.registered);
    assert_eq!(
        answers.asked,
        vec![failure_question("Bob"), "Password for Bob: ".to_string()]
    );
}

#[tokio::test]
async fn choosing_create_registers_on_the_same_connection() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::new(&["c"], &["pw-1234567"]);
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
        vec![failure_question("Bob"), "Repeat password: ".to_string()]
    );
}

#[tokio::test]
async fn quitting_sends_nothing_more() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::new(&["q"], &[]);
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
    };
    let err = run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect_err("gave up");
    assert!(matches!(err, LoginError::GaveUp), "{err:?}");
    drop(conn);
    assert_eq!(server.recv().await, None, "no second auth was sent");
}

#[tokio::test]
async fn a_mistyped_repeat_asks_again() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::new(&["c"], &["pw-typo", "pw-7654321", "pw-7654321"]);
    let script = async {
        assert_eq!(server.expect().await, auth("Bob", "pw-1234567", false));
        server.send(auth_failed()).await;
        assert_eq!(server.expect().await, auth("Bob", "pw-7654321", true));
        server.send(auth_ok("Bob", true)).await;
    };
    run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect("registered");
    assert_eq!(
        answers.said,
        vec!["The passwords do not match; try again.".to_string()]
    );
    assert_eq!(answers.asked[2], "New password for Bob: ");
}

#[tokio::test]
async fn a_taken_name_goes_back_to_the_password_prompt() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::new(&["c"], &["pw-1234567", "pw-right"]);
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
        assert_eq!(server.expect().await, auth("Bob", "pw-right", false));
        server.send(auth_ok("bob", false)).await;
    };
    run_login(&mut conn, false, Some(&mut answers), script)
        .await
        .expect("logged in");
    assert_eq!(
        answers.said,
        vec!["The account 'Bob' already exists, so the password was wrong.".to_string()]
    );
    assert_eq!(
        answers.asked.last().map(String::as_str),
        Some("Password for Bob: ")
    );
}

#[tokio::test]
async fn a_server_that_closed_after_failures_is_reconnected_to() {
    let (mut conn, mut first) = FakeServer::start().await;
    let (spare, mut second) = FakeServer::start().await;
    let mut spare = Spare(Some(spare));
    let mut answers = Script::new(&[""], &["pw-right"]);
    let script = async {
        assert_eq!(first.expect().await, auth("Bob", "pw-1234567", false));
        first.send(auth_failed()).await;
        first
            .send(ServerFrame::Bye {
                reason: "too many failed logins".into(),
            })
            .await;
        // The retry reaches the closed session, which answered with that bye.
        assert_eq!(first.expect().await, auth("Bob", "pw-right", false));
        assert_eq!(second.expect().await, auth("Bob", "pw-right", false));
        second.send(auth_ok("bob", false)).await;
    };
    let (result, ()) = timeout(T, async {
        tokio::join!(
            login::login(
                &mut conn,
                "Bob",
                "pw-1234567",
                false,
                Some(&mut answers),
                Some(&mut spare)
            ),
            script
        )
    })
    .await
    .expect("login finishes in time");
    result.expect("logged in on the new connection");
    assert_eq!(
        answers.said,
        vec!["The server ended the connection: too many failed logins. Reconnecting.".to_string()]
    );
}

#[tokio::test]
async fn other_refusals_are_not_offered_an_account() {
    let (mut conn, mut server) = FakeServer::start().await;
    let mut answers = Script::default();
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
