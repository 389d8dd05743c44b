//! `burner compare DIR_A DIR_B`: how every headline number changed from run A to run B, and
//! which changed for the worse by more than a threshold.
//!
//! It reads only the run summaries, never the per-pod files, so runs of any size compare at
//! once. It decides what a regression is; the exit code it implies is the CLI's to give.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::results::summary::{Family, JobSummary, RunSummary, SUMMARY_FILE, ThresholdMetric};
use crate::results::text::{Column, Table, format_ms, measured};

/// Which way a number should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

/// What a compared number counts, which decides how it prints and, for counts, how it
/// regresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    PerSecond,
    Seconds,
    Milliseconds,
    /// Events that should not happen at all, such as errors and 429s.
    Count,
}

/// One headline number of one job in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub job: String,
    pub metric: String,
    pub unit: Unit,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// `(b - a) / a * 100`; none when either is missing or `a` is 0.
    pub change_pct: Option<f64>,
    pub better: Direction,
    pub regression: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Delta>,
    /// The change, in percent, a number may make for the worse before it is a regression.
    pub threshold_pct: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "cannot read the run summary {} (give a run directory written by burner init, or its {SUMMARY_FILE})",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a burner run summary", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads the run summary of the run directory `dir`, or `dir` itself when it is a JSON
/// file rather than a directory.
pub fn load_summary(dir: &Path) -> Result<RunSummary, CompareError> {
    let is_json_file = !dir.is_dir() && dir.extension().is_some_and(|e| e == "json");
    let path = if is_json_file {
        dir.to_path_buf()
    } else {
        dir.join(SUMMARY_FILE)
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CompareError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CompareError::Parse { path, source })
}

/// Reads a threshold as `burner compare --threshold` takes it: a percentage, with or
/// without its `%`.
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    let number = text.trim();
    let number = number.strip_suffix('%').unwrap_or(number).trim_end();
    match number.parse::<f64>() {
        Ok(pct) if pct.is_finite() && pct >= 0.0 => Ok(pct),
        Ok(_) => Err(format!(
            "threshold {text:?}: must be a percentage of 0 or more, such as 10%"
        )),
        Err(_) => Err(format!(
            "threshold {text:?}: not a percentage; give one such as 10% or 2.5"
        )),
    }
}

/// A change this close to the threshold counts as at it: a change printed as `+10.0%` must
/// not be flagged beyond 10% because of floating-point noise.
const TOLERANCE_PCT: f64 = 1e-9;

/// The pod startup phases compared: the one that ends startup and the one that shows the
/// scheduler's share.
const COMPARED_PHASES: [&str; 2] = ["Ready", "PodScheduled"];

pub fn compare(a: &RunSummary, b: &RunSummary, threshold_pct: f64) -> Comparison {
    let mut rows = Vec::new();
    for job_a in &a.jobs {
        match b.job(&job_a.name) {
            Some(job_b) => compare_jobs(job_a, job_b, threshold_pct, &mut rows),
            None => rows.push(only_in(&job_a.name, "A")),
        }
    }
    for job_b in b.jobs.iter().filter(|job| a.job(&job.name).is_none()) {
        rows.push(only_in(&job_b.name, "B"));
    }
    Comparison {
        rows,
        threshold_pct,
    }
}

fn only_in(job: &str, run: &str) -> Delta {
    Delta {
        job: job.to_string(),
        metric: format!("only in run {run}"),
        unit: Unit::Count,
        a: None,
        b: None,
        change_pct: None,
        better: Direction::LowerIsBetter,
        regression: false,
    }
}

fn compare_jobs(a: &JobSummary, b: &JobSummary, threshold_pct: f64, rows: &mut Vec<Delta>) {
    use Direction::{HigherIsBetter, LowerIsBetter};

    let mut push = |metric: String,
                    unit: Unit,
                    better: Direction,
                    value: &dyn Fn(&JobSummary) -> Option<f64>| {
        let (value_a, value_b) = (value(a), value(b));
        if value_a.is_some() || value_b.is_some() {
            rows.push(delta(
                &a.name,
                metric,
                unit,
                better,
                value_a,
                value_b,
                threshold_pct,
            ));
        }
    };
    push(
        "achieved rate".into(),
        Unit::PerSecond,
        HigherIsBetter,
        &|job| Some(job.achieved_rate),
    );
    push("errors".into(), Unit::Count, LowerIsBetter, &|job| {
        Some(job.errors as f64)
    });
    push("elapsed".into(), Unit::Seconds, LowerIsBetter, &|job| {
        Some(job.elapsed_seconds)
    });
    for phase in COMPARED_PHASES {
        for family in [Family::Watch, Family::Server] {
            for (name, metric) in [("P50", ThresholdMetric::P50), ("P99", ThresholdMetric::P99)] {
                push(
                    format!("{phase} {name} {}", family.as_str()),
                    Unit::Milliseconds,
                    LowerIsBetter,
                    &|job| {
                        let latency = job.pod_latency.as_ref()?;
                        measured(latency.quantiles(phase, family)).map(|q| metric.of(q))
                    },
                );
            }
        }
    }
    let verbs: BTreeSet<&String> = a
        .api_calls
        .by_verb
        .keys()
        .chain(b.api_calls.by_verb.keys())
        .collect();
    for verb in verbs {
        push(
            format!("API {verb} P99"),
            Unit::Milliseconds,
            LowerIsBetter,
            &|job| measured(job.api_calls.by_verb.get(verb)).map(|q| q.p99),
        );
    }
    push("API throttled".into(), Unit::Count, LowerIsBetter, &|job| {
        Some(job.api_calls.throttled as f64)
    });
}

fn delta(
    job: &str,
    metric: String,
    unit: Unit,
    better: Direction,
    a: Option<f64>,
    b: Option<f64>,
    threshold_pct: f64,
) -> Delta {
    let change_pct = match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a * 100.0),
        _ => None,
    };
    let worse = match (a, b, better) {
        (Some(a), Some(b), Direction::LowerIsBetter) => b > a,
        (Some(a), Some(b), Direction::HigherIsBetter) => b < a,
        _ => false,
    };
    let beyond_threshold = match change_pct {
        Some(change) => change.abs() > threshold_pct + TOLERANCE_PCT,
        // A count that rises from zero has no relative change, yet going from no errors to
        // some is exactly what a comparison must catch.
        None => unit == Unit::Count && a == Some(0.0),
    };
    Delta {
        job: job.to_string(),
        metric,
        unit,
        a,
        b,
        change_pct,
        better,
        regression: worse && beyond_threshold,
    }
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|row| row.regression).count()
    }

    pub fn render(&self) -> String {
        let columns = vec![
            Column::left("JOB"),
            Column::left("METRIC"),
            Column::right("A"),
            Column::right("B"),
            Column::right("CHANGE"),
            Column::left(""),
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                let value =
                    |v: Option<f64>| v.map_or("-".to_string(), |v| format_value(row.unit, v));
                vec![
                    row.job.clone(),
                    row.metric.clone(),
                    value(row.a),
                    value(row.b),
                    change(row),
                    if row.regression { "REGRESSION" } else { "" }.to_string(),
                ]
            })
            .collect();
        let threshold = self.threshold_pct;
        let verdict = match self.regressions() {
            0 => format!("no regression beyond {threshold}%"),
            1 => format!("1 regression beyond {threshold}%"),
            n => format!("{n} regressions beyond {threshold}%"),
        };
        format!("{}\n\n{verdict}\n", Table::new(columns, rows).render(0))
    }
}

/// The relative change, or, when there is none because A is 0, the difference itself.
fn change(row: &Delta) -> String {
    match (row.change_pct, row.a, row.b) {
        (_, Some(a), Some(b)) if a == b => "0%".to_string(),
        (Some(pct), _, _) => format!("{pct:+.1}%"),
        (None, Some(a), Some(b)) => {
            let sign = if b > a { '+' } else { '-' };
            format!("{sign}{}", format_value(row.unit, (b - a).abs()))
        }
        _ => "-".to_string(),
    }
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::PerSecond => format!("{value:.1}/s"),
        Unit::Seconds => format_ms(value * 1000.0),
        Unit::Milliseconds => format_ms(value),
        Unit::Count => format!("{value:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::text::tests::{completed_run, quantiles};

    fn with_ready_p99_watch(mut summary: RunSummary, factor: f64) -> RunSummary {
        let latency = summary.jobs[0].pod_latency.as_mut().unwrap();
        let watch = latency
            .phases
            .get_mut("Ready")
            .unwrap()
            .watch
            .as_mut()
            .unwrap();
        watch.p99 *= factor;
        summary
    }

    fn regressed_metrics(comparison: &Comparison) -> Vec<&str> {
        comparison
            .rows
            .iter()
            .filter(|row| row.regression)
            .map(|row| row.metric.as_str())
            .collect()
    }

    #[test]
    fn identical_runs_have_no_regression() {
        let run = completed_run();
        let comparison = compare(&run, &run, 10.0);
        assert_eq!(comparison.regressions(), 0);
        assert!(comparison.rows.iter().all(|row| row.a == row.b));
        assert!(
            comparison
                .render()
                .ends_with("\nno regression beyond 10%\n")
        );
    }

    #[test]
    fn p99_twenty_percent_higher_regresses_at_ten_percent_but_not_at_twenty_five() {
        let a = completed_run();
        let b = with_ready_p99_watch(completed_run(), 1.2);
        let at_ten = compare(&a, &b, 10.0);
        assert_eq!(regressed_metrics(&at_ten), ["Ready P99 watch"]);
        let row = at_ten.rows.iter().find(|row| row.regression).unwrap();
        assert_eq!(row.job, "node-density");
        assert!((row.change_pct.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(compare(&a, &b, 25.0).regressions(), 0);
    }

    #[test]
    fn a_change_exactly_at_the_threshold_is_not_beyond_it() {
        let a = completed_run();
        let b = with_ready_p99_watch(completed_run(), 1.2);
        assert_eq!(compare(&a, &b, 20.0).regressions(), 0);
    }

    #[test]
    fn lower_latency_and_higher_rate_are_not_regressions() {
        let a = completed_run();
        let mut b = with_ready_p99_watch(completed_run(), 0.5);
        b.jobs[0].achieved_rate *= 2.0;
        let comparison = compare(&a, &b, 10.0);
        assert_eq!(comparison.regressions(), 0);
        let rate = &comparison.rows[0];
        assert_eq!(rate.metric, "achieved rate");
        assert_eq!(rate.better, Direction::HigherIsBetter);
        assert!((rate.change_pct.unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn lower_rate_beyond_the_threshold_regresses() {
        let a = completed_run();
        let mut b = completed_run();
        b.jobs[0].achieved_rate *= 0.8;
        assert_eq!(regressed_metrics(&compare(&a, &b, 10.0)), ["achieved rate"]);
    }

    #[test]
    fn errors_and_429s_rising_from_zero_regress_whatever_the_threshold() {
        let a = completed_run();
        let mut b = completed_run();
        b.jobs[1].errors = 1;
        b.jobs[1].api_calls.throttled = 4;
        let comparison = compare(&a, &b, 1000.0);
        assert_eq!(regressed_metrics(&comparison), ["errors", "API throttled"]);
        assert!(
            comparison
                .rows
                .iter()
                .all(|row| row.job == "cleanup" || !row.regression)
        );
    }

    #[test]
    fn errors_rising_from_some_regress_only_beyond_the_threshold() {
        let mut a = completed_run();
        a.jobs[0].errors = 10;
        let mut b = a.clone();
        b.jobs[0].errors = 11;
        assert_eq!(compare(&a, &b, 10.0).regressions(), 0);
        b.jobs[0].errors = 12;
        assert_eq!(regressed_metrics(&compare(&a, &b, 10.0)), ["errors"]);
    }

    #[test]
    fn a_job_in_one_run_only_gets_a_row_and_no_regression() {
        let a = completed_run();
        let mut b = completed_run();
        b.jobs[1].name = "cleanup-v2".to_string();
        let comparison = compare(&a, &b, 10.0);
        assert_eq!(comparison.regressions(), 0);
        let only: Vec<(&str, &str)> = comparison
            .rows
            .iter()
            .filter(|row| row.metric.starts_with("only in"))
            .map(|row| (row.job.as_str(), row.metric.as_str()))
            .collect();
        assert_eq!(
            only,
            [
                ("cleanup", "only in run A"),
                ("cleanup-v2", "only in run B")
            ]
        );
    }

    #[test]
    fn a_number_measured_in_one_run_only_is_shown_but_not_a_regression() {
        let a = completed_run();
        let mut b = completed_run();
        b.jobs[1]
            .api_calls
            .by_verb
            .insert("patch".to_string(), quantiles(10, 5.0, 9.0));
        let comparison = compare(&a, &b, 10.0);
        let patch = comparison
            .rows
            .iter()
            .find(|row| row.metric == "API patch P99")
            .unwrap();
        assert_eq!(
            (patch.a, patch.b, patch.change_pct),
            (None, Some(9.0), None)
        );
        assert!(!patch.regression);
    }

    #[test]
    fn parse_threshold_takes_a_percentage_with_or_without_its_sign() {
        assert_eq!(parse_threshold("10%"), Ok(10.0));
        assert_eq!(parse_threshold("10"), Ok(10.0));
        assert_eq!(parse_threshold("2.5%"), Ok(2.5));
        assert_eq!(parse_threshold(" 0 % "), Ok(0.0));
    }

    #[test]
    fn parse_threshold_rejects_negative_and_non_numeric_text_naming_it() {
        for text in ["-5%", "ten", "10%%", "", "NaN", "inf"] {
            let error = parse_threshold(text).unwrap_err();
            assert!(error.contains(&format!("{text:?}")), "{error}");
        }
    }

    #[test]
    fn load_summary_reads_a_run_directory_or_a_summary_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = completed_run();
        let path = dir.path().join(SUMMARY_FILE);
        std::fs::write(&path, serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(load_summary(dir.path()).unwrap(), run);
        assert_eq!(load_summary(&path).unwrap(), run);
    }

    #[test]
    fn load_summary_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_summary(dir.path()).unwrap_err().to_string();
        assert!(
            missing.contains(&dir.path().join(SUMMARY_FILE).display().to_string()),
            "{missing}"
        );
        let other = dir.path().join("other.json");
        std::fs::write(&other, "{\"uuid\": 1}").unwrap();
        let invalid = load_summary(&other).unwrap_err();
        assert!(matches!(invalid, CompareError::Parse { .. }));
        assert!(invalid.to_string().contains(&other.display().to_string()));
    }

    #[test]
    fn render_marks_regressions_and_counts_them() {
        let mut a = completed_run();
        let mut warm_up = a.jobs[1].clone();
        warm_up.name = "warm-up".to_string();
        a.jobs.insert(0, warm_up);
        let mut b = with_ready_p99_watch(completed_run(), 1.2);
        b.jobs[0].achieved_rate = 52.3;
        b.jobs[0].elapsed_seconds = 121.0;
        b.jobs[1].errors = 2;
        let mut verify = b.jobs[1].clone();
        verify.name = "verify".to_string();
        b.jobs.push(verify);
        insta::assert_snapshot!(compare(&a, &b, 10.0).render());
    }
}
