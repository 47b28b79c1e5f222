//! Pastes: a paste of a few lines sends each complete line in order (what follows the
//! last line break stays typed); more than [`PASTE_CONFIRM`] lines first ask
//! `send 12 lines? (y/n)` on the input line, like weechat's paste confirmation. `y` sends
//! them all in order, `n`, Esc or Ctrl-C drops the paste.

use super::{Effect, LineKind, Model};

/// Pastes of more lines than this are confirmed first.
pub const PASTE_CONFIRM: usize = 5;

impl Model {
    /// A pasted text.
    pub fn paste(&mut self, text: &str) -> Vec<Effect> {
        if self.pending_paste.is_some() {
            return Vec::new();
        }
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut parts: Vec<String> = text.split('\n').map(str::to_string).collect();
        let rest = parts.pop().unwrap_or_default();
        let count = parts.iter().filter(|p| !p.trim().is_empty()).count()
            + usize::from(!rest.trim().is_empty());
        if count > PASTE_CONFIRM {
            if !rest.is_empty() {
                parts.push(rest);
            }
            self.pending_paste = Some(parts);
            return Vec::new();
        }
        let mut effects = Vec::new();
        for part in parts {
            self.input.insert_str(&part);
            effects.extend(self.enter());
        }
        self.input.insert_str(&rest);
        effects
    }

    /// The question shown while a long paste waits: `send 12 lines? (y/n)`.
    pub fn paste_question(&self) -> Option<String> {
        let lines = self.pending_paste.as_ref()?;
        let n = lines.iter().filter(|l| !l.trim().is_empty()).count();
        Some(format!("send {n} lines? (y/n)"))
    }

    /// The answer to the paste question: `true` sends the lines in order, `false` drops
    /// them.
    pub fn answer_paste(&mut self, send: bool) -> Vec<Effect> {
        let Some(lines) = self.pending_paste.take() else {
            return Vec::new();
        };
        if !send {
            let text = format!("paste of {} lines not sent", lines.len());
            self.note(self.current, text, LineKind::Info);
            return Vec::new();
        }
        let mut effects = Vec::new();
        for line in lines {
            self.input.insert_str(&line);
            effects.extend(self.enter());
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use natter_proto::{ClientFrame, ServerFrame};

    use super::*;

    fn alice() -> Model {
        let mut m = Model::new("alice", 0);
        m.on_frame(&ServerFrame::Joined {
            id: None,
            room: "lobby".into(),
            members: vec!["alice".into()],
            more: 0,
        });
        m
    }

    fn texts(effects: &[Effect]) -> Vec<&str> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Send(ClientFrame::Public { text, .. }) => text.as_str(),
                _ => "?",
            })
            .collect()
    }

    #[test]
    fn a_few_lines_are_sent_in_order_at_once() {
        let mut m = alice();
        let sent = m.paste("1\n2\n3\n4\n5\n");
        assert_eq!(texts(&sent), ["1", "2", "3", "4", "5"]);
        assert!(m.paste_question().is_none());
        // Five complete lines and a half one: the half one is typed.
        let sent = m.paste("a\nb\n\nc\nd\ne");
        assert_eq!(texts(&sent), ["a", "b", "c", "d"]);
        assert_eq!(m.input.text(), "e");
    }

    #[test]
    fn more_lines_ask_first_and_yes_sends_them_all_in_order() {
        let mut m = alice();
        let text: String = (1..=12).map(|i| format!("line {i}\n")).collect();
        assert!(m.paste(&text).is_empty());
        assert_eq!(m.paste_question().as_deref(), Some("send 12 lines? (y/n)"));
        // Another paste while asking is dropped.
        assert!(m.paste("x\ny\n").is_empty());
        let sent = m.answer_paste(true);
        let expected: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
        assert_eq!(texts(&sent), expected);
        assert!(m.paste_question().is_none());
        assert_eq!(m.input.text(), "");
    }

    #[test]
    fn no_drops_the_paste() {
        let mut m = alice();
        m.paste("1\n2\n3\n4\n5\n6");
        assert_eq!(m.paste_question().as_deref(), Some("send 6 lines? (y/n)"));
        assert!(m.answer_paste(false).is_empty());
        assert!(m.paste_question().is_none());
        assert_eq!(m.input.text(), "");
        let last = m.current_buffer().lines.last().expect("a note");
        assert_eq!(last.text, "paste of 6 lines not sent");
    }
}
