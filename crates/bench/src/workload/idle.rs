//! Idle connections: memory per connection.

use super::*;

/// Resident set size of process `pid` in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse()?;
            return Ok(kb * 1024);
        }
    }
    bail!("no VmRSS for pid {pid}")
}

/// Idle connections: logs `n` users in, in two halves, and measures the server's RSS
/// growth over the second half (the marginal cost of a connection, without one-time
/// costs such as the password hasher's memory) and over all of them.
pub async fn idle(
    target: &Target,
    n: usize,
    pid: Option<u32>,
    parallel: usize,
    rec: &mut Record,
) -> Result<()> {
    let before = pid.map(rss).transpose()?;
    // natter joins the lobby by itself; IRC users only register; Redis users subscribe.
    let channel = match target.kind {
        crate::client::Kind::Redis => Some(ROOM.to_string()),
        _ => None,
    };
    let half = n / 2;
    let mut tasks = JoinSet::new();
    let mut writers = Vec::new();
    let mut took = Duration::ZERO;
    let mut mid = None;
    for range in [0..half, half..n] {
        if range.start > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            mid = pid.map(rss).transpose()?;
        }
        let (sessions, t) = connect_many(
            target,
            range.map(idle_name).collect(),
            channel.clone(),
            false,
            false,
            parallel,
            "idle connections",
        )
        .await?;
        took += t;
        for (rd, wr) in sessions {
            let wr = Arc::new(tokio::sync::Mutex::new(wr));
            tasks.spawn(drain_session(rd, wr.clone()));
            writers.push(wr);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pid.map(rss).transpose()?;
    rec.messages = 0;
    rec.expected = n as u64;
    rec.verified = writers.len() as u64;
    rec.secs = took.as_secs_f64();
    rec.per_sec = n as f64 / took.as_secs_f64().max(1e-9);
    if let (Some(b), Some(m), Some(a)) = (before, mid, after) {
        rec.rss_before = Some(b);
        rec.rss_after = Some(a);
        rec.rss_per_conn = Some(a.saturating_sub(m) as f64 / (n - half).max(1) as f64);
        rec.rss_total_per_conn = Some(a.saturating_sub(b) as f64 / n.max(1) as f64);
    }
    for w in &writers {
        w.lock().await.quit().await;
    }
    tasks.abort_all();
    Ok(())
}
