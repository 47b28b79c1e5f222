//! Fetching older history when the view scrolls past the top of a room or private
//! buffer: `history` with `before` = the oldest `msg_id` shown, [`OLDER_PAGE`] at a time.
//! The answer is inserted above (deduplicated by `msg_id`, which [`super::Buffer::push`]
//! does); the scroll offset counts lines from the bottom, so the view does not move. An
//! answer with fewer messages than asked means there is nothing earlier.

use natter_proto::{ClientFrame, FrameId};

use super::{BufferKind, Effect, Model, buffer::MAX_LINES};

/// How many messages one fetch asks for.
pub const OLDER_PAGE: u32 = 50;

/// A buffer's state of fetching older history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Older {
    /// The request in flight and how many messages its answer brought so far.
    pub pending: Option<(FrameId, usize)>,
    /// The server has nothing earlier: no more fetching.
    pub done: bool,
}

impl Model {
    /// Scrolls the current buffer up by `lines` on a message area of `rows` rows; when the
    /// first line comes into view, fetches older history.
    pub fn scroll_up(&mut self, lines: usize, rows: usize) -> Vec<Effect> {
        let buffer = self.current_buffer_mut();
        buffer.scroll_up(lines);
        if buffer.lines.len().saturating_sub(buffer.scroll) <= rows {
            return self.fetch_older(self.current);
        }
        Vec::new()
    }

    /// Asks for the messages before the oldest shown in buffer `index`, unless a fetch is
    /// in flight, the server has nothing earlier, or the buffer is full.
    pub fn fetch_older(&mut self, index: usize) -> Vec<Effect> {
        let Some(buffer) = self.buffers.get(index) else {
            return Vec::new();
        };
        if buffer.older.pending.is_some() || buffer.older.done || buffer.lines.len() >= MAX_LINES {
            return Vec::new();
        }
        let (room, with) = match &buffer.kind {
            BufferKind::Room(room) => (Some(room.clone()), None),
            BufferKind::Private(user) => (None, Some(user.clone())),
            BufferKind::Server => return Vec::new(),
        };
        let before = buffer.lines.iter().filter_map(|l| l.msg_id).min();
        self.next_fetch += 1;
        let id = FrameId::Str(format!("older-{}", self.next_fetch));
        self.buffers[index].older.pending = Some((id.clone(), 0));
        vec![Effect::Send(ClientFrame::History {
            id: Some(id),
            room,
            with,
            before,
            limit: Some(OLDER_PAGE),
        })]
    }

    /// A chunk of a `history` answer for buffer `index`: counts it against a fetch of
    /// ours; after the last chunk, fewer messages than asked mean nothing is earlier.
    pub(super) fn older_chunk(
        &mut self,
        index: usize,
        id: Option<&FrameId>,
        count: usize,
        last: bool,
    ) {
        let older = &mut self.buffers[index].older;
        let Some((pending, received)) = &mut older.pending else {
            return;
        };
        if id != Some(pending) {
            return;
        }
        *received += count;
        if last {
            older.done = *received < OLDER_PAGE as usize;
            older.pending = None;
        }
    }

    /// An error answering request `id`: a fetch of ours stops for good.
    pub(super) fn older_failed(&mut self, id: &FrameId) {
        for buffer in &mut self.buffers {
            if buffer.older.pending.as_ref().is_some_and(|(p, _)| p == id) {
                buffer.older.pending = None;
                buffer.older.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
