//! Command-line options of the `natter` binary.
//!
//! Kept in the library so that `--help` and option parsing are tested like everything else.
//! The password is deliberately not an option (command lines are visible to other users
//! through `ps`): it comes from [`PASSWORD_ENV`] or is asked for without echo.

use clap::Parser;

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
  TEXT            send TEXT to the current chat: public, or the user you focus on
  /msg USER TEXT  send TEXT privately to USER
  /msg USER       talk privately to USER until /msg public
  /msg public     go back to the public chat
  /list           show who is online
  /help           show the commands
  /exit, /quit    leave (Ctrl-D and Ctrl-C too)
  //TEXT          send TEXT starting with a single /

Plain mode prints one line per event:
  <alice> hello   *alice -> bob* hi   [join] alice   [leave] alice (quit)
  [system] text   [online] alice, bob   [error] message (code)   [bye] reason
At the end of input it sends quit, waits for the server's goodbye and exits 0;
it exits 1 when login fails or the connection ends any other way.

Examples:
  natter --user alice
  NATTER_PASSWORD=secret natter --plain --user bot --register < lines.txt";

/// Terminal client for the natter chat server.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "natter",
    version,
    about = "Terminal client for the natter chat server",
    long_about = "Terminal client for the natter chat server.\n\n\
        Interactive mode (the default on a terminal) offers a line editor whose prompt shows \
        where your lines go ([public] > or [@bob] > ), with incoming messages printed above \
        it. Plain mode (--plain, automatic when stdin or stdout is not a terminal) reads \
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
            "--plain",
            "--register",
            "127.0.0.1:9999",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }
}
