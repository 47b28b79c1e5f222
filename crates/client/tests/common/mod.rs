//! Test helpers: a scripted server on an in-memory pipe, and a line reader with timeouts.

#![allow(dead_code, missing_docs)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use natter_client::Connection;
use natter_proto::{ClientFrame, LineCodec, MAX_LINE, ServerFrame, decode_client, encode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::time::timeout;
use tokio_util::codec::Framed;

/// Upper bound for every wait in these tests.
pub const T: Duration = Duration::from_secs(10);

/// The server end of an in-memory connection, driven by hand.
pub struct FakeServer {
    framed: Framed<DuplexStream, LineCodec>,
}

impl FakeServer {
    /// A connected client (which has read `hello`) and the server end.
    pub async fn start() -> (Connection, FakeServer) {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let mut server = FakeServer {
            framed: Framed::new(server_io, LineCodec::new(MAX_LINE)),
        };
        server
            .send(ServerFrame::Hello {
                server: "natter".into(),
                version: "test".into(),
                protocol: natter_proto::PROTOCOL_VERSION,
            })
            .await;
        let (conn, _hello) = timeout(T, Connection::over(Box::new(client_io)))
            .await
            .expect("hello in time")
            .expect("client accepts hello");
        (conn, server)
    }

    /// Sends a frame to the client.
    pub async fn send(&mut self, frame: ServerFrame) {
        timeout(T, self.framed.send(encode(&frame)))
            .await
            .expect("send in time")
            .expect("client reads");
    }

    /// Sends raw bytes (one or more lines) to the client.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let io = self.framed.get_mut();
        timeout(T, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .expect("send in time")
        .expect("client reads");
    }

    /// The next frame from the client; `None` when it closed the connection.
    pub async fn recv(&mut self) -> Option<ClientFrame> {
        timeout(T, self.framed.next())
            .await
            .expect("frame in time")
            .map(|line| decode_client(&line.expect("readable line")).expect("valid frame"))
    }

    /// The next frame, which must exist.
    pub async fn expect(&mut self) -> ClientFrame {
        self.recv().await.expect("client still connected")
    }
}

/// Reads display lines from a front end's output.
pub struct Output {
    lines: Lines<BufReader<DuplexStream>>,
}

impl Output {
    /// A pipe for the front end to write to, and the reader for it.
    pub fn pipe() -> (DuplexStream, Output) {
        let (w, r) = tokio::io::duplex(1 << 16);
        (
            w,
            Output {
                lines: BufReader::new(r).lines(),
            },
        )
    }

    /// The next line; `None` when the writer is gone.
    pub async fn next(&mut self) -> Option<String> {
        timeout(T, self.lines.next_line())
            .await
            .expect("output line in time")
            .expect("readable output")
    }

    /// The next line, which must exist.
    pub async fn line(&mut self) -> String {
        self.next().await.expect("another output line")
    }
}
