//! The writer task: messages committed in batches, in queue order, with per-room
//! numbers raised in the same transaction and retried sends answered with the original.

use std::collections::HashMap;

use deadpool_postgres::Pool;
use natter_proto::name_key;
use tokio::sync::mpsc;

use super::{COLUMNS, MAX_BATCH, Queued, db_error, from_sql, message_row, to_sql, unreachable};
use crate::store::{NewMessage, StoreError, StoredMessage, Target, pair_key};

/// The writer task: commits queued messages in batches, in queue order, until the
/// store is dropped.
pub(super) async fn write_messages(pool: Pool, mut rx: mpsc::Receiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let (msgs, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.msg, q.reply)).unzip();
        let results = write_batch(&pool, msgs).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Why a batch was not stored.
enum BatchError {
    /// A statement failed before the commit was sent: nothing was stored, and the
    /// batch's messages may be tried again one by one.
    Statement(StoreError),
    /// No connection, or the commit itself failed: the outcome is the batch's. Says
    /// why, and whether the database was unreachable.
    Commit(String, bool),
    /// A message's client key was stored meanwhile (by another process, or earlier in
    /// the batch): nothing was stored; one by one, the repeat is found.
    Duplicate,
}

/// Stores `msgs` in one transaction, in order; on a statement error (one bad message
/// aborts a PostgreSQL transaction) tries them again one transaction each, so that only
/// the bad one fails. One result per message, in order.
async fn write_batch(pool: &Pool, msgs: Vec<NewMessage>) -> Vec<Result<StoredMessage, StoreError>> {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no database connection for messages");
            let e = e.to_string();
            return msgs
                .iter()
                .map(|_| Err(StoreError::Unavailable(e.clone())))
                .collect();
        }
    };
    // Retried sends: those stored before are answered with the original.
    let originals = match stored_before(&client, &msgs).await {
        Ok(found) => found,
        Err(e) => return msgs.iter().map(|_| Err(copy_error(&e))).collect(),
    };
    let (repeats, fresh): (Vec<_>, Vec<_>) = msgs
        .into_iter()
        .enumerate()
        .partition(|(_, m)| m.client_key().is_some_and(|k| originals.contains_key(&k)));
    let mut out: Vec<Option<Result<StoredMessage, StoreError>>> =
        (0..repeats.len() + fresh.len()).map(|_| None).collect();
    for (i, m) in repeats {
        out[i] = m
            .client_key()
            .and_then(|k| originals.get(&k).cloned())
            .map(|o| Err(StoreError::Duplicate(Box::new(o))));
    }
    let (places, fresh): (Vec<usize>, Vec<NewMessage>) = fresh.into_iter().unzip();
    for (i, result) in places
        .into_iter()
        .zip(insert_fresh(&mut client, fresh).await)
    {
        out[i] = Some(result);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Commit("message not stored".into()))))
        .collect()
}

/// The same error again, for every message of a batch.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(e) => StoreError::Unavailable(e.clone()),
        e => StoreError::Commit(e.to_string()),
    }
}

/// The messages already stored under the client keys of `msgs`, by key.
async fn stored_before(
    client: &deadpool_postgres::Object,
    msgs: &[NewMessage],
) -> Result<HashMap<String, StoredMessage>, StoreError> {
    let keys: Vec<String> = msgs.iter().filter_map(NewMessage::client_key).collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            &format!("SELECT {COLUMNS}, client_key FROM messages WHERE client_key = ANY($1)"),
            &[&keys],
        )
        .await
        .map_err(db_error)?;
    let mut found = HashMap::new();
    for row in &rows {
        let key: String = row.try_get(8).map_err(db_error)?;
        found.insert(key, message_row(row)?);
    }
    Ok(found)
}

/// Stores messages none of which was stored before: in one transaction, or, when that
/// fails on one of them, one by one so that only that one fails.
async fn insert_fresh(
    client: &mut deadpool_postgres::Object,
    msgs: Vec<NewMessage>,
) -> Vec<Result<StoredMessage, StoreError>> {
    if msgs.is_empty() {
        return Vec::new();
    }
    match insert_messages(client, &msgs).await {
        Ok(ids) => stored(msgs, ids).into_iter().map(Ok).collect(),
        Err(BatchError::Statement(StoreError::Unavailable(e))) => msgs
            .iter()
            .map(|_| Err(StoreError::Unavailable(e.clone())))
            .collect(),
        Err(BatchError::Commit(e, down)) => {
            tracing::error!(error = %e, "message batch commit failed");
            msgs.iter()
                .map(|_| Err(commit_error(e.clone(), down)))
                .collect()
        }
        Err(e) if msgs.len() > 1 => {
            if let BatchError::Statement(e) = &e {
                tracing::warn!(error = %e, "message batch failed; storing its messages one by one");
            }
            let mut out = Vec::with_capacity(msgs.len());
            for msg in msgs {
                out.push(insert_one(client, msg).await);
            }
            out
        }
        Err(_) => {
            let mut msgs = msgs;
            match msgs.pop() {
                Some(msg) => vec![insert_one(client, msg).await],
                None => Vec::new(),
            }
        }
    }
}

/// Stores one message in a transaction of its own; a repeat of a stored client key
/// answers with the original.
async fn insert_one(
    client: &mut deadpool_postgres::Object,
    msg: NewMessage,
) -> Result<StoredMessage, StoreError> {
    match insert_messages(client, std::slice::from_ref(&msg)).await {
        Ok(ids) => stored(vec![msg], ids)
            .pop()
            .ok_or_else(|| StoreError::Commit("message not stored".into())),
        Err(BatchError::Statement(e)) => Err(e),
        Err(BatchError::Commit(e, down)) => Err(commit_error(e, down)),
        Err(BatchError::Duplicate) => {
            let mut found = stored_before(client, std::slice::from_ref(&msg)).await?;
            msg.client_key()
                .and_then(|k| found.remove(&k))
                .map(|o| Err(StoreError::Duplicate(Box::new(o))))
                .unwrap_or_else(|| Err(StoreError::Commit("message not stored".into())))
        }
    }
}

/// A failed commit as the store's error: unavailable when the database could not be
/// reached (the outcome is unknown to the sender either way: not acknowledged).
fn commit_error(e: String, unreachable: bool) -> StoreError {
    if unreachable {
        StoreError::Unavailable(e)
    } else {
        StoreError::Commit(e)
    }
}

/// The stored messages, given their `(id, room_seq)` in order.
fn stored(msgs: Vec<NewMessage>, ids: Vec<(u64, Option<u64>)>) -> Vec<StoredMessage> {
    msgs.into_iter()
        .zip(ids)
        .map(|(msg, (id, room_seq))| StoredMessage { id, room_seq, msg })
        .collect()
}

/// Inserts `msgs` in one transaction and commits; their ids and room numbers, in order.
async fn insert_messages(
    client: &mut deadpool_postgres::Object,
    msgs: &[NewMessage],
) -> Result<Vec<(u64, Option<u64>)>, BatchError> {
    /// A statement's error.
    fn failed(e: tokio_postgres::Error) -> BatchError {
        BatchError::Statement(db_error(e))
    }
    let tx = client.transaction().await.map_err(failed)?;
    // Each room's count in this batch, in key order: the counters are raised (and their
    // rows locked until the commit) in that order by every batch of every process.
    let keys: Vec<Option<String>> = msgs
        .iter()
        .map(|m| match &m.target {
            Target::Room(room) => Some(name_key(room)),
            Target::User { .. } => None,
        })
        .collect();
    let mut counts = std::collections::BTreeMap::<&str, i64>::new();
    for key in keys.iter().flatten() {
        *counts.entry(key).or_insert(0) += 1;
    }
    let raise = tx
        .prepare_cached(
            "INSERT INTO room_seqs (room, last_seq) VALUES ($1, $2)
             ON CONFLICT (room) DO UPDATE SET last_seq = room_seqs.last_seq + EXCLUDED.last_seq
             RETURNING last_seq",
        )
        .await
        .map_err(failed)?;
    let raised = futures::future::try_join_all(counts.iter().map(|(room, n)| {
        let (tx, raise) = (&tx, &raise);
        async move { tx.query_one(raise, &[room, n]).await }
    }))
    .await
    .map_err(failed)?;
    // The next number to give in each room.
    let mut next = std::collections::BTreeMap::<&str, u64>::new();
    for ((room, n), row) in counts.iter().zip(&raised) {
        let last: i64 = row.try_get(0).map_err(failed)?;
        next.insert(room, from_sql(last - n + 1));
    }
    let mut seqs = Vec::with_capacity(msgs.len());
    for key in &keys {
        seqs.push(match key {
            Some(key) => {
                let n = next.get_mut(key.as_str()).map_or(0, |n| {
                    *n += 1;
                    *n - 1
                });
                Some(n)
            }
            None => None,
        });
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO messages
             (ts, sender, room, recipient, recipient_key, pair, text, pending, room_seq,
              client_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .await
        .map_err(failed)?;
    // Pipelined: sent, and so run, in this order, so ids rise in queue order.
    let inserts = msgs.iter().zip(&keys).zip(&seqs).map(|((m, room), seq)| {
        let (recipient, recipient_key, pair, pending) = match &m.target {
            Target::Room(_) => (None, None, None, false),
            Target::User { to, pending } => (
                Some(to.as_str()),
                Some(name_key(to)),
                Some(pair_key(&m.from, to)),
                *pending,
            ),
        };
        let insert = &insert;
        let tx = &tx;
        let client_key = m.client_key();
        async move {
            tx.query_one(
                insert,
                &[
                    &to_sql(m.ts),
                    &m.from,
                    room,
                    &recipient,
                    &recipient_key,
                    &pair,
                    &m.text,
                    &pending,
                    &seq.map(to_sql),
                    &client_key,
                ],
            )
            .await
        }
    });
    let rows = futures::future::try_join_all(inserts).await.map_err(|e| {
        if e.as_db_error().and_then(|d| d.constraint()) == Some("messages_client") {
            BatchError::Duplicate
        } else {
            failed(e)
        }
    })?;
    let mut ids = Vec::with_capacity(rows.len());
    for (row, seq) in rows.iter().zip(&seqs) {
        ids.push((from_sql(row.try_get(0).map_err(failed)?), *seq));
    }
    // Pipelined statements run in the order they were sent, which is queue order; should
    // that ever not hold, the batch is rolled back and stored one by one instead.
    if !ids.windows(2).all(|p| p[0].0 < p[1].0) {
        return Err(BatchError::Statement(StoreError::Commit(
            "message ids out of queue order".into(),
        )));
    }
    tx.commit()
        .await
        .map_err(|e| BatchError::Commit(e.to_string(), unreachable(&e)))?;
    Ok(ids)
}
