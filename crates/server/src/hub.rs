//! The hub: who is online, and fan-out of frames to sessions.
//!
//! The hub is the single owner of presence state. It sits behind one std `Mutex` that is
//! only held for short, non-async sections (never across an `.await`). Delivering a frame
//! means serializing it once into [`Bytes`] and `try_send`ing a cheap clone into each
//! recipient's bounded queue; the hub never does I/O. A recipient whose queue is full is
//! a slow consumer: it is told to close (through its [`Closer`]) instead of making the
//! hub, or anyone else, wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use natter_proto::{PresenceEvent, ServerFrame, encode, name_key};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Identifies one connection's session within the hub.
pub type SessionId = u64;

/// Asks a session to end, with the reason (first reason wins).
#[derive(Debug, Clone, Default)]
pub struct Closer {
    /// Fires when the session must end.
    token: CancellationToken,
    /// Why; shown to the user and logged.
    reason: Arc<OnceLock<String>>,
}

impl Closer {
    /// Requests the session to close for `reason`; later reasons are ignored.
    pub fn close(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    /// Resolves once [`Closer::close`] was called.
    pub async fn closed(&self) {
        self.token.cancelled().await
    }

    /// The reason given to [`Closer::close`], if any.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

/// The hub's handle on one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The session's bounded outgoing queue of encoded lines.
    pub tx: mpsc::Sender<Bytes>,
    /// Ends the session (slow consumer, later: kick).
    pub closer: Closer,
}

impl SessionHandle {
    /// Queues an encoded line without waiting; a full queue closes the session.
    pub fn deliver(&self, line: Bytes) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.closer.close("slow consumer: outgoing queue full");
            }
            // The session is already ending; nothing to do.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Registered session: whose it is and how to reach it.
struct Entry {
    /// Case-folded account name.
    user_key: String,
    /// Queue and closer.
    handle: SessionHandle,
}

/// An account that has at least one session online.
struct OnlineUser {
    /// Display name (case as registered).
    name: String,
    /// Its sessions, usually one.
    sessions: Vec<SessionId>,
}

#[derive(Default)]
struct State {
    /// Next session id to hand out.
    next_id: SessionId,
    /// Every authenticated session.
    sessions: HashMap<SessionId, Entry>,
    /// Online accounts by case-folded name.
    users: HashMap<String, OnlineUser>,
    /// Set during shutdown: suppresses presence notices nobody needs.
    closing: bool,
}

/// Why a private message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateError {
    /// The recipient has no session online.
    NotOnline,
}

/// Presence and fan-out for all authenticated sessions.
#[derive(Default)]
pub struct Hub {
    /// All hub state; see the module doc for the locking rule.
    state: Mutex<State>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters more than stopping chat for everyone, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an authenticated session of `user`; announces the user if this is their
    /// first session. Returns the session's id.
    pub fn join(&self, user: &str, handle: SessionHandle) -> SessionId {
        let key = name_key(user);
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let online = st.users.entry(key.clone()).or_insert_with(|| OnlineUser {
            name: user.to_string(),
            sessions: Vec::new(),
        });
        let first = online.sessions.is_empty();
        online.sessions.push(id);
        if first && !st.closing {
            let line = encode(&ServerFrame::Presence {
                user: user.to_string(),
                event: PresenceEvent::Join,
                reason: None,
            });
            for entry in st.sessions.values() {
                entry.handle.deliver(line.clone());
            }
        }
        st.sessions.insert(
            id,
            Entry {
                user_key: key,
                handle,
            },
        );
        id
    }

    /// Removes a session; announces the user's departure with `reason` if it was their
    /// last session.
    pub fn leave(&self, id: SessionId, reason: &str) {
        let mut st = self.lock();
        let Some(entry) = st.sessions.remove(&id) else {
            return;
        };
        let Some(online) = st.users.get_mut(&entry.user_key) else {
            return;
        };
        online.sessions.retain(|s| *s != id);
        if !online.sessions.is_empty() {
            return;
        }
        let name = online.name.clone();
        st.users.remove(&entry.user_key);
        if st.closing {
            return;
        }
        let line = encode(&ServerFrame::Presence {
            user: name,
            event: PresenceEvent::Leave,
            reason: Some(reason.to_string()),
        });
        for e in st.sessions.values() {
            e.handle.deliver(line.clone());
        }
    }

    /// Sends a frame to every authenticated session.
    pub fn broadcast(&self, frame: &ServerFrame) {
        let line = encode(frame);
        let st = self.lock();
        for e in st.sessions.values() {
            e.handle.deliver(line.clone());
        }
    }

    /// Delivers a private message to every session of `to` and of `from`, naming both
    /// by their registered display names.
    pub fn send_private(
        &self,
        from: &str,
        to: &str,
        text: &str,
        ts: u64,
    ) -> Result<(), PrivateError> {
        let st = self.lock();
        let to_key = name_key(to);
        let target = st.users.get(&to_key).ok_or(PrivateError::NotOnline)?;
        let line = encode(&ServerFrame::Private {
            from: from.to_string(),
            to: target.name.clone(),
            text: text.to_string(),
            ts,
        });
        let from_key = name_key(from);
        let sender = st.users.get(&from_key).filter(|_| from_key != to_key);
        for id in target
            .sessions
            .iter()
            .chain(sender.into_iter().flat_map(|u| u.sessions.iter()))
        {
            if let Some(e) = st.sessions.get(id) {
                e.handle.deliver(line.clone());
            }
        }
        Ok(())
    }

    /// The display name of `user` if they are online.
    pub fn online_name(&self, user: &str) -> Option<String> {
        self.lock()
            .users
            .get(&name_key(user))
            .map(|u| u.name.clone())
    }

    /// Names of everyone online, sorted case-insensitively.
    pub fn online_users(&self) -> Vec<String> {
        let st = self.lock();
        let mut keys: Vec<&String> = st.users.keys().collect();
        keys.sort();
        keys.into_iter().map(|k| st.users[k].name.clone()).collect()
    }

    /// Number of authenticated sessions.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Marks the server as shutting down: no more presence notices.
    pub fn set_closing(&self) {
        self.lock().closing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(depth: usize) -> (SessionHandle, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(depth);
        (
            SessionHandle {
                tx,
                closer: Closer::default(),
            },
            rx,
        )
    }

    fn frames(rx: &mut mpsc::Receiver<Bytes>) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        while let Ok(line) = rx.try_recv() {
            out.push(natter_proto::decode_server(&line[..line.len() - 1]).expect("valid frame"));
        }
        out
    }

    #[test]
    fn presence_is_announced_once_per_account() {
        let hub = Hub::new();
        let (a, mut arx) = session(8);
        let (b1, _b1rx) = session(8);
        let (b2, _b2rx) = session(8);
        hub.join("alice", a);
        let b1id = hub.join("Bob", b1);
        let b2id = hub.join("Bob", b2);
        hub.leave(b1id, "quit");
        hub.leave(b2id, "connection lost");
        let got = frames(&mut arx);
        assert_eq!(
            got,
            vec![
                ServerFrame::Presence {
                    user: "Bob".into(),
                    event: PresenceEvent::Join,
                    reason: None
                },
                ServerFrame::Presence {
                    user: "Bob".into(),
                    event: PresenceEvent::Leave,
                    reason: Some("connection lost".into())
                },
            ]
        );
    }

    #[test]
    fn private_reaches_target_and_sender_sessions_only() {
        let hub = Hub::new();
        let (a, mut arx) = session(8);
        let (b, mut brx) = session(8);
        let (c, mut crx) = session(8);
        hub.join("alice", a);
        hub.join("bob", b);
        hub.join("carol", c);
        let _ = (frames(&mut arx), frames(&mut brx), frames(&mut crx));
        let f = ServerFrame::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: "hi".into(),
            ts: 1,
        };
        assert_eq!(hub.send_private("alice", "BOB", "hi", 1), Ok(()));
        assert_eq!(frames(&mut arx), vec![f.clone()]);
        assert_eq!(frames(&mut brx), vec![f.clone()]);
        assert!(frames(&mut crx).is_empty());
        assert_eq!(
            hub.send_private("alice", "dave", "hi", 1),
            Err(PrivateError::NotOnline)
        );
    }

    #[test]
    fn full_queue_closes_only_that_session() {
        let hub = Hub::new();
        let (slow, _slow_rx) = session(1);
        let slow_closer = slow.closer.clone();
        let (fast, mut fast_rx) = session(64);
        let fast_closer = fast.closer.clone();
        hub.join("slow", slow);
        hub.join("fast", fast);
        for i in 0..3 {
            hub.broadcast(&ServerFrame::System {
                text: format!("n{i}"),
            });
        }
        assert!(
            slow_closer
                .reason()
                .is_some_and(|r| r.contains("slow consumer"))
        );
        assert_eq!(fast_closer.reason(), None);
        assert_eq!(frames(&mut fast_rx).len(), 3);
    }

    #[test]
    fn list_is_sorted_case_insensitively() {
        let hub = Hub::new();
        let mut receivers = Vec::new();
        for n in ["carol", "Alice", "bob"] {
            let (h, rx) = session(8);
            receivers.push(rx);
            hub.join(n, h);
        }
        assert_eq!(hub.online_users(), vec!["Alice", "bob", "carol"]);
    }
}
