//! The alternating-pairs summary (`bench/run.sh --pair`): natter and Redis measured one
//! after the other several times on one workload, each natter figure divided by the
//! Redis figure measured next to it, and the median of those ratios, so that one noisy
//! run does not decide.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Record, figure, fmt_fig};

/// The median of some numbers (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Renders one table per workload configuration: each pair's natter and Redis cells and
/// ratios (main figure, p99), then the median ratios. natter's side is natter over TLS
/// when the records have it (`--pair tls1000`), plaintext otherwise. Records are paired
/// in the order they were measured: the k-th natter record with the k-th Redis record.
pub fn pairs_table(records: &[Record]) -> String {
    // Row key (workload, n, mode, pinned) → (natter records, Redis records), in order.
    type Sides<'a> = (Vec<&'a Record>, Vec<&'a Record>);
    let mut rows: BTreeMap<(String, usize, String, bool), Sides> = BTreeMap::new();
    for r in records {
        let key = (r.workload.clone(), r.n, r.mode.clone(), !r.pinned);
        let sides = rows.entry(key).or_default();
        match r.server.as_str() {
            "natter" => sides.0.push(r),
            "redis" => sides.1.push(r),
            _ => {}
        }
    }
    let mut out = String::new();
    for (natter, redis) in rows.values() {
        let Some(first) = natter.first().or(redis.first()) else {
            continue;
        };
        let (_, unit) = figure(first);
        let tls = natter.iter().any(|r| r.tls);
        let _ = writeln!(out, "{} ({unit})", first.row());
        let _ = writeln!(
            out,
            "| pair | natter{} | Redis | natter/Redis | p99 natter/Redis |",
            if tls { " TLS" } else { "" }
        );
        out.push_str("|---|---|---|---|---|\n");
        let (mut figs, mut p99s) = (Vec::new(), Vec::new());
        for (i, (n, r)) in natter.iter().zip(redis.iter()).enumerate() {
            let fig = match (figure(n).0, figure(r).0) {
                (Some(a), Some(b)) if b > 0.0 && n.errors == 0 && r.errors == 0 => Some(a / b),
                _ => None,
            };
            let p99 = match (n.p99_us, r.p99_us) {
                (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
                _ => None,
            };
            figs.extend(fig);
            p99s.extend(p99);
            let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                fmt_fig(n),
                fmt_fig(r),
                show(fig),
                show(p99)
            );
        }
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
        let _ = writeln!(
            out,
            "median of {} pairs: natter/Redis {}, p99 natter/Redis {}\n",
            natter.len().min(redis.len()),
            show(median(figs)),
            show(median(p99s))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(server: &str, per_sec: f64, p99_us: u64, pinned: bool) -> Record {
        Record {
            server: server.into(),
            pinned,
            workload: "private".into(),
            n: 1000,
            per_sec,
            p99_us: Some(p99_us),
            ..Record::default()
        }
    }

    #[test]
    fn pairs_in_measured_order_and_their_median() {
        let t = pairs_table(&[
            rec("natter", 100.0, 10_000, true),
            rec("redis", 200.0, 5_000, true),
            rec("natter", 300.0, 10_000, true),
            rec("redis", 100.0, 20_000, true),
            rec("natter", 100.0, 10_000, true),
            rec("redis", 100.0, 10_000, true),
            rec("natter", 50.0, 1_000, false),
            rec("redis", 100.0, 1_000, false),
        ]);
        // Pinned: 0.5x, 3x, 1x → median 1x; p99 2x, 0.5x, 1x → 1x.
        assert!(
            t.contains("median of 3 pairs: natter/Redis 1.00x, p99 natter/Redis 1.00x"),
            "{t}"
        );
        assert!(
            t.contains("| 2 | 300 p99 10.00 | 100 p99 20.00 | 3.00x | 0.50x |"),
            "{t}"
        );
        // The unpinned pair is a table of its own.
        assert!(t.contains("private n=1000 unpinned (msgs/s)"), "{t}");
        assert!(t.contains("median of 1 pairs: natter/Redis 0.50x"), "{t}");
    }

    #[test]
    fn a_pair_with_errors_has_no_ratio() {
        let mut bad = rec("natter", 100.0, 1_000, true);
        bad.errors = 3;
        let t = pairs_table(&[bad, rec("redis", 100.0, 1_000, true)]);
        assert!(t.contains("| - | 1.00x |"), "{t}");
        assert!(t.contains("natter/Redis -,"), "{t}");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
