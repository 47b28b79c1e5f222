//! Private messages between random pairs of users.

use super::*;

/// Private messages between random pairs of `users` users for `secs` seconds, at most
/// `window` unacknowledged messages per sender.
pub async fn private(
    target: &Target,
    users: usize,
    secs: f64,
    window: usize,
    parallel: usize,
    pin: &ServerPin,
    rec: &mut Record,
) -> Result<()> {
    let kind = target.kind;
    let names: Vec<String> = (0..users).map(private_name).collect();
    // Redis: every user subscribes to a channel named after them.
    let mut sessions = Vec::new();
    let mut setup = Duration::ZERO;
    if kind == crate::client::Kind::Redis {
        let pb = bar(users as u64, "private users");
        for name in &names {
            sessions.push(target.login(name, Some(name), true, false).await?);
            pb.inc(1);
        }
        pb.finish_and_clear();
    } else {
        let (s, took) = connect_many(
            target,
            names.clone(),
            None,
            true,
            false,
            parallel,
            "private users",
        )
        .await?;
        sessions = s;
        setup = took;
    }
    rec.setup_secs = setup.as_secs_f64();
    pin.measure()?;
    let sems: Arc<Vec<Semaphore>> = Arc::new((0..users).map(|_| Semaphore::new(window)).collect());
    let hists: Arc<Vec<Mutex<Histogram<u64>>>> =
        Arc::new((0..SHARDS).map(|_| Mutex::new(new_hist())).collect());
    let verified = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let origin = Instant::now();
    let names = Arc::new(names);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let mut writers = Vec::new();
    for (i, (mut rd, wr)) in sessions.into_iter().enumerate() {
        let wr = Arc::new(tokio::sync::Mutex::new(wr));
        writers.push(wr.clone());
        let (sems, hists, verified, received, errors, first_error, names, stop) = (
            sems.clone(),
            hists.clone(),
            verified.clone(),
            received.clone(),
            errors.clone(),
            first_error.clone(),
            names.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut last = vec![0u64; names.len()];
            let fail = |what: String| {
                errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut e) = first_error.lock()
                    && e.is_none()
                {
                    *e = Some(what);
                }
            };
            loop {
                match rd.next().await {
                    Ok(Event::Msg { from, text }) => {
                        if from == Some(names[i].as_bytes()) {
                            continue; // natter's echo of our own message
                        }
                        let now = origin.elapsed().as_nanos() as u64;
                        match check(from, text, &names, &mut last) {
                            Some(st) => {
                                verified.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut h) = hists[i % SHARDS].lock() {
                                    h.saturating_record(
                                        (now.saturating_sub(st.sent_ns) / 1000).max(1),
                                    );
                                }
                                sems[st.sender as usize].add_permits(1);
                            }
                            None => fail(format!(
                                "user {i}: bad delivery {:?} {:?}",
                                from.map(show),
                                show(text)
                            )),
                        }
                        received.fetch_add(1, Ordering::Release);
                    }
                    Ok(Event::Ping(arg)) => {
                        let _ = wr.lock().await.pong(&arg).await;
                    }
                    Ok(Event::Error(e)) => fail(format!("user {i}: server error: {e}")),
                    Ok(Event::Closed(why)) => {
                        fail(format!("user {i} disconnected: {why}"));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !stop.load(Ordering::Relaxed) {
                            fail(format!("user {i}: {e:#}"));
                        }
                        break;
                    }
                }
            }
        });
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let (pb, ticker) = timed_bar(secs, "private messages");
    let mut senders = JoinSet::new();
    for (i, wr) in writers.iter().enumerate() {
        let (wr, sems, names) = (wr.clone(), sems.clone(), names.clone());
        senders.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut text = String::with_capacity(payload::LEN);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let Ok(Ok(permit)) =
                    tokio::time::timeout_at(deadline.into(), sems[i].acquire()).await
                else {
                    break;
                };
                permit.forget();
                let mut to = rng.random_range(0..names.len() - 1);
                if to >= i {
                    to += 1;
                }
                sent += 1;
                payload::encode(
                    Stamp {
                        sender: i as u32,
                        seq: sent,
                        sent_ns: origin.elapsed().as_nanos() as u64,
                    },
                    &mut text,
                );
                if wr.lock().await.private(&names[to], &text).await.is_err() {
                    sent -= 1;
                    break;
                }
            }
            sent
        });
    }
    let mut total = 0;
    while let Some(r) = senders.join_next().await {
        total += r?;
    }
    let until = Instant::now() + GRACE;
    while received.load(Ordering::Acquire) < total && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
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
        verified: verified.load(Ordering::Relaxed),
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
    tasks.abort_all();
    Ok(())
}
