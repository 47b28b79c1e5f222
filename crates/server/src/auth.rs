//! Password hashing and verification (Argon2id), run off the async worker threads.
//!
//! Hashing is deliberately slow, so it runs on tokio's blocking pool behind a semaphore:
//! a burst of logins queues here instead of occupying every worker thread and stalling
//! chat for everyone else.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes; bounds the work one login can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

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
    /// A real hash of a random password, verified against when the user is unknown so
    /// that "no such user" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
}

impl Authenticator {
    /// Creates an authenticator allowing `max_in_flight` concurrent hashes.
    pub async fn new(max_in_flight: usize) -> Result<Authenticator, AuthError> {
        let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let random: [u8; 32] = rand::random();
        let dummy_hash = hash_blocking(random.to_vec()).await?;
        Ok(Authenticator {
            permits,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string (Argon2id, OWASP parameters, random salt).
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _permit = self.permits.acquire().await.map_err(|_| AuthError::Task)?;
        hash_blocking(password.as_bytes().to_vec()).await
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
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(&password, &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

async fn hash_blocking(password: Vec<u8>) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(&password)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    })
    .await
    .map_err(|_| AuthError::Task)?
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
    fn password_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
