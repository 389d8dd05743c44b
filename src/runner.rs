//! A whole run, as `burner init` does it and as Rust tests call it: render and check,
//! start measuring, run the jobs, and write every result into the run directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kube::api::{Api, ListParams};
use tokio_util::sync::CancellationToken;

use crate::config::metrics::Severity;
use crate::config::{Config, JobType};
use crate::exec::run::{self, AfterJob, JobResult, RunError, RunOptions};
use crate::measure::{MeasureError, MeasureOptions, Measurement};
use crate::metrics::{self, JobWindow, MetricsError, MetricsSession, MetricsSummary};
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
    /// A metrics endpoint cannot be used, found before anything was written.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
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
    let metrics = Arc::new(MetricsSession::connect(&config.metrics_endpoints, &config.uuid).await?);
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
    let alerts = Arc::new(Mutex::new(AlertsSoFar::default()));
    let options = RunOptions {
        run_id: run_id.clone(),
        timeout: settings.timeout,
        cancel: settings.cancel.clone(),
        recorder: measurement.recorder(),
        progress: settings.progress.clone(),
        after_job: metrics
            .has_alerts()
            .then(|| evaluate_alerts_after_each_job(&metrics, &alerts)),
    };
    let mut jobs = Vec::new();
    let executed = prepared.execute(&options, &mut jobs).await;
    let measured = measurement.finish().await?;
    let metrics_summary = read_metrics(config, &metrics, &jobs, &alerts, &dir).await?;
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
        metrics: &metrics_summary,
        started_at,
        ended_at: SystemTime::now(),
    });
    results::write_summaries(&dir, &summary, config)?;
    match executed {
        Ok(_) => Ok(RunReport { summary, dir }),
        Err(source) => Err(RunFailure::Stopped { source, dir }),
    }
}

/// Alerts fired, and alert expressions that failed, in the jobs so far.
#[derive(Default)]
struct AlertsSoFar {
    fired: Vec<metrics::FiredAlert>,
    failed: Vec<metrics::FailedQuery>,
}

/// Evaluates the alert profiles over each job's window once it finished; a critical
/// alert stops the run.
fn evaluate_alerts_after_each_job(
    metrics: &Arc<MetricsSession>,
    alerts: &Arc<Mutex<AlertsSoFar>>,
) -> AfterJob {
    let (metrics, alerts) = (metrics.clone(), alerts.clone());
    Arc::new(move |job: &JobResult| {
        let (metrics, alerts, window) = (metrics.clone(), alerts.clone(), job_window(job));
        Box::pin(async move {
            let Some(window) = window else {
                return true;
            };
            let (fired, failed) = metrics.evaluate_alerts(&window).await;
            let critical = fired.iter().any(|a| a.severity == Severity::Critical);
            let mut so_far = alerts.lock().expect("no panics while holding the lock");
            so_far.fired.extend(fired);
            so_far.failed.extend(failed);
            if critical {
                tracing::error!(job = window.job, "a critical alert fired; the run stops");
            }
            !critical
        })
    })
}

/// A job's window in whole milliseconds, as jobSummary.json writes its times, so `burner
/// index` over the written window asks Prometheus exactly what the run asked.
fn job_window(job: &JobResult) -> Option<JobWindow> {
    let millis = |at: SystemTime| {
        let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        std::time::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
    };
    Some(JobWindow {
        job: job.name.clone(),
        start: millis(job.started_at?),
        end: millis(job.ended_at?),
        churn: job
            .churn
            .as_ref()
            .and_then(|c| Some((c.started_at?, c.started_at? + c.duration))),
    })
}

/// Queries the metric profiles over every job's window and writes their documents and the
/// fired alerts into the run directory.
async fn read_metrics(
    config: &Config,
    metrics: &MetricsSession,
    jobs: &[JobResult],
    alerts: &Mutex<AlertsSoFar>,
    dir: &Path,
) -> Result<MetricsSummary, WriteError> {
    if metrics.is_empty() {
        return Ok(MetricsSummary::default());
    }
    // A job with skipIndexing keeps its metrics out, as in kube-burner.
    let windows: Vec<JobWindow> = jobs
        .iter()
        .filter(|job| !skips_indexing(config, &job.name))
        .filter_map(job_window)
        .collect();
    let (documents, mut endpoints) = metrics.scrape(&windows).await;
    let AlertsSoFar { fired, failed } =
        std::mem::take(&mut *alerts.lock().expect("no panics while holding the lock"));
    for failure in failed {
        if let Some(endpoint) = endpoints.iter_mut().find(|e| e.url == failure.endpoint) {
            endpoint.failed_queries.push(failure);
        }
    }
    metrics::documents::write_documents(dir, &documents)?;
    if metrics.has_alerts() {
        metrics::alerts::write_alerts(dir, &fired)?;
    }
    Ok(MetricsSummary {
        endpoints,
        alerts: fired,
    })
}

fn skips_indexing(config: &Config, job: &str) -> bool {
    config
        .jobs
        .iter()
        .any(|j| j.name() == job && j.raw.skip_indexing)
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
