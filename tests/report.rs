//! `burner report`: the HTML page it writes from a run directory.
//!
//! Each test builds a small run directory in a temporary folder and reads the page back as
//! XML, which the page promises to be.

use std::collections::BTreeMap;
use std::path::Path;

use burner::results::report::{REPORT_FILE, ReportError, write_report};
use burner::results::summary::{
    ApiCallSummary, ChurnNumbers, Family, JobSummary, POD_PHASES, PhaseQuantiles,
    PodLatencySummary, Quantiles, RunOutcome, RunSummary, SUMMARY_FILE, ThresholdMetric,
    ThresholdResult,
};
use roxmltree::{Document, Node, ParsingOptions};
use serde_json::{Value, json};

const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

fn quantiles(count: u64, p50: f64, p99: f64) -> Quantiles {
    Quantiles {
        count,
        p50,
        p95: p99,
        p99,
        p999: p99,
        min: p50 / 2.0,
        max: p99,
        avg: p50,
    }
}

fn job(name: &str, pod_latency: Option<PodLatencySummary>, passed: bool) -> JobSummary {
    JobSummary {
        name: name.to_string(),
        job_type: "create".to_string(),
        started_at: Some("2025-01-01T10:00:00.000Z".to_string()),
        ended_at: Some("2025-01-01T10:00:10.000Z".to_string()),
        elapsed_seconds: 10.0,
        expected: 5,
        done: 5,
        namespaces: 1,
        errors: 0,
        achieved_rate: 2.5,
        ready_seconds: Some(4.0),
        ready: true,
        verification_passed: None,
        stopped: false,
        passed,
        churn: None,
        pod_latency,
        api_calls: ApiCallSummary {
            requests: 10,
            by_verb: BTreeMap::from([("create".to_string(), quantiles(5, 8.0, 20.0))]),
            ..ApiCallSummary::default()
        },
    }
}

/// Two jobs: `pods` measured pod latency and churned; `config<maps> & more` has no pods (and
/// a name that needs escaping).
fn run_summary() -> RunSummary {
    let phases = POD_PHASES
        .iter()
        .map(|phase| {
            let phase_quantiles = PhaseQuantiles {
                watch: Some(quantiles(5, 900.0, 1400.0)),
                server: Some(quantiles(5, 1000.0, 2000.0)),
            };
            (phase.to_string(), phase_quantiles)
        })
        .collect();
    let mut pods = job(
        "pods",
        Some(PodLatencySummary {
            pods: 5,
            ready: 5,
            phases,
        }),
        false,
    );
    pods.churn = Some(ChurnNumbers {
        started_at: Some("2025-01-01T10:00:04.000Z".to_string()),
        cycles: 1,
        deleted: 2,
        recreated: 2,
        seconds: 3.0,
    });
    RunSummary {
        uuid: "3f2a9c1e-uuid".to_string(),
        run_id: "run-1".to_string(),
        config: "workloads/a&b/\"density\".yml".to_string(),
        outcome: RunOutcome::Completed,
        exit_code: 3,
        burner_version: "0.1.0".to_string(),
        k8s_version: Some("v1.36.0".to_string()),
        total_nodes: Some(3),
        started_at: "2025-01-01T10:00:00.000Z".to_string(),
        ended_at: "2025-01-01T10:00:20.000Z".to_string(),
        jobs: vec![pods, job("config<maps> & more", None, true)],
        thresholds: vec![
            ThresholdResult {
                job: "pods".to_string(),
                condition_type: "Ready".to_string(),
                metric: ThresholdMetric::P99,
                family: Family::Watch,
                threshold_ms: 5000.0,
                value_ms: Some(1400.0),
                passed: true,
            },
            ThresholdResult {
                job: "pods".to_string(),
                condition_type: "PodScheduled".to_string(),
                metric: ThresholdMetric::P99,
                family: Family::Server,
                threshold_ms: 500.0,
                value_ms: Some(2000.0),
                passed: false,
            },
        ],
        metrics: Default::default(),
    }
}

/// Per-pod rows as the run writes them; the watch never saw `PodReadyToStartContainers`, so
/// the watch family has five phases and the server family six.
fn pod_rows(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let ms = 1000 + 100 * i as u64;
            let watch = ms as f64 - 50.5;
            json!({
                "timestamp": "2025-01-01T10:00:01Z",
                "schedulingLatency": ms - 900,
                "readyToStartContainersLatency": ms - 300,
                "initializedLatency": ms - 300,
                "containersStartedLatency": ms,
                "containersReadyLatency": ms,
                "podReadyLatency": ms,
                "metricName": "podLatencyMeasurement",
                "uuid": "3f2a9c1e-uuid",
                "jobName": "pods",
                "jobIteration": i,
                "replica": 1,
                "namespace": "pods-0",
                "podName": format!("pod-{i}"),
                "nodeName": "node-1",
                "watchStart": "create",
                "firstSeenLatency": 3.25,
                "watchSchedulingLatency": watch - 900.0,
                "watchReadyToStartContainersLatency": null,
                "watchInitializedLatency": watch - 300.0,
                "watchContainersStartedLatency": watch,
                "watchContainersReadyLatency": watch,
                "watchPodReadyLatency": watch,
                "readyTimestamp": "2025-01-01T10:00:02.5Z",
            })
        })
        .collect()
}

fn job_seconds() -> Vec<Value> {
    (0..10)
        .map(|second| {
            json!({
                "metricName": "jobTimeseries",
                "uuid": "3f2a9c1e-uuid",
                "jobName": "pods",
                "second": second,
                "timestamp": format!("2025-01-01T10:00:{second:02}Z"),
                "requests": 4,
                "writes": if second < 2 { 2 } else { 0 },
                "errors": 0,
                "throttled": 0,
                "podsSeen": (2 * (second + 1)).min(5),
                "podsReady": (second + 1).min(5),
            })
        })
        .collect()
}

fn api_call_seconds() -> Vec<Value> {
    (0..10)
        .flat_map(|second| {
            ["create", "get"].map(|verb| {
                json!({
                    "metricName": "apiCallTimeseries",
                    "uuid": "3f2a9c1e-uuid",
                    "jobName": "pods",
                    "second": second,
                    "timestamp": format!("2025-01-01T10:00:{second:02}Z"),
                    "verb": verb,
                    "count": 3,
                    "P50": 5.0 + second as f64,
                    "P99": 20.0 + second as f64,
                })
            })
        })
        .collect()
}

fn write_json(path: &Path, value: &impl serde::Serialize) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// A run directory with the summary and the `pods` job's files.
fn run_directory(pods: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_json(&dir.path().join(SUMMARY_FILE), &run_summary());
    write_json(
        &dir.path().join("podLatencyMeasurement-pods.json"),
        &pod_rows(pods),
    );
    write_json(&dir.path().join("jobTimeseries-pods.json"), &job_seconds());
    write_json(
        &dir.path().join("apiCallTimeseries-pods.json"),
        &api_call_seconds(),
    );
    dir
}

fn write_and_read_report(dir: &Path) -> String {
    let path = write_report(dir, None).unwrap();
    assert_eq!(path, dir.join(REPORT_FILE));
    std::fs::read_to_string(path).unwrap()
}

fn parse(html: &str) -> Document<'_> {
    let options = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(html, options).expect("the report is well-formed XML")
}

fn element_by_id<'a, 'input>(document: &'a Document<'input>, id: &str) -> Node<'a, 'input> {
    document
        .descendants()
        .find(|n| n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no element with id {id}"))
}

fn elements<'a, 'input>(
    node: Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.descendants().filter(move |n| n.has_tag_name(name))
}

fn text(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

fn last_cell<'a, 'input>(row: Node<'a, 'input>) -> Node<'a, 'input> {
    elements(row, "td").last().expect("a row with cells")
}

fn body_rows<'a, 'input>(table: Node<'a, 'input>) -> Vec<Node<'a, 'input>> {
    let body = elements(table, "tbody").next().expect("a table body");
    elements(body, "tr").collect()
}

fn job_section<'a, 'input>(document: &'a Document<'input>, job: &str) -> Node<'a, 'input> {
    elements(document.root(), "section")
        .find(|n| n.attribute("data-job") == Some(job))
        .unwrap_or_else(|| panic!("no section for job {job}"))
}

fn charts<'a, 'input>(section: Node<'a, 'input>) -> Vec<Node<'a, 'input>> {
    elements(section, "svg")
        .filter(|n| n.attribute("class") == Some("chart"))
        .collect()
}

fn chart_title(chart: Node) -> String {
    text(
        elements(chart, "title")
            .next()
            .expect("every chart has a title"),
    )
}

fn series_names(chart: Node) -> Vec<String> {
    elements(chart, "polyline")
        .filter_map(|n| n.attribute("data-series"))
        .map(str::to_string)
        .collect()
}

#[test]
fn header_shows_the_run_and_escapes_its_text() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let facts = text(element_by_id(&document, "run"));
    for expected in [
        "3f2a9c1e-uuid",
        "workloads/a&b/\"density\".yml",
        "completed",
        "v1.36.0",
        "2025-01-01T10:00:20.000Z",
    ] {
        assert!(facts.contains(expected), "{expected} missing from {facts}");
    }
}

#[test]
fn job_table_has_one_row_per_job() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let rows = body_rows(element_by_id(&document, "jobs"));
    assert_eq!(rows.len(), 2);
    let first: Vec<String> = elements(rows[0], "td").map(text).collect();
    assert_eq!(first[0], "pods");
    assert!(
        first.contains(&"5 / 5".to_string()),
        "pods ready: {first:?}"
    );
    assert!(
        first.contains(&"900 / 1400".to_string()),
        "watch Ready: {first:?}"
    );
    assert!(
        first.contains(&"1000 / 2000".to_string()),
        "server Ready: {first:?}"
    );
    assert!(
        first.contains(&"create 20.0".to_string()),
        "API P99: {first:?}"
    );
    assert_eq!(first.last().unwrap(), "failed");
    let second: Vec<String> = elements(rows[1], "td").map(text).collect();
    assert_eq!(second[0], "config<maps> & more");
    assert_eq!(second.last().unwrap(), "passed");
}

#[test]
fn thresholds_table_marks_an_exceeded_threshold_failed() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let rows = body_rows(element_by_id(&document, "thresholds"));
    assert_eq!(rows.len(), 2);
    let failed = rows
        .iter()
        .find(|row| text(**row).contains("PodScheduled"))
        .unwrap();
    assert_eq!(last_cell(*failed).attribute("class"), Some("failed"));
    assert_eq!(text(last_cell(*failed)), "failed");
    assert!(text(*failed).contains("server"));
    let passed = rows
        .iter()
        .find(|row| text(**row).contains("Ready"))
        .unwrap();
    assert_eq!(last_cell(*passed).attribute("class"), Some("passed"));
}

#[test]
fn job_with_pods_gets_every_chart() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let charts = charts(job_section(&document, "pods"));
    let kinds: Vec<&str> = charts
        .iter()
        .map(|c| c.attribute("data-chart").unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "pod-latency-cdf",
            "pod-latency-cdf",
            "creation-rate",
            "pods-ready",
            "api-latency"
        ]
    );
    for chart in &charts {
        assert_eq!(chart.tag_name().namespace(), Some(SVG_NAMESPACE));
        assert!(!chart_title(*chart).is_empty());
    }

    let cdf = |family: &str| {
        *charts
            .iter()
            .find(|c| chart_title(**c).contains(family))
            .unwrap_or_else(|| panic!("no {family} CDF"))
    };
    let server_phases: Vec<String> = POD_PHASES.iter().map(|p| p.to_string()).collect();
    assert_eq!(series_names(cdf("server")), server_phases);
    let watch_phases: Vec<String> = server_phases
        .iter()
        .filter(|p| *p != "PodReadyToStartContainers")
        .cloned()
        .collect();
    assert_eq!(series_names(cdf("watch")), watch_phases);

    assert_eq!(
        series_names(charts[4]),
        ["create P50", "create P99", "get P50", "get P99"]
    );
    // The churn phase is shaded on the timeseries charts.
    assert_eq!(
        elements(charts[3], "rect")
            .filter(|r| r.attribute("class") == Some("band"))
            .count(),
        1
    );
}

#[test]
fn job_without_pods_gets_sentences_instead_of_charts() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let section = job_section(&document, "config<maps> & more");
    assert!(charts(section).is_empty());
    let sentences: Vec<String> = elements(section, "p")
        .filter(|p| p.attribute("class") == Some("no-data"))
        .map(text)
        .collect();
    assert_eq!(sentences.len(), 4, "{sentences:?}");
    assert!(sentences[0].contains("no pod startup latency"));
}

#[test]
fn report_references_nothing_outside_itself() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    for scheme in ["http://", "https://"] {
        for (at, _) in html.match_indices(scheme) {
            assert!(
                html[at..].starts_with(SVG_NAMESPACE) && html[..at].ends_with("xmlns=\""),
                "a reference outside the page: {}",
                &html[at..(at + 60).min(html.len())]
            );
        }
    }
    for node in document.descendants() {
        assert!(
            !["script", "link", "img", "iframe"].contains(&node.tag_name().name()),
            "a <{}> element",
            node.tag_name().name()
        );
        if let Some(href) = node.attribute("href") {
            assert!(href.starts_with('#'), "a link outside the page: {href}");
        }
        assert!(node.attribute("src").is_none());
    }
    assert!(!html.contains("url(") && !html.contains("@import"));
}

#[test]
fn report_of_many_pods_stays_small() {
    let dir = run_directory(20_000);
    let html = write_and_read_report(dir.path());
    assert!(html.len() < 200_000, "the report has {} bytes", html.len());
    let document = parse(&html);
    for polyline in elements(document.root(), "polyline") {
        let points = polyline.attribute("points").unwrap().split(' ').count();
        assert!(points <= 300, "a series of {points} points");
    }
}

#[test]
fn output_path_overrides_the_default() {
    let dir = run_directory(5);
    let output = dir.path().join("elsewhere.html");
    assert_eq!(write_report(dir.path(), Some(&output)).unwrap(), output);
    parse(&std::fs::read_to_string(&output).unwrap());
    assert!(!dir.path().join(REPORT_FILE).exists());
}

#[test]
fn directory_without_summary_is_not_a_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let error = write_report(dir.path(), None).unwrap_err();
    assert!(matches!(error, ReportError::NotARunDirectory { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not a burner run directory: no summary.json",
            dir.path().display()
        )
    );
}

#[test]
fn unparsable_file_is_named_in_the_error() {
    let dir = run_directory(5);
    let broken = dir.path().join("jobTimeseries-pods.json");
    std::fs::write(&broken, "[{\"second\": ").unwrap();
    let error = write_report(dir.path(), None).unwrap_err();
    assert!(matches!(error, ReportError::Parse { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("cannot parse {}", broken.display())
    );
}

#[test]
fn metrics_from_prometheus_get_a_chart_each_with_the_job_windows_shaded() {
    let dir = run_directory(5);
    let mut summary = run_summary();
    summary.metrics = serde_json::from_value(json!({
        "endpoints": [{
            "url": "http://127.0.0.1:9090",
            "alias": "indexer-0",
            "documents": {"apiserverLatencyP99": 6, "etcdObjects-start": 1},
            "failedQueries": []
        }],
        "alerts": []
    }))
    .unwrap();
    write_json(&dir.path().join(SUMMARY_FILE), &summary);
    let doc = |at: &str, verb: &str, value: f64| {
        json!({
            "timestamp": format!("2025-01-01T10:00:{at}.000Z"),
            "labels": {"verb": verb},
            "value": value,
            "uuid": "u",
            "query": "q",
            "metricName": "apiserverLatencyP99",
            "jobName": "pods"
        })
    };
    let latency: Vec<Value> = ["02", "05", "08"]
        .iter()
        .flat_map(|at| [doc(at, "POST", 0.02), doc(at, "GET", 0.004)])
        .collect();
    write_json(&dir.path().join("apiserverLatencyP99.json"), &latency);
    let mut objects = doc("00", "", 1200.0);
    objects["labels"] = json!({"resource": "pods"});
    objects["metricName"] = json!("etcdObjects-start");
    write_json(&dir.path().join("etcdObjects-start.json"), &vec![objects]);

    let html = write_and_read_report(dir.path());
    let document = parse(&html);
    let section = element_by_id(&document, "control-plane");
    let drawn = charts(section);
    assert_eq!(drawn.len(), 1);
    assert_eq!(drawn[0].attribute("data-chart"), Some("control-plane"));
    assert_eq!(chart_title(drawn[0]), "apiserverLatencyP99");
    let mut series = series_names(drawn[0]);
    series.sort();
    assert_eq!(series, ["GET", "POST"]);
    let bands: Vec<String> = elements(drawn[0], "rect")
        .filter(|r| r.attribute("class") == Some("band"))
        .map(text)
        .collect();
    assert_eq!(bands, ["pods", "config<maps> & more"]);
    let table = elements(section, "table")
        .find(|t| t.attribute("data-metric") == Some("etcdObjects-start"))
        .expect("the instant metric as a table");
    let rows = body_rows(table);
    assert_eq!(rows.len(), 1);
    assert_eq!(text(rows[0]), "pods1200.0000");
}

#[test]
fn a_run_without_metrics_has_no_control_plane_section() {
    let dir = run_directory(5);
    let html = write_and_read_report(dir.path());
    assert!(!html.contains("id=\"control-plane\""));
}
