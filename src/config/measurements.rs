//! The `measurements` of a config (global and per job), as kube-burner writes them:
//! `{name, thresholds: [{conditionType, metric, threshold}]}`, plus burner's optional
//! `family` on a threshold. Job entries override global ones of the same name.
//!
//! burner takes `podLatency`; other measurement names are accepted with a warning, so a
//! kube-burner config still runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The two definitions of pod startup latency (see docs/measurements.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Family {
    /// From burner's create request (or the first sighting of a controller's pod) to the
    /// watch event that shows the phase, on burner's monotonic clock.
    Watch,
    /// kube-burner's: the condition's `lastTransitionTime` minus `creationTimestamp`, both
    /// server timestamps of one-second resolution.
    Server,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Watch => "watch",
            Family::Server => "server",
        }
    }
}

/// Which statistic of a latency a threshold limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThresholdMetric {
    P50,
    P95,
    P99,
    Avg,
    Max,
}

const METRICS: &str = "P50, P95, P99, Avg, Max";

/// The phases of a pod's startup, by kube-burner's quantile names, in the order they
/// usually happen.
pub const POD_PHASES: [&str; 6] = [
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersStarted",
    "ContainersReady",
    "Ready",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// One of [`POD_PHASES`].
    pub condition_type: String,
    pub metric: ThresholdMetric,
    pub family: Family,
    pub limit: Duration,
}

/// What a job measures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMeasurements {
    /// Pod startup latency, with its thresholds, when `podLatency` is on.
    pub pod_latency: Option<Vec<Threshold>>,
}

/// The measurement names kube-burner knows that burner does not take yet.
const OTHER_KNOWN: &[&str] = &[
    "serviceLatency",
    "jobLatency",
    "nodeLatency",
    "pvcLatency",
    "vmiLatency",
    "vmimLatency",
    "dataVolumeLatency",
    "volumeSnapshotLatency",
    "netpolLatency",
    "pprof",
];

/// A place in the config and what is wrong there.
pub type Problem = (String, String);

/// Merges the global and job entries (the job's win by name) and checks them. `job_at`
/// names a place in the job for errors.
pub fn job_measurements(
    global: &[Value],
    job: &[Value],
    job_at: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Result<JobMeasurements, Problem> {
    let mut merged: Vec<(String, &Value)> = Vec::new();
    let entries = global
        .iter()
        .enumerate()
        .map(|(n, v)| (format!("global.measurements[{n}]"), v))
        .chain(
            job.iter()
                .enumerate()
                .map(|(n, v)| (job_at(&format!("measurements[{n}]")), v)),
        );
    for (at, entry) in entries {
        let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
            (
                format!("{at}.name"),
                "a measurement needs a name".to_string(),
            )
        })?;
        merged.retain(|(_, v)| v.get("name").and_then(Value::as_str) != Some(name));
        merged.push((at, entry));
    }
    let mut measurements = JobMeasurements::default();
    for (at, entry) in merged {
        let name = entry["name"].as_str().unwrap_or_default();
        match name {
            "podLatency" => {
                measurements.pod_latency = Some(thresholds(entry, &at)?);
            }
            _ => {
                // A global entry warns once, not once per job.
                let warning = if OTHER_KNOWN.contains(&name) {
                    format!("{at}: measurement {name} is not taken by burner yet; it is skipped")
                } else {
                    format!("{at}: unknown measurement `{name}`; it is skipped")
                };
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
        }
    }
    Ok(measurements)
}

fn thresholds(entry: &Value, at: &str) -> Result<Vec<Threshold>, Problem> {
    let Some(list) = entry.get("thresholds").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or_else(|| {
        (
            format!("{at}.thresholds"),
            "expected a list of {conditionType, metric, threshold}".to_string(),
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(n, t)| threshold(t, &format!("{at}.thresholds[{n}]")))
        .collect()
}

fn threshold(entry: &Value, at: &str) -> Result<Threshold, Problem> {
    let field = |key: &str| -> Result<&str, Problem> {
        entry.get(key).and_then(Value::as_str).ok_or_else(|| {
            (
                format!("{at}.{key}"),
                "missing, or not a string".to_string(),
            )
        })
    };
    if let Some(map) = entry.as_object() {
        for key in map.keys() {
            if !["conditionType", "metric", "threshold", "family"].contains(&key.as_str()) {
                return Err((
                    format!("{at}.{key}"),
                    "unknown key (expected conditionType, metric, threshold, family)".into(),
                ));
            }
        }
    }
    let condition_type = field("conditionType")?;
    if !POD_PHASES.contains(&condition_type) {
        return Err((
            format!("{at}.conditionType"),
            format!("`{condition_type}` is not one of {}", POD_PHASES.join(", ")),
        ));
    }
    let metric = match field("metric")? {
        "P50" => ThresholdMetric::P50,
        "P95" => ThresholdMetric::P95,
        "P99" => ThresholdMetric::P99,
        "Avg" => ThresholdMetric::Avg,
        "Max" => ThresholdMetric::Max,
        other => {
            return Err((
                format!("{at}.metric"),
                format!("`{other}` is not one of {METRICS}"),
            ));
        }
    };
    let limit_text = field("threshold")?;
    let limit = humantime::parse_duration(limit_text.trim()).map_err(|e| {
        (
            format!("{at}.threshold"),
            format!("`{limit_text}` is not a duration like 5s or 500ms: {e}"),
        )
    })?;
    let family = match entry.get("family").and_then(Value::as_str) {
        None | Some("watch") => Family::Watch,
        Some("server") => Family::Server,
        Some(other) => {
            return Err((
                format!("{at}.family"),
                format!("`{other}` is not one of watch, server"),
            ));
        }
    };
    Ok(Threshold {
        condition_type: condition_type.to_string(),
        metric,
        family,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job_at(field: &str) -> String {
        format!("jobs[0].{field}")
    }

    #[test]
    fn job_entries_override_global_ones_by_name() {
        let global = [json!({"name": "podLatency", "thresholds": [
            {"conditionType": "Ready", "metric": "P99", "threshold": "5s"}]})];
        let job = [json!({"name": "podLatency", "thresholds": [
            {"conditionType": "PodScheduled", "metric": "Avg", "threshold": "500ms", "family": "server"}]})];
        let mut warnings = Vec::new();
        let merged = job_measurements(&global, &job, &job_at, &mut warnings).unwrap();
        assert_eq!(
            merged.pod_latency,
            Some(vec![Threshold {
                condition_type: "PodScheduled".into(),
                metric: ThresholdMetric::Avg,
                family: Family::Server,
                limit: Duration::from_millis(500),
            }])
        );
        let global_only = job_measurements(&global, &[], &job_at, &mut warnings).unwrap();
        assert_eq!(global_only.pod_latency.unwrap()[0].family, Family::Watch);
        assert!(warnings.is_empty());
    }

    #[test]
    fn other_measurements_warn_and_bad_thresholds_name_their_place() {
        let mut warnings = Vec::new();
        let none = job_measurements(
            &[
                json!({"name": "serviceLatency"}),
                json!({"name": "podLatencyy"}),
            ],
            &[],
            &job_at,
            &mut warnings,
        )
        .unwrap();
        assert_eq!(none.pod_latency, None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].contains("unknown measurement `podLatencyy`"));

        let bad = |t: Value| {
            job_measurements(
                &[],
                &[json!({"name": "podLatency", "thresholds": [t]})],
                &job_at,
                &mut Vec::new(),
            )
            .unwrap_err()
        };
        let (at, message) =
            bad(json!({"conditionType": "Ready", "metric": "P98", "threshold": "1s"}));
        assert_eq!(at, "jobs[0].measurements[0].thresholds[0].metric");
        assert!(message.contains("P50, P95"), "{message}");
        let (at, _) = bad(json!({"conditionType": "Readyy", "metric": "P99", "threshold": "1s"}));
        assert!(at.ends_with("conditionType"));
        let (at, _) = bad(json!({"conditionType": "Ready", "metric": "P99", "threshold": "soon"}));
        assert!(at.ends_with("threshold"));
        let (at, _) = bad(
            json!({"conditionType": "Ready", "metric": "P99", "threshold": "1s", "famly": "x"}),
        );
        assert!(at.ends_with("famly"));
    }
}
