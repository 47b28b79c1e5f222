//! The full-screen client's settings: `config.toml` in the config directory (the one the
//! known-servers file lives in, see [`super::store::config_dir`]).
//!
//! ```toml
//! bell = true                 # ring the terminal bell on a mention
//! timestamp = "%H:%M"         # %H hours, %M minutes, %S seconds, %% a percent sign
//! nick_colours = true         # colour other people's nicks
//!
//! [keys]
//! alt_digits = true           # Alt+1..9, Alt+0 show buffers 1..10
//! next = ["alt-right", "ctrl-n"]
//! prev = ["alt-left", "ctrl-p"]
//! ```
//!
//! Key names: an optional `ctrl-` and/or `alt-`, then a character, `left`, `right`, `up`,
//! `down`, `pageup`, `pagedown`, `home`, `end`, `tab` or `f1`..`f12`. The file is read
//! with a small parser of this subset of TOML (`key = value` lines, one `[keys]` table,
//! `#` comments, booleans, strings, arrays of strings). A missing file means the
//! defaults; a file with any mistake means the defaults too, and the mistake is shown in
//! the server buffer.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The file's name in the config directory.
pub const FILE: &str = "config.toml";

/// One key binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The key (characters lower case).
    pub code: KeyCode,
    /// Ctrl held.
    pub ctrl: bool,
    /// Alt held.
    pub alt: bool,
}

impl KeySpec {
    /// Reads `ctrl-n`, `alt-right`, `f6`.
    pub fn parse(name: &str) -> Option<KeySpec> {
        let mut rest = name.trim().to_ascii_lowercase();
        let (mut ctrl, mut alt) = (false, false);
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-").or(rest.strip_prefix("c-")) {
                ctrl = true;
                rest = r.to_string();
            } else if let Some(r) = rest.strip_prefix("alt-").or(rest.strip_prefix("m-")) {
                alt = true;
                rest = r.to_string();
            } else {
                break;
            }
        }
        let code = match rest.as_str() {
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "tab" => KeyCode::Tab,
            f if f.starts_with('f') && f.len() > 1 => {
                let n: u8 = f[1..].parse().ok()?;
                if !(1..=12).contains(&n) {
                    return None;
                }
                KeyCode::F(n)
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next()?),
            _ => return None,
        };
        Some(KeySpec { code, ctrl, alt })
    }

    /// True when `key` is this binding (Shift and letter case ignored).
    pub fn matches(&self, key: &KeyEvent) -> bool {
        let code = match key.code {
            KeyCode::Char(c) => KeyCode::Char(c.to_ascii_lowercase()),
            other => other,
        };
        code == self.code
            && key.modifiers.contains(KeyModifiers::CONTROL) == self.ctrl
            && key.modifiers.contains(KeyModifiers::ALT) == self.alt
    }
}

/// Key bindings of the buffer switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Alt+1..9 and Alt+0 show buffers 1..10.
    pub alt_digits: bool,
    /// Keys showing the next buffer.
    pub next: Vec<KeySpec>,
    /// Keys showing the previous buffer.
    pub prev: Vec<KeySpec>,
}

/// The full-screen client's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Ring the terminal bell on a mention.
    pub bell: bool,
    /// The time column's format (`%H`, `%M`, `%S`, `%%`).
    pub timestamp: String,
    /// Colour other people's nicks.
    pub nick_colours: bool,
    /// Buffer switching keys.
    pub keys: Keys,
}

impl Default for Config {
    fn default() -> Config {
        let keys = |names: &[&str]| names.iter().filter_map(|n| KeySpec::parse(n)).collect();
        Config {
            bell: true,
            timestamp: "%H:%M".to_string(),
            nick_colours: true,
            keys: Keys {
                alt_digits: true,
                next: keys(&["alt-right", "ctrl-n"]),
                prev: keys(&["alt-left", "ctrl-p"]),
            },
        }
    }
}

/// A value in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

/// Reads a quoted string (`"..."` with `\"`, `\\` escapes, or `'...'` literally); returns
/// it and what follows.
fn string(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('\'') {
        let end = rest.find('\'')?;
        return Some((rest[..end].to_string(), &rest[end + 1..]));
    }
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &rest[i + 1..])),
            '\\' => match chars.next()?.1 {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                't' => out.push('\t'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// True when only a comment or nothing is left.
fn ends(rest: &str) -> bool {
    let rest = rest.trim();
    rest.is_empty() || rest.starts_with('#')
}

/// Reads a value (and checks that only a comment follows).
fn value(s: &str) -> Option<Value> {
    let s = s.trim();
    for (word, b) in [("true", true), ("false", false)] {
        if let Some(rest) = s.strip_prefix(word)
            && ends(rest)
        {
            return Some(Value::Bool(b));
        }
    }
    if let Some(mut rest) = s.strip_prefix('[') {
        let mut items = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(']') {
                return ends(after).then_some(Value::List(items));
            }
            let (item, after) = string(rest)?;
            items.push(item);
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let (text, rest) = string(s)?;
    ends(rest).then_some(Value::Str(text))
}

/// Key names to bindings.
fn key_list(value: Value) -> Result<Vec<KeySpec>, String> {
    let names = match value {
        Value::Str(name) => vec![name],
        Value::List(names) => names,
        Value::Bool(_) => return Err("expected a key name or a list of them".into()),
    };
    names
        .iter()
        .map(|n| KeySpec::parse(n).ok_or_else(|| format!("unknown key '{n}'")))
        .collect()
}

/// Checks a timestamp format: only `%H`, `%M`, `%S` and `%%`.
fn check_timestamp(format: &str) -> Result<(), String> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' && !matches!(chars.next(), Some('H' | 'M' | 'S' | '%')) {
            return Err("timestamp: only %H, %M, %S and %% are supported".into());
        }
        if c.is_control() {
            return Err("timestamp: no control characters".into());
        }
    }
    Ok(())
}

impl Config {
    /// Reads the file's text; a mistake is `line N: what`.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
        let mut table = String::new();
        for (n, raw) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}", n + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some((name, after)) = rest.split_once(']') else {
                    return Err(at("a table name needs a closing ]".into()));
                };
                if name.trim() != "keys" || !ends(after) {
                    return Err(at(format!("unknown table [{}]", name.trim())));
                }
                table = "keys".into();
                continue;
            }
            let Some((key, raw_value)) = line.split_once('=') else {
                return Err(at("expected key = value".into()));
            };
            let key = key.trim();
            let value = value(raw_value).ok_or_else(|| at(format!("bad value for {key}")))?;
            let bool_of = |v: &Value| match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(at(format!("{key} must be true or false"))),
            };
            match (table.as_str(), key) {
                ("", "bell") => config.bell = bool_of(&value)?,
                ("", "nick_colours" | "nick_colors") => config.nick_colours = bool_of(&value)?,
                ("", "timestamp") => match value {
                    Value::Str(s) => {
                        check_timestamp(&s).map_err(at)?;
                        config.timestamp = s;
                    }
                    _ => return Err(at("timestamp must be a string like \"%H:%M\"".into())),
                },
                ("keys", "alt_digits") => config.keys.alt_digits = bool_of(&value)?,
                ("keys", "next") => config.keys.next = key_list(value).map_err(at)?,
                ("keys", "prev") => config.keys.prev = key_list(value).map_err(at)?,
                _ => {
                    let name = if table.is_empty() {
                        key.to_string()
                    } else {
                        format!("{table}.{key}")
                    };
                    return Err(at(format!("unknown setting '{name}'")));
                }
            }
        }
        Ok(config)
    }

    /// Loads the file at `path`: the defaults when it is missing; the defaults and the
    /// error text when it cannot be read or has a mistake.
    pub fn load(path: &Path) -> (Config, Option<String>) {
        match std::fs::read_to_string(path) {
            Ok(text) => match Config::parse(&text) {
                Ok(config) => (config, None),
                Err(e) => (
                    Config::default(),
                    Some(format!("config {} {e}; using the defaults", path.display())),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Config::default(), None),
            Err(e) => (
                Config::default(),
                Some(format!(
                    "cannot read config {}: {e}; using the defaults",
                    path.display()
                )),
            ),
        }
    }

    /// A Unix millisecond time, shifted by `offset_secs`, in the timestamp format.
    pub fn time(&self, ts: u64, offset_secs: i64) -> String {
        let secs = (ts / 1000) as i64 + offset_secs;
        let day = secs.rem_euclid(86_400);
        let (h, m, s) = (day / 3600, day / 60 % 60, day % 60);
        let mut out = String::new();
        let mut chars = self.timestamp.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('H') => out.push_str(&format!("{h:02}")),
                Some('M') => out.push_str(&format!("{m:02}")),
                Some('S') => out.push_str(&format!("{s:02}")),
                Some(other) => out.push(other),
                None => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
