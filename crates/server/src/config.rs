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
use serde::Deserialize;

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

/// Command-line flags of `natter-server`; each also reads a `NATTER_*` variable.
#[derive(Debug, Default, Clone, Parser)]
#[command(
    name = "natter-server",
    version,
    about = "natter chat server",
    long_about = "natter chat server.\n\nSettings come from built-in defaults, then the TOML file given by --config, then NATTER_* environment variables, then these flags."
)]
pub struct Options {
    /// TOML config file (keys as the long flags, with '_' for '-').
    #[arg(long, env = "NATTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for chat clients [default: 0.0.0.0:9999].
    #[arg(long, env = "NATTER_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory for the database and other state [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Longest chat message in bytes [default: 4096].
    #[arg(long, env = "NATTER_MAX_MESSAGE_BYTES", value_name = "N")]
    pub max_message_bytes: Option<usize>,
    /// Frames queued per session before it counts as a slow consumer [default: 1024].
    #[arg(long, env = "NATTER_SESSION_QUEUE", value_name = "N")]
    pub session_queue: Option<usize>,
    /// Seconds a new connection has to log in [default: 10].
    #[arg(long, env = "NATTER_AUTH_TIMEOUT_SECS", value_name = "SECS")]
    pub auth_timeout_secs: Option<u64>,
    /// Frames a connection may send before logging in [default: 10].
    #[arg(long, env = "NATTER_MAX_PRELOGIN_FRAMES", value_name = "N")]
    pub max_prelogin_frames: Option<u32>,
    /// Password hashes computed at once; more logins wait [default: 2 x CPU cores].
    #[arg(long, env = "NATTER_MAX_HASHES_IN_FLIGHT", value_name = "N")]
    pub max_hashes_in_flight: Option<usize>,
    /// Seconds to let clients drain on shutdown before cutting them off [default: 5].
    #[arg(long, env = "NATTER_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

/// The TOML file's contents: the same options as [`Options`], all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    max_message_bytes: Option<usize>,
    session_queue: Option<usize>,
    auth_timeout_secs: Option<u64>,
    max_prelogin_frames: Option<u32>,
    max_hashes_in_flight: Option<usize>,
    shutdown_grace_secs: Option<u64>,
}

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the binary binds (the library takes an already bound listener).
    pub listen: SocketAddr,
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// Longest chat message text in bytes.
    pub max_message_bytes: usize,
    /// Depth of each session's outgoing queue.
    pub session_queue: usize,
    /// Time a connection has to log in.
    pub auth_timeout: Duration,
    /// Frames allowed before login.
    pub max_prelogin_frames: u32,
    /// Concurrent password hashes.
    pub max_hashes_in_flight: usize,
    /// Time granted to sessions to drain on shutdown.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults with state in `data_dir`; convenient for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            ..Config::default()
        }
    }

    /// Builds the configuration from flags/environment (already parsed by clap) and the
    /// config file they name, then validates it.
    pub fn load(opts: &Options) -> Result<Config, ConfigError> {
        let file = match &opts.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let listen_text = opts.listen.clone().or(file.listen);
        let listen = match listen_text {
            Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
                option: "listen",
                message: format!("'{text}' is not HOST:PORT with a numeric IP, e.g. 0.0.0.0:9999"),
            })?,
            None => d.listen,
        };
        let cfg = Config {
            listen,
            data_dir: opts
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or(d.data_dir),
            max_message_bytes: opts
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(d.max_message_bytes),
            session_queue: opts
                .session_queue
                .or(file.session_queue)
                .unwrap_or(d.session_queue),
            auth_timeout: opts
                .auth_timeout_secs
                .or(file.auth_timeout_secs)
                .map_or(d.auth_timeout, Duration::from_secs),
            max_prelogin_frames: opts
                .max_prelogin_frames
                .or(file.max_prelogin_frames)
                .unwrap_or(d.max_prelogin_frames),
            max_hashes_in_flight: opts
                .max_hashes_in_flight
                .or(file.max_hashes_in_flight)
                .unwrap_or(d.max_hashes_in_flight),
            shutdown_grace: opts
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .map_or(d.shutdown_grace, Duration::from_secs),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max_text = natter_proto::MAX_LINE / 2;
        range(
            "max_message_bytes",
            self.max_message_bytes as u64,
            1,
            max_text as u64,
        )?;
        range("session_queue", self.session_queue as u64, 8, 1 << 20)?;
        range("auth_timeout_secs", self.auth_timeout.as_secs(), 1, 3600)?;
        range(
            "max_prelogin_frames",
            u64::from(self.max_prelogin_frames),
            1,
            1000,
        )?;
        range(
            "max_hashes_in_flight",
            self.max_hashes_in_flight as u64,
            1,
            1024,
        )?;
        range("shutdown_grace_secs", self.shutdown_grace.as_secs(), 0, 600)?;
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
            max_message_bytes: 4096,
            session_queue: 1024,
            auth_timeout: Duration::from_secs(10),
            max_prelogin_frames: 10,
            max_hashes_in_flight: 2 * cores,
            shutdown_grace: Duration::from_secs(5),
        }
    }
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
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
