//! Starting, watching and stopping one control-plane program as a child process.
//!
//! Every child asks the kernel to send it SIGTERM when the thread that started it dies
//! (`PR_SET_PDEATHSIG`). A supervisor that crashes, is killed, or is a test binary that
//! exits therefore never leaves an etcd or apiserver running behind it. Because the signal
//! follows the *thread*, children must be started from threads that live as long as the
//! cluster: the worker threads of a multi-threaded tokio runtime do.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running control-plane program whose output goes to a log file.
#[derive(Debug)]
pub struct ComponentProcess {
    pub name: &'static str,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

impl ComponentProcess {
    /// Starts `program` with `args`, stdout and stderr appended to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> io::Result<Self> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid), as pre_exec requires.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl; then nobody would signal us.
                if libc::getppid() != parent {
                    return Err(io::Error::other("parent exited during start"));
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
        Ok(Self {
            name,
            pid,
            log: log.to_path_buf(),
            child,
        })
    }

    /// Waits for the program to exit on its own.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Returns the exit status if the program has already exited.
    pub fn try_exit_status(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Asks the program to stop (SIGTERM) and kills it if it has not exited after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        send_signal(self.pid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                component = self.name,
                pid = self.pid,
                "did not stop in {grace:?}; killing it"
            );
            let _ = self.child.kill().await;
        }
    }

    /// The last `lines` lines of the program's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

/// The last `lines` lines of a log file (read from its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Whether `pid` is a live process (not gone and not a zombie waiting to be reaped).
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether the command line of `pid` mentions `needle`: how burner makes sure a pid from
/// an old record still belongs to that cluster before it signals it.
pub fn command_line_mentions(pid: u32, needle: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
        .unwrap_or(false)
}

/// Stops processes that are not our children (a detached cluster's leftovers): SIGTERM,
/// then SIGKILL for whatever still runs after `grace`. Returns the pids that survived.
pub async fn stop_foreign(pids: &[u32], grace: Duration) -> Vec<u32> {
    for &pid in pids {
        send_signal(pid, libc::SIGTERM);
    }
    if !wait_until_gone(pids, grace).await {
        for &pid in pids.iter().filter(|&&pid| is_alive(pid)) {
            send_signal(pid, libc::SIGKILL);
        }
        wait_until_gone(pids, Duration::from_secs(5)).await;
    }
    pids.iter().copied().filter(|&pid| is_alive(pid)).collect()
}

/// Polls until none of `pids` is alive; false if some still are after `limit`.
pub async fn wait_until_gone(pids: &[u32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if pids.iter().all(|&pid| !is_alive(pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        fs::write(&log, "one\ntwo\nthree\nfour\n").unwrap();
        assert_eq!(log_tail(&log, 2), "three\nfour");
        assert_eq!(log_tail(&log, 10), "one\ntwo\nthree\nfour");
        assert!(log_tail(&dir.path().join("missing"), 3).starts_with("(cannot read"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stopped_child_is_not_alive_and_its_output_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut child = ComponentProcess::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".into(), "echo started; exec sleep 60".into()],
            &log,
        )
        .unwrap();
        assert!(wait_until_log_contains(&log, "started").await);
        // The shell prints before it execs, so its command line turns into sleep's a moment later.
        assert!(wait_until_command_line_mentions(child.pid, "sleep").await);
        assert!(is_alive(child.pid));
        child.stop(Duration::from_secs(5)).await;
        assert!(!is_alive(child.pid));
    }

    async fn wait_until_command_line_mentions(pid: u32, text: &str) -> bool {
        for _ in 0..100 {
            if command_line_mentions(pid, text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn wait_until_log_contains(log: &Path, text: &str) -> bool {
        for _ in 0..100 {
            if log_tail(log, 5).contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}
