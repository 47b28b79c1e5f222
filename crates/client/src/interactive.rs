//! Interactive mode: a line editor whose prompt shows where lines go, with incoming messages
//! printed above the line being typed.
//!
//! Threads and channels:
//!
//! ```text
//!  readline thread ──Input──► async chat loop (tokio, owns the Connection and ChatState)
//!        ▲                      │            │
//!        └──next prompt─────────┘            └──lines──► printer thread ──► ExternalPrinter
//! ```
//!
//! rustyline blocks, so it runs on its own std thread. After each line it waits for the chat
//! loop to send the next prompt, so the prompt after `/msg bob` already reads `[@bob] > `.
//! After `/join rust` (and `/part`) the chat loop sends the next prompt only once the
//! server's answer echoing the request's id has arrived (bounded by
//! [`SessionOptions::answer_timeout`]), so it already reads `[#rust] > ` (see
//! [`crate::session`]).
//!
//! Nothing typed is lost while the editor waits: one editor lives for the whole session,
//! keeping the bytes it read ahead for its next `readline` (rustyline's "buffer-redux"
//! feature; without it every `readline` reads through a fresh 1 KiB buffer and drops the
//! rest of a burst or paste when it returns), and the terminal stays in raw mode between
//! lines, so what arrives meanwhile waits in the terminal unechoed. A bracketed paste of
//! several lines lands on the edit line; Enter sends each line as its own message.
//!
//! Incoming lines go through rustyline's `ExternalPrinter`, which clears the edited line,
//! prints, and redraws it, so messages never tear through what is being typed; printing can
//! block, so it happens on a printer thread fed by a bounded channel. Ctrl-C clears a
//! half-typed line; on an empty line it acts, like Ctrl-D, as `/exit`.
//!
//! When the server ends the session while the user is typing, rustyline cannot be told to
//! stop. The `[bye]` line is printed above the edited line like any other; the printer then
//! waits (bounded) until the editor has drawn every line, which it can prove because the
//! external printer hands over one line at a time. Then the terminal settings saved at
//! start-up are restored (Unix; bracketed paste is turned off again) and the caller exits
//! the process, which ends the still-blocked editor thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustyline::error::ReadlineError;
use rustyline::{
    Cmd, ConditionalEventHandler, DefaultEditor, Event, EventContext, EventHandler,
    ExternalPrinter as _, KeyEvent, Movement, RepeatCount,
};
use tokio::sync::mpsc;

use crate::connection::{Authenticated, Connection};
use crate::format;
use crate::reconnect::{Reconnector, SameServer};
use crate::session::{Frontend, Input, RunError, SessionOptions, drive};
use crate::state::ChatState;

/// How many display lines may wait for the printer before the chat loop waits.
const PRINT_QUEUE: usize = 256;

/// Longest wait at the end for the editor to draw the last lines.
const PRINT_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the editor gets to finish its last redraw before the terminal is restored.
const REDRAW_GRACE: Duration = Duration::from_millis(30);

/// A "line" that leaves the screen as it was: the editor prints it above the edited line
/// followed by a newline, and moving the cursor up one row first cancels that newline.
const INVISIBLE_LINE: &str = "\x1b[1A";

/// Runs an interactive session for an already logged-in connection, on the terminal.
///
/// With a `reconnector`, a lost connection is restored by itself (see
/// [`crate::reconnect`]): the status lines are printed above the line being typed, which
/// stays as it is. Returns the server's `bye` reason (already printed). The caller should exit the process
/// soon after this returns: if the server ended the session, the editor thread is still
/// blocked reading the terminal (whose settings this function has restored).
pub fn run(
    runtime: &tokio::runtime::Runtime,
    mut conn: Connection,
    login: &Authenticated,
    options: &SessionOptions,
    mut reconnector: Option<Reconnector<SameServer>>,
) -> Result<String, RunError> {
    let terminal_err = |e: ReadlineError| RunError::Terminal(e.to_string());
    let mut editor = DefaultEditor::new().map_err(terminal_err)?;
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlCClearsTheLine)),
    );
    let mut printer = editor.create_external_printer().map_err(terminal_err)?;
    let saved = SavedTerminal::save();
    // Raw for the whole session, not only inside `readline`: what is typed while no line
    // is being edited (say, while `/join` awaits its answer) is neither echoed by the
    // terminal nor turned into something else; the editor reads it later.
    saved.enter_raw_mode();

    println!("{}", format::logged_in_line(&login.user, login.registered));
    println!("Type /help for the commands, /exit or Ctrl-D to leave.");

    let mut state = ChatState::new(login.user.clone());
    let (mut frontend, channels) = ChannelFrontend::new(&state.prompt());
    let ThreadEnds {
        input_tx,
        prompt_rx,
        mut print_rx,
        in_readline,
    } = channels;

    let printer_in_readline = in_readline.clone();
    let reader = std::thread::spawn(move || read_lines(editor, input_tx, prompt_rx, in_readline));
    let (printed_tx, printed_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        while let Some(line) = print_rx.blocking_recv() {
            // The printer adds no newline when the editor is idle; a line always ends in one.
            if printer.print(line + "\n").is_err() {
                break;
            }
        }
        // While the editor reads, it draws our lines itself, later. The printer hands over
        // one line at a time and each print waits until the editor took the previous one;
        // so once two more prints went through, every real line has been drawn.
        if printer_in_readline.load(Ordering::SeqCst) {
            for _ in 0..2 {
                if printer.print(INVISIBLE_LINE.to_string()).is_err() {
                    break;
                }
            }
        }
        let _ = printed_tx.send(());
    });

    let result = runtime.block_on(drive(
        &mut conn,
        &mut state,
        &mut frontend,
        options,
        reconnector.as_mut(),
    ));

    let editor_blocked = frontend.in_readline.load(Ordering::SeqCst);
    if editor_blocked && let Ok(reason) = &result {
        // The server ended the session while the user was typing: say why above the line.
        // (Errors are reported by the caller once the terminal is back to normal.)
        let _ = frontend.print_tx.try_send(format::bye_line(reason));
    }
    // Closing the channels ends the printer (after the queued lines) and an idle editor.
    drop(frontend);
    // Bounded: an editor busy in a mode that holds back printing must not keep us here.
    let _ = printed_rx.recv_timeout(PRINT_FLUSH_TIMEOUT);
    if editor_blocked {
        // The editor is still redrawing its line after the last (invisible) print; a
        // moment's grace keeps that redraw from mixing with the newline written below.
        std::thread::sleep(REDRAW_GRACE);
        saved.restore();
        // Bracketed paste off (the editor turned it on), then a fresh line.
        print!("\x1b[?2004l\r\n");
    } else {
        let _ = reader.join();
        saved.restore();
        if let Ok(reason) = &result {
            println!("{}", format::bye_line(reason));
        }
    }
    result
}

/// Ctrl-C on a half-typed line clears it, as in shells; on an empty line it falls through
/// to rustyline's default (an interrupt, which leaves like `/exit`).
struct CtrlCClearsTheLine;

impl ConditionalEventHandler for CtrlCClearsTheLine {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().is_empty() {
            None
        } else {
            Some(Cmd::Kill(Movement::WholeBuffer))
        }
    }
}

/// The lines to send for what the editor returned: a bracketed paste puts several lines
/// on the edit line, and each becomes a message of its own (blank ones are skipped); a
/// typed line is passed on as it is.
fn split_entered(entered: String) -> Vec<String> {
    if !entered.contains('\n') {
        return vec![entered];
    }
    entered
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The editor thread: reads a line with the prompt it is given, hands it over, repeats.
///
/// One editor reads the terminal for the whole session; bytes it read ahead (the rest of
/// a burst or a paste) stay in it for the next `readline` (rustyline's "buffer-redux").
fn read_lines(
    mut editor: DefaultEditor,
    input_tx: mpsc::Sender<std::io::Result<Input>>,
    prompt_rx: std::sync::mpsc::Receiver<String>,
    in_readline: Arc<AtomicBool>,
) {
    let Ok(mut prompt) = prompt_rx.recv() else {
        return;
    };
    loop {
        let read = editor.readline(&prompt);
        in_readline.store(false, Ordering::SeqCst);
        let inputs = match read {
            Ok(entered) => split_entered(entered)
                .into_iter()
                .map(|line| {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Ok(Input::Line(line))
                })
                .collect(),
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => vec![Ok(Input::End)],
            Err(e) => vec![Err(std::io::Error::other(e.to_string()))],
        };
        if inputs.is_empty() {
            // Nothing to send (a paste of blank lines): edit again with the same prompt.
            in_readline.store(true, Ordering::SeqCst);
            continue;
        }
        // Each input is answered with the prompt for the next one (or with the end).
        for input in inputs {
            if input_tx.blocking_send(input).is_err() {
                return;
            }
            match prompt_rx.recv() {
                Ok(next) => prompt = next,
                Err(_) => return,
            }
        }
    }
}

/// The ends of the channels that the editor and printer threads hold.
pub(crate) struct ThreadEnds {
    /// Where the editor sends what was typed.
    pub(crate) input_tx: mpsc::Sender<std::io::Result<Input>>,
    /// Where the editor waits for its next prompt; closed when no more input is wanted.
    pub(crate) prompt_rx: std::sync::mpsc::Receiver<String>,
    /// Where the printer takes lines to show.
    pub(crate) print_rx: mpsc::Receiver<String>,
    /// True from the moment a prompt is handed out until the editor returns a line.
    pub(crate) in_readline: Arc<AtomicBool>,
}

/// The chat loop's side of the editor and printer threads.
pub(crate) struct ChannelFrontend {
    /// Lines typed in the editor.
    input_rx: mpsc::Receiver<std::io::Result<Input>>,
    /// Next prompts for the editor; `None` once input is over.
    prompt_tx: Option<std::sync::mpsc::Sender<String>>,
    /// Lines for the printer.
    print_tx: mpsc::Sender<String>,
    /// Whether the editor may be inside `readline` (so the terminal may be in raw mode).
    in_readline: Arc<AtomicBool>,
}

impl ChannelFrontend {
    /// A front end whose editor is about to show `first_prompt`, and the threads' ends.
    pub(crate) fn new(first_prompt: &str) -> (ChannelFrontend, ThreadEnds) {
        let (input_tx, input_rx) = mpsc::channel(1);
        let (prompt_tx, prompt_rx) = std::sync::mpsc::channel();
        let (print_tx, print_rx) = mpsc::channel(PRINT_QUEUE);
        let in_readline = Arc::new(AtomicBool::new(false));
        let mut frontend = ChannelFrontend {
            input_rx,
            prompt_tx: Some(prompt_tx),
            print_tx,
            in_readline: in_readline.clone(),
        };
        frontend.ready(Some(first_prompt));
        let ends = ThreadEnds {
            input_tx,
            prompt_rx,
            print_rx,
            in_readline,
        };
        (frontend, ends)
    }
}

impl Frontend for ChannelFrontend {
    async fn next_input(&mut self) -> std::io::Result<Input> {
        // A vanished editor thread means no more input.
        self.input_rx.recv().await.unwrap_or(Ok(Input::End))
    }

    async fn show(&mut self, line: String) -> std::io::Result<()> {
        self.print_tx
            .send(line)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "printer stopped"))
    }

    fn ready(&mut self, next_prompt: Option<&str>) {
        match (next_prompt, &self.prompt_tx) {
            (Some(prompt), Some(tx)) => {
                // Set before sending so that "false" proves the editor is not reading.
                self.in_readline.store(true, Ordering::SeqCst);
                if tx.send(prompt.to_string()).is_err() {
                    self.in_readline.store(false, Ordering::SeqCst);
                }
            }
            (Some(_), None) => {}
            (None, _) => self.prompt_tx = None,
        }
    }

    fn warn(&mut self, text: &str) {
        // Best effort: a full queue drops the diagnostic rather than blocking the loop.
        let _ = self.print_tx.try_send(format!("natter: {text}"));
    }
}

/// The terminal settings from before the editor touched them.
struct SavedTerminal {
    /// The settings of stdin's terminal, if it had any.
    #[cfg(unix)]
    termios: Option<nix::sys::termios::Termios>,
}

impl SavedTerminal {
    /// Records the current settings of stdin's terminal.
    fn save() -> Self {
        SavedTerminal {
            #[cfg(unix)]
            termios: nix::sys::termios::tcgetattr(std::io::stdin()).ok(),
        }
    }

    /// Switches stdin's terminal to the raw mode the editor uses inside `readline` (no echo,
    /// no line buffering, no signals, CR not turned into NL), keeping output processing.
    fn enter_raw_mode(&self) {
        #[cfg(unix)]
        if let Some(termios) = &self.termios {
            use nix::sys::termios::{
                ControlFlags, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, tcsetattr,
            };
            let mut raw = termios.clone();
            raw.input_flags &= !(InputFlags::BRKINT
                | InputFlags::ICRNL
                | InputFlags::INPCK
                | InputFlags::ISTRIP
                | InputFlags::IXON);
            raw.control_flags |= ControlFlags::CS8;
            raw.local_flags &=
                !(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::IEXTEN | LocalFlags::ISIG);
            raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
            raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
            // TCSADRAIN, never a flush: input already typed must survive the switch.
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &raw);
        }
    }

    /// Puts the settings back.
    fn restore(&self) {
        #[cfg(unix)]
        if let Some(termios) = &self.termios {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                termios,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconnect::NoDial;
    use std::time::Duration;

    use futures::{SinkExt, StreamExt};
    use natter_proto::{ClientFrame, LineCodec, ServerFrame, decode_client, encode};
    use tokio::time::timeout;
    use tokio_util::codec::Framed;

    const T: Duration = Duration::from_secs(5);

    /// The chat loop behind the interactive front end, with the threads played by the test:
    /// the prompt after `/msg bob` is already the focused one, and lines reach the printer.
    // Multi-threaded: the test blocks on std channels as the editor thread would.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_line_is_answered_with_the_prompt_for_the_next() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let mut server = Framed::new(server_io, LineCodec::new(natter_proto::MAX_LINE));
        let hello = ServerFrame::Hello {
            server: "natter".into(),
            version: "test".into(),
            protocol: natter_proto::PROTOCOL_VERSION,
        };
        server.send(encode(&hello)).await.expect("hello");
        let (mut conn, _) = Connection::over(Box::new(client_io)).await.expect("over");

        let mut state = ChatState::new("alice");
        let (mut frontend, ends) = ChannelFrontend::new(&state.prompt());
        let ThreadEnds {
            input_tx,
            prompt_rx,
            mut print_rx,
            in_readline,
        } = ends;
        let chat = tokio::spawn(async move {
            let r = drive::<_, NoDial>(
                &mut conn,
                &mut state,
                &mut frontend,
                &SessionOptions::default(),
                None,
            )
            .await;
            (r, frontend.in_readline.load(Ordering::SeqCst))
        });

        let next_prompt = |rx: &std::sync::mpsc::Receiver<String>| {
            rx.recv_timeout(T).expect("a prompt is handed out")
        };
        assert_eq!(next_prompt(&prompt_rx), "[#lobby] > ");
        assert!(in_readline.load(Ordering::SeqCst));

        // What the editor thread does when a line is entered.
        let enter = |input: Input| {
            in_readline.store(false, Ordering::SeqCst);
            input_tx.send(Ok(input))
        };
        enter(Input::Line("/msg bob".into())).await.expect("send");
        let line = timeout(T, print_rx.recv()).await.expect("in time");
        assert!(line.expect("a line").starts_with("[focus] "));
        assert_eq!(next_prompt(&prompt_rx), "[@bob] > ");
        assert!(
            in_readline.load(Ordering::SeqCst),
            "set again with the prompt"
        );

        enter(Input::Line("psst".into())).await.expect("send");
        let frame = timeout(T, server.next()).await.expect("in time");
        let frame = decode_client(&frame.expect("open").expect("line")).expect("frame");
        // Every message goes out with a request id and a fresh client id (for retries).
        let ClientFrame::Private {
            id: Some(_),
            to,
            text,
            client_id: Some(client_id),
        } = frame
        else {
            panic!("expected a private message with ids, got {frame:?}");
        };
        assert_eq!((to.as_str(), text.as_str()), ("bob", "psst"));
        assert_eq!(client_id.len(), 32);
        assert_eq!(next_prompt(&prompt_rx), "[@bob] > ");

        // Incoming messages go to the printer.
        server
            .send(encode(&ServerFrame::Public {
                msg_id: 1,
                room: "lobby".into(),
                from: "carol".into(),
                text: "hi".into(),
                ts: 1,
            }))
            .await
            .expect("send");
        let line = timeout(T, print_rx.recv()).await.expect("in time");
        assert_eq!(line.as_deref(), Some("#lobby <carol> hi"));

        // /join: the room switches when the server's answer arrives, and only then is the
        // next prompt handed out, already naming the new room.
        enter(Input::Line("/join #Rust".into()))
            .await
            .expect("send");
        let frame = timeout(T, server.next()).await.expect("in time");
        let frame = decode_client(&frame.expect("open").expect("line")).expect("frame");
        let ClientFrame::Join { id: Some(id), room } = frame else {
            panic!("expected join with an id, got {frame:?}");
        };
        assert_eq!(room, "rust");
        assert!(prompt_rx.try_recv().is_err(), "no prompt before the answer");
        // Other frames meanwhile are shown but do not release the prompt.
        server
            .send(encode(&ServerFrame::System {
                text: "busy".into(),
            }))
            .await
            .expect("send");
        let line = timeout(T, print_rx.recv()).await.expect("in time");
        assert_eq!(line.as_deref(), Some("[system] busy"));
        assert!(prompt_rx.try_recv().is_err(), "still no prompt");
        server
            .send(encode(&ServerFrame::Joined {
                id: Some(id),
                room: "rust".into(),
                members: vec!["alice".into()],
                more: 0,
            }))
            .await
            .expect("send");
        let line = timeout(T, print_rx.recv()).await.expect("in time");
        assert_eq!(line.as_deref(), Some("[joined] #rust (1 member: alice)"));
        assert_eq!(next_prompt(&prompt_rx), "[#rust] > ");

        // Ctrl-D: quit is sent, no prompt follows, and bye ends the loop.
        enter(Input::End).await.expect("send");
        let frame = timeout(T, server.next()).await.expect("in time");
        let frame = decode_client(&frame.expect("open").expect("line")).expect("frame");
        assert_eq!(
            frame,
            ClientFrame::Quit {
                id: None,
                message: None
            }
        );
        server
            .send(encode(&ServerFrame::Bye {
                reason: "quit".into(),
            }))
            .await
            .expect("send");
        let (result, editor_blocked) = timeout(T, chat).await.expect("in time").expect("join");
        assert_eq!(result.expect("clean end"), "quit");
        assert!(!editor_blocked, "the editor is not reading after Ctrl-D");
        assert!(
            prompt_rx.recv_timeout(T).is_err(),
            "the prompt channel is closed instead of handing out a prompt"
        );
    }
}
