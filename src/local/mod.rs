//! `burner local`: a real Kubernetes control plane on 127.0.0.1 as the cluster under test.
//!
//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from Go
//! modules, see [`binaries`]) run as child processes of a supervisor: the `burner local up`
//! process, or the process of a test that called [`LocalCluster::start`]. The supervisor
//! generates the cluster's certificates, starts the programs in order on free ports,
//! waits until each serves, and stops all of them when one exits or when it is asked to.
//! On request ([`LocalOptions::prometheus`]) a Prometheus that scrapes the four joins them
//! (see [`prometheus`]). Everything of one cluster lives in its [`StateDir`].
//!
//! This module never touches anything but its own processes and its state directory.

pub mod binaries;
pub mod components;
mod control;
mod health;
pub mod kubeconfig;
pub mod pki;
mod ports;
mod process;
pub mod prometheus;
pub mod state;
mod supervisor;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use binaries::{BinariesError, BinariesSource, ControlPlaneBinaries, ControlPlaneVersions};
pub use components::{Component, ExtraArg, Tuning};
pub use control::{ClusterStatus, ComponentStatus, DownOutcome, down, status};
pub use health::prometheus_is_ready;
pub use process::log_tail;
pub use prometheus::{PrometheusAccess, PrometheusError};
pub use state::{ClusterRecord, ComponentRecord, Phase, PrometheusRecord, StateDir};

use crate::exec::client::{ClientError, ClientOptions};
use health::ProbeError;
use kubeconfig::KubeconfigWriteError;
use pki::PkiError;

/// How to start a local cluster.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The cluster's name; it picks the default state directory.
    pub name: String,
    /// Where the cluster keeps its state; `None` means [`StateDir::for_name`].
    pub state_dir: Option<PathBuf>,
    pub binaries: BinariesSource,
    pub tuning: Tuning,
    /// The apiserver's port; `None` picks a free one. When the port is taken, another is
    /// picked and a warning says so.
    pub apiserver_port: Option<u16>,
    /// How long the whole start may take once the programs are built.
    pub ready_timeout: Duration,
    /// Also run a Prometheus (Debian's `prometheus` package) that scrapes the control
    /// plane every 5 s; see [`prometheus`].
    pub prometheus: bool,
}

impl LocalOptions {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state_dir: None,
            binaries: BinariesSource::default(),
            tuning: Tuning::default(),
            apiserver_port: None,
            ready_timeout: Duration::from_secs(180),
            prometheus: false,
        }
    }

    pub fn state(&self) -> StateDir {
        match &self.state_dir {
            Some(dir) => StateDir::new(dir),
            None => StateDir::for_name(&self.name),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "local cluster `{name}` is already running (supervisor pid {pid}); use it with \
         `export KUBECONFIG={}` or stop it with `burner local down --state-dir {}`",
        kubeconfig.display(), state_dir.display()
    )]
    AlreadyRunning {
        name: String,
        pid: String,
        state_dir: PathBuf,
        kubeconfig: PathBuf,
    },
    #[error(transparent)]
    Binaries(#[from] BinariesError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigWriteError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error("cannot use the state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find free ports on 127.0.0.1")]
    Ports(#[source] io::Error),
    #[error("cannot start {component} ({})", program.display())]
    Spawn {
        component: Component,
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{component} exited {when} ({status}); the last lines of {}:\n{tail}", log.display())]
    ComponentExited {
        component: Component,
        when: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{component} did not become ready within {}; the last lines of {}:\n{tail}",
        humantime::format_duration(*timeout), log.display())]
    NotReady {
        component: Component,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{component} found its ports taken {attempts} times in a row")]
    PortsKeptClashing { component: Component, attempts: u32 },
    #[error("cannot probe the cluster's health")]
    Probe(#[from] ProbeError),
    #[error("cannot reach the cluster's apiserver")]
    Client(#[from] ClientError),
    #[error("the default service account did not appear within {}", humantime::format_duration(*.0))]
    NoDefaultServiceAccount(Duration),
    #[error("Prometheus could not scrape every program within {}: {targets}",
        humantime::format_duration(*timeout))]
    PrometheusTargetsDown { timeout: Duration, targets: String },
    #[error("interrupted while the cluster was starting; everything started was stopped")]
    Interrupted,
    #[error("the supervisor task failed: {0}")]
    SupervisorFailed(String),
    #[error("the supervisor (pid {pid}) did not stop within {}", humantime::format_duration(*timeout))]
    SupervisorDidNotStop { pid: u32, timeout: Duration },
    #[error("processes of the cluster still run after stopping it: {pids:?}")]
    ProcessesLeft { pids: Vec<u32> },
}

/// A running local cluster, supervised by this process.
///
/// Dropping it stops the cluster (without waiting); [`LocalCluster::stop`] stops it, waits
/// for every program to exit and removes the state directory.
#[derive(Debug)]
pub struct LocalCluster {
    record: ClusterRecord,
    state: StateDir,
    prometheus: Option<PrometheusAccess>,
    stop: CancellationToken,
    supervisor: Option<JoinHandle<Result<(), LocalError>>>,
}

impl LocalCluster {
    /// Starts a cluster and returns once it is ready: every program serves, and the
    /// `default` service account exists (so pods can be created).
    ///
    /// Must run on a multi-threaded tokio runtime that outlives the cluster: the programs
    /// are stopped by the kernel when the thread that started them exits (see `process`).
    pub async fn start(options: &LocalOptions) -> Result<Self, LocalError> {
        supervisor::start(options).await
    }

    pub fn record(&self) -> &ClusterRecord {
        &self.record
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The admin kubeconfig (user in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.record.kubeconfig
    }

    /// The cluster's Prometheus and its credentials, when it runs one
    /// ([`LocalOptions::prometheus`]).
    pub fn prometheus(&self) -> Option<&PrometheusAccess> {
        self.prometheus.as_ref()
    }

    /// An admin client for this cluster.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        crate::exec::connect(&ClientOptions::for_kubeconfig(self.kubeconfig())).await
    }

    /// Resolves when the cluster has stopped: `Ok` after a requested stop, an error when a
    /// program exited on its own (the others are then already stopped).
    ///
    /// Cancel-safe: dropping the returned future leaves the cluster supervised, so it can be
    /// used in `select!` beside a shutdown signal and followed by [`LocalCluster::stop`].
    pub async fn wait(&mut self) -> Result<(), LocalError> {
        let Some(handle) = &mut self.supervisor else {
            return Ok(());
        };
        let ended = handle.await;
        self.supervisor = None;
        ended.unwrap_or_else(|join| Err(LocalError::SupervisorFailed(join.to_string())))
    }

    /// Stops every program, waits until they have exited and removes the state directory.
    pub async fn stop(mut self) -> Result<(), LocalError> {
        self.stop.cancel();
        self.wait().await
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
