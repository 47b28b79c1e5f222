//! What a measurement cost the server in CPU: its process time, and (when pinned) how
//! busy its core was.
//!
//! Process time (user + system, all threads, from `/proc/PID/stat`) is what the server
//! used; on loopback that includes, depending on the kernel's accounting, the receiving
//! side of TCP that runs in the sender's softirq context. The busy share of the
//! server's core (from `/proc/stat`) counts everything done on that core, and says how
//! much headroom the server had: a server at 100 % limits a figure, one well below it
//! was held back by the load generator.

use std::time::Instant;

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on every Linux architecture we
/// run on).
const TICKS: f64 = 100.0;

/// CPU counters of the server at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    /// Process user + system time in ticks, if the process could be read.
    process: Option<u64>,
    /// Busy and total ticks of the server's core, if pinned to one.
    core: Option<(u64, u64)>,
}

/// CPU use between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Process CPU time over wall time (1.0 = one core).
    pub process: Option<f64>,
    /// Busy share of the server's core (0.0..=1.0), kernel work done there included.
    pub core: Option<f64>,
}

impl Snapshot {
    /// Reads the counters of process `pid` and of `core` (a CPU index); either may be
    /// missing, and then that figure is not reported.
    pub fn take(pid: Option<u32>, core: Option<usize>) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            process: pid.and_then(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| process_ticks(&s))
            }),
            core: core.and_then(|c| {
                std::fs::read_to_string("/proc/stat")
                    .ok()
                    .and_then(|s| core_ticks(&s, c))
            }),
        }
    }

    /// What was used from `self` until `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        Usage {
            process: match (self.process, later.process) {
                (Some(a), Some(b)) if wall > 0.0 && b >= a => Some((b - a) as f64 / TICKS / wall),
                _ => None,
            },
            core: match (self.core, later.core) {
                (Some((b0, t0)), Some((b1, t1))) if t1 > t0 && b1 >= b0 => {
                    Some((b1 - b0) as f64 / (t1 - t0) as f64)
                }
                _ => None,
            },
        }
    }
}

/// The one CPU process `pid` may run on, if its affinity allows exactly one.
pub fn pinned_core(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(single_cpu)
}

/// The CPU index of a CPU list naming exactly one CPU ("1"), else `None`.
fn single_cpu(list: &str) -> Option<usize> {
    list.trim().parse().ok()
}

/// utime + stime from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, total) ticks of CPU `core` from the text of `/proc/stat`; idle and iowait
/// count as not busy.
fn core_ticks(stat: &str, core: usize) -> Option<(u64, u64)> {
    let name = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    // already inside user.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_skip_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (natter (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 9 0 123 456 789";
        assert_eq!(process_ticks(stat), Some(325));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn core_ticks_count_idle_and_iowait_as_not_busy() {
        let stat = "cpu  10 0 10 100 0 0 0 0 0 0\n\
                    cpu0 1 0 1 50 0 0 0 0 0 0\n\
                    cpu1 30 2 20 40 5 1 10 2 7 0\n";
        assert_eq!(core_ticks(stat, 1), Some((65, 110)));
        assert_eq!(core_ticks(stat, 0), Some((2, 52)));
        assert_eq!(core_ticks(stat, 2), None);
    }

    #[test]
    fn usage_between_snapshots() {
        let a = Snapshot {
            at: Instant::now(),
            process: Some(100),
            core: Some((1000, 2000)),
        };
        let b = Snapshot {
            at: a.at + std::time::Duration::from_secs(2),
            process: Some(250),
            core: Some((1150, 2200)),
        };
        let u = a.until(&b);
        assert_eq!(u.process, Some(0.75));
        assert_eq!(u.core, Some(0.75));
        let none = Snapshot {
            process: None,
            core: None,
            ..b
        };
        assert_eq!(
            a.until(&none),
            Usage {
                process: None,
                core: None
            }
        );
    }

    #[test]
    fn only_a_single_cpu_list_names_a_core() {
        assert_eq!(single_cpu("1"), Some(1));
        assert_eq!(single_cpu(" 3\n"), Some(3));
        assert_eq!(single_cpu("0-1"), None);
        assert_eq!(single_cpu("0,1"), None);
    }

    #[test]
    fn this_process_reports_its_affinity() {
        let status =
            std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("an affinity line")
            .trim()
            .to_string();
        // One allowed CPU names it; several ("0-1") name none.
        let want =
            (!list.contains([',', '-'])).then(|| list.parse::<usize>().expect("a CPU index"));
        assert_eq!(pinned_core(std::process::id()), want);
        assert_eq!(pinned_core(u32::MAX), None);
    }
}
