//! `natter-server`: parses options, binds the listener and runs the server library.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use natter_server::{Config, Options, Server};

/// How many tasks a runtime worker runs between looks at the shared queue (tokio's
/// default is 61). One message to a large room can wake a task per member (a WebSocket
/// writer, or a drain task for each socket that would block), more than a worker's local
/// queue holds (256); the rest wait in the shared queue, and looking there more often
/// keeps their turns fair, which shortens the latency tail.
const GLOBAL_QUEUE_INTERVAL: u32 = 8;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
        .context("cannot start the async runtime")?
        .block_on(run())
}

/// Parses the options and runs the server until it is stopped.
async fn run() -> anyhow::Result<()> {
    let opts = Options::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = Config::load(&opts)?;
    let mut server = Server::open(config.clone()).await?;
    let listener = natter_server::listener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let web = match config.web_listen {
        Some(at) => Some(
            natter_server::listener::bind(at)
                .with_context(|| format!("cannot listen on {at} for the web interface"))?,
        ),
        None => None,
    };
    let irc = match config.irc_listen {
        Some(at) => Some(
            natter_server::listener::bind(at)
                .with_context(|| format!("cannot listen on {at} for the IRC gateway"))?,
        ),
        None => None,
    };
    say(&format!("natter-server listening on {addr}"));
    if let Some(irc) = &irc {
        let at = irc.local_addr().context("IRC listener has no address")?;
        let tls = matches!(
            natter_server::listener::Transport::irc(at, server.shared()),
            natter_server::listener::Transport::Irc { tls: true }
        );
        let how = if tls { "TLS" } else { "plaintext" };
        say(&format!("IRC gateway ({how}) listening on {at}"));
    }
    if let Some(web) = &web {
        let at = web.local_addr().context("web listener has no address")?;
        let scheme = if web_https(at, &server) {
            "https"
        } else {
            "http"
        };
        say(&format!(
            "web console on {scheme}://{at}/console, browser chat on {scheme}://{at}/chat"
        ));
        if scheme == "http" && !at.ip().is_loopback() {
            say("WARNING: plaintext mode: the web interface is served over HTTP");
        }
    }
    if let Some(password) = server.take_generated_password() {
        let kept = if config.cluster.is_some() {
            "the cluster's database, for every node".to_string()
        } else {
            config
                .data_dir
                .join(natter_server::web::operator::HASH_FILE)
                .display()
                .to_string()
        };
        say(&format!(
            "operator password (shown once; only its hash is kept in {kept}): {password}"
        ));
    }
    match server.tls() {
        Some(tls) => {
            if tls.generated {
                say(&format!(
                    "created a self-signed TLS certificate: {}",
                    tls.cert_path.display()
                ));
            }
            say(&format!(
                "TLS certificate SHA-256 fingerprint: {}",
                tls.fingerprint
            ));
        }
        None => {
            say("WARNING: plaintext mode: passwords and messages cross the network unencrypted");
            tracing::warn!("plaintext mode: TLS is off; use only for local testing");
        }
    }
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "started");
    let listeners = natter_server::Listeners {
        chat: listener,
        web,
        irc,
    };
    server.run_with(listeners, shutdown_signal()).await;
    Ok(())
}

/// Whether the web interface on `at` is served over HTTPS.
fn web_https(at: std::net::SocketAddr, server: &Server) -> bool {
    natter_server::web::uses_https(at, server.shared())
}

/// Prints a line for the operator. A closed stdout (the operator's pipe went away) must
/// not take the server down, so write errors are ignored.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Whether the log gets colour codes: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>); files and pipes get plain text.
fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::log_colours;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some("".into())));
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None));
    }
}
