//! IRC messages: parsing a client's line and serialising the server's, with IRCv3 tags.
//!
//! Limits follow the IRCv3 message-tags specification: the message proper (prefix,
//! command, parameters, CRLF) may take 512 bytes and the tags another 8191 bytes
//! (leading `@` and trailing space included). A longer line is refused with 417
//! (ERR_INPUTTOOLONG) by the caller; nothing here panics on hostile input.

use std::fmt::Write;

/// Longest message without its tags, CRLF included (RFC 1459).
pub const MAX_BODY: usize = 512;
/// Longest tags section a client may send, `@` and the trailing space included (IRCv3
/// message-tags: 4094 bytes of tag data).
pub const MAX_CLIENT_TAGS: usize = 4096;
/// Longest line read at all; beyond this the connection is closed, not just answered.
pub const MAX_READ: usize = MAX_BODY + MAX_CLIENT_TAGS;
/// Parameters kept at most (RFC 1459: 15); further ones are folded into the last.
const MAX_PARAMS: usize = 15;

/// Why a line is not a usable IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Nothing but whitespace (ignored by servers, not an error worth answering).
    #[error("empty line")]
    Empty,
    /// The message proper or its tags exceed their limits.
    #[error("input line too long")]
    TooLong,
    /// Not UTF-8 (natter is UTF8ONLY).
    #[error("line is not UTF-8")]
    NotUtf8,
}

/// A parsed client message; tags are kept raw (no client tag is acted on yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Raw tags without the `@`, if any.
    pub tags: Option<String>,
    /// The command, upper-cased.
    pub command: String,
    /// Parameters, the trailing one included.
    pub params: Vec<String>,
}

impl Message {
    /// The `i`th parameter, if present.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }
}

/// Parses one line (without its CR LF).
pub fn parse(line: &[u8]) -> Result<Message, LineError> {
    let mut rest = line;
    let mut tags = None;
    if rest.first() == Some(&b'@') {
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        // The tag section counts its `@` and the space that ends it.
        if end + 1 > MAX_CLIENT_TAGS {
            return Err(LineError::TooLong);
        }
        tags = Some(std::str::from_utf8(&rest[1..end]).map_err(|_| LineError::NotUtf8)?);
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    // The body plus the CR LF the client sent (or would have sent).
    if rest.len() + 2 > MAX_BODY {
        return Err(LineError::TooLong);
    }
    let text = std::str::from_utf8(rest).map_err(|_| LineError::NotUtf8)?;
    let mut text = text.trim_start_matches(' ');
    if text.starts_with(':') {
        // A client's prefix is ignored (RFC 2812: servers drop it for local clients).
        text = text
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    let (command, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    if command.is_empty() {
        return Err(LineError::Empty);
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_string());
            break;
        }
        if params.len() == MAX_PARAMS - 1 {
            params.push(rest.to_string());
            break;
        }
        let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(p.to_string());
        rest = r;
    }
    Ok(Message {
        tags: tags.map(str::to_string),
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// Appends one server message: `[@tags ]:source COMMAND params... [:trailing]\r\n`
/// (without `:source` when it is empty, as ERROR is sent).
///
/// The last parameter is written as a trailing one (`:`) when it is text or needs it. Carriage returns, line feeds and NULs in any part
/// become spaces: no text may start a second line.
pub fn write(out: &mut Vec<u8>, tags: Option<&str>, source: &str, command: &str, params: &[&str]) {
    let mut line = String::with_capacity(64);
    if let Some(tags) = tags {
        line.push('@');
        line.push_str(tags);
        line.push(' ');
    }
    if source.is_empty() {
        line.push_str(command);
    } else {
        let _ = write!(line, ":{source} {command}");
    }
    if let Some((last, middle)) = params.split_last() {
        for p in middle {
            line.push(' ');
            line.push_str(p);
        }
        // Text (messages, numerics' explanations) always as a trailing parameter, as
        // clients expect; a lone channel or token (JOIN #a, AUTHENTICATE +) bare, as
        // ergo writes them, unless it would not parse back.
        let texty = matches!(
            command,
            "PRIVMSG" | "NOTICE" | "QUIT" | "ERROR" | "CAP" | "PING" | "PONG"
        ) || command.starts_with(|c: char| c.is_ascii_digit());
        if texty || last.is_empty() || last.contains(' ') || last.starts_with(':') {
            line.push_str(" :");
        } else {
            line.push(' ');
        }
        line.push_str(last);
    }
    out.extend(line.bytes().map(|b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b' '
        } else {
            b
        }
    }));
    out.extend_from_slice(b"\r\n");
}

/// Splits `text` into pieces of at most `max` bytes at character boundaries, and at its
/// line breaks (an IRC message is one line). Empty lines are dropped.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    for line in text.split('\n') {
        let mut line = line.trim_end_matches('\r');
        while line.len() > max {
            let mut cut = max;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            pieces.push(&line[..cut]);
            line = &line[cut..];
        }
        if !line.is_empty() {
            pieces.push(line);
        }
    }
    pieces
}

/// The `time` tag's value for `ts_ms` (milliseconds since the epoch), as IRCv3
/// server-time wants it: `YYYY-MM-DDThh:mm:ss.sssZ`.
pub fn server_time(ts_ms: u64) -> String {
    let secs = ts_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ts_ms % 1000
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), so no date
/// library is needed for one tag.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Decodes standard base64 (SASL payloads); `None` if it is not valid base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    if !text.len().is_multiple_of(4) || text.len() - bytes.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_prefix_params_and_trailing() {
        let m = parse(b"@label=1;+x=y :nick!u@h PRIVMSG #room :hello  world").expect("parses");
        assert_eq!(m.tags.as_deref(), Some("label=1;+x=y"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#room", "hello  world"]);
        let m = parse(b"join   #a,#b key").expect("parses");
        assert_eq!(m.command, "JOIN");
        assert_eq!(m.params, vec!["#a,#b", "key"]);
        let m = parse(b"PRIVMSG #a ::)").expect("parses");
        assert_eq!(m.params, vec!["#a", ":)"]);
        let m = parse(b"CAP END").expect("parses");
        assert_eq!(m.param(0), Some("END"));
        assert_eq!(m.param(1), None);
        assert_eq!(parse(b"   "), Err(LineError::Empty));
        assert_eq!(parse(b":onlyprefix"), Err(LineError::Empty));
        assert_eq!(parse(b"PRIVMSG #a :\xff"), Err(LineError::NotUtf8));
    }

    #[test]
    fn limits_body_and_tags_separately() {
        let body = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY - 2 - 12));
        assert_eq!(body.len() + 2, MAX_BODY);
        assert!(parse(body.as_bytes()).is_ok());
        let over = format!("{body}x");
        assert_eq!(parse(over.as_bytes()), Err(LineError::TooLong));
        // Tags do not eat into the body's budget...
        let tagged = format!("@{} {body}", "t".repeat(MAX_CLIENT_TAGS - 2));
        assert!(parse(tagged.as_bytes()).is_ok());
        // ...but have their own.
        let tagged = format!("@{} {body}", "t".repeat(MAX_CLIENT_TAGS - 1));
        assert_eq!(parse(tagged.as_bytes()), Err(LineError::TooLong));
    }

    #[test]
    fn fifteen_params_at_most() {
        let line = format!(
            "CMD {}",
            (1..=20)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let m = parse(line.as_bytes()).expect("parses");
        assert_eq!(m.params.len(), 15);
        assert_eq!(m.params[14], "15 16 17 18 19 20");
    }

    #[test]
    fn writes_trailing_and_never_a_second_line() {
        let mut out = Vec::new();
        write(&mut out, None, "natter", "001", &["alice", "Welcome"]);
        write(
            &mut out,
            Some("time=x"),
            "a!a@natter",
            "PRIVMSG",
            &["#r", "hi\r\nQUIT"],
        );
        write(&mut out, None, "a!a@natter", "JOIN", &["#r"]);
        write(&mut out, None, "natter", "AUTHENTICATE", &["+"]);
        write(&mut out, None, "a!a@natter", "PART", &[":odd"]);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            ":natter 001 alice :Welcome\r\n@time=x :a!a@natter PRIVMSG #r :hi  QUIT\r\n\
             :a!a@natter JOIN #r\r\n:natter AUTHENTICATE +\r\n:a!a@natter PART ::odd\r\n"
        );
    }

    #[test]
    fn splits_text_at_lines_and_char_boundaries() {
        assert_eq!(split_text("a\nb\r\n\nc", 10), vec!["a", "b", "c"]);
        assert_eq!(split_text("ééé", 5), vec!["éé", "é"]);
        assert!(split_text("", 10).is_empty());
    }

    #[test]
    fn server_time_format() {
        assert_eq!(server_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(server_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(server_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("AGFsaWNlAHB3").as_deref(),
            Some(&b"\0alice\0pw"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("Y!==").as_deref(), None);
    }
}
