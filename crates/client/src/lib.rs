//! The natter client library: connection, command parsing, chat state and the two front
//! ends (plain line mode and the interactive line editor).
//!
//! The terminal UI (`natter` binary) is a thin layer over this crate; tests drive the
//! library directly.
//!
//! - [`connection`]: a framed connection to a server (TLS or, on request, plain TCP),
//!   login.
//! - [`trust`]: verifying the server: `--ca-cert`, the system roots, or pinning its
//!   certificate's fingerprint on first use in the known-servers file.
//! - [`command`]: one input line → [`Command`].
//! - [`state`]: [`ChatState`] (who we are, the rooms we are in, the current room or focus
//!   target, the prompt, history paging cursors) turns commands and server frames into
//!   actions.
//! - [`format`]: server frames → one display line each (the plain-mode output format).
//! - [`input`]: bounded, cancel-safe reading of input lines.
//! - [`prompt`]: asking the user (questions, passwords) behind the `Prompter` trait.
//! - [`login`]: the login flow with the offer to create a missing account.
//! - [`session`]: the chat loop shared by both front ends (it holds the next prompt until
//!   `/join` and `/part` are answered).
//! - [`plain`] and [`interactive`]: the front ends.
//! - [`cli`]: the binary's command-line options.

pub mod cli;
pub mod command;
pub mod connection;
pub mod format;
pub mod input;
pub mod interactive;
pub mod login;
pub mod plain;
pub mod prompt;
pub mod reconnect;
pub mod session;
pub mod state;
pub mod trust;
pub mod tui;

pub use command::{Command, HistoryOf, ParseError};
pub use connection::{Authenticated, ClientError, Connection};
pub use login::{LoginError, Prompter};
pub use session::{RunError, SessionOptions};
pub use state::{Action, ChatState, Reaction};
pub use trust::{TrustConfig, TrustError, TrustOutcome};
