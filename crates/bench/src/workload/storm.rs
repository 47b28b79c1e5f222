//! A login storm while others chat.

use super::*;

/// Login storm: `storm` users log in at once (at most `parallel` in progress) while the
/// fan-out room chats at `rate` messages/s; returns the logins/s and fills `rec` with the
/// chat's figures during the storm.
pub async fn storm(
    fan: &mut FanOut,
    target: &Target,
    storm: usize,
    rate: f64,
    parallel: usize,
) -> Result<(f64, PhaseResult)> {
    let stop = fan.stop_handle();
    let names: Vec<String> = (0..storm).map(storm_name).collect();
    let target = target.clone();
    let stop2 = stop.clone();
    let storm_task = tokio::spawn(async move {
        // Give the chat a moment to reach its rate first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = connect_many(
            &target,
            names,
            Some(ROOM.to_string()),
            false,
            false,
            parallel,
            "login storm",
        )
        .await;
        stop2.store(true, Ordering::Relaxed);
        let r = r?;
        let mut tasks = JoinSet::new();
        let mut writers = Vec::new();
        for (rd, wr) in r.0 {
            let wr = Arc::new(tokio::sync::Mutex::new(wr));
            tasks.spawn(drain_session(rd, wr.clone()));
            writers.push(wr);
        }
        anyhow::Ok((r.1, tasks, writers))
    });
    let chat = fan
        .phase(Phase::Rate { rate, secs: 600.0 }, Some(stop))
        .await?;
    let (took, mut tasks, writers) = storm_task.await??;
    for w in &writers {
        w.lock().await.quit().await;
    }
    tasks.abort_all();
    Ok((storm as f64 / took.as_secs_f64().max(1e-9), chat))
}
