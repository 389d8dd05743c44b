//! `burner init` (run a config's jobs) and `burner destroy` (remove what a run created).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::check::ConfigArgs;
use crate::config;
use crate::exec::cleanup;
use crate::exec::{ClientOptions, connect};
use crate::hollow::{HollowFleet, HollowOptions};
use crate::local::{LocalCluster, LocalOptions};
use crate::results;
use crate::results::summary::RunOutcome;
use crate::rng::SplitMix64;
use crate::runner::{self, RunFailure, RunReport, RunSettings};

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The run's UUID [default: a new random one].
    #[arg(long)]
    pub uuid: Option<String>,
    /// The kubeconfig of the cluster under test [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long)]
    pub context: Option<String>,
    /// Stop the run after this long (exit code 2) [default: the config's global.timeout,
    /// else 4h].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Run against a throwaway local cluster with hollow nodes, stopped afterwards.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub local: bool,
    /// Write the results into this folder [default: collected-metrics-<uuid>].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Draw no progress lines (they are drawn only when stderr is a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    /// How to print the summary on stdout (logs stay on stderr).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Hollow nodes of the local cluster (with --local).
    #[arg(long, default_value_t = 10, requires = "local")]
    pub nodes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["uuid", "config"]))]
pub struct DestroyArgs {
    /// The UUID of the run whose objects and namespaces to remove.
    #[arg(long)]
    pub uuid: Option<String>,
    /// Remove only what this config's jobs created (with --uuid); without --uuid, list the
    /// runs of its jobs that are still in the cluster.
    #[arg(short, long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long)]
    pub context: Option<String>,
}

pub async fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let mut rng = SplitMix64::from_entropy();
    let uuid = args.uuid.clone().unwrap_or_else(|| rng.uuid_v4());
    // Everything is checked before a cluster is touched, or even started.
    let config = args.config.load(&uuid)?;
    let cancel = crate::shutdown::on_signal().context("cannot listen for Ctrl-C")?;
    let settings = RunSettings {
        run_id: Some(rng.uuid_v4()),
        output_dir: Some(
            args.output_dir
                .clone()
                .unwrap_or_else(|| runner::default_output_dir(&uuid)),
        ),
        // The flag wins over the config, as it should; kube-burner's flag default hides
        // the config's value entirely.
        timeout: args
            .timeout
            .or(config.global.timeout)
            .unwrap_or(runner::DEFAULT_TIMEOUT),
        cancel,
        progress: crate::progress::RunProgress::new(),
    };
    eprintln!("run {uuid} of {}", args.config.config.display());
    let display = (!args.quiet)
        .then(|| super::progress::start(settings.progress.clone()))
        .flatten();

    if !args.local {
        let client = connect(&ClientOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        })
        .await?;
        let outcome = runner::run(&client, &config, &settings).await;
        if let Some(display) = display {
            display.finish();
        }
        if matches!(outcome, Err(RunFailure::Stopped { .. })) && !config.global.gc {
            // Earlier jobs may have created objects before the failure.
            eprintln!("if this run created anything, remove it with: burner destroy --uuid {uuid}");
        }
        return report(outcome?, &config, args, false);
    }

    let mut local = LocalOptions::new(format!("init-{}", std::process::id()));
    local.state_dir =
        Some(std::env::temp_dir().join(format!("burner-init-{}", std::process::id())));
    let cluster = LocalCluster::start(&local)
        .await
        .context("cannot start the local cluster")?;
    let outcome = async {
        let client = cluster.client().await?;
        let hollow = HollowOptions {
            nodes: args.nodes,
            keep: true,
            ..HollowOptions::default()
        };
        let fleet = HollowFleet::start(client.clone(), hollow)
            .await
            .context("cannot start the hollow nodes")?;
        eprintln!("local cluster with {} hollow nodes is ready", args.nodes);
        let result = runner::run(&client, &config, &settings).await;
        if let Some(display) = display {
            display.finish();
        }
        fleet.shutdown().await.ok();
        anyhow::Ok(result?)
    }
    .await;
    cluster.stop().await?;
    report(outcome?, &config, args, true)
}

/// Prints the run's summary (text or JSON) on stdout and what to do next on stderr;
/// returns the run's exit code.
fn report(
    run: RunReport,
    config: &config::Config,
    args: &InitArgs,
    local: bool,
) -> anyhow::Result<ExitCode> {
    let summary = &run.summary;
    match args.output {
        OutputFormat::Text => print!("{}", results::text::render(summary)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("the summary serialises")
        ),
    }
    match summary.outcome {
        RunOutcome::TimedOut => eprintln!("the run timed out"),
        RunOutcome::Interrupted => eprintln!("the run was interrupted"),
        RunOutcome::StoppedByAlert => eprintln!("a critical alert stopped the run"),
        RunOutcome::Completed => {}
    }
    if summary.thresholds_failed() {
        eprintln!("measurement thresholds were exceeded");
    }
    if let Some(severity) = summary.metrics.worst_alert()
        && severity >= crate::config::metrics::Severity::Error
    {
        eprintln!("an alert of severity {} fired", severity.as_str());
    }
    eprintln!("results: {}", run.dir.display());
    if !local && !config.global.gc {
        eprintln!(
            "to remove what this run created: burner destroy --uuid {}",
            summary.uuid
        );
    }
    Ok(ExitCode::from(summary.exit_code))
}

pub async fn destroy(args: &DestroyArgs) -> anyhow::Result<ExitCode> {
    // The config is read only for its job names; what it would render does not matter.
    let jobs: Option<Vec<String>> = match &args.config {
        Some(path) => {
            let options = config::LoadOptions {
                uuid: args.uuid.clone().unwrap_or_default(),
                allow_missing: true,
                ..config::LoadOptions::default()
            };
            let loaded = config::load(path, &options)?;
            Some(loaded.jobs.iter().map(|j| j.name().to_string()).collect())
        }
        None => None,
    };
    let client = connect(&ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    })
    .await?;
    let Some(uuid) = &args.uuid else {
        // Removing by job name alone could take another run's objects: name the runs and
        // let the user choose.
        let jobs = jobs.unwrap_or_default();
        let runs = cleanup::runs_of_jobs(&client, &jobs).await?;
        if runs.is_empty() {
            println!("no run of jobs {} is in the cluster", jobs.join(", "));
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("runs of jobs {} in the cluster:", jobs.join(", "));
        for run in &runs {
            eprintln!("  burner destroy --uuid {run}");
        }
        anyhow::bail!("say which run to remove with --uuid");
    };
    let removed = match jobs {
        None => cleanup::destroy(&client, uuid).await?,
        Some(jobs) => {
            let mut total = cleanup::Removed::default();
            for job in &jobs {
                let removed = cleanup::destroy_job(&client, uuid, job).await?;
                total.namespaces += removed.namespaces;
                total.objects += removed.objects;
            }
            total
        }
    };
    println!(
        "removed {} namespaces and {} other objects of run {uuid}",
        removed.namespaces, removed.objects
    );
    Ok(ExitCode::SUCCESS)
}
