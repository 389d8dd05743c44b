//! `burner init` (run a config's jobs) and `burner destroy` (remove what a run created).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::check::ConfigArgs;
use crate::config;
use crate::exec::cleanup;
use crate::exec::run::{self, JobResult, Outcome, RunOptions};
use crate::exec::{ClientOptions, connect};
use crate::hollow::{HollowFleet, HollowOptions};
use crate::local::{LocalCluster, LocalOptions};
use crate::results;
use crate::rng::SplitMix64;

/// How long a run may take when neither `--timeout` nor `global.timeout` says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

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
    /// Write the results (jobSummary.json) into this folder.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Hollow nodes of the local cluster (with --local).
    #[arg(long, default_value_t = 10, requires = "local")]
    pub nodes: u32,
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
    let run_options = RunOptions {
        run_id: rng.uuid_v4(),
        // The flag wins over the config, as it should; kube-burner's flag default hides
        // the config's value entirely.
        timeout: args
            .timeout
            .or(config.global.timeout)
            .unwrap_or(DEFAULT_TIMEOUT),
        cancel,
    };
    eprintln!("run {uuid} of {}", args.config.config.display());

    if !args.local {
        let client = connect(&ClientOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        })
        .await?;
        let outcome = run::run(&client, &config, &run_options).await;
        if outcome.is_err() && !config.global.gc {
            // Earlier jobs may have created objects before the failure.
            eprintln!("if this run created anything, remove it with: burner destroy --uuid {uuid}");
        }
        return report(outcome?, &config, args, &run_options.run_id, false);
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
        let result = run::run(&client, &config, &run_options).await;
        fleet.shutdown().await.ok();
        anyhow::Ok(result?)
    }
    .await;
    cluster.stop().await?;
    report(outcome?, &config, args, &run_options.run_id, true)
}

fn report(
    (jobs, outcome): (Vec<JobResult>, Outcome),
    config: &config::Config,
    args: &InitArgs,
    run_id: &str,
    local: bool,
) -> anyhow::Result<ExitCode> {
    let uuid = &config.uuid;
    if let Some(dir) = &args.output_dir {
        let summaries = results::job_summaries(&jobs, outcome, config, run_id);
        let path = results::write_job_summary(dir, &summaries)?;
        eprintln!("results: {}", path.display());
    }
    println!(
        "{:<28} {:>9} {:>9} {:>7} {:>8} {:>10} {:>9}  VERIFIED",
        "JOB", "EXPECTED", "DONE", "ERRORS", "RETRIES", "RATE", "READY IN"
    );
    let mut failed = false;
    for job in &jobs {
        let verified = match job.verification_passed {
            _ if job.stopped => "- (stopped)".to_string(),
            Some(true) => "yes".to_string(),
            Some(false) => format!("no: {:?}", job.verified.clone().unwrap_or_default()),
            None => "-".to_string(),
        };
        println!(
            "{:<28} {:>9} {:>9} {:>7} {:>8} {:>8.1}/s {:>9}  {verified}",
            job.name,
            job.expected,
            job.created,
            job.errors,
            job.retries,
            job.achieved_rate,
            job.wait_time
                .map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
        );
        failed |= !results::passed(job, config);
    }
    // Below the table, after an empty line: what does not fit in a column.
    if jobs.iter().any(|j| j.churn.is_some() || !j.ready) {
        println!();
    }
    for job in &jobs {
        if let Some(churn) = &job.churn {
            println!(
                "{}: churn: {} cycles in {:.1}s, {} deleted, {} re-created",
                job.name,
                churn.cycles,
                churn.duration.as_secs_f64(),
                churn.deleted,
                churn.recreated
            );
        }
        if !job.ready {
            println!(
                "{}: not everything was ready within maxWaitTimeout",
                job.name
            );
        }
    }
    let cleanup = (!local && !config.global.gc).then(|| format!("burner destroy --uuid {uuid}"));
    let code = match outcome {
        Outcome::Completed if failed => 1,
        Outcome::Completed => 0,
        Outcome::TimedOut => 2,
        Outcome::Interrupted => 1,
    };
    match outcome {
        Outcome::TimedOut => eprintln!("the run timed out"),
        Outcome::Interrupted => eprintln!("the run was interrupted"),
        Outcome::Completed => {}
    }
    if let Some(command) = cleanup {
        eprintln!("to remove what this run created: {command}");
    }
    Ok(ExitCode::from(code))
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
