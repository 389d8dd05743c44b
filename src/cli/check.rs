//! `burner check`: load, validate and render a config without a cluster.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::{self, LoadOptions};
use crate::plan::{self, PlannedObject};

/// How `check` and `init` read a config.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The job config (kube-burner v2 schema).
    #[arg(short, long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// A YAML file whose keys are data for the config template (they win over the environment).
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// Override a value of the rendered config, as key.path=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Render missing template keys as no value instead of failing.
    #[arg(long)]
    pub allow_missing: bool,
    /// A YAML file with a metricsEndpoints list that replaces the config's.
    #[arg(short = 'e', long = "metrics-endpoint", value_name = "FILE")]
    pub metrics_endpoint: Option<PathBuf>,
}

impl ConfigArgs {
    /// Loads and checks the config for run `uuid`, printing its warnings.
    pub fn load(&self, uuid: &str) -> anyhow::Result<config::Config> {
        let options = LoadOptions {
            uuid: uuid.to_string(),
            user_data: self.user_data.clone(),
            set: self.set.clone(),
            allow_missing: self.allow_missing,
            metrics_endpoints: self.metrics_endpoint.clone(),
        };
        let config = config::load(&self.config, &options)?;
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The run UUID the config and templates see as {{.UUID}}.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pub uuid: String,
    /// Write every rendered object to this folder, one file each.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.load(&args.uuid)?;
    println!(
        "{:<28} {:<7} {:>10} {:>10} {:>10} {:>10}  MINIMUM DURATION",
        "JOB", "TYPE", "ITERATIONS", "OBJECTS", "NAMESPACES", "WRITES"
    );
    let (mut objects, mut writes) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for job in &config.jobs {
        let summary = plan::expand_job(&config, job, "check", |object| match &args.output_dir {
            Some(dir) => {
                write_object(dir, job.name(), object).map_err(|e| plan::PlanError::Object {
                    template: dir.display().to_string(),
                    iteration: object.iteration,
                    replica: object.replica,
                    document: object.document,
                    message: format!("cannot write the rendered object: {e:#}"),
                })
            }
            None => Ok(()),
        })?;
        objects += summary.objects;
        writes += summary.writes;
        let duration = match (summary.minimum_duration, job.qps) {
            (Some(d), Some(qps)) => format!(
                "{} (qps {qps}, burst {})",
                humantime::format_duration(round(d)),
                job.burst
            ),
            _ => "- (unlimited)".to_string(),
        };
        println!(
            "{:<28} {:<7} {:>10} {:>10} {:>10} {:>10}  {duration}",
            summary.name,
            format!("{:?}", summary.job_type).to_lowercase(),
            summary.iterations,
            summary.objects,
            summary.namespaces,
            summary.writes
        );
    }
    if !config.metrics_endpoints.is_empty() {
        let queries: usize = config
            .metrics_endpoints
            .iter()
            .flat_map(|e| &e.metric_profiles)
            .map(|p| p.queries.len())
            .sum();
        let rules: usize = config
            .metrics_endpoints
            .iter()
            .flat_map(|e| &e.alert_profiles)
            .map(|p| p.rules.len())
            .sum();
        eprintln!(
            "metrics: {} endpoint(s), {queries} metric queries, {rules} alert rules (PromQL is checked by the endpoint when init starts)",
            config.metrics_endpoints.len()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{} is valid: {} jobs, {objects} objects, {writes} writes; rendered in {seconds:.2} s ({:.0} objects/s)",
        args.config.config.display(),
        config.jobs.len(),
        objects as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis() as u64)
}

fn write_object(dir: &Path, job: &str, object: &PlannedObject) -> anyhow::Result<()> {
    let folder = dir.join(job);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let name = format!(
        "{:06}-{}-{}-{}.yaml",
        object.iteration, object.object, object.replica, object.document
    );
    let text = serde_saphyr::to_string(&object.manifest())?;
    std::fs::write(folder.join(&name), text).with_context(|| format!("cannot write {name}"))?;
    Ok(())
}
