//! Smoke tests: the fan-out and join workloads at tiny N against an in-process natter
//! server, over natter's own protocol and over its IRC gateway. They assert that every
//! delivery was verified; no timing assertions.

use std::net::SocketAddr;
use std::time::Duration;

use natter_bench::client::{Kind, Target};
use natter_bench::join;
use natter_bench::pin::ServerPin;
use natter_bench::report::Record;
use natter_bench::workload::{self, FanOut, Phase};
use natter_server::{Config, Listeners, Server};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A plaintext natter server on a free loopback port, with its IRC gateway on another,
/// configured like bench/run.sh.
struct TestServer {
    addr: SocketAddr,
    irc_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::with_data_dir(dir.path());
        config.plaintext = true;
        config.web_listen = None;
        config.history_on_join = 0;
        config.messages.rate = 1_000_000.0;
        config.messages.burst = 1_000_000.0;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let irc = TcpListener::bind("127.0.0.1:0").await.expect("bind irc");
        let irc_addr = irc.local_addr().expect("irc addr");
        let server = Server::open(config).await.expect("open server");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let listeners = Listeners {
                chat: listener,
                web: None,
                irc: Some(irc),
            };
            let _ = server
                .run_with(listeners, async {
                    let _ = stopped.await;
                })
                .await;
        });
        TestServer {
            addr,
            irc_addr,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The target of `kind` on `server` (natter's protocol or its IRC gateway), with the
/// accounts `names` registered over natter's protocol.
async fn target_with_accounts(server: &TestServer, kind: Kind, names: Vec<String>) -> Target {
    let natter = Target::plain(Kind::Natter, server.addr);
    workload::register(&natter, names, 4)
        .await
        .expect("register");
    match kind {
        Kind::NatterIrc => Target::plain(kind, server.irc_addr),
        _ => natter,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_tiny_n_verifies_every_delivery() {
    fanout_at_tiny_n(Kind::Natter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_natters_irc_gateway_verifies_every_delivery() {
    fanout_at_tiny_n(Kind::NatterIrc).await;
}

/// Receivers spread over two "nodes" (here the same server twice: the harness's side
/// of cluster mode) are all verified, and their latencies split by node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_spread_over_nodes_splits_the_latencies() {
    let server = TestServer::start().await;
    let names = (0..2)
        .map(workload::sender_name)
        .chain((0..5).map(workload::receiver_name))
        .collect();
    let target = target_with_accounts(&server, Kind::Natter, names).await;
    let run = async {
        let mut fan = FanOut::new(&target, 2, 128, 8).await.expect("senders");
        fan.spread(vec![target.clone(), target.clone()])
            .expect("spread");
        fan.grow(5).await.expect("receivers");
        let r = fan
            .phase(
                Phase::Flat {
                    messages: 40,
                    secs: 30.0,
                },
                None,
            )
            .await
            .expect("phase");
        fan.close().await;
        r
    };
    let r = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("fan-out finished");
    assert_eq!(r.verified, 200, "{:?}", r.first_error);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    let [local, remote] = r.split.as_ref().expect("split by node");
    // Receivers 0, 2, 4 on the first node, 1 and 3 on the second.
    assert_eq!((local.len(), remote.len()), (120, 80));
    let mut rec = Record::default();
    workload::fill(&mut rec, &r);
    assert!(rec.local_p50_us.is_some() && rec.remote_p99_us.is_some());
    server.stop().await;
}

/// The commit workload counts one `ok` per message sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_counts_every_acknowledgement() {
    let server = TestServer::start().await;
    let names = (0..3).map(workload::commit_name).collect();
    let target = target_with_accounts(&server, Kind::Natter, names).await;
    let mut rec = Record::default();
    tokio::time::timeout(
        Duration::from_secs(60),
        workload::commit(&target, 3, 1.0, 4, 4, &ServerPin::default(), &mut rec),
    )
    .await
    .expect("commit finished")
    .expect("commit ran");
    assert!(rec.messages > 0);
    assert_eq!(rec.verified, rec.messages, "{:?}", rec.first_error);
    assert_eq!(rec.errors, 0, "{:?}", rec.first_error);
    assert!(rec.per_sec > 0.0 && rec.p50_us.is_some());
    server.stop().await;
}

async fn fanout_at_tiny_n(kind: Kind) {
    let server = TestServer::start().await;
    let names = (0..2)
        .map(workload::sender_name)
        .chain((0..5).map(workload::receiver_name))
        .collect();
    let target = target_with_accounts(&server, kind, names).await;

    let run = async {
        let mut fan = FanOut::new(&target, 2, 128, 8).await.expect("senders");
        fan.grow(5).await.expect("receivers");
        let r = fan
            .phase(
                Phase::Flat {
                    messages: 50,
                    secs: 30.0,
                },
                None,
            )
            .await
            .expect("phase");
        fan.close().await;
        r
    };
    let r = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("fan-out finished");
    assert_eq!(r.messages, 50, "{:?}", r.first_error);
    assert_eq!(r.expected, 250);
    assert_eq!(r.verified, 250, "{:?}", r.first_error);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.hist.len(), 250);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_at_tiny_n_acknowledges_everyone_and_delivers_the_probe() {
    join_at_tiny_n(Kind::Natter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_over_natters_irc_gateway_acknowledges_everyone_and_delivers_the_probe() {
    join_at_tiny_n(Kind::NatterIrc).await;
}

async fn join_at_tiny_n(kind: Kind) {
    let server = TestServer::start().await;
    let n = 5;
    let names = (0..n).map(workload::idle_name).collect();
    let target = target_with_accounts(&server, kind, names).await;

    let mut rec = Record {
        workload: "join".into(),
        n,
        ..Record::default()
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        join::join(
            &target,
            n,
            4,
            Duration::from_secs(30),
            &ServerPin::default(),
            &mut rec,
        ),
    )
    .await
    .expect("join finished")
    .expect("join ran");
    assert_eq!(rec.joined, Some(n as u64), "{:?}", rec.first_error);
    // n acknowledgements plus the probe at the n - 1 other members.
    assert_eq!(rec.expected, 2 * n as u64 - 1);
    assert_eq!(rec.verified, rec.expected, "{:?}", rec.first_error);
    assert_eq!(rec.errors, 0, "{:?}", rec.first_error);
    assert_eq!(rec.messages, 1);
    assert!(rec.bytes_received.unwrap_or(0) > 0);
    assert!(rec.secs > 0.0 && rec.p99_us.is_some());

    server.stop().await;
}
