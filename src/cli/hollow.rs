//! `burner hollow`, and the hollow-node options `burner local up --nodes` shares.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::exec::ClientOptions;
use crate::hollow::{
    Delay, HollowFleet, HollowOptions, NodeShape, NodeTaint, PodDelays, StatsSnapshot,
};

#[derive(Debug, Clone, Args)]
pub struct HollowArgs {
    /// How many hollow nodes to run.
    #[arg(long, default_value_t = 10)]
    pub nodes: u32,
    /// The kubeconfig of the cluster under test [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: its current context].
    #[arg(long)]
    pub context: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Nodes whose heartbeat stops (repeatable), as if their kubelet died: the real
    /// node-lifecycle controller then marks them NotReady.
    #[arg(long = "stop-heartbeat", value_name = "NODE")]
    pub stop_heartbeat: Vec<String>,
    /// When the chosen heartbeats stop, after the nodes registered.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub stop_heartbeat_after: Duration,
    /// Also write the final summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// How often to print a status line on stderr (0s: never).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub status_every: Duration,
}

/// What the nodes of a fleet look like and how they behave; shared by `burner hollow` and
/// `burner local up --nodes`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Nodes are named <prefix>-<index>.
    #[arg(long, default_value = "hollow")]
    pub name_prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "32")]
    pub node_cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "256Gi")]
    pub node_memory: String,
    /// Pods each node accepts.
    #[arg(long, default_value_t = 110)]
    pub node_max_pods: u32,
    /// Ephemeral-storage capacity of each node.
    #[arg(long, default_value = "1Ti")]
    pub node_ephemeral_storage: String,
    /// An extra node label, key=value (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = crate::hollow::node::parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// A node taint, key[=value]:Effect (repeatable).
    #[arg(long = "node-taint", value_name = "KEY[=VALUE]:EFFECT")]
    pub node_taints: Vec<NodeTaint>,
    /// How often each node renews its Lease.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub lease_interval: Duration,
    /// The duration each Lease claims.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "40s")]
    pub lease_duration: Duration,
    /// How often each node posts its status when nothing changed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub status_interval: Duration,
    /// Delay from seeing a pod bound to writing it Pending. Models: 2s, fixed:2s,
    /// uniform:1s..3s, normal:2s,200ms, lognormal:2s,0.25.
    #[arg(long, default_value = "fixed:0s")]
    pub accept_delay: Delay,
    /// Delay from Pending to Running (containers started).
    #[arg(long, default_value = "fixed:0s")]
    pub start_delay: Delay,
    /// Delay from Running to Ready for containers with a readiness probe.
    #[arg(long, default_value = "fixed:0s")]
    pub ready_delay: Delay,
    /// How long pods with restartPolicy Never or OnFailure run before they succeed.
    #[arg(long, default_value = "fixed:1s")]
    pub run_time: Delay,
    /// The longest a terminating pod waits before it is removed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub deletion_cap: Duration,
    /// Seed of the delay models.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Client-side limit of the fleet's pod writes per second (node heartbeats have a lane
    /// of their own with the same limit, as a kubelet's heartbeat client is separate).
    #[arg(long, default_value = "5000")]
    pub qps: NonZeroU32,
    /// Burst of the client-side limit.
    #[arg(long, default_value = "5000")]
    pub burst: NonZeroU32,
    /// Writes in flight at once, in each lane.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Leave the Nodes and Leases in the cluster on exit.
    #[arg(long)]
    pub keep: bool,
    /// Post a `Started` event for each container as it starts, as the kubelet does.
    /// kube-burner's podLatency waits for these events; without them it stalls on every pod.
    #[arg(long)]
    pub container_events: bool,
}

impl FleetArgs {
    pub fn options(&self, nodes: u32) -> HollowOptions {
        HollowOptions {
            nodes,
            name_prefix: self.name_prefix.clone(),
            shape: NodeShape {
                cpu: self.node_cpu.clone(),
                memory: self.node_memory.clone(),
                pods: self.node_max_pods,
                ephemeral_storage: self.node_ephemeral_storage.clone(),
            },
            labels: self.node_labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            taints: self.node_taints.iter().map(|t| t.0.clone()).collect(),
            lease_interval: self.lease_interval,
            lease_duration: self.lease_duration,
            status_interval: self.status_interval,
            pod_delays: PodDelays {
                accept: self.accept_delay,
                start: self.start_delay,
                ready: self.ready_delay,
                run: self.run_time,
            },
            deletion_cap: self.deletion_cap,
            seed: self.seed,
            qps: self.qps,
            burst: self.burst,
            concurrency: self.concurrency,
            keep: self.keep,
            container_events: self.container_events,
        }
    }

    /// The same options as command-line arguments (for a detached supervisor).
    pub fn to_args(&self) -> Vec<OsString> {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let mut args: Vec<(&str, String)> = vec![
            ("--name-prefix", self.name_prefix.clone()),
            ("--node-cpu", self.node_cpu.clone()),
            ("--node-memory", self.node_memory.clone()),
            ("--node-max-pods", self.node_max_pods.to_string()),
            (
                "--node-ephemeral-storage",
                self.node_ephemeral_storage.clone(),
            ),
            ("--lease-interval", duration(self.lease_interval)),
            ("--lease-duration", duration(self.lease_duration)),
            ("--status-interval", duration(self.status_interval)),
            ("--accept-delay", self.accept_delay.to_string()),
            ("--start-delay", self.start_delay.to_string()),
            ("--ready-delay", self.ready_delay.to_string()),
            ("--run-time", self.run_time.to_string()),
            ("--deletion-cap", duration(self.deletion_cap)),
            ("--seed", self.seed.to_string()),
            ("--qps", self.qps.to_string()),
            ("--burst", self.burst.to_string()),
            ("--concurrency", self.concurrency.to_string()),
        ];
        args.extend(
            self.node_labels
                .iter()
                .map(|(k, v)| ("--node-label", format!("{k}={v}"))),
        );
        args.extend(
            self.node_taints
                .iter()
                .map(|t| ("--node-taint", t.to_string())),
        );
        let mut out: Vec<OsString> = args
            .into_iter()
            .flat_map(|(flag, value)| [OsString::from(flag), OsString::from(value)])
            .collect();
        if self.keep {
            out.push("--keep".into());
        }
        if self.container_events {
            out.push("--container-events".into());
        }
        out
    }
}

pub async fn run(args: HollowArgs) -> anyhow::Result<ExitCode> {
    let client = crate::exec::connect(&ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    })
    .await?;
    let stop = crate::shutdown::on_signal().context("cannot listen for Ctrl-C")?;
    let options = args.fleet.options(args.nodes);
    let started = Instant::now();
    let fleet = tokio::select! {
        fleet = HollowFleet::start(client, options) => fleet?,
        _ = stop.cancelled() => anyhow::bail!("interrupted while registering hollow nodes"),
    };
    eprintln!(
        "{} hollow nodes registered in {:.1} s; Ctrl-C stops them{}.",
        args.nodes,
        started.elapsed().as_secs_f64(),
        if args.fleet.keep {
            " (their Nodes stay: --keep)"
        } else {
            " and removes their Nodes and Leases"
        }
    );

    let mut heartbeats_to_stop = Some(args.stop_heartbeat.clone()).filter(|n| !n.is_empty());
    let stop_heartbeats_at = tokio::time::Instant::now() + args.stop_heartbeat_after;
    let mut report = StatusLine::new(fleet.stats());
    let mut ticker = tokio::time::interval(if args.status_every.is_zero() {
        Duration::from_secs(3600 * 24 * 365)
    } else {
        args.status_every
    });
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(stop_heartbeats_at), if heartbeats_to_stop.is_some() => {
                for node in heartbeats_to_stop.take().unwrap_or_default() {
                    fleet.stop_heartbeat(&node)?;
                    eprintln!("stopped the heartbeat of {node}");
                }
            }
            _ = ticker.tick() => eprintln!("{}", report.next(fleet.stats())),
        }
    }
    let summary = fleet.shutdown().await?;
    eprintln!("{}", report.next(summary.clone()));
    print_summary(&summary, started.elapsed());
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The periodic one-line status: totals and rates since the previous line.
pub struct StatusLine {
    previous: StatsSnapshot,
    at: Instant,
}

impl StatusLine {
    pub fn new(first: StatsSnapshot) -> Self {
        Self {
            previous: first,
            at: Instant::now(),
        }
    }

    pub fn next(&mut self, now: StatsSnapshot) -> String {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-3);
        let rate = |new: u64, old: u64| (new.saturating_sub(old)) as f64 / seconds;
        let line = format!(
            "hollow: {} nodes, pods running {} ({:.0}/s), ready {}, succeeded {}, deleted {}, writes {:.0}/s, retries {}, 429s {}, errors {}",
            now.nodes_registered,
            now.pods_running,
            rate(now.pods_running, self.previous.pods_running),
            now.pods_ready,
            now.pods_succeeded,
            now.pods_deleted,
            rate(now.writes, self.previous.writes),
            now.retries,
            now.throttled,
            now.write_errors,
        );
        self.previous = now;
        self.at = Instant::now();
        line
    }
}

fn print_summary(summary: &StatsSnapshot, elapsed: Duration) {
    let ms = |d: Option<Duration>| {
        d.map_or("-".to_string(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1e3)
        })
    };
    println!("Hollow fleet summary ({:.0} s)", elapsed.as_secs_f64());
    println!("  nodes registered     {}", summary.nodes_registered);
    println!(
        "  pods running/ready   {} / {}",
        summary.pods_running, summary.pods_ready
    );
    println!("  pods succeeded       {}", summary.pods_succeeded);
    println!("  pods deleted         {}", summary.pods_deleted);
    println!(
        "  writes               {} ({} retries, {} throttled, {} conflicts, {} failed)",
        summary.writes, summary.retries, summary.throttled, summary.conflicts, summary.write_errors
    );
    let l = &summary.bound_to_ready;
    println!(
        "  bound -> ready        n={} min {} p50 {} p99 {} max {}",
        l.count,
        ms(l.min),
        ms(l.p50),
        ms(l.p99),
        ms(l.max)
    );
}
