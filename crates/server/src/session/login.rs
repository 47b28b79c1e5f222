//! Logging in and registering: password checks behind the login throttle, the
//! per-connection failure budget, and what a new session gets (the lobby, late private
//! messages).

use natter_proto::{DEFAULT_ROOM, ErrorCode, FrameId, ServerFrame, validate_username};
use tokio::time::Instant;

use super::{Flow, LoggedIn, MAX_AUTH_FAILURES, Session, internal};
use crate::auth::check_new_password;
use crate::store::StoreError;
use crate::transcript::Event;

impl Session {
    pub(super) async fn auth(
        &mut self,
        id: Option<FrameId>,
        user: &str,
        password: &str,
        register: bool,
    ) -> Flow {
        let result = if register {
            self.register(user, password).await
        } else {
            self.login(user, password).await
        };
        match result {
            Ok(name) => {
                self.shared.metrics.login(self.handle.transport(), true);
                self.reply(&ServerFrame::AuthOk {
                    id,
                    user: name.clone(),
                    registered: register,
                });
                let sid = self.shared.bus.connect(&name, self.handle.clone());
                tracing::info!(peer = %self.peer, user = %name, registered = register, "logged in");
                self.shared.emit(Event::System {
                    kind: if register { "register" } else { "login" },
                    detail: format!("user={name} addr={}", self.peer),
                    ts_ms: crate::now_ms(),
                });
                self.user = Some(LoggedIn {
                    name: name.clone(),
                    id: sid,
                });
                if self.handle.joins_lobby() {
                    self.join(None, DEFAULT_ROOM).await;
                }
                self.deliver_pending(&name).await;
                Flow::Continue
            }
            Err((code, message)) => {
                self.error(id, code, message);
                if matches!(code, ErrorCode::AuthFailed | ErrorCode::Banned) {
                    self.shared.metrics.login(self.handle.transport(), false);
                }
                if code == ErrorCode::Banned {
                    self.shared.emit(Event::System {
                        kind: "login_refused",
                        detail: format!("user={user} addr={} reason=banned", self.peer),
                        ts_ms: crate::now_ms(),
                    });
                }
                if matches!(code, ErrorCode::AuthFailed | ErrorCode::UsernameTaken) {
                    // A taken name counts like a wrong password (see `register`).
                    self.auth_failures += 1;
                    tracing::info!(peer = %self.peer, register, "failed login");
                    // Only valid names reach the log file: the name is attacker-chosen.
                    let shown = if validate_username(user).is_ok() {
                        user
                    } else {
                        "(invalid)"
                    };
                    self.shared.emit(Event::System {
                        kind: if register {
                            "register_failed"
                        } else {
                            "login_failed"
                        },
                        detail: format!("user={shown} addr={}", self.peer),
                        ts_ms: crate::now_ms(),
                    });
                    if self.auth_failures >= MAX_AUTH_FAILURES {
                        self.bye("too many failed logins");
                        return Flow::Close("too many failed logins".into());
                    }
                }
                Flow::Continue
            }
        }
    }

    async fn register(&self, user: &str, password: &str) -> Result<String, (ErrorCode, String)> {
        validate_username(user).map_err(|e| (ErrorCode::InvalidUsername, e.to_string()))?;
        check_new_password(password).map_err(|m| (ErrorCode::InvalidPassword, m))?;
        // A taken name is revealed, so registrations pass the address's gate like
        // logins and a taken name counts as a failure: names cannot be enumerated
        // faster than passwords can be guessed.
        let attempt = self.shared.logins.begin(None, self.peer.ip()).await;
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        let hash = self
            .shared
            .auth
            .hash(password)
            .await
            .map_err(|e| internal(&e))?;
        match self.shared.store.create_user(user, &hash).await {
            Ok(()) => Ok(user.to_string()),
            Err(StoreError::NameTaken) => {
                attempt.failed(Instant::now());
                Err((
                    ErrorCode::UsernameTaken,
                    format!("the user name '{user}' is already taken"),
                ))
            }
            Err(e) => Err(internal(&e)),
        }
    }

    async fn login(&self, user: &str, password: &str) -> Result<String, (ErrorCode, String)> {
        let valid = validate_username(user).is_ok();
        // Invalid names share one key: they cannot be accounts, and an attacker-chosen
        // string must not become a large map key.
        let key = if valid {
            natter_proto::name_key(user)
        } else {
            String::new()
        };
        // Reserved before the hash, so parallel guesses wait as guesses one after
        // another would; the connection waits here, holding only its own slot.
        let attempt = self.shared.logins.begin(Some(&key), self.peer.ip()).await;
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        let record = if valid {
            self.shared
                .store
                .get_user(user)
                .await
                .map_err(|e| internal(&e))?
        } else {
            None
        };
        // Unknown users are verified against a dummy hash: same time, same answer.
        let ok = self
            .shared
            .auth
            .verify(password, record.as_ref().map(|r| r.password_hash.as_str()))
            .await;
        match record {
            Some(r) if ok => {
                attempt.succeeded(Instant::now());
                if r.banned {
                    return Err((
                        ErrorCode::Banned,
                        "this account is banned by an operator".to_string(),
                    ));
                }
                Ok(r.name)
            }
            _ => {
                attempt.failed(Instant::now());
                Err((
                    ErrorCode::AuthFailed,
                    "invalid user name or password".to_string(),
                ))
            }
        }
    }
}
