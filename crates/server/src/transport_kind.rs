//! Which transport a session came over: the `transport` label of `/metrics` and what the
//! operator console shows next to each online user (docs/WEB.md).
//!
//! The label is fixed where the connection is accepted (the accept loop for natter and
//! IRC, `/ws` for WebSocket) and travels with the session's
//! [`SessionHandle`](crate::hub::SessionHandle); the session code only reads it. This
//! module stands alone (it imports nothing of the server), so the hub, the metrics and
//! the connection limits can all use it without importing a transport.

use std::fmt;

/// The transport a connection was accepted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// natter's own JSON lines over TCP or TLS (the chat listener, [`crate::transport`]);
    /// label `natter`.
    Natter,
    /// JSON text messages over a WebSocket at `/ws`, the browser chat
    /// ([`crate::web::chat`]); label `websocket`.
    WebSocket,
    /// The IRC gateway over TCP or TLS ([`crate::irc`]); label `irc`.
    Irc,
}

impl TransportKind {
    /// Every transport, in label order of `/metrics`.
    pub const ALL: [TransportKind; 3] = [
        TransportKind::Natter,
        TransportKind::WebSocket,
        TransportKind::Irc,
    ];

    /// The label: `natter`, `websocket` or `irc`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Natter => "natter",
            TransportKind::WebSocket => "websocket",
            TransportKind::Irc => "irc",
        }
    }

    /// Position in [`TransportKind::ALL`] (for arrays indexed by transport).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A count per transport (connections, sessions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerTransport([usize; TransportKind::ALL.len()]);

impl PerTransport {
    /// Counts from `(transport, count)` pairs; a transport named twice adds up.
    pub fn from_counts(counts: &[(TransportKind, usize)]) -> PerTransport {
        let mut per = PerTransport::default();
        for &(kind, n) in counts {
            per.add(kind, n);
        }
        per
    }

    /// Adds `n` to `kind`'s count.
    pub fn add(&mut self, kind: TransportKind, n: usize) {
        self.0[kind.index()] += n;
    }

    /// Takes `n` from `kind`'s count (never below zero).
    pub fn sub(&mut self, kind: TransportKind, n: usize) {
        let c = &mut self.0[kind.index()];
        *c = c.saturating_sub(n);
    }

    /// The counts in [`TransportKind::ALL`] order.
    pub fn counts(&self) -> [usize; TransportKind::ALL.len()] {
        self.0
    }

    /// Counts in [`TransportKind::ALL`] order.
    pub fn from_array(counts: [usize; TransportKind::ALL.len()]) -> PerTransport {
        PerTransport(counts)
    }

    /// Adds every count of `other`.
    pub fn add_all(&mut self, other: &PerTransport) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `kind`'s count.
    pub fn get(&self, kind: TransportKind) -> usize {
        self.0[kind.index()]
    }

    /// The sum over all transports.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// Every transport with its count, zeros included, in [`TransportKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (TransportKind, usize)> + '_ {
        TransportKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_counts() {
        let labels: Vec<_> = TransportKind::ALL.iter().map(|k| k.to_string()).collect();
        assert_eq!(labels, ["natter", "websocket", "irc"]);
        let mut c = PerTransport::from_counts(&[(TransportKind::Irc, 2)]);
        c.add(TransportKind::WebSocket, 1);
        c.sub(TransportKind::Irc, 1);
        c.sub(TransportKind::Natter, 5);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [
                (TransportKind::Natter, 0),
                (TransportKind::WebSocket, 1),
                (TransportKind::Irc, 1)
            ]
        );
        assert_eq!(c.total(), 2);
    }
}
