//! The store conformance suite (`natter_server::store::conformance`) against
//! `SqliteStore`: once with one handle per database, once with two stores opened on one
//! file, as two processes sharing a database would be.

use std::sync::Arc;

use natter_server::store::conformance::{Handles, run_all};
use natter_server::store::{SqliteStore, Store};

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
