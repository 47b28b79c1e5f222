//! The join workload: N logged-in users enter one room at once.
//!
//! Users log in first (bounded parallelism, timed separately as setup). Then every user
//! asks to join [`CROWD`] as fast as the generator can send the requests, and one member
//! publishes a probe message into the room once every join is acknowledged. The main
//! figure is the time from the first join request until every user has its
//! acknowledgement (natter `joined`, IRC 366 end of NAMES, Redis subscribe reply) and
//! every other member has received and verified the probe. Meanwhile every user drains
//! whatever else arrives (presence notices, others' JOIN lines, NAMES replies); the bytes
//! received during the measurement are reported too, since they are what makes a crowded
//! join expensive.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::{Event, Kind, Reader, Target, Writer};
use crate::payload::{self, Stamp};
use crate::pin::ServerPin;
use crate::report::Record;
use crate::workload::{bar, idle_name, new_hist};

/// Room (natter), IRC channel (without `#`) or Redis channel the users join.
pub const CROWD: &str = "crowd";
/// A writer shared by a user's reading task (pongs) and the driver (join, probe).
type SharedWriter = Arc<tokio::sync::Mutex<Writer>>;

/// Quiet time after the logins, so that their presence traffic does not count.
const SETTLE: Duration = Duration::from_millis(1000);

/// State shared by the driver and the users' reading tasks.
struct Shared {
    n: usize,
    /// The first join request's send time; `None` until the measurement starts.
    start: OnceLock<Instant>,
    /// Bytes are counted while this is set.
    measuring: AtomicBool,
    acked: AtomicUsize,
    probed: AtomicUsize,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// The probe's exact text, set before it is sent.
    probe: OnceLock<Vec<u8>>,
    prober: String,
    /// Time from the start until each user's acknowledgement (µs).
    acks: Mutex<Histogram<u64>>,
    notify: Notify,
}

impl Shared {
    fn error(&self, what: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.first_error.lock()
            && e.is_none()
        {
            *e = Some(what());
        }
    }

    /// Waits until `counter` reaches `target` or `until` passes; true when reached.
    async fn wait_for(&self, counter: &AtomicUsize, target: usize, until: Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if counter.load(Ordering::Acquire) >= target {
                return true;
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                return counter.load(Ordering::Acquire) >= target;
            }
        }
    }
}

/// One user's reading side: drains everything, answers pings, and reports its join
/// acknowledgement and the probe.
async fn user(shared: Arc<Shared>, i: usize, mut rd: Reader, wr: SharedWriter) {
    let mut acked = false;
    let mut probed = false;
    let mut pings = Vec::new();
    loop {
        let now = Instant::now();
        loop {
            match rd.try_next() {
                Ok(Some(Event::Joined(room))) => {
                    if !acked && room.eq_ignore_ascii_case(CROWD.as_bytes()) {
                        acked = true;
                        if let (Some(start), Ok(mut h)) = (shared.start.get(), shared.acks.lock()) {
                            h.saturating_record(
                                (now.saturating_duration_since(*start).as_micros() as u64).max(1),
                            );
                        }
                        if shared.acked.fetch_add(1, Ordering::AcqRel) + 1 >= shared.n {
                            shared.notify.notify_waiters();
                        }
                    }
                }
                Ok(Some(Event::Msg { from, text })) => {
                    let expected = shared.probe.get().map(Vec::as_slice);
                    let from_ok = from.is_none_or(|f| f == shared.prober.as_bytes());
                    if expected == Some(text) && from_ok && !probed {
                        probed = true;
                        // The prober's own copy (natter and Redis echo it) is not counted.
                        if i != 0 && shared.probed.fetch_add(1, Ordering::AcqRel) + 2 >= shared.n {
                            shared.notify.notify_waiters();
                        }
                    } else {
                        shared.error(|| {
                            format!(
                                "user {i}: unexpected message {:?} {:?}",
                                from.map(String::from_utf8_lossy),
                                String::from_utf8_lossy(text)
                            )
                        });
                    }
                }
                Ok(Some(Event::Ping(arg))) => pings.push(arg),
                Ok(Some(Event::Error(e))) => {
                    shared.error(|| format!("user {i}: server error: {e}"))
                }
                Ok(Some(Event::Closed(why))) => {
                    shared.error(|| format!("user {i} disconnected: {why}"));
                    return;
                }
                Ok(Some(Event::Other | Event::Ack)) => {}
                Ok(None) => break,
                Err(e) => {
                    shared.error(|| format!("user {i}: {e:#}"));
                    return;
                }
            }
        }
        for arg in pings.drain(..) {
            let _ = wr.lock().await.pong(&arg).await;
        }
        let before = rd.bytes_received();
        if let Err(e) = rd.fill().await {
            if shared.measuring.load(Ordering::Relaxed) {
                shared.error(|| format!("user {i}: {e:#}"));
            }
            return;
        }
        if shared.measuring.load(Ordering::Relaxed) {
            shared
                .bytes
                .fetch_add(rd.bytes_received() - before, Ordering::Relaxed);
        }
    }
}

/// Runs the join workload with `n` users (at most `parallel` logins at once) and fills
/// `rec`; `timeout` bounds the measured part. A timeout is a failed result, not an error.
pub async fn join(
    target: &Target,
    n: usize,
    parallel: usize,
    timeout: Duration,
    pin: &ServerPin,
    rec: &mut Record,
) -> Result<()> {
    let n = n.max(1);
    let shared = Arc::new(Shared {
        n,
        start: OnceLock::new(),
        measuring: AtomicBool::new(false),
        acked: AtomicUsize::new(0),
        probed: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        probe: OnceLock::new(),
        prober: idle_name(0),
        acks: Mutex::new(new_hist()),
        notify: Notify::new(),
    });
    rec.expected = (2 * n - 1) as u64;

    // Log everyone in; each user starts draining as soon as it is in, so that the
    // login traffic of the others (natter's lobby presence) does not pile up.
    let pb = bar(n as u64, "logging in");
    let login_start = Instant::now();
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (target, sem, tx, shared) = (target.clone(), sem.clone(), tx.clone(), shared.clone());
        tasks.spawn(async move {
            let permit = sem.acquire_owned().await;
            // Redis: the prober needs a second connection to publish on.
            let sender = i == 0 && target.kind == Kind::Redis;
            let r = target.login(&idle_name(i), None, sender, false).await;
            drop(permit);
            match r {
                Ok((rd, wr)) => {
                    let wr = Arc::new(tokio::sync::Mutex::new(wr));
                    let _ = tx.send((i, Ok(wr.clone())));
                    user(shared, i, rd, wr).await;
                }
                Err(e) => {
                    let _ = tx.send((i, Err(e)));
                }
            }
        });
    }
    drop(tx);
    let mut writers: Vec<Option<SharedWriter>> = vec![None; n];
    let mut login_error = None;
    // Every login task reports exactly once (success or failure); the successful ones
    // keep their sender alive, so count instead of waiting for the channel to close.
    for _ in 0..n {
        let Some((i, r)) = rx.recv().await else {
            break;
        };
        match r {
            Ok(w) => writers[i] = Some(w),
            Err(e) => {
                login_error.get_or_insert(e);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    rec.setup_secs = login_start.elapsed().as_secs_f64();
    let writers: Vec<_> = writers.into_iter().flatten().collect();
    if let Some(e) = login_error {
        rec.errors = (n - writers.len()) as u64;
        rec.first_error = Some(format!("only {}/{n} users logged in: {e:#}", writers.len()));
        close(writers, tasks).await;
        return Ok(());
    }
    pin.measure()?;
    tokio::time::sleep(SETTLE).await;

    // Everyone joins, as fast as the requests can be written.
    let start = Instant::now();
    let deadline = start + timeout;
    let _ = shared.start.set(start);
    shared.measuring.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for w in &writers {
        match tokio::time::timeout_at(deadline.into(), async { w.lock().await.join(CROWD).await })
            .await
        {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => shared.error(|| format!("sending a join: {e:#}")),
            Err(_) => break,
        }
    }
    let all_acked = shared.wait_for(&shared.acked, n, deadline).await;
    // Then one member speaks and everyone else must hear it.
    let mut all_probed = false;
    if all_acked {
        let mut text = String::with_capacity(payload::LEN);
        let stamp = Stamp {
            sender: 0,
            seq: 1,
            sent_ns: start.elapsed().as_nanos() as u64,
        };
        payload::encode(stamp, &mut text);
        let _ = shared.probe.set(text.clone().into_bytes());
        let probe = async { writers[0].lock().await.public(CROWD, &text).await };
        match tokio::time::timeout_at(deadline.into(), probe).await {
            Ok(Ok(())) => {
                rec.messages = 1;
                all_probed = shared.wait_for(&shared.probed, n - 1, deadline).await;
            }
            Ok(Err(e)) => shared.error(|| format!("sending the probe: {e:#}")),
            Err(_) => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    shared.measuring.store(false, Ordering::Relaxed);

    let acked = shared.acked.load(Ordering::Acquire);
    let probed = shared.probed.load(Ordering::Acquire);
    rec.secs = secs;
    rec.per_sec = acked as f64 / secs.max(1e-9);
    rec.joined = Some(acked as u64);
    rec.verified = (acked + probed) as u64;
    rec.bytes_received = Some(shared.bytes.load(Ordering::Relaxed));
    let errors = shared.errors.load(Ordering::Relaxed);
    rec.errors = errors + rec.expected.saturating_sub(rec.verified);
    if let Ok(h) = shared.acks.lock()
        && !h.is_empty()
    {
        rec.p50_us = Some(h.value_at_quantile(0.5));
        rec.p99_us = Some(h.value_at_quantile(0.99));
        rec.p999_us = Some(h.value_at_quantile(0.999));
        rec.max_us = Some(h.max());
    }
    let first_error = shared.first_error.lock().ok().and_then(|mut e| e.take());
    rec.first_error = if all_acked && all_probed {
        first_error
    } else {
        Some(format!(
            "timed out after {:.0} s: {sent}/{n} joins sent, {acked}/{n} acknowledged, \
             {probed}/{} received the probe{}",
            timeout.as_secs_f64(),
            n - 1,
            first_error.map_or(String::new(), |e| format!("; first error: {e}"))
        ))
    };
    close(writers, tasks).await;
    Ok(())
}

/// Says goodbye to everyone (best effort, bounded) and stops the reading tasks.
async fn close(writers: Vec<SharedWriter>, mut tasks: JoinSet<()>) {
    let quits = async {
        for w in &writers {
            w.lock().await.quit().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), quits).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
