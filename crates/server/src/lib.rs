//! The natter chat server as a library: `natter-server` is a thin binary over it, and
//! tests drive [`Server`] directly on `127.0.0.1:0`.
//!
//! Module map: [`config`] (options), `listener` logic in [`Server::run`] (accept,
//! shutdown), [`session`] (one task per connection), [`hub`] (presence and fan-out),
//! [`store`] (durable state behind a trait), [`auth`] (password hashing).

pub mod auth;
pub mod config;
pub mod fsutil;
pub mod hub;
pub mod session;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, ConfigError, Options};
use hub::Hub;
use store::{SqliteStore, Store, StoreError};

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
}

/// State shared by every session; each field has one owner, see docs/ARCHITECTURE.md.
pub struct Shared {
    /// Validated configuration.
    pub config: Config,
    /// Presence and fan-out.
    pub hub: Hub,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Password hashing.
    pub auth: auth::Authenticator,
}

/// A server with its state opened, ready to serve a listener.
pub struct Server {
    /// State handed to sessions.
    shared: Arc<Shared>,
    /// The concrete store, kept to close it cleanly on shutdown.
    sqlite: Arc<SqliteStore>,
}

impl Server {
    /// Prepares the data directory (mode 0700) and opens the database.
    pub async fn open(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        fsutil::private_dir(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let sqlite = Arc::new(SqliteStore::open(&config.data_dir)?);
        let auth = auth::Authenticator::new(config.max_hashes_in_flight).await?;
        let shared = Arc::new(Shared {
            config,
            hub: Hub::new(),
            store: sqlite.clone(),
            auth,
        });
        Ok(Server { shared, sqlite })
    }

    /// The state shared with sessions (for inspection in tests and tools).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts connections on `listener` until `shutdown` resolves, then tells every
    /// client, lets sessions drain for the configured grace period and closes the store.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        tracker.spawn(session::serve(tcp, peer, self.shared.clone(), stop.child_token()));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!(sessions = self.shared.hub.session_count(), "shutting down");
        self.shared.hub.set_closing();
        stop.cancel();
        tracker.close();
        let limit = self.shared.config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
            tracing::warn!("some sessions did not finish in time");
        }
        self.sqlite.close().await;
        tracing::info!("shutdown complete");
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
