//! The full-screen terminal client (ratatui + crossterm), the default on a terminal.
//!
//! - [`model`]: buffers, the input line and what frames and keys do to them; no I/O.
//! - [`render`]: drawing the model (buffer list, messages, members, status, input).
//! - [`keys`]: terminal events applied to the model.
//! - [`config`]: `config.toml` (bell, timestamp format, nick colours, keys).
//! - [`store`]: input history per buffer, kept across restarts.
//! - [`app`]: the terminal and the loop between it and the server.
//!
//! `--plain` (scripts) and `--line` (the line editor of [`crate::interactive`]) stay
//! available.

pub mod app;
pub mod config;
pub mod keys;
pub mod link;
pub mod model;
pub mod render;
pub mod store;

pub use app::run;
pub use model::{Effect, Model, Status};

/// A status-line word for how the server was verified.
pub fn security_label(outcome: Option<&crate::TrustOutcome>) -> String {
    use crate::TrustOutcome;
    match outcome {
        None => "plaintext (no TLS)".to_string(),
        Some(TrustOutcome::CaCert) => "TLS (CA cert)".to_string(),
        Some(TrustOutcome::SystemRoots) => "TLS (verified)".to_string(),
        Some(TrustOutcome::Pinned { .. }) => "TLS (pinned)".to_string(),
        Some(TrustOutcome::NewlyPinned { .. }) => "TLS (newly pinned)".to_string(),
    }
}

/// Local time minus UTC in seconds, now (0 when it cannot be found out). Call it before
/// starting threads: the platform's answer is only trusted in a single-threaded process.
pub fn local_utc_offset() -> i64 {
    time::UtcOffset::current_local_offset().map_or(0, |o| i64::from(o.whole_seconds()))
}
