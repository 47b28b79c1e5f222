//! The chat loop shared by plain and interactive mode.
//!
//! [`drive`] races the next server frame against the next input line. Server frames become
//! display lines (pings are answered silently); input lines become frames or local lines.
//! When the input ends (EOF, Ctrl-D, `/exit`) it sends `quit` and keeps handling frames until
//! the server's `bye`, which the server sends only after every earlier frame of this
//! connection was processed; so everything typed before the end is delivered before we
//! leave. That wait is bounded by [`SessionOptions::quit_timeout`].
//!
//! Some commands change where the next line goes only once the server answers: `/join`
//! switches the current room when `joined` arrives, `/part` when `parted` does. They are
//! sent with a request id ([`ChatState::awaiting`]), and until the frame echoing that id
//! (the answer or an `error`) has been handled, [`drive`] reads no further input and hands
//! out no prompt: in interactive mode the editor thread waits for its next prompt, which
//! then already names the new room; in plain mode `/join rust` followed by `hello` sends
//! `hello` to `#rust`. The wait is bounded by [`SessionOptions::answer_timeout`]; when it
//! expires a local error says so and input resumes.
//!
//! Front ends differ only in where lines come from and go to, which the crate-private
//! [`Frontend`] trait abstracts.

use std::future::Future;
use std::time::Duration;

use natter_proto::{ClientFrame, MAX_LINE};
use tokio::time::Instant;

use crate::connection::{ClientError, Connection};
use crate::format;
use crate::reconnect::{self, Dial, Outbox, Reconnector, Recovered};
use crate::state::{Action, ChatState, Reaction};

/// How long to wait for the server's `bye` after sending `quit`, unless configured.
pub const DEFAULT_QUIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the answer to `/join` or `/part` before reading on, unless
/// configured.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Tuning of a chat session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Upper bound on the wait for `bye` after `quit`, so a stuck server cannot keep us.
    pub quit_timeout: Duration,
    /// Upper bound on holding the next prompt for the answer to `/join` or `/part`.
    pub answer_timeout: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            quit_timeout: DEFAULT_QUIT_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        }
    }
}

/// Why a chat session ended other than with the server's `bye`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connection failed or the server closed it without `bye`.
    #[error(transparent)]
    Connection(#[from] ClientError),
    /// Reading what the user typed failed.
    #[error("cannot read input: {0}")]
    Input(std::io::Error),
    /// Showing a line failed (for example stdout was closed).
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The server did not say `bye` in time after `quit`.
    #[error("the server did not confirm quitting within {} s", .0.as_secs())]
    QuitTimeout(Duration),
    /// The connection was lost and could not be restored (for example the login is no
    /// longer accepted).
    #[error("connection lost and not restored: {0}")]
    Reconnect(String),
    /// The line editor could not be set up.
    #[error("terminal error: {0}")]
    Terminal(String),
}

/// One event from the user's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// A line was typed.
    Line(String),
    /// A line too long to send was typed (and dropped).
    TooLong,
    /// The input ended: EOF, Ctrl-D or Ctrl-C.
    End,
}

/// Where input comes from and where lines go.
pub(crate) trait Frontend {
    /// The next input event. Must be cancel-safe: it is raced against the network.
    fn next_input(&mut self) -> impl Future<Output = std::io::Result<Input>> + Send;

    /// Shows one display line (never containing a newline).
    fn show(&mut self, line: String) -> impl Future<Output = std::io::Result<()>> + Send;

    /// An input event was handled: `Some(prompt)` to ask for the next line with this prompt,
    /// `None` when no more input will be read.
    fn ready(&mut self, next_prompt: Option<&str>);

    /// Reports a diagnostic that is not part of the chat (stderr in plain mode).
    fn warn(&mut self, text: &str);
}

/// Runs the chat until the server says `bye`; returns its reason.
///
/// With a `reconnector`, a lost connection (or a `bye` the user did not ask for, say
/// because the server is restarting) is not the end: [`reconnect::recover`] gets back in
/// and the chat goes on. Without one, it ends the session as an error.
pub(crate) async fn drive<F: Frontend, D: Dial>(
    conn: &mut Connection,
    state: &mut ChatState,
    frontend: &mut F,
    options: &SessionOptions,
    mut reconnector: Option<&mut Reconnector<D>>,
) -> Result<String, RunError> {
    // Messages sent but not acknowledged yet: sent again after a reconnect.
    let mut outbox = Outbox::new();
    // Set once `quit` was sent: from then on input is no longer read.
    let mut quit_deadline: Option<Instant> = None;
    // Set while the answer to a `/join` or `/part` is awaited: input waits until then.
    let mut answer_deadline: Option<Instant> = None;
    loop {
        // Why the connection is gone, when it is.
        let lost: Lost = tokio::select! {
            // Frames first: answering pings and showing messages never waits behind typing.
            biased;
            frame = conn.recv() => match frame {
                Ok(Some(frame)) => {
                    outbox.on_frame(&frame);
                    let lost = match state.on_frame(&frame) {
                        Reaction::Ignore => Lost::Nothing,
                        Reaction::Show(lines) => {
                            show_all(frontend, lines).await?;
                            Lost::Nothing
                        }
                        Reaction::Reply(reply) => match conn.send(&reply).await {
                            Ok(()) => Lost::Nothing,
                            Err(e) => Lost::Error(e),
                        },
                        Reaction::Bye(reason) => Lost::Bye(reason),
                    };
                    if answer_deadline.is_some() && state.awaiting().is_none() {
                        // The answer arrived: the prompt now shows where lines go.
                        answer_deadline = None;
                        frontend.ready(Some(&state.prompt()));
                    }
                    lost
                }
                Ok(None) => Lost::Error(ClientError::Closed),
                // One undecodable line (say, a frame type from a newer server) is
                // skipped; a broken stream ends on the next read anyway.
                Err(ClientError::BadFrame(why)) => {
                    frontend.warn(&format!("ignored a frame from the server: {why}"));
                    Lost::Nothing
                }
                Err(e) => Lost::Error(e),
            },
            input = frontend.next_input(), if quit_deadline.is_none() && answer_deadline.is_none() => {
                let action = match input.map_err(RunError::Input)? {
                    Input::Line(line) => state.handle_line(&line),
                    Input::TooLong => Action::Show(vec![format::local_error_line(&format!(
                        "input line longer than {MAX_LINE} bytes; it was not sent"
                    ))]),
                    Input::End => Action::Exit,
                };
                let mut lost = Lost::Nothing;
                match action {
                    Action::Nothing => {}
                    Action::Send(frame) => {
                        let frame = match frame {
                            ClientFrame::Public { .. } | ClientFrame::Private { .. } => {
                                outbox.stamp(frame, reconnect::client_id())
                            }
                            other => other,
                        };
                        if let Err(e) = conn.send(&frame).await {
                            lost = Lost::Error(e);
                        }
                    }
                    Action::Show(lines) => show_all(frontend, lines).await?,
                    Action::Exit => {
                        frontend.ready(None);
                        quit_deadline = Some(Instant::now() + options.quit_timeout);
                        conn.send(&ClientFrame::Quit { id: None, message: None }).await?;
                        continue;
                    }
                }
                if state.awaiting().is_some() {
                    answer_deadline = Some(Instant::now() + options.answer_timeout);
                } else {
                    frontend.ready(Some(&state.prompt()));
                }
                lost
            }
            () = tokio::time::sleep_until(answer_deadline.unwrap_or_else(Instant::now)),
                if answer_deadline.is_some() =>
            {
                answer_deadline = None;
                state.stop_awaiting();
                let line = format::local_error_line(&format!(
                    "no answer from the server within {} s; carrying on",
                    options.answer_timeout.as_secs()
                ));
                show_all(frontend, vec![line]).await?;
                frontend.ready(Some(&state.prompt()));
                Lost::Nothing
            }
            () = tokio::time::sleep_until(quit_deadline.unwrap_or_else(Instant::now)),
                if quit_deadline.is_some() =>
            {
                return Err(RunError::QuitTimeout(options.quit_timeout));
            }
        };
        let reconnector = match (lost, reconnector.as_deref_mut()) {
            (Lost::Nothing, _) => continue,
            // Leaving, or not reconnecting: the session ends as it always did.
            (Lost::Bye(reason), _) if quit_deadline.is_some() || !worth_reconnecting(&reason) => {
                return Ok(reason);
            }
            (Lost::Bye(reason), None) => return Ok(reason),
            (Lost::Error(e), None) => return Err(e.into()),
            (Lost::Error(e), Some(_)) if quit_deadline.is_some() => return Err(e.into()),
            (Lost::Bye(_) | Lost::Error(_), Some(reconnector)) => reconnector,
        };
        // While the answer to `/join` or `/part` was awaited, the editor had no prompt;
        // that answer cannot come now.
        let prompt_held = answer_deadline.take().is_some();
        state.stop_awaiting();
        if prompt_held {
            frontend.ready(Some(&state.prompt()));
        }
        match reconnect::recover(conn, state, &mut outbox, frontend, reconnector)
            .await
            .map_err(RunError::Output)?
        {
            Recovered::Reconnected => {}
            Recovered::Quit => {
                frontend.ready(None);
                return Ok("quit".to_string());
            }
            Recovered::GaveUp(why) => {
                frontend.ready(None);
                return Err(RunError::Reconnect(why));
            }
        }
    }
}

/// What a turn of the chat loop found out about the connection.
enum Lost {
    /// It is fine.
    Nothing,
    /// The server said `bye` with this reason.
    Bye(String),
    /// It failed or was closed without `bye`.
    Error(ClientError),
}

/// Whether a `bye` the user did not ask for is worth reconnecting after: not when the
/// server threw us out for flooding (coming back would flood again).
pub(crate) fn worth_reconnecting(reason: &str) -> bool {
    !reason.contains("flooding")
}

/// Shows lines in order.
async fn show_all<F: Frontend>(frontend: &mut F, lines: Vec<String>) -> Result<(), RunError> {
    for line in lines {
        frontend.show(line).await.map_err(RunError::Output)?;
    }
    Ok(())
}
