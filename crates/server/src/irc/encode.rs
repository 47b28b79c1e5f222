//! Server frames as IRC lines.
//!
//! Frames fanned out to many sessions (room and private messages, presence, server
//! notices) are encoded from the frame alone, so every IRC recipient shares one encoding
//! per slot: [`IRC_SLOT`] without tags, [`IRC_TAGGED_SLOT`] with `@time=` for clients
//! that negotiated server-time, [`IRC_MSGID_SLOT`] with `@time=...;msgid=...` for clients
//! that negotiated message-tags (they accept any tag, so they get `time` too). Replies to this session alone (numerics name the
//! client's nick) use the connection's state; before the login succeeds they go through
//! the adapter's side channel, as registration replies.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use natter_proto::{ErrorCode, PresenceEvent, ServerFrame};

use super::commands::Origin;
use super::directory::Directory;
use super::label;
use super::line::{self, MAX_BODY};
use super::registration::Caps;
use super::registration::{LOGIN_NOTICE, State, login_refused, numeric};
use super::{Conn, IRC_MSGID_SLOT, IRC_SLOT, IRC_TAGGED_SLOT, USER_HOST, history, query};
use crate::codec::Encoder;

/// Encodes one IRC connection's frames.
pub struct IrcEncoder {
    /// The connection's state.
    conn: Arc<Conn>,
}

impl IrcEncoder {
    /// The encoder of `conn`.
    pub fn new(conn: Arc<Conn>) -> IrcEncoder {
        IrcEncoder { conn }
    }
}

impl Encoder for IrcEncoder {
    fn slot(&self) -> usize {
        self.conn.slot.load(Ordering::Relaxed)
    }

    /// Without echo-message, the client's own messages are left out: natter sends a room
    /// message back to its sender (that is how its own clients learn it was accepted),
    /// but an IRC client without echo-message shows what it sent itself. A delivery of
    /// messages comes from one sender (a run of one session's messages to one room, or
    /// one private message), so it is skipped whole. Messages from the same account's
    /// other sessions are therefore not shown to such a client either.
    fn may_skip(&self) -> bool {
        true
    }

    fn skips(&self, frames: &[ServerFrame]) -> bool {
        if self.conn.echo.load(Ordering::Relaxed) {
            return false;
        }
        let Some(me) = self.conn.account.get() else {
            return false;
        };
        !frames.is_empty()
            && frames.iter().all(|f| match f {
                ServerFrame::Public { from, .. }
                | ServerFrame::Private { from, .. }
                | ServerFrame::Notice { from, .. } => from.eq_ignore_ascii_case(me),
                _ => false,
            })
    }

    fn encode_into(&self, frame: &ServerFrame, out: &mut Vec<u8>) {
        let slot = self.slot();
        if shared(frame, slot, &self.conn.server, out) {
            return;
        }
        if let ServerFrame::AuthOk { user, .. } = frame {
            self.conn.on_auth_ok(user);
            return;
        }
        let mut st = self.conn.lock();
        // A connection closing before its welcome (logged in, nick not yet the account's)
        // still gets its ERROR: the held outbox would never be written.
        let early =
            st.account.is_none() || (!st.welcomed && matches!(frame, ServerFrame::Bye { .. }));
        let dir = &self.conn.shared.irc;
        if !early {
            if history::on_pong(&self.conn, frame) {
                return;
            }
            if let ServerFrame::Pong {
                id: Some(natter_proto::FrameId::Str(id)),
            } = frame
                && id == label::END_ID
            {
                if let Some(open) = st.label.take() {
                    st.batches += 1;
                    let server = st.server.clone();
                    label::close(open, &server, st.batches, out);
                }
                return;
            }
            let start = out.len();
            reply(&mut st, dir, frame, slot, out);
            if let Some(open) = st.label.as_mut() {
                open.push(&out[start..]);
                out.truncate(start);
            }
        } else {
            // Before the login: a registration reply, written ahead of the held outbox.
            let mut early = Vec::new();
            reply(&mut st, dir, frame, slot, &mut early);
            drop(st);
            self.conn.emit(early);
        }
    }
}

/// The delivery slot of a connection with these capabilities: which tags its lines
/// carry.
pub fn slot_of(caps: &Caps) -> usize {
    if caps.message_tags || caps.account_tag {
        IRC_MSGID_SLOT
    } else if caps.server_time {
        IRC_TAGGED_SLOT
    } else {
        IRC_SLOT
    }
}

/// The tags of a message line from `from` in `slot`, without the `@`: `time=`
/// (server-time, message-tags or account-tag), and with message-tags or account-tag
/// `msgid=` (stored messages) and `account=` (account-tag: in natter the sender's
/// account is their nick; IRCv3 clients ignore tags they did not ask for).
pub fn message_tags(slot: usize, ts: u64, msg_id: Option<u64>, from: &str) -> Option<String> {
    let time = line::server_time(ts);
    match (slot, msg_id) {
        (IRC_MSGID_SLOT, Some(id)) => Some(format!("time={time};msgid={id};account={from}")),
        (IRC_MSGID_SLOT, None) => Some(format!("time={time};account={from}")),
        (IRC_TAGGED_SLOT, _) => Some(format!("time={time}")),
        _ => None,
    }
}

/// `nick!nick@natter`.
pub(super) fn mask(nick: &str) -> String {
    format!("{nick}!{nick}@{USER_HOST}")
}

/// `#room`.
pub(super) fn chan(room: &str) -> String {
    format!("#{room}")
}

/// Room names come from the session without `#`; errors may echo either form.
fn with_hash(room: &str) -> String {
    if room.starts_with('#') {
        room.to_string()
    } else {
        chan(room)
    }
}

/// Writes a message as PRIVMSG lines of at most [`MAX_BODY`] bytes each: one per line
/// of its text, long ones split.
pub(super) fn privmsg(out: &mut Vec<u8>, tags: Option<&str>, from: &str, target: &str, text: &str) {
    let source = mask(from);
    // ":" source " PRIVMSG " target " :" text "\r\n"
    let room_for_text = MAX_BODY.saturating_sub(source.len() + target.len() + 14);
    for piece in line::split_text(text, room_for_text) {
        line::write(out, tags, &source, "PRIVMSG", &[target, piece]);
    }
}

/// Encodes the frames that are fanned out; false for a reply to this session alone.
fn shared(frame: &ServerFrame, slot: usize, server: &str, out: &mut Vec<u8>) -> bool {
    match frame {
        ServerFrame::Public {
            msg_id,
            room,
            from,
            text,
            ts,
        } => {
            let tags = message_tags(slot, *ts, Some(*msg_id), from);
            privmsg(out, tags.as_deref(), from, &chan(room), text);
        }
        ServerFrame::Private {
            msg_id,
            from,
            to,
            text,
            ts,
            ..
        } => {
            let tags = message_tags(slot, *ts, Some(*msg_id), from);
            privmsg(out, tags.as_deref(), from, to, text);
        }
        ServerFrame::Notice {
            room,
            from,
            to,
            text,
            ts,
        } => {
            let target = match (room, to) {
                (Some(room), _) => chan(room),
                (None, to) => to.clone().unwrap_or_default(),
            };
            // Notices are not stored: no msgid.
            let tags = message_tags(slot, *ts, None, from);
            let source = mask(from);
            let room_for_text = MAX_BODY.saturating_sub(source.len() + target.len() + 13);
            for piece in line::split_text(text, room_for_text) {
                line::write(out, tags.as_deref(), &source, "NOTICE", &[&target, piece]);
            }
        }
        ServerFrame::Presence {
            room,
            user,
            event: PresenceEvent::Join,
            ..
        } => {
            line::write(out, None, &mask(user), "JOIN", &[&chan(room)]);
        }
        ServerFrame::Presence {
            room,
            user,
            event: PresenceEvent::Leave,
            reason,
            message,
        } => {
            let parting = message.as_deref();
            match (reason.as_deref(), parting) {
                (None | Some("part"), None) => {
                    line::write(out, None, &mask(user), "PART", &[&chan(room)])
                }
                (None | Some("part"), Some(m)) => {
                    line::write(out, None, &mask(user), "PART", &[&chan(room), m])
                }
                // natter reports a disconnect per shared room; IRC calls that a QUIT.
                (Some(reason), m) => {
                    let text = match m {
                        Some(m) => format!("Quit: {m}"),
                        None => reason.to_string(),
                    };
                    line::write(out, None, &mask(user), "QUIT", &[&text])
                }
            }
        }
        // A large room's summary: a JOIN or PART per listed name (at most 50 of each a
        // second), and a notice counting the rest, which IRC clients cannot be shown.
        ServerFrame::PresenceSummary {
            room,
            members,
            joined,
            joined_more,
            left,
            left_more,
        } => {
            for user in joined {
                line::write(out, None, &mask(user), "JOIN", &[&chan(room)]);
            }
            for user in left {
                line::write(out, None, &mask(user), "PART", &[&chan(room)]);
            }
            if *joined_more > 0 || *left_more > 0 {
                let text = format!(
                    "{joined_more} more joined and {left_more} more left; {members} members \
                     (a large room: not every join and leave is shown)"
                );
                line::write(out, None, server, "NOTICE", &[&chan(room), &text]);
            }
        }
        ServerFrame::System { text } => {
            for piece in line::split_text(text, MAX_BODY - 40) {
                line::write(out, None, server, "NOTICE", &["*", piece]);
            }
        }
        _ => return false,
    }
    true
}

/// Encodes a reply to this session alone.
fn reply(st: &mut State, dir: &Directory, frame: &ServerFrame, slot: usize, out: &mut Vec<u8>) {
    let nick = st.target().to_string();
    let server = st.server.clone();
    let notice = |out: &mut Vec<u8>, text: &str| {
        line::write(out, None, &server, "NOTICE", &[&nick, text]);
    };
    match frame {
        ServerFrame::Hello { .. } => notice(
            out,
            "*** natter: log in with SASL PLAIN or PASS account:password",
        ),
        ServerFrame::Joined {
            room,
            members,
            more,
            ..
        } => {
            line::write(out, None, &mask(&nick), "JOIN", &[&chan(room)]);
            query::names(out, st, dir, room, members, *more as usize);
        }
        ServerFrame::Parted { room, .. } => match take_parting(st, room) {
            Some(m) => line::write(out, None, &mask(&nick), "PART", &[&chan(room), &m]),
            None => line::write(out, None, &mask(&nick), "PART", &[&chan(room)]),
        },
        // The replay after a JOIN (the only history the gateway does not ask for): a
        // client with draft/chathistory asks for what it wants itself.
        ServerFrame::History { id: None, .. } if st.caps.chathistory => {}
        ServerFrame::History {
            room,
            with,
            messages,
            ..
        } => {
            for m in messages {
                let tags = message_tags(slot, m.ts, Some(m.msg_id), &m.from);
                let target = match (room, &m.to, with) {
                    (Some(room), _, _) => chan(room),
                    (None, Some(to), _) => to.clone(),
                    (None, None, Some(w)) => w.clone(),
                    (None, None, None) => nick.clone(),
                };
                privmsg(out, tags.as_deref(), &m.from, &target, &m.text);
            }
        }
        ServerFrame::Queued { id, to, .. }
            if !Origin::parse(id.as_ref()).is_some_and(|(o, _)| o == Origin::Notice) =>
        {
            notice(
                out,
                &format!("{to} is offline; your message is kept and delivered when they log in"),
            );
        }
        ServerFrame::List { users, more, .. } => {
            let extra = if *more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            notice(out, &format!("Online: {}{extra}", users.join(" ")));
        }
        ServerFrame::Ping { id } => {
            let token = match id {
                Some(natter_proto::FrameId::Num(n)) => n.to_string(),
                Some(natter_proto::FrameId::Str(s)) => s.clone(),
                None => server.to_string(),
            };
            line::write(out, None, &server, "PING", &[&token]);
        }
        ServerFrame::Pong {
            id: Some(natter_proto::FrameId::Str(token)),
        } => {
            line::write(out, None, &server, "PONG", &[&server, token]);
        }
        ServerFrame::Error {
            id, code, message, ..
        } => error(st, id.as_ref(), *code, message, out),
        ServerFrame::Bye { reason } => {
            line::write(
                out,
                None,
                "",
                "ERROR",
                &[&format!("Closing link: {reason}")],
            );
        }
        // Answered by the adapter itself (PONG), or nothing to show (ok, auth_ok).
        _ => {}
    }
}

/// The numeric for an error frame, chosen by its code and by the command it answers.
fn error(
    st: &mut State,
    id: Option<&natter_proto::FrameId>,
    code: ErrorCode,
    message: &str,
    out: &mut Vec<u8>,
) {
    let origin = Origin::parse(id);
    let target = origin.map(|(_, t)| t.to_string()).unwrap_or_default();
    let from = origin.map(|(o, _)| o);
    if from == Some(Origin::Notice) {
        // RFC 2812: a NOTICE is never answered automatically.
        return;
    }
    if st.account.is_none()
        && let Some(via) = st.take_pending()
    {
        login_refused(out, st, Some(via), code, message);
        return;
    }
    if from == Some(Origin::Part) {
        take_parting(st, &target);
    }
    let n = |out: &mut Vec<u8>, code: &str, params: &[&str]| numeric(out, st, code, params);
    match (code, from) {
        (ErrorCode::NotInRoom, Some(Origin::Privmsg)) => n(out, "404", &[&target, message]),
        (ErrorCode::NotInRoom, _) => n(out, "442", &[&with_hash(&target), message]),
        (ErrorCode::InvalidRoom, _) => n(out, "403", &[&target, message]),
        (ErrorCode::NoSuchUser | ErrorCode::UserOffline, _) => n(out, "401", &[&target, message]),
        (ErrorCode::TooManyRooms, _) => n(out, "405", &[&target, message]),
        (ErrorCode::EmptyMessage, _) => n(out, "412", &[message]),
        (ErrorCode::LineTooLong, _) => n(out, "417", &["Input line was too long"]),
        (ErrorCode::NotAuthenticated, _) => {
            n(out, "451", &[message]);
            line::write(
                out,
                None,
                &st.server,
                "NOTICE",
                &[st.target(), LOGIN_NOTICE],
            );
        }
        (_, Some(Origin::Privmsg)) if target.starts_with('#') => n(out, "404", &[&target, message]),
        _ => line::write(out, None, &st.server, "NOTICE", &[st.target(), message]),
    }
}

/// The parting words given with the PART of `room`, taken.
fn take_parting(st: &mut State, room: &str) -> Option<String> {
    let bare = |r: &str| r.trim_start_matches('#').to_ascii_lowercase();
    let i = st.parting.iter().position(|(r, _)| bare(r) == bare(room))?;
    Some(natter_proto::neutralize(&st.parting.remove(i).1).into_owned())
}

#[cfg(test)]
mod tests {
    use natter_proto::{FrameId, HistoryEntry};

    use super::*;

    fn shared_text(frame: &ServerFrame, tagged: bool) -> String {
        let slot = if tagged { IRC_TAGGED_SLOT } else { IRC_SLOT };
        let mut out = Vec::new();
        assert!(shared(frame, slot, "natter", &mut out));
        String::from_utf8(out).expect("utf8")
    }

    fn reply_text(frame: &ServerFrame) -> String {
        let mut st = State::new(20, false, "natter".into());
        st.nick = Some("alice".into());
        st.account = Some("alice".into());
        let mut out = Vec::new();
        reply(&mut st, &Directory::new(), frame, IRC_SLOT, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn messages_and_presence() {
        let public = ServerFrame::Public {
            msg_id: 1,
            room: "lobby".into(),
            from: "bob".into(),
            text: "hi\nthere".into(),
            ts: 0,
        };
        assert_eq!(
            shared_text(&public, false),
            ":bob!bob@natter PRIVMSG #lobby :hi\r\n:bob!bob@natter PRIVMSG #lobby :there\r\n"
        );
        assert!(
            shared_text(&public, true).starts_with(
                "@time=1970-01-01T00:00:00.000Z :bob!bob@natter PRIVMSG #lobby :hi\r\n"
            )
        );
        let private = ServerFrame::Private {
            msg_id: 2,
            from: "bob".into(),
            to: "alice".into(),
            text: "psst".into(),
            ts: 0,
            late: false,
        };
        assert_eq!(
            shared_text(&private, false),
            ":bob!bob@natter PRIVMSG alice :psst\r\n"
        );
        let join = ServerFrame::Presence {
            room: "r".into(),
            user: "bob".into(),
            event: PresenceEvent::Join,
            reason: None,
            message: None,
        };
        assert_eq!(shared_text(&join, false), ":bob!bob@natter JOIN #r\r\n");
        let part = ServerFrame::Presence {
            room: "r".into(),
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("part".into()),
            message: None,
        };
        assert_eq!(shared_text(&part, false), ":bob!bob@natter PART #r\r\n");
        let quit = ServerFrame::Presence {
            room: "r".into(),
            user: "bob".into(),
            event: PresenceEvent::Leave,
            reason: Some("quit".into()),
            message: None,
        };
        assert_eq!(shared_text(&quit, false), ":bob!bob@natter QUIT :quit\r\n");
    }

    #[test]
    fn large_room_summaries_list_names_and_count_the_rest() {
        let summary = ServerFrame::PresenceSummary {
            room: "big".into(),
            members: 500,
            joined: vec!["ann".into()],
            joined_more: 7,
            left: vec!["bob".into()],
            left_more: 0,
        };
        assert_eq!(
            shared_text(&summary, false),
            ":ann!ann@natter JOIN #big\r\n:bob!bob@natter PART #big\r\n\
             :natter NOTICE #big :7 more joined and 0 more left; 500 members (a large room: \
             not every join and leave is shown)\r\n"
        );
    }

    #[test]
    fn message_tags_clients_get_msgids_and_chathistory_clients_no_join_replay() {
        let public = ServerFrame::Public {
            msg_id: 42,
            room: "lobby".into(),
            from: "bob".into(),
            text: "hi".into(),
            ts: 0,
        };
        let mut out = Vec::new();
        assert!(shared(&public, IRC_MSGID_SLOT, "natter", &mut out));
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "@time=1970-01-01T00:00:00.000Z;msgid=42;account=bob :bob!bob@natter PRIVMSG #lobby :hi\r\n"
        );
        let caps = |message_tags, server_time| Caps {
            message_tags,
            server_time,
            ..Caps::default()
        };
        assert_eq!(slot_of(&caps(false, false)), IRC_SLOT);
        assert_eq!(slot_of(&caps(false, true)), IRC_TAGGED_SLOT);
        assert_eq!(slot_of(&caps(true, false)), IRC_MSGID_SLOT);
        assert_eq!(slot_of(&caps(true, true)), IRC_MSGID_SLOT);

        let replay = ServerFrame::History {
            id: None,
            room: Some("lobby".into()),
            with: None,
            messages: vec![natter_proto::HistoryEntry {
                msg_id: 1,
                from: "bob".into(),
                to: None,
                text: "old".into(),
                ts: 0,
            }],
            last: true,
        };
        let mut st = State::new(20, false, "natter".into());
        st.nick = Some("alice".into());
        st.account = Some("alice".into());
        let mut out = Vec::new();
        reply(
            &mut st,
            &Directory::new(),
            &replay,
            IRC_MSGID_SLOT,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "@time=1970-01-01T00:00:00.000Z;msgid=1;account=bob :bob!bob@natter PRIVMSG #lobby :old\r\n"
        );
        st.caps.chathistory = true;
        let mut out = Vec::new();
        reply(
            &mut st,
            &Directory::new(),
            &replay,
            IRC_MSGID_SLOT,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn long_messages_are_split_to_fit_the_line_limit() {
        let text = "é".repeat(600);
        let public = ServerFrame::Public {
            msg_id: 1,
            room: "lobby".into(),
            from: "bob".into(),
            text: text.clone(),
            ts: 0,
        };
        let out = shared_text(&public, false);
        let lines: Vec<&str> = out.split_inclusive("\r\n").collect();
        assert!(lines.len() >= 3);
        assert!(lines.iter().all(|l| l.len() <= MAX_BODY), "{lines:?}");
        let rebuilt: String = lines
            .iter()
            .map(|l| l.trim_end().rsplit_once(" :").expect("trailing").1)
            .collect();
        assert_eq!(rebuilt, text);
    }

    #[test]
    fn replies_name_the_nick() {
        let joined = ServerFrame::Joined {
            id: None,
            room: "lobby".into(),
            members: vec!["alice".into(), "bob".into()],
            more: 0,
        };
        assert_eq!(
            reply_text(&joined),
            ":alice!alice@natter JOIN #lobby\r\n:natter 353 alice = #lobby :alice bob\r\n:natter 366 alice #lobby :End of /NAMES list\r\n"
        );
        let err = ServerFrame::error(
            Origin::Privmsg.id("#x"),
            ErrorCode::NotInRoom,
            "you are not in #x",
        );
        assert_eq!(
            reply_text(&err),
            ":natter 404 alice #x :you are not in #x\r\n"
        );
        let err = ServerFrame::error(
            Origin::Privmsg.id("carol"),
            ErrorCode::NoSuchUser,
            "no user carol",
        );
        assert_eq!(
            reply_text(&err),
            ":natter 401 alice carol :no user carol\r\n"
        );
        let err = ServerFrame::error(Origin::Part.id("#x"), ErrorCode::NotInRoom, "no");
        assert_eq!(reply_text(&err), ":natter 442 alice #x :no\r\n");
        let err = ServerFrame::error(Origin::Notice.id("#x"), ErrorCode::NotInRoom, "no");
        assert_eq!(reply_text(&err), "");
        let history = ServerFrame::History {
            id: None,
            room: Some("lobby".into()),
            with: None,
            messages: vec![HistoryEntry {
                msg_id: 1,
                from: "bob".into(),
                to: None,
                text: "old".into(),
                ts: 0,
            }],
            last: true,
        };
        assert_eq!(
            reply_text(&history),
            ":bob!bob@natter PRIVMSG #lobby :old\r\n"
        );
        let ping = ServerFrame::Ping {
            id: Some(FrameId::Num(3)),
        };
        assert_eq!(reply_text(&ping), ":natter PING :3\r\n");
        assert_eq!(
            reply_text(&ServerFrame::Bye {
                reason: "quit".into()
            }),
            "ERROR :Closing link: quit\r\n"
        );
    }
}
