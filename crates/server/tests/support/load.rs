//! Steady load for the cluster tests (`tests/cluster.rs`): senders that record what was
//! acknowledged, listeners, and checks over what everyone received.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use natter_proto::{ClientFrame, FrameId, ServerFrame};
use tokio::sync::watch;

use crate::WAIT;
use crate::cluster_client::*;

/// One message a load sender sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub text: String,
    /// When its `ok` arrived; `None` if it got none.
    pub acked: Option<Instant>,
    /// The error code it got instead, if any.
    pub error: Option<&'static str>,
}

/// Sends numbered messages to `room`, each with an id, waiting for each answer (at most
/// [`WAIT`]) and pausing `pause` between them, until `stop` or until the connection
/// ends. Keeps receiving all the while.
pub fn load_sender(
    mut c: Client,
    room: &str,
    pause: Duration,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Client, Vec<Sent>)> {
    let room = room.to_string();
    tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 1..=100_000u64 {
            if *stop.borrow() || c.closed {
                break;
            }
            let text = format!("{} {i}", c.name);
            let id = FrameId::Num(i);
            if !c
                .try_send(ClientFrame::Public {
                    id: Some(id.clone()),
                    room: Some(room.clone()),
                    text: text.clone(),
                    client_id: None,
                })
                .await
            {
                break;
            }
            let answer = c.find_within(WAIT, &|f| replies_to(f, &id)).await;
            let (acked, error) = match &answer {
                Ok(ServerFrame::Ok { .. }) => (Some(Instant::now()), None),
                Ok(other) => (None, error_code(other)),
                Err(_) => (None, None),
            };
            sent.push(Sent { text, acked, error });
            if answer.is_err() && c.closed {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        (c, sent)
    })
}

/// A running [`load_sender`]: the client back, with what it sent.
pub type Sender = tokio::task::JoinHandle<(Client, Vec<Sent>)>;

/// A running [`listener`].
pub type Listener = tokio::task::JoinHandle<Client>;

/// Sends and listens until `stop`: clients whose name ends in `1` send to `room` every
/// `pause` ([`load_sender`]), the others listen ([`listener`]).
pub fn start_load(
    clients: Vec<Client>,
    room: &str,
    pause: Duration,
    stop: &watch::Receiver<bool>,
) -> (Vec<Sender>, Vec<Listener>) {
    let (mut senders, mut listeners) = (Vec::new(), Vec::new());
    for c in clients {
        if c.name.ends_with('1') {
            senders.push(load_sender(c, room, pause, stop.clone()));
        } else {
            listeners.push(listener(c, stop.clone()));
        }
    }
    (senders, listeners)
}

/// Receives until `stop` (or until the connection ends).
pub fn listener(mut c: Client, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            if let Got::Closed = c
                .recv_until(Instant::now() + Duration::from_millis(100))
                .await
            {
                break;
            }
        }
        c
    })
}

/// Receives until `c` has every text of `want` among its `public`s of `room`, or until
/// `deadline`; returns the texts still missing.
pub async fn await_texts(
    c: &mut Client,
    room: &str,
    want: &HashSet<String>,
    deadline: Instant,
) -> Vec<String> {
    loop {
        let have: HashSet<String> = c.publics(room).into_iter().map(|m| m.2).collect();
        let mut missing: Vec<String> = want.difference(&have).cloned().collect();
        if missing.is_empty() {
            return missing;
        }
        if let Got::Closed | Got::Timeout = c.recv_until(deadline).await {
            missing.sort();
            return missing;
        }
    }
}

/// The `public`s of `room` that `c` received more than once (by msg_id).
pub fn duplicates(c: &Client, room: &str) -> Vec<(u64, String)> {
    let mut count: HashMap<u64, (usize, String)> = HashMap::new();
    for (id, _, text) in c.publics(room) {
        count.entry(id).or_insert((0, text)).0 += 1;
    }
    let mut dups: Vec<(u64, String)> = count
        .into_iter()
        .filter(|(_, (n, _))| *n > 1)
        .map(|(id, (_, text))| (id, text))
        .collect();
    dups.sort();
    dups
}

/// Shortens a list for a failure message.
pub fn some<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<&T> = items.iter().take(10).collect();
    if items.len() > shown.len() {
        format!("{shown:?} and {} more", items.len() - shown.len())
    } else {
        format!("{shown:?}")
    }
}

// ---------------------------------------------------------------------------------------
// 1b. Joining quiet rooms on another node
