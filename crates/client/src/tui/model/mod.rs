//! The full-screen client's state, without any I/O: buffers, the current one, the input
//! line, and what frames and typed lines do to them. Tests drive it with server frames and
//! typed lines, like [`ChatState`] (which it wraps for request ids, history paging and
//! pings).
//!
//! Routing: `public`, room notices, presence and `joined`/`parted` go to the room's buffer;
//! `private` and user notices to the buffer of the other user (opened when needed);
//! `system`, `bye` and errors about no particular conversation to the server buffer;
//! answers to `/who`, `/list`, `/rooms` and local lines (help, mistakes) to the current
//! buffer. Plain lines go to the current buffer's room or user; `/msg USER` opens or
//! focuses that user's buffer; `/join` of a room already joined only switches to it;
//! `/msg public` goes back to the last room buffer.

pub mod buffer;
pub mod input;
pub mod mention_list;
pub mod older;
pub mod paste;

use natter_proto::{ClientFrame, MAX_LINE, PresenceEvent, ServerFrame, encode, name_key};

pub use buffer::{Buffer, BufferKind, Line, LineKind, mentions};
pub use input::InputLine;
pub use mention_list::{MENTIONS_KEPT, Mention};
pub use older::{OLDER_PAGE, Older};
pub use paste::PASTE_CONFIRM;

use super::config::Config;
use super::store::InputHistory;
use crate::command::{Command, HistoryOf, parse};
use crate::format;
use crate::state::{Action, ChatState, Reaction};

/// What the front end has to do after a model change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this frame.
    Send(ClientFrame),
    /// Send `quit` and leave once the server says `bye`.
    Quit,
    /// The server said goodbye for this reason.
    Bye(String),
    /// Ring the terminal bell (a mention arrived).
    Bell,
}

/// Connection facts for the status line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// How the server was verified: `TLS (CA)`, `TLS (pinned)`, `plaintext`, ...
    pub security: String,
    /// `connected`, `disconnected`, ...
    pub connection: String,
    /// The last measured round trip to the server (a `ping` answered), in ms.
    pub lag_ms: Option<u64>,
}

/// The whole state of the full-screen client.
#[derive(Debug, Clone)]
pub struct Model {
    /// Request ids, history cursors, pings: shared with the line front ends.
    pub chat: ChatState,
    /// Buffer 1 is the server buffer; rooms and private conversations follow in the order
    /// they were opened.
    pub buffers: Vec<Buffer>,
    /// The index of the buffer on screen.
    pub current: usize,
    /// The room buffer last shown, for `/msg public`.
    last_room: Option<BufferKind>,
    /// The line being typed.
    pub input: InputLine,
    /// Whether the member list is shown.
    pub show_members: bool,
    /// Local time minus UTC, in seconds, for `HH:MM`.
    pub utc_offset_secs: i64,
    /// Status line facts.
    pub status: Status,
    /// The next line sequence number.
    next_seq: u64,
    /// The number of the last fetch of older history (for its request id).
    next_fetch: u64,
    /// Lines typed per buffer, kept across restarts (also for buffers not open).
    pub input_history: InputHistory,
    /// `input_history` changed since it was last saved.
    pub history_dirty: bool,
    /// A long paste waiting for `y` or `n`.
    pub pending_paste: Option<Vec<String>>,
    /// Recent mentions across buffers, oldest first.
    pub mentions: Vec<Mention>,
    /// Settings from `config.toml` (bell, timestamps, nick colours, keys).
    pub config: Config,
}

impl Model {
    /// A fresh model for `user`, who has just logged in (and is in `lobby`, whose buffer
    /// opens with the server's `joined`).
    pub fn new(user: &str, utc_offset_secs: i64) -> Model {
        Model {
            chat: ChatState::new(user),
            buffers: vec![Buffer::new(BufferKind::Server)],
            current: 0,
            last_room: None,
            input: InputLine::default(),
            show_members: true,
            utc_offset_secs,
            status: Status::default(),
            next_seq: 0,
            next_fetch: 0,
            input_history: InputHistory::default(),
            history_dirty: false,
            pending_paste: None,
            mentions: Vec::new(),
            config: Config::default(),
        }
    }

    /// Our user name.
    pub fn user(&self) -> &str {
        self.chat.user()
    }

    /// The buffer on screen.
    pub fn current_buffer(&self) -> &Buffer {
        &self.buffers[self.current]
    }

    /// The buffer on screen, to change.
    pub fn current_buffer_mut(&mut self) -> &mut Buffer {
        &mut self.buffers[self.current]
    }

    /// The prompt showing where plain lines go: `[#rust]`, `[@bob]`, `[server]`.
    pub fn prompt(&self) -> String {
        format!("[{}]", self.current_buffer().kind.label())
    }

    /// The index of the buffer for `kind`, if open.
    pub fn find(&self, kind: &BufferKind) -> Option<usize> {
        self.buffers.iter().position(|b| b.kind.is(kind))
    }

    /// The index of the buffer for `kind`, opened (at the end) when missing.
    pub fn open(&mut self, kind: BufferKind) -> usize {
        match self.find(&kind) {
            Some(i) => i,
            None => {
                let mut buffer = Buffer::new(kind);
                buffer.history = self.input_history.get(&buffer.kind);
                self.buffers.push(buffer);
                self.buffers.len() - 1
            }
        }
    }

    /// Takes the input history loaded at start: every buffer gets its lines.
    pub fn set_input_history(&mut self, history: InputHistory) {
        for buffer in &mut self.buffers {
            buffer.history = history.get(&buffer.kind);
        }
        self.input_history = history;
    }

    /// Shows buffer `index` (ignored when out of range).
    pub fn switch_to(&mut self, index: usize) {
        if index >= self.buffers.len() || index == self.current {
            return;
        }
        self.buffers[self.current].left();
        self.input.reset_completion();
        self.current = index;
        if let BufferKind::Room(_) = self.buffers[index].kind {
            self.last_room = Some(self.buffers[index].kind.clone());
        }
        self.buffers[index].seen();
    }

    /// Shows the next buffer (wrapping).
    pub fn next_buffer(&mut self) {
        self.switch_to((self.current + 1) % self.buffers.len());
    }

    /// Shows the previous buffer (wrapping).
    pub fn prev_buffer(&mut self) {
        let n = self.buffers.len();
        self.switch_to((self.current + n - 1) % n);
    }

    /// Shows the buffer named `name` (`#rust`, `rust`, `@bob`, `bob`, `server`, or its
    /// number); false when there is none.
    pub fn switch_by_name(&mut self, name: &str) -> bool {
        if let Ok(n) = name.parse::<usize>() {
            if (1..=self.buffers.len()).contains(&n) {
                self.switch_to(n - 1);
                return true;
            }
            return false;
        }
        let key = name_key(name.trim_start_matches(['#', '@']));
        let found = self.buffers.iter().position(|b| match &b.kind {
            BufferKind::Server => key == "server",
            BufferKind::Room(r) => name_key(r) == key && !name.starts_with('@'),
            BufferKind::Private(u) => name_key(u) == key && !name.starts_with('#'),
        });
        match found {
            Some(i) => {
                self.switch_to(i);
                true
            }
            None => false,
        }
    }

    /// Adds a line to buffer `index`; returns whether it was new.
    fn push(&mut self, index: usize, mut line: Line, live: bool) -> bool {
        line.seq = self.next_seq;
        self.next_seq += 1;
        let shown = index == self.current;
        self.buffers[index].push(line, shown, live)
    }

    /// Adds a local line (no id, no time) to buffer `index`.
    fn note(&mut self, index: usize, text: String, kind: LineKind) {
        let line = Line {
            msg_id: None,
            ts: None,
            sender: None,
            text,
            kind,
            mention: false,
            seq: 0,
        };
        self.push(index, line, true);
    }

    /// Adds a local line to the server buffer (an error when `error`).
    pub fn server_note(&mut self, text: String, error: bool) {
        let kind = if error {
            LineKind::Error
        } else {
            LineKind::Info
        };
        self.note(0, text, kind);
    }

    /// Adds local display lines (help, errors, answers) to the current buffer.
    fn notes(&mut self, lines: Vec<String>) {
        for text in lines {
            let kind = if text.starts_with("[error]") {
                LineKind::Error
            } else {
                LineKind::Info
            };
            self.note(self.current, text, kind);
        }
    }

    /// Handles a line typed in the current buffer.
    pub fn submit(&mut self, line: &str) -> Vec<Effect> {
        let buffer = &mut self.buffers[self.current];
        buffer.remember(line);
        if self.input_history.get(&buffer.kind) != buffer.history {
            self.input_history.set(&buffer.kind, &buffer.history);
            self.history_dirty = true;
        }
        let command = match parse(line) {
            Ok(None) => return Vec::new(),
            Ok(Some(command)) => command,
            Err(e) => {
                if line.trim().eq_ignore_ascii_case("/mentions") {
                    self.show_mentions();
                    return Vec::new();
                }
                if let Some(name) = buffer_command(line) {
                    if !self.switch_by_name(name) {
                        let text = format!("no buffer '{}'", format::sanitize(name));
                        self.notes(vec![format::local_error_line(&text)]);
                    }
                    return Vec::new();
                }
                self.notes(vec![format::local_error_line(&e.to_string())]);
                return Vec::new();
            }
        };
        let kind = self.current_buffer().kind.clone();
        let command = match command {
            Command::Say(text) => return self.say(&kind, text),
            Command::Focus(user) => {
                let i = self.open(BufferKind::Private(user));
                self.switch_to(i);
                return Vec::new();
            }
            Command::Unfocus => {
                match self.last_room.clone().and_then(|room| self.find(&room)) {
                    Some(i) => self.switch_to(i),
                    None => self.notes(vec![format::local_error_line(crate::state::NO_ROOM)]),
                }
                return Vec::new();
            }
            Command::Join(room) => {
                if let Some(i) = self.find(&BufferKind::Room(room.clone())) {
                    self.switch_to(i);
                    return Vec::new();
                }
                Command::Join(room)
            }
            // Commands about "the current room" are about the buffer's conversation.
            Command::Part(None) => Command::Part(room_of(&kind)),
            Command::Who(None) => Command::Who(room_of(&kind)),
            Command::History { of: None, limit } => Command::History {
                of: match &kind {
                    BufferKind::Room(room) => Some(HistoryOf::Room(room.clone())),
                    BufferKind::Private(user) => Some(HistoryOf::User(user.clone())),
                    BufferKind::Server => None,
                },
                limit,
            },
            other => other,
        };
        match self.chat.apply(command) {
            Action::Nothing => Vec::new(),
            Action::Send(frame) => vec![Effect::Send(frame)],
            Action::Show(lines) => {
                self.notes(lines);
                Vec::new()
            }
            Action::Exit => vec![Effect::Quit],
        }
    }

    /// A plain line in buffer `kind`: to its room or user.
    fn say(&mut self, kind: &BufferKind, text: String) -> Vec<Effect> {
        let frame = match kind {
            BufferKind::Room(room) => ClientFrame::Public {
                id: None,
                room: Some(room.clone()),
                text,
                client_id: None,
            },
            BufferKind::Private(user) => ClientFrame::Private {
                id: None,
                to: user.clone(),
                text,
                client_id: None,
            },
            BufferKind::Server => {
                let text = "this is the server buffer; switch to a room (Alt+number) or /join ROOM";
                self.notes(vec![format::local_error_line(text)]);
                return Vec::new();
            }
        };
        let len = encode(&frame).len() - 1;
        if len > MAX_LINE {
            self.notes(vec![format::local_error_line(&format!(
                "message too long ({len} bytes encoded, at most {MAX_LINE}); it was not sent"
            ))]);
            return Vec::new();
        }
        vec![Effect::Send(frame)]
    }

    /// Handles a frame from the server.
    pub fn on_frame(&mut self, frame: &ServerFrame) -> Vec<Effect> {
        let awaited = self.chat.awaiting().cloned();
        let reaction = self.chat.on_frame(frame);
        let mut effects = Vec::new();
        match reaction {
            Reaction::Reply(reply) => return vec![Effect::Send(reply)],
            Reaction::Bye(reason) => {
                let server = self.open(BufferKind::Server);
                self.note(server, format::bye_line(&reason), LineKind::Error);
                self.status.connection = "disconnected".to_string();
                return vec![Effect::Bye(reason)];
            }
            Reaction::Ignore | Reaction::Show(_) => {}
        }
        let user = self.user().to_string();
        match frame {
            ServerFrame::Public {
                msg_id,
                room,
                from,
                text,
                ts,
            } => {
                let i = self.open(BufferKind::Room(room.clone()));
                let mention = name_key(from) != name_key(&user) && mentions(text, &user);
                let line = message(*msg_id, *ts, from, text, mention);
                if self.push(i, line, true) && mention {
                    effects.extend(self.mentioned(i, *ts, from, text));
                }
            }
            ServerFrame::Private {
                msg_id,
                from,
                to,
                text,
                ts,
                late,
            } => {
                let ours = name_key(from) == name_key(&user);
                let other = if ours { to } else { from };
                let i = self.open(BufferKind::Private(other.clone()));
                let mut text = text.clone();
                if *late {
                    text.push_str(&format!(
                        " (sent {} UTC, delivered late)",
                        format::utc_minute(*ts)
                    ));
                }
                let line = message(*msg_id, *ts, from, &text, !ours);
                if self.push(i, line, true) && !ours {
                    effects.extend(self.mentioned(i, *ts, from, &text));
                }
            }
            ServerFrame::Notice {
                room,
                from,
                to,
                text,
                ts,
            } => {
                let i = match (room, to) {
                    (Some(room), _) => self.open(BufferKind::Room(room.clone())),
                    (None, Some(to)) if name_key(to) == name_key(&user) => {
                        self.open(BufferKind::Private(from.clone()))
                    }
                    (None, Some(to)) => self.open(BufferKind::Private(to.clone())),
                    (None, None) => 0,
                };
                let mut line = message(0, *ts, from, text, false);
                line.msg_id = None;
                line.kind = LineKind::Notice;
                self.push(i, line, true);
            }
            ServerFrame::Queued { to, .. } => {
                let i = self.open(BufferKind::Private(to.clone()));
                self.note(i, format::render(frame).concat(), LineKind::Info);
            }
            ServerFrame::System { .. } => {
                self.note(0, format::render(frame).concat(), LineKind::Info);
            }
            ServerFrame::Presence {
                room,
                user: who,
                event,
                ..
            } => {
                let i = self.open(BufferKind::Room(room.clone()));
                match event {
                    PresenceEvent::Join => self.buffers[i].add_member(who),
                    PresenceEvent::Leave => self.buffers[i].remove_member(who),
                }
                self.note_quiet(i, format::render(frame).concat(), LineKind::Event);
            }
            ServerFrame::PresenceSummary {
                room, joined, left, ..
            } => {
                let i = self.open(BufferKind::Room(room.clone()));
                for who in joined {
                    self.buffers[i].add_member(who);
                }
                for who in left {
                    self.buffers[i].remove_member(who);
                }
                self.note_quiet(i, format::render(frame).concat(), LineKind::Event);
            }
            ServerFrame::Joined {
                id, room, members, ..
            } => {
                let i = self.open(BufferKind::Room(room.clone()));
                self.buffers[i].set_members(members);
                self.note_quiet(i, format::render(frame).concat(), LineKind::Event);
                // We asked for it (or it is the first room, at login): show it.
                if (id.is_some() && *id == awaited) || self.current == 0 {
                    self.switch_to(i);
                }
            }
            ServerFrame::Parted { room, .. } => {
                if let Some(i) = self.find(&BufferKind::Room(room.clone())) {
                    self.close(i);
                }
                let text = format::render(frame).concat();
                self.notes(vec![text]);
            }
            ServerFrame::Who {
                room, users, more, ..
            } => {
                if *more == 0
                    && let Some(i) = self.find(&BufferKind::Room(room.clone()))
                {
                    self.buffers[i].set_members(users);
                }
                self.notes(format::render(frame));
            }
            ServerFrame::Rooms { .. } | ServerFrame::List { .. } => {
                self.notes(format::render(frame));
            }
            ServerFrame::History {
                id,
                room,
                with,
                messages,
                last,
            } => {
                let i = match (room, with) {
                    (Some(room), _) => self.open(BufferKind::Room(room.clone())),
                    (None, Some(with)) => self.open(BufferKind::Private(with.clone())),
                    (None, None) => 0,
                };
                for m in messages {
                    let line = message(m.msg_id, m.ts, &m.from, &m.text, false);
                    self.push(i, line, false);
                }
                self.older_chunk(i, id.as_ref(), messages.len(), *last);
                if messages.is_empty()
                    && let Reaction::Show(lines) = reaction
                {
                    for text in lines {
                        self.note_quiet(i, text, LineKind::Info);
                    }
                }
            }
            ServerFrame::Error { id, .. } => {
                if let Some(id) = id {
                    self.older_failed(id);
                }
                let text = format::render(frame).concat();
                self.note(self.current, text, LineKind::Error);
            }
            _ => {}
        }
        effects
    }

    /// Adds a local line that does not count as unread (presence, history notes).
    fn note_quiet(&mut self, index: usize, text: String, kind: LineKind) {
        let line = Line {
            msg_id: None,
            ts: None,
            sender: None,
            text,
            kind,
            mention: false,
            seq: 0,
        };
        self.push(index, line, false);
    }

    /// Closes buffer `index` (not the server buffer), showing a neighbour if it was shown.
    fn close(&mut self, index: usize) {
        if index == 0 || index >= self.buffers.len() {
            return;
        }
        let was_current = self.current == index;
        self.buffers.remove(index);
        if self.current >= index && self.current > 0 {
            self.current -= 1;
        }
        if was_current {
            let target = self
                .last_room
                .clone()
                .and_then(|room| self.find(&room))
                .unwrap_or(self.current);
            self.current = target;
            self.buffers[target].seen();
        }
    }

    /// The words Tab completes in the current buffer, in order: members and speakers (most
    /// recent speaker first), then commands, then room names.
    pub fn completions(&self) -> Vec<String> {
        let buffer = self.current_buffer();
        let mut words: Vec<String> = Vec::new();
        let mut add = |w: String| {
            if !words.iter().any(|x| name_key(x) == name_key(&w)) {
                words.push(w);
            }
        };
        for s in &buffer.speakers {
            add(s.clone());
        }
        if let BufferKind::Private(user) = &buffer.kind {
            add(user.clone());
        }
        for m in &buffer.members {
            add(m.clone());
        }
        for c in COMMANDS {
            add(c.to_string());
        }
        for b in &self.buffers {
            if let BufferKind::Room(room) = &b.kind {
                add(format!("#{room}"));
            }
        }
        words
    }

    /// Tab: completes the word before the cursor (again: the next candidate).
    pub fn complete(&mut self) {
        let words = self.completions();
        self.input.complete(&words);
    }

    /// Up in the input line: the previous line sent from this buffer.
    pub fn history_up(&mut self) {
        let current = self.input.text().to_string();
        if let Some(line) = self.buffers[self.current].history_up(&current) {
            self.input.set(&line);
        }
    }

    /// Down in the input line: the next line sent from this buffer, or the draft.
    pub fn history_down(&mut self) {
        if let Some(line) = self.buffers[self.current].history_down() {
            self.input.set(&line);
        }
    }

    /// Enter: takes the input line and handles it.
    pub fn enter(&mut self) -> Vec<Effect> {
        let line = self.input.take();
        self.submit(&line)
    }
}

/// The commands Tab completes.
pub const COMMANDS: &[&str] = &[
    "/join",
    "/part",
    "/msg",
    "/who",
    "/rooms",
    "/list",
    "/history",
    "/buffer",
    "/mentions",
    "/help",
    "/exit",
    "/quit",
];

/// `/buffer NAME` (not a line-mode command, so [`parse`] refuses it): the name.
fn buffer_command(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let (word, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !word.eq_ignore_ascii_case("/buffer") {
        return None;
    }
    let name = rest.trim();
    (!name.is_empty()).then_some(name)
}

/// The room of a buffer, for commands that default to it.
fn room_of(kind: &BufferKind) -> Option<String> {
    match kind {
        BufferKind::Room(room) => Some(room.clone()),
        _ => None,
    }
}

/// A message line (text and sender neutralised).
fn message(msg_id: u64, ts: u64, from: &str, text: &str, mention: bool) -> Line {
    Line {
        msg_id: Some(msg_id),
        ts: Some(ts),
        sender: Some(format::sanitize(from)),
        text: format::sanitize(text),
        kind: LineKind::Message,
        mention,
        seq: 0,
    }
}

#[cfg(test)]
mod tests;
