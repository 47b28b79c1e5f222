//! Plain mode: lines in, lines out, for scripts and tests.
//!
//! Each input line is handled like a typed line (commands work). Every server event shown is
//! exactly one line on the output (see [`crate::format`] for the formats), flushed at once;
//! local errors and help are lines there too. Diagnostics go to stderr. When the input ends
//! (or on `/exit`) the client sends `quit` and returns once the server said `bye`, after
//! printing `[bye] REASON`.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::connection::{Authenticated, Connection};
use crate::format;
use crate::input::{InputLine, InputLines};
use crate::reconnect::{Dial, NoDial, Reconnector};
use crate::session::{Frontend, Input, RunError, SessionOptions, drive};
use crate::state::ChatState;

/// Longest input line accepted; anything longer could not be sent as one frame anyway.
pub const MAX_INPUT_LINE: usize = natter_proto::MAX_LINE;

/// Runs a plain-mode session for an already logged-in connection.
///
/// Prints the login line first. Returns the server's `bye` reason; any other ending
/// (connection lost, closed without `bye`, I/O error) is an error.
pub async fn run<R, W>(
    conn: &mut Connection,
    login: &Authenticated,
    input: R,
    output: W,
    options: &SessionOptions,
) -> Result<String, RunError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut frontend = PlainFrontend {
        input: InputLines::new(BufReader::new(input), MAX_INPUT_LINE),
        output,
    };
    frontend
        .show(format::logged_in_line(&login.user, login.registered))
        .await
        .map_err(RunError::Output)?;
    let mut state = ChatState::new(login.user.clone());
    let reason = drive::<_, NoDial>(conn, &mut state, &mut frontend, options, None).await?;
    frontend
        .show(format::bye_line(&reason))
        .await
        .map_err(RunError::Output)?;
    Ok(reason)
}

/// Plain mode's input and output.
struct PlainFrontend<R, W> {
    /// Input lines (stdin).
    input: InputLines<BufReader<R>>,
    /// Where display lines go (stdout).
    output: W,
}

impl<R, W> Frontend for PlainFrontend<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn next_input(&mut self) -> std::io::Result<Input> {
        Ok(match self.input.next_line().await? {
            Some(InputLine::Line(line)) => Input::Line(line),
            Some(InputLine::TooLong) => Input::TooLong,
            None => Input::End,
        })
    }

    async fn show(&mut self, line: String) -> std::io::Result<()> {
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        self.output.write_all(&bytes).await?;
        self.output.flush().await
    }

    fn ready(&mut self, _next_prompt: Option<&str>) {}

    fn warn(&mut self, text: &str) {
        eprintln!("natter: {text}");
    }
}

/// Like [`run`], but when the connection is lost (or the server restarts) the session
/// reconnects with `reconnector` instead of ending, as the interactive client does (see
/// [`crate::reconnect`]); its status lines (`-- connection lost; reconnecting in 1 s
/// (attempt 1) --`, `-- reconnected --`) are output lines like any other. The `natter`
/// binary does not use this in plain mode (`--plain` still ends on a lost connection, so
/// scripts notice); it is here for programs embedding the client, and for tests.
pub async fn run_reconnecting<R, W, D>(
    conn: &mut Connection,
    login: &Authenticated,
    input: R,
    output: W,
    options: &SessionOptions,
    reconnector: &mut Reconnector<D>,
) -> Result<String, RunError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    D: Dial,
{
    let mut frontend = PlainFrontend {
        input: InputLines::new(BufReader::new(input), MAX_INPUT_LINE),
        output,
    };
    frontend
        .show(format::logged_in_line(&login.user, login.registered))
        .await
        .map_err(RunError::Output)?;
    let mut state = ChatState::new(login.user.clone());
    let reason = drive(conn, &mut state, &mut frontend, options, Some(reconnector)).await?;
    frontend
        .show(format::bye_line(&reason))
        .await
        .map_err(RunError::Output)?;
    Ok(reason)
}
