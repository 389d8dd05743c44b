//! Starting the programs of a local cluster in order, and supervising them afterwards.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use futures::future::select_all;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::binaries::{self, ControlPlaneBinaries, ControlPlaneVersions};
use super::components::{self, Component};
use super::health::{
    HealthProbe, etcd_is_healthy, etcd_version, prometheus_is_ready, prometheus_targets,
};
use super::kubeconfig;
use super::pki::ClusterPki;
use super::ports::{free_ports, log_shows_port_clash};
use super::process::ComponentProcess;
use super::prometheus::{self, PrometheusAccess, ScrapeTargets};
use super::state::{ClusterRecord, ComponentRecord, NamedPort, Phase, StateDir, SupervisorLock};
use super::{LocalCluster, LocalError, LocalOptions};

/// How long a program gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often readiness is probed while starting.
const POLL: Duration = Duration::from_millis(100);
/// How many times a program is started on fresh ports when its ports were taken.
const PORT_ATTEMPTS: u32 = 3;
/// Log lines quoted in an error about a program.
const TAIL_LINES: usize = 20;

pub(super) async fn start(options: &LocalOptions) -> Result<LocalCluster, LocalError> {
    let state = options.state();
    let state_error = |source| LocalError::StateDir {
        path: state.root().to_path_buf(),
        source,
    };
    // Refuse a running cluster, and find (or build) the programs, before changing anything.
    if state.is_supervised().map_err(state_error)? {
        return Err(already_running(&options.name, &state));
    }
    let prometheus_program = match options.prometheus {
        true => Some(prometheus::find_program()?),
        false => None,
    };
    let binaries = binaries::ensure(&options.binaries).await?;
    let Some(lock) = state.try_lock_supervisor().map_err(state_error)? else {
        return Err(already_running(&options.name, &state));
    };
    super::control::clean_up_stale(&state).await?;
    let versions = ControlPlaneVersions::pinned();
    for dir in [state.logs(), state.etcd_data()] {
        std::fs::create_dir_all(&dir).map_err(state_error)?;
    }
    let pki = ClusterPki::generate(&state.pki())?;
    let mut record = ClusterRecord {
        name: options.name.clone(),
        supervisor_pid: std::process::id(),
        phase: Phase::Starting,
        server: String::new(),
        kubeconfig: state.kubeconfig(),
        kubernetes_version: versions.kubernetes,
        etcd_version: versions.etcd,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        components: Vec::new(),
        prometheus: None,
    };
    state.write_record(&record).map_err(state_error)?;

    let mut starting = Starting {
        state: &state,
        pki: &pki,
        binaries: &binaries,
        prometheus_program: prometheus_program.as_deref(),
        options,
        deadline: Instant::now() + options.ready_timeout,
        running: Vec::new(),
        record: &mut record,
        prometheus_password: None,
        prometheus: None,
    };
    match starting.start_all().await {
        Ok(()) => {}
        Err(error) => {
            let running = std::mem::take(&mut starting.running);
            stop_all(running).await;
            record.phase = Phase::Failed(error.to_string());
            let _ = state.write_record(&record);
            return Err(error);
        }
    }
    let running = std::mem::take(&mut starting.running);
    let prometheus = starting.prometheus.take();
    record.phase = Phase::Ready;
    state.write_record(&record).map_err(state_error)?;
    tracing::info!(server = %record.server, "local cluster `{}` is ready", record.name);

    let stop = CancellationToken::new();
    let supervisor = tokio::spawn(supervise(
        running,
        state.clone(),
        record.clone(),
        stop.clone(),
        lock,
    ));
    Ok(LocalCluster {
        record,
        state,
        prometheus,
        stop,
        supervisor: Some(supervisor),
    })
}

fn already_running(name: &str, state: &StateDir) -> LocalError {
    let pid = match state.read_record() {
        Ok(Some(record)) => record.supervisor_pid.to_string(),
        _ => "unknown".to_string(),
    };
    LocalError::AlreadyRunning {
        name: name.to_string(),
        pid,
        state_dir: state.root().to_path_buf(),
        kubeconfig: state.kubeconfig(),
    }
}

/// The start sequence: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
/// Prometheus if asked for, then the `default` service account, which shows the
/// controller-manager works, and Prometheus's first scrape of each program.
struct Starting<'a> {
    state: &'a StateDir,
    pki: &'a ClusterPki,
    binaries: &'a ControlPlaneBinaries,
    /// Found before anything started; `None` without `--prometheus`.
    prometheus_program: Option<&'a Path>,
    options: &'a LocalOptions,
    deadline: Instant,
    running: Vec<ComponentProcess>,
    record: &'a mut ClusterRecord,
    /// The password of Prometheus's HTTP API, from when its configuration is written.
    prometheus_password: Option<String>,
    /// How to reach Prometheus, once it is ready.
    prometheus: Option<PrometheusAccess>,
}

impl Starting<'_> {
    async fn start_all(&mut self) -> Result<(), LocalError> {
        let tuning = &self.options.tuning;
        let etcd_client = self
            .start_component(Component::Etcd, None, 2, |state, _, ports| {
                components::etcd_args(state, ports[0], ports[1], tuning)
            })
            .await?[0];

        let apiserver = self
            .start_component(
                Component::KubeApiserver,
                self.options.apiserver_port,
                1,
                |state, pki, ports| {
                    components::apiserver_args(state, pki, ports[0], etcd_client, tuning)
                },
            )
            .await?[0];
        self.record.server = format!("https://127.0.0.1:{apiserver}");
        self.write_kubeconfigs()?;

        let controller_manager = self
            .start_component(
                Component::KubeControllerManager,
                None,
                1,
                |state, pki, ports| {
                    components::controller_manager_args(state, pki, ports[0], tuning)
                },
            )
            .await?[0];
        let scheduler = self
            .start_component(Component::KubeScheduler, None, 1, |state, pki, ports| {
                components::scheduler_args(state, pki, ports[0], tuning)
            })
            .await?[0];
        if self.prometheus_program.is_some() {
            self.start_prometheus(ScrapeTargets {
                etcd_client,
                apiserver,
                controller_manager,
                scheduler,
            })
            .await?;
        }
        self.wait_for_default_service_account().await?;
        self.record_running_versions(etcd_client).await?;
        if self.prometheus.is_some() {
            self.wait_for_first_scrapes().await?;
        }
        Ok(())
    }

    /// Waits until Prometheus has scraped every program once, so a cluster that is ready
    /// has metrics from its first seconds on, and a target Prometheus cannot read (TLS,
    /// RBAC) fails the start with its error rather than leaving gaps.
    async fn wait_for_first_scrapes(&mut self) -> Result<(), LocalError> {
        let access = self
            .prometheus
            .clone()
            .expect("set once Prometheus is ready");
        let port = self
            .record
            .components
            .iter()
            .find(|c| c.name == Component::Prometheus.name())
            .and_then(|c| c.ports.first())
            .map(|p| p.port)
            .expect("Prometheus is recorded with its port");
        let jobs = [
            prometheus::JOB_APISERVER,
            prometheus::JOB_ETCD,
            prometheus::JOB_SCHEDULER,
            prometheus::JOB_CONTROLLER_MANAGER,
        ];
        loop {
            for process in &mut self.running {
                check_still_running(process, "while starting")?;
            }
            let targets = prometheus_targets(port, &access.username, &access.password)
                .await
                .unwrap_or_default();
            let up = |job: &str| targets.iter().any(|t| t.job == job && t.health == "up");
            if jobs.iter().all(|job| up(job)) {
                return Ok(());
            }
            if Instant::now() >= self.deadline {
                let targets = targets
                    .iter()
                    .map(|t| match t.last_error.as_str() {
                        "" => format!("{} {}", t.job, t.health),
                        error => format!("{} {} ({error})", t.job, t.health),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(LocalError::PrometheusTargetsDown {
                    timeout: self.options.ready_timeout,
                    targets,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Writes Prometheus's configuration and credentials, starts it, and once it is ready
    /// writes the metrics-endpoint file and records where it serves.
    async fn start_prometheus(&mut self, targets: ScrapeTargets) -> Result<(), LocalError> {
        let password = prometheus::write_configuration(self.state, self.pki, &targets)?;
        self.prometheus_password = Some(password.clone());
        let tuning = &self.options.tuning;
        let port = self
            .start_component(Component::Prometheus, None, 1, |state, _, ports| {
                components::prometheus_args(state, ports[0], tuning)
            })
            .await?[0];
        let access = PrometheusAccess {
            url: format!("http://127.0.0.1:{port}"),
            username: prometheus::USERNAME.to_string(),
            password,
        };
        self.record.prometheus = Some(prometheus::write_metrics_endpoint(self.state, &access)?);
        self.prometheus = Some(access);
        self.state
            .write_record(self.record)
            .map_err(|source| LocalError::StateDir {
                path: self.state.root().to_path_buf(),
                source,
            })
    }

    /// Records the versions the servers report, which differ from the pinned ones when the
    /// programs come from `--bin-dir`.
    async fn record_running_versions(&mut self, etcd_client: u16) -> Result<(), LocalError> {
        let client = self.connect_as_admin().await?;
        if let Ok(info) = client.apiserver_version().await {
            self.record.kubernetes_version = info.git_version;
        }
        if let Some(version) = etcd_version(etcd_client).await {
            self.record.etcd_version = version;
        }
        Ok(())
    }

    async fn connect_as_admin(&self) -> Result<kube::Client, LocalError> {
        let options = crate::exec::ClientOptions::for_kubeconfig(self.state.kubeconfig());
        Ok(crate::exec::connect(&options).await?)
    }

    /// Starts one program on fresh ports (the first one `preferred`, if given), retrying on
    /// new ports when its log says they were taken. Returns the ports it serves on.
    async fn start_component(
        &mut self,
        component: Component,
        preferred: Option<u16>,
        port_count: usize,
        args: impl Fn(&StateDir, &ClusterPki, &[u16]) -> Vec<String>,
    ) -> Result<Vec<u16>, LocalError> {
        let program = self.program(component).to_path_buf();
        let log = self.state.component_log(component.name());
        let mut preferred = preferred;
        for attempt in 1..=PORT_ATTEMPTS {
            let mut ports = free_ports(port_count).map_err(LocalError::Ports)?;
            if let Some(port) = preferred.take() {
                ports[0] = port;
            }
            // A fresh log per attempt, so an error quotes this attempt's lines only.
            let _ = std::fs::remove_file(&log);
            let mut process = ComponentProcess::spawn(
                component.name(),
                &program,
                &args(self.state, self.pki, &ports),
                &log,
            )
            .map_err(|source| LocalError::Spawn {
                component,
                program: program.clone(),
                source,
            })?;
            tracing::info!(%component, pid = process.pid, ?ports, "started");
            match self.await_ready(component, &mut process, ports[0]).await {
                Ok(()) => {
                    self.record.components.push(ComponentRecord {
                        name: component.name().to_string(),
                        pid: process.pid,
                        ports: port_names(component)
                            .iter()
                            .zip(&ports)
                            .map(|(name, port)| NamedPort {
                                name: name.to_string(),
                                port: *port,
                            })
                            .collect(),
                        log: log.clone(),
                    });
                    self.state.write_record(self.record).map_err(|source| {
                        LocalError::StateDir {
                            path: self.state.root().to_path_buf(),
                            source,
                        }
                    })?;
                    self.running.push(process);
                    tracing::info!(%component, "ready");
                    return Ok(ports);
                }
                Err(LocalError::ComponentExited { tail, .. }) if log_shows_port_clash(&tail) => {
                    tracing::warn!(
                        %component,
                        attempt,
                        ?ports,
                        "a port was taken by another program; starting again on other ports"
                    );
                }
                Err(error) => {
                    process.stop(STOP_GRACE).await;
                    return Err(error);
                }
            }
        }
        Err(LocalError::PortsKeptClashing {
            component,
            attempts: PORT_ATTEMPTS,
        })
    }

    fn program(&self, component: Component) -> &Path {
        match component {
            Component::Etcd => &self.binaries.etcd,
            Component::KubeApiserver => &self.binaries.kube_apiserver,
            Component::KubeControllerManager => &self.binaries.kube_controller_manager,
            Component::KubeScheduler => &self.binaries.kube_scheduler,
            Component::Prometheus => self
                .prometheus_program
                .expect("Prometheus starts only when its program was found"),
        }
    }

    /// Polls the program's health endpoint until it answers, the program exits, or the
    /// start deadline passes.
    async fn await_ready(
        &mut self,
        component: Component,
        process: &mut ComponentProcess,
        port: u16,
    ) -> Result<(), LocalError> {
        let readiness = match component {
            Component::Etcd => Readiness::Etcd,
            Component::Prometheus => Readiness::Prometheus {
                password: self
                    .prometheus_password
                    .clone()
                    .expect("Prometheus's password is written before it starts"),
            },
            _ => Readiness::Https {
                probe: HealthProbe::new(port, &self.pki.ca.cert, &self.pki.admin_client).await?,
                paths: match component {
                    Component::KubeApiserver => &["/livez", "/readyz"],
                    _ => &["/healthz"],
                },
            },
        };
        loop {
            check_still_running(process, "while starting")?;
            let healthy = match &readiness {
                Readiness::Etcd => etcd_is_healthy(port).await,
                Readiness::Prometheus { password } => {
                    prometheus_is_ready(port, prometheus::USERNAME, password).await
                }
                Readiness::Https { probe, paths } => probe.all_ok(paths).await,
            };
            // Another program may answer on a port ours failed to bind: ours must still run.
            if healthy {
                check_still_running(process, "while starting")?;
                return Ok(());
            }
            if Instant::now() >= self.deadline {
                return Err(LocalError::NotReady {
                    component,
                    timeout: self.options.ready_timeout,
                    log: process.log.clone(),
                    tail: process.log_tail(TAIL_LINES),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn write_kubeconfigs(&self) -> Result<(), LocalError> {
        let server = &self.record.server;
        let ca = &self.pki.ca.cert;
        let files = [
            (
                self.state.kubeconfig(),
                &self.pki.admin_client,
                self.record.name.as_str(),
            ),
            (
                self.state
                    .component_kubeconfig(Component::KubeControllerManager.name()),
                &self.pki.controller_manager_client,
                Component::KubeControllerManager.name(),
            ),
            (
                self.state
                    .component_kubeconfig(Component::KubeScheduler.name()),
                &self.pki.scheduler_client,
                Component::KubeScheduler.name(),
            ),
        ];
        for (path, client, context) in files {
            let kubeconfig = kubeconfig::build(&format!("burner-{context}"), server, ca, client)?;
            kubeconfig::write(&path, &kubeconfig)?;
        }
        Ok(())
    }

    async fn wait_for_default_service_account(&mut self) -> Result<(), LocalError> {
        let client = self.connect_as_admin().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        loop {
            for process in &mut self.running {
                check_still_running(process, "while starting")?;
            }
            if let Ok(Some(_)) = accounts.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() >= self.deadline {
                return Err(LocalError::NoDefaultServiceAccount(
                    self.options.ready_timeout,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// How a program shows it serves.
enum Readiness {
    /// `/health` over plain HTTP.
    Etcd,
    /// `/-/ready` over plain HTTP, with basic auth.
    Prometheus { password: String },
    /// Every path answers `ok` over HTTPS.
    Https {
        probe: HealthProbe,
        paths: &'static [&'static str],
    },
}

fn check_still_running(
    process: &mut ComponentProcess,
    when: &'static str,
) -> Result<(), LocalError> {
    match process.try_exit_status() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => Err(exited(process, when, status.to_string())),
        Err(e) => Err(exited(process, when, format!("unknown status: {e}"))),
    }
}

fn port_names(component: Component) -> &'static [&'static str] {
    match component {
        Component::Etcd => &["client", "peer"],
        Component::Prometheus => &["http"],
        _ => &["https"],
    }
}

fn exited(process: &ComponentProcess, when: &'static str, status: String) -> LocalError {
    LocalError::ComponentExited {
        component: process
            .name
            .parse()
            .expect("a process is named after its component"),
        when,
        status,
        log: process.log.clone(),
        tail: process.log_tail(TAIL_LINES),
    }
}

/// Runs until `stop` is cancelled or a program exits on its own; either way every program
/// is stopped. A requested stop also removes the state directory; after a failure the
/// state (with the logs) stays for diagnosis and the record says what happened.
async fn supervise(
    mut running: Vec<ComponentProcess>,
    state: StateDir,
    mut record: ClusterRecord,
    stop: CancellationToken,
    lock: SupervisorLock,
) -> Result<(), LocalError> {
    let failure = {
        let exits = select_all(running.iter_mut().map(|p| Box::pin(p.wait())));
        tokio::select! {
            _ = stop.cancelled() => None,
            (status, index, _) = exits => Some((index, status)),
        }
    };
    let result = match failure {
        None => Ok(()),
        Some((index, status)) => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let error = exited(&running[index], "while running", status);
            tracing::error!("{error}");
            Err(error)
        }
    };
    stop_all(running).await;
    match &result {
        Ok(()) => {
            if let Err(e) = state.remove() {
                tracing::warn!("cannot remove {}: {e}", state.root().display());
            }
        }
        Err(error) => {
            record.phase = Phase::Failed(error.to_string());
            let _ = state.write_record(&record);
        }
    }
    drop(lock);
    result
}

/// Stops programs in the reverse of their start order, so clients go before servers.
async fn stop_all(mut running: Vec<ComponentProcess>) {
    while let Some(mut process) = running.pop() {
        process.stop(STOP_GRACE).await;
        tracing::info!(component = process.name, pid = process.pid, "stopped");
    }
}
