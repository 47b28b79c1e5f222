//! IRC lines as the generator writes and reads them: registration, refusals, numerics,
//! and the one-pass reading of the `PRIVMSG` lines that make up nearly all deliveries.

use super::Kind;
use super::PASSWORD;

/// The lines that register `name` on an IRC server: NICK and USER, preceded for
/// natter's gateway by `PASS account:password` (the nick is the account name).
pub(super) fn irc_registration(kind: Kind, name: &str) -> String {
    let pass = if kind == Kind::NatterIrc {
        format!("PASS {name}:{PASSWORD}\r\n")
    } else {
        String::new()
    };
    format!("{pass}NICK {name}\r\nUSER {name} 0 * :bench\r\n")
}

/// Whether a line received before the welcome means registration failed: `ERROR`, or
/// 432 (erroneous nick; natter: not the account's name), 433 (nick in use), 464
/// (natter: wrong password) or 465 (natter: banned).
pub(super) fn irc_refusal(line: &[u8]) -> bool {
    line.starts_with(b"ERROR") || matches!(irc_code(line), Some(b"432" | b"433" | b"464" | b"465"))
}

/// The command word of an IRC line (the numeric for server replies).
pub(super) fn irc_code(line: &[u8]) -> Option<&[u8]> {
    let mut words = line.split(|&b| b == b' ');
    let first = words.next()?;
    if first.starts_with(b":") {
        words.next()
    } else {
        Some(first)
    }
}

/// Where the parts of a `PRIVMSG` line are, as offsets into the bytes it starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PrivmsgLine {
    /// The sender's nick (the prefix up to `!`, or all of it without a `!`).
    pub(super) nick: (usize, usize),
    /// The text (the trailing parameter, without the line ending).
    pub(super) text: (usize, usize),
    /// The line's length with its line ending.
    pub(super) len: usize,
}

/// The IRC line at the start of `b` when it is a complete
/// `:nick[!user@host] PRIVMSG target :text` line; `None` for anything else, including
/// an incomplete line (the general parser, [`super::Reader::irc`], then handles it or waits for
/// more). Deliveries are nearly all a receiver reads, so this takes them in one pass:
/// short byte loops over the prefix and the target, and the one vectorised search, for
/// the line's end, over the text only.
#[inline]
pub(super) fn irc_privmsg(b: &[u8]) -> Option<PrivmsgLine> {
    const PRIVMSG: &[u8] = b"PRIVMSG ";
    if b.first() != Some(&b':') {
        return None;
    }
    // The prefix: the nick ends at `!` (a user) or at the space (a bare nick). The
    // searches stop at a line end, so that they never run into the next line.
    let prefix_end = 1 + b[1..].iter().position(|&c| c == b' ' || c == b'\n')?;
    if b[prefix_end] != b' ' {
        return None;
    }
    let nick_end = 1 + b[1..prefix_end]
        .iter()
        .position(|&c| c == b'!')
        .unwrap_or(prefix_end - 1);
    let target = prefix_end + 1 + PRIVMSG.len();
    if b.get(prefix_end + 1..target)? != PRIVMSG {
        return None;
    }
    // The target, then the trailing parameter's colon.
    let target_end = target + b[target..].iter().position(|&c| c == b' ' || c == b'\n')?;
    if b[target_end] != b' ' || b.get(target_end + 1) != Some(&b':') {
        return None;
    }
    let text = target_end + 2;
    let nl = text + memchr::memchr(b'\n', &b[text..])?;
    let text_end = if nl > text && b[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some(PrivmsgLine {
        nick: (1, nick_end),
        text: (text, text_end),
        len: nl + 1,
    })
}
