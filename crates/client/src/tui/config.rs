//! The full-screen client's settings: `config.toml` in the config directory (the one the
//! known-servers file lives in, see [`super::store::config_dir`]).
//!
//! ```toml
//! server = "chat.example.org:9999"  # when neither --server nor NATTER_SERVER says
//! user = "alice"              # when neither --user nor NATTER_USER says
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
//! `down`, `pageup`, `pagedown`, `home`, `end`, `tab` or `f1`..`f12`. A missing file
//! means the defaults; a file with any mistake (bad TOML, an unknown key, a bad value)
//! means the defaults too, and the mistake is shown in the server buffer.

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
    /// The server to connect to when neither `--server` nor `NATTER_SERVER` says.
    pub server: Option<String>,
    /// The account to log in as when neither `--user` nor `NATTER_USER` says.
    pub user: Option<String>,
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
            server: None,
            user: None,
        }
    }
}

/// The file as written: every key optional, nothing else allowed.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bell: Option<bool>,
    timestamp: Option<String>,
    #[serde(alias = "nick_colors")]
    nick_colours: Option<bool>,
    server: Option<String>,
    user: Option<String>,
    keys: Option<FileKeys>,
}

/// The `[keys]` table as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    alt_digits: Option<bool>,
    next: Option<Names>,
    prev: Option<Names>,
}

/// One key name or a list of them.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

/// Key names to bindings.
fn key_list(names: Names) -> Result<Vec<KeySpec>, String> {
    let names = match names {
        Names::One(name) => vec![name],
        Names::Many(names) => names,
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

/// The line (1-based) of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(1, |t| t.matches('\n').count() + 1)
}

impl Config {
    /// Reads the file's text (TOML); a mistake is `line N: what`.
    pub fn parse(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| line_of(text, span.start));
            format!("line {line}: {}", e.message().trim())
        })?;
        let mut config = Config::default();
        if let Some(bell) = file.bell {
            config.bell = bell;
        }
        if let Some(colours) = file.nick_colours {
            config.nick_colours = colours;
        }
        if let Some(format) = file.timestamp {
            check_timestamp(&format)?;
            config.timestamp = format;
        }
        config.server = file.server;
        config.user = file.user;
        if let Some(keys) = file.keys {
            if let Some(alt) = keys.alt_digits {
                config.keys.alt_digits = alt;
            }
            if let Some(next) = keys.next {
                config.keys.next = key_list(next)?;
            }
            if let Some(prev) = keys.prev {
                config.keys.prev = key_list(prev)?;
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
