//! `natter`: the terminal client. Parses options, gets the password, connects (TLS with the
//! server verified by `natter_client::trust`, or plain TCP with `--plaintext`), logs in and
//! hands over to the plain, line-editor or full-screen front end in `natter_client`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use natter_client::cli::{Args, PASSWORD_ENV, parse_user};
use natter_client::login::{self, LoginError, Prompter, Reconnect, TerminalPrompter};
use natter_client::reconnect::{self, Credentials, Reconnector};
use natter_client::trust::PLAINTEXT_WARNING;
use natter_client::{
    ClientError, Connection, SessionOptions, TrustConfig, format, interactive, plain, tui,
};
use natter_proto::{PROTOCOL_VERSION, ServerFrame};

fn main() {
    // Before any thread starts: the local offset is only read in a single-threaded process.
    let utc_offset = tui::local_utc_offset();
    let args = args_with_config();
    let code = match run(args, utc_offset) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("natter: {e:#}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    // Exit at once: a blocked stdin read or editor thread must not keep the process alive.
    std::process::exit(code);
}

/// The options, with the config file's `server` and `user` (docs: README, "The
/// full-screen client") where neither the command line nor the environment says.
fn args_with_config() -> Args {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some(dir) = tui::store::config_dir() else {
        return args;
    };
    // A bad file is reported by the full-screen client; here it just gives no defaults.
    let (config, _) = tui::config::Config::load(&dir.join(tui::config::FILE));
    if matches.value_source("server") == Some(ValueSource::DefaultValue)
        && let Some(server) = config.server
    {
        args.server = server;
    }
    if args.user.is_none() {
        args.user = config.user.and_then(|u| parse_user(&u).ok());
    }
    args
}

/// Runs the client and returns the exit status.
fn run(args: Args, utc_offset: i64) -> anyhow::Result<i32> {
    // The line editor needs a terminal on both sides.
    let plain = args.plain || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    let trust = if args.plaintext {
        eprintln!("natter: {PLAINTEXT_WARNING}");
        None
    } else {
        Some(args.trust_config().map_err(anyhow::Error::msg)?)
    };
    let user = match args.user {
        Some(user) => user,
        None if plain => {
            bail!("plain mode needs a user name: pass --user NAME or set NATTER_USER")
        }
        None => ask_user()?,
    };
    let password = password(&user, plain, args.register)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut terminal = TerminalPrompter;
    // The errors already name their cause; anyhow's chain would repeat it.
    let mut outcome = None;
    let (mut conn, hello) = match &trust {
        None => runtime
            .block_on(Connection::connect(&args.server))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        Some(trust) => {
            let prompter: Option<&mut dyn Prompter> =
                if plain { None } else { Some(&mut terminal) };
            let (conn, hello, trusted) = runtime
                .block_on(Connection::connect_tls(&args.server, trust, prompter))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(notice) = trusted.notice(&args.server) {
                eprintln!("natter: {notice}");
            }
            outcome = Some(trusted);
            (conn, hello)
        }
    };
    if let ServerFrame::Hello { protocol, .. } = hello
        && protocol != PROTOCOL_VERSION
    {
        eprintln!(
            "natter: warning: the server speaks protocol {protocol}, this client {PROTOCOL_VERSION}"
        );
    }

    let prompter: Option<&mut dyn Prompter> = if plain { None } else { Some(&mut terminal) };
    let mut again = SameServer {
        server: &args.server,
        trust: trust.as_ref(),
    };
    let (login, password) = match runtime.block_on(login::login_keeping_password(
        &mut conn,
        &user,
        &password,
        args.register,
        prompter,
        Some(&mut again),
    )) {
        Ok(done) => done,
        Err(LoginError::Refused { code, message }) if plain => {
            println!("{}", format::error_line(code, &message));
            return Ok(1);
        }
        Err(e) => {
            eprintln!("natter: {e}");
            return Ok(1);
        }
    };

    let options = SessionOptions::default();
    let result = if plain {
        runtime.block_on(plain::run(
            &mut conn,
            &login,
            tokio::io::stdin(),
            tokio::io::stdout(),
            &options,
        ))
    } else {
        // Interactive sessions reconnect by themselves: the password stays in memory
        // for logging in again, and nowhere else.
        let reconnector = Reconnector::new(
            reconnect::SameServer {
                server: args.server.clone(),
                trust: trust.clone(),
            },
            Credentials {
                user: login.user.clone(),
                password,
            },
        );
        if args.line {
            interactive::run(&runtime, conn, &login, &options, Some(reconnector))
        } else {
            let status = tui::Status {
                server: args.server.clone(),
                security: tui::security_label(outcome.as_ref()),
                connection: String::new(),
                lag_ms: None,
            };
            tui::run(
                &runtime,
                conn,
                &login,
                status,
                utc_offset,
                &options,
                Some(reconnector),
            )
        }
    };
    // Do not wait for a blocking stdin read that may never finish.
    runtime.shutdown_background();
    match result {
        Ok(_reason) => Ok(0),
        Err(e) => {
            eprintln!("natter: {e}");
            Ok(1)
        }
    }
}

/// Connects again the way the first connection was made, for a login the server cut off.
struct SameServer<'a> {
    /// `HOST:PORT` of the server.
    server: &'a str,
    /// How to verify it; `None` with `--plaintext`.
    trust: Option<&'a TrustConfig>,
}

impl Reconnect for SameServer<'_> {
    fn reconnect(
        &mut self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Connection, ClientError>> + '_>> {
        Box::pin(async move {
            match self.trust {
                None => Connection::connect(self.server).await.map(|(conn, _)| conn),
                // The certificate was accepted (and pinned) on the first connection, so
                // nothing is asked here; a changed one is refused.
                Some(trust) => Connection::connect_tls(self.server, trust, None)
                    .await
                    .map(|(conn, _, _)| conn),
            }
        })
    }
}

/// Asks for the user name on the terminal.
fn ask_user() -> anyhow::Result<String> {
    print!("User name: ");
    std::io::stdout().flush()?;
    let mut name = String::new();
    if std::io::stdin().lock().read_line(&mut name)? == 0 {
        bail!("no user name given");
    }
    parse_user(name.trim()).map_err(anyhow::Error::msg)
}

/// The password from the environment, or asked for without echo.
fn password(user: &str, plain: bool, register: bool) -> anyhow::Result<String> {
    match std::env::var(PASSWORD_ENV) {
        Ok(password) => return Ok(password),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{PASSWORD_ENV} is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => {}
    }
    let asked = rpassword::prompt_password(login::password_prompt(user));
    let password = match asked {
        Ok(password) => password,
        Err(e) if plain => {
            bail!("no password: set {PASSWORD_ENV} (plain mode cannot ask without a terminal: {e})")
        }
        Err(e) => return Err(e).context("cannot read the password"),
    };
    if register && !plain {
        return Ok(login::confirm_new_password(
            &mut TerminalPrompter,
            user,
            password,
        )?);
    }
    Ok(password)
}
