//! The accuracy scenario's ground truth: every pod's startup latency as the apiserver's own
//! audit log records it, in microseconds, independent of both measuring tools.
//!
//! A pod's true latency runs from the moment the apiserver received its create request to
//! the moment it finished the status write that made the pod Ready. Both ends are stamped
//! by the apiserver (audit `requestReceivedTimestamp` and `stageTimestamp` at
//! ResponseComplete), so the control plane's own latency (scheduling, the node's write) is
//! part of the truth and not counted against either tool.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// Logs pod creates and pod status writes with their objects (the response shows whether
/// a write made the pod Ready), nothing else.
pub const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: RequestResponse
    verbs: ["create"]
    resources: [{group: "", resources: ["pods"]}]
  - level: RequestResponse
    verbs: ["patch", "update"]
    resources: [{group: "", resources: ["pods/status"]}]
  - level: None
"#;

/// Each pod's create-to-Ready latency in milliseconds, by namespace and name.
pub type PodLatencies = HashMap<(String, String), f64>;

/// Reads an apiserver audit log (JSON lines) into each pod's true latency. Pods that were
/// created but never made Ready in the log are left out.
pub fn read_audit_log(path: &Path) -> anyhow::Result<PodLatencies> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the audit log {}", path.display()))?;
    let mut created: HashMap<(String, String), f64> = HashMap::new();
    let mut ready: HashMap<(String, String), f64> = HashMap::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let event: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), number + 1))?;
        if event["stage"] != "ResponseComplete" || !succeeded(&event) {
            continue;
        }
        let Some(pod) = pod_key(&event) else { continue };
        match (
            event["verb"].as_str(),
            event["objectRef"]["subresource"].as_str(),
        ) {
            (Some("create"), None) => {
                created.insert(pod, micros(&event["requestReceivedTimestamp"])?);
            }
            (Some("patch" | "update"), Some("status")) if is_ready(&event["responseObject"]) => {
                // The first write that shows the pod Ready is the one that made it so.
                let at = micros(&event["stageTimestamp"])?;
                ready
                    .entry(pod)
                    .and_modify(|t| *t = t.min(at))
                    .or_insert(at);
            }
            _ => {}
        }
    }
    Ok(ready
        .into_iter()
        .filter_map(|(pod, ready_at)| {
            let created_at = created.get(&pod)?;
            Some((pod, (ready_at - created_at) / 1000.0))
        })
        .collect())
}

fn succeeded(event: &Value) -> bool {
    event["responseStatus"]["code"]
        .as_u64()
        .is_some_and(|code| (200..300).contains(&code))
}

fn pod_key(event: &Value) -> Option<(String, String)> {
    let metadata = &event["responseObject"]["metadata"];
    let field = |name: &str| {
        metadata[name]
            .as_str()
            .or_else(|| event["objectRef"][name].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some((field("namespace")?, field("name")?))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// An audit MicroTime (RFC 3339 with microseconds) as microseconds since the epoch.
fn micros(value: &Value) -> anyhow::Result<f64> {
    let text = value
        .as_str()
        .context("an audit event without its timestamp")?;
    let at: k8s_openapi::jiff::Timestamp = text
        .parse()
        .with_context(|| format!("`{text}` is not an RFC 3339 time"))?;
    Ok(at.as_microsecond() as f64)
}

/// One tool's per-pod Ready latencies (ms) from the rows of a podLatencyMeasurement
/// document, by namespace and pod name. `field` picks the family (`podReadyLatency` for
/// server timestamps, `watchPodReadyLatency` for burner's watch).
pub fn pod_latencies(rows: &[Value], field: &str) -> PodLatencies {
    rows.iter()
        .filter_map(|row| {
            let pod = (
                row["namespace"].as_str()?.to_string(),
                row["podName"].as_str()?.to_string(),
            );
            Some((pod, row[field].as_f64()?))
        })
        .collect()
}

/// How far one tool's numbers are from the truth.
pub struct Errors {
    /// Pods both the tool and the audit log know.
    pub pods: usize,
    /// |tool's P50 − true P50| and the same for P99, over the pods both know.
    pub p50: f64,
    pub p99: f64,
    /// The median and 99th percentile of each pod's |tool's latency − its true latency|.
    pub per_pod_p50: f64,
    pub per_pod_p99: f64,
}

pub fn errors(measured: &PodLatencies, truth: &PodLatencies) -> Errors {
    let pairs: Vec<(f64, f64)> = measured
        .iter()
        .filter_map(|(pod, &value)| Some((value, *truth.get(pod)?)))
        .collect();
    let tool: Vec<f64> = pairs.iter().map(|(m, _)| *m).collect();
    let real: Vec<f64> = pairs.iter().map(|(_, t)| *t).collect();
    let per_pod: Vec<f64> = pairs.iter().map(|(m, t)| (m - t).abs()).collect();
    Errors {
        pods: pairs.len(),
        p50: (quantile(&tool, 0.50) - quantile(&real, 0.50)).abs(),
        p99: (quantile(&tool, 0.99) - quantile(&real, 0.99)).abs(),
        per_pod_p50: quantile(&per_pod, 0.50),
        per_pod_p99: quantile(&per_pod, 0.99),
    }
}

/// Nearest-rank quantile; NaN for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
