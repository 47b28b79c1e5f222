//! Input history per buffer, kept across restarts in the config directory (the one the
//! known-servers file lives in: `$XDG_CONFIG_HOME/natter`, else `~/.config/natter`).
//!
//! The file `input_history` is private (mode 0600), written whole to a temporary file
//! that is then renamed over the old one, so a crash leaves the old or the new file and
//! never half of one. It is bounded: [`PER_BUFFER`] lines for each of the [`BUFFERS`]
//! buffers used last. Format: a header line, then `KEY<TAB>LINE` per line, oldest first,
//! where KEY is `server`, `#room` or `@user` (lower case).

use std::io::Write;
use std::path::{Path, PathBuf};

use natter_proto::name_key;

use super::model::BufferKind;

/// The file's name in the config directory.
pub const FILE: &str = "input_history";
/// How many lines each buffer keeps.
pub const PER_BUFFER: usize = 200;
/// How many buffers are kept (the ones used last).
pub const BUFFERS: usize = 50;
/// The first line of the file.
const HEADER: &str = "# natter input history v1";

/// The client's config directory (`$XDG_CONFIG_HOME/natter` or `~/.config/natter`), the
/// same one the known-servers file defaults to; `None` when neither variable is set.
pub fn config_dir() -> Option<PathBuf> {
    crate::trust::default_known_servers()?
        .parent()
        .map(Path::to_path_buf)
}

/// Lines typed per buffer, the buffer used last at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputHistory {
    entries: Vec<(String, Vec<String>)>,
}

/// The key a buffer's lines are stored under.
pub fn key(kind: &BufferKind) -> String {
    match kind {
        BufferKind::Server => "server".to_string(),
        BufferKind::Room(room) => format!("#{}", name_key(room)),
        BufferKind::Private(user) => format!("@{}", name_key(user)),
    }
}

/// True when a line can be stored (one line, no tab).
fn storable(line: &str) -> bool {
    !line.trim().is_empty() && !line.contains(['\t', '\n', '\r'])
}

impl InputHistory {
    /// The lines stored for buffer `kind`, oldest first.
    pub fn get(&self, kind: &BufferKind) -> Vec<String> {
        let key = key(kind);
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, lines)| lines.clone())
            .unwrap_or_default()
    }

    /// Stores buffer `kind`'s lines (the last [`PER_BUFFER`]) as the most recently used;
    /// the least recently used buffers beyond [`BUFFERS`] are forgotten.
    pub fn set(&mut self, kind: &BufferKind, lines: &[String]) {
        let key = key(kind);
        self.entries.retain(|(k, _)| *k != key);
        let lines: Vec<String> = lines.iter().filter(|l| storable(l)).cloned().collect();
        let skip = lines.len().saturating_sub(PER_BUFFER);
        self.entries.push((key, lines[skip..].to_vec()));
        let excess = self.entries.len().saturating_sub(BUFFERS);
        self.entries.drain(..excess);
    }

    /// Reads the file's text (unknown or broken lines are skipped).
    pub fn parse(text: &str) -> InputHistory {
        let mut entries: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            let Some((key, line)) = line.split_once('\t') else {
                continue;
            };
            if !key.starts_with(['#', '@']) && key != "server" {
                continue;
            }
            match entries.iter().position(|(k, _)| k == key) {
                Some(i) => {
                    let (k, mut lines) = entries.remove(i);
                    lines.push(line.to_string());
                    entries.push((k, lines));
                }
                None => entries.push((key.to_string(), vec![line.to_string()])),
            }
        }
        let mut history = InputHistory::default();
        for (key, lines) in entries {
            let skip = lines.len().saturating_sub(PER_BUFFER);
            history.entries.push((key, lines[skip..].to_vec()));
        }
        let excess = history.entries.len().saturating_sub(BUFFERS);
        history.entries.drain(..excess);
        history
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for (key, lines) in &self.entries {
            for line in lines {
                text.push_str(&format!("{key}\t{line}\n"));
            }
        }
        text
    }

    /// Loads the file at `path`; a missing file is an empty history.
    pub fn load(path: &Path) -> std::io::Result<InputHistory> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(InputHistory::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InputHistory::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the file at `path` (mode 0600) through a temporary file and a rename,
    /// creating its directory (mode 0700) when missing.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() && !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(FILE);
        let temp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut file = options.open(&temp)?;
            file.write_all(self.to_text().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

#[cfg(test)]
mod tests;
