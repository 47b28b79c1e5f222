//! The store conformance suite (`natter_server::store::conformance`) against
//! `SqliteStore` and `PostgresStore`: for each, once with one handle per database, once
//! with two stores opened on one database, as two processes sharing it would be.
//! PostgreSQL runs on a server the test starts itself (`support/postgres.rs`).

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use natter_server::store::conformance::{Handles, run_all};
use natter_server::store::{PostgresStore, SqliteStore, Store};

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_store_promises() {
    postgres_suite(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_stores_on_one_database_keep_the_store_promises() {
    postgres_suite(2).await;
}
