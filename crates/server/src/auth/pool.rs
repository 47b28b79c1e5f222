//! The threads that compute password hashes, at a lower CPU priority than the chat.
//!
//! A login costs an Argon2id hash of tens of milliseconds of CPU. On tokio's blocking
//! pool those hashes competed with the async workers as equals, so a storm of logins on
//! a server with one core took half of it from the people already chatting (their p99
//! rose several-fold). The pool's threads raise their own nice value once, when they
//! start: the kernel then gives the chat's threads the core whenever they want it, and
//! the hashes every cycle the chat leaves idle, so logins stay as fast as before on a
//! server that is not saturated.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::AuthError;

/// Nice value of the hashing threads (0 is the default, 19 the lowest priority): under
/// contention the kernel gives a nice-10 thread about a tenth of what a nice-0 thread
/// gets, so logins still progress while the chat saturates the core.
pub const HASH_NICE: i32 = 10;

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads fed through one queue. The queue itself is unbounded,
/// but every caller holds one of the authenticator's permits, so at most that many jobs
/// ever wait in it.
pub(super) struct HashPool {
    /// Jobs for the threads; the threads stop once this is dropped.
    tx: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// Starts `threads` hashing threads at nice value [`HASH_NICE`].
    pub(super) fn start(threads: usize) -> std::io::Result<HashPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("natter-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { break };
                        // A panicking job drops its reply (its caller gets an error);
                        // the thread goes on serving the others.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(HashPool { tx: Mutex::new(tx) })
    }

    /// Runs `work` on a hashing thread and returns its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        {
            let tx = self.tx.lock().map_err(|_| AuthError::Task)?;
            tx.send(job).map_err(|_| AuthError::Task)?;
        }
        // A panicking hash drops `reply`: an error, not a hang.
        answer.await.map_err(|_| AuthError::Task)
    }
}

/// Raises the calling thread's nice value to [`HASH_NICE`]. On Linux the nice value is
/// per thread, and raising it needs no privilege; where that fails the thread keeps the
/// default priority (logged once per thread).
fn lower_priority() {
    // `None` is the caller: on Linux, this thread.
    if let Err(e) = rustix::process::setpriority_process(None, HASH_NICE) {
        tracing::warn!(error = %e, "cannot lower the password hashing threads' priority");
    }
}

/// The nice value of the calling thread (for tests).
#[cfg(test)]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(None).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_lower_priority_threads_and_return_results() {
        let pool = HashPool::start(2).expect("pool");
        let (name, answer) = pool
            .run(|| {
                let name = std::thread::current().name().map(str::to_string);
                (name, 6 * 7)
            })
            .await
            .expect("run");
        assert_eq!(answer, 42);
        assert!(name.is_some_and(|n| n.starts_with("natter-hash-")));
        // Linux keeps a nice value per thread: the pool's, not the test's, is raised.
        let nice = pool.run(current_nice).await.expect("run");
        // (A runner already at a higher nice value keeps it: lowering needs privilege.)
        assert_eq!(nice, HASH_NICE.max(current_nice()));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_goes_on() {
        let pool = HashPool::start(1).expect("pool");
        let failed = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(AuthError::Task)));
        // The pool's one thread survived it.
        assert_eq!(pool.run(|| 1).await.expect("run"), 1);
    }
}
