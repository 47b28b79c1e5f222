//! Terminal programs under test inside tmux: a tmux server of the test's own, its screen
//! read with `tmux capture-pane`. Waiting for text polls the screen until a deadline,
//! since a terminal offers no event to await.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for every wait on the screen.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often the screen is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);

/// A tmux server of our own (its own socket), killed when the guard goes away.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `script` in a 100x30 pane of a fresh tmux server named after `test`.
    pub fn start(test: &str, script: &Path) -> Tmux {
        let tmux = Tmux {
            socket: format!("natter-test-{}-{test}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            &script.to_string_lossy(),
        ]);
        tmux
    }

    pub fn available() -> bool {
        StdCommand::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = StdCommand::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Polls the screen until `pred` holds; returns that screen.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{screen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = StdCommand::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// The last non-empty line of a screen (where the prompt is).
pub fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}
