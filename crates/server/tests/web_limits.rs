//! The web listener's connection limits and timeouts over real sockets: one address
//! cannot hold every connection, and silent, half-sent or idle kept-alive connections
//! are closed by the server.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use natter_proto::{ServerFrame, decode_server};
use natter_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

/// Connects to `web` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, web: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .expect("bind client address");
    timeout(WAIT, socket.connect(web))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// `GET /healthz` from `from`; the whole response as text (empty if the server closed
/// the connection without answering).
async fn healthz_from(from: Ipv4Addr, web: SocketAddr) -> String {
    let mut tcp = connect_from(from, web).await;
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n");
    // A refused connection may already be closed; the read below tells.
    let _ = tcp.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("answer or close in time");
    String::from_utf8_lossy(&raw).into_owned()
}

/// Whether the server closes `tcp` (EOF or reset) within [`WAIT`], reading and
/// discarding anything it sends first.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..100 {
        match timeout(WAIT, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
    false
}

#[tokio::test]
async fn idle_connections_from_one_address_leave_the_web_listener_to_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(plain_config(dir.path())).await;
    let web = srv.web.expect("web");
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    // More than the listener's total cap (1024), all silent, all from one address.
    let mut idle = Vec::new();
    for _ in 0..1040 {
        idle.push(connect_from(attacker, web).await);
    }
    // Connections beyond the address's cap are closed at once.
    let last = idle.last_mut().expect("connections");
    assert!(
        closed_by_server(last).await,
        "the 1040th connection from one address is closed"
    );
    let answer = healthz_from(Ipv4Addr::new(127, 0, 0, 2), web).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "another address still reaches /healthz: {answer:?}"
    );
    drop(idle);
    srv.stop().await;
}

/// Plain configuration with short web timeouts.
fn timeouts(dir: &std::path::Path, header_secs: u64, idle_secs: u64) -> Config {
    Config {
        web_header_timeout: Duration::from_secs(header_secs),
        web_idle_timeout: Duration::from_secs(idle_secs),
        ..plain_config(dir)
    }
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An idle allowance longer than the wait below: only the header timeout can close.
    let srv = TestServer::start_web(timeouts(dir.path(), 1, 300)).await;
    let web = srv.web.expect("web");
    let me = Ipv4Addr::LOCALHOST;

    let mut silent = connect_from(me, web).await;
    let mut partial = connect_from(me, web).await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\n");
    partial.write_all(head.as_bytes()).await.expect("write");
    assert!(
        closed_by_server(&mut silent).await,
        "no bytes: closed after the header timeout"
    );
    assert!(
        closed_by_server(&mut partial).await,
        "a head without its end: closed after the header timeout"
    );

    // Slowloris: one more byte of a header value every 100 ms never ends the head.
    let mut trickle = connect_from(me, web).await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\nX-Slow: ");
    trickle.write_all(head.as_bytes()).await.expect("write");
    let mut buf = [0u8; 1024];
    let mut closed = false;
    for _ in 0..100 {
        if trickle.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        match timeout(Duration::from_millis(100), trickle.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "answered an unfinished head: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
    assert!(closed, "a trickled head is closed despite its traffic");

    // A prompt request is still answered.
    let answer = healthz_from(me, web).await;
    assert!(answer.ends_with("ok\n"), "{answer:?}");
    srv.stop().await;
}

#[tokio::test]
async fn kept_alive_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = TestServer::start_web(timeouts(dir.path(), 1, 3)).await;
    let web = srv.web.expect("web");
    let mut tcp = connect_from(Ipv4Addr::LOCALHOST, web).await;
    let mut answers = String::new();
    // Two requests on one connection: it is kept alive between them.
    for n in 1..=2 {
        let req = format!("GET /healthz HTTP/1.1\r\nHost: {web}\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            if answers.matches("\r\n\r\nok\n").count() == n {
                break;
            }
            let got = timeout(WAIT, tcp.read(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(got > 0, "closed before answering request {n}: {answers:?}");
            answers.push_str(&String::from_utf8_lossy(&buf[..got]));
        }
    }
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers:?}");
    let answered = Instant::now();
    assert!(
        closed_by_server(&mut tcp).await,
        "an idle kept-alive connection is closed"
    );
    // The idle allowance (3 s) applies between requests, not the header one (1 s).
    assert!(
        answered.elapsed() >= Duration::from_secs(2),
        "closed after {:?}",
        answered.elapsed()
    );
    srv.stop().await;
}

#[tokio::test]
async fn websockets_are_left_to_the_chat_ping_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        ping_interval: Duration::from_secs(3),
        ..timeouts(dir.path(), 1, 1)
    };
    let srv = TestServer::start_web(config).await;
    let web = srv.web.expect("web");
    let (mut ws, _) = timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{web}/ws")),
    )
    .await
    .expect("upgrade in time")
    .expect("upgrade");
    let mut frames = Vec::new();
    // The session's ping comes after 3 s of silence, past both web timeouts.
    for _ in 0..10 {
        let msg = timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("socket open")
            .expect("message");
        let Message::Text(text) = msg else { continue };
        let frame = decode_server(text.as_bytes()).expect("frame");
        let ping = matches!(frame, ServerFrame::Ping { .. });
        frames.push(frame);
        if ping {
            break;
        }
    }
    assert!(
        matches!(frames.last(), Some(ServerFrame::Ping { .. })),
        "the WebSocket lived to be pinged: {frames:?}"
    );
    srv.stop().await;
}
