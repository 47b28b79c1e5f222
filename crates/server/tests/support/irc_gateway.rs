//! Helpers of the IRC gateway tests (`tests/irc.rs`): a server with an IRC listener,
//! line clients logged in over IRC.
#![allow(dead_code)]

use std::net::SocketAddr;

use crate::common::*;
use crate::irc::Client;
use natter_server::{Listeners, Server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A server with a chat listener and a plaintext IRC listener on loopback.
pub struct Irc {
    pub chat: SocketAddr,
    pub irc: SocketAddr,
    /// The running server's shared state (for operator actions).
    pub shared: std::sync::Arc<natter_server::Shared>,
    pub stop: CancellationToken,
    pub _dir: tempfile::TempDir,
}

impl Irc {
    pub async fn start() -> Irc {
        Irc::start_with(|_| {}).await
    }

    /// Like [`Irc::start`], with the configuration changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut natter_server::Config)) -> Irc {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = plain_config(dir.path());
        tweak(&mut config);
        let server = Server::open(config).await.expect("open server");
        let shared = server.shared().clone();
        let chat = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let irc = TcpListener::bind("127.0.0.1:0").await.expect("bind irc");
        let (chat_addr, irc_addr) = (
            chat.local_addr().expect("addr"),
            irc.local_addr().expect("addr"),
        );
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let listeners = Listeners {
            chat,
            web: None,
            irc: Some(irc),
        };
        tokio::spawn(server.run_with(listeners, async move { stopped.cancelled().await }));
        Irc {
            chat: chat_addr,
            irc: irc_addr,
            shared,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for Irc {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Logs `name` in over IRC with PASS, joins the lobby (IRC clients are not put there by
/// themselves) and returns the client past its NAMES.
pub async fn irc_login(addr: SocketAddr, name: &str, caps: &[&str]) -> Client {
    let mut c = Client::irc(addr).await;
    if !caps.is_empty() {
        c.send("CAP LS 302").await;
        c.send(&format!("CAP REQ :{}", caps.join(" "))).await;
        c.until("ACK").await;
        c.send("CAP END").await;
    }
    c.send(&format!("PASS :{name}:{PASSWORD}")).await;
    c.send(&format!("NICK {name}")).await;
    c.send(&format!("USER {name} 0 * :{name}")).await;
    c.until(" 001 ").await;
    c.send("JOIN #lobby").await;
    c.until(" 366 ").await;
    c
}
