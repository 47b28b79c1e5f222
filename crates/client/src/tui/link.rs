//! The full-screen client's connection across losses: messages stamped with a
//! `client_id` and kept until acknowledged, and reconnecting by itself (back-off, log in
//! again, rejoin the rooms, fetch what was missed, resend what was not acknowledged)
//! while the screen and the half-typed line stay usable.

use crossterm::event::Event;
use natter_proto::ClientFrame;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use tokio::sync::mpsc;

use super::keys;
use super::model::{BufferKind, Effect, Line, LineKind, Model};
use super::render;
use crate::connection::Connection;
use crate::reconnect::{self, Dial, Failure, Outbox, Reconnector};
use crate::session::RunError;

/// Messages a buffer fetches after a reconnect (the server's maximum per request); the
/// buffer drops what it already shows, by msg_id.
const CATCH_UP: u32 = 200;

/// How a loss of the connection ended.
pub enum Recovered {
    /// A new connection, logged in and caught up.
    Reconnected(Connection),
    /// The user left while disconnected.
    Quit,
    /// Reconnecting cannot work; why.
    GaveUp(String),
}

/// A local line in the buffer on screen.
pub fn note(model: &mut Model, text: String) {
    let line = Line {
        msg_id: None,
        ts: None,
        sender: None,
        text,
        kind: LineKind::Info,
        mention: false,
        seq: 0,
    };
    model.current_buffer_mut().push(line, true, false);
}

/// Sends `frame`, stamped (public and private messages get a request id and a fresh
/// `client_id`, kept in `outbox` until acknowledged).
pub async fn send(
    conn: &mut Connection,
    outbox: &mut Outbox,
    frame: ClientFrame,
) -> Result<(), crate::ClientError> {
    let frame = outbox.stamp(frame, reconnect::client_id());
    conn.send(&frame).await
}

/// Reconnects after the connection was lost, keeping the screen live: typing goes on,
/// messages typed meanwhile wait in `outbox`, Ctrl-D or `/exit` leave.
pub async fn recover<D: Dial>(
    model: &mut Model,
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    events: &mut mpsc::Receiver<std::io::Result<Event>>,
    outbox: &mut Outbox,
    reconnector: &mut Reconnector<D>,
) -> Result<Recovered, RunError> {
    let output = RunError::Output;
    for attempt in 1..=reconnect::MAX_ATTEMPTS {
        let delay = reconnector.backoff.delay(attempt);
        model.status.connection = format!(
            "reconnecting in {} s (attempt {attempt})",
            delay.as_secs().max(1)
        );
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            terminal
                .draw(|frame| render::draw(frame, model))
                .map_err(output)?;
            let screen = {
                let size = terminal.size().map_err(output)?;
                Rect::new(0, 0, size.width, size.height)
            };
            tokio::select! {
                () = &mut sleep => break,
                event = events.recv() => match event {
                    Some(Ok(event)) => {
                        for effect in keys::handle(model, &event, screen) {
                            match effect {
                                Effect::Send(frame @ (ClientFrame::Public { .. } | ClientFrame::Private { .. })) => {
                                    outbox.stamp(frame, reconnect::client_id());
                                    note(model, "-- not connected: sent once reconnected --".into());
                                }
                                Effect::Send(_) => {
                                    note(model, "-- not connected; try again once reconnected --".into());
                                }
                                Effect::Quit => return Ok(Recovered::Quit),
                                Effect::Bye(_) | Effect::Bell => {}
                            }
                        }
                    }
                    Some(Err(e)) => return Err(RunError::Input(e)),
                    None => return Ok(Recovered::Quit),
                },
            }
        }
        model.status.connection = format!("connecting (attempt {attempt})");
        terminal
            .draw(|frame| render::draw(frame, model))
            .map_err(output)?;
        match reconnector.connect_and_login().await {
            Ok(mut conn) => {
                catch_up(&mut conn, model, outbox)
                    .await
                    .map_err(RunError::from)?;
                model.status.connection = "connected".to_string();
                note(model, reconnect::RECONNECTED.to_string());
                return Ok(Recovered::Reconnected(conn));
            }
            Err(Failure::Fatal(why)) => return Ok(Recovered::GaveUp(why)),
            Err(Failure::Retry(_)) => {}
        }
    }
    Ok(Recovered::GaveUp("too many attempts".into()))
}

/// After logging in again: rejoins every room of the buffer list, fetches each room's
/// and private conversation's latest [`CATCH_UP`] messages (buffers drop what they show
/// already: more missed than that stay reachable by scrolling up), and resends what was
/// never acknowledged, with its original `client_id` (the server stores each once).
async fn catch_up(
    conn: &mut Connection,
    model: &Model,
    outbox: &Outbox,
) -> Result<(), crate::ClientError> {
    for buffer in &model.buffers {
        match &buffer.kind {
            BufferKind::Room(room) => {
                conn.send(&ClientFrame::Join {
                    id: None,
                    room: room.clone(),
                })
                .await?;
                // The join's own history is the server's `history_on_join` (50 by
                // default); ask for the most the server gives.
                conn.send(&ClientFrame::History {
                    id: None,
                    room: Some(room.clone()),
                    with: None,
                    before: None,
                    limit: Some(CATCH_UP),
                })
                .await?;
            }
            BufferKind::Private(user) => {
                conn.send(&ClientFrame::History {
                    id: None,
                    room: None,
                    with: Some(user.clone()),
                    before: None,
                    limit: Some(CATCH_UP),
                })
                .await?;
            }
            BufferKind::Server => {}
        }
    }
    for frame in outbox.pending() {
        conn.send(frame).await?;
    }
    Ok(())
}
