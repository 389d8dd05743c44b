//! Control-plane metrics and alerts from a real Prometheus that scrapes the local cluster
//! (`burner local up --prometheus`): a kubelet-density run with the shipped control-plane
//! profile writes plausible apiserver latency documents inside the job's window, `burner
//! index` over that window writes the very same documents, and alert profiles decide the
//! exit code: 3 when an alert of severity error fires (every result still written), 0
//! when none does. A PromQL syntax error stops `init` before it writes anything.
//!
//! Needs Debian's `prometheus` package (`.ci/run` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::{Duration, SystemTime};

use burner::config::metrics::{EndpointAuth, MetricsEndpoint};
use burner::hollow::HollowFleet;
use burner::local::PrometheusAccess;
use burner::metrics::prometheus::Prometheus;
use burner::results::summary::RunSummary;
use serde_json::Value;

/// The metric whose documents the tests look at: apiserver request latency P99 by verb,
/// resource and scope, from `workloads/metrics/control-plane.yml`.
const LATENCY: &str = "apiLatencyP99";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shared cluster's Prometheus, once it holds a few scrapes of the apiserver: rates
/// over a job's window need at least two samples, and the cluster has just started.
fn prometheus() -> &'static PrometheusAccess {
    static HISTORY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let access = common::cluster_with_prometheus()
        .prometheus
        .as_ref()
        .expect("the shared cluster runs Prometheus (BURNER_TEST_KUBECONFIG clusters have none)");
    HISTORY.get_or_init(|| wait_for_scrapes(access, 3));
    access
}

fn wait_for_scrapes(access: &PrometheusAccess, scrapes: u32) {
    let endpoint = MetricsEndpoint {
        url: access.url.clone(),
        auth: EndpointAuth::Basic {
            username: access.username.clone(),
            password: access.password.clone(),
        },
        step: Duration::from_secs(5),
        skip_tls_verify: true,
        metric_profiles: Vec::new(),
        alert_profiles: Vec::new(),
        alias: "test".into(),
    };
    let client = Prometheus::new(&endpoint).expect("a Prometheus client");
    common::run_on_harness(async move {
        let query = r#"count_over_time(up{job="apiserver"}[1m])"#;
        for _ in 0..60 {
            let series = client
                .instant(query, SystemTime::now())
                .await
                .unwrap_or_default();
            let count = series
                .first()
                .and_then(|s| s.samples.first())
                .map_or(0.0, |s| s.1);
            if count >= f64::from(scrapes) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("Prometheus did not scrape the apiserver {scrapes} times within a minute");
    });
}

/// A kubelet-density job of `pods` pods in a namespace of its own, with the control-plane
/// profile and the alert rules `alerts` (YAML) on the local Prometheus.
fn write_config(dir: &Path, test: &str, pods: u32, alerts: &str, query: Option<&str>) -> PathBuf {
    let access = prometheus();
    std::fs::write(dir.join("alerts.yml"), alerts).unwrap();
    let metrics = match query {
        Some(query) => {
            let profile = format!("- query: '{query}'\n  metricName: broken\n");
            std::fs::write(dir.join("broken.yml"), profile).unwrap();
            "broken.yml".to_string()
        }
        None => repo("workloads/metrics/control-plane.yml")
            .display()
            .to_string(),
    };
    let config = format!(
        r#"global:
  gc: true
  measurements:
    - name: podLatency
metricsEndpoints:
  - endpoint: {url}
    username: {username}
    password: {password}
    step: 5s
    metrics: [{metrics}]
    alerts: [alerts.yml]
jobs:
  - name: density
    jobIterations: {pods}
    qps: 20
    burst: 20
    namespacedIterations: false
    namespace: metrics-{test}
    waitWhenFinished: true
    podWait: false
    preLoadImages: false
    objects:
      - objectTemplate: {template}
        replicas: 1
        inputVars:
          containerImage: registry.k8s.io/pause:3.10
"#,
        url = access.url,
        username = access.username,
        password = access.password,
        template = repo("workloads/kubelet-density/templates/pod.yml").display(),
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    path
}

fn burner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(args)
        .output()
        .expect("burner runs")
}

/// Runs `burner init` on the shared cluster while hollow nodes serve its pods; each run
/// gets a uuid of its own, so the tests' objects never meet.
fn init(test: &str, config: &Path, out: &Path) -> Output {
    let kubeconfig = common::cluster_with_prometheus().kubeconfig.clone();
    let (config, out) = (config.to_path_buf(), out.to_path_buf());
    let prefix = format!("metrics-{test}");
    common::run_on_harness(async move {
        let client = common::client().await;
        let fleet = HollowFleet::start(client, common::hollow_options(prefix, 4))
            .await
            .expect("hollow nodes start");
        let output = tokio::task::spawn_blocking(move || {
            burner(&[
                "init",
                "-c",
                config.to_str().unwrap(),
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--output-dir",
                out.to_str().unwrap(),
            ])
        })
        .await
        .expect("init finishes");
        fleet.shutdown().await.expect("hollow nodes stop");
        output
    })
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn seconds(timestamp: &str) -> f64 {
    humantime::parse_rfc3339_weak(timestamp)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_control_plane_profile_gives_latency_inside_the_job_window_and_index_repeats_it() {
    let dir = tempfile::tempdir().unwrap();
    let never_fires = "- expr: vector(1) > 2\n  description: never\n  severity: error\n";
    let config = write_config(dir.path(), "window", 200, never_fires, None);
    let out = dir.path().join("run");
    let output = init("window", &config, &out);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));

    let summary: RunSummary = serde_json::from_value(read_json(&out.join("summary.json"))).unwrap();
    let job = summary.job("density").expect("the job ran");
    let (start, end) = (
        job.started_at.clone().expect("a start"),
        job.ended_at.clone().expect("an end"),
    );
    let endpoint = &summary.metrics.endpoints[0];
    assert!(
        endpoint.failed_queries.is_empty(),
        "{:?}",
        endpoint.failed_queries
    );
    assert!(
        summary.metrics.alerts.is_empty(),
        "{:?}",
        summary.metrics.alerts
    );
    assert_eq!(read_json(&out.join("alert.json")), Value::Array(Vec::new()));

    let documents = read_json(&out.join(format!("{LATENCY}.json")));
    let documents = documents.as_array().expect("an array of documents");
    assert!(
        !documents.is_empty(),
        "no {LATENCY} documents; documents by metric: {:?}",
        endpoint.documents
    );
    let (first, last) = (seconds(&start), seconds(&end));
    for doc in documents {
        let value = doc["value"].as_f64().expect("a number");
        assert!(value.is_finite() && value >= 0.0, "{doc}");
        let at = seconds(doc["timestamp"].as_str().unwrap());
        assert!(first <= at && at <= last, "{doc} outside {start}..{end}");
        assert_eq!(doc["jobName"], "density");
        assert_eq!(doc["metricName"], LATENCY);
        assert!(doc["labels"]["verb"].is_string(), "{doc}");
    }
    // The pods were created: the apiserver's POST latency is among the series.
    assert!(
        documents.iter().any(|d| d["labels"]["verb"] == "POST"),
        "no POST series in {documents:?}"
    );

    let access = prometheus();
    let again = dir.path().join("index");
    let profile = repo("workloads/metrics/control-plane.yml");
    let output = burner(&[
        "index",
        "-u",
        &access.url,
        "--username",
        &access.username,
        "-p",
        &access.password,
        "-m",
        profile.to_str().unwrap(),
        "-s",
        "5s",
        "--start",
        &start,
        "--end",
        &end,
        "-j",
        "density",
        "--uuid",
        &summary.uuid,
        "--output-dir",
        again.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    for name in endpoint.documents.keys() {
        assert_eq!(
            read_json(&again.join(format!("{name}.json"))),
            read_json(&out.join(format!("{name}.json"))),
            "`burner index` wrote other {name} documents than the run"
        );
    }
}

#[test]
fn an_error_alert_that_always_fires_exits_3_with_every_result_written() {
    let dir = tempfile::tempdir().unwrap();
    let always =
        "- expr: vector(1) > 0\n  description: 'always fires ({{$value}})'\n  severity: error\n";
    let config = write_config(dir.path(), "alert", 20, always, None);
    let out = dir.path().join("run");
    let output = init("alert", &config, &out);
    assert_eq!(output.status.code(), Some(3), "{}", explain(&output));

    let alerts = read_json(&out.join("alert.json"));
    let alerts = alerts.as_array().expect("an array of alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["severity"], "error");
    assert_eq!(alerts[0]["jobName"], "density");
    assert_eq!(alerts[0]["description"], "always fires (1)");
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["exitCode"], 3);
    assert_eq!(summary["outcome"], "completed");
    for file in [
        "jobSummary.json",
        "podLatencyMeasurement-density.json",
        "podLatencyQuantilesMeasurement-density.json",
        "summary.txt",
        &format!("{LATENCY}.json"),
    ] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("always fires (1)"),
        "{}",
        explain(&output)
    );
}

#[test]
fn a_promql_syntax_error_stops_init_before_it_writes_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "syntax", 5, "[]\n", Some("sum(rate(up[1m])"));
    let out = dir.path().join("run");
    let output = init("syntax", &config, &out);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.yml"), "{stderr}");
    assert!(stderr.contains("parse error"), "{stderr}");
    assert!(!out.exists(), "the refused run wrote {}", out.display());
}

#[test]
fn a_critical_alert_stops_the_run_after_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let critical = "- expr: vector(1) > 0\n  description: stop now\n  severity: critical\n";
    let config = write_config(dir.path(), "critical", 10, critical, None);
    // A second job, which the critical alert after the first must keep from running.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "  - name: never-runs\n    jobIterations: 1\n    qps: 5\n    burst: 5\n    namespace: metrics-critical-second\n    preLoadImages: false\n    objects:\n      - objectTemplate: ",
    );
    text.push_str(&format!(
        "{}\n        replicas: 1\n        inputVars:\n          containerImage: registry.k8s.io/pause:3.10\n",
        repo("workloads/kubelet-density/templates/pod.yml").display()
    ));
    std::fs::write(&config, text).unwrap();
    let out = dir.path().join("run");
    let output = init("critical", &config, &out);
    assert_eq!(output.status.code(), Some(3), "{}", explain(&output));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["outcome"], "stoppedByAlert");
    let jobs: Vec<&str> = summary["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["density"]);
    assert_eq!(
        read_json(&out.join("alert.json"))[0]["severity"],
        "critical"
    );
}

#[test]
fn check_alerts_exits_1_on_an_error_alert_0_on_none_and_names_an_unreachable_endpoint() {
    let access = prometheus();
    let dir = tempfile::tempdir().unwrap();
    let check = |url: &str, rule: &str| {
        let file = dir.path().join("alerts.yml");
        std::fs::write(&file, rule).unwrap();
        let end = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        burner(&[
            "check-alerts",
            "-u",
            url,
            "--username",
            &access.username,
            "-p",
            &access.password,
            "-a",
            file.to_str().unwrap(),
            "-s",
            "5s",
            "--start",
            &(end - 30).to_string(),
            "--end",
            &end.to_string(),
        ])
    };
    let fired = check(
        &access.url,
        "- expr: up{job=\"apiserver\"} > 0\n  description: '{{$labels.job}} is up'\n  severity: error\n",
    );
    assert_eq!(fired.status.code(), Some(1), "{}", explain(&fired));
    assert!(
        String::from_utf8_lossy(&fired.stdout).contains("apiserver is up"),
        "{}",
        explain(&fired)
    );
    let quiet = check(
        &access.url,
        "- expr: up{job=\"apiserver\"} > 1\n  description: never\n  severity: error\n",
    );
    assert_eq!(quiet.status.code(), Some(0), "{}", explain(&quiet));
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("no alert fired"));
    let nowhere = check(
        "http://127.0.0.1:9",
        "- expr: up > 0\n  description: any\n  severity: error\n",
    );
    assert_eq!(nowhere.status.code(), Some(1), "{}", explain(&nowhere));
    let stderr = String::from_utf8_lossy(&nowhere.stderr);
    assert!(
        stderr.contains("http://127.0.0.1:9") && stderr.contains("no answer"),
        "{stderr}"
    );
}
