//! Password hashing and verification (Argon2id), run off the async worker threads.
//!
//! Hashing is deliberately slow, so it runs on a few threads of its own (`pool`, one
//! per permit) at a lower CPU priority than the chat, behind a semaphore: a burst of
//! logins queues here instead of occupying every worker thread, and on a busy core the
//! kernel runs the chat first.
//!
//! Each hash needs a work area of `m_cost` KiB (19 MiB). The areas are kept and reused,
//! at most one per permit, instead of being allocated per hash: a freed area that size
//! raises glibc's mmap threshold, after which every blocking thread's malloc arena kept
//! one freed area, so the server's memory grew in 19 MiB steps after login bursts.

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

mod pool;

pub use pool::HASH_NICE;
use pool::HashPool;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes; bounds the work one login can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest work area a stored hash may ask for (1 GiB; the default is 19 MiB), so a hash
/// with an absurd cost fails to verify instead of exhausting memory.
const MAX_WORK_BLOCKS: usize = 1 << 20;

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The hashing library failed (never expected with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task panicked or was cancelled.
    #[error("password hashing task failed")]
    Task,
}

/// Hashes and verifies passwords with a bound on concurrent hashes.
#[derive(Clone)]
pub struct Authenticator {
    /// Limits hashes in flight; each one uses ~19 MiB and a core for tens of milliseconds.
    permits: Arc<Semaphore>,
    /// Work areas of finished hashes, for the next ones (at most one per permit).
    areas: Arc<WorkAreas>,
    /// The hashing threads, one per permit.
    pool: Arc<HashPool>,
    /// A real hash of a random password, verified against when the user is unknown so
    /// that "no such user" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
}

impl Authenticator {
    /// Creates an authenticator allowing `max_in_flight` concurrent hashes, each on a
    /// hashing thread of its own.
    pub async fn new(max_in_flight: usize) -> Result<Authenticator, AuthError> {
        let max_in_flight = max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let areas = Arc::new(WorkAreas::default());
        let pool =
            Arc::new(HashPool::start(max_in_flight).map_err(|e| AuthError::Hash(e.to_string()))?);
        let random: [u8; 32] = rand::random();
        let dummy = areas.clone();
        let dummy_hash = pool.run(move || hash_with(&dummy, &random)).await??;
        Ok(Authenticator {
            permits,
            areas,
            pool,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string (Argon2id, OWASP parameters, random salt).
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _permit = self.permits.acquire().await.map_err(|_| AuthError::Task)?;
        let areas = self.areas.clone();
        let password = password.as_bytes().to_vec();
        self.pool.run(move || hash_with(&areas, &password)).await?
    }

    /// Checks `password` against `stored` (or against a dummy hash when `stored` is
    /// `None`, so both outcomes take the same time). Returns true only on a match.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_string);
        let password = password.as_bytes().to_vec();
        let areas = self.areas.clone();
        let matched = self
            .pool
            .run(move || verify_with(&areas, &password, &hash))
            .await
            .unwrap_or(false);
        known && matched
    }
}

/// Argon2 work areas kept between hashes (see the module documentation).
#[derive(Default)]
struct WorkAreas(Mutex<Vec<Vec<Block>>>);

impl WorkAreas {
    /// Runs `f` with a work area of `blocks` blocks: a kept one when it fits, else a new
    /// one. Afterwards the area is kept if it has the default size (an old hash with a
    /// larger cost gets a temporary area).
    fn with<R>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let kept = {
            let mut areas = self.lock();
            let fits = areas.last().is_some_and(|a| a.len() >= blocks);
            if fits { areas.pop() } else { None }
        };
        let mut area = kept.unwrap_or_else(|| vec![Block::new(); blocks]);
        let result = f(&mut area[..blocks]);
        if area.len() == Params::DEFAULT.block_count() {
            self.lock().push(area);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // A list of buffers cannot be left inconsistent by a panic; recover the guard.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hashes `password` with a random salt into a PHC string, in a kept work area.
fn hash_with(areas: &WorkAreas, password: &[u8]) -> Result<String, AuthError> {
    let err = |e: &dyn std::fmt::Display| AuthError::Hash(e.to_string());
    let params = Params::DEFAULT;
    let salt: [u8; argon2::RECOMMENDED_SALT_LEN] = rand::random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    areas
        .with(params.block_count(), |area| {
            argon.hash_password_into_with_memory(password, &salt, &mut out, area)
        })
        .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| err(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| err(&e))?),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored` (any Argon2 variant and cost it
/// names), computed in a kept work area; false for anything unparsable.
fn verify_with(areas: &WorkAreas, password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.block_count() > MAX_WORK_BLOCKS {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let hashed = areas.with(params.block_count(), |area| {
        argon.hash_password_into_with_memory(password, salt, &mut out, area)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

/// Checks a new password against the length rules; the error is safe to show.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let auth = Authenticator::new(2).await.expect("authenticator");
        let h1 = auth.hash("correct horse").await.expect("hash");
        let h2 = auth.hash("correct horse").await.expect("hash");
        assert!(h1.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h1}");
        assert_ne!(h1, h2, "salts differ");
        assert!(!h1.contains("correct horse"));
        assert!(auth.verify("correct horse", Some(&h1)).await);
        assert!(!auth.verify("wrong horse", Some(&h1)).await);
        assert!(!auth.verify("correct horse", None).await);
    }

    #[test]
    fn hashes_interoperate_with_the_library_and_reuse_one_work_area() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let areas = WorkAreas::default();
        // Ours verifies with the library, and the library's (as stored by earlier
        // versions) with ours.
        let ours = hash_with(&areas, b"correct horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .expect("library hash")
            .to_string();
        assert!(verify_with(&areas, b"battery staple", &theirs));
        assert!(!verify_with(&areas, b"battery stapler", &theirs));
        assert!(verify_with(&areas, b"correct horse", &ours));
        // Three hashes one after another needed one area, kept for the next.
        assert_eq!(areas.lock().len(), 1);
        // Another cost (a smaller one, to keep the test fast) verifies in a temporary
        // area, which is not kept.
        let small = Params::new(64, 1, 1, None).expect("params");
        let cheap = Argon2::new(Algorithm::Argon2i, Version::V0x10, small)
            .hash_password(b"tr0ub4dor&3")
            .expect("library hash")
            .to_string();
        assert!(cheap.starts_with("$argon2i$v=16$m=64,t=1,p=1$"), "{cheap}");
        assert!(verify_with(&areas, b"tr0ub4dor&3", &cheap));
        assert!(!verify_with(&areas, b"tr0ub4dor&4", &cheap));
        assert_eq!(areas.lock().len(), 1);
        assert_eq!(areas.lock()[0].len(), Params::DEFAULT.block_count());
        // A stored cost beyond the bound is refused before any allocation.
        let huge = cheap.replace("m=64,", "m=4294967295,");
        assert!(!verify_with(&areas, b"tr0ub4dor&3", &huge));
        // Anything unparsable or incomplete is a mismatch, not a panic.
        for bad in ["", "plain", "$argon2id$v=19$m=19456,t=2,p=1", "$md5$x$y"] {
            assert!(!verify_with(&areas, b"x", bad), "{bad}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
