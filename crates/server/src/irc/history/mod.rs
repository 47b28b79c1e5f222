//! IRCv3 `draft/chathistory`: `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN`, for a
//! channel the client is in or a private conversation (a nick), with message references
//! `*`, `msgid=<natter msg_id>` and `timestamp=<ISO 8601>`, answered with a
//! `chathistory` batch of PRIVMSG lines tagged with `time` and `msgid`.
//!
//! # Where the messages come from
//!
//! The gateway asks the store itself, from a future that runs before the connection's
//! next line is read ([`Conn::blocking`], as OPER's password check), rather than sending
//! natter `history` frames through the session:
//!
//! - natter's `history` frame only pages backwards (`before` a message id). AFTER,
//!   AROUND, BETWEEN and timestamps need positions the frame cannot express; the store's
//!   `room_history`/`private_history` (newest below an id) and `room_since` (oldest
//!   after a room sequence number) can, as shown in [`Source`].
//! - The answer is written with one `emit`, so the batch arrives whole: the session's
//!   `history` frames are split to fit natter's line limit, and live deliveries could
//!   fall between them, inside the batch but without its tag.
//! - **Ordering.** Before asking the store the command yields a ping ([`BARRIER_ID`])
//!   and waits for the session to answer it. The session handles pings in order, once
//!   its earlier messages are committed, so a PRIVMSG sent before a CHATHISTORY is in
//!   its answer; and the next line is read only after the batch is out, so replies keep
//!   the order of the commands.
//! - **Limits and access.** The same as the `history` frame's: a room's history is
//!   readable while the account is in the room (`FAIL ... INVALID_TARGET` otherwise),
//!   a conversation's by the two people in it; at most [`MAX_LIMIT`] messages per
//!   command (ISUPPORT `CHATHISTORY`). The session's `history` frame costs no rate
//!   token either; one command runs at a time per connection (the next line waits), and
//!   each takes a bounded number of indexed store queries (`O(log n)` probes for a
//!   timestamp or a private AFTER).
//!
//! Positions are natter message ids, which rise in commit order within a room and a
//! conversation on one server. A `timestamp=` is turned into a position by bisection
//! over ids, assuming time does not go backwards between messages. A `msgid=` that
//! names no message of the target still names a position (ids are global), so it is
//! not an error. A message whose text has several lines is replayed as several PRIVMSG
//! lines with the same msgid (IRC has no multi-line messages without `draft/multiline`).
//! Not supported: `CHATHISTORY TARGETS`, `draft/event-playback` (natter stores messages
//! only: no joins, parts or topics).

use std::sync::{Arc, Mutex};

use natter_proto::{ClientFrame, FrameId, ServerFrame, parse_room, validate_username};
use tokio::sync::oneshot;

use super::encode::{chan, message_tags, privmsg};
use super::line::{self, Message};
use super::registration::{State, numeric};
use super::{Conn, label};
use crate::store::{Store, StoreError, StoredMessage, Target};

/// Most messages one CHATHISTORY returns (ISUPPORT `CHATHISTORY`).
pub const MAX_LIMIT: u32 = 100;

/// The id of the ping a CHATHISTORY waits for (see the module documentation).
pub const BARRIER_ID: &str = "\u{1}history";

/// Longest wait for the session's answer to the ping before the query runs anyway.
const BARRIER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the ISUPPORT tokens of chat history (a 005 line of their own).
pub fn isupport(out: &mut Vec<u8>, st: &State) {
    let max = format!("CHATHISTORY={MAX_LIMIT}");
    numeric(
        out,
        st,
        "005",
        &[
            &max,
            "MSGREFTYPES=msgid,timestamp",
            "are supported by this server",
        ],
    );
}

/// A CHATHISTORY waiting for the session's answer to its ping.
#[derive(Debug, Default)]
pub struct Barrier(Mutex<Option<oneshot::Sender<()>>>);

impl Barrier {
    /// Arms the barrier; the receiver resolves once the session answers the ping.
    fn arm(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }
}

/// Called by the encoder for the session's pongs: true (and nothing to write) for the
/// answer to a CHATHISTORY's ping, which lets its query run.
pub(super) fn on_pong(conn: &Conn, frame: &ServerFrame) -> bool {
    let ServerFrame::Pong {
        id: Some(FrameId::Str(id)),
    } = frame
    else {
        return false;
    };
    if id != BARRIER_ID {
        return false;
    }
    let waiting = conn
        .history
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(tx) = waiting {
        let _ = tx.send(());
    }
    true
}

/// A CHATHISTORY subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The newest messages (after a reference, if one is given).
    Latest,
    /// The newest messages before a reference.
    Before,
    /// The oldest messages after a reference.
    After,
    /// Messages on both sides of a reference (from it on, after).
    Around,
    /// Messages between two references, from the first one's side.
    Between,
}

impl Sub {
    /// The subcommand as written.
    pub fn name(self) -> &'static str {
        match self {
            Sub::Latest => "LATEST",
            Sub::Before => "BEFORE",
            Sub::After => "AFTER",
            Sub::Around => "AROUND",
            Sub::Between => "BETWEEN",
        }
    }
}

/// A message reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgRef {
    /// `*`: no bound (LATEST only).
    Any,
    /// `msgid=<id>`: a natter message id.
    Id(u64),
    /// `timestamp=<ISO 8601>`, in Unix milliseconds.
    Time(u64),
}

/// A parsed CHATHISTORY command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The subcommand.
    pub sub: Sub,
    /// The target as sent (`#room` or a nick); the batch names it so.
    pub target: String,
    /// The (first) reference.
    pub first: MsgRef,
    /// BETWEEN's second reference.
    pub second: Option<MsgRef>,
    /// Messages asked for, at most [`MAX_LIMIT`].
    pub limit: u32,
}

/// A `FAIL CHATHISTORY <code> <context...> :<text>` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    /// `INVALID_PARAMS`, `INVALID_TARGET` or `MESSAGE_ERROR`.
    pub code: &'static str,
    /// The parameters that say what failed (subcommand, target or reference).
    pub context: Vec<String>,
    /// A human-readable explanation.
    pub text: String,
}

impl Fail {
    fn new(code: &'static str, context: &[&str], text: impl Into<String>) -> Fail {
        Fail {
            code,
            context: context.iter().map(|c| c.to_string()).collect(),
            text: text.into(),
        }
    }

    fn params(sub: &str, text: impl Into<String>) -> Fail {
        Fail::new("INVALID_PARAMS", &[sub], text)
    }

    /// Writes the FAIL line.
    pub fn write(&self, server: &str, out: &mut Vec<u8>) {
        let mut params = vec!["CHATHISTORY", self.code];
        params.extend(self.context.iter().map(String::as_str));
        params.push(&self.text);
        line::write(out, None, server, "FAIL", &params);
    }
}

/// Parses CHATHISTORY's parameters.
pub fn parse(params: &[String]) -> Result<Request, Fail> {
    let Some(name) = params.first().filter(|p| !p.is_empty()) else {
        return Err(Fail::new(
            "INVALID_PARAMS",
            &[],
            "CHATHISTORY needs a subcommand",
        ));
    };
    let upper = name.to_ascii_uppercase();
    let sub = match upper.as_str() {
        "LATEST" => Sub::Latest,
        "BEFORE" => Sub::Before,
        "AFTER" => Sub::After,
        "AROUND" => Sub::Around,
        "BETWEEN" => Sub::Between,
        "TARGETS" => return Err(Fail::params(&upper, "TARGETS is not supported")),
        _ => return Err(Fail::params(&upper, "Unknown subcommand")),
    };
    let count = if sub == Sub::Between { 5 } else { 4 };
    if params.len() < count || params[..count].iter().any(String::is_empty) {
        return Err(Fail::params(sub.name(), "Not enough parameters"));
    }
    let reference = |raw: &str| -> Result<MsgRef, Fail> {
        match parse_ref(raw) {
            Some(MsgRef::Any) if sub != Sub::Latest => Err(Fail::new(
                "INVALID_PARAMS",
                &[sub.name(), raw],
                "* is only a reference for LATEST",
            )),
            Some(r) => Ok(r),
            None => Err(Fail::new(
                "INVALID_PARAMS",
                &[sub.name(), raw],
                "Invalid message reference: use *, msgid=<id> or timestamp=<ISO 8601>",
            )),
        }
    };
    let first = reference(&params[2])?;
    let second = match sub {
        Sub::Between => Some(reference(&params[3])?),
        _ => None,
    };
    let raw_limit = &params[count - 1];
    let limit = raw_limit
        .parse::<u32>()
        .map_err(|_| Fail::new("INVALID_PARAMS", &[sub.name(), raw_limit], "Invalid limit"))?;
    Ok(Request {
        sub,
        target: params[1].clone(),
        first,
        second,
        limit: limit.min(MAX_LIMIT),
    })
}

/// Parses a message reference.
pub fn parse_ref(raw: &str) -> Option<MsgRef> {
    if raw == "*" {
        return Some(MsgRef::Any);
    }
    let (kind, value) = raw.split_once('=')?;
    match kind {
        "msgid" => value.parse().ok().map(MsgRef::Id),
        "timestamp" => parse_time(value).map(MsgRef::Time),
        _ => None,
    }
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff]Z` (server-time's form) into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || m.len() != 2 || day.len() != 2 {
        return None;
    }
    let (clock, fraction) = match time.split_once('.') {
        Some((c, f)) => (c, f),
        None => (time, ""),
    };
    let mut c = clock.split(':');
    let (h, min, s) = (c.next()?, c.next()?, c.next()?);
    if c.next().is_some() || [h, min, s].iter().any(|p| p.len() != 2) {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse().ok())
            .flatten()
    };
    let (y, m, day, h, min, s) = (num(y)?, num(m)?, num(day)?, num(h)?, num(min)?, num(s)?);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || min > 59
        || s > 60
    {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = format!("{fraction:0<3}")[..3].parse::<u64>().ok()?;
    let days = days_from_civil(y, m, day);
    Some(((days * 86_400 + h * 3600 + min * 60 + s) * 1000) + ms)
}

/// Days from 1970-01-01 to a civil date from 1970 on (Howard Hinnant's algorithm, the
/// inverse of the one `line::server_time` uses).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whose messages: a room's, or a conversation's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A room, by its canonical name.
    Room(String),
    /// The private messages between the account and another user.
    Private {
        /// The asking account.
        me: String,
        /// The other user, as named.
        with: String,
    },
}

impl Source {
    /// Up to `n` of the newest messages with ids below `before` (all when `None`),
    /// oldest first.
    async fn older(
        &self,
        store: &dyn Store,
        before: Option<u64>,
        n: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        match self {
            Source::Room(room) => store.room_history(room, before, n).await,
            Source::Private { me, with } => store.private_history(me, with, before, n).await,
        }
    }

    /// The newest message's id, if any.
    async fn newest(&self, store: &dyn Store) -> Result<Option<u64>, StoreError> {
        Ok(self.older(store, None, 1).await?.first().map(|m| m.id))
    }

    /// Up to `n` of the oldest messages with ids above `after`, oldest first.
    ///
    /// A room pages forward by its sequence numbers (`room_since`, after the room
    /// sequence of the newest message at or below `after`). A conversation has no
    /// forward query: the smallest id bound `b` below which `n` messages follow
    /// `after` is found by bisection (each probe one backward page), then that page
    /// is the answer.
    async fn newer(
        &self,
        store: &dyn Store,
        after: u64,
        n: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        match self {
            Source::Room(room) => {
                let anchor = store.room_history(room, Some(after.saturating_add(1)), 1);
                let seq = anchor.await?.first().and_then(|m| m.room_seq).unwrap_or(0);
                let mut msgs = store.room_since(room, seq, n).await?;
                msgs.retain(|m| m.id > after);
                Ok(msgs)
            }
            Source::Private { .. } => {
                let Some(newest) = self.newest(store).await? else {
                    return Ok(Vec::new());
                };
                let top = newest.saturating_add(1);
                let enough = |page: &[StoredMessage]| {
                    page.len() == n as usize && page.first().is_some_and(|m| m.id > after)
                };
                let all = self.older(store, Some(top), n).await?;
                if !enough(&all) {
                    return Ok(all.into_iter().filter(|m| m.id > after).collect());
                }
                // `enough` is false at `after + 1` (nothing lies between) and true at
                // `top`; it only turns true as the bound rises.
                let (mut lo, mut hi, mut page) = (after.saturating_add(1), top, all);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    let probe = self.older(store, Some(mid), n).await?;
                    if enough(&probe) {
                        (hi, page) = (mid, probe);
                    } else {
                        lo = mid;
                    }
                }
                Ok(page)
            }
        }
    }

    /// The id of the newest message whose time satisfies `pred` (a bound such as
    /// `ts < T`), found by bisection over ids, assuming times rise with ids.
    async fn newest_where(
        &self,
        store: &dyn Store,
        pred: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>, StoreError> {
        let Some(newest) = self.older(store, None, 1).await?.pop() else {
            return Ok(None);
        };
        if pred(newest.msg.ts) {
            return Ok(Some(newest.id));
        }
        // holds(b): the newest message below b satisfies `pred`, or there is none;
        // true at 0, false at newest + 1.
        let (mut lo, mut hi) = (0u64, newest.id.saturating_add(1));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let below = self.older(store, Some(mid), 1).await?;
            if below.first().is_none_or(|m| pred(m.msg.ts)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(self.older(store, Some(lo), 1).await?.first().map(|m| m.id))
    }

    /// The exclusive upper id bound of the messages before `r`.
    async fn below(&self, store: &dyn Store, r: MsgRef) -> Result<u64, StoreError> {
        Ok(match r {
            MsgRef::Any => u64::MAX,
            MsgRef::Id(id) => id,
            MsgRef::Time(t) => self
                .newest_where(store, |ts| ts < t)
                .await?
                .map_or(0, |id| id.saturating_add(1)),
        })
    }

    /// The exclusive lower id bound of the messages after `r`.
    async fn above(&self, store: &dyn Store, r: MsgRef) -> Result<u64, StoreError> {
        Ok(match r {
            MsgRef::Any => 0,
            MsgRef::Id(id) => id,
            MsgRef::Time(t) => self.newest_where(store, |ts| ts <= t).await?.unwrap_or(0),
        })
    }
}

/// The messages `req` asks for from `src`, oldest first.
pub async fn query(
    store: &dyn Store,
    src: &Source,
    req: &Request,
) -> Result<Vec<StoredMessage>, StoreError> {
    let n = req.limit;
    Ok(match req.sub {
        Sub::Latest => {
            let above = src.above(store, req.first).await?;
            let mut msgs = src.older(store, None, n).await?;
            msgs.retain(|m| m.id > above);
            msgs
        }
        Sub::Before => {
            let below = src.below(store, req.first).await?;
            src.older(store, Some(below), n).await?
        }
        Sub::After => {
            let above = src.above(store, req.first).await?;
            src.newer(store, above, n).await?
        }
        Sub::Around => {
            // Half before the reference, the rest from it on (the reference itself
            // first): AROUND with a limit of 1 is the referenced message.
            let split = src.below(store, req.first).await?;
            let mut msgs = src.older(store, Some(split), n / 2).await?;
            let rest = n - msgs.len() as u32;
            msgs.extend(src.newer(store, split.saturating_sub(1), rest).await?);
            msgs
        }
        Sub::Between => {
            let second = req.second.unwrap_or(MsgRef::Any);
            let (a_above, b_above) = (
                src.above(store, req.first).await?,
                src.above(store, second).await?,
            );
            if a_above < b_above {
                // Forwards from the first reference: the oldest after it.
                let upper = src.below(store, second).await?;
                let mut msgs = src.newer(store, a_above, n).await?;
                msgs.retain(|m| m.id < upper);
                msgs
            } else if a_above > b_above {
                // Backwards from the first reference: the newest before it.
                let upper = src.below(store, req.first).await?;
                let mut msgs = src.older(store, Some(upper), n).await?;
                msgs.retain(|m| m.id > b_above);
                msgs
            } else {
                Vec::new()
            }
        }
    })
}

/// How the answer is written for this connection.
#[derive(Debug)]
struct View {
    /// The server's name.
    server: Arc<str>,
    /// The batch's id, when batch was negotiated.
    batch: Option<String>,
    /// The label of a labelled command (`labeled-response`), put on the batch.
    label: Option<label::Open>,
    /// The delivery slot: which tags message lines carry.
    slot: usize,
}

impl View {
    /// Writes `msgs` as the command's answer.
    fn write(self, target: &str, msgs: &[StoredMessage], out: &mut Vec<u8>) {
        let batch_tag = self.batch.as_ref().map(|b| format!("batch={b}"));
        let mut lines = Vec::new();
        for m in msgs {
            let to = match &m.msg.target {
                Target::Room(room) => chan(room),
                Target::User { to, .. } => to.clone(),
            };
            let tags = [
                batch_tag.clone(),
                message_tags(self.slot, m.msg.ts, Some(m.id), &m.msg.from),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(";");
            let tags = (!tags.is_empty()).then_some(tags);
            privmsg(&mut lines, tags.as_deref(), &m.msg.from, &to, &m.msg.text);
        }
        let Some(batch) = &self.batch else {
            // No batch: plain lines (a label needs batch, so there is none).
            out.extend_from_slice(&lines);
            return;
        };
        let label = self.label.as_ref().map(|l| format!("label={}", l.label()));
        let start = format!("+{batch}");
        line::write(
            out,
            label.as_deref(),
            &self.server,
            "BATCH",
            &[&start, "chathistory", target],
        );
        out.extend_from_slice(&lines);
        line::write(out, None, &self.server, "BATCH", &[&format!("-{batch}")]);
    }
}

/// CHATHISTORY after the welcome: errors in syntax or target are answered at once;
/// otherwise the command yields the ping it waits for and sets the query to run before
/// the next line (see the module documentation).
pub fn command(
    conn: &Arc<Conn>,
    st: &mut State,
    msg: &Message,
    out: &mut Vec<u8>,
    frames: &mut Vec<ClientFrame>,
) {
    let resolved = parse(&msg.params).and_then(|req| {
        let src = source(conn, st, &req)?;
        Ok((req, src))
    });
    let (req, src) = match resolved {
        Ok(r) => r,
        Err(fail) => return fail.write(&st.server, out),
    };
    let batch = st.caps.batch.then(|| {
        st.batches += 1;
        format!("H{}", st.batches)
    });
    let view = View {
        server: st.server.clone(),
        batch,
        // The batch carries the label itself; nothing is left for the adapter to close.
        label: st.label.take(),
        slot: conn.slot.load(std::sync::atomic::Ordering::Relaxed),
    };
    let ready = conn.history.arm();
    frames.push(ClientFrame::Ping {
        id: Some(FrameId::Str(BARRIER_ID.to_string())),
    });
    let work = conn.clone();
    let run = Box::pin(async move {
        let conn = work;
        // The session answers pings in order and promptly; should it not (it ended, or
        // the barrier was replaced), answer anyway rather than stop reading the client.
        let _ = tokio::time::timeout(BARRIER_WAIT, ready).await;
        let result = query(&*conn.shared.store, &src, &req).await;
        let mut out = Vec::new();
        match result {
            Ok(msgs) => view.write(&req.target, &msgs, &mut out),
            Err(e) => {
                tracing::error!(error = %e, "chathistory query failed");
                let fail = Fail::new(
                    "MESSAGE_ERROR",
                    &[req.sub.name(), &req.target],
                    "Messages could not be retrieved; try again later",
                );
                let mut lines = Vec::new();
                fail.write(&view.server, &mut lines);
                match view.label {
                    Some(mut open) => {
                        open.push(&lines);
                        label::close(open, &view.server, 0, &mut out);
                    }
                    None => out = lines,
                }
            }
        }
        conn.emit(out);
    });
    *conn.blocking.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
}

/// The target's messages, if the account may read them.
fn source(conn: &Conn, st: &State, req: &Request) -> Result<Source, Fail> {
    let me = st
        .account
        .clone()
        .unwrap_or_else(|| st.target().to_string());
    let invalid = |text: String| Fail::new("INVALID_TARGET", &[req.sub.name(), &req.target], text);
    if req.target.starts_with('#') {
        let room = parse_room(&req.target)
            .map_err(|_| invalid(format!("{} is not a natter room", req.target)))?;
        // As natter's `history` frame: a room's history is readable from inside it.
        if !conn.shared.bus.rooms_of(&me).contains(&room) {
            return Err(invalid(format!("Join {} to read its history", req.target)));
        }
        return Ok(Source::Room(room));
    }
    validate_username(&req.target)
        .map_err(|_| invalid(format!("{} is not a natter user", req.target)))?;
    Ok(Source::Private {
        me,
        with: req.target.clone(),
    })
}

#[cfg(test)]
mod tests;
