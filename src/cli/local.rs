//! `burner local up | down | status | env`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::hollow::FleetArgs;
use crate::hollow::HollowFleet;
use crate::local::{
    self, BinariesSource, ClusterRecord, ClusterStatus, Component, DownOutcome, ExtraArg,
    LocalCluster, LocalError, LocalOptions, Phase, PrometheusRecord, StateDir, Tuning,
};

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start a local cluster and wait until it is ready. Runs in the foreground until
    /// Ctrl-C unless --detach is given.
    Up(Box<UpArgs>),
    /// Stop a local cluster, wait until its processes have exited and remove its state.
    Down(ClusterArgs),
    /// Show whether a local cluster runs, its programs, pids and ports.
    Status(ClusterArgs),
    /// Print `export KUBECONFIG=...` for a running local cluster (use with eval).
    Env(ClusterArgs),
}

/// Which local cluster a command is about.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The cluster's name; it picks the default state directory.
    #[arg(long, default_value = "burner")]
    pub name: String,
    /// Where the cluster keeps certificates, etcd data, logs and its kubeconfig
    /// [default: $XDG_STATE_HOME/burner/clusters/<name>, or ~/.local/state/...].
    #[arg(long, env = "BURNER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ClusterArgs {
    fn state(&self) -> anyhow::Result<StateDir> {
        Ok(match &self.state_dir {
            // Absolute, so the path that the programs' command lines carry (and that `down`
            // looks for) does not depend on the directory a command runs in.
            Some(dir) => StateDir::new(
                std::path::absolute(dir)
                    .with_context(|| format!("cannot resolve --state-dir {}", dir.display()))?,
            ),
            None => StateDir::for_name(&self.name),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Leave the cluster running in the background and return once it is ready;
    /// `burner local down` stops it.
    #[arg(long)]
    pub detach: bool,
    /// Turn off the apiserver's in-flight limits and priority and fairness, and raise the
    /// controller-manager's and scheduler's client QPS, for load tests.
    #[arg(long)]
    pub disable_qps_limits: bool,
    /// Make etcd fsync its writes (off by default: faster and steadier on laptops and CI).
    #[arg(long)]
    pub etcd_fsync: bool,
    /// Pass a flag to one component, as COMPONENT=FLAG (repeatable), for example
    /// kube-apiserver=--v=4. Components: etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler.
    #[arg(long = "extra-arg", value_name = "COMPONENT=FLAG")]
    pub extra_args: Vec<ExtraArg>,
    /// The apiserver's port [default: a free port]. If it is taken, another is picked.
    #[arg(long)]
    pub port: Option<u16>,
    /// A folder holding etcd, kube-apiserver, kube-controller-manager and kube-scheduler,
    /// used instead of burner's build cache.
    #[arg(long, env = "BURNER_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Also run Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping etcd,
    /// kube-apiserver, kube-controller-manager and kube-scheduler every 5 s; writes a
    /// metrics-endpoint file for `burner init -e` beside the kubeconfig.
    #[arg(long)]
    pub prometheus: bool,
    /// How long the cluster may take to become ready, once its programs are built.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3m")]
    pub timeout: Duration,
    /// Hollow nodes to start with the cluster (they stop with it).
    #[arg(long, default_value_t = 0)]
    pub nodes: u32,
    #[command(flatten, next_help_heading = "Hollow nodes (with --nodes)")]
    pub fleet: FleetArgs,
    /// Run as the supervisor of a detached cluster (started by `up --detach`).
    #[arg(long, hide = true)]
    pub supervise_detached: bool,
}

impl UpArgs {
    fn options(&self) -> anyhow::Result<LocalOptions> {
        Ok(LocalOptions {
            name: self.cluster.name.clone(),
            state_dir: Some(self.cluster.state()?.root().to_path_buf()),
            binaries: BinariesSource {
                bin_dir: self.bin_dir.clone(),
                go: None,
            },
            tuning: Tuning {
                disable_qps_limits: self.disable_qps_limits,
                etcd_fsync: self.etcd_fsync,
                extra_args: self.extra_args.clone(),
            },
            apiserver_port: self.port,
            ready_timeout: self.timeout,
            prometheus: self.prometheus,
        })
    }

    /// The arguments of the detached supervisor: the same cluster, in the foreground.
    fn detached_supervisor_args(&self, options: &LocalOptions) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            vec!["local".into(), "up".into(), "--supervise-detached".into()];
        let mut push = |flag: &str, value: OsString| {
            args.push(flag.into());
            args.push(value);
        };
        push("--name", options.name.clone().into());
        push("--state-dir", options.state().root().into());
        push(
            "--timeout",
            humantime::format_duration(self.timeout).to_string().into(),
        );
        if let Some(dir) = &self.bin_dir {
            push("--bin-dir", dir.into());
        }
        if let Some(port) = self.port {
            push("--port", port.to_string().into());
        }
        for extra in &self.extra_args {
            push("--extra-arg", extra.to_string().into());
        }
        if self.disable_qps_limits {
            args.push("--disable-qps-limits".into());
        }
        if self.etcd_fsync {
            args.push("--etcd-fsync".into());
        }
        if self.prometheus {
            args.push("--prometheus".into());
        }
        if self.nodes > 0 {
            args.push("--nodes".into());
            args.push(self.nodes.to_string().into());
            args.extend(self.fleet.to_args());
        }
        args
    }
}

pub async fn run(command: LocalCommand) -> anyhow::Result<ExitCode> {
    match command {
        LocalCommand::Up(args) if args.detach => up_detached(&args).await,
        LocalCommand::Up(args) => up_foreground(&args).await,
        LocalCommand::Down(args) => down(&args).await,
        LocalCommand::Status(args) => status(&args).await,
        LocalCommand::Env(args) => env(&args),
    }
}

async fn up_foreground(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let stop = crate::shutdown::on_signal().context("cannot listen for Ctrl-C")?;
    let mut cluster = tokio::select! {
        started = LocalCluster::start(&options) => started?,
        _ = stop.cancelled() => {
            // Dropping the start killed what it had started; remove the rest.
            local::down(&options.state()).await?;
            return Err(LocalError::Interrupted.into());
        }
    };
    let fleet = match start_hollow_nodes(args, &cluster).await {
        Ok(fleet) => fleet,
        Err(error) => {
            cluster.stop().await?;
            return Err(error);
        }
    };
    if !args.supervise_detached {
        print_ready(cluster.record());
        println!("The cluster runs until you press Ctrl-C.");
    }
    tokio::select! {
        ended = cluster.wait() => {
            ended?;
            Ok(ExitCode::SUCCESS)
        }
        _ = stop.cancelled() => {
            if let Some(fleet) = fleet {
                // The cluster goes next, so the Nodes need not be deleted one by one.
                fleet.shutdown().await.ok();
            }
            cluster.stop().await?;
            if !args.supervise_detached {
                println!("Stopped local cluster `{}`.", options.name);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn start_hollow_nodes(
    args: &UpArgs,
    cluster: &LocalCluster,
) -> anyhow::Result<Option<HollowFleet>> {
    if args.nodes == 0 {
        return Ok(None);
    }
    let mut options = args.fleet.options(args.nodes);
    // They go with the cluster; there is nothing to keep them for.
    options.keep = true;
    let fleet = HollowFleet::start(cluster.client().await?, options)
        .await
        .context("cannot start the hollow nodes")?;
    tracing::info!(nodes = args.nodes, "hollow nodes ready");
    Ok(Some(fleet))
}

async fn up_detached(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let state = options.state();
    let current = local::status(&state)?;
    if current.supervised {
        return Err(already_running(&options.name, &current).into());
    }
    // Find or build missing programs here, where the person sees the progress and the
    // errors, not in the supervisor whose output goes to a log file.
    if options.prometheus {
        local::prometheus::find_program()?;
    }
    local::binaries::ensure(&options.binaries).await?;

    std::fs::create_dir_all(state.root())
        .with_context(|| format!("cannot create {}", state.root().display()))?;
    let log_path = state.supervisor_log();
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let program = std::env::current_exe().context("cannot find burner's own executable")?;
    let mut command = std::process::Command::new(&program);
    command
        .args(args.detached_supervisor_args(&options))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from this terminal
    // and session, so closing the terminal does not stop the cluster.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut supervisor = command
        .spawn()
        .with_context(|| format!("cannot start the supervisor {}", program.display()))?;
    let pid = supervisor.id();

    // The supervisor's own start deadline plus room for generating certificates.
    let deadline = Instant::now() + options.ready_timeout + Duration::from_secs(30);
    loop {
        if let Some(exit) = supervisor.try_wait()? {
            let reason = match state.read_record().ok().flatten() {
                Some(ClusterRecord {
                    phase: Phase::Failed(message),
                    supervisor_pid,
                    ..
                }) if supervisor_pid == pid => message,
                _ => format!(
                    "the supervisor exited ({exit}); the last lines of {}:\n{}",
                    log_path.display(),
                    local::log_tail(&log_path, 20)
                ),
            };
            bail!("local cluster `{}` did not start: {reason}", options.name);
        }
        if let Some(record) = state.read_record().ok().flatten()
            && record.supervisor_pid == pid
            && record.phase == Phase::Ready
        {
            print_ready(&record);
            println!(
                "It runs in the background (supervisor pid {pid}); stop it with `burner local down{}`.",
                name_flag(&options.name)
            );
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            crate::local::down(&state).await.ok();
            bail!(
                "local cluster `{}` was not ready in time; the last lines of {}:\n{}",
                options.name,
                log_path.display(),
                local::log_tail(&log_path, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn already_running(name: &str, status: &ClusterStatus) -> LocalError {
    LocalError::AlreadyRunning {
        name: name.to_string(),
        pid: status
            .record
            .as_ref()
            .map_or_else(|| "unknown".to_string(), |r| r.supervisor_pid.to_string()),
        state_dir: status.state.root().to_path_buf(),
        kubeconfig: status.state.kubeconfig(),
    }
}

fn print_ready(record: &ClusterRecord) {
    println!(
        "Local cluster `{}` is ready: Kubernetes {} at {}",
        record.name, record.kubernetes_version, record.server
    );
    println!("kubeconfig: {}", record.kubeconfig.display());
    if let Some(prometheus) = &record.prometheus {
        println!(
            "Prometheus: {} (user {}, password in {})",
            prometheus.url,
            prometheus.username,
            prometheus.password_file.display()
        );
        println!(
            "metrics endpoint: {} (burner init -e {0} ...)",
            prometheus.metrics_endpoint.display()
        );
    }
    println!("export KUBECONFIG={}", record.kubeconfig.display());
}

fn name_flag(name: &str) -> String {
    if name == "burner" {
        String::new()
    } else {
        format!(" --name {name}")
    }
}

async fn down(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let state = args.state()?;
    match local::down(&state).await? {
        DownOutcome::NotFound => {
            println!(
                "No local cluster `{}` (nothing in {}).",
                args.name,
                state.root().display()
            );
        }
        DownOutcome::Stopped { pids } => {
            println!(
                "Stopped local cluster `{}` ({} processes) and removed {}.",
                args.name,
                pids.len(),
                state.root().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let state = args.state()?;
    let status = local::status(&state)?;
    let Some(record) = &status.record else {
        println!(
            "No local cluster `{}` (nothing in {}).",
            args.name,
            state.root().display()
        );
        return Ok(ExitCode::from(1));
    };
    let summary = match (&record.phase, status.is_running()) {
        (Phase::Ready, true) => ready_summary(record).await,
        (Phase::Starting, _) if status.supervised => "starting".to_string(),
        (Phase::Failed(message), _) => format!("failed: {message}"),
        _ => "not running (its supervisor is gone; `burner local down` cleans up)".to_string(),
    };
    println!("Local cluster `{}`: {summary}", record.name);
    println!("  supervisor pid  {}", record.supervisor_pid);
    println!("  started at      {}", record.started_at);
    println!(
        "  kubernetes      {}   etcd {}",
        record.kubernetes_version, record.etcd_version
    );
    println!("  server          {}", record.server);
    println!("  kubeconfig      {}", record.kubeconfig.display());
    if let Some(prometheus) = &record.prometheus {
        let process = status
            .components
            .iter()
            .find(|c| c.record.name == Component::Prometheus.name());
        let health = match process.and_then(|c| c.record.ports.first().map(|p| (c, p.port))) {
            Some((c, port)) if c.running => prometheus_readiness(prometheus, port).await,
            _ => "not running".to_string(),
        };
        println!("  prometheus      {} ({health})", prometheus.url);
        println!(
            "                  user {}, password in {}",
            prometheus.username,
            prometheus.password_file.display()
        );
        println!(
            "  metrics         {}",
            prometheus.metrics_endpoint.display()
        );
    }
    println!("  state           {}", state.root().display());
    println!();
    println!("  {:<25} {:>8}  {:<8} PORTS", "COMPONENT", "PID", "STATE");
    for component in &status.components {
        let ports = component
            .record
            .ports
            .iter()
            .map(|p| format!("{} 127.0.0.1:{}", p.name, p.port))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {:<25} {:>8}  {:<8} {ports}",
            component.record.name,
            component.record.pid,
            if component.running {
                "running"
            } else {
                "stopped"
            },
        );
    }
    Ok(if status.is_running() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Asks the apiserver itself whether it is ready, so `status` reports what clients see.
async fn ready_summary(record: &ClusterRecord) -> String {
    let options = crate::exec::ClientOptions::for_kubeconfig(&record.kubeconfig);
    let answer = async {
        let client = crate::exec::connect(&options).await?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        anyhow::Ok(client.request_text(request).await?)
    };
    match tokio::time::timeout(Duration::from_secs(5), answer).await {
        Ok(Ok(body)) if body.trim() == "ok" => "running, apiserver /readyz ok".to_string(),
        Ok(Ok(body)) => format!("running, apiserver /readyz says: {}", body.trim()),
        Ok(Err(e)) => format!("running, apiserver unreachable: {e:#}"),
        Err(_) => "running, apiserver /readyz timed out".to_string(),
    }
}

/// Asks Prometheus whether it is ready, with the credentials the cluster keeps.
async fn prometheus_readiness(prometheus: &PrometheusRecord, port: u16) -> String {
    match prometheus.password() {
        Ok(password) => {
            if local::prometheus_is_ready(port, &prometheus.username, &password).await {
                "ready".to_string()
            } else {
                "not ready".to_string()
            }
        }
        Err(e) => format!("cannot read {}: {e}", prometheus.password_file.display()),
    }
}

fn env(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let state = args.state()?;
    let status = local::status(&state)?;
    match status.record {
        Some(record) if status.is_running() => {
            println!("export KUBECONFIG={}", record.kubeconfig.display());
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!(
            "local cluster `{}` is not running; start it with `burner local up --detach{}`",
            args.name,
            name_flag(&args.name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse_up(args: &[&str]) -> UpArgs {
        let cli = crate::cli::Cli::parse_from(["burner", "local", "up"].iter().chain(args));
        match cli.command {
            crate::cli::Command::Local(LocalCommand::Up(up)) => *up,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_detached_supervisor_gets_the_same_cluster_options() {
        let up = parse_up(&[
            "--detach",
            "--name",
            "lt",
            "--state-dir",
            "/tmp/lt",
            "--disable-qps-limits",
            "--etcd-fsync",
            "--extra-arg",
            "kube-apiserver=--v=4",
            "--extra-arg",
            "etcd=--log-level=info",
            "--port",
            "6443",
            "--bin-dir",
            "/opt/k8s",
            "--timeout",
            "90s",
            "--prometheus",
            "--nodes",
            "3",
            "--node-taint",
            "gpu=yes:NoSchedule",
            "--node-label",
            "zone=a",
            "--start-delay",
            "normal:2s,100ms",
            "--keep",
        ]);
        let options = up.options().unwrap();
        let child_args = up.detached_supervisor_args(&options);
        let cli = crate::cli::Cli::parse_from(
            std::iter::once(OsString::from("burner")).chain(child_args),
        );
        let crate::cli::Command::Local(LocalCommand::Up(child)) = cli.command else {
            panic!("the supervisor's arguments are not `local up`");
        };
        assert!(child.supervise_detached && !child.detach);
        assert_eq!(
            format!("{:?}", child.options().unwrap()),
            format!("{options:?}")
        );
    }
}
