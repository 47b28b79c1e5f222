//! Helpers shared by the transcript's tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Transcript;
use super::format::{TS_LEN, is_timestamp};

/// Upper bound for every wait in these tests.
pub(super) const WAIT: Duration = Duration::from_secs(30);

/// Flushes `t`, failing the test if that takes longer than [`WAIT`].
pub(super) async fn flush(t: &Transcript) {
    tokio::time::timeout(WAIT, t.flush())
        .await
        .expect("flush timed out");
}

/// Closes `t`, failing the test if that takes longer than [`WAIT`].
pub(super) async fn close(t: &Transcript) {
    tokio::time::timeout(WAIT, t.close())
        .await
        .expect("close timed out");
}

/// The lines of the file at `path`, which must end with a newline.
pub(super) fn read_lines(path: &Path) -> Vec<String> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
    text.lines().map(str::to_string).collect()
}

/// Splits `<ISO timestamp> <rest>`, checking the timestamp's shape.
pub(super) fn split_line(line: &str) -> (&str, &str) {
    let (ts, rest) = line
        .split_at_checked(TS_LEN)
        .unwrap_or_else(|| panic!("short line {line:?}"));
    assert!(is_timestamp(ts.as_bytes()), "bad timestamp in {line:?}");
    let rest = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space after timestamp in {line:?}"));
    (ts, rest)
}

/// Every file below `dir` (following nothing but real directories).
pub(super) fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir").flatten() {
            let kind = entry.file_type().expect("file_type");
            if kind.is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// A fixed event time whose rendering the tests spell out.
pub(super) const TS: u64 = 1_795_314_683_123; // 2026-11-22T02:31:23.123Z
