//! natter-bench command line: one workload against one server per invocation, results
//! appended as JSON lines; `report` turns them into the comparison table.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use natter_bench::client::{Kind, Target};
use natter_bench::pin::ServerPin;
use natter_bench::report::{Record, cluster_table, machine, pairs_table, table};
use natter_bench::workload::{self, FanOut, Phase};
use natter_bench::{cpu, join};

#[derive(Parser)]
#[command(about = "Benchmarks natter against Redis pub/sub and ngircd with verified deliveries")]
struct Cli {
    /// Async runtime: `auto` uses one thread when the process may run on one CPU only
    /// (pinned with taskset), which is cheapest there, and a thread per CPU otherwise.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    runtime: Runtime,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which tokio runtime drives the generator.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Runtime {
    /// Current-thread when pinned to one CPU, multi-thread otherwise.
    Auto,
    /// One thread for everything.
    CurrentThread,
    /// One worker thread per CPU the process may use.
    MultiThread,
}

#[derive(Args, Clone)]
struct Common {
    /// Server protocol.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Server address. `fanout` against a natter cluster takes several (repeated or
    /// comma-separated): receivers are spread round-robin over them, the senders
    /// connect to the first.
    #[arg(long, required = true, value_delimiter = ',')]
    addr: Vec<SocketAddr>,
    /// Label the records with the server's message store ("sqlite" for one node alone,
    /// "postgres" for a cluster node); such records get the cluster table in `report`.
    #[arg(long)]
    store: Option<String>,
    /// natter (or its IRC gateway) over TLS, trusting this certificate
    /// (DATA_DIR/tls/cert.pem).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Mark the records as measured with the server pinned to one core.
    #[arg(long)]
    pinned: bool,
    /// Append result records (JSON lines) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Server process id, for RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Pin the server (--pid) to these CPUs (taskset list) only for the measured part;
    /// setup logins may use every CPU. The idle workload, whose logins are measured,
    /// pins it from the start.
    #[arg(long)]
    pin_server: Option<String>,
}

impl Common {
    fn pin(&self) -> ServerPin {
        ServerPin::new(self.pid, self.pin_server.clone())
    }

    /// The one server address of a workload that does not spread over nodes.
    fn single(&self, workload: &str) -> Result<SocketAddr> {
        match self.addr.as_slice() {
            [addr] => Ok(*addr),
            _ => bail!("`{workload}` runs against one server: give one --addr"),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Registers the benchmark accounts (natter only; others need none). For
    /// `--kind natter-irc` register them with `--kind natter` on the same server.
    Register {
        #[command(flatten)]
        common: Common,
        /// Fan-out receivers.
        #[arg(long, default_value_t = 0)]
        receivers: usize,
        /// Fan-out senders.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Private-message users.
        #[arg(long, default_value_t = 0)]
        private: usize,
        /// Login-storm users.
        #[arg(long, default_value_t = 0)]
        storm: usize,
        /// Idle-connection users.
        #[arg(long, default_value_t = 0)]
        idle: usize,
        /// Join-workload users (the idle users' accounts; the larger count is created).
        #[arg(long, default_value_t = 0)]
        join: usize,
        /// Commit-throughput senders.
        #[arg(long, default_value_t = 0)]
        commit: usize,
    },
    /// Fan-out: receivers in one room, senders, phases (flat:MSGS:SECS, rate:RATE:SECS).
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Receiver counts, grown in order (e.g. 100,1000).
        #[arg(long, value_delimiter = ',', default_value = "100")]
        ns: Vec<usize>,
        /// Senders.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Messages in flight per receiver.
        #[arg(long, default_value_t = 128)]
        window: u64,
        /// Phases run at every N.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "flat:20000:10,rate:500:5"
        )]
        phases: Vec<String>,
    },
    /// Idle authenticated connections and the server's RSS per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long)]
        n: usize,
    },
    /// Private messages between random pairs.
    Private {
        #[command(flatten)]
        common: Common,
        /// Users.
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Unacknowledged messages per sender.
        #[arg(long, default_value_t = 8)]
        window: usize,
    },
    /// Login storm while a room chats at a fixed rate.
    Storm {
        #[command(flatten)]
        common: Common,
        /// Chat receivers.
        #[arg(long, default_value_t = 100)]
        chat: usize,
        /// Chat senders.
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Chat rate (messages/s).
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Users logging in during the storm.
        #[arg(long, default_value_t = 1000)]
        storm: usize,
        /// Storm logins in progress at once.
        #[arg(long, default_value_t = 1000)]
        storm_parallel: usize,
    },
    /// N logged-in users join one room at once; then one of them speaks to all.
    Join {
        #[command(flatten)]
        common: Common,
        /// Users.
        #[arg(long)]
        n: usize,
        /// Limit for the measured part (joins and probe), in seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout_secs: f64,
    },
    /// Commit throughput (natter only): senders, each in a room of its own, send
    /// messages with request ids; counts the `ok` acknowledgements, which come once a
    /// message is stored (SQLite for one node, PostgreSQL for a cluster node).
    Commit {
        #[command(flatten)]
        common: Common,
        /// Senders.
        #[arg(long, default_value_t = 64)]
        senders: usize,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Unacknowledged messages per sender.
        #[arg(long, default_value_t = 16)]
        window: usize,
    },
    /// Prints the comparison table of a JSON-lines file and writes a summary JSON.
    Report {
        /// Records (JSON lines).
        #[arg(long)]
        input: PathBuf,
        /// Summary JSON to write.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Free text describing the run (mode, date).
        #[arg(long, default_value = "")]
        label: String,
        /// Alternating pairs (`bench/run.sh --pair`): each natter record divided by the
        /// Redis record measured next to it, and the median ratio per workload.
        #[arg(long)]
        pairs: bool,
    },
}

fn parse_phase(s: &str) -> Result<Phase> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        ["flat", m, secs] => Ok(Phase::Flat {
            messages: m.parse()?,
            secs: secs.parse()?,
        }),
        ["rate", r, secs] => Ok(Phase::Rate {
            rate: r.parse()?,
            secs: secs.parse()?,
        }),
        _ => bail!("bad phase {s:?}: use flat:MESSAGES:SECS or rate:RATE:SECS"),
    }
}

fn target_at(c: &Common, addr: SocketAddr) -> Result<Target> {
    match &c.tls_cert {
        Some(cert) => Target::tls(c.kind, addr, cert),
        None => Ok(Target::plain(c.kind, addr)),
    }
}

/// The target of a workload against one server.
fn target(c: &Common, workload: &str) -> Result<Target> {
    target_at(c, c.single(workload)?)
}

fn base(c: &Common, workload: &str, n: usize) -> Record {
    Record {
        server: c.kind.label().into(),
        tls: c.tls_cert.is_some(),
        pinned: c.pinned,
        workload: workload.into(),
        n,
        store: c.store.clone(),
        nodes: (c.store.is_some() || c.addr.len() > 1).then_some(c.addr.len()),
        ..Record::default()
    }
}

fn emit(c: &Common, rec: &Record) -> Result<()> {
    let line = serde_json::to_string(rec)?;
    if rec.workload == "join" {
        eprintln!(
            "{:>7}{} join     n={:<6} {:>8.3} s (login {:.1} s) joined {}/{} ack p50 {} p99 {} µs probe {}/{} bytes {} errors {}",
            rec.server,
            if rec.tls { "+tls" } else { "" },
            rec.n,
            rec.secs,
            rec.setup_secs,
            rec.joined.unwrap_or(0),
            rec.n,
            rec.p50_us.unwrap_or(0),
            rec.p99_us.unwrap_or(0),
            rec.verified.saturating_sub(rec.joined.unwrap_or(0)),
            rec.n.saturating_sub(1),
            rec.bytes_received.unwrap_or(0),
            rec.errors,
        );
    } else {
        eprintln!(
            "{:>7}{} {:<8} n={:<6} {:<12} {:>12.0}/s p50 {:>8} p99 {:>8} p999 {:>8} µs verified {}/{} errors {}{}{}",
            rec.server,
            if rec.tls { "+tls" } else { "" },
            rec.workload,
            rec.n,
            rec.mode,
            rec.logins_per_sec.unwrap_or(rec.per_sec),
            rec.p50_us.unwrap_or(0),
            rec.p99_us.unwrap_or(0),
            rec.p999_us.unwrap_or(0),
            rec.verified,
            rec.expected,
            rec.errors,
            rec.rss_per_conn
                .map_or(String::new(), |b| format!(" rss/conn {b:.0} B")),
            cpu_note(rec),
        );
        if let (Some(l), Some(r)) = (rec.local_p50_us, rec.remote_p50_us) {
            eprintln!(
                "        receivers on the senders' node p50 {l} p99 {} µs, on other nodes p50 {r} p99 {} µs",
                rec.local_p99_us.unwrap_or(0),
                rec.remote_p99_us.unwrap_or(0),
            );
        }
    }
    if let Some(e) = &rec.first_error {
        eprintln!("        first error: {e}");
    }
    if let Some(path) = &c.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// The server's CPU use during a phase, for the progress line.
fn cpu_note(rec: &Record) -> String {
    let mut s = String::new();
    if let Some(cpu) = rec.server_cpu {
        s += &format!(" server cpu {:.0}%", cpu * 100.0);
    }
    if let Some(core) = rec.server_core_busy {
        s += &format!(" core {:.0}%", core * 100.0);
    }
    s
}

fn raise_nofile() {
    // Best effort: the script raises the soft limit; nothing to do portably here
    // without unsafe code.
}

async fn run(cli: Cli) -> Result<()> {
    raise_nofile();
    match cli.cmd {
        Cmd::Register {
            common,
            receivers,
            senders,
            private,
            storm,
            idle,
            join,
            commit,
        } => {
            match common.kind {
                Kind::Natter => {}
                // The gateway cannot create accounts: they are natter's, created over
                // natter's own protocol on the same server.
                Kind::NatterIrc => bail!(
                    "natter's IRC gateway cannot register accounts: run `register --kind \
                     natter` against the same server's natter listener (--listen)"
                ),
                Kind::Redis | Kind::Irc => return Ok(()),
            }
            let t = target(&common, "register")?;
            let mut names: Vec<String> = (0..senders).map(workload::sender_name).collect();
            names.extend((0..receivers).map(workload::receiver_name));
            names.extend((0..private).map(workload::private_name));
            names.extend((0..storm).map(workload::storm_name));
            names.extend((0..idle.max(join)).map(workload::idle_name));
            names.extend((0..commit).map(workload::commit_name));
            let count = names.len();
            let took = workload::register(&t, names, common.parallel).await?;
            eprintln!(
                "registered {count} natter accounts in {:.1}s (setup, not measured)",
                took.as_secs_f64()
            );
        }
        Cmd::Fanout {
            common,
            ns,
            senders,
            window,
            phases,
        } => {
            let nodes: Vec<Target> = common
                .addr
                .iter()
                .map(|&a| target_at(&common, a))
                .collect::<Result<_>>()?;
            let t = nodes[0].clone();
            let phases: Vec<Phase> = phases
                .iter()
                .map(|p| parse_phase(p))
                .collect::<Result<_>>()?;
            let pin = common.pin();
            pin.setup()?;
            let mut fan = FanOut::new(&t, senders, window, common.parallel).await?;
            if nodes.len() > 1 {
                fan.spread(nodes)?;
            }
            for n in ns {
                pin.setup()?;
                let grown = fan.grow(n).await;
                pin.measure()?;
                if let Err(e) = grown {
                    let mut rec = base(&common, "fanout", n);
                    rec.senders = senders;
                    rec.mode = "setup".into();
                    rec.errors = 1;
                    rec.first_error = Some(format!("{e:#}"));
                    emit(&common, &rec)?;
                    break;
                }
                // The server's core, if it is pinned to one now (by --pin-server or by
                // whoever started it).
                let core = common.pid.and_then(cpu::pinned_core);
                for p in &phases {
                    let before = cpu::Snapshot::take(common.pid, core);
                    let r = fan.phase(*p, None).await?;
                    let used = before.until(&cpu::Snapshot::take(common.pid, core));
                    let mut rec = base(&common, "fanout", n);
                    rec.server_cpu = used.process;
                    rec.server_core_busy = used.core;
                    rec.senders = senders;
                    rec.mode = p.label();
                    rec.setup_secs = fan.setup.as_secs_f64();
                    workload::fill(&mut rec, &r);
                    emit(&common, &rec)?;
                }
            }
            fan.close().await;
        }
        Cmd::Idle { common, n } => {
            let t = target(&common, "idle")?;
            let mut rec = base(&common, "idle", n);
            common.pin().measure()?;
            if let Err(e) = workload::idle(&t, n, common.pid, common.parallel, &mut rec).await {
                rec.errors = rec.expected.max(1) - rec.verified.min(rec.expected);
                rec.first_error = Some(format!("{e:#}"));
            }
            emit(&common, &rec)?;
        }
        Cmd::Private {
            common,
            users,
            secs,
            window,
        } => {
            let t = target(&common, "private")?;
            let mut rec = base(&common, "private", users);
            rec.senders = users;
            rec.mode = format!("{secs:.0}s");
            if let Err(e) = workload::private(
                &t,
                users,
                secs,
                window,
                common.parallel,
                &common.pin(),
                &mut rec,
            )
            .await
            {
                rec.errors += 1;
                rec.first_error = Some(format!("{e:#}"));
            }
            emit(&common, &rec)?;
        }
        Cmd::Storm {
            common,
            chat,
            senders,
            rate,
            storm,
            storm_parallel,
        } => {
            let t = target(&common, "storm")?;
            let pin = common.pin();
            pin.setup()?;
            let mut fan = FanOut::new(&t, senders, 128, common.parallel).await?;
            fan.grow(chat).await?;
            pin.measure()?;
            let mut rec = base(&common, "storm", storm);
            rec.senders = senders;
            rec.mode = format!("{chat} chatting at {rate:.0}/s");
            match workload::storm(&mut fan, &t, storm, rate, storm_parallel).await {
                Ok((logins, chat)) => {
                    workload::fill(&mut rec, &chat);
                    rec.logins_per_sec = Some(logins);
                }
                Err(e) => {
                    rec.errors += 1;
                    rec.first_error = Some(format!("{e:#}"));
                }
            }
            rec.setup_secs = fan.setup.as_secs_f64();
            emit(&common, &rec)?;
            fan.close().await;
        }
        Cmd::Join {
            common,
            n,
            timeout_secs,
        } => {
            let t = target(&common, "join")?;
            let mut rec = base(&common, "join", n);
            let timeout = Duration::from_secs_f64(timeout_secs.max(0.0));
            if let Err(e) =
                join::join(&t, n, common.parallel, timeout, &common.pin(), &mut rec).await
            {
                rec.errors = rec.errors.max(1);
                rec.first_error = Some(format!("{e:#}"));
            }
            emit(&common, &rec)?;
        }
        Cmd::Commit {
            common,
            senders,
            secs,
            window,
        } => {
            if common.kind != Kind::Natter {
                bail!("the commit workload counts natter's `ok` frames: use --kind natter");
            }
            let t = target(&common, "commit")?;
            let mut rec = base(&common, "commit", senders);
            rec.senders = senders;
            rec.mode = format!("{secs:.0}s window {window}");
            if let Err(e) = workload::commit(
                &t,
                senders,
                secs,
                window,
                common.parallel,
                &common.pin(),
                &mut rec,
            )
            .await
            {
                rec.errors += 1;
                rec.first_error = Some(format!("{e:#}"));
            }
            emit(&common, &rec)?;
        }
        Cmd::Report {
            input,
            summary,
            label,
            pairs,
        } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let records: Vec<Record> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?;
            let machine = machine();
            println!("natter-bench {label}");
            println!("machine: {machine}");
            println!();
            // Records of a cluster run (labelled with a store or spread over nodes) get
            // their own table; the others the comparison with Redis and ngircd.
            let (cluster, others): (Vec<Record>, Vec<Record>) = records
                .iter()
                .cloned()
                .partition(|r| r.store.is_some() || r.nodes.is_some());
            if pairs {
                print!("{}", pairs_table(&others));
            } else if !others.is_empty() {
                print!("{}", table(&others));
            }
            if !cluster.is_empty() {
                if !others.is_empty() {
                    println!();
                }
                print!("{}", cluster_table(&cluster));
            }
            if let Some(path) = summary {
                let json = serde_json::json!({
                    "label": label,
                    "machine": machine,
                    "records": records,
                });
                std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Worker threads follow the CPU affinity (taskset), so the generator stays on its
    // core; pinned to one core, a single-threaded runtime saves the work-stealing
    // scheduler's synchronisation on every wake-up.
    let one_cpu = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let rt = match (cli.runtime, one_cpu) {
        (Runtime::CurrentThread, _) | (Runtime::Auto, true) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        }
        (Runtime::MultiThread, _) | (Runtime::Auto, false) => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
        }
    };
    rt.block_on(run(cli))
}
