//! Commit throughput: many senders, each with messages in flight, counting natter's
//! `ok` acknowledgements, which the server sends only once a message is stored (durable
//! before visible). Compares the stores: SQLite (one node alone) and PostgreSQL (a
//! cluster node).

use std::collections::VecDeque;

use super::*;

/// Name of commit-throughput sender `i`.
pub fn commit_name(i: usize) -> String {
    format!("cm{i}")
}

/// Room of commit sender `i`: each sender has its own, so that a message is delivered
/// to its sender only and the figure is the store's, not the fan-out's.
pub fn commit_room(i: usize) -> String {
    format!("commit-{i}")
}

/// Shared state of one sender: send times of the messages not yet acknowledged, oldest
/// first (a session's commits are answered in the order sent).
struct Pending {
    sent: Mutex<VecDeque<u64>>,
    window: Semaphore,
}

/// `senders` natter users send to their own rooms for `secs` seconds with at most
/// `window` unacknowledged messages each; fills `rec` with the acknowledged messages/s
/// and the latency from send to `ok`.
pub async fn commit(
    target: &Target,
    senders: usize,
    secs: f64,
    window: usize,
    parallel: usize,
    pin: &ServerPin,
    rec: &mut Record,
) -> Result<()> {
    if senders == 0 || window == 0 {
        bail!("the commit workload needs senders and a window");
    }
    // Logged in one by one per room: `connect_many` puts everyone in one channel.
    let pb = bar(senders as u64, "commit senders logging in");
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut logins = JoinSet::new();
    let start_setup = Instant::now();
    for i in 0..senders {
        let (target, sem) = (target.clone(), sem.clone());
        logins.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = target
                .login(&commit_name(i), Some(&commit_room(i)), true, false)
                .await;
            (i, r)
        });
    }
    let mut sessions: Vec<Option<(Reader, Writer)>> = (0..senders).map(|_| None).collect();
    while let Some(joined) = logins.join_next().await {
        let (i, r) = joined?;
        sessions[i] = Some(r?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    rec.setup_secs = start_setup.elapsed().as_secs_f64();
    pin.measure()?;

    let origin = Instant::now();
    let hists: Arc<Vec<Mutex<Histogram<u64>>>> =
        Arc::new((0..SHARDS).map(|_| Mutex::new(new_hist())).collect());
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    let mut writers = Vec::new();
    let mut pendings = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let Some((mut rd, wr)) = session else {
            bail!("commit sender {i} did not log in");
        };
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        let pending = Arc::new(Pending {
            sent: Mutex::new(VecDeque::with_capacity(window)),
            window: Semaphore::new(window),
        });
        writers.push(wr.clone());
        pendings.push(pending.clone());
        let (hists, acked, errors, first_error, stop) = (
            hists.clone(),
            acked.clone(),
            errors.clone(),
            first_error.clone(),
            stop.clone(),
        );
        readers.spawn(async move {
            let fail = |what: String| {
                errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut e) = first_error.lock()
                    && e.is_none()
                {
                    *e = Some(what);
                }
            };
            // The oldest message in flight is answered, by `ok` or by an error.
            let answered = || {
                let sent = pending.sent.lock().ok().and_then(|mut q| q.pop_front());
                pending.window.add_permits(1);
                sent
            };
            loop {
                match rd.next().await {
                    Ok(Event::Ack) => {
                        let now = origin.elapsed().as_nanos() as u64;
                        if let Some(sent) = answered() {
                            acked.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut h) = hists[i % SHARDS].lock() {
                                h.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                            }
                        } else {
                            fail(format!("commit sender {i}: `ok` without a message"));
                        }
                    }
                    Ok(Event::Error(e)) => {
                        answered();
                        fail(format!("commit sender {i}: server error: {e}"));
                    }
                    Ok(Event::Ping(arg)) => {
                        let _ = wr.lock().await.pong(&arg).await;
                    }
                    Ok(Event::Closed(why)) => {
                        fail(format!("commit sender {i} disconnected: {why}"));
                        break;
                    }
                    // The echo of its own message, presence: nothing to count.
                    Ok(_) => {}
                    Err(e) => {
                        if !stop.load(Ordering::Relaxed) {
                            fail(format!("commit sender {i}: {e:#}"));
                        }
                        break;
                    }
                }
            }
        });
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let (pb, ticker) = timed_bar(secs, "commit throughput");
    let mut senders_set = JoinSet::new();
    for (i, (wr, pending)) in writers.iter().zip(&pendings).enumerate() {
        let (wr, pending) = (wr.clone(), pending.clone());
        senders_set.spawn(async move {
            let room = commit_room(i);
            let mut text = String::with_capacity(payload::LEN);
            let mut sent = 0u64;
            'send: while Instant::now() < deadline {
                let Ok(Ok(permit)) =
                    tokio::time::timeout_at(deadline.into(), pending.window.acquire()).await
                else {
                    break;
                };
                permit.forget();
                // Everything the window allows goes out in one write, as a busy
                // client's would.
                let mut w = wr.lock().await;
                let mut batch = 1;
                while let Ok(p) = pending.window.try_acquire() {
                    p.forget();
                    batch += 1;
                }
                for _ in 0..batch {
                    sent += 1;
                    let now = origin.elapsed().as_nanos() as u64;
                    payload::encode(
                        Stamp {
                            sender: i as u32,
                            seq: sent,
                            sent_ns: now,
                        },
                        &mut text,
                    );
                    if let Ok(mut q) = pending.sent.lock() {
                        q.push_back(now);
                    }
                    if w.push_public_acked(&room, &text, sent).is_err() {
                        break 'send;
                    }
                }
                if w.send().await.is_err() {
                    break;
                }
            }
            sent
        });
    }
    let mut total = 0;
    while let Some(r) = senders_set.join_next().await {
        total += r?;
    }
    let until = Instant::now() + GRACE;
    while acked.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed) < total
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed().as_secs_f64();
    ticker.abort();
    pb.finish_and_clear();
    let mut hist = new_hist();
    for h in hists.iter() {
        if let Ok(h) = h.lock() {
            let _ = hist.add(&*h);
        }
    }
    let r = PhaseResult {
        messages: total,
        expected: total,
        verified: acked.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        first_error: first_error.lock().ok().and_then(|mut e| e.take()),
        secs: took,
        hist,
        split: None,
    };
    fill(rec, &r);
    stop.store(true, Ordering::Relaxed);
    for w in &writers {
        w.lock().await.quit().await;
    }
    readers.abort_all();
    while readers.join_next().await.is_some() {}
    Ok(())
}
