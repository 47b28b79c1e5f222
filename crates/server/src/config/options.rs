//! The options as given (flags, `NATTER_*` variables, TOML keys), before defaults and
//! validation.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Options of `natter-server`: each is a flag, a `NATTER_*` environment variable and a
/// key of the TOML file (the flag name with `_` for `-`). All are optional here; defaults
/// are applied by [`Config::load`].
#[derive(Debug, Default, Clone, Parser, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(
    name = "natter-server",
    version,
    about = "natter chat server",
    long_about = "natter chat server.\n\nSettings come from built-in defaults, then the TOML file given by --config, then NATTER_* environment variables, then these flags. TLS is on by default with a self-signed certificate created in the data directory."
)]
pub struct Options {
    /// TOML config file (keys as the long flags, with '_' for '-').
    #[arg(long, env = "NATTER_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on for chat clients [default: 0.0.0.0:9999].
    #[arg(long, env = "NATTER_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory for the database, certificate and other state [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain to serve instead of the self-signed one (needs --tls-key).
    #[arg(long, env = "NATTER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "NATTER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// INSECURE: serve plaintext TCP without TLS (local testing only) [default: false].
    #[arg(long, env = "NATTER_PLAINTEXT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub plaintext: Option<bool>,
    /// Longest chat message in bytes [default: 4096].
    #[arg(long, env = "NATTER_MAX_MESSAGE_BYTES", value_name = "N")]
    pub max_message_bytes: Option<usize>,
    /// Frames queued per session before it counts as a slow consumer [default: 1024].
    #[arg(long, env = "NATTER_SESSION_QUEUE", value_name = "N")]
    pub session_queue: Option<usize>,
    /// Connections accepted at once in total [default: 10000].
    #[arg(long, env = "NATTER_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections accepted at once from one IP address [default: 64].
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a new connection has to finish TLS and log in [default: 10].
    #[arg(long, env = "NATTER_AUTH_TIMEOUT_SECS", value_name = "SECS")]
    pub auth_timeout_secs: Option<u64>,
    /// Frames a connection may send before logging in [default: 10].
    #[arg(long, env = "NATTER_MAX_PRELOGIN_FRAMES", value_name = "N")]
    pub max_prelogin_frames: Option<u32>,
    /// Seconds of silence from a peer before the server pings it [default: 30].
    #[arg(long, env = "NATTER_PING_INTERVAL_SECS", value_name = "SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Seconds to wait for any answer to a ping before dropping the peer [default: 30].
    #[arg(long, env = "NATTER_PING_TIMEOUT_SECS", value_name = "SECS")]
    pub ping_timeout_secs: Option<u64>,
    /// Sustained chat messages per second per account [default: 5].
    #[arg(long, env = "NATTER_MESSAGE_RATE", value_name = "PER_SEC")]
    pub message_rate: Option<f64>,
    /// Chat messages an account may send in one burst [default: 10].
    #[arg(long, env = "NATTER_MESSAGE_BURST", value_name = "N")]
    pub message_burst: Option<u32>,
    /// Rejected messages in a row that mute a flooding account [default: 10].
    #[arg(long, env = "NATTER_FLOOD_STRIKES", value_name = "N")]
    pub flood_strikes: Option<u32>,
    /// First mute in seconds; each further mute doubles [default: 30].
    #[arg(long, env = "NATTER_MUTE_SECS", value_name = "SECS")]
    pub mute_secs: Option<u64>,
    /// Mutes after which a still-flooding session is disconnected [default: 3].
    #[arg(long, env = "NATTER_MAX_MUTES", value_name = "N")]
    pub max_mutes: Option<u32>,
    /// Delay after a failed login in milliseconds; doubles per failure [default: 250].
    #[arg(long, env = "NATTER_LOGIN_DELAY_MS", value_name = "MS")]
    pub login_delay_ms: Option<u64>,
    /// Longest failed-login delay in seconds [default: 30].
    #[arg(long, env = "NATTER_LOGIN_MAX_DELAY_SECS", value_name = "SECS")]
    pub login_max_delay_secs: Option<u64>,
    /// Failed logins per IP address before its delays start [default: 5].
    #[arg(long, env = "NATTER_LOGIN_FREE_PER_IP", value_name = "N")]
    pub login_free_per_ip: Option<u32>,
    /// Addresses that may fail on one account before logins to it from new addresses
    /// are delayed one at a time [default: 3].
    #[arg(long, env = "NATTER_LOGIN_FREE_ADDRS_PER_ACCOUNT", value_name = "N")]
    pub login_free_addrs_per_account: Option<u32>,
    /// Sustained joins and parts per second per account [default: 1].
    #[arg(long, env = "NATTER_ROOM_OP_RATE", value_name = "PER_SEC")]
    pub room_op_rate: Option<f64>,
    /// Joins and parts an account may make in one burst [default: 20].
    #[arg(long, env = "NATTER_ROOM_OP_BURST", value_name = "N")]
    pub room_op_burst: Option<u32>,
    /// Messages of a room sent to a client when it joins [default: 50].
    #[arg(long, env = "NATTER_HISTORY_ON_JOIN", value_name = "N")]
    pub history_on_join: Option<u32>,
    /// Days after which history and logs are pruned; 0 keeps everything [default: 0].
    #[arg(long, env = "NATTER_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// Rooms one connection may be in at once [default: 64].
    #[arg(long, env = "NATTER_MAX_ROOMS_PER_SESSION", value_name = "N")]
    pub max_rooms_per_session: Option<usize>,
    /// Members from which a room announces joins and leaves in a summary about once a
    /// second instead of one notice each [default: 200].
    #[arg(long, env = "NATTER_LARGE_ROOM", value_name = "N")]
    pub large_room: Option<usize>,
    /// Password hashes computed at once, each on a hashing thread of its own at a lower
    /// CPU priority than the chat; more logins wait [default: one per CPU core].
    #[arg(long, env = "NATTER_MAX_HASHES_IN_FLIGHT", value_name = "N")]
    pub max_hashes_in_flight: Option<usize>,
    /// Seconds to let clients drain on shutdown before cutting them off [default: 5].
    #[arg(long, env = "NATTER_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Address of the web console, browser chat and /metrics, or "off"; HTTPS unless on
    /// loopback [default: 127.0.0.1:8000].
    #[arg(long, env = "NATTER_WEB_LISTEN", value_name = "HOST:PORT|off")]
    pub web_listen: Option<String>,
    /// Address of the IRC gateway, or "off"; TLS with the server's certificate unless
    /// --plaintext or on loopback [default: 0.0.0.0:6697].
    #[arg(long, env = "NATTER_IRC_LISTEN", value_name = "HOST:PORT|off")]
    pub irc_listen: Option<String>,
    /// TLS on the IRC gateway: "on", "off", or "auto" (TLS unless on loopback)
    /// [default: auto].
    #[arg(long, env = "NATTER_IRC_TLS", value_name = "auto|on|off")]
    pub irc_tls: Option<String>,
    /// A password every IRC connection must give with PASS before registering (a
    /// private gateway); accounts then log in with SASL or NickServ [default: none].
    #[arg(
        long,
        env = "NATTER_IRC_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub irc_password: Option<Secret>,
    /// The server's name on IRC: the source of its replies, as in PONG and numerics
    /// [default: natter].
    #[arg(long, env = "NATTER_IRC_SERVER_NAME", value_name = "NAME")]
    pub irc_server_name: Option<String>,
    /// For conformance suites only (irctest): an IRC connection that sends NICK and USER
    /// without credentials gets a new account named after its nick, with a random
    /// password nobody knows. Only with the IRC gateway on a loopback address
    /// [default: false].
    #[arg(long, env = "NATTER_IRC_CONFORMANCE_GUESTS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub irc_conformance_guests: Option<bool>,
    /// Operator password for the web console [default: generated on first start, printed
    /// once, stored hashed in DATA_DIR/admin_password.hash].
    #[arg(
        long,
        env = "NATTER_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<Secret>,
    /// Serve the web interface over HTTPS even on a loopback address [default: false].
    #[arg(long, env = "NATTER_WEB_TLS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub web_tls: Option<bool>,
    // Web listener hardening: connection cap per address, timeouts, accepted host names,
    // the metrics token.
    /// Web connections open at once from one IP address [default: max_connections_per_ip, 64].
    #[arg(long, env = "NATTER_WEB_MAX_PER_IP", value_name = "N")]
    pub web_max_per_ip: Option<usize>,
    /// Seconds a web connection has from its first byte (or from connecting) to send a
    /// whole request head, TLS handshake included [default: 10].
    #[arg(long, env = "NATTER_WEB_HEADER_TIMEOUT_SECS", value_name = "SECS")]
    pub web_header_timeout_secs: Option<u64>,
    /// Seconds a kept-alive web connection may stay silent between requests (WebSockets
    /// follow the chat ping rules instead) [default: 60].
    #[arg(long, env = "NATTER_WEB_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub web_idle_timeout_secs: Option<u64>,
    /// Host names the web interface answers to, comma-separated; other `Host` headers get
    /// 421 [default: the web_listen address, localhost and loopback addresses].
    #[arg(
        long,
        env = "NATTER_WEB_HOST",
        value_name = "NAME,...",
        value_delimiter = ','
    )]
    pub web_host: Option<Vec<String>>,
    /// Bearer token /metrics requires (`Authorization: Bearer TOKEN`) [default: none, open].
    #[arg(
        long,
        env = "NATTER_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<Secret>,
    /// PostgreSQL URL (e.g. postgres://natter:PASSWORD@db:5432/natter) of the store the
    /// nodes of a cluster share; with --cluster-redis, makes this server a cluster node
    /// [default: none, one node on SQLite in the data directory].
    #[arg(
        long,
        env = "NATTER_CLUSTER_POSTGRES",
        value_name = "URL",
        hide_env_values = true
    )]
    pub cluster_postgres: Option<Secret>,
    /// PEM file of the certificate authority that signed PostgreSQL's certificate, for
    /// a cluster_postgres URL with sslmode=require [default: the system's roots].
    #[arg(long, env = "NATTER_CLUSTER_POSTGRES_CA", value_name = "FILE")]
    pub cluster_postgres_ca: Option<PathBuf>,
    /// Redis URL (e.g. redis://:PASSWORD@bus:6379/) the nodes of a cluster exchange
    /// messages, presence and heartbeats over; goes with --cluster-postgres
    /// [default: none].
    #[arg(
        long,
        env = "NATTER_CLUSTER_REDIS",
        value_name = "URL",
        hide_env_values = true
    )]
    pub cluster_redis: Option<Secret>,
    /// This node's name in the cluster: letters, digits, '-' and '_', at most 32
    /// [default: generated on first start and kept in DATA_DIR/node-id].
    #[arg(long, env = "NATTER_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
}

/// A secret setting (the operator password): never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl Options {
    /// These options with every option set in `over` replacing ours.
    pub(super) fn overlaid_by(self, over: &Options) -> Result<Options, ConfigError> {
        let invalid = |e: serde_json::Error| ConfigError::Invalid {
            option: "options",
            message: e.to_string(),
        };
        let mut base = serde_json::to_value(self).map_err(invalid)?;
        if let (Some(base), serde_json::Value::Object(top)) = (
            base.as_object_mut(),
            serde_json::to_value(over).map_err(invalid)?,
        ) {
            for (k, v) in top.into_iter().filter(|(_, v)| !v.is_null()) {
                base.insert(k, v);
            }
        }
        serde_json::from_value(base).map_err(invalid)
    }
}

pub(super) fn read_file(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}
