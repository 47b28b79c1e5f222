//! The outbox's queue, writers and flusher against real sockets.

use super::*;
use tokio_util::sync::CancellationToken;

#[test]
fn bursts_are_taken_in_one_piece_and_the_bound_is_in_frames() {
    let out = Arc::new(Outbox::new(3));
    let b = Bytes::from_static;
    assert_eq!(out.push(&b(b"a\n"), 1), Push::Queued);
    assert_eq!(out.push(&b(b"b\nc\n"), 2), Push::Queued);
    assert_eq!(out.push(&b(b"d\n"), 1), Push::Full);
    assert_eq!(out.try_take(), Some(Some(b(b"a\nb\nc\n"))));
    assert_eq!(out.try_take(), None, "empty and open");
    assert_eq!(out.push(&Bytes::new(), 0), Push::Queued);
    assert_eq!(out.try_take(), None, "nothing to write is not queued");
    assert_eq!(
        out.push(&b(b"d\n"), 1),
        Push::Queued,
        "taking frees the room"
    );
    out.close();
    assert_eq!(out.push(&b(b"e\n"), 1), Push::Closed);
    assert_eq!(out.try_take(), Some(Some(b(b"d\n"))));
    assert_eq!(out.try_take(), Some(None), "closed and drained");
}

#[tokio::test]
async fn a_waiting_writer_wakes_for_bytes_and_for_close() {
    let out = Arc::new(Outbox::new(8));
    let writer = {
        let out = out.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(chunk) = out.take().await {
                got.extend_from_slice(&chunk);
            }
            got
        })
    };
    tokio::task::yield_now().await;
    out.push(&Bytes::from_static(b"x\n"), 1);
    tokio::task::yield_now().await;
    out.push(&Bytes::from_static(b"y\n"), 1);
    out.close();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
        .await
        .expect("writer ends once closed")
        .expect("writer task");
    assert_eq!(got, b"x\ny\n");
}

/// A connected pair on loopback: our side's direct outbox (flusher running) and the
/// peer's socket.
async fn direct_pair(max_frames: usize) -> (Arc<Outbox>, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let peer = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (ours, _) = listener.accept().await.expect("accept");
    let (_rd, wr) = ours.into_split();
    let flusher = Flusher::new();
    tokio::spawn(flusher.clone().run(CancellationToken::new()));
    let out = Arc::new(Outbox::direct(max_frames, Wire::Tcp(wr), flusher));
    (out, peer)
}

#[tokio::test]
async fn a_direct_outbox_is_written_by_the_flusher_in_order_and_ends_with_eof() {
    let (out, mut peer) = direct_pair(1_000_000).await;
    let mut want = Vec::new();
    for i in 0..2000 {
        let line = Bytes::from(format!("frame {i}\n"));
        assert_eq!(out.push(&line, 1), Push::Queued);
        want.extend_from_slice(&line);
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    out.close();
    tokio::time::timeout(std::time::Duration::from_secs(10), out.drained())
        .await
        .expect("drained");
    out.finish().await;
    let got = read_to_end(&mut peer).await.expect("read");
    assert_eq!(got, want);
}

/// Everything `r` yields until its end, within 10 s.
async fn read_to_end(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), r.read_to_end(&mut got))
        .await
        .expect("read to the end")?;
    Ok(got)
}

/// Queues far more than the socket buffers hold while the peer reads nothing, and
/// checks that a drain task took over; the frame queued and how many times.
async fn stall(out: &Arc<Outbox>) -> (Bytes, usize) {
    let frame = Bytes::from(format!("{}\n", "x".repeat(1023)));
    let frames = 20_000;
    for i in 0..frames {
        assert_eq!(out.push(&frame, 1), Push::Queued);
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Let the flusher meet the full socket.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        out.lock().stalled,
        "the socket filled up and a drain task took over"
    );
    (frame, frames)
}

/// Reads everything `peer` sends on a task of its own, so that the test can wait for
/// the writer meanwhile; [`joined`] gives the result.
fn spawn_read(
    mut peer: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<io::Result<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    tokio::spawn(async move {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.map(|_| got)
    })
}

/// What the [`spawn_read`] task read, within 20 s.
async fn joined(read: tokio::task::JoinHandle<io::Result<Vec<u8>>>) -> io::Result<Vec<u8>> {
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .expect("peer reads to the end")
        .expect("reader task")
}

/// `got` is `frame`, `frames` times.
fn assert_all(got: &[u8], frame: &[u8], frames: usize) {
    assert_eq!(got.len(), frames * frame.len());
    assert!(got.chunks(frame.len()).all(|c| c == frame));
}

#[tokio::test]
async fn a_peer_that_stops_reading_stalls_its_outbox_and_gets_everything_later() {
    let (out, peer) = direct_pair(1_000_000).await;
    let (frame, frames) = stall(&out).await;
    out.close();
    let read = spawn_read(peer);
    tokio::time::timeout(std::time::Duration::from_secs(20), out.drained())
        .await
        .expect("drained once the peer reads");
    out.finish().await;
    let got = joined(read).await.expect("read");
    assert_all(&got, &frame, frames);
}

/// A TLS connection on loopback after its handshake: our side's direct outbox
/// (flusher running) and reader, and the peer's TLS client stream.
async fn tls_pair(
    max_frames: usize,
) -> (
    Arc<Outbox>,
    crate::tls::TlsReader,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    tempfile::TempDir,
) {
    use rustls_pki_types::pem::PemObject;
    let dir = tempfile::tempdir().expect("temp dir");
    let id = crate::tls::load_or_create(dir.path(), None, None).expect("certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&id.cert_path).expect("pem") {
        roots.add(cert.expect("certificate")).expect("trusted");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("client handshake")
    });
    let (tcp, _) = listener.accept().await.expect("accept");
    let conn = crate::tls::handshake(id.config.clone(), &tcp)
        .await
        .expect("server handshake");
    let peer = client.await.expect("client task");
    let (rd, wr) = tcp.into_split();
    let tls = crate::tls::TlsConn::new(conn);
    let flusher = Flusher::new();
    tokio::spawn(flusher.clone().run(CancellationToken::new()));
    let out = Arc::new(Outbox::direct(
        max_frames,
        Wire::Tls(wr, tls.clone()),
        flusher,
    ));
    out.kick();
    let kick = out.clone();
    let reader = crate::tls::TlsReader::new(rd, tls, Box::new(move || kick.kick()));
    (out, reader, peer, dir)
}

#[tokio::test]
async fn a_tls_peer_that_stops_reading_gets_everything_later_then_close_notify() {
    let (out, _reader, peer, _dir) = tls_pair(1_000_000).await;
    let (frame, frames) = stall(&out).await;
    out.close();
    let read = spawn_read(peer);
    tokio::time::timeout(std::time::Duration::from_secs(20), out.finish())
        .await
        .expect("finished once the peer reads");
    // A TLS stream that ends without close_notify reads as an error here.
    let got = joined(read)
        .await
        .expect("the stream ends with close_notify");
    assert_all(&got, &frame, frames);
}

#[tokio::test]
async fn the_tls_reader_decrypts_what_the_peer_sends_and_ends_at_its_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (out, mut reader, mut peer, _dir) = tls_pair(1000).await;
    let mut want = Vec::new();
    for i in 0..3000 {
        want.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    peer.write_all(&want).await.expect("write");
    // The server writes while it reads: both directions share the TLS state.
    out.push(&Bytes::from_static(b"welcome\n"), 1);
    peer.shutdown().await.expect("close_notify");
    let got = read_to_end(&mut reader).await.expect("read");
    assert_eq!(got, want);
    let mut line = [0u8; 8];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        peer.read_exact(&mut line),
    )
    .await
    .expect("the flusher wrote")
    .expect("read");
    assert_eq!(&line, b"welcome\n");
}

#[tokio::test]
async fn a_peer_sending_a_forged_record_gets_an_alert_even_with_frames_queued() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (out, mut reader, mut peer, _dir) = tls_pair(1000).await;
    // An application-data record that does not decrypt, past the client's TLS layer.
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0xAB; 0x20]);
    peer.get_mut().0.write_all(&forged).await.expect("write");
    let read = read_to_end(&mut reader).await;
    assert!(read.is_err(), "a forged record is an error: {read:?}");
    // The session then queues its goodbye, which cannot be sent any more.
    out.push(&Bytes::from_static(b"bye\n"), 1);
    out.close();
    tokio::time::timeout(std::time::Duration::from_secs(10), out.finish())
        .await
        .expect("finished");
    let mut got = Vec::new();
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        peer.read_to_end(&mut got),
    )
    .await
    .expect("the peer hears back")
    .expect_err("the peer gets an alert, not data");
    assert!(
        err.to_string().contains("alert"),
        "the peer is told why: {err}"
    );
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn a_broken_peer_ends_the_session() {
    let (out, peer) = direct_pair(1000).await;
    drop(peer);
    // Writing to a socket whose peer is gone fails (reset) within a few writes.
    let failed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            out.push(&Bytes::from_static(b"hello\n"), 1);
            tokio::select! {
                _ = out.closing() => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    assert!(failed.is_ok(), "the write never failed");
    assert!(
        out.close_reason()
            .is_some_and(|r| r.starts_with("write failed")),
        "{:?}",
        out.close_reason()
    );
    assert_eq!(out.push(&Bytes::from_static(b"more\n"), 1), Push::Closed);
}

#[tokio::test]
async fn an_idle_tls_connection_holds_no_buffers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (out, mut reader, mut peer, _dir) = tls_pair(1000).await;
    peer.write_all(b"hello\n").await.expect("write");
    peer.flush().await.expect("flush");
    let mut line = [0u8; 6];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_exact(&mut line),
    )
    .await
    .expect("the reader decrypted")
    .expect("read");
    assert_eq!(&line, b"hello\n");
    out.push(&Bytes::from_static(b"welcome\n"), 1);
    let mut got = [0u8; 8];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        peer.read_exact(&mut got),
    )
    .await
    .expect("the flusher wrote")
    .expect("read");
    assert_eq!(&got, b"welcome\n");
    // Nothing more to read: the reader waits, holding no buffer, and the writer holds
    // none once everything is written.
    let mut more = [0u8; 1];
    {
        let mut read = std::pin::pin!(reader.read(&mut more));
        assert!(futures::poll!(read.as_mut()).is_pending());
    }
    assert_eq!(reader.buffered(), 0);
}

#[tokio::test]
async fn closing_resolves_for_a_reason_given_before_or_while_waiting() {
    let out = Arc::new(Outbox::new(10));
    let waiting = tokio::spawn({
        let out = out.clone();
        async move { out.closing().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no reason yet");
    out.set_close_reason("kicked".into());
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("a waiter is woken by the reason")
        .expect("waiter task");
    // A later waiter sees the reason at once; the first reason stays.
    out.set_close_reason("banned".into());
    tokio::time::timeout(std::time::Duration::from_secs(5), out.closing())
        .await
        .expect("resolves at once");
    assert_eq!(out.close_reason(), Some("kicked"));
}

#[tokio::test]
async fn a_deadline_wakes_the_session_only_once_it_has_passed() {
    let out = Arc::new(Outbox::new(10));
    let now = tokio::time::Instant::now();
    let second = std::time::Duration::from_secs(1);
    assert!(!out.wake_if_due(now + second), "no deadline set");
    out.set_deadline(now + second);
    assert!(!out.wake_if_due(now), "not passed yet");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), out.due())
            .await
            .is_err(),
        "not due before the sweeper says so"
    );
    let waiting = tokio::spawn({
        let out = out.clone();
        async move { out.due().await }
    });
    tokio::task::yield_now().await;
    // Deadlines are kept in whole milliseconds, rounded up.
    let ms = std::time::Duration::from_millis(1);
    assert!(out.wake_if_due(now + second + ms), "passed");
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the waiting session is woken")
        .expect("waiter task");
    assert!(
        !out.wake_if_due(now + 2 * second),
        "woken once per deadline"
    );
    // A session that set a new deadline is not woken for the old one.
    out.set_deadline(now + 3 * second);
    assert!(!out.wake_if_due(now + 2 * second));
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), out.due())
            .await
            .is_err()
    );
}
