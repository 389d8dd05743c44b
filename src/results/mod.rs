//! Results: what a run did and measured, as one typed [`summary::RunSummary`], and the
//! files of the run directory (see docs/measurements.md).
//!
//! `jobSummary.json` holds one document per job with kube-burner's field names
//! (`timestamp`, `endTimestamp`, `elapsedTime`, `uuid`, `metricName`, `jobConfig`,
//! `version`, `passed`, `executionErrors`, churn timestamps, `k8sVersion`, `totalNodes`)
//! and burner's own beside them, never renaming theirs. Everything is written whatever
//! the outcome, so a run stopped by a timeout, an error or Ctrl-C still leaves what it
//! measured.

pub mod compare;
pub mod files;
pub mod report;
pub mod summary;
pub mod text;

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::Config;
use crate::config::metrics::Severity;
use crate::exec::run::{JobResult, Outcome};
use crate::measure::Measured;
use crate::metrics::MetricsSummary;
use files::{WriteError, write_json};
use summary::{ChurnNumbers, JobSummary, RunOutcome, RunSummary, SUMMARY_FILE, ThresholdResult};

/// The text summary's file in a run directory.
pub const TEXT_SUMMARY_FILE: &str = "summary.txt";

/// Exit codes, as kube-burner gives them.
pub mod exit_code {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const TIMED_OUT: u8 = 2;
    /// An alert of severity error or critical fired.
    pub const ALERT: u8 = 3;
    pub const THRESHOLD: u8 = 4;
}

fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Whether a job passed: it finished, made no errors, everything was ready, and its
/// verification (when it counts) found what it created.
pub fn passed(job: &JobResult, config: &Config) -> bool {
    let error_on_verify = config
        .jobs
        .iter()
        .find(|j| j.name() == job.name)
        .is_none_or(|j| j.raw.error_on_verify);
    !job.stopped
        && job.errors == 0
        && job.ready
        && !(error_on_verify && job.verification_passed == Some(false))
}

/// What the run learnt of the cluster when it started.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    pub k8s_version: Option<String>,
    pub total_nodes: Option<u64>,
}

/// Everything a finished (or stopped) run gives the summary.
pub struct RunRecord<'a> {
    pub config: &'a Config,
    pub run_id: &'a str,
    pub jobs: &'a [JobResult],
    pub outcome: Outcome,
    pub measured: &'a Measured,
    pub cluster: &'a ClusterFacts,
    pub metrics: &'a MetricsSummary,
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
}

/// The run summary: every job with what was measured of it, every threshold checked,
/// and the exit code that follows.
pub fn summarize(record: &RunRecord<'_>) -> RunSummary {
    let config = record.config;
    let jobs: Vec<JobSummary> = record
        .jobs
        .iter()
        .map(|job| job_summary(job, config, record.measured))
        .collect();
    let thresholds = check_thresholds(config, &jobs);
    let outcome = match record.outcome {
        Outcome::Completed => RunOutcome::Completed,
        Outcome::TimedOut => RunOutcome::TimedOut,
        Outcome::Interrupted => RunOutcome::Interrupted,
        Outcome::Stopped => RunOutcome::StoppedByAlert,
    };
    let alert_failed = record
        .metrics
        .worst_alert()
        .is_some_and(|severity| severity >= Severity::Error);
    let exit_code = match outcome {
        RunOutcome::Interrupted => exit_code::FAILED,
        RunOutcome::TimedOut => exit_code::TIMED_OUT,
        RunOutcome::StoppedByAlert => exit_code::ALERT,
        RunOutcome::Completed if jobs.iter().any(|j| !j.passed) => exit_code::FAILED,
        RunOutcome::Completed if alert_failed => exit_code::ALERT,
        RunOutcome::Completed if thresholds.iter().any(|t| !t.passed) => exit_code::THRESHOLD,
        RunOutcome::Completed => exit_code::OK,
    };
    RunSummary {
        uuid: config.uuid.clone(),
        run_id: record.run_id.to_string(),
        config: config.file.display().to_string(),
        outcome,
        exit_code,
        burner_version: env!("CARGO_PKG_VERSION").to_string(),
        k8s_version: record.cluster.k8s_version.clone(),
        total_nodes: record.cluster.total_nodes,
        started_at: timestamp(record.started_at),
        ended_at: timestamp(record.ended_at),
        jobs,
        thresholds,
        metrics: record.metrics.clone(),
    }
}

fn job_summary(job: &JobResult, config: &Config, measured: &Measured) -> JobSummary {
    let job_type = config
        .jobs
        .iter()
        .find(|j| j.name() == job.name)
        .map_or("create".to_string(), |j| {
            format!("{:?}", j.job_type()).to_lowercase()
        });
    let measured = measured.jobs.get(&job.name).cloned().unwrap_or_default();
    let mut api_calls = measured.api_calls;
    api_calls.errors = job.errors;
    api_calls.retries = job.retries;
    let elapsed = match (job.started_at, job.ended_at) {
        (Some(start), Some(end)) => end.duration_since(start).unwrap_or_default(),
        _ => job.create_time,
    };
    JobSummary {
        name: job.name.clone(),
        job_type,
        started_at: job.started_at.map(timestamp),
        ended_at: job.ended_at.map(timestamp),
        elapsed_seconds: elapsed.as_secs_f64(),
        expected: job.expected,
        done: job.created,
        namespaces: job.namespaces,
        errors: job.errors,
        achieved_rate: job.achieved_rate,
        ready_seconds: job.wait_time.map(|d| d.as_secs_f64()),
        ready: job.ready,
        verification_passed: job.verification_passed,
        stopped: job.stopped,
        passed: passed(job, config),
        churn: job.churn.as_ref().map(|c| ChurnNumbers {
            started_at: c.started_at.map(timestamp),
            cycles: c.cycles,
            deleted: c.deleted,
            recreated: c.recreated,
            seconds: c.duration.as_secs_f64(),
        }),
        pod_latency: measured.pod_latency,
        api_calls,
    }
}

/// Checks every `podLatency` threshold of the jobs that ran. A job none of whose pods the
/// watch saw has nothing to check (as in kube-burner); a phase no pod reached fails.
fn check_thresholds(config: &Config, jobs: &[JobSummary]) -> Vec<ThresholdResult> {
    let mut results = Vec::new();
    for job in jobs {
        let Some(thresholds) = config
            .jobs
            .iter()
            .find(|j| j.name() == job.name)
            .and_then(|j| j.measurements.pod_latency.as_ref())
        else {
            continue;
        };
        let Some(latency) = job.pod_latency.as_ref().filter(|l| l.pods > 0) else {
            continue;
        };
        for threshold in thresholds {
            let value = latency
                .quantiles(&threshold.condition_type, threshold.family)
                .map(|q| threshold.metric.of(q));
            let limit = threshold.limit.as_secs_f64() * 1000.0;
            results.push(ThresholdResult {
                job: job.name.clone(),
                condition_type: threshold.condition_type.clone(),
                metric: threshold.metric,
                family: threshold.family,
                threshold_ms: limit,
                value_ms: value,
                passed: value.is_some_and(|v| v <= limit),
            });
        }
    }
    results
}

/// kube-burner's `jobSummary` documents, with burner's fields beside them.
pub fn job_summary_documents(summary: &RunSummary, config: &Config) -> Vec<Value> {
    summary
        .jobs
        .iter()
        .map(|job| {
            let rendered = config
                .jobs
                .iter()
                .find(|j| j.name() == job.name)
                .map_or(Value::Null, |j| j.rendered.clone());
            let mut errors = Vec::new();
            let thresholds_passed = summary
                .thresholds
                .iter()
                .all(|t| t.job != job.name || t.passed);
            match summary.outcome {
                RunOutcome::TimedOut if job.stopped => errors.push("the run timed out".to_string()),
                RunOutcome::Interrupted if job.stopped => {
                    errors.push("the run was interrupted".to_string())
                }
                _ => {}
            }
            if !job.ready {
                errors.push("not everything was ready within maxWaitTimeout".into());
            }
            for threshold in summary
                .thresholds
                .iter()
                .filter(|t| t.job == job.name && !t.passed)
            {
                errors.push(format!(
                    "{} {:?} ({}) exceeded {} ms",
                    threshold.condition_type,
                    threshold.metric,
                    threshold.family.as_str(),
                    threshold.threshold_ms
                ));
            }
            let churn = job.churn.as_ref();
            let churn_end = churn.and_then(|c| {
                let start = humantime::parse_rfc3339(c.started_at.as_deref()?).ok()?;
                Some(timestamp(
                    start + std::time::Duration::from_secs_f64(c.seconds),
                ))
            });
            json!({
                "timestamp": job.started_at,
                "endTimestamp": job.ended_at,
                "churnStartTimestamp": churn.and_then(|c| c.started_at.clone()),
                "churnEndTimestamp": churn_end,
                "elapsedTime": job.elapsed_seconds,
                "uuid": summary.uuid,
                "runId": summary.run_id,
                "metricName": "jobSummary",
                // The job as the rendered config wrote it, `--set` applied.
                "jobConfig": rendered,
                "version": format!("burner {}", summary.burner_version),
                "k8sVersion": summary.k8s_version,
                "totalNodes": summary.total_nodes,
                // kube-burner's `passed` is false when the run's exit code is not 0, as
                // with an exceeded threshold.
                "passed": job.passed && thresholds_passed,
                "executionErrors": errors.join("; "),
                "objectsExpected": job.expected,
                "objectsDone": job.done,
                "namespacesCreated": job.namespaces,
                "errors": job.errors,
                "retries": job.api_calls.retries,
                "apiRequests": job.api_calls.requests,
                "apiThrottled": job.api_calls.throttled,
                "achievedRate": job.achieved_rate,
                "readySeconds": job.ready_seconds,
                "verificationPassed": job.verification_passed,
                "churn": churn.map(|c| json!({
                    "cycles": c.cycles,
                    "deleted": c.deleted,
                    "recreated": c.recreated,
                    "seconds": c.seconds,
                })),
            })
        })
        .collect()
}

/// Writes `summary.json`, `jobSummary.json` and `summary.txt` into `dir`.
pub fn write_summaries(
    dir: &Path,
    summary: &RunSummary,
    config: &Config,
) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|e| WriteError::new(dir, e))?;
    write_json(&dir.join(SUMMARY_FILE), summary)?;
    write_json(
        &dir.join("jobSummary.json"),
        &job_summary_documents(summary, config),
    )?;
    let text_path = dir.join(TEXT_SUMMARY_FILE);
    std::fs::write(&text_path, text::render(summary)).map_err(|e| WriteError::new(&text_path, e))
}
