//! CPU affinity of the server under test: pinned while measuring, free during setup.
//!
//! natter logins cost an Argon2id hash each (by design), so logging thousands of users
//! in on one pinned core dominates a run. With `--pin-server`, setup logins may use
//! every CPU and the server is pinned (all its threads, with `taskset -a`) right before
//! the measured part. Threads the server starts later inherit the pinned affinity.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the server runs during setup and during measurement.
#[derive(Clone, Debug, Default)]
pub struct ServerPin {
    pid: Option<u32>,
    cpus: Option<String>,
}

impl ServerPin {
    /// Pins process `pid` to `cpus` (a taskset CPU list) for measurements; a no-op
    /// unless both are given.
    pub fn new(pid: Option<u32>, cpus: Option<String>) -> ServerPin {
        ServerPin { pid, cpus }
    }

    /// Pins the server for the measured part.
    pub fn measure(&self) -> Result<()> {
        match (&self.cpus, self.pid) {
            (Some(cpus), Some(pid)) => set(pid, cpus),
            _ => Ok(()),
        }
    }

    /// Lets the server use every online CPU (setup).
    pub fn setup(&self) -> Result<()> {
        if let (Some(_), Some(pid)) = (&self.cpus, self.pid) {
            let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
                .context("reading the online CPUs")?;
            set(pid, online.trim())?;
        }
        Ok(())
    }
}

fn set(pid: u32, cpus: &str) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-cp", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -a -cp {cpus} {pid} failed: {status}");
    }
    Ok(())
}
