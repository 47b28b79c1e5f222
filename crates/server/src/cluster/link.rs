//! The node's link to Redis: publishes the bus's envelopes, hands what others publish
//! to the bus, keeps the node's heartbeat key and notices lost nodes. Reconnects by
//! itself; while Redis is away the node serves its own users alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ClusterBus, NODE_LOST, fill};

/// The pub/sub channel every node publishes on and listens to.
pub const CHANNEL: &str = "natter:cluster";

/// The heartbeat key of `node`.
pub fn heartbeat_key(node: &str) -> String {
    format!("natter:node:{node}")
}

/// How often the heartbeat is renewed (and lost nodes looked for).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long a heartbeat key lives unless renewed.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

/// Longest wait for Redis to connect or answer.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Envelopes published in one round trip at most.
const BATCH: usize = 512;

/// Why serving a connection ended.
enum Ended {
    /// The server is stopping.
    Stop,
    /// The connection failed.
    Broken(String),
}

/// Opens a Redis client for `url` (checked, not connected yet).
pub fn client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|e| e.to_string())
}

/// Runs the link until `stop`: connects, serves, reconnects with a growing pause (up to
/// 2 s). On stop it publishes what is queued, says goodbye and removes its heartbeat.
pub async fn run(
    bus: Arc<ClusterBus>,
    client: redis::Client,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stop: CancellationToken,
) {
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match connect(&client).await {
            Ok((conn, sink, stream)) => {
                tracing::info!(node = bus.node(), "cluster link up");
                warned = false;
                pause = Duration::from_millis(100);
                bus.link_up();
                // Anything may have been missed while away.
                tokio::spawn(fill::fill_all(bus.clone()));
                tokio::spawn(fill::deliver_pending(bus.clone()));
                let ended = serve(&bus, conn.clone(), stream, &mut rx, &stop).await;
                drop(sink);
                bus.link_down();
                match ended {
                    Ended::Stop => {
                        goodbye(&bus, conn, &mut rx).await;
                        return;
                    }
                    Ended::Broken(why) => {
                        tracing::warn!(error = %why, "cluster link down; serving local users alone")
                    }
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "cannot reach Redis; retrying");
                    warned = true;
                }
            }
        }
        // While away, what was queued is dropped: the others recover from the store
        // and from snapshots, and a backlog would arrive stale.
        while rx.try_recv().is_ok() {}
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// A publishing connection and a subscription to [`CHANNEL`].
async fn connect(
    client: &redis::Client,
) -> Result<
    (
        MultiplexedConnection,
        redis::aio::PubSubSink,
        redis::aio::PubSubStream,
    ),
    String,
> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT);
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "timed out subscribing".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(CHANNEL))
        .await
        .map_err(|_| "timed out subscribing".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((conn, sink, stream))
}

/// Publishes and receives until the connection fails or `stop`.
async fn serve(
    bus: &Arc<ClusterBus>,
    mut conn: MultiplexedConnection,
    mut stream: redis::aio::PubSubStream,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    stop: &CancellationToken,
) -> Ended {
    // When anything (our own heartbeat included) last came in, in ms since `start`.
    let start = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let reader = {
        let (bus, heard) = (bus.clone(), heard.clone());
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                heard.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                bus.receive(msg.get_payload_bytes());
            }
        })
    };
    let mut reader = AbortOnDrop(reader);
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let key = heartbeat_key(bus.node());
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ended::Stop,
            _ = &mut reader.0 => return Ended::Broken("subscription ended".into()),
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return Ended::Stop;
                }
                if let Err(e) = publish(&mut conn, &mut batch).await {
                    return Ended::Broken(e);
                }
            }
            _ = beat.tick() => {
                if let Err(e) = redis::cmd("SET")
                    .arg(&key)
                    .arg(crate::now_ms())
                    .arg("PX")
                    .arg(HEARTBEAT_TTL.as_millis() as u64)
                    .query_async::<()>(&mut conn)
                    .await
                {
                    return Ended::Broken(e.to_string());
                }
                bus.publish(super::wire::Body::Heartbeat);
                let silence = start.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silence > super::NODE_SILENCE + HEARTBEAT_EVERY {
                    return Ended::Broken("no message from Redis, not even our own".into());
                }
                for node in bus.silent_nodes() {
                    match redis::cmd("EXISTS").arg(heartbeat_key(&node)).query_async::<i64>(&mut conn).await {
                        Ok(0) => bus.node_lost(&node, NODE_LOST),
                        Ok(_) => {}
                        Err(e) => return Ended::Broken(e.to_string()),
                    }
                }
            }
        }
    }
}

/// Publishes `batch` in one round trip, emptying it.
async fn publish(conn: &mut MultiplexedConnection, batch: &mut Vec<Vec<u8>>) -> Result<(), String> {
    let mut pipe = redis::pipe();
    for payload in batch.drain(..) {
        pipe.cmd("PUBLISH").arg(CHANNEL).arg(payload).ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| e.to_string())
}

/// On stop: publishes what is queued and a goodbye, and removes the heartbeat key.
async fn goodbye(
    bus: &ClusterBus,
    mut conn: MultiplexedConnection,
    rx: &mut mpsc::Receiver<Vec<u8>>,
) {
    bus.goodbye();
    let mut batch = Vec::new();
    while let Ok(p) = rx.try_recv() {
        batch.push(p);
    }
    let _ = publish(&mut conn, &mut batch).await;
    let _ = redis::cmd("DEL")
        .arg(heartbeat_key(bus.node()))
        .query_async::<()>(&mut conn)
        .await;
}

/// A task aborted when its handle goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
