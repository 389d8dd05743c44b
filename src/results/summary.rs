//! The run summary: every headline number of a run as one typed value.
//!
//! It is what `burner::run` returns, what `summary.json` in the run directory holds, what
//! `--output json` prints, and what `burner report` and `burner compare` read back. Times
//! are milliseconds unless a name says otherwise; timestamps are RFC 3339 UTC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::config::measurements::{Family, POD_PHASES, ThresholdMetric};
pub use crate::metrics::MetricsSummary;

/// The file in a run directory that holds the [`RunSummary`].
pub const SUMMARY_FILE: &str = "summary.json";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    Completed,
    TimedOut,
    Interrupted,
    /// A critical alert stopped the run after a job.
    StoppedByAlert,
}

impl RunOutcome {
    /// The outcome in words, for the text summary and the report.
    pub fn as_text(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::TimedOut => "timed out",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::StoppedByAlert => "stopped by a critical alert",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub uuid: String,
    pub run_id: String,
    /// The config file the run came from.
    pub config: String,
    pub outcome: RunOutcome,
    /// The exit code `burner init` gives for this run.
    pub exit_code: u8,
    pub burner_version: String,
    /// The cluster's version (`gitVersion`), when the run reached it.
    pub k8s_version: Option<String>,
    /// Nodes in the cluster when the run started.
    pub total_nodes: Option<u64>,
    pub started_at: String,
    pub ended_at: String,
    pub jobs: Vec<JobSummary>,
    /// Every threshold the config set, checked.
    pub thresholds: Vec<ThresholdResult>,
    /// What the metrics endpoints gave: documents, failed queries, fired alerts.
    #[serde(default)]
    pub metrics: MetricsSummary,
}

impl RunSummary {
    pub fn job(&self, name: &str) -> Option<&JobSummary> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// Whether any threshold was exceeded.
    pub fn thresholds_failed(&self) -> bool {
        self.thresholds.iter().any(|t| !t.passed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub name: String,
    /// create, delete, patch or read.
    pub job_type: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub elapsed_seconds: f64,
    /// Objects the job was to create (or act on), and how many it did.
    pub expected: u64,
    pub done: u64,
    pub namespaces: u64,
    pub errors: u64,
    /// Writes per second over the create phase.
    pub achieved_rate: f64,
    /// Seconds the wait for readiness took, when the job waited.
    pub ready_seconds: Option<f64>,
    /// Everything waited for was ready within `maxWaitTimeout`.
    pub ready: bool,
    pub verification_passed: Option<bool>,
    /// The run stopped (timeout or Ctrl-C) while this job ran.
    pub stopped: bool,
    pub passed: bool,
    pub churn: Option<ChurnNumbers>,
    /// Pod startup latency, when the job measured it (`podLatency`).
    pub pod_latency: Option<PodLatencySummary>,
    pub api_calls: ApiCallSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChurnNumbers {
    pub started_at: Option<String>,
    pub cycles: u32,
    pub deleted: u64,
    pub recreated: u64,
    pub seconds: f64,
}

/// Quantiles of one set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Quantiles {
    pub count: u64,
    #[serde(rename = "P50")]
    pub p50: f64,
    #[serde(rename = "P95")]
    pub p95: f64,
    #[serde(rename = "P99")]
    pub p99: f64,
    #[serde(rename = "P99.9")]
    pub p999: f64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodLatencySummary {
    /// Pods of the job the watch saw.
    pub pods: u64,
    /// Of those, pods that became Ready (only these are measured, as in kube-burner).
    pub ready: u64,
    /// By phase name ([`POD_PHASES`]).
    pub phases: BTreeMap<String, PhaseQuantiles>,
}

impl PodLatencySummary {
    pub fn quantiles(&self, phase: &str, family: Family) -> Option<&Quantiles> {
        let phase = self.phases.get(phase)?;
        match family {
            Family::Watch => phase.watch.as_ref(),
            Family::Server => phase.server.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PhaseQuantiles {
    pub watch: Option<Quantiles>,
    pub server: Option<Quantiles>,
}

/// Client-side API calls of a job: latency from the intended send time to the answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallSummary {
    /// Every attempt, retries included.
    pub requests: u64,
    /// Requests that failed for good (after their retries).
    pub errors: u64,
    /// Answers with status 429.
    pub throttled: u64,
    pub retries: u64,
    /// Latency by verb (create, get, list, patch, delete), all resources and codes.
    pub by_verb: BTreeMap<String, Quantiles>,
    /// Latency by verb, resource and status code (0: no answer).
    pub calls: Vec<ApiCallQuantiles>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallQuantiles {
    pub verb: String,
    pub resource: String,
    pub code: u16,
    #[serde(flatten)]
    pub quantiles: Quantiles,
}

impl ThresholdMetric {
    /// The statistic of `quantiles` this metric names.
    pub fn of(self, quantiles: &Quantiles) -> f64 {
        match self {
            ThresholdMetric::P50 => quantiles.p50,
            ThresholdMetric::P95 => quantiles.p95,
            ThresholdMetric::P99 => quantiles.p99,
            ThresholdMetric::Avg => quantiles.avg,
            ThresholdMetric::Max => quantiles.max,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    pub job: String,
    pub condition_type: String,
    pub metric: ThresholdMetric,
    pub family: Family,
    pub threshold_ms: f64,
    /// The measured value; none when nothing was measured (which fails the threshold).
    pub value_ms: Option<f64>,
    pub passed: bool,
}
