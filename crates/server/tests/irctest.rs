//! The public irctest conformance suite against natter's IRC gateway (docs/IRC.md,
//! "irctest results"), through `e2e/irctest/run.sh` and natter's controller.
//!
//! The suite lives outside the project (`../shared/irctest`, or `IRCTEST_DIR`) and needs
//! Python 3 with `venv` (the script makes a virtual environment with the suite's
//! requirements). When either is missing the test says so and passes, unless
//! `NATTER_REQUIRE_IRCTEST=1` (set by `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Passed tests the core modules must keep (docs/IRC.md lists the rest and why).
const CORE_PASSED_AT_LEAST: u32 = 91;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the suite and Python can run here; explains why not.
fn can_run() -> bool {
    let required = std::env::var("NATTER_REQUIRE_IRCTEST").is_ok_and(|v| v == "1");
    let suite = std::env::var_os("IRCTEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/irctest"));
    let python = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|s| s.success());
    let missing = if !suite.join("irctest").is_dir() {
        Some(format!("the irctest suite ({})", suite.display()))
    } else if !python {
        Some("python3 with venv and ensurepip".to_string())
    } else {
        None
    };
    match missing {
        None => true,
        Some(what) if required => panic!("NATTER_REQUIRE_IRCTEST=1 but {what} is missing"),
        Some(what) => {
            eprintln!("skipped: {what} is missing (NATTER_REQUIRE_IRCTEST=1 makes this fail)");
            false
        }
    }
}

/// Runs one selection of the suite; returns pytest's summary line.
fn run(selection: &str) -> String {
    let out = Command::new("bash")
        .arg(workspace().join("e2e/irctest/run.sh"))
        .args([selection, "-q"])
        .env("NATTER_SERVER", env!("CARGO_BIN_EXE_natter-server"))
        .output()
        .expect("run e2e/irctest/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("skipped")))
        .unwrap_or_default()
        .to_string();
    assert!(
        out.status.success() && !summary.contains("failed") && !summary.contains("error"),
        "irctest {selection} did not pass:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary
}

/// The number before `word` in a pytest summary (`90 passed, 7 skipped ...`).
fn count(summary: &str, word: &str) -> u32 {
    let words: Vec<&str> = summary
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

#[test]
fn irctest_core_modules_pass_and_sasl_and_chathistory_do_not_fail() {
    if !can_run() {
        return;
    }
    let core = run("core");
    eprintln!("irctest core: {core}");
    assert!(
        count(&core, "passed") >= CORE_PASSED_AT_LEAST,
        "fewer than {CORE_PASSED_AT_LEAST} passed: {core}"
    );
    for selection in ["sasl", "chathistory"] {
        let summary = run(selection);
        eprintln!("irctest {selection}: {summary}");
    }
}

#[test]
fn summaries_are_read() {
    assert_eq!(
        count("90 passed, 7 skipped, 21 deselected in 33.81s", "passed"),
        90
    );
    assert_eq!(count("22 skipped, 23 deselected in 7.79s", "passed"), 0);
}
