//! Smoke test: the fan-out workload at tiny N against an in-process natter server.
//! Asserts that every delivery was verified; no timing assertions.

use std::time::Duration;

use natter_bench::client::{Kind, Target};
use natter_bench::workload::{self, FanOut, Phase};
use natter_server::{Config, Server};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_tiny_n_verifies_every_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.plaintext = true;
    config.web_listen = None;
    config.history_on_join = 0;
    config.messages.rate = 1_000_000.0;
    config.messages.burst = 1_000_000.0;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::open(config).await.expect("open server");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));

    let target = Target::plain(Kind::Natter, addr);
    let names = (0..2)
        .map(workload::sender_name)
        .chain((0..5).map(workload::receiver_name))
        .collect();
    workload::register(&target, names, 4)
        .await
        .expect("register");

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

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
