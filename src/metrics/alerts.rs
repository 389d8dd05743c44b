//! Alert profiles: each rule's expression evaluated over a job's window right after the
//! job, as kube-burner does. Every series the expression returns fires at most once, at
//! its first sample (or, with burner's `for`, once it has held that long), and is written
//! to `alert.json` with its rendered description.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::documents::whole_steps;
use super::prometheus::{Prometheus, Series};
use super::{FailedQuery, JobWindow, instant, timestamp};
use crate::config::metrics::{AlertRule, ElapsedUnit, MetricsEndpoint, Severity};
use crate::results::files::{WriteError, write_rows};

/// A fired alert, with kube-burner's fields and burner's beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredAlert {
    pub timestamp: String,
    pub uuid: String,
    pub severity: Severity,
    pub description: String,
    /// Always `alert`.
    pub metric_name: String,
    pub churn_metric: bool,
    pub job_name: String,
    /// The expression as it was sent (rendered).
    pub expr: String,
    pub value: f64,
    /// The series' labels as `name=value` pairs, comma separated.
    pub labels: String,
    pub endpoint: String,
}

/// Evaluates every alert rule of `endpoint` over `window`.
pub async fn evaluate(
    endpoint: &MetricsEndpoint,
    prometheus: &Prometheus,
    window: &JobWindow,
    uuid: &str,
) -> (Vec<FiredAlert>, Vec<FailedQuery>) {
    let mut fired = Vec::new();
    let mut failed = Vec::new();
    for rule in endpoint.alert_profiles.iter().flat_map(|p| &p.rules) {
        match evaluate_rule(endpoint, prometheus, rule, window, uuid).await {
            Ok(alerts) => {
                for alert in &alerts {
                    log(alert);
                }
                fired.extend(alerts);
            }
            Err(error) => {
                tracing::warn!(url = endpoint.url, job = window.job, %error, "an alert expression failed; the others go on");
                failed.push(FailedQuery {
                    endpoint: endpoint.url.clone(),
                    job: window.job.clone(),
                    name: "alert".into(),
                    error,
                });
            }
        }
    }
    (fired, failed)
}

async fn evaluate_rule(
    endpoint: &MetricsEndpoint,
    prometheus: &Prometheus,
    rule: &AlertRule,
    window: &JobWindow,
    uuid: &str,
) -> Result<Vec<FiredAlert>, String> {
    let expr = rule
        .expr
        .render(window.elapsed(), ElapsedUnit::Minutes)
        .map_err(|e| e.to_string())?;
    let mut series = prometheus
        .range(&expr, window.start, window.end, endpoint.step)
        .await
        .map_err(|e| e.to_string())?;
    // A window shorter than a step, or not a whole number of steps, is also looked at
    // where it ends.
    if !whole_steps(window.elapsed(), endpoint.step) {
        let at_end = prometheus
            .instant(&expr, window.end)
            .await
            .map_err(|e| e.to_string())?;
        series = merge(series, at_end);
    }
    Ok(series
        .iter()
        .filter_map(|s| {
            let (at, value) = firing_sample(&s.samples, endpoint.step, rule.hold_for)?;
            let description = rule.describe(&s.labels, value);
            Some(FiredAlert {
                timestamp: timestamp(at),
                uuid: uuid.to_string(),
                severity: rule.severity,
                description,
                metric_name: "alert".into(),
                churn_metric: window.in_churn(instant(at)),
                job_name: window.job.clone(),
                expr: expr.clone(),
                value,
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                endpoint: endpoint.url.clone(),
            })
        })
        .collect())
}

/// Adds the samples of `more` to the series of `series` with the same labels.
fn merge(series: Vec<Series>, more: Vec<Series>) -> Vec<Series> {
    let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for s in series.into_iter().chain(more) {
        by_labels.entry(s.labels).or_default().extend(s.samples);
    }
    by_labels
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            samples.dedup_by(|a, b| a.0 == b.0);
            Series { labels, samples }
        })
        .collect()
}

/// The sample at which a series fires: its first, or with `hold_for` the first that ends
/// a run of consecutive samples (no gap longer than a step and a half) that long.
fn firing_sample(
    samples: &[(f64, f64)],
    step: Duration,
    hold_for: Option<Duration>,
) -> Option<(f64, f64)> {
    let hold = hold_for.map_or(0.0, |d| d.as_secs_f64());
    let gap = step.as_secs_f64() * 1.5;
    let mut run_start: Option<f64> = None;
    let mut previous: Option<f64> = None;
    for &(at, value) in samples {
        if previous.is_none_or(|p| at - p > gap) {
            run_start = Some(at);
        }
        previous = Some(at);
        if at - run_start.unwrap_or(at) >= hold {
            return Some((at, value));
        }
    }
    None
}

fn log(alert: &FiredAlert) {
    let severity = alert.severity.as_str();
    match alert.severity {
        Severity::Info => tracing::info!(
            job = alert.job_name,
            severity,
            "alert: {}",
            alert.description
        ),
        Severity::Warning => tracing::warn!(
            job = alert.job_name,
            severity,
            "alert: {}",
            alert.description
        ),
        Severity::Error | Severity::Critical => {
            tracing::error!(
                job = alert.job_name,
                severity,
                "alert: {}",
                alert.description
            )
        }
    }
}

/// Writes `alert.json` and `alert.csv`.
pub fn write_alerts(dir: &Path, alerts: &[FiredAlert]) -> Result<(), WriteError> {
    write_rows(dir, "alert", alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_fires_at_its_first_sample_without_for() {
        let samples = [(100.0, 1.0), (105.0, 2.0)];
        assert_eq!(
            firing_sample(&samples, Duration::from_secs(5), None),
            Some((100.0, 1.0))
        );
        assert_eq!(firing_sample(&[], Duration::from_secs(5), None), None);
    }

    #[test]
    fn with_for_a_series_fires_once_it_held_that_long_without_gaps() {
        let step = Duration::from_secs(5);
        let hold = Some(Duration::from_secs(10));
        // 100, 105 then a gap; 130, 135, 140 hold for 10 s at 140.
        let samples = [
            (100.0, 1.0),
            (105.0, 1.0),
            (130.0, 2.0),
            (135.0, 3.0),
            (140.0, 4.0),
        ];
        assert_eq!(firing_sample(&samples, step, hold), Some((140.0, 4.0)));
        assert_eq!(firing_sample(&samples[..4], step, hold), None);
    }

    #[test]
    fn merging_keeps_one_series_per_label_set_in_time_order() {
        let labels = |v: &str| BTreeMap::from([("job".to_string(), v.to_string())]);
        let range = vec![Series {
            labels: labels("a"),
            samples: vec![(100.0, 1.0)],
        }];
        let end = vec![
            Series {
                labels: labels("a"),
                samples: vec![(110.0, 2.0)],
            },
            Series {
                labels: labels("b"),
                samples: vec![(110.0, 3.0)],
            },
        ];
        let merged = merge(range, end);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].samples, vec![(100.0, 1.0), (110.0, 2.0)]);
        assert_eq!(merged[1].samples, vec![(110.0, 3.0)]);
    }
}
