//! The full-screen client's I/O: the terminal (raw mode, alternate screen, mouse, bracketed
//! paste; restored on every exit and on panic), a thread reading terminal events, and the
//! async loop racing them against the server's frames.
//!
//! ```text
//!  event thread ──crossterm Event──► async loop (owns Connection and Model) ──► draw
//!                                      ▲
//!                          frames ─────┘
//! ```
//!
//! The loop redraws after each batch of events. When the user quits it sends `quit` and
//! keeps handling frames until the server's `bye` (bounded by
//! [`SessionOptions::quit_timeout`]); then the terminal is restored and the `bye` line
//! printed on the normal screen.

use std::io::{Stdout, Write};
use std::path::Path;
use std::sync::Once;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use natter_proto::{ClientFrame, FrameId, ServerFrame};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::Config;
use super::keys;
use super::link;
use super::model::{Effect, Model, Status};
use super::render;
use super::store;
use crate::connection::{Authenticated, ClientError, Connection};
use crate::format;
use crate::reconnect::{Dial, Outbox, Reconnector};
use crate::session::{RunError, SessionOptions};

/// How many terminal events may wait for the loop.
const EVENT_QUEUE: usize = 1024;

/// Puts the terminal back: raw mode off, normal screen, no mouse or paste reporting.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped, whatever way the UI ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Makes a panic restore the terminal before its message is printed (installed once).
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// Sets the terminal up for the full-screen UI.
fn setup_terminal() -> Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>), RunError> {
    let err = |e: std::io::Error| RunError::Terminal(e.to_string());
    install_panic_hook();
    enable_raw_mode().map_err(err)?;
    let guard = TerminalGuard;
    execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste
    )
    .map_err(err)?;
    let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(err)?;
    Ok((guard, terminal))
}

/// Runs the full-screen UI for an already logged-in connection; returns the server's
/// `bye` reason (printed after the terminal is restored).
pub fn run<D: Dial>(
    runtime: &tokio::runtime::Runtime,
    mut conn: Connection,
    login: &Authenticated,
    status: Status,
    utc_offset_secs: i64,
    options: &SessionOptions,
    reconnector: Option<Reconnector<D>>,
) -> Result<String, RunError> {
    let mut model = Model::new(&login.user, utc_offset_secs);
    model.status = status;
    model.status.connection = "connected".to_string();
    let server = model.open(super::model::BufferKind::Server);
    model.buffers[server].push(
        super::model::Line {
            msg_id: None,
            ts: None,
            sender: None,
            text: format::logged_in_line(&login.user, login.registered),
            kind: super::model::LineKind::Info,
            mention: false,
            seq: 0,
        },
        true,
        false,
    );

    let config_dir = store::config_dir();
    if let Some(dir) = &config_dir {
        let (config, error) = Config::load(&dir.join(super::config::FILE));
        model.config = config;
        if let Some(error) = error {
            model.server_note(format::local_error_line(&error), true);
        }
    }
    let history_path = config_dir.map(|dir| dir.join(store::FILE));
    if let Some(path) = &history_path {
        match store::InputHistory::load(path) {
            Ok(history) => model.set_input_history(history),
            Err(e) => model.server_note(
                format::local_error_line(&format!(
                    "cannot read the input history {}: {e}",
                    path.display()
                )),
                true,
            ),
        }
    }

    let (guard, mut terminal) = setup_terminal()?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    std::thread::spawn(move || read_events(tx));
    let result = runtime.block_on(event_loop(
        &mut conn,
        &mut model,
        &mut terminal,
        rx,
        options,
        reconnector,
        history_path.as_deref(),
    ));
    drop(terminal);
    drop(guard);
    if let Ok(reason) = &result {
        println!("{}", format::bye_line(reason));
    }
    result
}

/// The event thread: blocking reads of terminal events, handed to the loop.
fn read_events(tx: mpsc::Sender<std::io::Result<Event>>) {
    loop {
        let event = crossterm::event::read();
        let failed = event.is_err();
        if tx.blocking_send(event).is_err() || failed {
            return;
        }
    }
}

/// Races frames against terminal events until `bye`.
async fn event_loop<D: Dial>(
    conn: &mut Connection,
    model: &mut Model,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut events: mpsc::Receiver<std::io::Result<Event>>,
    options: &SessionOptions,
    mut reconnector: Option<Reconnector<D>>,
    history_path: Option<&Path>,
) -> Result<String, RunError> {
    let mut st = LoopState {
        quit_deadline: None,
        outbox: Outbox::new(),
        history_path,
        save_failed: false,
        probe: None,
        probes: 0,
    };
    loop {
        let result = session_step(conn, model, terminal, &mut events, options, &mut st).await;
        let leaving = st.quit_deadline.is_some();
        let (why, reconnector) = match (result, reconnector.as_mut()) {
            // A goodbye we did not ask for (the server restarting, an operator's kick)
            // is a loss like any other, except after flooding.
            (Ok(reason), Some(r)) if !leaving && crate::session::worth_reconnecting(&reason) => {
                (format::bye_line(&reason), r)
            }
            (Ok(reason), _) => return Ok(reason),
            (Err(e), Some(r)) if !leaving && lost(&e) => (format!("-- connection lost: {e} --"), r),
            (Err(e), _) => return Err(e),
        };
        link::note(model, why);
        match link::recover(model, terminal, &mut events, &mut st.outbox, reconnector).await? {
            link::Recovered::Reconnected(new) => *conn = new,
            link::Recovered::Quit => return Ok("quit".to_string()),
            link::Recovered::GaveUp(why) => return Err(RunError::Reconnect(why)),
        }
    }
}

/// What the loop keeps across reconnections.
struct LoopState<'a> {
    /// When `quit` was sent and `bye` must have come by.
    quit_deadline: Option<Instant>,
    /// Messages sent and not acknowledged yet.
    outbox: Outbox,
    /// Where the input history is saved, if anywhere.
    history_path: Option<&'a Path>,
    /// A failure to save the input history is reported once.
    save_failed: bool,
    /// The lag probe waiting for its `pong`: its id and when it was sent.
    probe: Option<(FrameId, Instant)>,
    /// Probes sent, naming the next.
    probes: u64,
}

/// How often the lag shown on the status line is measured (a `ping` with an id).
const LAG_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether `e` is the connection failing (worth reconnecting), not the terminal.
fn lost(e: &RunError) -> bool {
    matches!(e, RunError::Connection(_))
}

/// Races frames against terminal events until `bye` (`Ok`) or a failure.
async fn session_step(
    conn: &mut Connection,
    model: &mut Model,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    events: &mut mpsc::Receiver<std::io::Result<Event>>,
    options: &SessionOptions,
    st: &mut LoopState<'_>,
) -> Result<String, RunError> {
    let LoopState {
        quit_deadline,
        outbox,
        history_path,
        save_failed,
        probe,
        probes,
    } = st;
    // The first probe goes out at once; one outstanding at a time (a new connection
    // starts afresh).
    *probe = None;
    let mut lag_every = tokio::time::interval(LAG_EVERY);
    lag_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let history_path = *history_path;
    let output = |e: std::io::Error| RunError::Output(e);
    loop {
        terminal
            .draw(|frame| render::draw(frame, model))
            .map_err(output)?;
        let screen = {
            let size = terminal.size().map_err(output)?;
            Rect::new(0, 0, size.width, size.height)
        };
        let effects = tokio::select! {
            biased;
            frame = conn.recv() => match frame {
                Ok(Some(frame)) => {
                    outbox.on_frame(&frame);
                    if let ServerFrame::Pong { id: Some(id) } = &frame
                        && let Some((sent, at)) = probe.as_ref()
                        && sent == id
                    {
                        model.status.lag_ms = Some(at.elapsed().as_millis() as u64);
                        *probe = None;
                        continue;
                    }
                    model.on_frame(&frame)
                }
                Ok(None) => return Err(ClientError::Closed.into()),
                Err(ClientError::BadFrame(_)) => continue,
                Err(e) => return Err(e.into()),
            },
            event = events.recv(), if quit_deadline.is_none() => match event {
                Some(Ok(event)) => {
                    let mut effects = keys::handle(model, &event, screen);
                    // Take what else is already waiting (a burst of typing) before drawing.
                    while effects.is_empty() {
                        match events.try_recv() {
                            Ok(Ok(event)) => effects = keys::handle(model, &event, screen),
                            _ => break,
                        }
                    }
                    effects
                }
                Some(Err(e)) => return Err(RunError::Input(e)),
                None => vec![Effect::Quit],
            },
            _ = lag_every.tick(), if probe.is_none() && quit_deadline.is_none() => {
                *probes += 1;
                let id = FrameId::Str(format!("lag-{probes}"));
                conn.send(&ClientFrame::Ping { id: Some(id.clone()) }).await?;
                *probe = Some((id, Instant::now()));
                Vec::new()
            }
            () = tokio::time::sleep_until(quit_deadline.unwrap_or_else(Instant::now)),
                if quit_deadline.is_some() =>
            {
                return Err(RunError::QuitTimeout(options.quit_timeout));
            }
        };
        if model.history_dirty {
            model.history_dirty = false;
            if let Some(path) = history_path
                && let Err(e) = model.input_history.save(path)
                && !std::mem::replace(save_failed, true)
            {
                model.server_note(
                    format::local_error_line(&format!(
                        "cannot save the input history {}: {e}",
                        path.display()
                    )),
                    true,
                );
            }
        }
        for effect in effects {
            match effect {
                Effect::Send(frame) => link::send(conn, outbox, frame).await?,
                Effect::Quit => {
                    if quit_deadline.is_none() {
                        conn.send(&ClientFrame::Quit {
                            id: None,
                            message: None,
                        })
                        .await?;
                        *quit_deadline = Some(Instant::now() + options.quit_timeout);
                        model.status.connection = "quitting".to_string();
                    }
                }
                Effect::Bye(reason) => return Ok(reason),
                Effect::Bell => {
                    let _ = write!(std::io::stdout(), "\x07");
                }
            }
        }
    }
}
