//! Looking at and stopping a local cluster from outside its supervisor: `burner local
//! status` and `burner local down`, and the clean-up of what a dead supervisor left.

use std::time::Duration;

use super::LocalError;
use super::process::{self, command_line_mentions, is_alive};
use super::state::{ClusterRecord, ComponentRecord, StateDir};

/// How long `down` waits for a supervisor to stop its programs and exit.
const SUPERVISOR_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What a state directory holds, seen from outside.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub state: StateDir,
    /// The record, if the directory has one.
    pub record: Option<ClusterRecord>,
    /// Whether a supervisor holds the cluster's lock.
    pub supervised: bool,
    pub components: Vec<ComponentStatus>,
}

#[derive(Debug, Clone)]
pub struct ComponentStatus {
    pub record: ComponentRecord,
    pub running: bool,
}

impl ClusterStatus {
    /// Whether the supervisor and every program of the cluster run.
    pub fn is_running(&self) -> bool {
        self.supervised && !self.components.is_empty() && self.components.iter().all(|c| c.running)
    }
}

pub fn status(state: &StateDir) -> Result<ClusterStatus, LocalError> {
    let state_error = |source| LocalError::StateDir {
        path: state.root().to_path_buf(),
        source,
    };
    let record = state.read_record().map_err(state_error)?;
    let supervised = state.is_supervised().map_err(state_error)?;
    let components = record
        .iter()
        .flat_map(|r| &r.components)
        .map(|c| ComponentStatus {
            record: c.clone(),
            running: belongs_to(c.pid, state),
        })
        .collect();
    Ok(ClusterStatus {
        state: state.clone(),
        record,
        supervised,
        components,
    })
}

/// What `down` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownOutcome {
    /// There was no cluster in the state directory.
    NotFound,
    /// The cluster's programs (these pids) were stopped and its state removed.
    Stopped { pids: Vec<u32> },
}

/// Stops the cluster in `state` — through its supervisor when one runs, directly
/// otherwise — waits until none of its processes is left, and removes the state directory.
pub async fn down(state: &StateDir) -> Result<DownOutcome, LocalError> {
    let status = status(state)?;
    if status.record.is_none() && !state.root().exists() {
        return Ok(DownOutcome::NotFound);
    }
    let pids: Vec<u32> = status.components.iter().map(|c| c.record.pid).collect();
    if status.supervised {
        let supervisor = status.record.as_ref().map(|r| r.supervisor_pid);
        stop_supervisor(state, supervisor).await?;
    }
    stop_leftovers(state, &status.components).await?;
    state.remove().map_err(|source| LocalError::StateDir {
        path: state.root().to_path_buf(),
        source,
    })?;
    Ok(DownOutcome::Stopped { pids })
}

/// Removes what a supervisor that died without cleaning up left behind, before a new
/// cluster starts in the same state directory. The caller holds the supervisor lock.
pub(super) async fn clean_up_stale(state: &StateDir) -> Result<(), LocalError> {
    let stale = status(state)?;
    if stale.record.is_some() {
        tracing::info!(
            "removing the remains of an earlier cluster in {}",
            state.root().display()
        );
    }
    stop_leftovers(state, &stale.components).await?;
    state
        .clear_except_lock()
        .map_err(|source| LocalError::StateDir {
            path: state.root().to_path_buf(),
            source,
        })
}

async fn stop_supervisor(state: &StateDir, pid: Option<u32>) -> Result<(), LocalError> {
    let Some(pid) = pid.filter(|&pid| is_alive(pid)) else {
        return Ok(());
    };
    if pid == std::process::id() {
        // A cluster supervised by this very process is stopped through LocalCluster::stop.
        return Ok(());
    }
    process::send_signal(pid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + SUPERVISOR_STOP_TIMEOUT;
    while state.is_supervised().unwrap_or(false) {
        if tokio::time::Instant::now() >= deadline {
            return Err(LocalError::SupervisorDidNotStop {
                pid,
                timeout: SUPERVISOR_STOP_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The lock is released as the supervisor exits; wait for the process itself too.
    process::wait_until_gone(&[pid], Duration::from_secs(10)).await;
    Ok(())
}

async fn stop_leftovers(
    state: &StateDir,
    components: &[super::ComponentStatus],
) -> Result<(), LocalError> {
    let leftovers: Vec<u32> = components
        .iter()
        .map(|c| c.record.pid)
        .filter(|&pid| belongs_to(pid, state))
        .collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    tracing::info!(?leftovers, "stopping processes left by the cluster");
    let survivors = process::stop_foreign(&leftovers, Duration::from_secs(15)).await;
    if survivors.is_empty() {
        Ok(())
    } else {
        Err(LocalError::ProcessesLeft { pids: survivors })
    }
}

/// Whether `pid` is alive and is one of this cluster's programs: every program's command
/// line names a path in the state directory, which guards against reused pids.
fn belongs_to(pid: u32, state: &StateDir) -> bool {
    is_alive(pid) && command_line_mentions(pid, &state.root().to_string_lossy())
}
