//! Command-line options of the `natter` binary.
//!
//! Kept in the library so that `--help` and option parsing are tested like everything else.
//! The password is deliberately not an option (command lines are visible to other users
//! through `ps`): it comes from [`PASSWORD_ENV`] or is asked for without echo.
//!
//! TLS is always on unless `--plaintext` is given; [`Args::trust_config`] turns the
//! verification options into a [`TrustConfig`] (see [`crate::trust`]).

use std::path::PathBuf;

use clap::Parser;
use clap::builder::FalseyValueParser;

use crate::trust::{self, TrustConfig};

/// Environment variable holding the password, for scripts and plain mode.
pub const PASSWORD_ENV: &str = "NATTER_PASSWORD";

/// Server address used when neither `--server` nor `NATTER_SERVER` is given.
pub const DEFAULT_SERVER: &str = "127.0.0.1:9999";

/// Text shown after the options in `--help`.
const AFTER_HELP: &str = "\
Password:
  Read from the NATTER_PASSWORD environment variable if set, otherwise asked for
  without echo. It is never a command-line option.

Chat commands (type them at the prompt, or feed them on stdin in plain mode):
  TEXT               send TEXT to the current room, or to the user you focus on
  /join ROOM         join ROOM (created if missing) and make it the current room
  /part [ROOM]       leave ROOM (default: the current room)
  /rooms             list the rooms with how many users are in each
  /who [ROOM]        list who is in ROOM (default: the current room)
  /history [N]       show N earlier messages of the current room (default 50, max 200)
  /history USER [N]  show N earlier messages of your private conversation with USER
  /msg USER TEXT     send TEXT privately to USER
  /msg USER          talk privately to USER until /msg public
  /msg public        go back to talking in the current room
  /list              show who is online
  /help              show the commands
  /exit, /quit       leave (Ctrl-D and Ctrl-C too)
  //TEXT             send TEXT starting with a single /
Everyone starts in the room #lobby. Room names are like user names, with an
optional leading # ('#Rust' and 'rust' are the same room). On joining a room you
get its latest messages; private messages sent while you were offline are
delivered when you log in, marked 'delivered late'.

Server verification (TLS, always on unless --plaintext):
  The server is trusted if its certificate chain verifies against the system's root
  certificates (or only against --ca-cert FILE) for the host name in --server.
  Otherwise natter pins the certificate on first use, like ssh: its SHA-256
  fingerprint is shown and, once accepted, stored as a 'HOST:PORT FINGERPRINT' line in
  the known-servers file. Interactive mode asks first; plain mode pins with a notice on
  stderr unless --strict-trust refuses unknown servers. Compare the fingerprint with
  the one the server prints at start ('TLS certificate SHA-256 fingerprint: ...').
  A server presenting a different certificate later is refused; if the change is
  legitimate, remove the line the message names and connect again.

Plain mode prints one line per event:
  #lobby <alice> hello   *alice -> bob* hi   [join] #lobby alice
  [leave] #lobby alice (quit)   [joined] #rust (2 members: alice, bob)
  [parted] #rust   [rooms] #lobby (5), #rust (2)   [who] #rust: alice, bob
  [history] #lobby <alice> earlier   [history] #lobby: no earlier messages
  *alice -> bob* hi (sent 2026-11-22 14:03 UTC, delivered late)
  [queued] bob is offline; your message will be delivered when they log in
  [system] text   [online] alice, bob   [error] message (code)   [bye] reason
After /join or /part it reads the next line only once the server answered, so a
line after /join goes to the new room.
At the end of input it sends quit, waits for the server's goodbye and exits 0;
it exits 1 when login fails or the connection ends any other way.

Examples:
  natter --user alice
  natter --server chat.example.org:9999 --ca-cert company-ca.pem --user alice
  NATTER_PASSWORD=secret natter --plain --user bot --register < lines.txt";

/// Terminal client for the natter chat server.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "natter",
    version,
    about = "Terminal client for the natter chat server",
    long_about = "Terminal client for the natter chat server.\n\n\
        On a terminal it runs full screen: a buffer per room and private conversation \
        (Alt+1..9, Alt+arrows or Ctrl+N/P to switch, /buffer NAME), unread counts and \
        mention marks, PageUp/PageDown or the mouse wheel to scroll, Tab to complete, \
        Up/Down for earlier lines, Alt+M for the member list. --line gives the line \
        editor instead, whose prompt shows where your lines go ([#lobby] > for a room, \
        [@bob] > when talking privately to bob), with incoming messages printed above it. \
        Plain mode (--plain, automatic when stdin or stdout is not a terminal) reads \
        lines from stdin and prints one line per event, for scripts.",
    after_help = AFTER_HELP
)]
pub struct Args {
    /// Server address to connect to.
    #[arg(long, env = "NATTER_SERVER", value_name = "HOST:PORT", default_value = DEFAULT_SERVER)]
    pub server: String,

    /// Account name: 1-32 ASCII letters, digits, '_' or '-'. Asked for in interactive mode
    /// when missing; required in plain mode.
    #[arg(long, env = "NATTER_USER", value_name = "NAME", value_parser = parse_user)]
    pub user: Option<String>,

    /// Create the account (instead of logging in to an existing one), then log in.
    #[arg(long)]
    pub register: bool,

    /// Plain line mode for scripts: read lines from stdin, print one line per event, no
    /// questions asked. Automatic when stdin or stdout is not a terminal.
    #[arg(long)]
    pub plain: bool,

    /// On a terminal, use the line editor (messages scroll above a prompt) instead of the
    /// full-screen interface.
    #[arg(long)]
    pub line: bool,

    /// Verify the server against this CA certificate (PEM) only, with the host name of
    /// --server, instead of the system roots and fingerprint pinning.
    #[arg(long, env = "NATTER_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Refuse a server that is neither verified by a CA nor pinned in the known-servers
    /// file, instead of pinning it on first use (plain mode) or asking (interactive mode).
    #[arg(long, env = "NATTER_STRICT_TRUST", value_parser = FalseyValueParser::new())]
    pub strict_trust: bool,

    /// File of pinned server fingerprints, one 'HOST:PORT FINGERPRINT' per line
    /// [default: $XDG_CONFIG_HOME/natter/known_servers, else ~/.config/natter/known_servers].
    #[arg(long, env = "NATTER_KNOWN_SERVERS", value_name = "FILE")]
    pub known_servers: Option<PathBuf>,

    /// INSECURE: connect over plain TCP without TLS, to a server started with --plaintext
    /// (local testing only). Your password and messages cross the network unencrypted.
    #[arg(long, env = "NATTER_PLAINTEXT", value_parser = FalseyValueParser::new())]
    pub plaintext: bool,
}

impl Args {
    /// How to verify the server, with the default known-servers file resolved.
    pub fn trust_config(&self) -> Result<TrustConfig, String> {
        let known_servers = match &self.known_servers {
            Some(path) => path.clone(),
            None => trust::default_known_servers().ok_or_else(|| {
                "cannot find your config directory for the known-servers file: set HOME or \
                 XDG_CONFIG_HOME, or pass --known-servers FILE"
                    .to_string()
            })?,
        };
        Ok(TrustConfig {
            known_servers,
            ca_cert: self.ca_cert.clone(),
            strict: self.strict_trust,
            system_roots: true,
        })
    }
}

/// Checks a user name with the protocol's rules, for a clear error at start-up.
pub fn parse_user(name: &str) -> Result<String, String> {
    natter_proto::validate_username(name)
        .map(|()| name.to_string())
        .map_err(|e| format!("invalid user name '{name}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn default_server_uses_the_protocol_default_port() {
        assert_eq!(
            DEFAULT_SERVER,
            format!("127.0.0.1:{}", natter_proto::DEFAULT_PORT)
        );
    }

    #[test]
    fn parses_all_options() {
        let a = Args::try_parse_from([
            "natter",
            "--server",
            "example.org:1234",
            "--user",
            "bob",
            "--register",
            "--plain",
        ])
        .expect("valid");
        assert_eq!(a.server, "example.org:1234");
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert!(a.register && a.plain);
        assert!(!a.plaintext && !a.strict_trust && a.ca_cert.is_none());
    }

    #[test]
    fn parses_the_trust_options() {
        let a = Args::try_parse_from([
            "natter",
            "--ca-cert",
            "/ca.pem",
            "--strict-trust",
            "--known-servers",
            "/tmp/k",
            "--plaintext",
        ])
        .expect("valid");
        assert!(a.strict_trust && a.plaintext);
        let trust = a.trust_config().expect("trust config");
        assert_eq!(trust.known_servers, PathBuf::from("/tmp/k"));
        assert_eq!(trust.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert!(trust.strict && trust.system_roots);
    }

    #[test]
    fn rejects_bad_user_names_and_password_options() {
        let e = Args::try_parse_from(["natter", "--user", "no spaces"]).expect_err("bad name");
        assert!(e.to_string().contains("invalid user name"), "{e}");
        assert!(Args::try_parse_from(["natter", "--password", "x"]).is_err());
    }

    #[test]
    fn help_mentions_the_password_variable_and_commands() {
        let help = Args::command().render_long_help().to_string();
        for needle in [
            "NATTER_PASSWORD",
            "NATTER_SERVER",
            "NATTER_USER",
            "/msg USER TEXT",
            "/join ROOM",
            "/part [ROOM]",
            "/rooms",
            "/who [ROOM]",
            "/history [N]",
            "/history USER [N]",
            "#lobby <alice> hello",
            "delivered late",
            "[queued]",
            "[#lobby] >",
            "--plain",
            "--register",
            "127.0.0.1:9999",
            "--ca-cert",
            "NATTER_CA_CERT",
            "--strict-trust",
            "NATTER_STRICT_TRUST",
            "--known-servers",
            "NATTER_KNOWN_SERVERS",
            "known_servers",
            "--plaintext",
            "NATTER_PLAINTEXT",
            "INSECURE",
            "fingerprint",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }
}
