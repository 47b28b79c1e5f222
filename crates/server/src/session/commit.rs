//! The commit pipeline: public and private messages are stored before anyone sees them
//! (durable before visible), several at once per session so one fsync covers many, and
//! published in the order they were sent once their commits finish.

use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use natter_proto::{FrameId, ServerFrame, neutralize};

use super::{Flow, Session};
use crate::delivery::Delivery;
use crate::store::{NewMessage, StoreError, StoredMessage, Target};
use crate::transcript::Event;

/// A public message of this session once its commit has finished.
pub(super) struct Published {
    /// The request id, for the `ok`.
    id: Option<FrameId>,
    /// Canonical room name.
    room: String,
    /// The stored message, or why it could not be stored.
    result: Result<StoredMessage, StoreError>,
}

/// A private message of this session once its commit has finished.
pub(super) struct PrivateSent {
    /// The request id, for the `ok` or `queued`.
    pub(super) id: Option<FrameId>,
    /// The recipient's display name.
    pub(super) to: String,
    /// Whether the recipient was online when the message was accepted.
    pub(super) online: bool,
    /// The stored message, or why it could not be stored.
    pub(super) result: Result<StoredMessage, StoreError>,
}

/// A message whose commit has finished, to be delivered.
pub(super) enum Committed {
    /// To a room.
    Public(Published),
    /// To a user.
    Private(PrivateSent),
}

/// A message's commit, resolving to what delivering it needs.
type Committing = Pin<Box<dyn Future<Output = Committed> + Send + Sync>>;

/// Public messages waiting for their commit, in the order they were sent. The queue is
/// allocated only while something is committing, so idle sessions do not carry it.
#[derive(Default)]
pub(super) struct Inflight {
    /// The commits, oldest first; `None` when there are none. Boxed: the queue's
    /// bookkeeping would otherwise be part of every idle session's future.
    queue: Option<Box<FuturesOrdered<Committing>>>,
}

impl Inflight {
    pub(super) fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn push_back(&mut self, commit: Committing) {
        self.queue
            .get_or_insert_with(Box::default)
            .push_back(commit);
    }

    /// The oldest commit once it finishes; never resolves while nothing is committing.
    pub(super) async fn next(&mut self) -> Option<Committed> {
        let Some(queue) = self.queue.as_mut() else {
            return std::future::pending().await;
        };
        let done = queue.next().await;
        if queue.is_empty() {
            self.queue = None;
        }
        done
    }

    /// The oldest commit if it has finished already.
    pub(super) fn next_ready(&mut self) -> Option<Committed> {
        let queue = self.queue.as_mut()?;
        let done = queue.next().now_or_never().flatten();
        if queue.is_empty() {
            self.queue = None;
        }
        done
    }
}

impl Session {
    /// Queues a public message to `room` (checked: valid, a member, text and rate
    /// admitted) for storage; it is published once committed (see
    /// [`Session::publish`]), while the session goes on reading.
    pub(super) async fn public(
        &mut self,
        id: Option<FrameId>,
        room: String,
        text: &str,
        client_id: Option<String>,
    ) -> Flow {
        // Durable before visible: published only once committed.
        let Some(msg) = self.new_message(&id, Target::Room(room.clone()), text, client_id) else {
            return Flow::Continue;
        };
        match self.shared.store.queue_message(msg).await {
            Ok(commit) => self.inflight.push_back(Box::pin(async move {
                Committed::Public(Published {
                    id,
                    room,
                    result: commit.await,
                })
            })),
            Err(e) => self.fail(id, &e),
        }
        Flow::Continue
    }

    /// Publishes committed public messages: each run of messages to one room is encoded
    /// once into one chunk that every member's queue gets, then the `ok`s go out together.
    pub(super) async fn publish(&self, done: Vec<Published>) {
        let Some(me) = &self.user else { return };
        let mut oks = Vec::new();
        let mut done = done.into_iter().peekable();
        while let Some(first) = done.next() {
            let room = first.room.clone();
            let mut run = vec![first];
            while let Some(next) = done.next_if(|p| p.room == room) {
                run.push(next);
            }
            let started = std::time::Instant::now();
            let mut frames = Vec::with_capacity(run.len());
            let mut seqs = Vec::with_capacity(run.len());
            let mut published = Vec::with_capacity(run.len());
            for p in run {
                match p.result {
                    Ok(StoredMessage {
                        id: msg_id,
                        room_seq,
                        msg,
                    }) => {
                        seqs.extend(room_seq);
                        frames.push(ServerFrame::Public {
                            msg_id,
                            room: room.clone(),
                            from: msg.from.clone(),
                            text: msg.text.clone(),
                            ts: msg.ts,
                        });
                        published.push((p.id, msg));
                    }
                    Err(StoreError::Duplicate(original)) => {
                        // A retry of a message stored before: the sender gets the
                        // original back, nobody gets it twice.
                        self.handle.send(&[original_frame(&original)]);
                        if let Some(id) = p.id {
                            oks.push(ServerFrame::Ok { id });
                        }
                    }
                    Err(e) => self.fail(p.id, &e),
                }
            }
            if published.is_empty() {
                continue;
            }
            // The session may have left the room while the messages were being stored;
            // they are kept in the history either way.
            let copies = self
                .shared
                .bus
                .publish_room(me.id, &room, &seqs, &Delivery::batch(frames))
                .unwrap_or(0);
            let elapsed = started.elapsed();
            for (id, msg) in published {
                self.shared
                    .metrics
                    .message("public", self.handle.transport(), copies, elapsed);
                self.shared
                    .emit_message(Event::Room {
                        room: room.clone(),
                        from: msg.from,
                        text: msg.text,
                        ts_ms: msg.ts,
                    })
                    .await;
                if let Some(id) = id {
                    oks.push(ServerFrame::Ok { id });
                }
            }
        }
        self.handle.send(&oks);
    }

    /// Delivers committed messages in the order they were sent: runs of public messages
    /// together (see [`Session::publish`]), private messages one by one.
    pub(super) async fn finish(&mut self, done: Vec<Committed>) {
        let mut run = Vec::new();
        for c in done {
            match c {
                Committed::Public(p) => run.push(p),
                Committed::Private(p) => {
                    if !run.is_empty() {
                        self.publish(std::mem::take(&mut run)).await;
                    }
                    self.deliver_private(p).await;
                }
            }
        }
        if !run.is_empty() {
            self.publish(run).await;
        }
    }

    /// Waits for every message still committing and delivers them.
    pub(super) async fn flush(&mut self) {
        // Boxed, and only when there is something to wait for: the drain's state would
        // otherwise be part of every connection's session future for its whole life.
        if !self.inflight.is_empty() {
            Box::pin(self.drain()).await;
        }
    }

    /// [`Session::flush`]'s work.
    pub(super) async fn drain(&mut self) {
        let mut done = Vec::new();
        while !self.inflight.is_empty() {
            let Some(c) = self.inflight.next().await else {
                break;
            };
            done.push(c);
        }
        if !done.is_empty() {
            self.finish(done).await;
        }
    }

    /// A message from this session's user to `target`: text neutralised, stamped now,
    /// with the client's unique name for it. `None` (the peer was told) when that name
    /// is empty or longer than [`natter_proto::MAX_ID_LEN`] bytes.
    pub(super) fn new_message(
        &self,
        id: &Option<FrameId>,
        target: Target,
        text: &str,
        client_id: Option<String>,
    ) -> Option<NewMessage> {
        let me = self.user.as_ref()?;
        if client_id
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > natter_proto::MAX_ID_LEN)
        {
            self.error(
                id.clone(),
                natter_proto::ErrorCode::BadFrame,
                format!("client_id must be 1 to {} bytes", natter_proto::MAX_ID_LEN),
            );
            return None;
        }
        Some(NewMessage {
            from: me.name.clone(),
            target,
            text: neutralize(text).into_owned(),
            ts: crate::now_ms(),
            client_id,
        })
    }
}

/// A stored message as its sender sees it again (answering a retried send).
pub(super) fn original_frame(m: &StoredMessage) -> ServerFrame {
    match &m.msg.target {
        Target::Room(room) => ServerFrame::Public {
            msg_id: m.id,
            room: room.clone(),
            from: m.msg.from.clone(),
            text: m.msg.text.clone(),
            ts: m.msg.ts,
        },
        Target::User { to, .. } => ServerFrame::Private {
            msg_id: m.id,
            from: m.msg.from.clone(),
            to: to.clone(),
            text: m.msg.text.clone(),
            ts: m.msg.ts,
            late: false,
        },
    }
}
