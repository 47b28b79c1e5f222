//! Retention: removing lines older than the configured period from every log.
//!
//! **Retention.** With `Some(d)`, lines older than `d` are removed from every `*.log` file
//! when the writer starts and then once per hour. A line's timestamp prefix is compared
//! as text with the cutoff's (the fixed-width format sorts like time); lines without a
//! timestamp prefix are kept. A file with old lines is rewritten through a temporary file
//! in the same directory (fsynced, then renamed over the original); a file left empty is
//! deleted, and so is a user directory left empty. Files without old lines are only read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::files::{Disk, sync_dir};
use super::format::{TS_LEN, is_timestamp, iso8601};

/// Suffix of retention's temporary files (not `.log`, so never taken for a log).
const PRUNE_SUFFIX: &str = ".pruning";

impl Disk {
    /// Removes lines older than `keep` from every log file; see the module doc.
    pub(super) fn prune(&mut self, keep: Duration) {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let Some(cutoff_ms) = crate::clock::now_ms().checked_sub(keep_ms) else {
            return; // the retention reaches back before 1970: nothing is old enough
        };
        let cutoff = iso8601(cutoff_ms);
        let mut files = Vec::new();
        let mut user_dirs = Vec::new();
        collect_logs(&self.dir, &mut files);
        collect_logs(&self.dir.join("rooms"), &mut files);
        if let Ok(entries) = fs::read_dir(self.dir.join("users")) {
            for entry in entries.flatten() {
                // `file_type` does not follow symlinks: we never prune through one.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    collect_logs(&entry.path(), &mut files);
                    user_dirs.push(entry.path());
                }
            }
        }
        for path in files {
            if let Err(e) = prune_file(&path, &cutoff) {
                let path = path.display();
                tracing::warn!(%path, error = %e, "pruning a conversation log failed");
            }
        }
        for dir in user_dirs {
            // Fails, as intended, unless retention emptied the directory.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Adds the regular `*.log` files in `dir` to `out`, and removes retention's temporary
/// files left there by a crash.
fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".log") {
            out.push(entry.path());
        } else if name.starts_with('.') && name.ends_with(PRUNE_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether `line` starts with a timestamp earlier than `cutoff`; lines without a
/// timestamp are never old.
fn is_old(line: &[u8], cutoff: &str) -> bool {
    line.get(..TS_LEN)
        .is_some_and(|ts| is_timestamp(ts) && ts < cutoff.as_bytes())
}

/// Rewrites `path` without its lines older than `cutoff`, or deletes it if none remain.
fn prune_file(path: &Path, cutoff: &str) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    // First pass, read only: most files have nothing to prune and stay untouched.
    let mut any_old = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if is_old(&line, cutoff) {
            any_old = true;
            break;
        }
    }
    if !any_old {
        return Ok(());
    }
    reader.rewind()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}{PRUNE_SUFFIX}"));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut out = BufWriter::new(opts.open(&tmp)?);
        let mut kept = false;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if !is_old(&line, cutoff) {
                out.write_all(&line)?;
                kept = true;
            }
        }
        if kept {
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
        } else {
            drop(out);
            fs::remove_file(&tmp)?;
            fs::remove_file(path)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::files::SYSTEM_LOG;
    use crate::transcript::testkit::*;
    use crate::transcript::{Event, Transcript};

    #[tokio::test]
    async fn retention_prunes_old_lines_and_empty_files_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        fs::create_dir_all(logs.join("rooms")).expect("mkdir");
        fs::create_dir_all(logs.join("users/alice")).expect("mkdir");
        fs::create_dir_all(logs.join("users/carol")).expect("mkdir");
        let new = format!("{} <alice> new", iso8601(crate::clock::now_ms()));
        fs::write(
            logs.join("rooms/lobby.log"),
            format!("2000-01-01T00:00:00.000Z <alice> old\nno timestamp here\n{new}\n"),
        )
        .expect("write");
        fs::write(
            logs.join("users/alice/bob.log"),
            "2000-01-01T00:00:00.000Z <alice> -> <bob> old\n",
        )
        .expect("write");
        fs::write(
            logs.join("users/carol/dave.log"),
            "2001-01-01T00:00:00.000Z <carol> -> <dave> old\n",
        )
        .expect("write");
        fs::write(logs.join("users/carol/notes.txt"), "not a log\n").expect("write");
        fs::write(logs.join(SYSTEM_LOG), format!("{new}\n")).expect("write");

        let day = Duration::from_secs(24 * 60 * 60);
        let t = Transcript::start(logs.clone(), Some(day)).expect("start");
        flush(&t).await;
        assert_eq!(
            read_lines(&logs.join("rooms/lobby.log")),
            ["no timestamp here".to_string(), new.clone()]
        );
        assert!(!logs.join("users/alice/bob.log").exists());
        assert!(!logs.join("users/alice").exists(), "empty user dir removed");
        assert!(!logs.join("users/carol/dave.log").exists());
        assert!(
            logs.join("users/carol/notes.txt").exists(),
            "only logs are pruned"
        );
        assert_eq!(read_lines(&logs.join(SYSTEM_LOG)), [new]);
        let leftovers: Vec<_> = all_files(&logs)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(PRUNE_SUFFIX))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // Appending after a rewrite goes to the new file.
        t.record(Event::Room {
            room: "lobby".into(),
            from: "alice".into(),
            text: "after".into(),
            ts_ms: crate::clock::now_ms(),
        });
        flush(&t).await;
        assert_eq!(read_lines(&logs.join("rooms/lobby.log")).len(), 3);
        close(&t).await;
    }
}
