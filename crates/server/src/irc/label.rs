//! IRCv3 `labeled-response`: the replies to a command the client labelled (`@label=x`)
//! carry the label: one line tagged with it, several in a `labeled-response` batch, none
//! as an `ACK`.
//!
//! A command's replies come from two places: the adapter's own lines (written while the
//! line is handled) and the session's answers to the frames it yields (written later, in
//! order). While a label is open the connection collects both; the adapter closes it
//! itself when the command yields no frame, and otherwise appends a ping with
//! [`END_ID`] that the session answers after the command's frames, in order.
//! Deliveries fanned out to the room (other users' lines, echoed messages) are not
//! replies and are not labelled.

use natter_proto::{ClientFrame, FrameId};

/// The id of the ping that closes an open label.
pub const END_ID: &str = "\u{1}label";

/// Longest label kept (IRCv3 recommends at most 64 bytes).
const MAX_LABEL: usize = 64;

/// Replies collected for a labelled command.
#[derive(Debug)]
pub struct Open {
    /// The client's label.
    label: String,
    /// Reply lines so far, each with its CR LF.
    lines: Vec<u8>,
}

impl Open {
    /// Collects `bytes` (whole lines).
    pub fn push(&mut self, bytes: &[u8]) {
        self.lines.extend_from_slice(bytes);
    }

    /// The client's label (for replies that carry it themselves, as a batch).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// The label of a command's tags (`label=...`), if usable.
pub fn of(tags: Option<&str>) -> Option<Open> {
    let label = tags?
        .split(';')
        .find_map(|t| t.strip_prefix("label="))
        .filter(|l| !l.is_empty() && l.len() <= MAX_LABEL)?;
    // Tag values are escaped on the wire; a label is echoed as sent, so only labels
    // that need no escaping are honoured.
    if label
        .bytes()
        .any(|b| matches!(b, b' ' | b';' | b'\\' | b'\r' | b'\n'))
    {
        return None;
    }
    Some(Open {
        label: label.to_string(),
        lines: Vec::new(),
    })
}

/// The frame that closes a label once the session has handled the frames before it.
pub fn end_frame() -> ClientFrame {
    ClientFrame::Ping {
        id: Some(FrameId::Str(END_ID.to_string())),
    }
}

/// Writes the collected replies with their label into `out`; `batch` names the batch
/// when there are several.
pub fn close(open: Open, server: &str, batch: u64, out: &mut Vec<u8>) {
    let lines: Vec<&[u8]> = open
        .lines
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let label = format!("label={}", open.label);
    match lines.as_slice() {
        [] => out.extend_from_slice(format!("@{label} :{server} ACK\r\n").as_bytes()),
        [one] => tagged(out, &label, one),
        many => {
            let id = format!("L{batch}");
            out.extend_from_slice(
                format!("@{label} :{server} BATCH +{id} labeled-response\r\n").as_bytes(),
            );
            let tag = format!("batch={id}");
            for line in many {
                tagged(out, &tag, line);
            }
            out.extend_from_slice(format!(":{server} BATCH -{id}\r\n").as_bytes());
        }
    }
}

/// Writes `line` with `tag` added to its tags.
fn tagged(out: &mut Vec<u8>, tag: &str, line: &[u8]) {
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.push(b'@');
            out.extend_from_slice(tag.as_bytes());
            out.push(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.push(b'@');
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            out.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(lines: &str) -> String {
        let mut open = of(Some("time=x;label=abc")).expect("label");
        open.push(lines.as_bytes());
        let mut out = Vec::new();
        close(open, "srv", 7, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn none_one_or_a_batch() {
        assert_eq!(closed(""), "@label=abc :srv ACK\r\n");
        assert_eq!(
            closed(":srv 401 a b :no\r\n"),
            "@label=abc :srv 401 a b :no\r\n"
        );
        assert_eq!(
            closed("@time=t :a JOIN #x\r\n:srv 366 a #x :end\r\n"),
            "@label=abc :srv BATCH +L7 labeled-response\r\n@batch=L7;time=t :a JOIN #x\r\n\
             @batch=L7 :srv 366 a #x :end\r\n:srv BATCH -L7\r\n"
        );
        assert!(of(Some("label=a b")).is_none());
        assert!(of(Some("other=1")).is_none());
        assert!(of(None).is_none());
    }
}
