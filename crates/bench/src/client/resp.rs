//! Reading RESP (Redis) replies in place, without copying.

use super::*;

/// The common case, a complete well-formed `message` push
/// (`*3 $7 message $n channel $m payload`), without the generic parser's bookkeeping:
/// the payload's span and the push's length. `None` for anything else, including an
/// incomplete push, which the generic parser then handles.
#[inline]
pub(super) fn resp_message(d: &[u8]) -> Option<(usize, usize, usize)> {
    const HEAD: &[u8] = b"*3\r\n$7\r\nmessage\r\n$";
    if !d.starts_with(HEAD) {
        return None;
    }
    let (clen, at) = resp_len(d, HEAD.len())?;
    let at = at + clen;
    if d.get(at..at + 3)? != b"\r\n$" {
        return None;
    }
    let (plen, start) = resp_len(d, at + 3)?;
    let end = start + plen;
    (d.get(end..end + 2)? == b"\r\n").then_some((start, end, end + 2))
}

/// A short decimal length at `d[at..]` terminated by CRLF: the value and where the data
/// after the CRLF starts.
#[inline]
fn resp_len(d: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    let mut i = at;
    loop {
        let c = *d.get(i)?;
        if c == b'\r' {
            break;
        }
        let digit = c.wrapping_sub(b'0');
        if digit > 9 || i - at >= 9 {
            return None;
        }
        v = v * 10 + digit as usize;
        i += 1;
    }
    (i > at && d.get(i + 1) == Some(&b'\n')).then_some((v, i + 2))
}

/// Start and end offsets of a piece of a buffer.
type Range = (usize, usize);

/// Parses one RESP2 value starting at `data[at]`. Returns its end and, for strings,
/// their content span; `item` is called with the span of each string element of a
/// top-level array. `None` when the value is not complete yet.
pub(super) fn resp_value(
    data: &[u8],
    at: usize,
    depth: u32,
    item: &mut dyn FnMut(Range),
) -> Result<Option<(usize, Option<Range>)>> {
    let Some(nl) = memchr::memchr(b'\n', &data[at..]).map(|i| at + i) else {
        return Ok(None);
    };
    if nl < at + 2 || data[nl - 1] != b'\r' {
        bail!("bad RESP line");
    }
    let head = &data[at + 1..nl - 1];
    let int = || -> Result<i64> {
        std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad RESP length {:?}", String::from_utf8_lossy(head)))
    };
    match data[at] {
        b'+' | b'-' | b':' => Ok(Some((nl + 1, Some((at + 1, nl - 1))))),
        b'$' => {
            let len = int()?;
            if len < 0 {
                return Ok(Some((nl + 1, None)));
            }
            if len as usize > MAX_FRAME {
                bail!("RESP string of {len} bytes is too long");
            }
            let start = nl + 1;
            let end = start + len as usize;
            if data.len() < end + 2 {
                return Ok(None);
            }
            if &data[end..end + 2] != b"\r\n" {
                bail!("bad RESP bulk string ending");
            }
            Ok(Some((end + 2, Some((start, end)))))
        }
        b'*' => {
            if depth > 8 {
                bail!("RESP nested too deeply");
            }
            let n = int()?;
            let mut pos = nl + 1;
            for _ in 0..n.max(0) {
                if pos >= data.len() {
                    return Ok(None);
                }
                let Some((end, span)) = resp_value(data, pos, depth + 1, &mut |_| {})? else {
                    return Ok(None);
                };
                if depth == 0 {
                    item(span.unwrap_or((pos, pos)));
                }
                pos = end;
            }
            Ok(Some((pos, None)))
        }
        other => bail!("bad RESP type byte {other:#04x}"),
    }
}

/// Encodes a RESP2 command into `out` (appended).
pub(super) fn resp(parts: &[&[u8]], out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(out, "*{}\r\n", parts.len());
    for p in parts {
        let _ = write!(out, "${}\r\n", p.len());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}
