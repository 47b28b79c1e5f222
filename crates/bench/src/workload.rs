//! The workloads: fan-out, idle connections, private messages, the login storm and
//! commit throughput.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::client::{Event, ROOM, Reader, Target, Writer, drain_session};
use crate::payload::{self, Stamp};
use crate::pin::ServerPin;
use crate::report::Record;

mod commit;
mod fanout;
mod idle;
mod private;
mod storm;

pub use commit::{commit, commit_name, commit_room};
pub use fanout::{FanOut, PhaseResult, fill};
pub use idle::{idle, rss};
pub use private::private;
pub use storm::storm;

const RING: usize = 4096;
const SHARDS: usize = 16;
/// Message indices a sender claims at once in a flat phase.
const FLAT_BLOCK: u64 = 64;
/// Time allowed after the last send for every delivery to arrive.
const GRACE: Duration = Duration::from_secs(15);

/// Name of fan-out receiver `i`.
pub fn receiver_name(i: usize) -> String {
    format!("fr{i}")
}
/// Name of fan-out sender `j`.
pub fn sender_name(j: usize) -> String {
    format!("fs{j}")
}
/// Name of private-message user `i`.
pub fn private_name(i: usize) -> String {
    format!("pu{i}")
}
/// Name of login-storm user `i`.
pub fn storm_name(i: usize) -> String {
    format!("ls{i}")
}
/// Name of idle-connection user `i`.
pub fn idle_name(i: usize) -> String {
    format!("ic{i}")
}

/// An empty latency histogram (1 µs .. 10 min, 3 significant digits).
pub(crate) fn new_hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// A progress bar on stderr.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// A progress bar for a phase of `secs` seconds, advanced every 100 ms by a task that
/// the caller aborts when the phase ends.
pub(crate) fn timed_bar(secs: f64, what: &str) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let pb = bar((secs * 10.0) as u64, what);
    let ticker = {
        let pb = pb.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                pb.inc(1);
            }
        })
    };
    (pb, ticker)
}

/// Connects `names` with at most `parallel` logins at once; returns sessions in order
/// and the time it took.
pub async fn connect_many(
    target: &Target,
    names: Vec<String>,
    channel: Option<String>,
    sender: bool,
    register: bool,
    parallel: usize,
    what: &str,
) -> Result<(Vec<(Reader, Writer)>, Duration)> {
    let pb = bar(names.len() as u64, what);
    let start = Instant::now();
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    for (i, name) in names.into_iter().enumerate() {
        let target = target.clone();
        let sem = sem.clone();
        let channel = channel.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = target
                .login(&name, channel.as_deref(), sender, register)
                .await;
            (i, r)
        });
    }
    let mut out: Vec<Option<(Reader, Writer)>> = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined?;
        match r {
            Ok(s) => {
                if out.len() <= i {
                    out.resize_with(i + 1, || None);
                }
                out[i] = Some(s);
            }
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok((out.into_iter().flatten().collect(), start.elapsed()))
}

/// Registers natter accounts (no-op for the other servers); returns the time taken.
pub async fn register(target: &Target, names: Vec<String>, parallel: usize) -> Result<Duration> {
    let mut took = Duration::ZERO;
    // In batches, each closed before the next: the full run registers more accounts
    // than the file-descriptor limit allows connections.
    for batch in names.chunks(REGISTER_BATCH) {
        let (sessions, t) = connect_many(
            target,
            batch.to_vec(),
            None,
            false,
            true,
            parallel,
            "registering",
        )
        .await?;
        took += t;
        for (_r, mut w) in sessions {
            w.quit().await;
        }
    }
    Ok(took)
}

/// Accounts registered per batch of connections (see [`register`]).
const REGISTER_BATCH: usize = 1000;

/// One measured phase of the fan-out workload.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// Senders send as fast as the window allows: at most `messages`, at most `secs`.
    Flat {
        /// Message budget.
        messages: u64,
        /// Time budget in seconds.
        secs: f64,
    },
    /// A fixed total rate (messages/s across all senders) for `secs` seconds.
    Rate {
        /// Messages per second, all senders together.
        rate: f64,
        /// Duration in seconds.
        secs: f64,
    },
}

impl Phase {
    /// Label for reports.
    pub fn label(&self) -> String {
        match self {
            Phase::Flat { .. } => "flat".into(),
            Phase::Rate { rate, .. } => format!("rate {rate:.0}/s"),
        }
    }
}

struct Fan {
    n: AtomicUsize,
    claimed: AtomicU64,
    ring: Vec<AtomicU32>,
    notify: Notify,
    /// Latency shards: the first [`SHARDS`] for receivers on the senders' node, the
    /// next [`SHARDS`] for receivers on other nodes (cluster mode).
    hists: Vec<Mutex<Histogram<u64>>>,
    /// Nodes the receivers are spread over, round-robin (receiver `i` is on node
    /// `i % nodes`; the senders are on node 0).
    nodes: AtomicUsize,
    verified: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    start: Instant,
    stop: AtomicBool,
    senders: usize,
}

impl Fan {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.first_error.lock()
            && e.is_none()
        {
            *e = Some(what);
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Publishes what a receiver verified since its last flush and that it has now
    /// received `to` messages in all (it had `from`). The counts and latencies go out
    /// before the flow-control ring moves, so a phase that sees every delivery arrived
    /// also sees them counted.
    fn flush(&self, idx: usize, tally: &mut Tally, from: u64, to: u64) {
        if tally.verified > 0 {
            self.verified.fetch_add(tally.verified, Ordering::Relaxed);
            tally.verified = 0;
        }
        if !tally.latencies.is_empty() {
            if let Ok(mut h) = self.hists[self.shard(idx)].lock() {
                for &(l, n) in &tally.latencies {
                    h.saturating_record_n(l.max(1), n);
                }
            }
            tally.latencies.clear();
        }
        if tally.errors > 0 {
            self.errors.fetch_add(tally.errors, Ordering::Relaxed);
            tally.errors = 0;
            if let Some(e) = tally.first_error.take()
                && let Ok(mut first) = self.first_error.lock()
                && first.is_none()
            {
                *first = Some(e);
            }
        }
        let n = self.n.load(Ordering::Acquire);
        let mut complete = false;
        for c in from + 1..=to {
            let v = self.ring[c as usize % RING].fetch_add(1, Ordering::AcqRel) + 1;
            complete |= v as usize >= n;
        }
        if complete {
            self.notify.notify_waiters();
        }
    }

    /// Whether receiver `idx` is on another node than the senders.
    fn remote(&self, idx: usize) -> bool {
        !idx.is_multiple_of(self.nodes.load(Ordering::Relaxed).max(1))
    }

    /// The latency shard of receiver `idx`.
    fn shard(&self, idx: usize) -> usize {
        idx % SHARDS + if self.remote(idx) { SHARDS } else { 0 }
    }

    /// Takes (and resets) the latencies of the receivers on the senders' node and of
    /// those on other nodes.
    fn take_hists(&self) -> [Histogram<u64>; 2] {
        let mut split = [new_hist(), new_hist()];
        for (i, h) in self.hists.iter().enumerate() {
            if let Ok(mut h) = h.lock() {
                let _ = split[i / SHARDS].add(&*h);
                h.reset();
            }
        }
        split
    }

    /// Takes (and resets) every receiver's latencies.
    fn take_hist(&self) -> Histogram<u64> {
        let [mut all, remote] = self.take_hists();
        let _ = all.add(&remote);
        all
    }

    /// Whether every receiver has received at least `count` messages in all.
    fn reached(&self, count: u64) -> bool {
        let n = self.n.load(Ordering::Acquire) as u32;
        self.ring[count as usize % RING].load(Ordering::Acquire) >= n
    }

    /// Waits until every receiver has received at least `count` messages in all.
    async fn wait_reached(&self, count: u64, until: Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let n = self.n.load(Ordering::Acquire) as u32;
            if self.ring[count as usize % RING].load(Ordering::Acquire) >= n {
                return true;
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                return false;
            }
        }
    }
}

/// What one receiver verified since its last flush; kept local so that the per-delivery
/// work touches no shared state except the flow-control ring.
struct Tally {
    /// Latencies in µs as runs of (value, count): deliveries read together often took
    /// the same time, and a run is one histogram update instead of one per delivery.
    latencies: Vec<(u64, u64)>,
    verified: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies: Vec::with_capacity(1024),
            verified: 0,
            errors: 0,
            first_error: None,
        }
    }

    /// Counts a verified delivery that took `us` µs.
    #[inline]
    fn record(&mut self, us: u64) {
        self.verified += 1;
        match self.latencies.last_mut() {
            Some((last, n)) if *last == us => *n += 1,
            _ => self.latencies.push((us, 1)),
        }
    }

    fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// Checks one delivery: content byte for byte, the sender the server names, and that
/// the sender's sequence numbers strictly increase. Returns the stamp when it is good.
#[inline]
fn check(from: Option<&[u8]>, text: &[u8], names: &[String], last: &mut [u64]) -> Option<Stamp> {
    let st = payload::decode(text)?;
    let s = st.sender as usize;
    let prev = last.get_mut(s)?;
    // `Iterator::eq` rather than `!=` on slices: names are a few bytes, too short for
    // the call to the C library's `bcmp` that comparing slices makes.
    if st.seq <= *prev || from.is_some_and(|f| !f.iter().eq(names[s].as_bytes())) {
        return None;
    }
    *prev = st.seq;
    Some(st)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn receive(fan: Arc<Fan>, idx: usize, mut rd: Reader, mut wr: Writer, mut count: u64) {
    let mut last = vec![0u64; fan.senders];
    let names: Vec<String> = (0..fan.senders).map(sender_name).collect();
    let mut tally = Tally::new();
    let mut pings = Vec::new();
    loop {
        // One receive time per read: every frame of this read arrived at that moment.
        let now = fan.now_ns();
        let counted = count;
        let mut closed = false;
        loop {
            match rd.try_next() {
                Ok(Some(Event::Msg { from, text })) => {
                    match check(from, text, &names, &mut last) {
                        Some(st) => tally.record(now.saturating_sub(st.sent_ns) / 1000),
                        None => tally.error(|| {
                            format!(
                                "receiver {idx}: bad delivery {:?} {:?}",
                                from.map(show),
                                show(text)
                            )
                        }),
                    }
                    count += 1;
                }
                Ok(Some(Event::Ping(arg))) => pings.push(arg),
                Ok(Some(Event::Error(e))) => {
                    tally.error(|| format!("receiver {idx}: server error: {e}"));
                }
                Ok(Some(Event::Closed(why))) => {
                    tally.error(|| format!("receiver {idx} disconnected: {why}"));
                    closed = true;
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    tally.error(|| format!("receiver {idx}: {e:#}"));
                    closed = true;
                    break;
                }
            }
        }
        fan.flush(idx, &mut tally, counted, count);
        for arg in pings.drain(..) {
            let _ = wr.pong(&arg).await;
        }
        if closed {
            break;
        }
        if let Err(e) = rd.fill().await {
            if !fan.stop.load(Ordering::Relaxed) {
                tally.error(|| format!("receiver {idx}: {e:#}"));
                fan.flush(idx, &mut tally, count, count);
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_recorded_as_runs_without_losing_any() {
        let mut tally = Tally::new();
        for us in [5, 5, 5, 7, 5, 0, 0] {
            tally.record(us);
        }
        assert_eq!(tally.verified, 7);
        assert_eq!(tally.latencies, vec![(5, 3), (7, 1), (5, 1), (0, 2)]);
        let fan = Fan {
            n: AtomicUsize::new(1),
            claimed: AtomicU64::new(0),
            ring: (0..RING).map(|_| AtomicU32::new(0)).collect(),
            notify: Notify::new(),
            hists: (0..2 * SHARDS).map(|_| Mutex::new(new_hist())).collect(),
            nodes: AtomicUsize::new(1),
            verified: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            senders: 1,
        };
        fan.flush(0, &mut tally, 0, 7);
        assert!(tally.latencies.is_empty());
        assert_eq!(fan.verified.load(Ordering::Relaxed), 7);
        assert!(fan.reached(7) && !fan.reached(8));
        let h = fan.take_hist();
        // Every delivery is in the histogram, a latency under 1 µs as 1 µs.
        assert_eq!(h.len(), 7);
        assert_eq!(h.count_at(5), 4);
        assert_eq!(h.count_at(7), 1);
        assert_eq!(h.count_at(1), 2);
    }

    #[test]
    fn latencies_are_split_by_the_receivers_node() {
        let fan = Fan {
            n: AtomicUsize::new(4),
            claimed: AtomicU64::new(0),
            ring: (0..RING).map(|_| AtomicU32::new(0)).collect(),
            notify: Notify::new(),
            hists: (0..2 * SHARDS).map(|_| Mutex::new(new_hist())).collect(),
            nodes: AtomicUsize::new(2),
            verified: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            senders: 1,
        };
        // Receivers 0 and 2 are on the senders' node, 1 and 3 (and 17) on the other.
        for (idx, us) in [(0, 10), (1, 500), (2, 20), (3, 700), (17, 900)] {
            let mut tally = Tally::new();
            tally.record(us);
            fan.flush(idx, &mut tally, 0, 0);
        }
        let [local, remote] = fan.take_hists();
        assert_eq!((local.len(), remote.len()), (2, 3));
        assert_eq!(local.max(), 20);
        assert_eq!(remote.min(), 500);
        // Taken means reset.
        assert!(fan.take_hist().is_empty());
    }

    #[test]
    fn deliveries_are_checked_for_content_sender_and_order() {
        let names: Vec<String> = (0..2).map(sender_name).collect();
        let mut last = vec![0u64; 2];
        let mut text = String::new();
        let stamp = |sender, seq| Stamp {
            sender,
            seq,
            sent_ns: 42,
        };
        payload::encode(stamp(1, 1), &mut text);
        assert_eq!(
            check(Some(b"fs1"), text.as_bytes(), &names, &mut last),
            Some(stamp(1, 1))
        );
        // The same message again, or the next one from the wrong sender, is refused.
        assert_eq!(
            check(Some(b"fs1"), text.as_bytes(), &names, &mut last),
            None
        );
        payload::encode(stamp(1, 2), &mut text);
        for wrong in [&b"fs0"[..], b"fs", b"fs10", b""] {
            assert_eq!(check(Some(wrong), text.as_bytes(), &names, &mut last), None);
        }
        // Without a sender name (Redis) only content and order count.
        assert_eq!(
            check(None, text.as_bytes(), &names, &mut last),
            Some(stamp(1, 2))
        );
        payload::encode(stamp(2, 1), &mut text);
        assert_eq!(check(None, text.as_bytes(), &names, &mut last), None);
    }
}
