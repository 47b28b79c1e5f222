//! Result records (JSON lines), the machine description and the comparison table.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

mod cluster;
mod pairs;

pub use cluster::cluster_table;
pub use pairs::pairs_table;

/// One measured figure set (one workload, one server, one configuration).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// "natter", "redis", "ngircd" or "natter-irc" (natter's IRC gateway).
    pub server: String,
    /// natter over TLS.
    pub tls: bool,
    /// Server pinned to one core (taskset).
    pub pinned: bool,
    /// "fanout", "idle", "private", "storm", "join" or "commit".
    pub workload: String,
    /// Receivers / connections / users.
    pub n: usize,
    /// Sending clients.
    pub senders: usize,
    /// Phase: "flat", "rate 500/s", ...
    pub mode: String,
    /// Messages sent.
    pub messages: u64,
    /// Deliveries (or connections) expected.
    pub expected: u64,
    /// Deliveries (or connections) verified.
    pub verified: u64,
    /// Bad plus missing deliveries.
    pub errors: u64,
    /// Measured duration in seconds.
    pub secs: f64,
    /// Verified deliveries/s (fanout), messages/s (private), logins/s (idle, storm).
    pub per_sec: f64,
    /// Latency percentiles and maximum in microseconds.
    pub p50_us: Option<u64>,
    /// 99th percentile latency (µs).
    pub p99_us: Option<u64>,
    /// 99.9th percentile latency (µs).
    pub p999_us: Option<u64>,
    /// Maximum latency (µs).
    pub max_us: Option<u64>,
    /// Server RSS before the connections (bytes).
    pub rss_before: Option<u64>,
    /// Server RSS with the connections (bytes).
    pub rss_after: Option<u64>,
    /// RSS growth per connection over the second half of the connections (bytes).
    pub rss_per_conn: Option<f64>,
    /// RSS growth per connection over all connections, one-time costs included (bytes).
    pub rss_total_per_conn: Option<f64>,
    /// Logins per second during a login storm.
    pub logins_per_sec: Option<f64>,
    /// Time spent logging clients in before measuring (seconds, not measured).
    pub setup_secs: f64,
    /// Join workload: users whose join was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<u64>,
    /// Join workload: bytes all users received during the measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// Fan-out: the server's process CPU time over the phase (1.0 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<f64>,
    /// Fan-out, pinned: busy share of the server's core, kernel work done there included
    /// (see the `cpu` module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_core_busy: Option<f64>,
    /// Cluster mode: natter nodes the receivers were spread over (senders on the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// Where the server stores messages, as the run says: "sqlite" (one node alone) or
    /// "postgres" (a cluster node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Cluster fan-out: p50 of the receivers on the senders' node (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_p50_us: Option<u64>,
    /// Cluster fan-out: p99 of the receivers on the senders' node (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_p99_us: Option<u64>,
    /// Cluster fan-out: p50 of the receivers on other nodes (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_p50_us: Option<u64>,
    /// Cluster fan-out: p99 of the receivers on other nodes (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_p99_us: Option<u64>,
    /// First error seen, if any.
    pub first_error: Option<String>,
}

impl Record {
    /// Key of the table row this record belongs to.
    fn row(&self) -> String {
        let mut s = format!("{} n={}", self.workload, self.n);
        if !self.mode.is_empty() {
            let _ = write!(s, " {}", self.mode);
        }
        if !self.pinned {
            s.push_str(" unpinned");
        }
        s
    }
}

/// The machine the run happened on.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let online = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or("? GiB".to_string(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1048576.0)
        });
    format!("{online} cores ({model}), {mem} RAM")
}

/// Sorts "rate 500/s" before "rate 1000/s".
fn sort_key(mode: &str) -> String {
    match mode
        .strip_prefix("rate ")
        .and_then(|r| r.trim_end_matches("/s").parse::<u64>().ok())
    {
        Some(rate) => format!("rate {rate:012}"),
        None => mode.to_string(),
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |u| format!("{:.2}", u as f64 / 1000.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The main figure of a record and its unit.
fn figure(r: &Record) -> (Option<f64>, &'static str) {
    match r.workload.as_str() {
        "idle" => (r.rss_per_conn, "bytes/conn"),
        "private" => (Some(r.per_sec), "msgs/s"),
        "storm" => (r.logins_per_sec, "logins/s"),
        // Only a complete join counts; a timed-out one has no figure.
        "join" => (
            (r.joined == Some(r.n as u64) && r.verified == r.expected).then_some(r.secs),
            "s",
        ),
        _ => (Some(r.per_sec), "deliv/s"),
    }
}

fn fmt_fig(r: &Record) -> String {
    let (v, _) = figure(r);
    let mut s = match (r.workload.as_str(), v) {
        ("idle", Some(b)) => format!("{:.1} KiB", b / 1024.0),
        ("join", Some(secs)) => format!("{secs:.2}"),
        ("join", None) => format!("- ({}/{} joined)", r.joined.unwrap_or(0), r.n),
        (_, Some(v)) => human(v),
        _ => "-".into(),
    };
    match r.workload.as_str() {
        "idle" => {
            let _ = write!(s, " ({:.1}s)", r.secs);
        }
        // p99 of the join acknowledgements; the logins before are in parentheses.
        "join" => {
            let _ = write!(s, " p99 {} (login {:.1}s)", ms(r.p99_us), r.setup_secs);
        }
        _ => {
            let _ = write!(s, " p99 {}", ms(r.p99_us));
        }
    }
    // How busy the server was: near 100 % it limited the figure, well below it the
    // generator did.
    match (r.server_core_busy, r.server_cpu) {
        (Some(core), _) => {
            let _ = write!(s, " core {:.0}%", core * 100.0);
        }
        (None, Some(cpu)) => {
            let _ = write!(s, " cpu {:.0}%", cpu * 100.0);
        }
        _ => {}
    }
    if r.errors > 0 {
        let _ = write!(s, " ERR{}", r.errors);
    }
    s
}

/// Renders the comparison table: one row per workload configuration, natter (plain and
/// TLS), Redis, ngircd, and the ratios natter ÷ Redis and natter ÷ ngircd of the main
/// figure (for idle memory a ratio below 1 is better) and of p99 latency. When the
/// records include natter's IRC gateway ("natter-irc"), its column and the ratios
/// natter IRC ÷ ngircd (main figure and p99) follow.
pub fn table(records: &[Record]) -> String {
    let mut rows: BTreeMap<(String, usize, String, bool), BTreeMap<String, &Record>> =
        BTreeMap::new();
    let order = |w: &str| match w {
        "fanout" => "1",
        "idle" => "2",
        "private" => "3",
        "storm" => "4",
        _ => "5",
    };
    for r in records {
        let col = if r.tls {
            "natter+tls".to_string()
        } else {
            r.server.clone()
        };
        rows.entry((
            format!("{}{}", order(&r.workload), r.workload),
            r.n,
            format!(
                "{}{}",
                sort_key(&r.mode),
                if r.pinned { "" } else { " unpinned" }
            ),
            r.pinned,
        ))
        .or_default()
        .insert(col, r);
    }
    let irc = records.iter().any(|r| r.server == "natter-irc");
    let mut out = String::new();
    let _ = write!(
        out,
        "| workload | natter | natter TLS | Redis | ngircd |{} natter/Redis | natter/ngircd | p99 natter/Redis | p99 natter/ngircd |",
        if irc { " natter IRC |" } else { "" }
    );
    if irc {
        out.push_str(" natter IRC/ngircd | p99 natter IRC/ngircd |");
    }
    out.push('\n');
    let columns = if irc { 12 } else { 9 };
    let _ = writeln!(out, "|{}", "---|".repeat(columns));
    for cols in rows.values() {
        let Some(any) = cols.values().next() else {
            continue;
        };
        let cell = |k: &str| cols.get(k).map_or("-".into(), |r| fmt_fig(r));
        let fig = |k: &str| cols.get(k).and_then(|r| figure(r).0);
        let p99 = |k: &str| cols.get(k).and_then(|r| r.p99_us).map(|v| v as f64);
        let _ = write!(
            out,
            "| {} ({}) | {} | {} | {} | {} |",
            any.row(),
            figure(any).1,
            cell("natter"),
            cell("natter+tls"),
            cell("redis"),
            cell("ngircd"),
        );
        if irc {
            let _ = write!(out, " {} |", cell("natter-irc"));
        }
        let _ = write!(
            out,
            " {} | {} | {} | {} |",
            ratio(fig("natter"), fig("redis")),
            ratio(fig("natter"), fig("ngircd")),
            ratio(p99("natter"), p99("redis")),
            ratio(p99("natter"), p99("ngircd")),
        );
        if irc {
            let _ = write!(
                out,
                " {} | {} |",
                ratio(fig("natter-irc"), fig("ngircd")),
                ratio(p99("natter-irc"), p99("ngircd")),
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(server: &str, workload: &str, n: usize, mode: &str, per_sec: f64) -> Record {
        Record {
            server: server.into(),
            pinned: true,
            workload: workload.into(),
            n,
            mode: mode.into(),
            per_sec,
            p99_us: Some(10_000),
            ..Record::default()
        }
    }

    #[test]
    fn table_without_natter_irc_keeps_its_columns() {
        let t = table(&[
            rec("natter", "fanout", 1000, "flat", 6e6),
            rec("ngircd", "fanout", 1000, "flat", 2e6),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(!t.contains("natter IRC"), "{t}");
        assert_eq!(lines[1], "|---|---|---|---|---|---|---|---|---|");
        assert!(
            lines[2].starts_with("| fanout n=1000 flat (deliv/s) | 6.00M p99 10.00 | - | - | 2.00M p99 10.00 | - | 3.00x |"),
            "{t}"
        );
    }

    #[test]
    fn natter_irc_gets_a_column_and_ratios_to_ngircd() {
        let mut join_irc = rec("natter-irc", "join", 10000, "", 0.0);
        join_irc.secs = 2.5;
        join_irc.joined = Some(10000);
        join_irc.expected = 19999;
        join_irc.verified = 19999;
        let mut join_ngircd = rec("ngircd", "join", 10000, "", 0.0);
        join_ngircd.secs = 60.0;
        join_ngircd.joined = Some(4000);
        join_ngircd.expected = 19999;
        join_ngircd.verified = 4000;
        join_ngircd.errors = 15999;
        let t = table(&[
            rec("natter", "fanout", 1000, "flat", 6e6),
            rec("ngircd", "fanout", 1000, "flat", 2e6),
            rec("natter-irc", "fanout", 1000, "flat", 7e6),
            join_irc,
            join_ngircd,
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| workload | natter | natter TLS | Redis | ngircd | natter IRC | natter/Redis | natter/ngircd | p99 natter/Redis | p99 natter/ngircd | natter IRC/ngircd | p99 natter IRC/ngircd |"
        );
        assert_eq!(lines[1], format!("|{}", "---|".repeat(12)));
        assert_eq!(
            lines[2],
            "| fanout n=1000 flat (deliv/s) | 6.00M p99 10.00 | - | - | 2.00M p99 10.00 | 7.00M p99 10.00 | - | 3.00x | - | 1.00x | 3.50x | 1.00x |"
        );
        // A join that did not finish has no figure, so no ratio.
        assert!(
            lines[3].starts_with("| join n=10000 (s) | - | - | - | - (4000/10000 joined)"),
            "{t}"
        );
        assert!(lines[3].contains("| 2.50 p99 10.00 (login 0.0s) |"), "{t}");
        assert!(lines[3].ends_with("| - | 1.00x |"), "{t}");
    }
}
