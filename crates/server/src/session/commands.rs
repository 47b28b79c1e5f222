//! The command table: every client command's rules in one place, checked by
//! [`Session::handle_frame`] before the command's handler runs (in the spirit of ergo's
//! `irc/commands.go`: usable before registration or not, what it costs).
//!
//! The checks run in this order, each answering with its error and stopping:
//! login state, request id length, the room argument's syntax, room membership, the
//! recipient's syntax, the message text's rules, then the account's rate limit.

use natter_proto::validate_username;
use natter_proto::{ClientFrame, DEFAULT_ROOM, ErrorCode, FrameId, MAX_ID_LEN, clip, neutralize};

use super::{Flow, Session};
use crate::session::admission::Spend;

/// What a command takes from the account's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cost {
    /// Nothing.
    Free,
    /// A chat message token (shared by `public` and `private`).
    Message,
    /// A join-and-part token.
    RoomOp,
}

/// One command's rules.
#[derive(Debug)]
pub(super) struct Rule {
    /// The frame's `type`.
    pub name: &'static str,
    /// Usable before login (otherwise `not_authenticated`).
    pub before_login: bool,
    /// Usable after login (otherwise `already_authenticated`).
    pub after_login: bool,
    /// Handled only once this session's earlier messages are delivered, so that its
    /// reply keeps the order the peer sent in. Messages pipeline instead.
    pub in_order: bool,
    /// Names a room (`room`, the lobby when absent for `public`) that must be valid.
    pub room: bool,
    /// The named room must be one this session is in; the message says what to do.
    pub member: Option<fn(&str) -> String>,
    /// Names a recipient (`to`) that must be a valid user name.
    pub recipient: bool,
    /// Carries message text that must follow the text rules.
    pub text: bool,
    /// What it costs.
    pub cost: Cost,
}

impl Rule {
    const fn new(name: &'static str) -> Rule {
        Rule {
            name,
            before_login: false,
            after_login: true,
            in_order: true,
            room: false,
            member: None,
            recipient: false,
            text: false,
            cost: Cost::Free,
        }
    }
}

const AUTH: Rule = Rule {
    before_login: true,
    after_login: false,
    ..Rule::new("auth")
};
const PING: Rule = Rule {
    before_login: true,
    ..Rule::new("ping")
};
const PONG: Rule = Rule {
    before_login: true,
    ..Rule::new("pong")
};
const QUIT: Rule = Rule {
    before_login: true,
    ..Rule::new("quit")
};
const PUBLIC: Rule = Rule {
    in_order: false,
    room: true,
    member: Some(|room| format!("you are not in #{room}; /join {room} first")),
    text: true,
    cost: Cost::Message,
    ..Rule::new("public")
};
const PRIVATE: Rule = Rule {
    in_order: false,
    recipient: true,
    text: true,
    cost: Cost::Message,
    ..Rule::new("private")
};
// Handled in order: a notice is delivered at once, so it waits for the session's
// earlier messages to keep their order.
const NOTICE: Rule = Rule {
    room: true,
    member: Some(|room| format!("you are not in #{room}; /join {room} first")),
    recipient: true,
    text: true,
    cost: Cost::Message,
    ..Rule::new("notice")
};
const LIST: Rule = Rule::new("list");
const JOIN: Rule = Rule {
    room: true,
    cost: Cost::RoomOp,
    ..Rule::new("join")
};
const PART: Rule = Rule {
    room: true,
    cost: Cost::RoomOp,
    ..Rule::new("part")
};
const ROOMS: Rule = Rule::new("rooms");
const WHO: Rule = Rule {
    room: true,
    ..Rule::new("who")
};
// `history` takes a room or a user; its handler checks which (see `Session::history`).
const HISTORY: Rule = Rule::new("history");

/// The rules of `frame`'s command.
pub(super) fn rule(frame: &ClientFrame) -> &'static Rule {
    match frame {
        ClientFrame::Auth { .. } => &AUTH,
        ClientFrame::Ping { .. } => &PING,
        ClientFrame::Pong { .. } => &PONG,
        ClientFrame::Quit { .. } => &QUIT,
        ClientFrame::Public { .. } => &PUBLIC,
        ClientFrame::Private { .. } => &PRIVATE,
        ClientFrame::Notice { .. } => &NOTICE,
        ClientFrame::List { .. } => &LIST,
        ClientFrame::Join { .. } => &JOIN,
        ClientFrame::Part { .. } => &PART,
        ClientFrame::Rooms { .. } => &ROOMS,
        ClientFrame::Who { .. } => &WHO,
        ClientFrame::History { .. } => &HISTORY,
    }
}

/// The room a frame names, as sent (the lobby for a `public` without one).
fn room_of(frame: &ClientFrame) -> Option<&str> {
    match frame {
        ClientFrame::Public { room, .. } => Some(room.as_deref().unwrap_or(DEFAULT_ROOM)),
        ClientFrame::Join { room, .. }
        | ClientFrame::Part { room, .. }
        | ClientFrame::Who { room, .. } => Some(room),
        ClientFrame::Notice { room, .. } => room.as_deref(),
        _ => None,
    }
}

/// The recipient and text a frame carries.
fn recipient_and_text(frame: &ClientFrame) -> (Option<&str>, Option<&str>) {
    match frame {
        ClientFrame::Public { text, .. } => (None, Some(text)),
        ClientFrame::Private { to, text, .. } => (Some(to), Some(text)),
        ClientFrame::Notice { to, text, .. } => (to.as_deref(), Some(text)),
        _ => (None, None),
    }
}

/// A frame whose command's rules all passed, with its room in canonical form.
pub(super) struct Admitted {
    /// The frame.
    pub frame: ClientFrame,
    /// The canonical room it names, if its command names one.
    pub room: Option<String>,
}

impl Session {
    /// Applies `frame`'s rules (see the module documentation); `Err` carries what the
    /// read loop does instead of running the handler (the peer was told).
    pub(super) async fn check(&mut self, frame: ClientFrame) -> Result<Admitted, Flow> {
        let rule = rule(&frame);
        if rule.in_order {
            self.flush().await;
        }
        if let Some(FrameId::Str(id)) = frame.id()
            && id.len() > MAX_ID_LEN
        {
            self.error(
                None,
                ErrorCode::IdTooLong,
                format!("request ids are at most {MAX_ID_LEN} bytes"),
            );
            return Err(Flow::Continue);
        }
        let id = frame.id().cloned();
        let logged_in = self.user.is_some();
        if !logged_in && !rule.before_login {
            self.shared.metrics.rejected(
                self.handle.transport(),
                ErrorCode::NotAuthenticated.as_str(),
            );
            self.error(
                id,
                ErrorCode::NotAuthenticated,
                format!(
                    "log in first: '{}' needs an authenticated session",
                    rule.name
                ),
            );
            return Err(Flow::Continue);
        }
        if logged_in && !rule.after_login {
            self.error(id, ErrorCode::AlreadyAuthenticated, "already logged in");
            return Err(Flow::Continue);
        }
        let mut room = None;
        if rule.room
            && let Some(name) = room_of(&frame)
        {
            let Some(canonical) = self.room_arg(&id, name) else {
                return Err(Flow::Continue);
            };
            if let (Some(message), Some(me)) = (rule.member, &self.user)
                && !self.shared.bus.in_room(me.id, &canonical)
            {
                self.error(id, ErrorCode::NotInRoom, message(&canonical));
                return Err(Flow::Continue);
            }
            room = Some(canonical);
        }
        let (to, text) = recipient_and_text(&frame);
        if rule.recipient
            && let Some(to) = to
            && validate_username(to).is_err()
        {
            self.error(
                id,
                ErrorCode::NoSuchUser,
                format!("'{}' is not a valid user name", neutralize(&clip(to))),
            );
            return Err(Flow::Continue);
        }
        if rule.text
            && let Some(text) = text
        {
            self.check_text(&id, text)?;
        }
        let spend = match rule.cost {
            Cost::Free => None,
            Cost::Message => Some((&*self.shared.messages, Spend::Message)),
            Cost::RoomOp => Some((&self.shared.room_ops, Spend::RoomOp)),
        };
        if let Some((limiter, spend)) = spend
            && let Err(flow) = self.admit_rate(&id, limiter, spend)
        {
            if let Flow::Close(reason) = &flow {
                // Messages accepted before still go out, then the bye.
                self.flush().await;
                self.bye(reason);
            }
            return Err(flow);
        }
        Ok(Admitted { frame, room })
    }
}
