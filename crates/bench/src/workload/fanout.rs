//! The fan-out workload: a room with receivers (over one node or spread over several)
//! and senders, run through phases.

use super::*;

/// Result of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Messages sent.
    pub messages: u64,
    /// Deliveries expected (messages x receivers).
    pub expected: u64,
    /// Deliveries received and verified.
    pub verified: u64,
    /// Bad deliveries (wrong content, order or sender) and disconnections.
    pub errors: u64,
    /// First error seen, if any.
    pub first_error: Option<String>,
    /// From the first send to the last delivery (or the timeout).
    pub secs: f64,
    /// Latency histogram (µs).
    pub hist: Histogram<u64>,
    /// With receivers spread over several nodes: the latencies of the receivers on the
    /// senders' node and of those on the others (the difference is the cross-node hop).
    pub split: Option<[Histogram<u64>; 2]>,
}

/// A room with receivers and senders, run through phases.
pub struct FanOut {
    /// Where receivers log in, round-robin: `[target]` unless [`FanOut::spread`].
    nodes: Vec<Target>,
    fan: Arc<Fan>,
    room: String,
    window: u64,
    base: u64,
    writers: Vec<Arc<tokio::sync::Mutex<Writer>>>,
    seqs: Vec<u64>,
    tasks: JoinSet<()>,
    receivers: usize,
    parallel: usize,
    /// Time spent logging in (not measured).
    pub setup: Duration,
}

impl FanOut {
    /// Connects the senders.
    pub async fn new(
        target: &Target,
        senders: usize,
        window: u64,
        parallel: usize,
    ) -> Result<FanOut> {
        let fan = Arc::new(Fan {
            n: AtomicUsize::new(0),
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
            senders,
        });
        let room = ROOM.to_string();
        let (sessions, setup) = connect_many(
            target,
            (0..senders).map(sender_name).collect(),
            Some(room.clone()),
            true,
            false,
            parallel,
            "senders logging in",
        )
        .await?;
        let mut tasks = JoinSet::new();
        let mut writers = Vec::new();
        for (rd, wr) in sessions {
            let wr = Arc::new(tokio::sync::Mutex::new(wr));
            tasks.spawn(drain_session(rd, wr.clone()));
            writers.push(wr);
        }
        Ok(FanOut {
            nodes: vec![target.clone()],
            fan,
            room,
            window,
            base: 0,
            seqs: vec![0; senders],
            writers,
            tasks,
            receivers: 0,
            parallel,
            setup,
        })
    }

    /// Number of receivers.
    pub fn receivers(&self) -> usize {
        self.receivers
    }

    /// Spreads the receivers round-robin over `nodes` (natter nodes of one cluster; the
    /// senders stay where [`FanOut::new`] connected them, which should be `nodes[0]`):
    /// receiver `i` logs in to `nodes[i % nodes.len()]`. Only before the first
    /// receiver.
    pub fn spread(&mut self, nodes: Vec<Target>) -> Result<()> {
        if self.receivers > 0 {
            bail!("receivers are spread over nodes before the first logs in");
        }
        if nodes.is_empty() {
            bail!("spreading receivers needs at least one node");
        }
        self.fan.nodes.store(nodes.len(), Ordering::Relaxed);
        self.nodes = nodes;
        Ok(())
    }

    /// Adds receivers until there are `n`.
    pub async fn grow(&mut self, n: usize) -> Result<()> {
        if n <= self.receivers {
            return Ok(());
        }
        let count = self.nodes.len();
        let mut slots: Vec<Option<(Reader, Writer)>> = (self.receivers..n).map(|_| None).collect();
        for (k, node) in self.nodes.iter().enumerate() {
            let indices: Vec<usize> = (self.receivers..n).filter(|i| i % count == k).collect();
            if indices.is_empty() {
                continue;
            }
            let what = if count > 1 {
                format!("receivers logging in to node {}", k + 1)
            } else {
                "receivers logging in".to_string()
            };
            let (sessions, took) = connect_many(
                node,
                indices.iter().map(|&i| receiver_name(i)).collect(),
                Some(self.room.clone()),
                false,
                false,
                self.parallel,
                &what,
            )
            .await?;
            self.setup += took;
            for (i, s) in indices.into_iter().zip(sessions) {
                slots[i - self.receivers] = Some(s);
            }
        }
        self.fan.n.store(n, Ordering::Release);
        for (i, slot) in slots.into_iter().enumerate() {
            let Some((rd, wr)) = slot else {
                bail!("receiver {} did not log in", self.receivers + i);
            };
            self.tasks.spawn(receive(
                self.fan.clone(),
                self.receivers + i,
                rd,
                wr,
                self.base,
            ));
        }
        self.receivers = n;
        // Let presence notices and join bursts settle before measuring (and, in a
        // cluster, the memberships reach the other nodes).
        let settle = if count > 1 { 1500 } else { 500 };
        tokio::time::sleep(Duration::from_millis(settle)).await;
        Ok(())
    }

    /// Stops the current rate phase early (login storm).
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    /// Runs one phase; `stop` ends a rate phase early when set.
    pub async fn phase(
        &mut self,
        phase: Phase,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<PhaseResult> {
        let fan = self.fan.clone();
        let n = self.receivers as u64;
        let senders = self.writers.len();
        if n == 0 || senders == 0 {
            bail!("a phase needs receivers and senders");
        }
        let _ = fan.take_hist();
        let verified0 = fan.verified.load(Ordering::Relaxed);
        let errors0 = fan.errors.load(Ordering::Relaxed);
        fan.claimed.store(self.base, Ordering::Release);
        let (budget, secs, period) = match phase {
            Phase::Flat { messages, secs } => (messages, secs, None),
            Phase::Rate { rate, secs } => (
                (rate * secs).ceil() as u64,
                secs,
                Some(Duration::from_secs_f64(senders as f64 / rate.max(0.001))),
            ),
        };
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let end_index = self.base + budget;
        let pb = bar(budget, &phase.label());
        let mut set = JoinSet::new();
        for (j, wr) in self.writers.iter().enumerate() {
            let fan = fan.clone();
            let wr = wr.clone();
            let room = self.room.clone();
            let base = self.base;
            let window = self.window;
            let mut seq = self.seqs[j];
            let stop = stop.clone();
            let pb = pb.clone();
            set.spawn(async move {
                let mut text = String::with_capacity(payload::LEN);
                let mut sent = 0u64;
                let offset = period.map(|p| p.mul_f64(j as f64 / senders as f64));
                // Flat phases claim message indices in blocks and write every message
                // the window already allows in one go, as a busy client would; rate
                // phases send one message per tick.
                let block = if period.is_some() { 1 } else { FLAT_BLOCK };
                'phase: loop {
                    if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                        break;
                    }
                    if let (Some(p), Some(off)) = (period, offset) {
                        let at = start + off + p * (sent as u32);
                        // Stop at the deadline even when behind schedule.
                        if at >= deadline || Instant::now() >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    let first = fan.claimed.fetch_add(block, Ordering::AcqRel) + 1;
                    if first > end_index {
                        break;
                    }
                    let last = (first + block - 1).min(end_index);
                    for k in first..=last {
                        fan.ring[(k as usize + RING / 2) % RING].store(0, Ordering::Release);
                    }
                    let mut k = first;
                    while k <= last {
                        // Message k may go once every receiver has k - window; a
                        // sender still waiting at the deadline stops (whether all that
                        // was sent arrived is checked at the end of the phase).
                        if k > base + window && !fan.wait_reached(k - window, deadline).await {
                            break 'phase;
                        }
                        let mut w = wr.lock().await;
                        loop {
                            seq += 1;
                            payload::encode(
                                Stamp {
                                    sender: j as u32,
                                    seq,
                                    sent_ns: fan.now_ns(),
                                },
                                &mut text,
                            );
                            w.push_public(&room, &text);
                            sent += 1;
                            k += 1;
                            if k > last || (k > base + window && !fan.reached(k - window)) {
                                break;
                            }
                        }
                        if let Err(e) = w.send().await {
                            fan.error(format!("sender {j}: {e:#}"));
                            break 'phase;
                        }
                        pb.set_position(fan.claimed.load(Ordering::Relaxed).saturating_sub(base));
                    }
                }
                (j, seq, sent)
            });
        }
        let mut total = 0;
        while let Some(r) = set.join_next().await {
            let (j, seq, sent) = r?;
            self.seqs[j] = seq;
            total += sent;
        }
        pb.finish_and_clear();
        let reached = total == 0
            || fan
                .wait_reached(self.base + total, Instant::now() + GRACE)
                .await;
        let secs = start.elapsed().as_secs_f64();
        if !reached {
            fan.error("not every delivery arrived within the grace period".into());
            // Re-synchronise: what is still in flight would confuse the next phase.
        }
        self.base += total;
        let first_error = fan.first_error.lock().ok().and_then(|mut e| e.take());
        let [local, remote] = fan.take_hists();
        let mut hist = local.clone();
        let _ = hist.add(&remote);
        Ok(PhaseResult {
            messages: total,
            expected: total * n,
            verified: fan.verified.load(Ordering::Relaxed) - verified0,
            errors: fan.errors.load(Ordering::Relaxed) - errors0,
            first_error,
            secs,
            hist,
            split: (self.nodes.len() > 1).then_some([local, remote]),
        })
    }

    /// Disconnects everyone.
    pub async fn close(mut self) {
        self.fan.stop.store(true, Ordering::Relaxed);
        for w in &self.writers {
            w.lock().await.quit().await;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Fills the latency and count fields of a record from a phase result.
pub fn fill(rec: &mut Record, r: &PhaseResult) {
    rec.messages = r.messages;
    rec.expected = r.expected;
    rec.verified = r.verified;
    rec.errors = r.errors + r.expected.saturating_sub(r.verified);
    rec.secs = r.secs;
    rec.per_sec = if r.secs > 0.0 {
        r.verified as f64 / r.secs
    } else {
        0.0
    };
    if !r.hist.is_empty() {
        rec.p50_us = Some(r.hist.value_at_quantile(0.5));
        rec.p99_us = Some(r.hist.value_at_quantile(0.99));
        rec.p999_us = Some(r.hist.value_at_quantile(0.999));
        rec.max_us = Some(r.hist.max());
    }
    if let Some([local, remote]) = &r.split {
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        rec.local_p50_us = q(local, 0.5);
        rec.local_p99_us = q(local, 0.99);
        rec.remote_p50_us = q(remote, 0.5);
        rec.remote_p99_us = q(remote, 0.99);
    }
    rec.first_error = r.first_error.clone();
}
