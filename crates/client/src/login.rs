//! The login flow, including the offer to create a missing account.
//!
//! The server answers a failed login with one generic `auth_failed` for both an unknown user
//! and a wrong password. With a [`Prompter`] (interactive mode) and without `--register`,
//! [`login`] then asks `Login failed. Create a new account 'NAME'? [y/N]`; on yes it has the
//! password repeated and registers on the same connection. If that registration says
//! `username_taken`, the account existed and the password was simply wrong. Without a
//! prompter (plain mode) nothing is asked.

use std::io::{BufRead, Write};

use natter_proto::ErrorCode;

use crate::connection::{Authenticated, ClientError, Connection};

/// Asks the user questions during login.
pub trait Prompter {
    /// Asks a yes/no question; anything but yes counts as no. May block.
    fn confirm(&mut self, question: &str) -> std::io::Result<bool>;
    /// Asks for a password without echoing it. May block.
    fn password(&mut self, prompt: &str) -> std::io::Result<String>;
}

/// Asks on the terminal: questions on stdout, answers from stdin, passwords without echo.
#[derive(Debug, Default)]
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        let mut out = std::io::stdout();
        out.write_all(question.as_bytes())?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(is_yes(&answer))
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<String> {
        rpassword::prompt_password(prompt)
    }
}

/// Whether an answer to a yes/no question means yes (`y` or `yes`, any case).
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
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
    /// Registration after a failed login found the account exists: the password was wrong.
    #[error("wrong password: the account '{user}' already exists")]
    WrongPassword {
        /// The account name.
        user: String,
    },
    /// The repeated password differed, so no account was created.
    #[error("the passwords do not match; no account was created")]
    PasswordMismatch,
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
            ClientError::Refused { code, message } => LoginError::Refused { code, message },
            other => LoginError::Connection(other),
        }
    }
}

/// The question asked after a failed login.
pub fn create_question(user: &str) -> String {
    format!("Login failed. Create a new account '{user}'? [y/N] ")
}

/// Logs in (or registers when `register`), offering to create the account through
/// `prompter` when the login fails.
pub async fn login(
    conn: &mut Connection,
    user: &str,
    password: &str,
    register: bool,
    prompter: Option<&mut dyn Prompter>,
) -> Result<Authenticated, LoginError> {
    let refusal = match conn.authenticate(user, password, register).await {
        Ok(ok) => return Ok(ok),
        Err(ClientError::Refused {
            code: ErrorCode::AuthFailed,
            message,
        }) if !register => message,
        Err(e) => return Err(e.into()),
    };
    let refused = LoginError::Refused {
        code: ErrorCode::AuthFailed,
        message: refusal,
    };
    let Some(prompter) = prompter else {
        return Err(refused);
    };
    if !prompter.confirm(&create_question(user))? {
        return Err(refused);
    }
    if prompter.password("Repeat password: ")? != password {
        return Err(LoginError::PasswordMismatch);
    }
    match conn.authenticate(user, password, true).await {
        Ok(ok) => Ok(ok),
        Err(ClientError::Refused {
            code: ErrorCode::UsernameTaken,
            ..
        }) => Err(LoginError::WrongPassword {
            user: user.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
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
    fn question_names_the_account() {
        assert_eq!(
            create_question("bob"),
            "Login failed. Create a new account 'bob'? [y/N] "
        );
    }
}
