//! A peer or burner process under measurement: CPU, peak RSS and wall time from the kernel.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// What the kernel accounted to one finished process.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub wall_seconds: f64,
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// The most resident memory the process ever held (`ru_maxrss`).
    pub peak_rss_mib: f64,
}

/// A running process, spawned with its output going to `<log>`.
pub struct Measured {
    name: String,
    pid: u32,
    started: Instant,
    log: std::path::PathBuf,
}

impl Measured {
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        // The child is reaped by `wait4` below, which also gives its resource usage; the
        // `Child` handle is dropped without waiting.
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            started: Instant::now(),
            log: log.to_path_buf(),
        })
    }

    /// CPU seconds so far, while the process runs.
    pub fn cpu_seconds(&self) -> f64 {
        crate::common::cpu_seconds(self.pid)
    }

    /// Resident memory now, while the process runs.
    pub fn rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// Asks the process to stop (SIGINT, as Ctrl-C would) and waits for it.
    pub async fn interrupt(self) -> anyhow::Result<Usage> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid as i32, libc::SIGINT) };
        self.wait(Duration::from_secs(120), false).await
    }

    /// Waits for the process to end on its own; an exit other than 0 is an error that
    /// names the log.
    pub async fn finish(self, limit: Duration) -> anyhow::Result<Usage> {
        self.wait(limit, true).await
    }

    async fn wait(self, limit: Duration, must_succeed: bool) -> anyhow::Result<Usage> {
        let pid = self.pid;
        let reaped = tokio::task::spawn_blocking(move || {
            let mut status = 0;
            // SAFETY: rusage is plain data, zeroed is a valid value; wait4 writes into it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: pid is our own child, not yet reaped; the pointers are valid.
            let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
            (rc, status, usage)
        });
        let (rc, status, usage) = match tokio::time::timeout(limit, reaped).await {
            Ok(joined) => joined?,
            Err(_) => {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                bail!(
                    "{} did not finish within {limit:?}; its log: {}",
                    self.name,
                    self.log.display()
                );
            }
        };
        if rc < 0 {
            bail!(
                "waiting for {}: {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let exited_cleanly = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        if must_succeed && !exited_cleanly {
            bail!(
                "{} failed (wait status {status:#x}); its log: {}",
                self.name,
                self.log.display()
            );
        }
        Ok(Usage {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        })
    }
}
