//! `burner report`: one HTML page that shows what a run directory holds.
//!
//! The page is read from the run directory's JSON files only (see docs/measurements.md) and
//! must never reference anything outside itself: no scripts, styles or fonts from an address.
//! It opens offline and can be attached to a ticket as it is.
//! Charts are inline SVG drawn here, each series cut to a few hundred points so that a run of
//! 100,000 pods still gives a page of a few hundred kilobytes.
//!
//! The page is polyglot HTML5: it is also well-formed XML (every element closed, every
//! attribute quoted, all text escaped), so that tests and tools can parse it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::measure::api_calls::{ApiCallSecondRow, JobSecondRow};
use crate::measure::pod_latency::PodLatencyRow;
use crate::metrics::MetricDocument;
use serde::de::DeserializeOwned;

use crate::results::summary::{
    Family, JobSummary, POD_PHASES, PodLatencySummary, RunOutcome, RunSummary, SUMMARY_FILE,
    ThresholdResult,
};

/// The file `burner report` writes into the run directory unless told otherwise.
pub const REPORT_FILE: &str = "report.html";

/// Points per chart series at most: enough for a smooth line at the chart's width.
const MAX_POINTS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{} is not a burner run directory: no summary.json", dir.display())]
    NotARunDirectory { dir: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes the report of the run in `run_dir` to `output` (default: `report.html` in the run
/// directory) and returns the path it wrote.
pub fn write_report(run_dir: &Path, output: Option<&Path>) -> Result<PathBuf, ReportError> {
    let summary_path = run_dir.join(SUMMARY_FILE);
    let summary: RunSummary = match read_json(&summary_path)? {
        Some(summary) => summary,
        None => {
            return Err(ReportError::NotARunDirectory {
                dir: run_dir.to_path_buf(),
            });
        }
    };
    let page = render_page(&summary, run_dir)?;
    let path = output.map_or_else(|| run_dir.join(REPORT_FILE), Path::to_path_buf);
    std::fs::write(&path, page).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Reads and parses a JSON file; `None` when there is no such file, since most of a run
/// directory's files are written only when there was something to measure.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReportError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

// ---------------------------------------------------------------------------------------
// The per-job files, read with the row types that wrote them.

/// What the run directory holds for one job; each file is optional.
struct JobFiles {
    pods: Option<Vec<PodLatencyRow>>,
    seconds: Option<Vec<JobSecondRow>>,
    api_calls: Option<Vec<ApiCallSecondRow>>,
}

impl JobFiles {
    fn read(run_dir: &Path, job: &str) -> Result<JobFiles, ReportError> {
        Ok(JobFiles {
            pods: read_json(&run_dir.join(format!("podLatencyMeasurement-{job}.json")))?,
            seconds: read_json(&run_dir.join(format!("jobTimeseries-{job}.json")))?,
            api_calls: read_json(&run_dir.join(format!("apiCallTimeseries-{job}.json")))?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The page.

const STYLE: &str = "
body { font-family: system-ui, sans-serif; color: #222; max-width: 1200px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.5em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin-bottom: 0.25em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.passed { color: #1a7f37; }
.failed { color: #cf222e; font-weight: bold; }
.no-data { color: #666; font-style: italic; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 0.5em 0 1em; }
";

fn render_page(summary: &RunSummary, run_dir: &Path) -> Result<String, ReportError> {
    let mut page = String::new();
    write_overview(&mut page, summary).expect("writing to a String cannot fail");
    for (index, job) in summary.jobs.iter().enumerate() {
        // One job's files at a time: a run of many large jobs never holds them all.
        let files = JobFiles::read(run_dir, &job.name)?;
        write_job_section(&mut page, index, job, &files).expect("writing to a String cannot fail");
    }
    write_control_plane(&mut page, summary, run_dir)?;
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

// ---------------------------------------------------------------------------------------
// The control plane's own metrics, from the run's metric documents.

/// Lines drawn per metric chart; the series with the largest values are kept.
const MAX_METRIC_SERIES: usize = 8;

/// One chart per metric the run read from Prometheus, over the whole run, every job's
/// window shaded; metrics of one sample per series (instant queries) as a table.
fn write_control_plane(
    out: &mut String,
    summary: &RunSummary,
    run_dir: &Path,
) -> Result<(), ReportError> {
    let mut names: Vec<&String> = summary
        .metrics
        .endpoints
        .iter()
        .flat_map(|e| e.documents.keys())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let Some(run_start) = parse_time(&summary.started_at) else {
        return Ok(());
    };
    let since_start = |at: SystemTime| {
        at.duration_since(run_start)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let bands: Vec<Band> = summary
        .jobs
        .iter()
        .filter_map(|job| {
            let start = parse_time(job.started_at.as_deref()?)?;
            let end = parse_time(job.ended_at.as_deref()?)?;
            Some(Band {
                label: job.name.clone(),
                start: since_start(start),
                end: since_start(end),
            })
        })
        .collect();
    let write = |out: &mut String, text: &str| out.push_str(text);
    write(
        out,
        "<section id=\"control-plane\">\n<h2>Control plane</h2>\n",
    );
    for name in names {
        let documents: Vec<MetricDocument> =
            read_json(&run_dir.join(format!("{name}.json")))?.unwrap_or_default();
        let mut by_labels: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for doc in &documents {
            if let Some(at) = parse_time(&doc.timestamp) {
                by_labels
                    .entry(series_name(&doc.labels))
                    .or_default()
                    .push((since_start(at), doc.value));
            }
        }
        let instant = by_labels.values().all(|points| points.len() < 2);
        if instant {
            write_metric_table(out, name, &by_labels).expect("writing to a String cannot fail");
            continue;
        }
        match metric_chart(name, by_labels, &bands) {
            Some(chart) => chart.write(out).expect("writing to a String cannot fail"),
            None => no_data(out, &format!("{name}: no samples."))
                .expect("writing to a String cannot fail"),
        }
    }
    write(out, "</section>\n");
    Ok(())
}

/// A series' legend: its label values, in label-name order.
fn series_name(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "value".to_string();
    }
    labels.values().cloned().collect::<Vec<_>>().join(" ")
}

fn metric_chart(
    name: &str,
    by_labels: BTreeMap<String, Vec<(f64, f64)>>,
    bands: &[Band],
) -> Option<LineChart> {
    let total = by_labels.len();
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = by_labels.into_iter().collect();
    let peak = |points: &[(f64, f64)]| points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    lines.sort_by(|a, b| peak(&b.1).total_cmp(&peak(&a.1)));
    lines.truncate(MAX_METRIC_SERIES);
    let series: Vec<Series> = lines
        .into_iter()
        .enumerate()
        .map(|(index, (label, mut points))| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            time_series(&label, colour(index), false, points)
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let title = if total > MAX_METRIC_SERIES {
        format!("{name} (the {MAX_METRIC_SERIES} highest of {total} series)")
    } else {
        name.to_string()
    };
    (!series.is_empty()).then(|| LineChart {
        kind: "control-plane",
        title,
        x_label: "seconds since the run started",
        y_label: "value",
        series,
        bands: bands.to_vec(),
        y_range: None,
    })
}

fn write_metric_table(
    out: &mut String,
    name: &str,
    by_labels: &BTreeMap<String, Vec<(f64, f64)>>,
) -> fmt::Result {
    writeln!(out, "<h3>{}</h3>", escape(name))?;
    writeln!(
        out,
        "<table class=\"metric\" data-metric=\"{}\">",
        escape(name)
    )?;
    writeln!(
        out,
        "<thead><tr><th>Series</th><th>Value</th></tr></thead><tbody>"
    )?;
    for (label, points) in by_labels.iter().take(MAX_METRIC_ROWS) {
        for (_, value) in points {
            writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(label),
                escape(&format!("{value:.4}"))
            )?;
        }
    }
    writeln!(out, "</tbody></table>")
}

/// Rows of an instant metric's table.
const MAX_METRIC_ROWS: usize = 20;

/// Everything before the job sections: the document head, the run's facts, the job and
/// threshold tables.
fn write_overview(out: &mut String, summary: &RunSummary) -> fmt::Result {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">")?;
    writeln!(out, "<head>")?;
    writeln!(out, "<meta charset=\"utf-8\"/>")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
    )?;
    writeln!(out, "<title>burner run {}</title>", escape(&summary.uuid))?;
    writeln!(out, "<style>{STYLE}</style>")?;
    writeln!(out, "</head>")?;
    writeln!(out, "<body>")?;
    writeln!(out, "<h1>burner run {}</h1>", escape(&summary.uuid))?;
    write_run_facts(out, summary)?;
    writeln!(out, "<h2>Jobs</h2>")?;
    write_job_table(out, &summary.jobs)?;
    writeln!(out, "<h2>Thresholds</h2>")?;
    write_thresholds(out, &summary.thresholds)
}

fn write_run_facts(out: &mut String, summary: &RunSummary) -> fmt::Result {
    let outcome_class = match summary.outcome {
        RunOutcome::Completed if summary.exit_code == 0 => "passed",
        _ => "failed",
    };
    let unknown = || "unknown".to_string();
    let facts = [
        ("UUID", summary.uuid.clone(), ""),
        ("Run ID", summary.run_id.clone(), ""),
        ("Config", summary.config.clone(), ""),
        (
            "Outcome",
            summary.outcome.as_text().to_string(),
            outcome_class,
        ),
        ("Exit code", summary.exit_code.to_string(), outcome_class),
        ("burner version", summary.burner_version.clone(), ""),
        (
            "Kubernetes version",
            summary.k8s_version.clone().unwrap_or_else(unknown),
            "",
        ),
        (
            "Nodes",
            summary.total_nodes.map_or_else(unknown, |n| n.to_string()),
            "",
        ),
        ("Started", summary.started_at.clone(), ""),
        ("Ended", summary.ended_at.clone(), ""),
    ];
    writeln!(out, "<table id=\"run\">")?;
    for (name, value, class) in facts {
        write!(out, "<tr><th>{name}</th>")?;
        if class.is_empty() {
            writeln!(out, "<td>{}</td></tr>", escape(&value))?;
        } else {
            writeln!(out, "<td class=\"{class}\">{}</td></tr>", escape(&value))?;
        }
    }
    writeln!(out, "</table>")
}

fn verdict(passed: bool) -> &'static str {
    if passed { "passed" } else { "failed" }
}

/// Latency as people read it: no more digits than mean something.
fn format_ms(ms: f64) -> String {
    if ms.abs() >= 100.0 {
        format!("{ms:.0}")
    } else if ms.abs() >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// "P50 / P99" of the Ready phase of one family, or a dash when it was not measured.
fn ready_p50_p99(pod_latency: Option<&PodLatencySummary>, family: Family) -> String {
    pod_latency
        .and_then(|p| p.quantiles("Ready", family))
        .filter(|q| q.count > 0)
        .map_or_else(
            || "—".to_string(),
            |q| format!("{} / {}", format_ms(q.p50), format_ms(q.p99)),
        )
}

fn write_job_table(out: &mut String, jobs: &[JobSummary]) -> fmt::Result {
    writeln!(out, "<table id=\"jobs\">")?;
    writeln!(
        out,
        "<thead><tr><th>Job</th><th>Type</th><th>Expected</th><th>Done</th><th>Errors</th>\
         <th>Rate (/s)</th><th>Elapsed (s)</th><th>Pods ready</th>\
         <th>Ready P50 / P99, watch (ms)</th><th>Ready P50 / P99, server (ms)</th>\
         <th>API P99 by verb (ms)</th><th>Verdict</th></tr></thead>"
    )?;
    writeln!(out, "<tbody>")?;
    for (index, job) in jobs.iter().enumerate() {
        let pod_latency = job.pod_latency.as_ref();
        let pods_ready =
            pod_latency.map_or_else(|| "—".to_string(), |p| format!("{} / {}", p.ready, p.pods));
        let api_p99 = if job.api_calls.by_verb.is_empty() {
            "—".to_string()
        } else {
            job.api_calls
                .by_verb
                .iter()
                .map(|(verb, q)| format!("{} {}", escape(verb), format_ms(q.p99)))
                .collect::<Vec<_>>()
                .join("<br/>")
        };
        writeln!(
            out,
            "<tr><td><a href=\"#{anchor}\">{name}</a></td><td>{job_type}</td>\
             <td class=\"number\">{expected}</td><td class=\"number\">{done}</td>\
             <td class=\"number\">{errors}</td><td class=\"number\">{rate:.1}</td>\
             <td class=\"number\">{elapsed:.1}</td><td class=\"number\">{pods_ready}</td>\
             <td class=\"number\">{watch}</td><td class=\"number\">{server}</td>\
             <td>{api_p99}</td><td class=\"{verdict}\">{verdict}</td></tr>",
            anchor = job_anchor(index),
            name = escape(&job.name),
            job_type = escape(&job.job_type),
            expected = job.expected,
            done = job.done,
            errors = job.errors,
            rate = job.achieved_rate,
            elapsed = job.elapsed_seconds,
            watch = ready_p50_p99(pod_latency, Family::Watch),
            server = ready_p50_p99(pod_latency, Family::Server),
            verdict = verdict(job.passed),
        )?;
    }
    writeln!(out, "</tbody>\n</table>")
}

/// Job names are free text, so sections are addressed by position.
fn job_anchor(index: usize) -> String {
    format!("job-{}", index + 1)
}

fn write_thresholds(out: &mut String, thresholds: &[ThresholdResult]) -> fmt::Result {
    if thresholds.is_empty() {
        return writeln!(
            out,
            "<p id=\"thresholds\" class=\"no-data\">The config set no thresholds.</p>"
        );
    }
    writeln!(out, "<table id=\"thresholds\">")?;
    writeln!(
        out,
        "<thead><tr><th>Job</th><th>Condition</th><th>Metric</th><th>Family</th>\
         <th>Threshold (ms)</th><th>Value (ms)</th><th>Verdict</th></tr></thead>"
    )?;
    writeln!(out, "<tbody>")?;
    for threshold in thresholds {
        let verdict = verdict(threshold.passed);
        writeln!(
            out,
            "<tr class=\"{verdict}\"><td>{job}</td><td>{condition}</td><td>{metric:?}</td>\
             <td>{family}</td><td class=\"number\">{limit}</td><td class=\"number\">{value}</td>\
             <td class=\"{verdict}\">{verdict}</td></tr>",
            job = escape(&threshold.job),
            condition = escape(&threshold.condition_type),
            metric = threshold.metric,
            family = threshold.family.as_str(),
            limit = format_ms(threshold.threshold_ms),
            value = threshold
                .value_ms
                .map_or_else(|| "not measured".to_string(), format_ms),
        )?;
    }
    writeln!(out, "</tbody>\n</table>")
}

fn write_job_section(
    out: &mut String,
    index: usize,
    job: &JobSummary,
    files: &JobFiles,
) -> fmt::Result {
    writeln!(
        out,
        "<section class=\"job\" id=\"{}\" data-job=\"{}\">",
        job_anchor(index),
        escape(&job.name)
    )?;
    writeln!(out, "<h2>Job {}</h2>", escape(&job.name))?;
    let bands = churn_band(job).into_iter().collect::<Vec<_>>();

    writeln!(out, "<h3>Pod startup latency</h3>")?;
    match files.pods.as_deref() {
        Some(rows) if !rows.is_empty() => {
            for family in [Family::Watch, Family::Server] {
                match pod_latency_cdf(&job.name, family, rows) {
                    Some(chart) => chart.write(out)?,
                    None => no_data(
                        out,
                        &format!("No {} latencies were recorded.", family.as_str()),
                    )?,
                }
            }
        }
        _ => no_data(out, "This job measured no pod startup latency.")?,
    }

    let seconds = files.seconds.as_deref().unwrap_or_default();
    writeln!(out, "<h3>Creation rate</h3>")?;
    match creation_rate_chart(&job.name, seconds, &bands) {
        Some(chart) => chart.write(out)?,
        None => no_data(out, "This job created no objects.")?,
    }
    writeln!(out, "<h3>Pods ready</h3>")?;
    match pods_ready_chart(&job.name, seconds, &bands) {
        Some(chart) => chart.write(out)?,
        None => no_data(out, "The watch saw no pods of this job.")?,
    }

    writeln!(out, "<h3>API-call latency</h3>")?;
    let api_calls = files.api_calls.as_deref().unwrap_or_default();
    match api_latency_chart(&job.name, api_calls, &bands) {
        Some(chart) => chart.write(out)?,
        None => no_data(out, "No API-call latencies were recorded.")?,
    }
    writeln!(out, "</section>")
}

fn no_data(out: &mut String, sentence: &str) -> fmt::Result {
    writeln!(out, "<p class=\"no-data\">{}</p>", escape(sentence))
}

/// The churn phase in seconds since the job started, which the timeseries charts shade:
/// deleting and re-creating objects changes every line drawn over it.
fn churn_band(job: &JobSummary) -> Option<Band> {
    let churn = job.churn.as_ref()?;
    let job_start = parse_time(job.started_at.as_deref()?)?;
    let churn_start = parse_time(churn.started_at.as_deref()?)?;
    let start = churn_start.duration_since(job_start).ok()?.as_secs_f64();
    Some(Band {
        label: "churn".to_string(),
        start,
        end: start + churn.seconds,
    })
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

// ---------------------------------------------------------------------------------------
// The charts of a job.

/// Colour-blind-safe colours (Okabe and Ito), one per series in order.
const PALETTE: [&str; 7] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#000000",
];

fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// One CDF per phase; each phase keeps its colour across families so the two charts compare.
fn pod_latency_cdf(job: &str, family: Family, rows: &[PodLatencyRow]) -> Option<LineChart> {
    let mut by_phase: [Vec<f64>; POD_PHASES.len()] = Default::default();
    for row in rows {
        for (values, latency) in by_phase.iter_mut().zip(row.latencies(family)) {
            values.extend(latency);
        }
    }
    let series: Vec<Series> = POD_PHASES
        .iter()
        .zip(by_phase)
        .enumerate()
        .filter(|(_, (_, values))| !values.is_empty())
        .map(|(index, (phase, values))| Series {
            name: phase.to_string(),
            points: cdf(values),
            colour: colour(index),
            dashed: false,
        })
        .collect();
    (!series.is_empty()).then(|| LineChart {
        kind: "pod-latency-cdf",
        title: format!("{job}: pod startup latency, {} family", family.as_str()),
        x_label: "latency (ms)",
        y_label: "fraction of pods",
        series,
        bands: Vec::new(),
        y_range: Some((0.0, 1.0)),
    })
}

/// The points of an empirical CDF, cut to [`MAX_POINTS`] by rank so that every part of the
/// distribution keeps its share of points.
fn cdf(mut values: Vec<f64>) -> Vec<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let count = values.len() as f64;
    let steps: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(rank, &value)| (value, (rank + 1) as f64 / count))
        .collect();
    let Some(&(first, _)) = steps.first() else {
        return Vec::new();
    };
    // The line rises from zero at the smallest value, as a CDF does.
    let mut points = vec![(first, 0.0)];
    points.extend(downsample(&steps, MAX_POINTS - 1));
    points
}

/// At most `max` items, evenly spaced by index; the first and the last are always kept.
fn downsample<T: Copy>(items: &[T], max: usize) -> Vec<T> {
    if items.len() <= max {
        return items.to_vec();
    }
    match max {
        0 => Vec::new(),
        1 => vec![items[0]],
        _ => (0..max)
            .map(|k| items[k * (items.len() - 1) / (max - 1)])
            .collect(),
    }
}

fn time_series(
    name: &str,
    colour: &'static str,
    dashed: bool,
    points: impl IntoIterator<Item = (f64, f64)>,
) -> Series {
    let points: Vec<(f64, f64)> = points.into_iter().collect();
    Series {
        name: name.to_string(),
        points: downsample(&points, MAX_POINTS),
        colour,
        dashed,
    }
}

/// One count of every second, as chart points.
fn per_second(
    seconds: &[JobSecondRow],
    count: fn(&JobSecondRow) -> u64,
) -> impl Iterator<Item = (f64, f64)> + '_ {
    seconds
        .iter()
        .map(move |s| (s.second as f64, count(s) as f64))
}

fn creation_rate_chart(job: &str, seconds: &[JobSecondRow], bands: &[Band]) -> Option<LineChart> {
    if seconds.iter().all(|s| s.writes == 0) {
        return None;
    }
    let mut series = vec![time_series(
        "writes/s",
        colour(0),
        false,
        per_second(seconds, |s| s.writes),
    )];
    // Errors and 429s explain a dip in the rate, so they share its chart when there are any.
    if seconds.iter().any(|s| s.errors > 0) {
        let points = per_second(seconds, |s| s.errors);
        series.push(time_series("errors/s", colour(3), false, points));
    }
    if seconds.iter().any(|s| s.throttled > 0) {
        let points = per_second(seconds, |s| s.throttled);
        series.push(time_series("429s/s", colour(1), true, points));
    }
    Some(LineChart {
        kind: "creation-rate",
        title: format!("{job}: objects created per second"),
        x_label: "seconds since the job started",
        y_label: "per second",
        series,
        bands: bands.to_vec(),
        y_range: None,
    })
}

fn pods_ready_chart(job: &str, seconds: &[JobSecondRow], bands: &[Band]) -> Option<LineChart> {
    if seconds
        .iter()
        .all(|s| s.pods_seen == 0 && s.pods_ready == 0)
    {
        return None;
    }
    let series = vec![
        time_series(
            "seen",
            colour(5),
            true,
            per_second(seconds, |s| s.pods_seen),
        ),
        time_series(
            "ready",
            colour(2),
            false,
            per_second(seconds, |s| s.pods_ready),
        ),
    ];
    Some(LineChart {
        kind: "pods-ready",
        title: format!("{job}: pods seen and ready"),
        x_label: "seconds since the job started",
        y_label: "pods",
        series,
        bands: bands.to_vec(),
        y_range: None,
    })
}

/// P50 dashed and P99 solid in one colour per verb, so a verb's spread reads at a glance.
fn api_latency_chart(job: &str, rows: &[ApiCallSecondRow], bands: &[Band]) -> Option<LineChart> {
    let mut verbs: Vec<&str> = rows.iter().map(|r| r.verb.as_str()).collect();
    verbs.sort_unstable();
    verbs.dedup();
    let mut series = Vec::new();
    for (index, verb) in verbs.into_iter().enumerate() {
        let mut of_verb: Vec<&ApiCallSecondRow> = rows.iter().filter(|r| r.verb == verb).collect();
        of_verb.sort_by_key(|r| r.second);
        let p50 = of_verb.iter().map(|r| (r.second as f64, r.p50));
        let p99 = of_verb.iter().map(|r| (r.second as f64, r.p99));
        let lines = [
            time_series(&format!("{verb} P50"), colour(index), true, p50),
            time_series(&format!("{verb} P99"), colour(index), false, p99),
        ];
        series.extend(lines.into_iter().filter(|line| !line.points.is_empty()));
    }
    (!series.is_empty()).then(|| LineChart {
        kind: "api-latency",
        title: format!("{job}: API-call latency by verb"),
        x_label: "seconds since the job started",
        y_label: "latency (ms)",
        series,
        bands: bands.to_vec(),
        y_range: None,
    })
}

// ---------------------------------------------------------------------------------------
// The SVG line chart.

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    colour: &'static str,
    dashed: bool,
}

/// An x-range drawn as a shaded band behind the lines.
#[derive(Debug, Clone)]
struct Band {
    label: String,
    start: f64,
    end: f64,
}

struct LineChart {
    /// The `data-chart` attribute, which names what the chart shows.
    kind: &'static str,
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    series: Vec<Series>,
    bands: Vec<Band>,
    /// A fixed y-range; otherwise it reaches from zero to the largest value.
    y_range: Option<(f64, f64)>,
}

const CHART_WIDTH: f64 = 800.0;
const PLOT_LEFT: f64 = 64.0;
const PLOT_TOP: f64 = 32.0;
const PLOT_WIDTH: f64 = 500.0;
const PLOT_HEIGHT: f64 = 240.0;
const PLOT_BOTTOM_MARGIN: f64 = 48.0;
const LEGEND_LEFT: f64 = PLOT_LEFT + PLOT_WIDTH + 20.0;
const LEGEND_LINE_HEIGHT: f64 = 18.0;

impl LineChart {
    fn write(&self, out: &mut String) -> fmt::Result {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let band_edges = self.bands.iter().flat_map(|b| [b.start, b.end]);
        let xs = points().map(|p| p.0).chain(band_edges);
        let x_axis = Axis::covering(xs);
        let y_axis = match self.y_range {
            Some((low, high)) => Axis::covering([low, high]),
            None => Axis::covering(points().map(|p| p.1)),
        };
        let x_pixel = |x: f64| PLOT_LEFT + x_axis.fraction(x) * PLOT_WIDTH;
        let y_pixel = |y: f64| PLOT_TOP + (1.0 - y_axis.fraction(y)) * PLOT_HEIGHT;
        let plot_bottom = PLOT_TOP + PLOT_HEIGHT;
        let legend_entries = self.series.len() + self.bands.len();
        let height = (plot_bottom + PLOT_BOTTOM_MARGIN)
            .max(PLOT_TOP + legend_entries as f64 * LEGEND_LINE_HEIGHT + 8.0);

        writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"{kind}\" \
             role=\"img\" width=\"{CHART_WIDTH}\" height=\"{height}\" \
             viewBox=\"0 0 {CHART_WIDTH} {height}\" font-family=\"sans-serif\" \
             font-size=\"11\" fill=\"#333333\">",
            kind = self.kind,
        )?;
        writeln!(out, "<title>{}</title>", escape(&self.title))?;
        writeln!(
            out,
            "<text class=\"chart-title\" x=\"{PLOT_LEFT}\" y=\"18\" font-size=\"13\" \
             font-weight=\"bold\">{}</text>",
            escape(&self.title)
        )?;

        for band in &self.bands {
            let (left, right) = (x_pixel(band.start), x_pixel(band.end));
            writeln!(
                out,
                "<rect class=\"band\" x=\"{left:.1}\" y=\"{PLOT_TOP}\" width=\"{:.1}\" \
                 height=\"{PLOT_HEIGHT}\" fill=\"#888888\" fill-opacity=\"0.15\">\
                 <title>{}</title></rect>",
                (right - left).max(1.0),
                escape(&band.label)
            )?;
        }

        for &x in &x_axis.ticks {
            let px = x_pixel(x);
            writeln!(
                out,
                "<line class=\"grid\" stroke=\"#e4e4e4\" x1=\"{px:.1}\" y1=\"{PLOT_TOP}\" x2=\"{px:.1}\" y2=\"{plot_bottom}\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                plot_bottom + 14.0,
                x_axis.label(x)
            )?;
        }
        for &y in &y_axis.ticks {
            let py = y_pixel(y);
            writeln!(
                out,
                "<line class=\"grid\" stroke=\"#e4e4e4\" x1=\"{PLOT_LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                PLOT_LEFT + PLOT_WIDTH,
                PLOT_LEFT - 6.0,
                py + 4.0,
                y_axis.label(y)
            )?;
        }
        writeln!(
            out,
            "<polyline class=\"axis\" fill=\"none\" stroke=\"#666666\" points=\"{PLOT_LEFT},{PLOT_TOP} \
             {PLOT_LEFT},{plot_bottom} {:.1},{plot_bottom}\"/>",
            PLOT_LEFT + PLOT_WIDTH
        )?;
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            PLOT_LEFT + PLOT_WIDTH / 2.0,
            plot_bottom + 34.0,
            escape(self.x_label)
        )?;
        writeln!(
            out,
            "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            PLOT_TOP + PLOT_HEIGHT / 2.0,
            escape(self.y_label)
        )?;

        for series in &self.series {
            let coordinates: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", x_pixel(x), y_pixel(y)))
                .collect();
            writeln!(
                out,
                "<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{}\" \
                 stroke-width=\"1.5\"{} points=\"{}\"/>",
                escape(&series.name),
                series.colour,
                dash(series.dashed),
                coordinates.join(" ")
            )?;
            // A single point draws no line; a dot keeps it visible.
            if let [(x, y)] = series.points[..] {
                writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
                    x_pixel(x),
                    y_pixel(y),
                    series.colour
                )?;
            }
        }

        self.write_legend(out)?;
        writeln!(out, "</svg>")
    }

    fn write_legend(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "<g class=\"legend\">")?;
        let mut y = PLOT_TOP + 8.0;
        for series in &self.series {
            writeln!(
                out,
                "<line x1=\"{LEGEND_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
                 stroke-width=\"2\"{}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                LEGEND_LEFT + 22.0,
                series.colour,
                dash(series.dashed),
                LEGEND_LEFT + 28.0,
                y + 4.0,
                escape(&series.name)
            )?;
            y += LEGEND_LINE_HEIGHT;
        }
        for band in &self.bands {
            writeln!(
                out,
                "<rect x=\"{LEGEND_LEFT}\" y=\"{:.1}\" width=\"22\" height=\"10\" fill=\"#888888\" \
                 fill-opacity=\"0.15\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                y - 5.0,
                LEGEND_LEFT + 28.0,
                y + 4.0,
                escape(&band.label)
            )?;
            y += LEGEND_LINE_HEIGHT;
        }
        writeln!(out, "</g>")
    }
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"5 3\""
    } else {
        ""
    }
}

/// An axis range widened to round tick values, from zero unless the values go below it.
struct Axis {
    min: f64,
    max: f64,
    step: f64,
    ticks: Vec<f64>,
}

impl Axis {
    /// About five ticks.
    fn covering(values: impl IntoIterator<Item = f64>) -> Axis {
        let (low, high) = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((0.0_f64, 0.0_f64), |(low, high), v| {
                (low.min(v), high.max(v))
            });
        let high = if high > low { high } else { low + 1.0 };
        let step = nice_step((high - low) / 5.0);
        let min = (low / step).floor() * step;
        let max = (high / step).ceil() * step;
        let tick_count = ((max - min) / step).round() as usize;
        let ticks = (0..=tick_count).map(|i| min + i as f64 * step).collect();
        Axis {
            min,
            max,
            step,
            ticks,
        }
    }

    fn fraction(&self, value: f64) -> f64 {
        (value - self.min) / (self.max - self.min)
    }

    /// A tick label with as many decimals as the step needs; thousands as "k" past 10,000.
    fn label(&self, value: f64) -> String {
        let thousands = self.max.abs().max(self.min.abs()) >= 10_000.0;
        if thousands && value == 0.0 {
            return "0".to_string();
        }
        let (value, step, suffix) = if thousands {
            (value / 1000.0, self.step / 1000.0, "k")
        } else {
            (value, self.step, "")
        };
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10() - 1e-9).ceil() as usize
        };
        format!("{value:.decimals$}{suffix}")
    }
}

/// 1, 2 or 5 times a power of ten, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10_f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let nice = if normalised <= 1.0 {
        1.0
    } else if normalised <= 2.0 {
        2.0
    } else if normalised <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Text made safe for both HTML and XML, in element content and in quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_every_markup_character() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn escape_leaves_plain_text_alone() {
        assert_eq!(escape("pods-ready: 99.9% – ok"), "pods-ready: 99.9% – ok");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn downsample_keeps_short_series_whole() {
        let items: Vec<u32> = (0..10).collect();
        assert_eq!(downsample(&items, 300), items);
    }

    #[test]
    fn downsample_keeps_first_and_last_and_at_most_max() {
        let items: Vec<u32> = (0..100_000).collect();
        let sampled = downsample(&items, 300);
        assert_eq!(sampled.len(), 300);
        assert_eq!(sampled.first(), Some(&0));
        assert_eq!(sampled.last(), Some(&99_999));
        assert!(sampled.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn downsample_spaces_points_evenly() {
        let items: Vec<u32> = (0..=100).collect();
        assert_eq!(downsample(&items, 5), [0, 25, 50, 75, 100]);
        assert_eq!(downsample(&items, 1), [0]);
        assert!(downsample(&items, 0).is_empty());
    }

    #[test]
    fn cdf_rises_from_zero_to_one_in_value_order() {
        let points = cdf(vec![30.0, 10.0, 20.0, 40.0]);
        assert_eq!(
            points,
            [
                (10.0, 0.0),
                (10.0, 0.25),
                (20.0, 0.5),
                (30.0, 0.75),
                (40.0, 1.0)
            ]
        );
    }

    #[test]
    fn cdf_of_many_pods_stays_within_max_points() {
        let points = cdf((0..100_000).map(f64::from).collect());
        assert!(points.len() <= MAX_POINTS);
        assert_eq!(points.last(), Some(&(99_999.0, 1.0)));
    }

    #[test]
    fn axis_ticks_are_round_and_cover_the_values() {
        let axis = Axis::covering([3.0, 87.0]);
        assert_eq!(axis.ticks, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let fractions = Axis::covering([0.0, 1.0]);
        let labels: Vec<String> = fractions
            .ticks
            .iter()
            .map(|&t| fractions.label(t))
            .collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let large = Axis::covering([100_000.0]);
        assert_eq!(large.label(100_000.0), "100k");
        assert_eq!(large.label(0.0), "0");
    }
}
