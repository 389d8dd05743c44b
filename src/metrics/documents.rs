//! Metric documents: one per sample of a metric profile's query over a job's window, with
//! kube-burner's fields, written as `<metricName>.json` (and `.csv`) in the run directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::prometheus::{PromError, Prometheus, Series};
use super::{JobWindow, instant, timestamp};
use crate::config::metrics::{ElapsedUnit, MetricQuery, MetricsEndpoint};
use crate::results::files::{WriteError, write_json};

/// One sample of one series, as kube-burner indexes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDocument {
    pub timestamp: String,
    /// The series' labels, without `__name__`.
    pub labels: BTreeMap<String, String>,
    /// NaN is written as 0, as kube-burner does; infinities as the largest finite values.
    pub value: f64,
    pub uuid: String,
    /// The query as it was sent (rendered).
    pub query: String,
    pub metric_name: String,
    pub job_name: String,
    /// The sample fell inside the job's churn window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub churn_metric: bool,
}

/// The same document as a CSV row: the labels as one JSON object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricRow<'a> {
    timestamp: &'a str,
    metric_name: &'a str,
    job_name: &'a str,
    value: f64,
    labels: String,
    query: &'a str,
    uuid: &'a str,
    churn_metric: bool,
}

/// Runs one query of a profile over one job's window: a range query every `step` (and an
/// instant query at the end when the window is not a whole number of steps, as
/// kube-burner does), or with `instant` one query at the end (and with `captureStart` one
/// at the start, named `<metricName>-start`). Returns the documents by metric name.
pub async fn query_window(
    prometheus: &Prometheus,
    endpoint: &MetricsEndpoint,
    query: &MetricQuery,
    window: &JobWindow,
    uuid: &str,
) -> Result<BTreeMap<String, Vec<MetricDocument>>, QueryFailure> {
    let text = query
        .query
        .render(window.elapsed(), ElapsedUnit::Seconds)
        .map_err(|e| QueryFailure(e.to_string()))?;
    let document =
        |name: &str, labels: &BTreeMap<String, String>, (at, value): (f64, f64)| MetricDocument {
            timestamp: timestamp(at),
            labels: labels.clone(),
            value: finite(value),
            uuid: uuid.to_string(),
            query: text.clone(),
            metric_name: name.to_string(),
            job_name: window.job.clone(),
            churn_metric: window.in_churn(instant(at)),
        };
    // Prometheus returns series in no particular order: documents go in time order, then
    // by labels, so the same window always gives the same file.
    let documents_of = |name: &str, series: &[Series]| -> Vec<MetricDocument> {
        let mut documents: Vec<MetricDocument> = series
            .iter()
            .flat_map(|s| {
                s.samples
                    .iter()
                    .map(|sample| document(name, &s.labels, *sample))
            })
            .collect();
        documents.sort_by(|a, b| (&a.timestamp, &a.labels).cmp(&(&b.timestamp, &b.labels)));
        documents
    };
    let mut found = BTreeMap::new();
    if query.instant {
        let end = prometheus.instant(&text, window.end).await?;
        found.insert(
            query.metric_name.clone(),
            documents_of(&query.metric_name, &end),
        );
        if query.capture_start {
            let name = format!("{}-start", query.metric_name);
            let start = prometheus.instant(&text, window.start).await?;
            found.insert(name.clone(), documents_of(&name, &start));
        }
        return Ok(found);
    }
    let mut series = prometheus
        .range(&text, window.start, window.end, endpoint.step)
        .await?;
    let mut documents = documents_of(&query.metric_name, &series);
    if !whole_steps(window.elapsed(), endpoint.step) {
        series = prometheus.instant(&text, window.end).await?;
        documents.extend(documents_of(&query.metric_name, &series));
    }
    found.insert(query.metric_name.clone(), documents);
    Ok(found)
}

/// Why a query of a window failed, as text for the summary.
#[derive(Debug)]
pub struct QueryFailure(String);

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<PromError> for QueryFailure {
    fn from(error: PromError) -> Self {
        QueryFailure(error.to_string())
    }
}

/// Whether range queries every `step` end exactly at the end of a window `elapsed` long.
pub(super) fn whole_steps(elapsed: Duration, step: Duration) -> bool {
    step.is_zero() || elapsed.as_millis().is_multiple_of(step.as_millis())
}

/// JSON has no NaN or infinity: NaN becomes 0 (kube-burner's rule), infinities the
/// largest finite values.
fn finite(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(f64::MIN, f64::MAX)
    }
}

/// Writes `<metricName>.json` and `<metricName>.csv` for each metric name, adding to
/// documents already there (a second endpoint, or `burner index` into a run directory).
pub fn write_documents(
    dir: &Path,
    documents: &BTreeMap<String, Vec<MetricDocument>>,
) -> Result<(), WriteError> {
    for (name, new) in documents {
        let json = dir.join(format!("{name}.json"));
        let mut all: Vec<MetricDocument> = std::fs::read_to_string(&json)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        all.extend(new.iter().cloned());
        write_json(&json, &all)?;
        let csv_path = dir.join(format!("{name}.csv"));
        let mut csv = csv::Writer::from_path(&csv_path)
            .map_err(|e| WriteError::new(&csv_path, std::io::Error::other(e)))?;
        for doc in &all {
            csv.serialize(MetricRow {
                timestamp: &doc.timestamp,
                metric_name: &doc.metric_name,
                job_name: &doc.job_name,
                value: doc.value,
                labels: serde_json::to_string(&doc.labels).expect("labels are JSON"),
                query: &doc.query,
                uuid: &doc.uuid,
                churn_metric: doc.churn_metric,
            })
            .map_err(|e| WriteError::new(&csv_path, std::io::Error::other(e)))?;
        }
        csv.flush().map_err(|e| WriteError::new(&csv_path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_written_as_zero_and_infinities_as_finite() {
        assert_eq!(finite(f64::NAN), 0.0);
        assert_eq!(finite(f64::INFINITY), f64::MAX);
        assert_eq!(finite(-2.5), -2.5);
    }

    #[test]
    fn a_window_of_whole_steps_needs_no_closing_query() {
        let step = Duration::from_secs(30);
        assert!(whole_steps(Duration::from_secs(90), step));
        assert!(!whole_steps(Duration::from_secs(91), step));
    }

    #[test]
    fn documents_of_several_writes_add_up_in_json_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |value: f64| MetricDocument {
            timestamp: "2026-11-28T07:00:00.000Z".into(),
            labels: [("verb".to_string(), "POST".to_string())].into(),
            value,
            uuid: "u".into(),
            query: "q".into(),
            metric_name: "latency".into(),
            job_name: "job".into(),
            churn_metric: false,
        };
        let first = BTreeMap::from([("latency".to_string(), vec![doc(1.0)])]);
        let second = BTreeMap::from([("latency".to_string(), vec![doc(2.0)])]);
        write_documents(dir.path(), &first).unwrap();
        write_documents(dir.path(), &second).unwrap();
        let text = std::fs::read_to_string(dir.path().join("latency.json")).unwrap();
        let back: Vec<MetricDocument> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![doc(1.0), doc(2.0)]);
        assert!(!text.contains("churnMetric"), "{text}");
        let csv = std::fs::read_to_string(dir.path().join("latency.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("timestamp,metricName,jobName,value,labels"));
        assert!(lines[2].contains(r#""{""verb"":""POST""}""#), "{csv}");
    }
}
