//! A real natter server running in-process on 127.0.0.1, for the client's tests.
#![allow(dead_code)]

pub mod bins;
pub mod proxy;
pub mod tmux;

use std::net::SocketAddr;
use std::time::Duration;

use natter_server::{Config, Server};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Upper bound for a graceful stop.
const STOP: Duration = Duration::from_secs(30);

/// A real server serving a listener until stopped.
pub struct Running {
    pub addr: SocketAddr,
    /// The certificate fingerprint the server prints; `None` in plaintext mode.
    fingerprint: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: Config) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Running::serve(listener, config).await
    }

    /// Starts on `addr` again (after a previous server there stopped).
    pub async fn restart_on(addr: SocketAddr, config: Config) -> Running {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(addr).expect("bind the same port again");
        Running::serve(socket.listen(128).expect("listen"), config).await
    }

    pub async fn serve(listener: TcpListener, config: Config) -> Running {
        let addr = listener.local_addr().expect("addr");
        let server = Server::open(config).await.expect("open server");
        let fingerprint = server.tls().map(|tls| tls.fingerprint.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            fingerprint,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts with the web interface too: chat and web each on their own
    /// `127.0.0.1:0` listener (loopback, so the web side speaks HTTP). Returns the
    /// server and the web listener's address.
    pub async fn start_with_web(config: Config) -> (Running, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind chat");
        let web = TcpListener::bind("127.0.0.1:0").await.expect("bind web");
        let addr = listener.local_addr().expect("chat addr");
        let web_addr = web.local_addr().expect("web addr");
        let server = Server::open(config).await.expect("open server");
        let fingerprint = server.tls().map(|tls| tls.fingerprint.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_with_web(listener, Some(web), async {
            let _ = stopped.await;
        }));
        let running = Running {
            addr,
            fingerprint,
            stop: Some(stop),
            task: Some(task),
        };
        (running, web_addr)
    }

    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone().expect("a TLS server")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(STOP, task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
