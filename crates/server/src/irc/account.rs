//! Accounts over IRC for clients without SASL: IRCv3 `draft/account-registration`
//! (`REGISTER`) and a NickServ-style service (`/msg NickServ REGISTER|IDENTIFY`, also
//! as the `NICKSERV` and `NS` commands). Both become the session's `auth` frame, so
//! registrations and logins pass the same password rules and login throttle as natter's
//! own clients. The nick is the account: the service logs in to the nick's account only,
//! and `REGISTER` under another name asks the client to take that nick.

use natter_proto::{ClientFrame, ErrorCode};

use super::line::{self, Message};
use super::registration::{State, Via, numeric};
use super::{Conn, USER_HOST};

/// The service's nick.
pub const NICKSERV: &str = "NickServ";

/// Whether `target` (of a PRIVMSG) is the service.
pub fn is_nickserv(target: &str) -> bool {
    target.eq_ignore_ascii_case(NICKSERV)
}

/// Writes a notice from the service.
pub fn notice(out: &mut Vec<u8>, st: &State, text: &str) {
    let source = format!("{NICKSERV}!{NICKSERV}@{USER_HOST}");
    line::write(out, None, &source, "NOTICE", &[st.target(), text]);
}

/// The service's help.
const HELP: &[&str] = &[
    "natter accounts: your nick is your account name.",
    "IDENTIFY <password> - log in to the account named like your nick",
    "REGISTER <password> - create the account named like your nick, and log in",
    "Passwords are at least 8 characters. SASL PLAIN does the same at connection.",
];

impl Conn {
    /// `REGISTER <account> <email> <password>` (draft/account-registration): `*` as the
    /// account means the current nick; the email is not used (natter keeps none).
    pub(super) fn register(
        &self,
        st: &mut State,
        msg: &Message,
        out: &mut Vec<u8>,
        frames: &mut Vec<ClientFrame>,
    ) {
        let fail = |out: &mut Vec<u8>, st: &State, code: &str, account: &str, text: &str| {
            line::write(
                out,
                None,
                &st.server,
                "FAIL",
                &["REGISTER", code, account, text],
            );
        };
        if st.account.is_some() {
            fail(
                out,
                st,
                "ALREADY_AUTHENTICATED",
                "*",
                "You are logged in already",
            );
            return;
        }
        let (Some(account), Some(password)) = (msg.param(0), msg.param(2)) else {
            numeric(out, st, "461", &["REGISTER", "Not enough parameters"]);
            return;
        };
        let account = match (account, st.nick.as_deref()) {
            ("*", Some(nick)) => nick.to_string(),
            ("*", None) => {
                fail(out, st, "BAD_ACCOUNT_NAME", "*", "Choose a nick first");
                return;
            }
            (a, _) => a.to_string(),
        };
        if st.pending.is_some() {
            fail(
                out,
                st,
                "TEMPORARILY_UNAVAILABLE",
                &account,
                "A login is under way",
            );
            return;
        }
        st.pending = Some(Via::Register);
        frames.push(ClientFrame::Auth {
            id: None,
            user: account,
            password: password.to_string(),
            register: true,
        });
    }

    /// A command to the service (`PRIVMSG NickServ :IDENTIFY pw`, `NS IDENTIFY pw`).
    pub(super) fn nickserv(
        &self,
        st: &mut State,
        text: &str,
        out: &mut Vec<u8>,
        frames: &mut Vec<ClientFrame>,
    ) {
        let text = text.trim();
        let (command, rest) = text.split_once(' ').unwrap_or((text, ""));
        let command = command.to_ascii_uppercase();
        // Passwords may hold spaces: everything after the command is the password, except
        // that `IDENTIFY <nick> <password>` may name the (only possible) account first.
        let rest = rest.trim_start();
        match command.as_str() {
            "IDENTIFY" | "REGISTER" | "LOGIN" => {
                if let Some(account) = &st.account {
                    let text = format!("You are logged in as {account} already.");
                    notice(out, st, &text);
                    return;
                }
                let Some(nick) = st.nick.clone() else {
                    notice(out, st, "Choose a nick first: it is your account name.");
                    return;
                };
                let register = command == "REGISTER";
                let password = match rest.split_once(' ') {
                    Some((first, password)) if !register && first.eq_ignore_ascii_case(&nick) => {
                        password.trim_start()
                    }
                    _ => rest,
                };
                if password.is_empty() {
                    let usage = if register {
                        "Usage: REGISTER <password>"
                    } else {
                        "Usage: IDENTIFY <password>"
                    };
                    notice(out, st, usage);
                    return;
                }
                let account = nick;
                if st.pending.is_some() {
                    notice(out, st, "A login is under way; wait for its answer.");
                    return;
                }
                st.pending = Some(Via::NickServ { register });
                frames.push(ClientFrame::Auth {
                    id: None,
                    user: account,
                    password: password.to_string(),
                    register,
                });
            }
            _ => {
                for line in HELP {
                    notice(out, st, line);
                }
            }
        }
    }
}

/// What a login through `REGISTER` or the service writes on success.
pub fn succeeded(out: &mut Vec<u8>, st: &State, via: Via, user: &str) {
    let mask = format!("{}!{}@{USER_HOST}", st.target(), st.target());
    let logged_in = format!("You are now logged in as {user}");
    match via {
        Via::Register => {
            line::write(
                out,
                None,
                &st.server,
                "REGISTER",
                &["SUCCESS", user, "Account created"],
            );
            numeric(out, st, "900", &[&mask, user, &logged_in]);
        }
        Via::NickServ { register } => {
            let text = if register {
                format!("Account {user} created; you are now logged in.")
            } else {
                format!("You are now identified for {user}.")
            };
            notice(out, st, &text);
            numeric(out, st, "900", &[&mask, user, &logged_in]);
        }
        _ => {}
    }
}

/// What a refused `REGISTER` or service login writes.
pub fn refused(out: &mut Vec<u8>, st: &State, via: Via, code: ErrorCode, message: &str) {
    match via {
        Via::Register => {
            let reason = match code {
                ErrorCode::UsernameTaken => "ACCOUNT_EXISTS",
                ErrorCode::InvalidPassword => "WEAK_PASSWORD",
                ErrorCode::InvalidUsername => "BAD_ACCOUNT_NAME",
                _ => "TEMPORARILY_UNAVAILABLE",
            };
            line::write(
                out,
                None,
                &st.server,
                "FAIL",
                &["REGISTER", reason, st.target(), message],
            );
        }
        _ => notice(out, st, &format!("Refused: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn register_and_identify_become_auth_frames() {
        let (conn, _dir) = crate::irc::test_conn().await;
        let conn = Arc::new(conn);
        let mut st = State::new(4, false, "natter".into());
        st.nick = Some("al".into());
        let (mut out, mut frames) = (Vec::new(), Vec::new());
        let msg = line::parse(b"REGISTER * * :long enough").expect("parses");
        conn.register(&mut st, &msg, &mut out, &mut frames);
        assert!(
            matches!(&frames[..], [ClientFrame::Auth { user, password, register: true, .. }] if user == "al" && password == "long enough")
        );
        assert_eq!(st.pending, Some(Via::Register));

        let mut st = State::new(4, false, "natter".into());
        st.nick = Some("al".into());
        let mut frames = Vec::new();
        conn.nickserv(&mut st, "identify secret99", &mut out, &mut frames);
        assert!(
            matches!(&frames[..], [ClientFrame::Auth { user, register: false, .. }] if user == "al")
        );
        let mut frames = Vec::new();
        let mut st = State::new(4, false, "natter".into());
        st.nick = Some("al".into());
        conn.nickserv(&mut st, "IDENTIFY AL with spaces", &mut out, &mut frames);
        assert!(
            matches!(&frames[..], [ClientFrame::Auth { user, password, .. }] if user == "al" && password == "with spaces")
        );
    }
}
