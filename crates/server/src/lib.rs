//! The natter chat server as a library: `natter-server` is a thin binary over it, and
//! tests drive [`Server`] directly on `127.0.0.1:0`.
//!
//! Module map: [`config`] (options), [`listener`] (accept loop, connection limits, TLS
//! handshake), [`session`] (one task per connection), [`hub`] (presence and fan-out),
//! [`store`] (durable state behind a trait), [`auth`] (password hashing), [`ratelimit`]
//! (message, join and part limits), [`throttle`] (login delays), [`tls`] (certificates), [`transcript`] (plain-text
//! logs), [`monitor`] (the console's live feed), [`metrics`], [`moderation`] (operator
//! actions), [`web`] (console, browser chat, `/metrics`), [`transport_kind`] (which
//! transport a session came over: natter, websocket or irc).

pub mod auth;
pub mod bus;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod delivery;
pub mod fsutil;
pub mod history;
pub mod hub;
pub mod irc;
pub mod listener;
pub mod metrics;
pub mod moderation;
pub mod monitor;
pub mod outbox;
pub mod ratelimit;
pub mod session;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod transcript;
pub mod transport;
pub mod transport_kind;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clock::now_ms;
pub use config::{Config, ConfigError, Options};
use hub::Hub;
use store::{SqliteStore, Store, StoreError};

/// How often large rooms announce their joins and leaves.
pub const PRESENCE_SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// How often logged-in sessions whose ping or ping timeout is due are woken: so late,
/// at most, is a ping sent or an unanswered one given up on.
pub const DEADLINE_SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created or secured.
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password hashing could not be initialised.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The log directory could not be prepared.
    #[error("conversation logs: {0}")]
    Transcript(#[from] transcript::TranscriptError),
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The operator password could not be prepared.
    #[error(transparent)]
    Operator(#[from] web::operator::OperatorError),
    /// The cluster settings are unusable (the Redis URL, the node id file).
    #[error("cluster: {0}")]
    Cluster(String),
}

/// The link of a cluster node, started with the server.
struct ClusterLink {
    /// The bus it serves.
    bus: Arc<cluster::ClusterBus>,
    /// Its Redis client.
    client: redis::Client,
    /// The bus's envelopes to publish.
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
}

/// This node's id: the configured one, else the one kept in `data_dir/node-id`, else a
/// new one, kept there.
fn node_id(config: &Config) -> Result<String, ServerError> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join("node-id");
    let bad = |e: String| ServerError::Cluster(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_string();
            config::valid_node_id(&id).map_err(|e| bad(e.to_string()))?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{:08x}", rand::random::<u32>());
            std::fs::write(&path, format!("{id}\n")).map_err(|e| bad(e.to_string()))?;
            Ok(id)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// State shared by every session; each field has one owner, see docs/ARCHITECTURE.md.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Presence, fan-out and moderation effects, in this process or across nodes.
    pub bus: Arc<dyn bus::Bus>,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Password hashing.
    pub auth: auth::Authenticator,
    /// TLS acceptor; `None` when serving plaintext.
    pub tls: Option<tls::TlsIdentity>,
    /// Open connections, for the connection limits.
    pub conns: Arc<listener::ConnLimits>,
    /// Chat message rate limits per account.
    pub messages: Arc<ratelimit::MessageLimiter>,
    /// Joins and parts per account (each may send presence to every member).
    pub room_ops: ratelimit::MessageLimiter,
    /// Failed-login delays.
    pub logins: throttle::LoginThrottle,
    /// Plain-text conversation and system logs.
    pub transcript: transcript::Transcript,
    /// The operator console's live feed.
    pub monitor: monitor::Monitor,
    /// Counters for `/metrics` and the console.
    pub metrics: metrics::Metrics,
    /// Writes plain TCP connections' outboxes.
    pub flusher: Arc<outbox::Flusher>,
    /// IRC users' user names, real names, away messages and operator status.
    pub irc: irc::directory::Directory,
    /// The operator password (the web console's, and IRC's OPER).
    pub operator: Arc<web::operator::OperatorAuth>,
}

impl Shared {
    /// Records an event in the plain-text logs and shows it on watching consoles.
    pub fn emit(&self, event: transcript::Event) {
        self.monitor.publish(&event);
        self.bus.share_event(&event);
        self.transcript.record(event);
    }

    /// [`Shared::emit`] for a chat message: waits for room in the conversation log's
    /// queue rather than dropping the line (see [`transcript::Transcript::record_wait`]).
    pub async fn emit_message(&self, event: transcript::Event) {
        self.monitor.publish(&event);
        self.bus.share_event(&event);
        self.transcript.record_wait(event).await;
    }
}

/// The listeners a server serves.
pub struct Listeners {
    /// natter's own protocol.
    pub chat: TcpListener,
    /// The web interface (console, browser chat, `/metrics`), if enabled.
    pub web: Option<TcpListener>,
    /// The IRC gateway, if enabled.
    pub irc: Option<TcpListener>,
}

/// A server with its state opened, ready to serve a listener.
pub struct Server {
    /// State handed to sessions.
    shared: Arc<Shared>,
    /// The SQLite store of a single node, kept to close it cleanly on shutdown.
    sqlite: Option<Arc<SqliteStore>>,
    /// A cluster node's link to the others, started by `run`.
    cluster: Option<ClusterLink>,
    /// The operator password and console sessions (web-only state, handed to the web
    /// interface, not to sessions).
    operator: Arc<web::operator::OperatorAuth>,
    /// The operator password generated on this start, to be shown once.
    generated_password: Option<String>,
}

impl Server {
    /// Prepares the data directory (mode 0700) and opens the database.
    pub async fn open(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        fsutil::private_dir(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let (store, sqlite): (Arc<dyn Store>, _) = match &config.cluster {
            None => {
                let sqlite = Arc::new(SqliteStore::open(&config.data_dir)?);
                (sqlite.clone(), Some(sqlite))
            }
            Some(engines) => (
                Arc::new(
                    store::PostgresStore::connect_with(
                        &engines.postgres.0,
                        engines.postgres_ca.as_deref(),
                    )
                    .await?,
                ),
                None,
            ),
        };
        let auth = auth::Authenticator::new(config.max_hashes_in_flight).await?;
        let tls = if config.plaintext {
            None
        } else {
            let files = config.tls_files.as_ref();
            Some(tls::load_or_create(
                &config.data_dir,
                files.map(|f| f.0.as_path()),
                files.map(|f| f.1.as_path()),
            )?)
        };
        let transcript =
            transcript::Transcript::start(config.data_dir.join("logs"), config.retention)?;
        let (operator, generated_password) = web::operator::OperatorAuth::open(
            &config,
            &auth,
            config.cluster.is_some().then_some(&*store),
        )
        .await?;
        let operator = Arc::new(operator);
        let messages = Arc::new(ratelimit::MessageLimiter::new(config.messages.clone()));
        // Session ids name their node; one process is one node, with a fresh id per start.
        let hub = Hub::on_node(
            rand::random(),
            config.max_rooms_per_session,
            config.large_room,
        );
        let local = bus::LocalBus::new(hub, messages.clone());
        let monitor = monitor::Monitor::default();
        let (bus, cluster): (Arc<dyn bus::Bus>, _) = match &config.cluster {
            None => (Arc::new(local), None),
            Some(engines) => {
                let client = cluster::link::client(&engines.redis.0)
                    .map_err(|e| ServerError::Cluster(format!("cluster_redis: {e}")))?;
                let node = node_id(&config)?;
                let (bus, rx) =
                    cluster::ClusterBus::new(node, local, store.clone(), monitor.clone());
                (
                    bus.clone() as Arc<dyn bus::Bus>,
                    Some(ClusterLink { bus, client, rx }),
                )
            }
        };
        let shared = Arc::new(Shared {
            bus,
            messages,
            room_ops: ratelimit::MessageLimiter::new(config.room_ops.clone()),
            logins: throttle::LoginThrottle::new(config.logins.clone()),
            transcript,
            config,
            store,
            auth,
            tls,
            conns: Arc::default(),
            monitor,
            metrics: metrics::Metrics::new(),
            flusher: outbox::Flusher::new(),
            irc: irc::directory::Directory::new(),
            operator: operator.clone(),
        });
        Ok(Server {
            shared,
            operator,
            sqlite,
            cluster,
            generated_password,
        })
    }

    /// The operator password generated on this start (the first start without a
    /// configured one), once: later calls return `None`. Only its hash is stored.
    pub fn take_generated_password(&mut self) -> Option<String> {
        self.generated_password.take()
    }

    /// The state shared with sessions (for inspection in tests and tools).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The TLS identity served, or `None` in plaintext mode.
    pub fn tls(&self) -> Option<&tls::TlsIdentity> {
        self.shared.tls.as_ref()
    }

    /// Accepts chat connections on `listener` until `shutdown` resolves, then tells
    /// every client, lets sessions drain for the configured grace period and closes the
    /// store. (No web interface; see [`Server::run_with_web`].)
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        self.run_with_web(listener, None, shutdown).await
    }

    /// Like [`Server::run`], also serving the web interface on `web` (HTTPS or HTTP as
    /// [`web::uses_https`] decides for its address).
    pub async fn run_with_web(
        self,
        listener: TcpListener,
        web: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let listeners = Listeners {
            chat: listener,
            web,
            irc: None,
        };
        self.run_with(listeners, shutdown).await
    }

    /// Serves every listener in `listeners` until `shutdown` resolves (see
    /// [`Server::run`]).
    pub async fn run_with(mut self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let Listeners {
            chat: listener,
            web,
            irc,
        } = listeners;
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        // Outlives the sessions (they flush their last frames through it) and stops
        // after them.
        let flusher_stop = CancellationToken::new();
        let flusher = tokio::spawn(self.shared.flusher.clone().run(flusher_stop.clone()));
        // A cluster node's link outlives the sessions too: their leaving is news for
        // the other nodes.
        let link = self.cluster.take().map(|c| {
            tracker.spawn(cluster::fill::run(c.bus.clone(), stop.clone()));
            tokio::spawn(cluster::link::run(
                c.bus,
                c.client,
                c.rx,
                flusher_stop.clone(),
            ))
        });
        if let Some(web) = web {
            let https = web
                .local_addr()
                .is_ok_and(|a| web::uses_https(a, &self.shared));
            let state = web::WebState {
                shared: self.shared.clone(),
                operator: self.operator.clone(),
                https,
                stop: stop.clone(),
                tracker: tracker.clone(),
            };
            tracker.spawn(web::serve(web, state));
        }
        if let Some(irc) = irc {
            let transport = irc
                .local_addr()
                .map_or(listener::Transport::Irc { tls: true }, |a| {
                    listener::Transport::irc(a, &self.shared)
                });
            let (shared, tracker2, stop2) = (self.shared.clone(), tracker.clone(), stop.clone());
            tracker.spawn(async move {
                listener::accept_loop_for(irc, transport, shared, &tracker2, &stop2).await
            });
        }
        self.shared.emit(transcript::Event::System {
            kind: "start",
            detail: format!("version={}", env!("CARGO_PKG_VERSION")),
            ts_ms: now_ms(),
        });
        // Joins and leaves of large rooms, announced about once a second.
        let shared = self.shared.clone();
        tracker.spawn(every(PRESENCE_SUMMARY_EVERY, stop.clone(), move || {
            shared.bus.flush_presence();
        }));
        // Logged-in sessions whose ping or ping timeout is due: one sweep instead of a
        // timer in every idle session's future.
        let shared = self.shared.clone();
        tracker.spawn(every(DEADLINE_SWEEP_EVERY, stop.clone(), move || {
            shared.bus.wake_due(tokio::time::Instant::now());
        }));
        if let Some(retention) = self.shared.config.retention {
            tracker.spawn(prune_history(self.shared.clone(), retention, stop.clone()));
        }
        tokio::select! {
            _ = shutdown => {}
            _ = listener::accept_loop(listener, self.shared.clone(), &tracker, &stop) => {}
        }
        tracing::info!(sessions = self.shared.bus.session_count(), "shutting down");
        self.shared.bus.set_closing();
        stop.cancel();
        tracker.close();
        let limit = self.shared.config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
            tracing::warn!("some sessions did not finish in time");
        }
        flusher_stop.cancel();
        let _ = flusher.await;
        if let Some(link) = link {
            let _ = tokio::time::timeout(Duration::from_secs(3), link).await;
        }
        if let Some(sqlite) = &self.sqlite {
            sqlite.close().await;
        }
        self.shared.emit(transcript::Event::System {
            kind: "stop",
            detail: String::new(),
            ts_ms: now_ms(),
        });
        self.shared.transcript.close().await;
        tracing::info!("shutdown complete");
    }
}

/// Runs `tick` every `period` (later when the runtime is busy) until `stop`.
async fn every(period: Duration, stop: CancellationToken, mut tick: impl FnMut()) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => tick(),
        }
    }
}

/// Opens the state in `config.data_dir` and serves `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::open(config).await?.run(listener, shutdown).await;
    Ok(())
}

/// Deletes stored messages older than `retention`, at once and then hourly, until
/// `stop`. (The transcript prunes its log files itself.)
async fn prune_history(shared: Arc<Shared>, retention: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        match shared.store.prune_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "pruned history past the retention period"),
            Err(e) => tracing::warn!(error = %e, "pruning history failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_generated_once_kept_and_overridden_by_the_option() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::with_data_dir(dir.path());
        let first = node_id(&config).expect("generated");
        assert!(config::valid_node_id(&first).is_ok(), "{first}");
        assert_eq!(node_id(&config).expect("kept"), first);
        config.node_id = Some("n-7".into());
        assert_eq!(node_id(&config).expect("configured"), "n-7");
        config.node_id = None;
        std::fs::write(dir.path().join("node-id"), "not valid!\n").expect("write");
        assert!(
            node_id(&config).is_err(),
            "a bad kept id is an error, not replaced"
        );
    }
}
