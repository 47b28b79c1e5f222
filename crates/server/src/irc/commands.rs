//! Commands after the welcome, mapped to the session's frames.
//!
//! Each frame carries a request id that records which IRC command it came from and its
//! target (`m#room`, `nbob`, `j#room`...): the session echoes it on its answer and on
//! errors, so the encoder can answer with the right numeric (404 for a channel, 401 for
//! a nick, 442 for PART) and stay silent on errors about a NOTICE.

use std::sync::Arc;

use natter_proto::{ClientFrame, FrameId, MAX_ID_LEN};

use super::line::Message;
use super::registration::{State, numeric};
use super::{Conn, history, query};

/// PRIVMSG and NOTICE targets per line (TARGMAX).
pub const MAX_TARGETS: usize = 4;

/// What a frame's request id says about the IRC command it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// PRIVMSG.
    Privmsg,
    /// NOTICE (never answered with errors).
    Notice,
    /// JOIN.
    Join,
    /// PART.
    Part,
    /// WHO.
    Who,
    /// NAMES.
    Names,
    /// LIST.
    List,
}

impl Origin {
    fn tag(self) -> char {
        match self {
            Origin::Privmsg => 'm',
            Origin::Notice => 'n',
            Origin::Join => 'j',
            Origin::Part => 'p',
            Origin::Who => 'w',
            Origin::Names => 'N',
            Origin::List => 'l',
        }
    }

    /// The request id for a frame from this command about `target`.
    pub fn id(self, target: &str) -> Option<FrameId> {
        Some(FrameId::Str(format!("{}{target}", self.tag())))
    }

    /// The command and target recorded in `id`, if it is one of ours.
    pub fn parse(id: Option<&FrameId>) -> Option<(Origin, &str)> {
        let Some(FrameId::Str(s)) = id else {
            return None;
        };
        let mut chars = s.chars();
        let origin = match chars.next()? {
            'm' => Origin::Privmsg,
            'n' => Origin::Notice,
            'j' => Origin::Join,
            'p' => Origin::Part,
            'w' => Origin::Who,
            'N' => Origin::Names,
            'l' => Origin::List,
            _ => return None,
        };
        Some((origin, chars.as_str()))
    }
}

/// Maps one command after the welcome to frames (or answers it in `out`).
pub fn command(
    conn: &Arc<Conn>,
    st: &mut State,
    msg: &Message,
    out: &mut Vec<u8>,
    frames: &mut Vec<ClientFrame>,
) {
    let cmd = msg.command.as_str();
    if st.account.is_none() {
        // Welcomed without an account: nothing but logging in (NickServ, REGISTER).
        numeric(out, st, "451", &["You have not logged in"]);
        super::account::notice(out, st, super::registration::LOGIN_NOTICE);
        return;
    }
    let need = |st: &State, out: &mut Vec<u8>, n: usize| {
        let missing = msg.params.len() < n || msg.params[..n].iter().any(String::is_empty);
        if missing {
            numeric(out, st, "461", &[cmd, "Not enough parameters"]);
        }
        !missing
    };
    match cmd {
        "JOIN" => {
            if !need(st, out, 1) {
                return;
            }
            for room in msg.params[0].split(',').filter(|r| !r.is_empty()) {
                if let Some(room) = channel(st, room, out) {
                    frames.push(ClientFrame::Join {
                        id: Origin::Join.id(room),
                        room: room.to_string(),
                    });
                }
            }
        }
        "PART" => {
            if !need(st, out, 1) {
                return;
            }
            let message = msg.param(1).filter(|m| !m.is_empty());
            for room in msg.params[0].split(',').filter(|r| !r.is_empty()) {
                if let Some(room) = channel(st, room, out) {
                    if let Some(m) = message
                        && st.parting.len() < 16
                    {
                        st.parting.push((room.to_string(), m.to_string()));
                    }
                    frames.push(ClientFrame::Part {
                        id: Origin::Part.id(room),
                        room: room.to_string(),
                        message: message.map(str::to_string),
                    });
                }
            }
        }
        "PRIVMSG" | "NOTICE" => {
            let notice = cmd == "NOTICE";
            let origin = if notice {
                Origin::Notice
            } else {
                Origin::Privmsg
            };
            let (Some(targets), text) = (msg.param(0).filter(|t| !t.is_empty()), msg.param(1))
            else {
                if !notice {
                    numeric(out, st, "411", &[&format!("No recipient given ({cmd})")]);
                }
                return;
            };
            let Some(text) = text.filter(|t| !t.is_empty()) else {
                if !notice {
                    numeric(out, st, "412", &["No text to send"]);
                }
                return;
            };
            let Some(text) = ctcp(text) else { return };
            for target in targets
                .split(',')
                .filter(|t| !t.is_empty())
                .take(MAX_TARGETS)
            {
                if target.len() + 1 > MAX_ID_LEN {
                    if !notice {
                        numeric(out, st, "401", &[target, "No such nick/channel"]);
                    }
                    continue;
                }
                let id = origin.id(target);
                if !notice
                    && !target.starts_with('#')
                    && let Some(away) = conn.shared.irc.get(target).and_then(|p| p.away)
                {
                    numeric(out, st, "301", &[target, &away]);
                }
                if notice {
                    let room = target.starts_with('#').then(|| target.to_string());
                    let to = (!target.starts_with('#')).then(|| target.to_string());
                    frames.push(ClientFrame::Notice {
                        id,
                        room,
                        to,
                        text: text.clone(),
                    });
                    continue;
                }
                frames.push(match target.strip_prefix('#') {
                    Some(_) => ClientFrame::Public {
                        id,
                        room: Some(target.to_string()),
                        text: text.clone(),
                        client_id: None,
                    },
                    None => ClientFrame::Private {
                        id,
                        to: target.to_string(),
                        text: text.clone(),
                        client_id: None,
                    },
                });
            }
        }
        // Answered here, from the hub and the gateway's directory.
        "WHO" => query::who(conn, st, msg, out),
        "WHOIS" => query::whois(conn, st, msg, out),
        "NAMES" => query::names_query(conn, st, msg, out),
        "LIST" => query::list(conn, st, msg, out),
        "CHATHISTORY" => history::command(conn, st, msg, out, frames),
        "AWAY" => away(conn, st, msg.param(0).filter(|m| !m.is_empty()), out),
        "OPER" => {
            if need(st, out, 2) {
                oper(conn, st.target(), &msg.params[1]);
            }
        }
        "MODE" => match msg.param(0) {
            // Clients ask for a channel's ban list on every join: natter bans accounts
            // from the whole server, so a room's list is empty.
            Some(t) if t.starts_with('#') && msg.param(1).is_some_and(|m| m.contains('b')) => {
                numeric(out, st, "368", &[t, "End of channel ban list"])
            }
            // Clients ask for a channel's modes on every join; natter rooms have none.
            Some(t) if t.starts_with('#') => numeric(out, st, "324", &[t, "+"]),
            Some(_) => numeric(out, st, "221", &["+i"]),
            None => {
                need(st, out, 1);
            }
        },
        _ => numeric(out, st, "421", &[cmd, "Unknown command"]),
    }
}

/// AWAY: sets or clears the away message that WHO, WHOIS and PRIVMSG senders see.
fn away(conn: &Conn, st: &State, message: Option<&str>, out: &mut Vec<u8>) {
    let message = message.map(|m| {
        let m = natter_proto::neutralize(m);
        m.chars().take(MAX_AWAY_CHARS).collect::<String>()
    });
    let reply = match &message {
        Some(_) => ("306", "You have been marked as being away"),
        None => ("305", "You are no longer marked as being away"),
    };
    conn.shared
        .irc
        .update(st.target(), |p| p.away = message.clone());
    numeric(out, st, reply.0, &[reply.1]);
    conn.shared
        .irc
        .notify_away(&*conn.shared.bus, st.target(), message.as_deref());
}

/// Longest AWAY message kept, in characters.
const MAX_AWAY_CHARS: usize = 200;

/// OPER: natter has one operator password (the web console's). Checked behind the
/// operator login throttle, off the connection's lock (a hash takes a while); the next
/// line is read once the answer is out. The operator name is not checked: there is one.
fn oper(conn: &Arc<Conn>, nick: &str, password: &str) {
    let (work, nick, password) = (conn.clone(), nick.to_string(), password.to_string());
    let check = Box::pin(async move {
        let conn = work;
        let shared = &conn.shared;
        let result = shared
            .operator
            .check(&shared.auth, &password, conn.peer.ip())
            .await;
        let mut out = Vec::new();
        {
            let st = conn.lock();
            match result {
                Ok(()) => {
                    shared.irc.update(&nick, |p| p.oper = true);
                    tracing::info!(user = %nick, peer = %conn.peer, "IRC operator");
                    numeric(&mut out, &st, "381", &["You are now an IRC operator"]);
                }
                Err(_) => numeric(&mut out, &st, "464", &["Password incorrect"]),
            }
        }
        conn.emit(out);
    });
    *conn.blocking.lock().unwrap_or_else(|p| p.into_inner()) = Some(check);
}

/// Checks a channel name: natter rooms are `#name` on IRC (CHANTYPES=#); the session
/// applies the naming rules itself.
fn channel<'a>(st: &State, name: &'a str, out: &mut Vec<u8>) -> Option<&'a str> {
    if name.starts_with('#') && name.len() < MAX_ID_LEN {
        return Some(name);
    }
    numeric(
        out,
        st,
        "403",
        &[name, "No such channel (natter rooms start with #)"],
    );
    None
}

/// The text natter stores for a PRIVMSG: a CTCP ACTION becomes `* text` (natter has no
/// actions, and stores no control characters); other CTCP requests are dropped.
fn ctcp(text: &str) -> Option<String> {
    let Some(inner) = text.strip_prefix('\u{1}') else {
        return Some(text.to_string());
    };
    let inner = inner.strip_suffix('\u{1}').unwrap_or(inner);
    let action = inner.strip_prefix("ACTION ")?;
    Some(format!("* {action}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one command as the welcomed alice; returns what was written and the frames.
    async fn run(line: &str) -> (String, Vec<ClientFrame>) {
        let (conn, _dir) = crate::irc::test_conn().await;
        let mut st = State::new(20, false, "natter".into());
        st.nick = Some("alice".into());
        st.account = Some("alice".into());
        st.welcomed = true;
        let msg = crate::irc::line::parse(line.as_bytes()).expect("parses");
        let (mut out, mut frames) = (Vec::new(), Vec::new());
        command(&Arc::new(conn), &mut st, &msg, &mut out, &mut frames);
        (String::from_utf8(out).expect("utf8"), frames)
    }

    #[tokio::test]
    async fn join_and_privmsg_map_to_frames_with_origin_ids() {
        let (out, frames) = run("JOIN #a,#b").await;
        assert!(out.is_empty());
        assert_eq!(frames.len(), 2);
        assert!(
            matches!(&frames[1], ClientFrame::Join { room, id } if room == "#b" && Origin::parse(id.as_ref()) == Some((Origin::Join, "#b")))
        );
        let (_, frames) = run("PRIVMSG #a,bob :hi there").await;
        assert!(
            matches!(&frames[0], ClientFrame::Public { room: Some(r), text, .. } if r == "#a" && text == "hi there")
        );
        assert!(matches!(&frames[1], ClientFrame::Private { to, .. } if to == "bob"));
        let (_, frames) = run("PRIVMSG #a :\u{1}ACTION waves\u{1}").await;
        assert!(matches!(&frames[0], ClientFrame::Public { text, .. } if text == "* waves"));
        let (_, frames) = run("PRIVMSG #a :\u{1}VERSION\u{1}").await;
        assert!(frames.is_empty());
    }

    #[tokio::test]
    async fn errors_are_numerics_and_notice_is_silent() {
        assert!(run("JOIN").await.0.starts_with(":natter 461 alice JOIN "));
        assert!(
            run("JOIN lobby")
                .await
                .0
                .starts_with(":natter 403 alice lobby ")
        );
        assert!(run("PRIVMSG #a").await.0.starts_with(":natter 412 alice "));
        assert!(run("PRIVMSG").await.0.starts_with(":natter 411 alice "));
        assert!(run("NOTICE #a").await.0.is_empty());
        assert!(run("FOO bar").await.0.starts_with(":natter 421 alice FOO "));
    }
}
