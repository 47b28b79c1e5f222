//! The operator's password and the console's login sessions.
//!
//! There is no built-in password: it comes from the configuration, or is generated on
//! first start (printed once by the binary) with only its Argon2id hash kept in
//! `DATA_DIR/admin_password.hash`. A login yields a random session token (the cookie)
//! and a random CSRF token that every state-changing request must echo in a header.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::throttle::LoginThrottle;

/// File holding the generated password's hash, inside the data directory.
pub const HASH_FILE: &str = "admin_password.hash";

/// The store setting holding a cluster's generated password hash.
pub const SETTING: &str = "operator_password_hash";
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Console sessions kept at once; the oldest is dropped beyond this.
const MAX_SESSIONS: usize = 64;
/// A failed-login delay longer than this is answered at once with "try later".
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Length of a generated password (alphanumeric, about 143 bits).
const GENERATED_LEN: usize = 24;

/// Errors preparing the operator password.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The hash file could not be read or written.
    #[error("operator password file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The hash file does not hold an Argon2 hash.
    #[error("operator password file {0} is corrupt; delete it to generate a new password")]
    Corrupt(PathBuf),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] crate::auth::AuthError),
    /// The cluster's database could not be asked for the shared password.
    #[error("operator password in the cluster's database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong password.
    Wrong,
    /// Too many failures: try again after this long.
    Throttled(Duration),
}

/// A logged-in console session.
#[derive(Debug, Clone)]
struct ConsoleSession {
    /// Must accompany state-changing requests.
    csrf: String,
    /// When it stops being valid.
    expires: Instant,
    /// When it was created, to drop the oldest first.
    created: Instant,
}

/// The operator's credentials and console sessions.
pub struct OperatorAuth {
    /// Argon2id hash of the operator password.
    hash: String,
    /// Session token → session.
    sessions: Mutex<HashMap<String, ConsoleSession>>,
    /// Delays after failed logins, per address.
    throttle: LoginThrottle,
}

impl OperatorAuth {
    /// Loads or creates the operator password. Returns the generated password when one
    /// was created now, for the binary to print once. A cluster node (`shared` is the
    /// cluster's store) keeps the hash there, so every node has the same password: the
    /// first node to start generates it, the others use it.
    pub async fn open(
        config: &Config,
        auth: &Authenticator,
        shared: Option<&dyn crate::store::Store>,
    ) -> Result<(OperatorAuth, Option<String>), OperatorError> {
        let path = config.data_dir.join(HASH_FILE);
        let (hash, generated) = match (&config.admin_password, shared) {
            (Some(p), _) => (auth.hash(&p.0).await?, None),
            (None, Some(store)) => match store.setting(SETTING).await? {
                Some(h) => (h, None),
                None => {
                    let password = generate();
                    let h = auth.hash(&password).await?;
                    let held = store.init_setting(SETTING, &h).await?;
                    // Another node may have been first: then its password holds.
                    let mine = held == h;
                    (held, mine.then_some(password))
                }
            },
            (None, None) => match read_hash(&path)? {
                Some(h) => (h, None),
                None => {
                    let password = generate();
                    let h = auth.hash(&password).await?;
                    write_hash(&path, &h)?;
                    (h, Some(password))
                }
            },
        };
        Ok((
            OperatorAuth {
                hash,
                sessions: Mutex::default(),
                throttle: LoginThrottle::new(config.logins.clone()),
            },
            generated,
        ))
    }

    /// Checks the password; on success returns a new (session token, CSRF token).
    pub async fn login(
        &self,
        auth: &Authenticator,
        password: &str,
        ip: IpAddr,
    ) -> Result<(String, String), LoginRefused> {
        self.check(auth, password, ip).await?;
        let (token, csrf) = (random_token(), random_token());
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            token.clone(),
            ConsoleSession {
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
                created: now,
            },
        );
        Ok((token, csrf))
    }

    /// Checks the operator password from `ip` behind the operator login throttle (the
    /// console's login, and IRC's OPER).
    pub async fn check(
        &self,
        auth: &Authenticator,
        password: &str,
        ip: IpAddr,
    ) -> Result<(), LoginRefused> {
        // Reserved before the hash: parallel requests from one address wait their turn
        // as requests one after another would. The delays belong to the guessing
        // address (see crate::throttle), so the real operator elsewhere is not locked out.
        let attempt = self.throttle.begin(Some("operator"), ip).await;
        let delay = attempt.delay();
        if delay > MAX_WAIT {
            // Dropped unfinished: refused without a check, not counted again.
            return Err(LoginRefused::Throttled(delay));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !auth.verify(password, Some(&self.hash)).await {
            attempt.failed(Instant::now());
            return Err(LoginRefused::Wrong);
        }
        attempt.succeeded(Instant::now());
        Ok(())
    }

    /// The CSRF token of a live session, or `None` if `token` is unknown or expired.
    pub fn session(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let sessions = self.lock();
        sessions
            .iter()
            .find(|(k, s)| s.expires > now && ct_eq(k.as_bytes(), token.as_bytes()))
            .map(|(_, s)| s.csrf.clone())
    }

    /// Whether `csrf` is the CSRF token of the live session `token`.
    pub fn check_csrf(&self, token: &str, csrf: &str) -> bool {
        self.session(token)
            .is_some_and(|expected| ct_eq(expected.as_bytes(), csrf.as_bytes()))
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) {
        self.lock()
            .retain(|k, _| !ct_eq(k.as_bytes(), token.as_bytes()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConsoleSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Compares secrets without an early exit on the first difference.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes as hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A strong random password, easy to copy (letters and digits).
fn generate() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(GENERATED_LEN)
        .map(char::from)
        .collect()
}

fn read_hash(path: &Path) -> Result<Option<String>, OperatorError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let h = text.trim().to_string();
            if argon2::PasswordHash::new(&h).is_err() {
                return Err(OperatorError::Corrupt(path.to_path_buf()));
            }
            Ok(Some(h))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OperatorError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_hash(path: &Path, hash: &str) -> Result<(), OperatorError> {
    let err = |source| OperatorError::File {
        path: path.to_path_buf(),
        source,
    };
    crate::fsutil::create_private_file(path).map_err(err)?;
    std::fs::write(path, format!("{hash}\n")).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_once_then_loaded_from_the_hash_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::with_data_dir(dir.path());
        let auth = Authenticator::new(2).await.expect("auth");
        let (op, generated) = OperatorAuth::open(&config, &auth, None)
            .await
            .expect("open");
        let password = generated.expect("a password is generated on first start");
        assert_eq!(password.len(), GENERATED_LEN);
        let stored = std::fs::read_to_string(dir.path().join(HASH_FILE)).expect("hash file");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains(&password), "only the hash is stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HASH_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (token, csrf) = op.login(&auth, &password, ip).await.expect("login");
        assert_eq!(op.session(&token), Some(csrf.clone()));
        assert!(op.check_csrf(&token, &csrf));
        assert!(!op.check_csrf(&token, "nope"));
        op.logout(&token);
        assert_eq!(op.session(&token), None);

        let (again, generated) = OperatorAuth::open(&config, &auth, None)
            .await
            .expect("reopen");
        assert_eq!(generated, None, "never printed twice");
        assert!(again.login(&auth, &password, ip).await.is_ok());
        assert_eq!(
            again.login(&auth, "wrong", ip).await,
            Err(LoginRefused::Wrong)
        );
    }

    #[tokio::test]
    async fn configured_password_wins_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::with_data_dir(dir.path());
        config.admin_password = Some(crate::config::Secret("configured secret".into()));
        let auth = Authenticator::new(2).await.expect("auth");
        let (op, generated) = OperatorAuth::open(&config, &auth, None)
            .await
            .expect("open");
        assert_eq!(generated, None);
        assert!(!dir.path().join(HASH_FILE).exists());
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(op.login(&auth, "configured secret", ip).await.is_ok());
    }

    #[tokio::test]
    async fn cluster_nodes_share_the_password_the_first_one_generated() {
        let shared_dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SqliteStore::open(shared_dir.path()).expect("store");
        let auth = Authenticator::new(2).await.expect("auth");
        let ip = IpAddr::from([127, 0, 0, 1]);
        let (node_a, node_b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (a, first) =
            OperatorAuth::open(&Config::with_data_dir(node_a.path()), &auth, Some(&store))
                .await
                .expect("open a");
        let password = first.expect("the first node generates it");
        let (b, second) =
            OperatorAuth::open(&Config::with_data_dir(node_b.path()), &auth, Some(&store))
                .await
                .expect("open b");
        assert_eq!(second, None, "the second node uses the first one's");
        assert!(a.login(&auth, &password, ip).await.is_ok());
        assert!(b.login(&auth, &password, ip).await.is_ok());
        assert!(
            !node_a.path().join(HASH_FILE).exists(),
            "kept in the shared store"
        );
    }
}
