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
//! - `/history` requests in flight, to say `no earlier messages` when an answer is empty;
//! - the newest `msg_id` seen per conversation, where catching up after a reconnect stops
//!   (see [`crate::reconnect`]), and the ids of the last [`SEEN_WINDOW`] messages shown,
//!   so a live message that arrives twice (after the history that had it, or as the stored
//!   original answering a retried send) is shown once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

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

/// How many message ids are remembered to drop a live message that was already shown.
pub const SEEN_WINDOW: usize = 4096;

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
    /// The newest `msg_id` seen per conversation: catching up after a reconnect stops there.
    newest: HashMap<Conversation, u64>,
    /// The ids of the messages shown most recently (at most [`SEEN_WINDOW`]).
    shown: HashSet<u64>,
    /// The same ids, oldest first, to forget the oldest.
    shown_order: VecDeque<u64>,
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
            newest: HashMap::new(),
            shown: HashSet::new(),
            shown_order: VecDeque::new(),
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
                    client_id: None,
                }),
                (None, Some(room)) => checked(ClientFrame::Public {
                    id: None,
                    room: Some(room.clone()),
                    text,
                    client_id: None,
                }),
                (None, None) => no_room(),
            },
            Command::Private { to, text } => checked(ClientFrame::Private {
                id: None,
                to,
                text,
                client_id: None,
            }),
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
                Action::Send(ClientFrame::Part {
                    id: Some(id),
                    room,
                    message: None,
                })
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
                if !self.remember_shown(*msg_id) {
                    return Reaction::Ignore;
                }
                self.saw(Conversation::Room(room.clone()), *msg_id);
            }
            ServerFrame::Private {
                msg_id, from, to, ..
            } => {
                if !self.remember_shown(*msg_id) {
                    return Reaction::Ignore;
                }
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
        if let Some(c) = &conversation {
            for m in messages {
                self.saw(c.clone(), m.msg_id);
                self.remember_shown(m.msg_id);
            }
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
        self.newest
            .entry(conversation.clone())
            .and_modify(|newest| *newest = (*newest).max(msg_id))
            .or_insert(msg_id);
        self.oldest
            .entry(conversation)
            .and_modify(|oldest| *oldest = (*oldest).min(msg_id))
            .or_insert(msg_id);
    }

    /// Remembers that message `msg_id` was shown; false if it already was (recently).
    fn remember_shown(&mut self, msg_id: u64) -> bool {
        if !self.shown.insert(msg_id) {
            return false;
        }
        self.shown_order.push_back(msg_id);
        if self.shown_order.len() > SEEN_WINDOW
            && let Some(old) = self.shown_order.pop_front()
        {
            self.shown.remove(&old);
        }
        true
    }

    /// What to catch up on after a reconnect: every room this session is in and every
    /// private conversation seen, each with the newest message id seen in it (`None`
    /// when none was). Rooms as `(Some(room), None, newest)`, conversations as
    /// `(None, Some(user), newest)`.
    pub fn catch_up_targets(&self) -> Vec<(Option<String>, Option<String>, Option<u64>)> {
        let mut targets: Vec<_> = self
            .rooms
            .iter()
            .map(|room| {
                let newest = self.newest.get(&Conversation::Room(room.clone())).copied();
                (Some(room.clone()), None, newest)
            })
            .collect();
        let mut partners: Vec<_> = self
            .newest
            .iter()
            .filter_map(|(c, newest)| match c {
                Conversation::With(user) => Some((None, Some(user.clone()), Some(*newest))),
                Conversation::Room(_) => None,
            })
            .collect();
        partners.sort();
        targets.extend(partners);
        targets
    }

    /// Takes in a message missed while disconnected (from a catch-up `history` answer for
    /// `room` or the conversation `with`): records it and returns its display lines, or
    /// `None` when it was already shown.
    pub fn missed(
        &mut self,
        room: Option<&str>,
        with: Option<&str>,
        entry: &HistoryEntry,
    ) -> Option<Vec<String>> {
        let conversation = match (room, with) {
            (Some(room), _) => Conversation::Room(room.to_string()),
            (None, Some(with)) => Conversation::With(name_key(with)),
            (None, None) => return None,
        };
        if !self.remember_shown(entry.msg_id) {
            return None;
        }
        self.saw(conversation, entry.msg_id);
        Some(format::history_lines(
            room,
            with,
            std::slice::from_ref(entry),
        ))
    }

    /// Forgets `room` (rejoining it after a reconnect failed), moving the current room as
    /// a `parted` would.
    pub fn forget_room(&mut self, room: &str) {
        self.on_frame(&ServerFrame::Parted {
            id: None,
            room: room.to_string(),
        });
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
mod tests;
