//! The input line: text, cursor, and Tab completion's cycle.

/// Tab completion in progress: what was typed and which candidate is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Completion {
    /// The line before the completed word, as it was when Tab was first pressed.
    before: String,
    /// The text after the cursor.
    after: String,
    /// The matching candidates.
    candidates: Vec<String>,
    /// The one shown.
    index: usize,
    /// Whether the word was the first of the line (a nick then gets `: `).
    first_word: bool,
}

/// The line being typed, with the cursor as a character index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputLine {
    /// The text.
    text: String,
    /// The cursor, in characters from the start.
    cursor: usize,
    /// The completion cycle, while Tab is pressed repeatedly.
    completion: Option<Completion>,
}

impl InputLine {
    /// The text typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The byte offset of the cursor.
    fn byte(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Replaces the text, cursor at the end.
    pub fn set(&mut self, text: &str) {
        self.text = text.to_string();
        self.cursor = self.text.chars().count();
        self.completion = None;
    }

    /// Takes the text, leaving the line empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        self.completion = None;
        std::mem::take(&mut self.text)
    }

    /// Empties the line (Ctrl-C).
    pub fn clear(&mut self) {
        self.take();
    }

    /// Inserts a character at the cursor. Control characters are not inserted.
    pub fn insert(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        let at = self.byte(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
        self.completion = None;
    }

    /// Inserts text at the cursor (a paste without line breaks).
    pub fn insert_str(&mut self, s: &str) {
        for c in s.chars() {
            self.insert(c);
        }
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor == 0 {
            return;
        }
        let at = self.byte(self.cursor - 1);
        self.text.remove(at);
        self.cursor -= 1;
        self.completion = None;
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte(self.cursor);
            self.text.remove(at);
            self.completion = None;
        }
    }

    /// Moves the cursor one character left.
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
        self.completion = None;
    }

    /// Moves the cursor one character right.
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.text.chars().count());
        self.completion = None;
    }

    /// Moves the cursor to the start.
    pub fn home(&mut self) {
        self.cursor = 0;
        self.completion = None;
    }

    /// Moves the cursor to the end.
    pub fn end(&mut self) {
        self.cursor = self.text.chars().count();
        self.completion = None;
    }

    /// Deletes the word before the cursor (Ctrl-W).
    pub fn delete_word(&mut self) {
        while self.cursor > 0 && self.char_before() == Some(' ') {
            self.backspace();
        }
        while self.cursor > 0 && self.char_before().is_some_and(|c| c != ' ') {
            self.backspace();
        }
    }

    /// The character before the cursor.
    fn char_before(&self) -> Option<char> {
        self.text.chars().nth(self.cursor.checked_sub(1)?)
    }

    /// Forgets the completion cycle (another key was pressed, or the buffer changed).
    pub fn reset_completion(&mut self) {
        self.completion = None;
    }

    /// Tab: completes the word before the cursor with the first of `words` that starts
    /// with it (ignoring case); pressed again, with the next one.
    pub fn complete(&mut self, words: &[String]) {
        if let Some(c) = &mut self.completion {
            c.index = (c.index + 1) % c.candidates.len();
        } else {
            let at = self.byte(self.cursor);
            let (head, after) = self.text.split_at(at);
            let start = head.rfind(' ').map_or(0, |i| i + 1);
            let (before, word) = head.split_at(start);
            let first_word = before.trim().is_empty();
            let lower = word.to_ascii_lowercase();
            let candidates: Vec<String> = words
                .iter()
                .filter(|w| {
                    // Commands only as the first word; nicks and rooms anywhere.
                    (first_word || !w.starts_with('/'))
                        && w.to_ascii_lowercase().starts_with(&lower)
                        && (!word.is_empty() || !w.starts_with('/'))
                })
                .cloned()
                .collect();
            if candidates.is_empty() {
                return;
            }
            self.completion = Some(Completion {
                before: before.to_string(),
                after: after.to_string(),
                candidates,
                index: 0,
                first_word,
            });
        }
        let Some(c) = &self.completion else { return };
        let word = &c.candidates[c.index];
        let suffix = if c.first_word && !word.starts_with(['/', '#']) {
            ": "
        } else {
            " "
        };
        let head = format!("{}{word}{suffix}", c.before);
        self.cursor = head.chars().count();
        self.text = format!("{head}{}", c.after);
    }
}
