//! One buffer of the full-screen client: the server buffer, a room, or a private
//! conversation, with its lines, unread state, read marker, scroll position, members and
//! input history.

use natter_proto::name_key;

/// What a buffer is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// Notices and errors not tied to a conversation (always buffer 1).
    Server,
    /// A room (canonical name).
    Room(String),
    /// The private conversation with a user (as the server spells the name).
    Private(String),
}

impl BufferKind {
    /// The name shown in the buffer list and the prompt: `server`, `#rust`, `@bob`.
    pub fn label(&self) -> String {
        match self {
            BufferKind::Server => "server".to_string(),
            BufferKind::Room(room) => format!("#{}", crate::format::sanitize(room)),
            BufferKind::Private(user) => format!("@{}", crate::format::sanitize(user)),
        }
    }

    /// True when this is the buffer for `other` (a room name or a user name, any case).
    pub fn is(&self, other: &BufferKind) -> bool {
        match (self, other) {
            (BufferKind::Server, BufferKind::Server) => true,
            (BufferKind::Room(a), BufferKind::Room(b))
            | (BufferKind::Private(a), BufferKind::Private(b)) => name_key(a) == name_key(b),
            _ => false,
        }
    }
}

/// What kind of line it is, for colours and for what counts as unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A chat message (public or private) with a sender.
    Message,
    /// A notice (never stored) with a sender.
    Notice,
    /// Someone joined or left.
    Event,
    /// Something the client or server says (help, lists, system text).
    Info,
    /// An error.
    Error,
}

/// One line of a buffer. Texts are already neutralised ([`crate::format::sanitize`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The server's message id, for deduplication and history paging.
    pub msg_id: Option<u64>,
    /// Server time in Unix milliseconds; `None` for local lines.
    pub ts: Option<u64>,
    /// Who sent it (messages and notices).
    pub sender: Option<String>,
    /// The text (neutralised: no control characters, no line breaks).
    pub text: String,
    /// What kind of line it is.
    pub kind: LineKind,
    /// It mentions us (or is a private message to us): highlighted.
    pub mention: bool,
    /// A local sequence number, unique in the model: the read marker points at one.
    pub seq: u64,
}

/// A buffer's state.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// What it is about.
    pub kind: BufferKind,
    /// Its lines in order (messages by `msg_id`, local lines where they arrived).
    pub lines: Vec<Line>,
    /// Lines that arrived while it was not shown.
    pub unread: usize,
    /// Something among the unread lines mentions us.
    pub mention: bool,
    /// The `seq` of the first line that arrived while it was not shown: the read marker.
    pub read_marker: Option<u64>,
    /// How many lines are hidden below the view (0: following the newest line).
    pub scroll: usize,
    /// Lines arrived below the view while scrolled up.
    pub new_below: bool,
    /// Room members (sorted case-insensitively); empty for other buffers.
    pub members: Vec<String>,
    /// Senders of this buffer, most recent first (for completion).
    pub speakers: Vec<String>,
    /// Lines sent from this buffer, oldest first (Up/Down).
    pub history: Vec<String>,
    /// The history entry shown while browsing with Up/Down, and the draft it replaced.
    pub history_pos: Option<(usize, String)>,
    /// Fetching older history from the server.
    pub older: super::Older,
}

/// How many input lines each buffer remembers.
pub const INPUT_HISTORY: usize = 200;

/// How many lines a buffer keeps; older ones are dropped.
pub const MAX_LINES: usize = 5000;

impl Buffer {
    /// An empty buffer.
    pub fn new(kind: BufferKind) -> Buffer {
        Buffer {
            kind,
            lines: Vec::new(),
            unread: 0,
            mention: false,
            read_marker: None,
            scroll: 0,
            new_below: false,
            members: Vec::new(),
            speakers: Vec::new(),
            history: Vec::new(),
            history_pos: None,
            older: super::Older::default(),
        }
    }

    /// True when a line with this message id is already shown.
    pub fn has_msg(&self, msg_id: u64) -> bool {
        self.lines.iter().any(|l| l.msg_id == Some(msg_id))
    }

    /// Adds a line (unless its `msg_id` is already there), in `msg_id` order for messages.
    /// `shown` says whether the buffer is on screen; `live` whether it is new (history
    /// replays are not unread). Returns whether it was added.
    pub fn push(&mut self, line: Line, shown: bool, live: bool) -> bool {
        if let Some(id) = line.msg_id
            && self.has_msg(id)
        {
            return false;
        }
        if let Some(sender) = &line.sender
            && live
            && line.kind == LineKind::Message
        {
            self.speakers.retain(|s| name_key(s) != name_key(sender));
            self.speakers.insert(0, sender.clone());
        }
        // Messages go before any later message already there (history after live); one
        // older than every message shown (fetched history) goes to the very top, above
        // the local lines before the first message (such as the `[joined]` line).
        let at = match line.msg_id {
            Some(id) => match self
                .lines
                .iter()
                .position(|l| l.msg_id.is_some_and(|other| other > id))
            {
                Some(at) if self.lines[..at].iter().all(|l| l.msg_id.is_none()) => 0,
                Some(at) => at,
                None => self.lines.len(),
            },
            None => self.lines.len(),
        };
        let at_end = at == self.lines.len();
        if live && !shown {
            if self.unread == 0 {
                self.read_marker = Some(line.seq);
            }
            self.unread += 1;
            self.mention |= line.mention;
        }
        if self.scroll > 0 && at_end {
            // Keep the view where it is and say that more arrived below.
            self.scroll += 1;
            self.new_below = true;
        }
        self.lines.insert(at, line);
        if self.lines.len() > MAX_LINES {
            self.lines.remove(0);
        }
        true
    }

    /// The buffer is now shown: nothing is unread any more (the read marker stays until
    /// the buffer is left).
    pub fn seen(&mut self) {
        self.unread = 0;
        self.mention = false;
    }

    /// The buffer is no longer shown: the read marker is dropped.
    pub fn left(&mut self) {
        self.read_marker = None;
    }

    /// Scrolls up by `lines` (towards older lines).
    pub fn scroll_up(&mut self, lines: usize) {
        let max = self.lines.len().saturating_sub(1);
        self.scroll = (self.scroll + lines).min(max);
    }

    /// Scrolls down by `lines`; at the bottom the "new messages below" mark goes.
    pub fn scroll_down(&mut self, lines: usize) {
        self.scroll = self.scroll.saturating_sub(lines);
        if self.scroll == 0 {
            self.new_below = false;
        }
    }

    /// Remembers a sent line for Up/Down.
    pub fn remember(&mut self, line: &str) {
        self.history_pos = None;
        if line.trim().is_empty() || self.history.last().is_some_and(|l| l == line) {
            return;
        }
        self.history.push(line.to_string());
        if self.history.len() > INPUT_HISTORY {
            self.history.remove(0);
        }
    }

    /// Up: the previous history entry, given the line being edited.
    pub fn history_up(&mut self, current: &str) -> Option<String> {
        let pos = match &self.history_pos {
            None => self.history.len().checked_sub(1)?,
            Some((0, _)) => return None,
            Some((pos, _)) => pos - 1,
        };
        let draft = match self.history_pos.take() {
            Some((_, draft)) => draft,
            None => current.to_string(),
        };
        self.history_pos = Some((pos, draft));
        self.history.get(pos).cloned()
    }

    /// Down: the next history entry, or the draft after the newest.
    pub fn history_down(&mut self) -> Option<String> {
        let (pos, draft) = self.history_pos.take()?;
        if pos + 1 < self.history.len() {
            let line = self.history[pos + 1].clone();
            self.history_pos = Some((pos + 1, draft));
            Some(line)
        } else {
            Some(draft)
        }
    }

    /// Sets the room's members (sorted case-insensitively, deduplicated).
    pub fn set_members(&mut self, members: &[String]) {
        self.members = members.to_vec();
        self.members.sort_by_key(|m| name_key(m));
        self.members.dedup_by_key(|m| name_key(m));
    }

    /// Adds a member.
    pub fn add_member(&mut self, user: &str) {
        if !self.members.iter().any(|m| name_key(m) == name_key(user)) {
            self.members.push(user.to_string());
            self.members.sort_by_key(|m| name_key(m));
        }
    }

    /// Removes a member.
    pub fn remove_member(&mut self, user: &str) {
        self.members.retain(|m| name_key(m) != name_key(user));
    }
}

/// True when `text` mentions `user` as a whole word, ignoring case (`bob:`, `@bob`, `Bob!`
/// do; `bobby` does not).
pub fn mentions(text: &str, user: &str) -> bool {
    let user = name_key(user);
    if user.is_empty() {
        return false;
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.split(|c: char| !is_name_char(c))
        .any(|word| name_key(word) == user)
}
