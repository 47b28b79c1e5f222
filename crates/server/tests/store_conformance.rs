//! The store conformance suite (`natter_server::store::conformance`) against
//! `SqliteStore` and `PostgresStore`: for each, once with one handle per database, once
//! with two stores opened on one database, as two processes sharing it would be.
//! PostgreSQL runs on a server the test starts itself (`support/postgres.rs`).

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use natter_server::store::conformance::{Handles, run_all};
use natter_server::store::{NewMessage, PostgresStore, SqliteStore, Store, StoreError, Target};

/// Fresh databases in subdirectories of one temporary directory, `handles` stores each.
struct Fresh {
    /// Removed (with every database in it) when the test ends.
    dir: tempfile::TempDir,
    /// Databases made so far, naming the next one's directory.
    made: usize,
    /// Stores opened on each database.
    handles: usize,
}

impl Fresh {
    fn new(handles: usize) -> Fresh {
        Fresh {
            dir: tempfile::tempdir().expect("tempdir"),
            made: 0,
            handles,
        }
    }

    fn next(&mut self) -> Handles {
        self.made += 1;
        let path = self.dir.path().join(format!("db{}", self.made));
        std::fs::create_dir(&path).expect("database dir");
        (0..self.handles)
            .map(|_| Arc::new(SqliteStore::open(&path).expect("open store")) as Arc<dyn Store>)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_the_store_promises() {
    let mut fresh = Fresh::new(1);
    run_all(|| std::future::ready(fresh.next())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_stores_on_one_database_keep_the_store_promises() {
    let mut fresh = Fresh::new(2);
    run_all(|| std::future::ready(fresh.next())).await;
}

/// Runs the suite on a fresh PostgreSQL server, each check on a database of its own,
/// with `handles` stores (each its own pool, as separate processes) per database.
async fn postgres_suite(handles: usize) {
    let Some(server) = postgres::TestPostgres::start().await else {
        return;
    };
    let started = std::time::Instant::now();
    let server = &server;
    run_all(|| async move {
        let url = server.fresh_database().await;
        let mut stores = Handles::new();
        for _ in 0..handles {
            let store = PostgresStore::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            stores.push(Arc::new(store) as Arc<dyn Store>);
        }
        stores
    })
    .await;
    eprintln!(
        "PostgreSQL conformance ({handles} handles): {:?}",
        started.elapsed()
    );
    if handles == 1 {
        one_bad_message_fails_alone(&server.fresh_database().await).await;
    }
}

/// PostgreSQL aborts a whole transaction on one failed statement; a message it rejects
/// (text with a NUL byte) fails alone, and the messages batched with it are stored with
/// gapless room numbers.
async fn one_bad_message_fails_alone(url: &str) {
    let store = PostgresStore::connect(url).await.expect("connect");
    let msg = |text: &str| NewMessage {
        from: "al".into(),
        target: Target::Room("lobby".into()),
        text: text.into(),
        ts: 1,
        client_id: None,
    };
    let mut commits = Vec::new();
    for text in ["one", "bad\0", "two"] {
        commits.push(store.queue_message(msg(text)).await.expect("queue"));
    }
    let mut results = Vec::new();
    for c in commits {
        results.push(c.await);
    }
    assert!(
        matches!(results[1], Err(StoreError::Db(_))),
        "the bad message fails"
    );
    let seqs: Vec<_> = [&results[0], &results[2]]
        .iter()
        .map(|r| r.as_ref().expect("stored").room_seq)
        .collect();
    assert_eq!(seqs, [Some(1), Some(2)], "the others are stored, no gap");
    let history = store.room_since("lobby", 0, 10).await.expect("since");
    assert_eq!(history.len(), 2);
}

#[tokio::test]
async fn postgres_store_unreachable_fails_as_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/none?connect_timeout=2");
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        PostgresStore::connect(&url),
    )
    .await
    .expect("connect gives up in time");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "an unreachable database is unavailable (sessions answer `unavailable`)"
    );
}

/// `sslmode=require` encrypts and checks PostgreSQL's certificate: with the CA that
/// signed it the store works; trusting only the system's roots, a self-made certificate
/// is refused; without `sslmode` the store connects in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_certificate() {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let Some(pg) = postgres::TestPostgres::start_tls(&cert.pem(), &key.serialize_pem()).await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("CA file");
    let url = pg.fresh_database().await;
    let tls_url = format!("{url}&sslmode=require");
    let store = PostgresStore::connect_with(&tls_url, Some(&ca_file))
        .await
        .expect("TLS with the right CA");
    store
        .create_user("al", "hash")
        .await
        .expect("works over TLS");
    let refused = PostgresStore::connect_with(&tls_url, None).await;
    assert!(
        refused.is_err(),
        "a certificate nobody vouches for is refused"
    );
    let plain = PostgresStore::connect(&url)
        .await
        .expect("plaintext without sslmode");
    assert!(plain.get_user("al").await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_store_promises() {
    postgres_suite(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_stores_on_one_database_keep_the_store_promises() {
    postgres_suite(2).await;
}
