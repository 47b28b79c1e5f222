//! Server configuration: defaults, a TOML file, environment variables and flags.
//!
//! Precedence, lowest first: built-in defaults, the TOML file given by `--config`
//! (`NATTER_CONFIG`), environment variables (`NATTER_*`), command-line flags. Every
//! option exists in all three forms; README.md lists them. The result is validated once
//! at start-up so a bad value stops the server with a clear message.

mod options;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use options::read_file;
pub use options::{Options, Secret};

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
    /// Address the binary binds for the IRC gateway; `None` disables it.
    pub irc_listen: Option<SocketAddr>,
    /// TLS on the IRC gateway: forced on or off, or `None` for TLS except on loopback.
    pub irc_tls: Option<bool>,
    /// The IRC gateway's connection password (PASS), if any.
    pub irc_password: Option<Secret>,
    /// The server's name on IRC (prefix of its replies).
    pub irc_server_name: String,
    /// Conformance-test guests on the IRC gateway (see the option's help); loopback only.
    pub irc_conformance_guests: bool,
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
    /// The engines a cluster node shares with the others; `None` for one node alone.
    pub cluster: Option<ClusterEngines>,
    /// This node's name; `None` until the data directory's (or a new) one is used.
    pub node_id: Option<String>,
}

/// Where the nodes of a cluster meet.
#[derive(Debug, Clone)]
pub struct ClusterEngines {
    /// PostgreSQL URL: accounts, history, the offline queue, moderation.
    pub postgres: Secret,
    /// The CA that signed PostgreSQL's certificate (`sslmode=require`); `None` trusts
    /// the system's roots.
    pub postgres_ca: Option<PathBuf>,
    /// Redis URL: cross-node fan-out, presence and heartbeats.
    pub redis: Secret,
}

/// Checks a node id: 1 to 32 of letters, digits, `-` and `_`.
pub fn valid_node_id(id: &str) -> Result<(), ConfigError> {
    if !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            option: "node_id",
            message: format!("'{id}' is not 1 to 32 letters, digits, '-' or '_'"),
        })
    }
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
            irc_listen: match o.irc_listen.as_deref().map(str::trim) {
                None => d.irc_listen,
                Some("off") => None,
                Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                    option: "irc_listen",
                    message: format!(
                        "'{text}' is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:6667) or \"off\""
                    ),
                })?),
            },
            irc_tls: match o.irc_tls.as_deref().map(str::trim) {
                None | Some("auto") => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        option: "irc_tls",
                        message: format!("'{other}' is not auto, on or off"),
                    });
                }
            },
            irc_password: o.irc_password.clone().filter(|p| !p.0.is_empty()),
            irc_server_name: o.irc_server_name.clone().unwrap_or(d.irc_server_name),
            irc_conformance_guests: o.irc_conformance_guests.unwrap_or(false),
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
            cluster: match (o.cluster_postgres, o.cluster_redis) {
                (Some(postgres), Some(redis)) => Some(ClusterEngines {
                    postgres,
                    redis,
                    postgres_ca: o.cluster_postgres_ca,
                }),
                (None, None) => None,
                (pg, _) => {
                    return Err(ConfigError::Invalid {
                        option: if pg.is_some() {
                            "cluster_redis"
                        } else {
                            "cluster_postgres"
                        },
                        message: "a cluster node needs both cluster_postgres and cluster_redis"
                            .into(),
                    });
                }
            },
            node_id: o.node_id,
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
        if self.irc_tls == Some(true) && self.plaintext {
            return Err(ConfigError::Invalid {
                option: "irc_tls",
                message: "\"on\" needs a certificate, and plaintext mode has none".into(),
            });
        }
        // A name like a host name: it is the source of every server line.
        let name = &self.irc_server_name;
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(ConfigError::Invalid {
                option: "irc_server_name",
                message: format!(
                    "'{name}' must be 1-63 letters, digits, '.' or '-' (like a host name)"
                ),
            });
        }
        if self.irc_conformance_guests && !self.irc_listen.is_some_and(|a| a.ip().is_loopback()) {
            return Err(ConfigError::Invalid {
                option: "irc_conformance_guests",
                message: "guests without passwords are for conformance tests only: they need \
                          irc_listen on a loopback address"
                    .into(),
            });
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
        if let Some(id) = &self.node_id {
            valid_node_id(id)?;
        }
        if let Some(c) = &self.cluster {
            for (option, url, schemes) in [
                (
                    "cluster_postgres",
                    &c.postgres.0,
                    &["postgres://", "postgresql://"][..],
                ),
                // No TLS to Redis yet (docs/DEPLOYMENT.md): keep it on a private network.
                ("cluster_redis", &c.redis.0, &["redis://"][..]),
            ] {
                if !schemes.iter().any(|s| url.starts_with(s)) {
                    return Err(ConfigError::Invalid {
                        option,
                        message: format!("must be a URL starting with {}", schemes.join(" or ")),
                    });
                }
            }
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
            max_hashes_in_flight: cores,
            shutdown_grace: Duration::from_secs(5),
            web_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
            irc_listen: Some(SocketAddr::from(([0, 0, 0, 0], 6697))),
            irc_tls: None,
            irc_password: None,
            irc_server_name: "natter".into(),
            irc_conformance_guests: false,
            admin_password: None,
            web_tls: false,
            web_max_per_ip: 64,
            web_header_timeout: Duration::from_secs(10),
            web_idle_timeout: Duration::from_secs(60),
            web_host: Vec::new(),
            metrics_token: None,
            cluster: None,
            node_id: None,
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

#[cfg(test)]
mod tests;
