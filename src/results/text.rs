//! The text summary of a run: the one screen `burner init` prints at its end and saves as
//! `summary.txt`.
//!
//! It is drawn from the [`RunSummary`] alone, so what a person reads on the terminal is
//! exactly what `summary.json` holds. It owns the text-table layout and the duration format
//! that `burner compare` shares, so both print times the same way.

use std::collections::BTreeSet;

use crate::metrics::FiredAlert;
use crate::results::summary::{
    Family, JobSummary, MetricsSummary, Quantiles, RunSummary, ThresholdMetric, ThresholdResult,
};

/// The phase whose latency the summary shows: the one people mean by "pod startup latency".
const READY: &str = "Ready";

pub fn render(summary: &RunSummary) -> String {
    let mut tables = Vec::new();
    if !summary.jobs.is_empty() {
        tables.push(jobs_table(&summary.jobs));
        tables.extend(pod_latency_table(&summary.jobs));
        tables.push(api_calls_table(&summary.jobs));
        tables.extend(churn_table(&summary.jobs));
    }
    if !summary.thresholds.is_empty() {
        tables.push(thresholds_table(&summary.thresholds));
    }
    if !summary.metrics.endpoints.is_empty() {
        tables.push(metrics_table(&summary.metrics));
    }
    if !summary.metrics.alerts.is_empty() {
        tables.push(alerts_table(&summary.metrics.alerts));
    }
    // Every table's first column holds job names under the table's title; one shared width
    // lines all tables up, so the eye can follow a job from one table to the next.
    let first_width = tables
        .iter()
        .map(Table::first_column_width)
        .max()
        .unwrap_or(0);
    let mut sections: Vec<String> = tables
        .iter()
        .map(|table| table.render(first_width))
        .collect();
    if summary.jobs.is_empty() {
        sections.insert(0, "no job ran".to_string());
    }
    sections.push(run_line(summary));
    sections.join("\n\n") + "\n"
}

fn jobs_table(jobs: &[JobSummary]) -> Table {
    let columns = vec![
        Column::left("JOB"),
        Column::left("TYPE"),
        Column::right("DONE"),
        Column::right("ERRORS"),
        Column::right("RETRIES"),
        Column::right("NS"),
        Column::right("RATE"),
        Column::right("ELAPSED"),
        Column::right("READY IN"),
        Column::left("VERIFIED"),
        Column::left("VERDICT"),
    ];
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                job.name.clone(),
                job.job_type.clone(),
                format!("{}/{}", job.done, job.expected),
                job.errors.to_string(),
                job.api_calls.retries.to_string(),
                job.namespaces.to_string(),
                format!("{:.1}/s", job.achieved_rate),
                format_ms(job.elapsed_seconds * 1000.0),
                or_dash(job.ready_seconds.map(|s| format_ms(s * 1000.0))),
                match job.verification_passed {
                    Some(true) => "yes".to_string(),
                    Some(false) => "NO".to_string(),
                    None => "-".to_string(),
                },
                verdict(job),
            ]
        })
        .collect();
    Table::new(columns, rows)
}

/// Passed or FAILED, with the reasons a failure has no column of its own for: errors and
/// verification already show in theirs.
fn verdict(job: &JobSummary) -> String {
    let reason = if job.stopped {
        Some("stopped")
    } else if !job.ready {
        Some("not ready in time")
    } else {
        None
    };
    match (job.passed, reason) {
        (true, None) => "passed".to_string(),
        (true, Some(reason)) => format!("passed ({reason})"),
        (false, None) => "FAILED".to_string(),
        (false, Some(reason)) => format!("FAILED ({reason})"),
    }
}

fn pod_latency_table(jobs: &[JobSummary]) -> Option<Table> {
    let columns = vec![
        Column::left("READY LATENCY"),
        Column::right("PODS"),
        Column::right("READY"),
        Column::right("P50 WATCH"),
        Column::right("P99 WATCH"),
        Column::right("P50 SERVER"),
        Column::right("P99 SERVER"),
    ];
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .filter_map(|job| {
            let latency = job.pod_latency.as_ref()?;
            let ready = |family, metric: ThresholdMetric| {
                or_dash(measured(latency.quantiles(READY, family)).map(|q| format_ms(metric.of(q))))
            };
            Some(vec![
                job.name.clone(),
                latency.pods.to_string(),
                latency.ready.to_string(),
                ready(Family::Watch, ThresholdMetric::P50),
                ready(Family::Watch, ThresholdMetric::P99),
                ready(Family::Server, ThresholdMetric::P50),
                ready(Family::Server, ThresholdMetric::P99),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| Table::new(columns, rows))
}

fn api_calls_table(jobs: &[JobSummary]) -> Table {
    // One column per verb any job used; a job that did not use it shows `-` there.
    let verbs: BTreeSet<&str> = jobs
        .iter()
        .flat_map(|job| job.api_calls.by_verb.keys().map(String::as_str))
        .collect();
    let mut columns = vec![
        Column::left("API CALLS"),
        Column::right("REQUESTS"),
        Column::right("429s"),
        Column::right("ERRORS"),
    ];
    columns.extend(
        verbs
            .iter()
            .map(|verb| Column::right(format!("{} P99", verb.to_uppercase()))),
    );
    let rows: Vec<Vec<String>> =
        jobs.iter()
            .map(|job| {
                let calls = &job.api_calls;
                let mut row = vec![
                    job.name.clone(),
                    calls.requests.to_string(),
                    calls.throttled.to_string(),
                    calls.errors.to_string(),
                ];
                row.extend(verbs.iter().map(|verb| {
                    or_dash(measured(calls.by_verb.get(*verb)).map(|q| format_ms(q.p99)))
                }));
                row
            })
            .collect();
    Table::new(columns, rows)
}

fn churn_table(jobs: &[JobSummary]) -> Option<Table> {
    let columns = vec![
        Column::left("CHURN"),
        Column::right("CYCLES"),
        Column::right("DELETED"),
        Column::right("RE-CREATED"),
        Column::right("TOOK"),
    ];
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .filter_map(|job| {
            let churn = job.churn.as_ref()?;
            Some(vec![
                job.name.clone(),
                churn.cycles.to_string(),
                churn.deleted.to_string(),
                churn.recreated.to_string(),
                format_ms(churn.seconds * 1000.0),
            ])
        })
        .collect();
    (!rows.is_empty()).then(|| Table::new(columns, rows))
}

/// Per endpoint: what its metric profiles gave, and the first failed query if any.
fn metrics_table(metrics: &MetricsSummary) -> Table {
    let columns = vec![
        Column::left("METRICS"),
        Column::right("NAMES"),
        Column::right("DOCUMENTS"),
        Column::right("FAILED"),
        Column::left("FIRST FAILURE"),
    ];
    let rows = metrics
        .endpoints
        .iter()
        .map(|endpoint| {
            vec![
                endpoint.url.clone(),
                endpoint.documents.len().to_string(),
                endpoint.documents.values().sum::<u64>().to_string(),
                endpoint.failed_queries.len().to_string(),
                endpoint
                    .failed_queries
                    .first()
                    .map_or("-".to_string(), |f| {
                        format!("{} ({}): {}", f.name, f.job, f.error)
                    }),
            ]
        })
        .collect();
    Table::new(columns, rows)
}

fn alerts_table(alerts: &[FiredAlert]) -> Table {
    let columns = vec![
        Column::left("ALERTS"),
        Column::left("SEVERITY"),
        Column::left("AT"),
        Column::left("DESCRIPTION"),
    ];
    let rows = alerts
        .iter()
        .map(|alert| {
            vec![
                alert.job_name.clone(),
                alert.severity.as_str().to_string(),
                alert.timestamp.clone(),
                alert.description.clone(),
            ]
        })
        .collect();
    Table::new(columns, rows)
}

fn thresholds_table(thresholds: &[ThresholdResult]) -> Table {
    let columns = vec![
        Column::left("THRESHOLDS"),
        Column::left("LATENCY"),
        Column::right("LIMIT"),
        Column::right("MEASURED"),
        Column::left("RESULT"),
    ];
    let rows: Vec<Vec<String>> = thresholds
        .iter()
        .map(|threshold| {
            let result = match (threshold.passed, threshold.value_ms) {
                (true, _) => "ok",
                (false, Some(_)) => "EXCEEDED",
                // A threshold with nothing measured fails, but it was not exceeded.
                (false, None) => "NOT MEASURED",
            };
            vec![
                threshold.job.clone(),
                format!(
                    "{} {} {}",
                    threshold.condition_type,
                    metric_name(threshold.metric),
                    threshold.family.as_str()
                ),
                format!("<= {}", format_ms(threshold.threshold_ms)),
                or_dash(threshold.value_ms.map(format_ms)),
                result.to_string(),
            ]
        })
        .collect();
    Table::new(columns, rows)
}

fn metric_name(metric: ThresholdMetric) -> &'static str {
    match metric {
        ThresholdMetric::P50 => "P50",
        ThresholdMetric::P95 => "P95",
        ThresholdMetric::P99 => "P99",
        ThresholdMetric::Avg => "Avg",
        ThresholdMetric::Max => "Max",
    }
}

fn run_line(summary: &RunSummary) -> String {
    let outcome = summary.outcome.as_text();
    format!(
        "run {}: {outcome}, exit code {}",
        summary.uuid, summary.exit_code
    )
}

/// Quantiles over no samples hold zeros, which would read as instant; they show as missing.
pub(crate) fn measured(quantiles: Option<&Quantiles>) -> Option<&Quantiles> {
    quantiles.filter(|q| q.count > 0)
}

/// Milliseconds by one rule everywhere: tenths below 10 ms (API calls to a nearby server
/// take a few), whole milliseconds below 10 s, tenths of a second from there on. The
/// bounds sit where rounding would otherwise print `10.0 ms` or `10000 ms`.
pub(crate) fn format_ms(ms: f64) -> String {
    if ms < 9.95 {
        format!("{ms:.1} ms")
    } else if ms < 9999.5 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub title: String,
    pub align: Align,
}

impl Column {
    pub(crate) fn left(title: impl Into<String>) -> Self {
        Column {
            title: title.into(),
            align: Align::Left,
        }
    }

    pub(crate) fn right(title: impl Into<String>) -> Self {
        Column {
            title: title.into(),
            align: Align::Right,
        }
    }
}

/// Rows of text under column titles.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: Vec<Column>, rows: Vec<Vec<String>>) -> Self {
        Table { columns, rows }
    }

    /// How wide the first column must be to hold its title and every cell.
    pub(crate) fn first_column_width(&self) -> usize {
        self.widths().first().copied().unwrap_or(0)
    }

    /// The title row and the rows, in columns two spaces apart, each as wide as its widest
    /// cell, the first at least `first_width`. Lines carry no trailing spaces and the text
    /// no final newline.
    pub(crate) fn render(&self, first_width: usize) -> String {
        let mut widths = self.widths();
        if let Some(first) = widths.first_mut() {
            *first = (*first).max(first_width);
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let cells: Vec<String> = cells
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, column), &width)| match column.align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut lines = vec![line(&mut self.columns.iter().map(|c| c.title.as_str()))];
        lines.extend(
            self.rows
                .iter()
                .map(|row| line(&mut row.iter().map(String::as_str))),
        );
        lines.join("\n")
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|c| c.title.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::metrics::Severity;
    use crate::metrics::{EndpointSummary, FailedQuery};
    use crate::results::summary::{
        ApiCallSummary, ChurnNumbers, PhaseQuantiles, PodLatencySummary, RunOutcome,
    };

    pub(crate) fn quantiles(count: u64, p50: f64, p99: f64) -> Quantiles {
        Quantiles {
            count,
            p50,
            p95: f64::midpoint(p50, p99),
            p99,
            p999: p99 * 1.05,
            min: p50 / 2.0,
            max: p99 * 1.1,
            avg: p50 * 1.1,
        }
    }

    fn phase(watch: Quantiles, server: Quantiles) -> PhaseQuantiles {
        PhaseQuantiles {
            watch: Some(watch),
            server: Some(server),
        }
    }

    fn api_calls(
        requests: u64,
        throttled: u64,
        retries: u64,
        p99_by_verb: &[(&str, f64)],
    ) -> ApiCallSummary {
        ApiCallSummary {
            requests,
            errors: 0,
            throttled,
            retries,
            by_verb: p99_by_verb
                .iter()
                .map(|(verb, p99)| (verb.to_string(), quantiles(requests, p99 / 3.0, *p99)))
                .collect(),
            calls: Vec::new(),
        }
    }

    /// A create job that measured pod latency and churned.
    pub(crate) fn density_job() -> JobSummary {
        JobSummary {
            name: "node-density".to_string(),
            job_type: "create".to_string(),
            started_at: Some("2026-04-01T10:00:00.000Z".to_string()),
            ended_at: Some("2026-04-01T10:02:07.400Z".to_string()),
            elapsed_seconds: 127.4,
            expected: 1000,
            done: 1000,
            namespaces: 10,
            errors: 0,
            achieved_rate: 49.8,
            ready_seconds: Some(12.3),
            ready: true,
            verification_passed: Some(true),
            stopped: false,
            passed: true,
            churn: Some(ChurnNumbers {
                started_at: Some("2026-04-01T10:00:32.000Z".to_string()),
                cycles: 3,
                deleted: 300,
                recreated: 300,
                seconds: 95.2,
            }),
            pod_latency: Some(PodLatencySummary {
                pods: 1000,
                ready: 1000,
                phases: BTreeMap::from([
                    (
                        "PodScheduled".to_string(),
                        phase(quantiles(1000, 12.4, 48.1), quantiles(1000, 0.0, 1000.0)),
                    ),
                    (
                        READY.to_string(),
                        phase(
                            quantiles(1000, 2012.4, 4518.9),
                            quantiles(1000, 2000.0, 5000.0),
                        ),
                    ),
                ]),
            }),
            api_calls: api_calls(
                12010,
                3,
                12,
                &[("create", 45.2), ("get", 3.17), ("list", 120.5)],
            ),
        }
    }

    /// A delete job: no pods watched, no churn, nothing verified.
    pub(crate) fn cleanup_job() -> JobSummary {
        JobSummary {
            name: "cleanup".to_string(),
            job_type: "delete".to_string(),
            started_at: Some("2026-04-01T10:02:07.500Z".to_string()),
            ended_at: Some("2026-04-01T10:02:17.600Z".to_string()),
            elapsed_seconds: 10.1,
            expected: 1000,
            done: 1000,
            namespaces: 0,
            errors: 0,
            achieved_rate: 99.1,
            ready_seconds: Some(4.25),
            ready: true,
            verification_passed: None,
            stopped: false,
            passed: true,
            churn: None,
            pod_latency: None,
            api_calls: api_calls(1010, 0, 0, &[("delete", 30.4), ("list", 8.76)]),
        }
    }

    fn threshold(family: Family, threshold_ms: f64, value_ms: Option<f64>) -> ThresholdResult {
        ThresholdResult {
            job: "node-density".to_string(),
            condition_type: READY.to_string(),
            metric: ThresholdMetric::P99,
            family,
            threshold_ms,
            value_ms,
            passed: value_ms.is_some_and(|value| value <= threshold_ms),
        }
    }

    pub(crate) fn run(outcome: RunOutcome, exit_code: u8, jobs: Vec<JobSummary>) -> RunSummary {
        RunSummary {
            uuid: "0b7c6f1e-3d2a-4e5f-9a8b-1c2d3e4f5a6b".to_string(),
            run_id: "run-1".to_string(),
            config: "workloads/node-density.yml".to_string(),
            outcome,
            exit_code,
            burner_version: "0.1.0".to_string(),
            k8s_version: Some("v1.36.0".to_string()),
            total_nodes: Some(100),
            started_at: "2026-04-01T10:00:00.000Z".to_string(),
            ended_at: "2026-04-01T10:02:17.600Z".to_string(),
            jobs,
            thresholds: Vec::new(),
            metrics: MetricsSummary::default(),
        }
    }

    /// Two jobs that did their work; the server-family threshold fails the run.
    pub(crate) fn completed_run() -> RunSummary {
        let mut summary = run(RunOutcome::Completed, 1, vec![density_job(), cleanup_job()]);
        summary.thresholds = vec![
            threshold(Family::Watch, 5000.0, Some(4518.9)),
            threshold(Family::Server, 4000.0, Some(5000.0)),
        ];
        summary
    }

    #[test]
    fn two_jobs_with_pod_latency_churn_and_a_failed_threshold() {
        insta::assert_snapshot!(render(&completed_run()));
    }

    #[test]
    fn timed_out_run_marks_the_stopped_job_and_what_it_did_not_measure() {
        let mut job = density_job();
        job.done = 420;
        job.errors = 2;
        job.elapsed_seconds = 600.0;
        job.achieved_rate = 0.7;
        job.ready_seconds = None;
        job.ready = false;
        job.verification_passed = None;
        job.stopped = true;
        job.passed = false;
        job.churn = None;
        let latency = job.pod_latency.as_mut().unwrap();
        latency.pods = 420;
        latency.ready = 0;
        latency.phases.get_mut(READY).unwrap().server = None;
        latency.phases.get_mut(READY).unwrap().watch = Some(Quantiles::default());
        job.api_calls.errors = 2;
        let mut summary = run(RunOutcome::TimedOut, 2, vec![job]);
        summary.thresholds = vec![threshold(Family::Watch, 5000.0, None)];
        insta::assert_snapshot!(render(&summary));
    }

    #[test]
    fn run_without_jobs_still_shows_its_outcome() {
        insta::assert_snapshot!(render(&run(RunOutcome::Interrupted, 1, Vec::new())));
    }

    #[test]
    fn three_jobs_fit_on_one_screen() {
        let mut summary = completed_run();
        let mut second = density_job();
        second.name = "pod-density".to_string();
        summary.jobs.insert(1, second);
        let text = render(&summary);
        assert!(text.lines().count() <= 40, "{text}");
    }

    #[test]
    fn durations_switch_units_at_ten_milliseconds_and_ten_seconds() {
        assert_eq!(format_ms(0.456), "0.5 ms");
        assert_eq!(format_ms(9.94), "9.9 ms");
        assert_eq!(format_ms(9.96), "10 ms");
        assert_eq!(format_ms(2012.4), "2012 ms");
        assert_eq!(format_ms(9999.4), "9999 ms");
        assert_eq!(format_ms(9999.6), "10.0 s");
        assert_eq!(format_ms(127_400.0), "127.4 s");
    }

    #[test]
    fn metrics_endpoints_and_fired_alerts_follow_the_jobs() {
        let mut summary = run(RunOutcome::Completed, 3, vec![density_job()]);
        summary.metrics = MetricsSummary {
            endpoints: vec![EndpointSummary {
                url: "http://127.0.0.1:9090".to_string(),
                alias: "indexer-0".to_string(),
                documents: [
                    ("apiserverLatency".to_string(), 240),
                    ("etcdFsync".to_string(), 12),
                ]
                .into(),
                failed_queries: vec![FailedQuery {
                    endpoint: "http://127.0.0.1:9090".to_string(),
                    job: "node-density".to_string(),
                    name: "schedulerThroughput".to_string(),
                    error: "no answer within 60s".to_string(),
                }],
            }],
            alerts: vec![FiredAlert {
                timestamp: "2026-04-01T10:01:05.000Z".to_string(),
                uuid: summary.uuid.clone(),
                severity: Severity::Error,
                description: "POST pods p99 1.52 s exceeds 1 s".to_string(),
                metric_name: "alert".to_string(),
                churn_metric: false,
                job_name: "node-density".to_string(),
                expr: "x > 1".to_string(),
                value: 1.52,
                labels: "resource=pods,verb=POST".to_string(),
                endpoint: "http://127.0.0.1:9090".to_string(),
            }],
        };
        insta::assert_snapshot!(render(&summary));
    }
}
