//! IRC clients for tests: [`LineClient`] (tests/common) speaking IRC with bounded waits,
//! logged in with SASL PLAIN.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{LineClient, PASSWORD};

/// Upper bound for a repeated query to show what it should.
const WAIT: Duration = Duration::from_secs(10);

/// A raw IRC client.
pub type Client = LineClient;

impl LineClient {
    /// Connects as an IRC client (lines end in CR LF).
    pub async fn irc(addr: SocketAddr) -> Client {
        LineClient::connect(addr, "\r\n").await
    }

    /// Reads lines until one contains `needle`; returns them, the matching one last.
    pub async fn until(&mut self, needle: &str) -> Vec<String> {
        self.until_line(&format!("containing {needle:?}"), |l| l.contains(needle))
            .await
    }

    /// Round-trips a PING; returns the lines received before the PONG.
    pub async fn sync(&mut self) -> Vec<String> {
        self.send("PING sync-token").await;
        let mut seen = self.until("PONG natter :sync-token").await;
        seen.pop();
        seen
    }

    /// Connects to the gateway at `addr` and logs in as `name` with SASL PLAIN, up to
    /// the end of the welcome.
    pub async fn irc_sasl(addr: SocketAddr, name: &str) -> LineClient {
        let mut c = LineClient::connect(addr, "\r\n").await;
        c.send("CAP LS 302").await;
        c.send(&format!("NICK {name}")).await;
        c.send(&format!("USER {name} 0 * :{name}")).await;
        c.send("CAP REQ :sasl").await;
        c.until(" ACK :sasl").await;
        c.send("AUTHENTICATE PLAIN").await;
        c.until("AUTHENTICATE +").await;
        c.send(&format!(
            "AUTHENTICATE {}",
            base64(format!("\0{name}\0{PASSWORD}").as_bytes())
        ))
        .await;
        c.until(" 903 ").await;
        c.send("CAP END").await;
        c.until(" 422 ").await;
        c
    }

    /// Asks `query` (e.g. `NAMES #room`) until the lines up to `end` contain a line
    /// for which `found` holds, within [`WAIT`]; returns the last answer.
    pub async fn poll(
        &mut self,
        query: &str,
        end: &str,
        found: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            self.send(query).await;
            let answer = self.until(end).await;
            if answer.iter().any(|l| found(l)) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: no expected line within {WAIT:?}; last answer: {answer:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Standard base64 with padding (SASL PLAIN's payload).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
