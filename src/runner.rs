//! A whole run, as `burner init` does it and as Rust tests call it: render and check,
//! start measuring, run the jobs, and write every result into the run directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kube::api::{Api, ListParams};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, JobType};
use crate::exec::run::{self, RunError, RunOptions};
use crate::measure::{MeasureError, MeasureOptions, Measurement};
use crate::progress::RunProgress;
use crate::results::files::WriteError;
use crate::results::summary::RunSummary;
use crate::results::{self, ClusterFacts, RunRecord};

/// How long a run may take when nothing else says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// How to run a config.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Tells this run's objects apart from an earlier run's with the same uuid
    /// [default: a new random one].
    pub run_id: Option<String>,
    /// The run directory [default: `collected-metrics-<uuid>` in the working directory].
    pub output_dir: Option<PathBuf>,
    /// The run stops after this long (its outcome is then `timedOut`).
    pub timeout: Duration,
    /// Cancelling stops the run (its outcome is then `interrupted`).
    pub cancel: CancellationToken,
    /// Live numbers of the run, for a progress display.
    pub progress: Arc<RunProgress>,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            run_id: None,
            output_dir: None,
            timeout: DEFAULT_TIMEOUT,
            cancel: CancellationToken::new(),
            progress: RunProgress::new(),
        }
    }
}

/// A finished (or stopped) run: its summary and where its files are.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub summary: RunSummary,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// Bad input or an unreachable cluster, found before anything was written.
    #[error(transparent)]
    Refused(RunError),
    /// An error ended the run midway; what it did and measured is in `dir`.
    #[error("{source} (results so far are in {})", dir.display())]
    Stopped {
        #[source]
        source: RunError,
        dir: PathBuf,
    },
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The run directory a run writes to when nothing says where.
pub fn default_output_dir(uuid: &str) -> PathBuf {
    PathBuf::from(format!("collected-metrics-{uuid}"))
}

/// Runs `config`'s jobs against the cluster of `client` and writes the results.
///
/// Everything is rendered and every kind resolved before the first write, so an error
/// from bad input changes nothing. A timeout or cancellation still writes everything
/// measured until then.
pub async fn run(
    client: &kube::Client,
    config: &Config,
    settings: &RunSettings,
) -> Result<RunReport, RunFailure> {
    let run_id = settings
        .run_id
        .clone()
        .unwrap_or_else(|| crate::rng::SplitMix64::from_entropy().uuid_v4());
    let prepared = run::prepare(client, config, &run_id)
        .await
        .map_err(RunFailure::Refused)?;
    let cluster = cluster_facts(client).await;
    let dir = settings
        .output_dir
        .clone()
        .unwrap_or_else(|| default_output_dir(&config.uuid));
    let started_at = SystemTime::now();
    let measurement = Measurement::start(
        client,
        MeasureOptions {
            uuid: config.uuid.clone(),
            run_id: run_id.clone(),
            dir: dir.clone(),
            progress: Some(settings.progress.clone()),
            pod_latency_jobs: config
                .jobs
                .iter()
                .filter(|j| j.job_type() == JobType::Create && j.measurements.pod_latency.is_some())
                .map(|j| j.name().to_string())
                .collect(),
        },
    )
    .await?;
    let options = RunOptions {
        run_id: run_id.clone(),
        timeout: settings.timeout,
        cancel: settings.cancel.clone(),
        recorder: measurement.recorder(),
        progress: settings.progress.clone(),
    };
    let mut jobs = Vec::new();
    let executed = prepared.execute(&options, &mut jobs).await;
    let measured = measurement.finish().await?;
    let outcome = match &executed {
        Ok(outcome) => *outcome,
        // An error ends the run as failed; the jobs that ran still count.
        Err(_) => run::Outcome::Completed,
    };
    let summary = results::summarize(&RunRecord {
        config,
        run_id: &run_id,
        jobs: &jobs,
        outcome,
        measured: &measured,
        cluster: &cluster,
        started_at,
        ended_at: SystemTime::now(),
    });
    results::write_summaries(&dir, &summary, config)?;
    match executed {
        Ok(_) => Ok(RunReport { summary, dir }),
        Err(source) => Err(RunFailure::Stopped { source, dir }),
    }
}

/// The cluster's version and node count, for the summary; unknown when the cluster does
/// not say.
async fn cluster_facts(client: &kube::Client) -> ClusterFacts {
    let k8s_version = client.apiserver_version().await.ok().map(|v| v.git_version);
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let total_nodes = nodes
        .list_metadata(&ListParams::default())
        .await
        .ok()
        .map(|list| list.items.len() as u64);
    ClusterFacts {
        k8s_version,
        total_nodes,
    }
}
