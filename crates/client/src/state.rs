//! The chat state of a logged-in client: who we are, which rooms we are in and where plain
//! lines go.
//!
//! [`ChatState`] turns what the user typed into an [`Action`] (a frame to send, lines to
//! show locally, or leaving) and what the server sent into a [`Reaction`]. It does no I/O,
//! so both front ends (plain and interactive) share it and tests drive it directly.
//!
//! What it tracks:
//!
//! - the rooms this session is in, from the server's `joined` and `parted` (the server joins
//!   every session to [`DEFAULT_ROOM`] at login, so a fresh state starts there);
//! - the *current room*, where plain lines go: `lobby` at login, then the room of each
//!   `joined`; after parting the current room, `lobby` if still in it, else the first other
//!   room, else none (plain lines then give a local error);
//! - the *focus target*: a user that plain lines go to privately instead (`/msg USER`);
//! - for paging with `/history`, the oldest `msg_id` seen per room and per private
//!   conversation (from history and live messages; a room's is reset when it is joined);
//! - the request this client is waiting for before reading the next line: `/join` and
//!   `/part` are sent with an id, and the current room only changes when the answer echoing
//!   it arrives; [`ChatState::awaiting`] tells the chat loop to hold the next prompt until
//!   then (see [`crate::session`]);
//! - `/history` requests in flight, to say `no earlier messages` when an answer is empty.

use std::collections::{BTreeSet, HashMap};

use natter_proto::{
    ClientFrame, DEFAULT_ROOM, FrameId, HistoryEntry, MAX_LINE, ServerFrame, encode, name_key,
};

use crate::command::{Command, HistoryOf, parse};
use crate::format;

/// The help text, one display line per entry.
pub const HELP: &[&str] = &[
    "[help] TEXT               send TEXT to the current room, or to the user you focus on",
    "[help] /join ROOM         join ROOM (created if missing) and make it the current room",
    "[help] /part [ROOM]       leave ROOM (default: the current room)",
    "[help] /rooms             list the rooms with how many users are in each",
    "[help] /who [ROOM]        list who is in ROOM (default: the current room)",
    "[help] /history [N]       show N earlier messages of the current room (default 50, at most 200)",
    "[help] /history USER [N]  show N earlier messages of your private conversation with USER",
    "[help] /msg USER TEXT     send TEXT privately to USER",
    "[help] /msg USER          talk privately to USER: plain lines go to USER until /msg public",
    "[help] /msg public        go back to talking in the current room",
    "[help] /list              show who is online",
    "[help] /help              show this help",
    "[help] /exit, /quit       leave the chat (Ctrl-D and Ctrl-C too)",
    "[help] //TEXT             send TEXT starting with a single / (//shrug sends /shrug)",
    "[help] Room names are like user names, with an optional # (#rust and Rust are the same).",
];

/// The local error for a plain line (or a command needing a room) outside any room.
pub const NO_ROOM: &str = "you are in no room; /join ROOM";

/// What to do about one line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (an empty line).
    Nothing,
    /// Send this frame to the server.
    Send(ClientFrame),
    /// Show these lines locally; nothing is sent.
    Show(Vec<String>),
    /// Leave: send `quit` and wait for the server's `bye`.
    Exit,
}

/// What to do about one frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing to show or send.
    Ignore,
    /// Show these lines (at least one).
    Show(Vec<String>),
    /// Answer with this frame, showing nothing (a `pong` for a `ping`).
    Reply(ClientFrame),
    /// The server said goodbye for this reason and is closing the connection.
    Bye(String),
}

/// A conversation whose history can be paged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Conversation {
    /// A room (canonical name).
    Room(String),
    /// The private conversation with a user ([`name_key`] of the name).
    With(String),
}

/// A `/history` request whose answer has not fully arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingHistory {
    /// The request id the answer echoes.
    id: FrameId,
    /// Messages received for it so far.
    received: usize,
}

/// A logged-in user's chat state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    /// Our account name as the server spells it.
    user: String,
    /// The rooms this session is in (canonical names), from `joined` and `parted`.
    rooms: BTreeSet<String>,
    /// Where public lines go; `None` when in no room.
    current: Option<String>,
    /// A user plain lines go to privately instead of the current room (focus mode).
    focus: Option<String>,
    /// The oldest `msg_id` seen per conversation: `/history` pages back from there.
    oldest: HashMap<Conversation, u64>,
    /// The `/join` or `/part` whose answer the next prompt depends on.
    awaiting: Option<FrameId>,
    /// `/history` requests in flight.
    history_requests: Vec<PendingHistory>,
    /// The id of the next request that needs one.
    next_id: u64,
}

impl ChatState {
    /// A fresh state for `user`, who has just logged in and so is in [`DEFAULT_ROOM`].
    pub fn new(user: impl Into<String>) -> Self {
        ChatState {
            user: user.into(),
            rooms: BTreeSet::from([DEFAULT_ROOM.to_string()]),
            current: Some(DEFAULT_ROOM.to_string()),
            focus: None,
            oldest: HashMap::new(),
            awaiting: None,
            history_requests: Vec::new(),
            next_id: 1,
        }
    }

    /// The logged-in user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user plain lines currently go to, or `None` when they go to the current room.
    pub fn focus(&self) -> Option<&str> {
        self.focus.as_deref()
    }

    /// The room public lines go to, or `None` when in no room.
    pub fn current_room(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The rooms this session is in, sorted.
    pub fn rooms(&self) -> Vec<&str> {
        self.rooms.iter().map(String::as_str).collect()
    }

    /// The oldest message id seen in `room` (any spelling) since joining it.
    pub fn oldest_in_room(&self, room: &str) -> Option<u64> {
        let room = natter_proto::parse_room(room).ok()?;
        self.oldest.get(&Conversation::Room(room)).copied()
    }

    /// The oldest message id seen in the private conversation with `user`.
    pub fn oldest_with(&self, user: &str) -> Option<u64> {
        self.oldest
            .get(&Conversation::With(name_key(user)))
            .copied()
    }

    /// The id of the `/join` or `/part` whose answer is awaited before the next prompt.
    pub fn awaiting(&self) -> Option<&FrameId> {
        self.awaiting.as_ref()
    }

    /// Stops waiting for the awaited answer (it did not come in time).
    pub fn stop_awaiting(&mut self) {
        self.awaiting = None;
    }

    /// The prompt showing where plain lines go: `[#lobby] > `, `[@bob] > ` in focus mode,
    /// `[no room] > ` when in no room.
    pub fn prompt(&self) -> String {
        match (&self.focus, &self.current) {
            (Some(user), _) => format!("[@{}] > ", format::sanitize(user)),
            (None, Some(room)) => format!("[#{}] > ", format::sanitize(room)),
            (None, None) => "[no room] > ".to_string(),
        }
    }

    /// Parses a typed line and decides what to do about it.
    pub fn handle_line(&mut self, line: &str) -> Action {
        match parse(line) {
            Ok(None) => Action::Nothing,
            Ok(Some(command)) => self.apply(command),
            Err(e) => Action::Show(vec![format::local_error_line(&e.to_string())]),
        }
    }

    /// Decides what to do about a parsed command, updating the focus.
    pub fn apply(&mut self, command: Command) -> Action {
        match command {
            Command::Say(text) => match (&self.focus, &self.current) {
                (Some(to), _) => checked(ClientFrame::Private {
                    id: None,
                    to: to.clone(),
                    text,
                }),
                (None, Some(room)) => checked(ClientFrame::Public {
                    id: None,
                    room: Some(room.clone()),
                    text,
                }),
                (None, None) => no_room(),
            },
            Command::Private { to, text } => checked(ClientFrame::Private { id: None, to, text }),
            Command::Focus(user) => {
                let line = format!(
                    "[focus] talking privately to {}; /msg public to go back to {}",
                    format::sanitize(&user),
                    self.room_label()
                );
                self.focus = Some(user);
                Action::Show(vec![line])
            }
            Command::Unfocus => {
                self.focus = None;
                let line = match &self.current {
                    Some(room) => format!("[focus] back to #{}", format::sanitize(room)),
                    None => "[focus] back to no room; /join ROOM".to_string(),
                };
                Action::Show(vec![line])
            }
            Command::Join(room) => {
                let id = self.request_id();
                self.awaiting = Some(id.clone());
                Action::Send(ClientFrame::Join { id: Some(id), room })
            }
            Command::Part(room) => {
                let Some(room) = room.or_else(|| self.current.clone()) else {
                    return no_room();
                };
                let id = self.request_id();
                self.awaiting = Some(id.clone());
                Action::Send(ClientFrame::Part { id: Some(id), room })
            }
            Command::Rooms => Action::Send(ClientFrame::Rooms { id: None }),
            Command::Who(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => Action::Send(ClientFrame::Who { id: None, room }),
                None => no_room_for("/who ROOM"),
            },
            Command::History { of, limit } => {
                let (room, with, conversation) = match of {
                    Some(HistoryOf::User(user)) => {
                        let key = Conversation::With(name_key(&user));
                        (None, Some(user), key)
                    }
                    Some(HistoryOf::Room(room)) => {
                        (Some(room.clone()), None, Conversation::Room(room))
                    }
                    None => match &self.current {
                        Some(room) => (Some(room.clone()), None, Conversation::Room(room.clone())),
                        None => return no_room_for("/history USER [N] or /history #ROOM [N]"),
                    },
                };
                let id = self.request_id();
                self.history_requests.push(PendingHistory {
                    id: id.clone(),
                    received: 0,
                });
                Action::Send(ClientFrame::History {
                    id: Some(id),
                    room,
                    with,
                    before: self.oldest.get(&conversation).copied(),
                    limit,
                })
            }
            Command::List => Action::Send(ClientFrame::List { id: None }),
            Command::Help => Action::Show(HELP.iter().map(|l| l.to_string()).collect()),
            Command::Exit => Action::Exit,
        }
    }

    /// Decides what to do about a frame from the server, updating rooms and cursors.
    pub fn on_frame(&mut self, frame: &ServerFrame) -> Reaction {
        match frame {
            ServerFrame::Ping { id } => {
                return Reaction::Reply(ClientFrame::Pong { id: id.clone() });
            }
            ServerFrame::Bye { reason } => return Reaction::Bye(reason.clone()),
            ServerFrame::Public { msg_id, room, .. } => {
                self.saw(Conversation::Room(room.clone()), *msg_id);
            }
            ServerFrame::Private {
                msg_id, from, to, ..
            } => {
                let other = if name_key(from) == name_key(&self.user) {
                    to
                } else {
                    from
                };
                self.saw(Conversation::With(name_key(other)), *msg_id);
            }
            ServerFrame::Joined { id, room, .. } => {
                self.rooms.insert(room.clone());
                // The history that follows starts a fresh cursor: what was seen before a
                // part may have a gap after it.
                self.oldest.remove(&Conversation::Room(room.clone()));
                self.current = Some(room.clone());
                if id.is_some() && *id == self.awaiting {
                    // The user asked to talk here, so talk here rather than to a user.
                    self.awaiting = None;
                    self.focus = None;
                }
            }
            ServerFrame::Parted { id, room } => {
                self.rooms.remove(room);
                if self.current.as_deref() == Some(room.as_str()) {
                    self.current = if self.rooms.contains(DEFAULT_ROOM) {
                        Some(DEFAULT_ROOM.to_string())
                    } else {
                        self.rooms.iter().next().cloned()
                    };
                }
                if id.is_some() && *id == self.awaiting {
                    self.awaiting = None;
                }
            }
            ServerFrame::Error { id: Some(id), .. } => {
                if self.awaiting.as_ref() == Some(id) {
                    self.awaiting = None;
                }
                self.history_requests.retain(|p| p.id != *id);
            }
            ServerFrame::History {
                id,
                room,
                with,
                messages,
                last,
            } => return self.on_history(id.as_ref(), room, with, messages, *last),
            _ => {}
        }
        let lines = format::render(frame);
        if lines.is_empty() {
            Reaction::Ignore
        } else {
            Reaction::Show(lines)
        }
    }

    /// Shows one chunk of history, records its oldest message, and after the last chunk
    /// of a `/history` answer without any message says there is nothing earlier.
    fn on_history(
        &mut self,
        id: Option<&FrameId>,
        room: &Option<String>,
        with: &Option<String>,
        messages: &[HistoryEntry],
        last: bool,
    ) -> Reaction {
        let conversation = match (room, with) {
            (Some(room), _) => Some(Conversation::Room(room.clone())),
            (None, Some(with)) => Some(Conversation::With(name_key(with))),
            (None, None) => None,
        };
        if let (Some(c), Some(oldest)) = (&conversation, messages.iter().map(|m| m.msg_id).min()) {
            self.saw(c.clone(), oldest);
        }
        let mut lines = format::history_lines(room.as_deref(), with.as_deref(), messages);
        let pending = id.and_then(|id| self.history_requests.iter().position(|p| p.id == *id));
        if let Some(i) = pending {
            self.history_requests[i].received += messages.len();
            if last {
                let request = self.history_requests.remove(i);
                if request.received == 0 {
                    lines.push(format::no_history_line(room.as_deref(), with.as_deref()));
                }
            }
        }
        if lines.is_empty() {
            Reaction::Ignore
        } else {
            Reaction::Show(lines)
        }
    }

    /// Records that message `msg_id` of `conversation` was seen.
    fn saw(&mut self, conversation: Conversation, msg_id: u64) {
        self.oldest
            .entry(conversation)
            .and_modify(|oldest| *oldest = (*oldest).min(msg_id))
            .or_insert(msg_id);
    }

    /// A fresh request id.
    fn request_id(&mut self) -> FrameId {
        let id = FrameId::Num(self.next_id);
        self.next_id += 1;
        id
    }

    /// Where public lines go, for notices: `#lobby`, or `no room`.
    fn room_label(&self) -> String {
        match &self.current {
            Some(room) => format!("#{}", format::sanitize(room)),
            None => "no room".to_string(),
        }
    }
}

/// The local error for a plain line when in no room.
fn no_room() -> Action {
    Action::Show(vec![format::local_error_line(NO_ROOM)])
}

/// The local error for a command that defaults to the current room when in none.
fn no_room_for(usage: &str) -> Action {
    Action::Show(vec![format::local_error_line(&format!(
        "you are in no room; use {usage}"
    ))])
}

/// Sends `frame` unless its encoding is longer than the server accepts (it would close
/// the connection over it), in which case the user is told instead.
fn checked(frame: ClientFrame) -> Action {
    let len = encode(&frame).len() - 1;
    if len > MAX_LINE {
        Action::Show(vec![format::local_error_line(&format!(
            "message too long ({len} bytes encoded, at most {MAX_LINE}); it was not sent"
        ))])
    } else {
        Action::Send(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_proto::{ErrorCode, PresenceEvent};

    fn public(room: &str, text: &str) -> Action {
        Action::Send(ClientFrame::Public {
            id: None,
            room: Some(room.into()),
            text: text.into(),
        })
    }

    fn private(to: &str, text: &str) -> Action {
        Action::Send(ClientFrame::Private {
            id: None,
            to: to.into(),
            text: text.into(),
        })
    }

    fn show(line: &str) -> Reaction {
        Reaction::Show(vec![line.to_string()])
    }

    fn entry(msg_id: u64, from: &str, to: Option<&str>, text: &str) -> HistoryEntry {
        HistoryEntry {
            msg_id,
            from: from.into(),
            to: to.map(Into::into),
            text: text.into(),
            ts: 1,
        }
    }

    fn room_history(
        id: Option<FrameId>,
        room: &str,
        msgs: Vec<HistoryEntry>,
        last: bool,
    ) -> ServerFrame {
        ServerFrame::History {
            id,
            room: Some(room.into()),
            with: None,
            messages: msgs,
            last,
        }
    }

    /// Sends `/join ROOM` and answers it; returns the join's id.
    fn join(s: &mut ChatState, line: &str, room: &str) -> FrameId {
        let Action::Send(ClientFrame::Join {
            id: Some(id),
            room: sent,
        }) = s.handle_line(line)
        else {
            panic!("{line} sends join with an id");
        };
        assert_eq!(sent, room);
        assert_eq!(s.awaiting(), Some(&id));
        let r = s.on_frame(&ServerFrame::Joined {
            id: Some(id.clone()),
            room: room.into(),
            members: vec![s.user().to_string()],
            more: 0,
        });
        assert!(matches!(r, Reaction::Show(_)), "{r:?}");
        assert_eq!(s.awaiting(), None);
        id
    }

    /// Sends `line` (a /part) and answers it with `parted`.
    fn part(s: &mut ChatState, line: &str, room: &str) {
        let Action::Send(ClientFrame::Part {
            id: Some(id),
            room: sent,
        }) = s.handle_line(line)
        else {
            panic!("{line} sends part with an id");
        };
        assert_eq!(sent, room);
        assert_eq!(s.awaiting(), Some(&id));
        assert_eq!(
            s.on_frame(&ServerFrame::Parted {
                id: Some(id),
                room: room.into()
            }),
            show(&format!("[parted] #{room}"))
        );
        assert_eq!(s.awaiting(), None);
    }

    #[test]
    fn starts_in_the_lobby_with_its_prompt() {
        let s = ChatState::new("alice");
        assert_eq!(s.user(), "alice");
        assert_eq!(s.focus(), None);
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(s.rooms(), ["lobby"]);
        assert_eq!(s.prompt(), "[#lobby] > ");
        assert_eq!(s.awaiting(), None);
    }

    #[test]
    fn plain_lines_go_to_the_room_then_to_the_focused_user_then_the_room_again() {
        let mut s = ChatState::new("alice");
        assert_eq!(s.handle_line("hi all"), public("lobby", "hi all"));

        let Action::Show(lines) = s.handle_line("/msg bob") else {
            panic!("focus shows a notice");
        };
        assert_eq!(
            lines,
            ["[focus] talking privately to bob; /msg public to go back to #lobby"]
        );
        assert_eq!(s.focus(), Some("bob"));
        assert_eq!(s.prompt(), "[@bob] > ");
        assert_eq!(s.handle_line("psst"), private("bob", "psst"));
        assert_eq!(s.handle_line("//shrug"), private("bob", "/shrug"));

        // An explicit /msg goes to its own user without changing the focus.
        assert_eq!(s.handle_line("/msg carol yo"), private("carol", "yo"));
        assert_eq!(s.focus(), Some("bob"));

        assert_eq!(
            s.handle_line("/msg public"),
            Action::Show(vec!["[focus] back to #lobby".into()])
        );
        assert_eq!(s.focus(), None);
        assert_eq!(s.prompt(), "[#lobby] > ");
        assert_eq!(s.handle_line("back"), public("lobby", "back"));
    }

    #[test]
    fn join_switches_the_current_room_only_when_the_answer_arrives() {
        let mut s = ChatState::new("alice");
        let Action::Send(ClientFrame::Join { id: Some(id), room }) = s.handle_line("/join #Rust")
        else {
            panic!("join is sent with an id");
        };
        assert_eq!(room, "rust", "sent in canonical form");
        assert_eq!(s.awaiting(), Some(&id));
        // Not yet: the server has not answered.
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(s.prompt(), "[#lobby] > ");
        assert_eq!(
            s.on_frame(&ServerFrame::Joined {
                id: Some(id),
                room: "rust".into(),
                members: vec!["alice".into(), "bob".into(), "carol".into()],
                more: 0,
            }),
            show("[joined] #rust (3 members: alice, bob, carol)")
        );
        assert_eq!(s.awaiting(), None);
        assert_eq!(s.current_room(), Some("rust"));
        assert_eq!(s.rooms(), ["lobby", "rust"]);
        assert_eq!(s.prompt(), "[#rust] > ");
        assert_eq!(s.handle_line("hello"), public("rust", "hello"));
        // Ids are fresh per request.
        let second = join(&mut s, "/join go", "go");
        assert_eq!(second, FrameId::Num(2));
        assert_eq!(s.rooms(), ["go", "lobby", "rust"]);
    }

    #[test]
    fn joining_a_room_ends_focus_mode_but_the_login_join_does_not() {
        let mut s = ChatState::new("alice");
        s.handle_line("/msg bob");
        // The server's automatic join at login carries no id of ours.
        s.on_frame(&ServerFrame::Joined {
            id: None,
            room: "lobby".into(),
            members: vec!["alice".into()],
            more: 0,
        });
        assert_eq!(s.focus(), Some("bob"));
        join(&mut s, "/join rust", "rust");
        assert_eq!(s.focus(), None);
        assert_eq!(s.prompt(), "[#rust] > ");
    }

    #[test]
    fn a_refused_join_stops_the_wait_and_changes_nothing() {
        let mut s = ChatState::new("alice");
        let Action::Send(ClientFrame::Join { id: Some(id), .. }) = s.handle_line("/join rust")
        else {
            panic!("join sent");
        };
        // An error for another request does not end the wait.
        s.on_frame(&ServerFrame::error(
            Some(FrameId::Num(999)),
            ErrorCode::Internal,
            "x",
        ));
        assert_eq!(s.awaiting(), Some(&id));
        assert_eq!(
            s.on_frame(&ServerFrame::error(
                Some(id),
                ErrorCode::TooManyRooms,
                "you are in too many rooms"
            )),
            show("[error] you are in too many rooms (too_many_rooms)")
        );
        assert_eq!(s.awaiting(), None);
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(s.rooms(), ["lobby"]);

        // And a wait can be abandoned (the chat loop's timeout).
        s.handle_line("/join rust");
        assert!(s.awaiting().is_some());
        s.stop_awaiting();
        assert_eq!(s.awaiting(), None);
    }

    #[test]
    fn parting_the_current_room_falls_back_to_the_lobby_then_another_room_then_none() {
        let mut s = ChatState::new("alice");
        join(&mut s, "/join rust", "rust");
        join(&mut s, "/join go", "go");
        assert_eq!(s.current_room(), Some("go"));

        // Parting another room leaves the current one alone.
        part(&mut s, "/part #RUST", "rust");
        assert_eq!(s.current_room(), Some("go"));
        assert_eq!(s.rooms(), ["go", "lobby"]);

        // Parting the current room (the default) goes back to the lobby.
        part(&mut s, "/part", "go");
        assert_eq!(s.current_room(), Some("lobby"));
        assert_eq!(s.prompt(), "[#lobby] > ");

        // Without the lobby, another joined room.
        join(&mut s, "/join zed", "zed");
        join(&mut s, "/join abc", "abc");
        part(&mut s, "/part lobby", "lobby");
        assert_eq!(s.current_room(), Some("abc"));
        part(&mut s, "/part", "abc");
        assert_eq!(s.current_room(), Some("zed"));
        part(&mut s, "/part", "zed");
        assert_eq!(s.current_room(), None);
        assert!(s.rooms().is_empty());
        assert_eq!(s.prompt(), "[no room] > ");

        // In no room: plain text is refused locally, private lines still work.
        let err = Action::Show(vec!["[error] you are in no room; /join ROOM".into()]);
        assert_eq!(s.handle_line("anyone?"), err);
        assert_eq!(s.handle_line("/part"), err);
        assert_eq!(s.handle_line("/msg bob hi"), private("bob", "hi"));
        for (line, usage) in [
            ("/who", "/who ROOM"),
            ("/history", "/history USER [N] or /history #ROOM [N]"),
        ] {
            assert_eq!(
                s.handle_line(line),
                Action::Show(vec![format!("[error] you are in no room; use {usage}")])
            );
        }
        assert_eq!(
            s.handle_line("/msg bob"),
            Action::Show(vec![
                "[focus] talking privately to bob; /msg public to go back to no room".into()
            ])
        );
        assert_eq!(s.prompt(), "[@bob] > ");
        assert_eq!(
            s.handle_line("/msg public"),
            Action::Show(vec!["[focus] back to no room; /join ROOM".into()])
        );
        assert_eq!(s.awaiting(), None);
    }

    #[test]
    fn a_parted_room_that_is_not_current_changes_no_target() {
        let mut s = ChatState::new("alice");
        s.on_frame(&ServerFrame::Parted {
            id: None,
            room: "nowhere".into(),
        });
        assert_eq!(s.current_room(), Some("lobby"));
    }

    #[test]
    fn rooms_who_and_list_requests() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.handle_line("/rooms"),
            Action::Send(ClientFrame::Rooms { id: None })
        );
        assert_eq!(
            s.handle_line("/who"),
            Action::Send(ClientFrame::Who {
                id: None,
                room: "lobby".into()
            })
        );
        assert_eq!(
            s.handle_line("/who #Rust"),
            Action::Send(ClientFrame::Who {
                id: None,
                room: "rust".into()
            })
        );
        assert_eq!(
            s.handle_line("/list"),
            Action::Send(ClientFrame::List { id: None })
        );
        assert_eq!(s.awaiting(), None, "nothing of these holds the prompt");
    }

    #[test]
    fn history_pages_back_from_the_oldest_message_seen() {
        let mut s = ChatState::new("alice");
        // Nothing seen yet: the latest messages.
        assert_eq!(
            s.handle_line("/history"),
            Action::Send(ClientFrame::History {
                id: Some(FrameId::Num(1)),
                room: Some("lobby".into()),
                with: None,
                before: None,
                limit: None,
            })
        );
        // The automatic history after joining, then live messages.
        s.on_frame(&room_history(
            None,
            "lobby",
            vec![entry(40, "bob", None, "a"), entry(41, "bob", None, "b")],
            true,
        ));
        s.on_frame(&ServerFrame::Public {
            msg_id: 50,
            room: "lobby".into(),
            from: "bob".into(),
            text: "c".into(),
            ts: 1,
        });
        assert_eq!(s.oldest_in_room("lobby"), Some(40));
        assert_eq!(s.oldest_in_room("#Lobby"), Some(40));
        assert_eq!(
            s.handle_line("/history 2"),
            Action::Send(ClientFrame::History {
                id: Some(FrameId::Num(2)),
                room: Some("lobby".into()),
                with: None,
                before: Some(40),
                limit: Some(2),
            })
        );
        s.on_frame(&room_history(
            Some(FrameId::Num(2)),
            "lobby",
            vec![entry(30, "carol", None, "x"), entry(35, "bob", None, "y")],
            true,
        ));
        assert_eq!(s.oldest_in_room("lobby"), Some(30));
        let Action::Send(ClientFrame::History { before, .. }) = s.handle_line("/history") else {
            panic!("history sent");
        };
        assert_eq!(before, Some(30));

        // A room joined again starts over: messages missed while away are not skipped.
        join(&mut s, "/join lobby", "lobby");
        assert_eq!(s.oldest_in_room("lobby"), None);

        // Another room through #ROOM.
        s.on_frame(&ServerFrame::Public {
            msg_id: 7,
            room: "rust".into(),
            from: "bob".into(),
            text: "r".into(),
            ts: 1,
        });
        let Action::Send(ClientFrame::History {
            room,
            before,
            limit,
            ..
        }) = s.handle_line("/history #rust 200")
        else {
            panic!("history sent");
        };
        assert_eq!(
            (room.as_deref(), before, limit),
            (Some("rust"), Some(7), Some(200))
        );
    }

    #[test]
    fn private_history_pages_per_conversation() {
        let mut s = ChatState::new("alice");
        // Received and echoed messages count for the other participant.
        s.on_frame(&ServerFrame::Private {
            msg_id: 20,
            from: "Bob".into(),
            to: "alice".into(),
            text: "hi".into(),
            ts: 1,
            late: false,
        });
        s.on_frame(&ServerFrame::Private {
            msg_id: 12,
            from: "alice".into(),
            to: "bob".into(),
            text: "earlier".into(),
            ts: 1,
            late: true,
        });
        s.on_frame(&ServerFrame::Private {
            msg_id: 5,
            from: "ALICE".into(),
            to: "carol".into(),
            text: "x".into(),
            ts: 1,
            late: false,
        });
        assert_eq!(s.oldest_with("BOB"), Some(12));
        assert_eq!(s.oldest_with("carol"), Some(5));
        assert_eq!(s.oldest_in_room("lobby"), None);
        assert_eq!(
            s.handle_line("/history bob 10"),
            Action::Send(ClientFrame::History {
                id: Some(FrameId::Num(1)),
                room: None,
                with: Some("bob".into()),
                before: Some(12),
                limit: Some(10),
            })
        );
        // A private history answer moves that conversation's cursor.
        let r = s.on_frame(&ServerFrame::History {
            id: Some(FrameId::Num(1)),
            room: None,
            with: Some("Bob".into()),
            messages: vec![entry(3, "Bob", Some("alice"), "old")],
            last: true,
        });
        assert_eq!(r, show("[history] *Bob -> alice* old"));
        assert_eq!(s.oldest_with("bob"), Some(3));
        assert_eq!(s.oldest_with("carol"), Some(5));
    }

    #[test]
    fn an_empty_history_answer_says_so_but_the_join_history_stays_quiet() {
        let mut s = ChatState::new("alice");
        // Automatic history (no id of a /history request): nothing when empty.
        assert_eq!(
            s.on_frame(&room_history(None, "lobby", vec![], true)),
            Reaction::Ignore
        );
        assert_eq!(
            s.on_frame(&room_history(Some(FrameId::Num(77)), "lobby", vec![], true)),
            Reaction::Ignore
        );

        s.handle_line("/history");
        // Chunks: messages show as they come, the verdict waits for the last.
        assert_eq!(
            s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], false)),
            Reaction::Ignore
        );
        assert_eq!(
            s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], true)),
            show("[history] #lobby: no earlier messages")
        );
        // A second answer with that id (none expected) says nothing more.
        assert_eq!(
            s.on_frame(&room_history(Some(FrameId::Num(1)), "lobby", vec![], true)),
            Reaction::Ignore
        );

        s.handle_line("/history");
        assert_eq!(
            s.on_frame(&room_history(
                Some(FrameId::Num(2)),
                "lobby",
                vec![entry(1, "bob", None, "first")],
                false
            )),
            show("[history] #lobby <bob> first")
        );
        assert_eq!(
            s.on_frame(&room_history(Some(FrameId::Num(2)), "lobby", vec![], true)),
            Reaction::Ignore,
            "something came, so no 'no earlier messages'"
        );

        s.handle_line("/history bob");
        assert_eq!(
            s.on_frame(&ServerFrame::History {
                id: Some(FrameId::Num(3)),
                room: None,
                with: Some("bob".into()),
                messages: vec![],
                last: true,
            }),
            show("[history] @bob: no earlier messages")
        );

        // An error answering a /history ends it too.
        s.handle_line("/history nobody");
        s.on_frame(&ServerFrame::error(
            Some(FrameId::Num(4)),
            ErrorCode::NoSuchUser,
            "no user named 'nobody'",
        ));
        assert!(s.history_requests.is_empty());
        assert_eq!(s.awaiting(), None, "history does not hold the prompt");
    }

    #[test]
    fn help_lists_every_command_and_exit_and_blank_lines_work() {
        let mut s = ChatState::new("alice");
        assert_eq!(s.handle_line("/exit"), Action::Exit);
        assert_eq!(s.handle_line("/quit"), Action::Exit);
        assert_eq!(s.handle_line("   "), Action::Nothing);
        let Action::Show(help) = s.handle_line("/help") else {
            panic!("help shows lines");
        };
        let all = help.join("\n");
        for cmd in [
            "/join ROOM",
            "/part [ROOM]",
            "/rooms",
            "/who [ROOM]",
            "/history [N]",
            "/history USER [N]",
            "/msg USER TEXT",
            "/msg USER ",
            "/msg public",
            "/list",
            "/help",
            "/exit",
            "/quit",
            "//",
        ] {
            assert!(all.contains(cmd), "help lacks {cmd}");
        }
        assert!(help.iter().all(|l| l.starts_with("[help] ")));
    }

    #[test]
    fn parse_errors_are_shown_and_nothing_is_sent() {
        let mut s = ChatState::new("alice");
        for line in [
            "/nope",
            "/msg",
            "/msg a.b hi",
            "/list x",
            "/join",
            "/join a.b",
            "/join a b",
            "/part ##x",
            "/history 0",
            "/history 201",
            "/history bob x",
        ] {
            match s.handle_line(line) {
                Action::Show(lines) => {
                    assert_eq!(lines.len(), 1);
                    assert!(lines[0].starts_with("[error] "), "{lines:?}");
                }
                other => panic!("{line:?} gave {other:?}"),
            }
        }
        assert_eq!(s.focus(), None);
        assert_eq!(s.awaiting(), None);
    }

    #[test]
    fn oversized_messages_are_refused_locally() {
        let mut s = ChatState::new("alice");
        let big = "x".repeat(MAX_LINE);
        match s.handle_line(&big) {
            Action::Show(lines) => assert!(lines[0].contains("too long"), "{lines:?}"),
            other => panic!("sent {other:?}"),
        }
        // Escaping counts: control characters take six bytes each in JSON.
        let escaped = "\u{1}".repeat(MAX_LINE / 5);
        assert!(matches!(s.handle_line(&escaped), Action::Show(_)));
        let fits = "x".repeat(MAX_LINE - 100);
        assert_eq!(s.handle_line(&fits), public("lobby", &fits));
    }

    #[test]
    fn pings_are_answered_with_the_same_id_and_not_shown() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.on_frame(&ServerFrame::Ping {
                id: Some(FrameId::Str("p7".into()))
            }),
            Reaction::Reply(ClientFrame::Pong {
                id: Some(FrameId::Str("p7".into()))
            })
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Ping { id: None }),
            Reaction::Reply(ClientFrame::Pong { id: None })
        );
    }

    #[test]
    fn frames_become_lines_byes_end_and_acks_are_ignored() {
        let mut s = ChatState::new("alice");
        assert_eq!(
            s.on_frame(&ServerFrame::Presence {
                room: "lobby".into(),
                user: "bob".into(),
                event: PresenceEvent::Join,
                reason: None
            }),
            show("[join] #lobby bob")
        );
        assert_eq!(
            s.on_frame(&ServerFrame::error(
                None,
                ErrorCode::NoSuchUser,
                "no such user"
            )),
            show("[error] no such user (no_such_user)")
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Bye {
                reason: "quit".into()
            }),
            Reaction::Bye("quit".into())
        );
        assert_eq!(
            s.on_frame(&ServerFrame::Ok {
                id: FrameId::Num(1)
            }),
            Reaction::Ignore
        );
    }
}
