//! Asking the user during connection and login: yes/no questions, passwords, lines, and
//! telling them things. The terminal answers in the binary; tests script the answers.

use std::io::{BufRead, Write};

/// Asks the user questions during login.
pub trait Prompter {
    /// Asks a yes/no question; anything but yes counts as no. May block.
    fn confirm(&mut self, question: &str) -> std::io::Result<bool>;
    /// Asks for a password without echoing it. May block.
    fn password(&mut self, prompt: &str) -> std::io::Result<String>;
    /// Asks a question answered with a line of text (trimmed). May block.
    fn ask(&mut self, question: &str) -> std::io::Result<String> {
        let _ = question;
        Err(std::io::Error::other("this prompter cannot ask questions"))
    }
    /// Tells the user something on a line of its own.
    fn say(&mut self, text: &str) -> std::io::Result<()> {
        let _ = text;
        Ok(())
    }
}

/// Asks on the terminal: questions on stdout, answers from stdin, passwords without echo.
#[derive(Debug, Default)]
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn confirm(&mut self, question: &str) -> std::io::Result<bool> {
        Ok(is_yes(&self.ask(question)?))
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<String> {
        rpassword::prompt_password(prompt)
    }

    fn ask(&mut self, question: &str) -> std::io::Result<String> {
        let mut out = std::io::stdout();
        out.write_all(question.as_bytes())?;
        out.flush()?;
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "end of input",
            ));
        }
        Ok(answer.trim().to_string())
    }

    fn say(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout();
        writeln!(out, "{text}")?;
        out.flush()
    }
}

/// Whether an answer to a yes/no question means yes (`y` or `yes`, any case).
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
