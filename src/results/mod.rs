//! Results: what a run did, written out for people and tools.
//!
//! `jobSummary.json` holds one document per job with kube-burner's field names
//! (`timestamp`, `endTimestamp`, `elapsedTime`, `uuid`, `metricName`, `jobConfig`,
//! `version`, `passed`, `executionErrors`, churn timestamps) and burner's own beside them,
//! never renaming theirs. It is written whatever the outcome, so a run stopped by a timeout
//! or Ctrl-C still leaves what it measured.

pub mod compare;
pub mod report;
pub mod summary;
pub mod text;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::config::Config;
use crate::exec::run::{JobResult, Outcome};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn timestamp(time: Option<SystemTime>) -> Value {
    time.map_or(Value::Null, |t| {
        Value::String(humantime::format_rfc3339_millis(t).to_string())
    })
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

/// The `jobSummary` documents of a run.
pub fn job_summaries(
    jobs: &[JobResult],
    outcome: Outcome,
    config: &Config,
    run_id: &str,
) -> Vec<Value> {
    jobs.iter()
        .map(|job| {
            let raw = config.jobs.iter().find(|j| j.name() == job.name).map(|j| &j.raw);
            let elapsed = match (job.started_at, job.ended_at) {
                (Some(start), Some(end)) => end.duration_since(start).unwrap_or_default(),
                _ => job.create_time,
            };
            let mut errors = Vec::new();
            match outcome {
                Outcome::TimedOut if job.stopped => errors.push("the run timed out".to_string()),
                Outcome::Interrupted if job.stopped => {
                    errors.push("the run was interrupted".to_string())
                }
                _ => {}
            }
            if !job.ready {
                errors.push("not everything was ready within maxWaitTimeout".into());
            }
            let churn = job.churn.as_ref();
            json!({
                "timestamp": timestamp(job.started_at),
                "endTimestamp": timestamp(job.ended_at),
                "churnStartTimestamp": timestamp(churn.and_then(|c| c.started_at)),
                "churnEndTimestamp": timestamp(churn.and_then(|c| c.started_at.map(|s| s + c.duration))),
                "elapsedTime": elapsed.as_secs_f64(),
                "uuid": config.uuid,
                "runId": run_id,
                "metricName": "jobSummary",
                "jobConfig": raw.map_or(Value::Null, |r| json!({
                    "name": r.name,
                    "jobType": format!("{:?}", r.job_type).to_lowercase(),
                    "jobIterations": r.job_iterations,
                    "qps": r.qps,
                    "burst": r.burst,
                    "namespace": r.namespace,
                    "namespacedIterations": r.namespaced_iterations,
                    "iterationsPerNamespace": r.iterations_per_namespace,
                })),
                "version": format!("burner {}", env!("CARGO_PKG_VERSION")),
                "passed": passed(job, config),
                "executionErrors": errors.join("; "),
                "objectsExpected": job.expected,
                "objectsDone": job.created,
                "namespacesCreated": job.namespaces,
                "errors": job.errors,
                "retries": job.retries,
                "achievedRate": job.achieved_rate,
                "readySeconds": job.wait_time.map(|d| d.as_secs_f64()),
                "verified": job.verified,
                "verificationPassed": job.verification_passed,
                "churn": churn.map(|c| json!({
                    "cycles": c.cycles,
                    "deleted": c.deleted,
                    "recreated": c.recreated,
                    "seconds": c.duration.as_secs_f64(),
                })),
            })
        })
        .collect()
}

/// Writes `jobSummary.json` into `dir` (created if needed); returns its path.
pub fn write_job_summary(dir: &Path, summaries: &[Value]) -> Result<PathBuf, WriteError> {
    let path = dir.join("jobSummary.json");
    let error = |source| WriteError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    let text = serde_json::to_string_pretty(summaries).expect("JSON values serialise");
    std::fs::write(&path, text + "\n").map_err(error)?;
    Ok(path)
}
