//! The login flow: retrying a mistyped password, and creating an account on request.
//!
//! The server answers a failed login with one generic `auth_failed` for both an unknown user
//! and a wrong password, and the client learns nothing more. With a [`Prompter`]
//! (interactive mode) and without `--register`, [`login`] then asks
//! `Login failed. [R]etry password / [c]reate account 'NAME' / [q]uit: ` ([`failure_question`]).
//! Enter retries, as ssh does: the password is asked again and the login repeated. `c` has the
//! password repeated (asked again on a mismatch) and registers; if the server answers
//! `username_taken`, the account exists, which a registration reveals to anyone anyway, so
//! the client says so and asks for the password again. Without a prompter (plain mode,
//! scripts) nothing is asked and the first refusal is final; `--register` registers once.
//!
//! The server closes a connection after a few failed logins (and delays repeated ones).
//! When that happens mid-flow, the client says so and, given a [`Reconnect`], opens a new
//! connection for the next attempt.

use std::future::Future;

use std::pin::Pin;

use natter_proto::ErrorCode;

use crate::connection::{Authenticated, ClientError, Connection};
pub use crate::prompt::{Prompter, TerminalPrompter, is_yes};

/// How many login or registration attempts one [`login`] makes before giving up.
const MAX_ATTEMPTS: usize = 10;

/// How many times an answer is asked for again when it is not understood or does not match.
const MAX_ASKS: usize = 3;

/// Opens a fresh connection to the same server, for when it closed the old one.
pub trait Reconnect {
    /// A new connection whose `hello` has been read.
    fn reconnect(&mut self) -> Pin<Box<dyn Future<Output = Result<Connection, ClientError>> + '_>>;
}

/// What the user chose after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Type the password again (the default).
    Retry,
    /// Create the account.
    Create,
    /// Give up.
    Quit,
}

/// Reads an answer to [`failure_question`]: Enter or `r` retries, `c` creates, `q` quits
/// (whole words too, any case); `None` for anything else.
pub fn parse_after_failure(answer: &str) -> Option<AfterFailure> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "r" | "retry" => Some(AfterFailure::Retry),
        "c" | "create" => Some(AfterFailure::Create),
        "q" | "quit" => Some(AfterFailure::Quit),
        _ => None,
    }
}

/// Why logging in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The server refused the login or registration.
    #[error("login failed: {message} ({code})")]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The repeated password differed every time, so no account was created.
    #[error("the passwords do not match; no account was created")]
    PasswordMismatch,
    /// The user chose to stop after a failed login.
    #[error("login failed; gave up")]
    GaveUp,
    /// The server ended the connection during login (after too many failed logins, say).
    #[error("the server ended the connection: {reason}; run natter again to retry")]
    ServerClosed {
        /// The server's reason, or a description of the close.
        reason: String,
    },
    /// The connection failed.
    #[error(transparent)]
    Connection(ClientError),
    /// Asking the user failed.
    #[error("cannot read your answer: {0}")]
    Prompt(#[from] std::io::Error),
}

impl From<ClientError> for LoginError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused {
                code: ErrorCode::Unknown,
                message,
            } => LoginError::ServerClosed { reason: message },
            ClientError::Refused { code, message } => LoginError::Refused { code, message },
            ClientError::Closed => LoginError::ServerClosed {
                reason: "it closed the connection".into(),
            },
            other => LoginError::Connection(other),
        }
    }
}

/// The question asked after a failed login; Enter retries.
pub fn failure_question(user: &str) -> String {
    format!("Login failed. [R]etry password / [c]reate account '{user}' / [q]uit: ")
}

/// The prompt for a password of `user`.
pub fn password_prompt(user: &str) -> String {
    format!("Password for {user}: ")
}

/// Has a new account's `password` repeated; on a mismatch says so and asks for the new
/// password and its repetition again (a few times at most).
pub fn confirm_new_password(
    prompter: &mut dyn Prompter,
    user: &str,
    password: String,
) -> Result<String, LoginError> {
    let mut password = password;
    for asked in 0..MAX_ASKS {
        if prompter.password("Repeat password: ")? == password {
            return Ok(password);
        }
        if asked + 1 < MAX_ASKS {
            prompter.say("The passwords do not match; try again.")?;
            password = prompter.password(&format!("New password for {user}: "))?;
        }
    }
    Err(LoginError::PasswordMismatch)
}

/// Whether an error means the server is gone: closed, or said `bye`.
fn server_closed(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Closed
            | ClientError::Io(_)
            | ClientError::Refused {
                code: ErrorCode::Unknown,
                ..
            }
    )
}

/// One login or registration; when the server had closed the connection (it does after
/// too many failures) says so, reconnects if it can and tries once more.
async fn attempt(
    conn: &mut Connection,
    reconnect: &mut Option<&mut dyn Reconnect>,
    prompter: &mut dyn Prompter,
    user: &str,
    password: &str,
    register: bool,
) -> Result<Authenticated, ClientError> {
    match conn.authenticate(user, password, register).await {
        Err(e) if server_closed(&e) => {
            let Some(reconnect) = reconnect.as_deref_mut() else {
                return Err(e);
            };
            let note = match &e {
                ClientError::Refused { message, .. } => {
                    format!("The server ended the connection: {message}. Reconnecting.")
                }
                _ => "The server closed the connection. Reconnecting.".to_string(),
            };
            // Best effort: failing to show the note must not stop the login.
            let _ = prompter.say(&note);
            *conn = reconnect.reconnect().await?;
            conn.authenticate(user, password, register).await
        }
        other => other,
    }
}

/// Logs in (or registers when `register`). After a failed login, `prompter` (interactive
/// mode) offers to retry the password (the default), to create the account, or to quit;
/// `reconnect` replaces the connection if the server closed it meanwhile.
pub async fn login(
    conn: &mut Connection,
    user: &str,
    password: &str,
    register: bool,
    prompter: Option<&mut dyn Prompter>,
    reconnect: Option<&mut dyn Reconnect>,
) -> Result<Authenticated, LoginError> {
    login_keeping_password(conn, user, password, register, prompter, reconnect)
        .await
        .map(|(ok, _)| ok)
}

/// Like [`login`], but also returns the password that worked (it may have been typed
/// again), for logging in again after a reconnect.
pub async fn login_keeping_password(
    conn: &mut Connection,
    user: &str,
    password: &str,
    register: bool,
    prompter: Option<&mut dyn Prompter>,
    mut reconnect: Option<&mut dyn Reconnect>,
) -> Result<(Authenticated, String), LoginError> {
    let Some(prompter) = prompter.filter(|_| !register) else {
        let ok = conn.authenticate(user, password, register).await?;
        return Ok((ok, password.to_string()));
    };
    let mut password = password.to_string();
    let mut register = false;
    for _ in 0..MAX_ATTEMPTS {
        let error = match attempt(conn, &mut reconnect, prompter, user, &password, register).await {
            Ok(ok) => return Ok((ok, password)),
            Err(e) => e,
        };
        match error {
            ClientError::Refused {
                code: ErrorCode::AuthFailed,
                ..
            } if !register => match ask_after_failure(prompter, user)? {
                AfterFailure::Retry => password = prompter.password(&password_prompt(user))?,
                AfterFailure::Create => {
                    password = confirm_new_password(prompter, user, password)?;
                    register = true;
                }
                AfterFailure::Quit => return Err(LoginError::GaveUp),
            },
            ClientError::Refused {
                code: ErrorCode::UsernameTaken,
                ..
            } if register => {
                prompter.say(&format!(
                    "The account '{user}' already exists, so the password was wrong."
                ))?;
                password = prompter.password(&password_prompt(user))?;
                register = false;
            }
            ClientError::Refused {
                code: ErrorCode::InvalidPassword,
                message,
            } if register => {
                // Too short, say: choose another one for the new account.
                prompter.say(&format!("That password cannot be used: {message}"))?;
                let again = prompter.password(&format!("New password for {user}: "))?;
                password = confirm_new_password(prompter, user, again)?;
            }
            other => return Err(other.into()),
        }
    }
    Err(LoginError::GaveUp)
}

/// Asks what to do after a failed login until the answer is understood (a few times).
fn ask_after_failure(prompter: &mut dyn Prompter, user: &str) -> Result<AfterFailure, LoginError> {
    for _ in 0..MAX_ASKS {
        if let Some(choice) = parse_after_failure(&prompter.ask(&failure_question(user))?) {
            return Ok(choice);
        }
        prompter
            .say("Press Enter (or r) to retry the password, c to create the account, q to quit.")?;
    }
    Ok(AfterFailure::Quit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yes_means_y_or_yes() {
        for a in ["y", "Y\n", " yes ", "YES\r\n"] {
            assert!(is_yes(a), "{a:?}");
        }
        for a in ["", "\n", "n", "no", "yep", "ja"] {
            assert!(!is_yes(a), "{a:?}");
        }
    }

    #[test]
    fn question_names_the_account_and_enter_retries() {
        assert_eq!(
            failure_question("bob"),
            "Login failed. [R]etry password / [c]reate account 'bob' / [q]uit: "
        );
        for (answer, choice) in [
            ("", Some(AfterFailure::Retry)),
            ("R", Some(AfterFailure::Retry)),
            ("retry", Some(AfterFailure::Retry)),
            (" c ", Some(AfterFailure::Create)),
            ("Create", Some(AfterFailure::Create)),
            ("q", Some(AfterFailure::Quit)),
            ("y", None),
            ("yes", None),
        ] {
            assert_eq!(parse_after_failure(answer), choice, "{answer:?}");
        }
    }
}
