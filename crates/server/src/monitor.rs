//! The operator console's live event feed.
//!
//! Every event the transcript logs is also published here, as one JSON text, to the
//! consoles watching (a bounded broadcast: a console that falls behind skips events and
//! is told how many). Nothing is serialized while nobody watches.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::transcript::Event;

/// Events buffered for consoles that fall behind.
const CAPACITY: usize = 4096;

/// One event as the console sees it (see docs/WEB.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorEvent {
    /// Always "event".
    #[serde(rename = "type")]
    pub kind_tag: &'static str,
    /// When it happened, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// What happened: "public", "private", "join", "login", "kick", ...
    pub kind: String,
    /// Who it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The room, for room events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The recipient of a private message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The message text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Anything else, e.g. "addr=127.0.0.1:5000 reason=quit".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl MonitorEvent {
    /// The console's view of a logged event.
    pub fn from_event(event: &Event) -> MonitorEvent {
        let mut m = MonitorEvent {
            kind_tag: "event",
            ts: 0,
            kind: String::new(),
            user: None,
            room: None,
            to: None,
            text: None,
            detail: None,
        };
        match event {
            Event::Private {
                from,
                to,
                text,
                ts_ms,
            } => {
                m.ts = *ts_ms;
                m.kind = "private".into();
                m.user = Some(from.clone());
                m.to = Some(to.clone());
                m.text = Some(text.clone());
            }
            Event::Room {
                room,
                from,
                text,
                ts_ms,
            } => {
                m.ts = *ts_ms;
                m.kind = "public".into();
                m.user = Some(from.clone());
                m.room = Some(room.clone());
                m.text = Some(text.clone());
            }
            Event::RoomPresence {
                room,
                user,
                joined,
                reason,
                ts_ms,
            } => {
                m.ts = *ts_ms;
                m.kind = if *joined { "join" } else { "part" }.into();
                m.user = Some(user.clone());
                m.room = Some(room.clone());
                m.detail = reason.clone();
            }
            Event::System {
                kind,
                detail,
                ts_ms,
            } => {
                m.ts = *ts_ms;
                m.kind = (*kind).to_string();
                // System details are written by this server as "user=NAME rest...".
                match detail.strip_prefix("user=") {
                    Some(rest) => {
                        let (user, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                        m.user = Some(user.to_string());
                        if !rest.is_empty() {
                            m.detail = Some(rest.to_string());
                        }
                    }
                    None if !detail.is_empty() => m.detail = Some(detail.clone()),
                    None => {}
                }
            }
        }
        m
    }
}

/// Publishes events to the consoles watching. Clones share the feed.
#[derive(Clone)]
pub struct Monitor {
    /// Serialized events.
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for Monitor {
    fn default() -> Monitor {
        Monitor {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Monitor {
    /// Sends `event` to every console watching; costs nothing when none is.
    pub fn publish(&self, event: &Event) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(&MonitorEvent::from_event(event)) {
            Ok(json) => {
                let _ = self.tx.send(json.into());
            }
            Err(e) => tracing::error!(error = %e, "cannot encode monitor event"),
        }
    }

    /// Whether a console is watching (then events are worth encoding).
    pub fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends an event already encoded (by another node of a cluster) to every console
    /// watching.
    pub fn publish_json(&self, json: Arc<str>) {
        if self.watched() {
            let _ = self.tx.send(json);
        }
    }

    /// The console's encoding of `event`.
    pub fn encode(event: &Event) -> Option<String> {
        serde_json::to_string(&MonitorEvent::from_event(event)).ok()
    }

    /// A new console's feed, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_details_name_the_user() {
        let e = MonitorEvent::from_event(&Event::System {
            kind: "disconnect",
            detail: "user=alice addr=1.2.3.4:5 reason=quit".into(),
            ts_ms: 7,
        });
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.detail.as_deref(), Some("addr=1.2.3.4:5 reason=quit"));
        let json = serde_json::to_string(&e).expect("json");
        assert_eq!(
            json,
            r#"{"type":"event","ts":7,"kind":"disconnect","user":"alice","detail":"addr=1.2.3.4:5 reason=quit"}"#
        );
        let e = MonitorEvent::from_event(&Event::System {
            kind: "start",
            detail: "version=1".into(),
            ts_ms: 1,
        });
        assert_eq!((e.user, e.detail.as_deref()), (None, Some("version=1")));
    }

    #[tokio::test]
    async fn subscribers_get_published_events() {
        let m = Monitor::default();
        m.publish(&Event::System {
            kind: "nobody",
            detail: String::new(),
            ts_ms: 1,
        });
        let mut rx = m.subscribe();
        m.publish(&Event::Room {
            room: "lobby".into(),
            from: "bob".into(),
            text: "hi".into(),
            ts_ms: 2,
        });
        let got = rx.recv().await.expect("event");
        assert_eq!(
            &*got,
            r#"{"type":"event","ts":2,"kind":"public","user":"bob","room":"lobby","text":"hi"}"#
        );
    }
}
