//! The cluster table: fan-out into one room over one node or spread over several, the
//! cross-node hop, and commit throughput per message store.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Record, human, ms, sort_key};

/// The target of issue 25: a 2-node cluster delivers at least this share of one node's
/// deliveries/s on the same workload.
const TARGET_SHARE: f64 = 0.70;
/// The target of issue 25: the cross-node hop adds at most this at p50 (µs).
const TARGET_HOP_US: f64 = 2000.0;

/// How a record's server was set up, for the first column.
fn config(r: &Record) -> String {
    let nodes = r.nodes.unwrap_or(1);
    match r.store.as_deref() {
        Some("sqlite") => "one node alone (SQLite)".into(),
        Some(store) => format!(
            "cluster, {nodes} node{} ({})",
            if nodes == 1 { "" } else { "s" },
            if store == "postgres" {
                "PostgreSQL"
            } else {
                store
            }
        ),
        None => format!("{nodes} nodes"),
    }
}

/// Sort key of a configuration: the lone SQLite node first, then by node count.
fn config_key(r: &Record) -> (bool, usize, String) {
    (
        r.store.as_deref() != Some("sqlite"),
        r.nodes.unwrap_or(1),
        r.store.clone().unwrap_or_default(),
    )
}

fn us_ms(us: Option<u64>) -> String {
    ms(us)
}

fn errs(r: &Record) -> String {
    if r.errors > 0 {
        format!(" ERR{}", r.errors)
    } else {
        String::new()
    }
}

/// Whether `r` is a complete measurement (a figure worth a ratio).
fn clean(r: &Record) -> bool {
    r.errors == 0 && r.per_sec > 0.0
}

/// Renders the cluster records: a fan-out table (deliveries/s, p50 and p99 overall,
/// and p50 of the receivers on the senders' node and on the other nodes), the ratios
/// the issue asks for (2 nodes ÷ 1 node deliveries/s, the cross-node hop at p50 =
/// other nodes' p50 − senders' node p50), and commit throughput per store with the
/// ratio PostgreSQL ÷ SQLite.
pub fn cluster_table(records: &[Record]) -> String {
    let mut out = String::new();
    let mut fan: Vec<&Record> = records.iter().filter(|r| r.workload == "fanout").collect();
    fan.sort_by_key(|r| (r.n, sort_key(&r.mode), config_key(r)));
    if !fan.is_empty() {
        out.push_str("| fan-out | server | deliv/s | p50 | p99 | p50 senders' node | p50 other nodes | server core |\n");
        out.push_str(&format!("|{}\n", "---|".repeat(8)));
        for r in &fan {
            let core = match (r.server_core_busy, r.server_cpu) {
                (Some(c), _) => format!("{:.0}%", c * 100.0),
                (None, Some(c)) => format!("cpu {:.0}%", c * 100.0),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| n={} {} | {} | {}{} | {} | {} | {} | {} | {} |",
                r.n,
                r.mode,
                config(r),
                human(r.per_sec),
                errs(r),
                us_ms(r.p50_us),
                us_ms(r.p99_us),
                us_ms(r.local_p50_us),
                us_ms(r.remote_p50_us),
                core,
            );
        }
        out.push('\n');
        // Ratios per (n, phase): the most-nodes PostgreSQL run against the 1-node one.
        let mut groups: BTreeMap<(usize, String), Vec<&Record>> = BTreeMap::new();
        for r in &fan {
            groups.entry((r.n, sort_key(&r.mode))).or_default().push(r);
        }
        for rs in groups.values() {
            let cluster = |nodes: usize| {
                rs.iter()
                    .find(|r| r.store.as_deref() != Some("sqlite") && r.nodes == Some(nodes))
            };
            let single = cluster(1);
            let multi = rs
                .iter()
                .filter(|r| r.store.as_deref() != Some("sqlite") && r.nodes.unwrap_or(1) > 1)
                .max_by_key(|r| r.nodes);
            let sqlite = rs.iter().find(|r| r.store.as_deref() == Some("sqlite"));
            let any = rs[0];
            let head = format!("n={} {}", any.n, any.mode);
            if let (Some(one), Some(many)) = (single, multi) {
                let nodes = many.nodes.unwrap_or(2);
                let share = (clean(one) && clean(many)).then(|| many.per_sec / one.per_sec);
                let _ = writeln!(
                    out,
                    "{head}: {nodes} nodes ÷ 1 node deliveries/s = {}{}",
                    share.map_or("- (a run had errors)".into(), |s| format!("{s:.2}")),
                    share.map_or(String::new(), |s| format!(
                        " (target ≥ {TARGET_SHARE:.2}: {})",
                        if s >= TARGET_SHARE { "met" } else { "NOT met" }
                    )),
                );
                if let (Some(p1), Some(p2)) = (one.p50_us, many.p50_us) {
                    let _ = writeln!(
                        out,
                        "{head}: p50 {nodes} nodes − 1 node = {:+.2} ms",
                        (p2 as f64 - p1 as f64) / 1000.0
                    );
                }
            }
            if let Some(many) = multi
                && let (Some(local), Some(remote)) = (many.local_p50_us, many.remote_p50_us)
            {
                let hop = remote as f64 - local as f64;
                let _ = writeln!(
                    out,
                    "{head}: cross-node hop at p50 (other nodes − senders' node) = {:+.2} ms (target ≤ {:.0} ms: {})",
                    hop / 1000.0,
                    TARGET_HOP_US / 1000.0,
                    if hop <= TARGET_HOP_US {
                        "met"
                    } else {
                        "NOT met"
                    }
                );
            }
            if let (Some(lone), Some(one)) = (sqlite, single)
                && clean(lone)
                && clean(one)
            {
                let _ = writeln!(
                    out,
                    "{head}: 1 cluster node ÷ one node alone (SQLite) deliveries/s = {:.2}",
                    one.per_sec / lone.per_sec
                );
            }
        }
    }
    let mut commits: Vec<&Record> = records.iter().filter(|r| r.workload == "commit").collect();
    commits.sort_by_key(|r| config_key(r));
    if !commits.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("| commit | server | msgs/s acknowledged | p50 | p99 |\n");
        out.push_str(&format!("|{}\n", "---|".repeat(5)));
        for r in &commits {
            let _ = writeln!(
                out,
                "| {} senders, {} | {} | {}{} | {} | {} |",
                r.senders,
                r.mode,
                config(r),
                human(r.per_sec),
                errs(r),
                us_ms(r.p50_us),
                us_ms(r.p99_us),
            );
        }
        let by = |store: &str| {
            commits
                .iter()
                .find(|r| r.store.as_deref() == Some(store) && clean(r))
        };
        if let (Some(pg), Some(lite)) = (by("postgres"), by("sqlite")) {
            let _ = writeln!(
                out,
                "\ncommit: PostgreSQL ÷ SQLite messages/s = {:.2}",
                pg.per_sec / lite.per_sec
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(store: &str, nodes: usize, per_sec: f64, p50: u64) -> Record {
        Record {
            server: "natter".into(),
            pinned: true,
            workload: "fanout".into(),
            n: 1000,
            mode: "flat".into(),
            per_sec,
            p50_us: Some(p50),
            p99_us: Some(p50 * 3),
            store: Some(store.into()),
            nodes: Some(nodes),
            ..Record::default()
        }
    }

    #[test]
    fn the_cluster_table_gives_the_share_the_hop_and_the_store_ratio() {
        let mut two = fan("postgres", 2, 1.6e6, 3000);
        two.local_p50_us = Some(2500);
        two.remote_p50_us = Some(3500);
        let mut pg = Record {
            workload: "commit".into(),
            senders: 64,
            mode: "5s window 16".into(),
            per_sec: 20_000.0,
            store: Some("postgres".into()),
            nodes: Some(1),
            ..Record::default()
        };
        let mut lite = pg.clone();
        lite.store = Some("sqlite".into());
        lite.per_sec = 40_000.0;
        pg.p50_us = Some(3000);
        let t = cluster_table(&[
            two,
            fan("postgres", 1, 2e6, 2000),
            fan("sqlite", 1, 2.5e6, 1800),
            pg,
            lite,
        ]);
        let lines: Vec<&str> = t.lines().collect();
        // The lone SQLite node first, then by node count.
        assert!(
            lines[2].contains("one node alone (SQLite) | 2.50M |"),
            "{t}"
        );
        assert!(
            lines[3].contains("cluster, 1 node (PostgreSQL) | 2.00M |"),
            "{t}"
        );
        assert!(
            lines[4]
                .contains("cluster, 2 nodes (PostgreSQL) | 1.60M | 3.00 | 9.00 | 2.50 | 3.50 |"),
            "{t}"
        );
        assert!(
            t.contains("n=1000 flat: 2 nodes ÷ 1 node deliveries/s = 0.80 (target ≥ 0.70: met)"),
            "{t}"
        );
        assert!(
            t.contains("n=1000 flat: p50 2 nodes − 1 node = +1.00 ms"),
            "{t}"
        );
        assert!(
            t.contains("cross-node hop at p50 (other nodes − senders' node) = +1.00 ms (target ≤ 2 ms: met)"),
            "{t}"
        );
        assert!(
            t.contains("one node alone (SQLite) deliveries/s = 0.80"),
            "{t}"
        );
        assert!(
            t.contains("commit: PostgreSQL ÷ SQLite messages/s = 0.50"),
            "{t}"
        );
    }
}
