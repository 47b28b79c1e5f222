//! The mentions list: the recent lines that mention us or are private messages to us,
//! across buffers. F8 or `/mentions` lists them in the server buffer (buffer, time,
//! sender, text) and shows it. Whether a mention rings the terminal bell is
//! the config file's `bell`.

use super::{Effect, Line, LineKind, Model};
use crate::format;

/// How many mentions are remembered.
pub const MENTIONS_KEPT: usize = 100;

/// One mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The buffer it arrived in: `#rust`, `@bob`.
    pub buffer: String,
    /// Server time in Unix milliseconds.
    pub ts: u64,
    /// Who sent it (neutralised).
    pub sender: String,
    /// The text (neutralised).
    pub text: String,
}

impl Model {
    /// A new line in buffer `index` mentions us: remembered, and the bell when enabled.
    pub(super) fn mentioned(
        &mut self,
        index: usize,
        ts: u64,
        from: &str,
        text: &str,
    ) -> Vec<Effect> {
        self.mentions.push(Mention {
            buffer: self.buffers[index].kind.label(),
            ts,
            sender: format::sanitize(from),
            text: format::sanitize(text),
        });
        let excess = self.mentions.len().saturating_sub(MENTIONS_KEPT);
        self.mentions.drain(..excess);
        if self.config.bell {
            vec![Effect::Bell]
        } else {
            Vec::new()
        }
    }

    /// Lists the mentions in the server buffer and shows it.
    pub fn show_mentions(&mut self) {
        let header = match self.mentions.len() {
            0 => "no mentions yet".to_string(),
            n => format!("mentions ({n}, oldest first):"),
        };
        self.note(0, header, LineKind::Info);
        for m in self.mentions.clone() {
            let line = Line {
                msg_id: None,
                ts: Some(m.ts),
                sender: Some(m.sender),
                text: format!("[{}] {}", m.buffer, m.text),
                kind: LineKind::Info,
                mention: false,
                seq: 0,
            };
            self.push(0, line, true);
        }
        self.switch_to(0);
        self.buffers[0].scroll_down(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use natter_proto::ServerFrame;

    use super::*;

    fn alice() -> Model {
        let mut m = Model::new("alice", 0);
        for room in ["lobby", "rust"] {
            m.on_frame(&ServerFrame::Joined {
                id: None,
                room: room.into(),
                members: vec!["alice".into()],
                more: 0,
            });
        }
        m
    }

    fn public(msg_id: u64, room: &str, from: &str, text: &str) -> ServerFrame {
        ServerFrame::Public {
            msg_id,
            room: room.into(),
            from: from.into(),
            text: text.into(),
            ts: 1_700_000_000_000 + msg_id * 60_000,
        }
    }

    #[test]
    fn mentions_and_private_messages_are_listed_across_buffers() {
        let mut m = alice();
        assert_eq!(
            m.on_frame(&public(1, "rust", "bob", "alice: ping")),
            [Effect::Bell]
        );
        assert!(m.on_frame(&public(2, "rust", "bob", "no one")).is_empty());
        // Our own line naming us is no mention.
        assert!(
            m.on_frame(&public(3, "lobby", "alice", "alice here"))
                .is_empty()
        );
        m.on_frame(&ServerFrame::Private {
            msg_id: 4,
            from: "carol".into(),
            to: "alice".into(),
            text: "psst\u{1b}[2J".into(),
            ts: 1_700_000_000_000,
            late: false,
        });
        let listed: Vec<_> = m
            .mentions
            .iter()
            .map(|x| (x.buffer.as_str(), x.sender.as_str()))
            .collect();
        assert_eq!(listed, [("#rust", "bob"), ("@carol", "carol")]);
        assert!(!m.mentions[1].text.contains('\u{1b}'));
        m.submit("/mentions");
        assert_eq!(m.current, 0);
        let texts: Vec<_> = m.buffers[0].lines.iter().map(|l| l.text.clone()).collect();
        let n = texts.len();
        assert_eq!(texts[n - 3], "mentions (2, oldest first):");
        assert_eq!(texts[n - 2], "[#rust] alice: ping");
        assert!(texts[n - 1].starts_with("[@carol] psst"));
        assert_eq!(m.buffers[0].lines[n - 2].sender.as_deref(), Some("bob"));
    }

    #[test]
    fn the_bell_can_be_turned_off_and_the_list_is_bounded() {
        let mut m = alice();
        m.config.bell = false;
        for i in 0..(MENTIONS_KEPT as u64 + 5) {
            assert!(
                m.on_frame(&public(i, "rust", "bob", "hey alice"))
                    .is_empty()
            );
        }
        assert_eq!(m.mentions.len(), MENTIONS_KEPT);
        assert_eq!(m.mentions[0].ts, 1_700_000_000_000 + 5 * 60_000);
        let mut empty = alice();
        empty.show_mentions();
        assert_eq!(
            empty.buffers[0].lines.last().map(|l| l.text.as_str()),
            Some("no mentions yet")
        );
    }
}
