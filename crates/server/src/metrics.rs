//! Counters for `/metrics` (Prometheus text format) and the console's live figures.
//!
//! Each server owns its own registry (not a process-global recorder), so several
//! servers in one test process keep separate counts. Series about what clients do
//! (connections, sessions, logins, messages sent, frames refused) carry a `transport`
//! label ([`TransportKind`]: `natter`, `websocket`, `irc`); every transport's series
//! exists from the start, at zero.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::transport_kind::{PerTransport, TransportKind};

/// One label pair, e.g. `kind="public"`.
type Label = [(&'static str, &'static str); 1];
/// Two label pairs, e.g. `kind="public",transport="irc"`.
type Labels = [(&'static str, &'static str); 2];

/// The `transport` label pair.
fn transport(t: TransportKind) -> (&'static str, &'static str) {
    ("transport", t.as_str())
}

/// The server's metrics.
pub struct Metrics {
    /// Registry rendered by [`Metrics::render`].
    registry: Registry,
    /// Open chat connections by transport, set at render time.
    connections: Family<Label, Gauge>,
    /// Logged-in sessions by transport, set at render time.
    sessions: Family<Label, Gauge>,
    /// Messages accepted, by kind and the sender's transport.
    messages: Family<Labels, Counter>,
    /// Copies queued to recipients, by kind.
    deliveries: Family<Label, Counter>,
    /// Frames refused, by reason and transport.
    rejected: Family<Labels, Counter>,
    /// Login attempts, by result and transport.
    logins: Family<Labels, Counter>,
    /// Time to queue one message to all its recipients.
    fanout: Histogram,
    /// Messages in the last minute, for the console.
    recent: Mutex<MinuteWindow>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every natter metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let connections = Family::<Label, Gauge>::default();
        let sessions = Family::<Label, Gauge>::default();
        let messages = Family::<Labels, Counter>::default();
        let deliveries = Family::<Label, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let logins = Family::<Labels, Counter>::default();
        // 1 µs to about 4 s.
        let fanout = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        registry.register(
            "natter_connections",
            "Open chat connections (TCP, TLS, WebSocket and IRC), by transport",
            connections.clone(),
        );
        registry.register(
            "natter_sessions",
            "Logged-in sessions, by transport",
            sessions.clone(),
        );
        registry.register(
            "natter_messages",
            "Messages accepted, by kind and the sender's transport",
            messages.clone(),
        );
        registry.register(
            "natter_deliveries",
            "Copies of messages queued to recipients' sessions, by kind",
            deliveries.clone(),
        );
        registry.register(
            "natter_frames_rejected",
            "Frames refused, by reason and transport",
            rejected.clone(),
        );
        registry.register(
            "natter_logins",
            "Login attempts, by result and transport",
            logins.clone(),
        );
        registry.register(
            "natter_fanout_seconds",
            "Time to queue one message to all its recipients",
            fanout.clone(),
        );
        for t in TransportKind::ALL {
            let _ = connections.get_or_create(&[transport(t)]);
            let _ = sessions.get_or_create(&[transport(t)]);
            for kind in ["public", "private"] {
                let _ = messages.get_or_create(&[("kind", kind), transport(t)]);
            }
            for result in ["ok", "failed"] {
                let _ = logins.get_or_create(&[("result", result), transport(t)]);
            }
        }
        for kind in ["public", "private"] {
            let _ = deliveries.get_or_create(&[("kind", kind)]);
        }
        Metrics {
            registry,
            connections,
            sessions,
            messages,
            deliveries,
            rejected,
            logins,
            fanout,
            recent: Mutex::new(MinuteWindow::default()),
        }
    }

    /// Counts one accepted message of `kind` ("public" or "private") sent over `from`,
    /// delivered to `copies` sessions, queued in `fanout` time.
    pub fn message(
        &self,
        kind: &'static str,
        from: TransportKind,
        copies: usize,
        fanout: Duration,
    ) {
        self.messages
            .get_or_create(&[("kind", kind), transport(from)])
            .inc();
        self.deliveries
            .get_or_create(&[("kind", kind)])
            .inc_by(copies as u64);
        self.fanout.observe(fanout.as_secs_f64());
        if let Ok(mut w) = self.recent.lock() {
            w.add(Instant::now());
        }
    }

    /// Counts copies delivered outside a send (offline messages delivered late).
    pub fn deliveries(&self, kind: &'static str, copies: usize) {
        self.deliveries
            .get_or_create(&[("kind", kind)])
            .inc_by(copies as u64);
    }

    /// Counts a frame refused from a client of `from`; `reason` is an error code such
    /// as "bad_frame".
    pub fn rejected(&self, from: TransportKind, reason: &'static str) {
        self.rejected
            .get_or_create(&[("reason", reason), transport(from)])
            .inc();
    }

    /// Counts a login attempt over `from`.
    pub fn login(&self, from: TransportKind, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.logins
            .get_or_create(&[("result", result), transport(from)])
            .inc();
    }

    /// Messages accepted in the last minute.
    pub fn messages_last_minute(&self) -> u64 {
        self.recent
            .lock()
            .map_or(0, |mut w| w.total(Instant::now()))
    }

    /// The Prometheus text exposition, with the gauges set to the given figures (open
    /// connections and logged-in sessions, by transport).
    pub fn render(&self, connections: PerTransport, sessions: PerTransport) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (t, n) in connections.iter() {
            self.connections
                .get_or_create(&[transport(t)])
                .set(gauge(n));
        }
        for (t, n) in sessions.iter() {
            self.sessions.get_or_create(&[transport(t)]).set(gauge(n));
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("cannot encode metrics");
        }
        out
    }
}

/// Counts events per second over the last 60 seconds, in fixed memory.
#[derive(Debug)]
struct MinuteWindow {
    /// When the window started; seconds are counted from here.
    origin: Instant,
    /// (second, count) per slot, slot = second % 60.
    slots: [(u64, u64); 60],
}

impl Default for MinuteWindow {
    fn default() -> MinuteWindow {
        MinuteWindow {
            origin: Instant::now(),
            slots: [(u64::MAX, 0); 60],
        }
    }
}

impl MinuteWindow {
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn add(&mut self, now: Instant) {
        let sec = self.second(now);
        let slot = &mut self.slots[(sec % 60) as usize];
        if slot.0 != sec {
            *slot = (sec, 0);
        }
        slot.1 += 1;
    }

    fn total(&mut self, now: Instant) -> u64 {
        let sec = self.second(now);
        self.slots
            .iter()
            .filter(|(s, _)| *s != u64::MAX && sec.saturating_sub(*s) < 60)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new();
        m.message("public", TransportKind::Irc, 3, Duration::from_micros(20));
        m.message(
            "private",
            TransportKind::Natter,
            1,
            Duration::from_micros(5),
        );
        m.rejected(TransportKind::WebSocket, "bad_frame");
        m.login(TransportKind::Irc, true);
        m.login(TransportKind::Natter, false);
        let text = m.render(
            PerTransport::from_counts(&[(TransportKind::Natter, 3), (TransportKind::Irc, 1)]),
            PerTransport::from_counts(&[(TransportKind::WebSocket, 2)]),
        );
        for line in [
            "natter_connections{transport=\"natter\"} 3",
            "natter_connections{transport=\"websocket\"} 0",
            "natter_connections{transport=\"irc\"} 1",
            "natter_sessions{transport=\"natter\"} 0",
            "natter_sessions{transport=\"websocket\"} 2",
            "natter_sessions{transport=\"irc\"} 0",
            "natter_messages_total{kind=\"public\",transport=\"irc\"} 1",
            "natter_messages_total{kind=\"public\",transport=\"natter\"} 0",
            "natter_messages_total{kind=\"private\",transport=\"natter\"} 1",
            "natter_deliveries_total{kind=\"public\"} 3",
            "natter_deliveries_total{kind=\"private\"} 1",
            "natter_frames_rejected_total{reason=\"bad_frame\",transport=\"websocket\"} 1",
            "natter_logins_total{result=\"ok\",transport=\"irc\"} 1",
            "natter_logins_total{result=\"ok\",transport=\"natter\"} 0",
            "natter_logins_total{result=\"failed\",transport=\"natter\"} 1",
            "natter_fanout_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(m.messages_last_minute(), 2);
    }

    #[test]
    fn minute_window_forgets_old_seconds() {
        let mut w = MinuteWindow::default();
        let t0 = w.origin;
        w.add(t0);
        w.add(t0 + Duration::from_secs(30));
        assert_eq!(w.total(t0 + Duration::from_secs(59)), 2);
        assert_eq!(w.total(t0 + Duration::from_secs(61)), 1);
        w.add(t0 + Duration::from_secs(120));
        assert_eq!(w.total(t0 + Duration::from_secs(120)), 1);
    }
}
