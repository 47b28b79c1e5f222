//! A TCP proxy in front of a server, for cutting a client off in controlled ways: refusing
//! new connections, swallowing what the server answers (or everything), and cutting every
//! connection at once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Close new connections at once (the server seems down).
    Closed,
    /// Forward what the client sends, drop what the server answers.
    SwallowReplies,
    /// Drop what either side sends.
    SwallowAll,
}

/// The proxy; stops (cutting every connection) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1:0 forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(Mutex::new(Mode::Open));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let mode = mode.clone();
            let conns = conns.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if *mode.lock().expect("mode") == Mode::Closed {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let mode = mode.clone();
                    conns
                        .lock()
                        .expect("conns")
                        .spawn(forward(client, server, mode));
                }
            }
        });
        Proxy {
            addr,
            mode,
            conns,
            accept,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    /// Closes every current connection (the clients see their connection drop).
    pub fn cut(&self) {
        self.conns.lock().expect("conns").abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies bytes both ways as the mode says, until either side closes.
async fn forward(client: TcpStream, server: TcpStream, mode: Arc<Mutex<Mode>>) {
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let up_mode = mode.clone();
    let up = async move {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if *up_mode.lock().expect("mode") == Mode::SwallowAll {
                continue;
            }
            if server_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match server_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if matches!(
                *mode.lock().expect("mode"),
                Mode::SwallowReplies | Mode::SwallowAll
            ) {
                continue;
            }
            if client_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
