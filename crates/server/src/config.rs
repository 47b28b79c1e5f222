//! Server configuration: defaults, a TOML file, environment variables and flags.
//!
//! Precedence, lowest first: built-in defaults, the TOML file given by `--config`
//! (`NATTER_CONFIG`), environment variables (`NATTER_*`), command-line flags. Every
//! option exists in all three forms; README.md lists them. The result is validated once
//! at start-up so a bad value stops the server with a clear message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::ratelimit::MessageLimits;
use crate::throttle::LoginLimits;

/// Largest allowed `max_message_bytes` (5252). Delivered text can grow to three times
/// its size (a control byte becomes U+FFFD, three bytes; `"` and `\\` gain an escape),
/// and every frame carrying it must fit in a line: the largest is a `history` frame
/// with the worst-case echoed id (see [`crate::history::WORST_OVERHEAD`]).
pub const MAX_MESSAGE_BYTES: usize = (natter_proto::MAX_LINE - crate::history::WORST_OVERHEAD) / 3;

/// Most messages in one history answer.
pub const MAX_HISTORY: u32 = 200;

/// Errors in the configuration; each names the option and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// An option has an unusable value.
    #[error("invalid value for {option}: {message}")]
    Invalid {
        /// Option name as written in the TOML file.
        option: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
}

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
    /// Password hashes computed at once; more logins wait [default: 2 x CPU cores].
    #[arg(long, env = "NATTER_MAX_HASHES_IN_FLIGHT", value_name = "N")]
    pub max_hashes_in_flight: Option<usize>,
    /// Seconds to let clients drain on shutdown before cutting them off [default: 5].
    #[arg(long, env = "NATTER_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Address of the web console, browser chat and /metrics, or "off"; HTTPS unless on
    /// loopback [default: 127.0.0.1:8000].
    #[arg(long, env = "NATTER_WEB_LISTEN", value_name = "HOST:PORT|off")]
    pub web_listen: Option<String>,
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
    fn overlaid_by(self, over: &Options) -> Result<Options, ConfigError> {
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

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the binary binds (the library takes an already bound listener).
    pub listen: SocketAddr,
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// Operator-provided certificate chain and key; `None` means self-signed.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Serve plaintext TCP (insecure, for local testing).
    pub plaintext: bool,
    /// Longest chat message text in bytes.
    pub max_message_bytes: usize,
    /// Depth of each session's outgoing queue.
    pub session_queue: usize,
    /// Connections at once, in total.
    pub max_connections: usize,
    /// Connections at once per source IP.
    pub max_connections_per_ip: usize,
    /// Time a connection has to finish TLS and log in.
    pub auth_timeout: Duration,
    /// Frames allowed before login.
    pub max_prelogin_frames: u32,
    /// Silence before the server pings a peer.
    pub ping_interval: Duration,
    /// Silence after a ping before the peer is dropped.
    pub ping_timeout: Duration,
    /// Chat message limits per account.
    pub messages: MessageLimits,
    /// Join and part limits per account (the flood settings are the messages').
    pub room_ops: MessageLimits,
    /// Failed-login delays.
    pub logins: LoginLimits,
    /// Messages sent on join.
    pub history_on_join: u32,
    /// Age after which history and logs are pruned; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Rooms per session.
    pub max_rooms_per_session: usize,
    /// Members from which a room's presence is summarised.
    pub large_room: usize,
    /// Concurrent password hashes.
    pub max_hashes_in_flight: usize,
    /// Time granted to sessions to drain on shutdown.
    pub shutdown_grace: Duration,
    /// Address the binary binds for the web interface; `None` disables it.
    pub web_listen: Option<SocketAddr>,
    /// Operator password from the configuration; `None` means generated and stored hashed.
    pub admin_password: Option<Secret>,
    /// HTTPS for the web interface even on loopback (beyond loopback it always is).
    pub web_tls: bool,
    /// Web connections at once per source IP.
    pub web_max_per_ip: usize,
    /// Time a web connection has to send a whole request head (TLS handshake included).
    pub web_header_timeout: Duration,
    /// Silence allowed on a kept-alive web connection between requests.
    pub web_idle_timeout: Duration,
    /// Names accepted in `Host` (lowercase, IPv6 without brackets); empty means the
    /// defaults: the web listener's address, `localhost` and loopback addresses.
    pub web_host: Vec<String>,
    /// Token `/metrics` requires as `Authorization: Bearer`; `None` leaves it open.
    pub metrics_token: Option<Secret>,
}

impl Config {
    /// Defaults with state in `data_dir`; convenient for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            ..Config::default()
        }
    }

    /// Builds the configuration from flags/environment (already parsed by clap) over the
    /// config file they name, then validates it.
    pub fn load(cli: &Options) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Options::default(),
        };
        let o = file.overlaid_by(cli)?;
        let d = Config::default();
        let listen = match o.listen {
            Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                option: "listen",
                message: format!("'{text}' is not HOST:PORT with a numeric IP, e.g. 0.0.0.0:9999"),
            })?,
            None => d.listen,
        };
        let tls_files = match (o.tls_cert, o.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    option: "tls_cert",
                    message: "tls_cert and tls_key must be given together".into(),
                });
            }
        };
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        let max_connections_per_ip = o.max_connections_per_ip.unwrap_or(d.max_connections_per_ip);
        let cfg = Config {
            listen,
            data_dir: o.data_dir.unwrap_or(d.data_dir),
            tls_files,
            plaintext: o.plaintext.unwrap_or(d.plaintext),
            max_message_bytes: o.max_message_bytes.unwrap_or(d.max_message_bytes),
            session_queue: o.session_queue.unwrap_or(d.session_queue),
            max_connections: o.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip,
            auth_timeout: secs(o.auth_timeout_secs, d.auth_timeout),
            max_prelogin_frames: o.max_prelogin_frames.unwrap_or(d.max_prelogin_frames),
            ping_interval: secs(o.ping_interval_secs, d.ping_interval),
            ping_timeout: secs(o.ping_timeout_secs, d.ping_timeout),
            messages: MessageLimits {
                rate: o.message_rate.unwrap_or(d.messages.rate),
                burst: o.message_burst.map_or(d.messages.burst, f64::from),
                strikes_to_mute: o.flood_strikes.unwrap_or(d.messages.strikes_to_mute),
                mute_base: secs(o.mute_secs, d.messages.mute_base),
                max_mutes: o.max_mutes.unwrap_or(d.messages.max_mutes),
            },
            room_ops: MessageLimits {
                rate: o.room_op_rate.unwrap_or(d.room_ops.rate),
                burst: o.room_op_burst.map_or(d.room_ops.burst, f64::from),
                strikes_to_mute: o.flood_strikes.unwrap_or(d.room_ops.strikes_to_mute),
                mute_base: secs(o.mute_secs, d.room_ops.mute_base),
                max_mutes: o.max_mutes.unwrap_or(d.room_ops.max_mutes),
            },
            logins: LoginLimits {
                base_delay: o
                    .login_delay_ms
                    .map_or(d.logins.base_delay, Duration::from_millis),
                max_delay: secs(o.login_max_delay_secs, d.logins.max_delay),
                free_per_ip: o.login_free_per_ip.unwrap_or(d.logins.free_per_ip),
                free_addrs_per_account: o
                    .login_free_addrs_per_account
                    .unwrap_or(d.logins.free_addrs_per_account),
                window: d.logins.window,
            },
            history_on_join: o.history_on_join.unwrap_or(d.history_on_join),
            retention: match o.retention_days {
                None => d.retention,
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            max_rooms_per_session: o.max_rooms_per_session.unwrap_or(d.max_rooms_per_session),
            large_room: o.large_room.unwrap_or(d.large_room),
            max_hashes_in_flight: o.max_hashes_in_flight.unwrap_or(d.max_hashes_in_flight),
            shutdown_grace: secs(o.shutdown_grace_secs, d.shutdown_grace),
            web_listen: match o.web_listen.as_deref().map(str::trim) {
                None => d.web_listen,
                Some("off") => None,
                Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                    option: "web_listen",
                    message: format!(
                        "'{text}' is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:8000) or \"off\""
                    ),
                })?),
            },
            admin_password: o.admin_password,
            web_tls: o.web_tls.unwrap_or(d.web_tls),
            // Unless set, one address may hold as many web connections as chat ones.
            web_max_per_ip: o.web_max_per_ip.unwrap_or(max_connections_per_ip),
            web_header_timeout: secs(o.web_header_timeout_secs, d.web_header_timeout),
            web_idle_timeout: secs(o.web_idle_timeout_secs, d.web_idle_timeout),
            web_host: match o.web_host {
                None => d.web_host,
                Some(names) => names
                    .iter()
                    .map(|n| n.trim())
                    .filter(|n| !n.is_empty())
                    .map(web_host_name)
                    .collect::<Result<_, _>>()?,
            },
            metrics_token: o.metrics_token,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            1,
            MAX_MESSAGE_BYTES as u64,
        )?;
        range("session_queue", self.session_queue as u64, 8, 1 << 20)?;
        range(
            "max_connections",
            self.max_connections as u64,
            1,
            10_000_000,
        )?;
        range(
            "max_connections_per_ip",
            self.max_connections_per_ip as u64,
            1,
            10_000_000,
        )?;
        range("auth_timeout_secs", self.auth_timeout.as_secs(), 1, 3600)?;
        range(
            "max_prelogin_frames",
            u64::from(self.max_prelogin_frames),
            1,
            1000,
        )?;
        range(
            "ping_interval_secs",
            self.ping_interval.as_secs(),
            1,
            86_400,
        )?;
        range("ping_timeout_secs", self.ping_timeout.as_secs(), 1, 86_400)?;
        if !(self.messages.rate.is_finite() && self.messages.rate > 0.0) {
            return Err(ConfigError::Invalid {
                option: "message_rate",
                message: format!("{} must be a positive number", self.messages.rate),
            });
        }
        range("message_burst", self.messages.burst as u64, 1, 1_000_000)?;
        if !(self.room_ops.rate.is_finite() && self.room_ops.rate > 0.0) {
            return Err(ConfigError::Invalid {
                option: "room_op_rate",
                message: format!("{} must be a positive number", self.room_ops.rate),
            });
        }
        range("room_op_burst", self.room_ops.burst as u64, 1, 1_000_000)?;
        range(
            "login_free_addrs_per_account",
            u64::from(self.logins.free_addrs_per_account),
            1,
            1_000_000,
        )?;
        range(
            "flood_strikes",
            u64::from(self.messages.strikes_to_mute),
            1,
            1_000_000,
        )?;
        range("mute_secs", self.messages.mute_base.as_secs(), 1, 86_400)?;
        range("max_mutes", u64::from(self.messages.max_mutes), 0, 100)?;
        range(
            "login_max_delay_secs",
            self.logins.max_delay.as_secs(),
            0,
            3600,
        )?;
        range(
            "login_delay_ms",
            self.logins.base_delay.as_millis() as u64,
            0,
            60_000,
        )?;
        range(
            "max_hashes_in_flight",
            self.max_hashes_in_flight as u64,
            1,
            1024,
        )?;
        range(
            "history_on_join",
            u64::from(self.history_on_join),
            0,
            u64::from(MAX_HISTORY),
        )?;
        range(
            "max_rooms_per_session",
            self.max_rooms_per_session as u64,
            1,
            10_000,
        )?;
        range("large_room", self.large_room as u64, 2, 1_000_000)?;
        if let Some(r) = self.retention {
            range("retention_days", r.as_secs() / 86_400, 1, 100_000)?;
        }
        range("shutdown_grace_secs", self.shutdown_grace.as_secs(), 0, 600)?;
        range("web_max_per_ip", self.web_max_per_ip as u64, 1, 10_000_000)?;
        range(
            "web_header_timeout_secs",
            self.web_header_timeout.as_secs(),
            1,
            3600,
        )?;
        range(
            "web_idle_timeout_secs",
            self.web_idle_timeout.as_secs(),
            1,
            86_400,
        )?;
        for name in &self.web_host {
            if web_host_name(name).ok().as_deref() != Some(name.as_str()) {
                return Err(ConfigError::Invalid {
                    option: "web_host",
                    message: format!("'{name}' is not a lowercase host name or IP address"),
                });
            }
        }
        if let Some(t) = &self.metrics_token
            && !(16..=256).contains(&t.0.len())
        {
            return Err(ConfigError::Invalid {
                option: "metrics_token",
                message: "must be 16 to 256 characters".into(),
            });
        }
        if let Some(t) = &self.metrics_token
            && !t.0.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::Invalid {
                option: "metrics_token",
                message: "must be printable ASCII without spaces (it travels in a header)".into(),
            });
        }
        if let Some(p) = &self.admin_password
            && p.0.chars().count() < 12
        {
            return Err(ConfigError::Invalid {
                option: "admin_password",
                message: "must be at least 12 characters".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                option: "data_dir",
                message: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], natter_proto::DEFAULT_PORT)),
            data_dir: PathBuf::from("natter-data"),
            tls_files: None,
            plaintext: false,
            max_message_bytes: 4096,
            session_queue: 1024,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            auth_timeout: Duration::from_secs(10),
            max_prelogin_frames: 10,
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(30),
            messages: MessageLimits {
                rate: 5.0,
                burst: 10.0,
                strikes_to_mute: 10,
                mute_base: Duration::from_secs(30),
                max_mutes: 3,
            },
            room_ops: MessageLimits {
                rate: 1.0,
                burst: 20.0,
                strikes_to_mute: 10,
                mute_base: Duration::from_secs(30),
                max_mutes: 3,
            },
            logins: LoginLimits {
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(30),
                free_per_ip: 5,
                free_addrs_per_account: 3,
                window: Duration::from_secs(15 * 60),
            },
            history_on_join: 50,
            retention: None,
            max_rooms_per_session: 64,
            large_room: 200,
            max_hashes_in_flight: 2 * cores,
            shutdown_grace: Duration::from_secs(5),
            web_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
            admin_password: None,
            web_tls: false,
            web_max_per_ip: 64,
            web_header_timeout: Duration::from_secs(10),
            web_idle_timeout: Duration::from_secs(60),
            web_host: Vec::new(),
            metrics_token: None,
        }
    }
}

/// `name` as the web listener compares it with `Host`: a DNS name (letters, digits, `-`,
/// `.`) in lowercase without a trailing dot, or an IP address (IPv6 without brackets).
/// A port is refused: `Host` is matched by name whatever the port.
pub fn web_host_name(name: &str) -> Result<String, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        option: "web_host",
        message: format!("'{name}' {why}"),
    };
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if lower.contains(':') {
        return Err(invalid(
            "has a port; list the name alone (any port matches)",
        ));
    }
    if lower.is_empty() || lower.len() > 253 || !lower.split('.').all(label_ok) {
        return Err(invalid("is not a host name or IP address"));
    }
    Ok(lower)
}

fn range(option: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            option,
            message: format!("{value} is outside {min}..={max}"),
        })
    }
}

fn read_file(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_all_interfaces() {
        let c = Config::load(&Options::default()).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(c.data_dir, PathBuf::from("natter-data"));
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("natter.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\ndata_dir = \"/srv/natter\"\nsession_queue = 64\n",
        )
        .expect("write");
        let opts = Options {
            config: Some(path),
            listen: Some("127.0.0.1:7001".into()),
            ..Options::default()
        };
        let c = Config::load(&opts).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(c.data_dir, PathBuf::from("/srv/natter"));
        assert_eq!(c.session_queue, 64);
    }

    #[test]
    fn bad_values_are_refused_with_the_option_name() {
        let opts = Options {
            listen: Some("localhost".into()),
            ..Options::default()
        };
        let e = Config::load(&opts).expect_err("bad listen").to_string();
        assert!(e.contains("listen") && e.contains("localhost"), "{e}");
        let opts = Options {
            session_queue: Some(0),
            ..Options::default()
        };
        let e = Config::load(&opts).expect_err("bad queue").to_string();
        assert!(e.contains("session_queue"), "{e}");
    }

    #[test]
    fn web_options() {
        let c = Config::load(&Options::default()).expect("defaults");
        assert_eq!(
            c.web_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:8000")
        );
        let opts = Options {
            web_listen: Some("off".into()),
            admin_password: Some(Secret("a long enough secret".into())),
            ..Options::default()
        };
        let c = Config::load(&opts).expect("valid");
        assert_eq!(c.web_listen, None);
        assert!(
            !format!("{c:?}").contains("long enough"),
            "Debug hides the password"
        );
        let opts = Options {
            web_listen: Some("localhost:80".into()),
            ..Options::default()
        };
        let e = Config::load(&opts).expect_err("bad address").to_string();
        assert!(e.contains("web_listen") && e.contains("off"), "{e}");
        let opts = Options {
            admin_password: Some(Secret("short".into())),
            ..Options::default()
        };
        let e = Config::load(&opts).expect_err("short password").to_string();
        assert!(
            e.contains("admin_password") && !e.contains("short\""),
            "{e}"
        );
    }

    #[test]
    fn web_listener_limits_and_names() {
        let c = Config::load(&Options::default()).expect("defaults");
        assert_eq!(c.web_max_per_ip, 64);
        assert_eq!(c.web_header_timeout, Duration::from_secs(10));
        assert_eq!(c.web_idle_timeout, Duration::from_secs(60));
        assert!(c.web_host.is_empty() && c.metrics_token.is_none());
        let o = Options {
            max_connections_per_ip: Some(5),
            ..Options::default()
        };
        assert_eq!(
            Config::load(&o).expect("valid").web_max_per_ip,
            5,
            "follows the chat cap unless set"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("natter.toml");
        std::fs::write(
            &path,
            "web_max_per_ip = 8\nweb_header_timeout_secs = 3\nweb_idle_timeout_secs = 20\n\
             web_host = [\"Chat.Example.\", \"[2001:db8::1]\", \"192.0.2.7\"]\n\
             metrics_token = \"0123456789abcdef-token\"\n",
        )
        .expect("write");
        let o = Options {
            config: Some(path),
            ..Options::default()
        };
        let c = Config::load(&o).expect("valid");
        assert_eq!(c.web_max_per_ip, 8);
        assert_eq!(c.web_header_timeout, Duration::from_secs(3));
        assert_eq!(c.web_idle_timeout, Duration::from_secs(20));
        assert_eq!(c.web_host, ["chat.example", "2001:db8::1", "192.0.2.7"]);
        assert!(!format!("{c:?}").contains("0123456789"), "Debug hides it");

        let o = Options::try_parse_from([
            "natter-server",
            "--web-host",
            "a.example,b.example",
            "--web-idle-timeout-secs",
            "5",
        ])
        .expect("parses");
        let c = Config::load(&o).expect("valid");
        assert_eq!(c.web_host, ["a.example", "b.example"]);
        assert_eq!(c.web_idle_timeout, Duration::from_secs(5));

        for (o, option) in [
            (
                Options {
                    web_host: Some(vec!["chat.example:8000".into()]),
                    ..Options::default()
                },
                "web_host",
            ),
            (
                Options {
                    web_host: Some(vec!["evil/example".into()]),
                    ..Options::default()
                },
                "web_host",
            ),
            (
                Options {
                    web_header_timeout_secs: Some(0),
                    ..Options::default()
                },
                "web_header_timeout_secs",
            ),
            (
                Options {
                    web_idle_timeout_secs: Some(0),
                    ..Options::default()
                },
                "web_idle_timeout_secs",
            ),
            (
                Options {
                    web_max_per_ip: Some(0),
                    ..Options::default()
                },
                "web_max_per_ip",
            ),
            (
                Options {
                    metrics_token: Some(Secret("short".into())),
                    ..Options::default()
                },
                "metrics_token",
            ),
            (
                Options {
                    metrics_token: Some(Secret("a token with spaces in it".into())),
                    ..Options::default()
                },
                "metrics_token",
            ),
        ] {
            let e = Config::load(&o).expect_err(option).to_string();
            assert!(e.contains(option), "{e}");
        }
        let cmd = <Options as clap::CommandFactory>::command();
        for (id, env) in [
            ("web_max_per_ip", "NATTER_WEB_MAX_PER_IP"),
            ("web_header_timeout_secs", "NATTER_WEB_HEADER_TIMEOUT_SECS"),
            ("web_idle_timeout_secs", "NATTER_WEB_IDLE_TIMEOUT_SECS"),
            ("web_host", "NATTER_WEB_HOST"),
            ("metrics_token", "NATTER_METRICS_TOKEN"),
        ] {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .expect("declared");
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env));
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("natter.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:7000\"\n").expect("write");
        let opts = Options {
            config: Some(path),
            ..Options::default()
        };
        let e = Config::load(&opts).expect_err("typo").to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    /// Every frame the server builds, at its largest: the longest names, the id that
    /// grows most when escaped, the largest numbers and lists, and the longest message
    /// made of characters that grow most when delivered.
    #[test]
    fn every_frame_the_server_builds_fits_in_one_line_in_the_worst_case() {
        use natter_proto::{
            ErrorCode, FrameId, HistoryEntry, MAX_ID_LEN, MAX_LINE, MAX_NAMES, MAX_ROOMS,
            PresenceEvent, RoomInfo, ServerFrame, encode, neutralize,
        };
        let name = |c: char| c.to_string().repeat(natter_proto::MAX_USERNAME_LEN);
        let id = || Some(FrameId::Str("\u{1}".repeat(MAX_ID_LEN)));
        let names = |n: usize| vec![name('n'); n];
        // DEL becomes U+FFFD (three bytes); '"' and '\\' become two.
        let text = neutralize(&"\u{7f}".repeat(MAX_MESSAGE_BYTES)).into_owned();
        let quote = format!("{}...", "\u{1}".repeat(natter_proto::codec::MAX_QUOTE));
        let frames = [
            ServerFrame::Public {
                msg_id: u64::MAX,
                room: name('r'),
                from: name('f'),
                text: text.clone(),
                ts: u64::MAX,
            },
            ServerFrame::Private {
                msg_id: u64::MAX,
                from: name('f'),
                to: name('t'),
                text: text.clone(),
                ts: u64::MAX,
                late: true,
            },
            ServerFrame::System {
                text: format!("[notice] {text}"),
            },
            ServerFrame::History {
                id: id(),
                room: None,
                with: Some(name('w')),
                messages: vec![HistoryEntry {
                    msg_id: u64::MAX,
                    from: name('f'),
                    to: Some(name('t')),
                    text: text.clone(),
                    ts: u64::MAX,
                }],
                last: false,
            },
            ServerFrame::Joined {
                id: id(),
                room: name('r'),
                members: names(MAX_NAMES),
                more: u32::MAX,
            },
            ServerFrame::Who {
                id: id(),
                room: name('r'),
                users: names(MAX_NAMES),
                more: u32::MAX,
            },
            ServerFrame::List {
                id: id(),
                users: names(MAX_NAMES),
                more: u32::MAX,
            },
            ServerFrame::Rooms {
                id: id(),
                rooms: vec![
                    RoomInfo {
                        name: name('r'),
                        members: u32::MAX,
                    };
                    MAX_ROOMS
                ],
                more: u32::MAX,
            },
            ServerFrame::PresenceSummary {
                room: name('r'),
                members: u32::MAX,
                joined: names(50),
                joined_more: u32::MAX,
                left: names(50),
                left_more: u32::MAX,
            },
            ServerFrame::Presence {
                room: name('r'),
                user: name('u'),
                event: PresenceEvent::Leave,
                reason: Some(format!("banned by an operator: {quote}")),
            },
            ServerFrame::Queued {
                id: id(),
                msg_id: u64::MAX,
                to: name('t'),
            },
            ServerFrame::Error {
                id: id(),
                code: ErrorCode::TooManyConnections,
                message: format!("not a valid frame: {quote} and some explanation"),
                retry_after_ms: Some(u64::MAX),
            },
        ];
        for f in &frames {
            let line = encode(f).len() - 1;
            assert!(line <= MAX_LINE, "{line} bytes: {:.200}", format!("{f:?}"));
        }
        let too_big = Options {
            max_message_bytes: Some(MAX_MESSAGE_BYTES + 1),
            ..Options::default()
        };
        assert!(Config::load(&too_big).is_err());
    }

    #[test]
    fn plaintext_flag_and_file_key() {
        let o = Options::try_parse_from(["natter-server", "--plaintext"]).expect("parses");
        assert!(Config::load(&o).expect("valid").plaintext);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("natter.toml");
        std::fs::write(&path, "plaintext = true\nmessage_rate = 2.5\n").expect("write");
        let o = Options {
            config: Some(path),
            ..Options::default()
        };
        let c = Config::load(&o).expect("valid");
        assert!(c.plaintext);
        assert_eq!(c.messages.rate, 2.5);
        let o = Options {
            tls_cert: Some("c.pem".into()),
            ..Options::default()
        };
        assert!(Config::load(&o).is_err(), "cert without key is refused");
    }

    #[test]
    fn env_is_read_by_the_flag_parser() {
        // clap reads NATTER_* through `env = ...`; parse an explicit environment-free
        // argument list to show flags alone work, and check the env names are declared.
        let o =
            Options::try_parse_from(["natter-server", "--listen", "127.0.0.1:1"]).expect("parses");
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:1"));
        let cmd = <Options as clap::CommandFactory>::command();
        let listen = cmd
            .get_arguments()
            .find(|a| a.get_id() == "listen")
            .expect("listen arg");
        assert_eq!(
            listen.get_env().and_then(|e| e.to_str()),
            Some("NATTER_LISTEN")
        );
    }
}
