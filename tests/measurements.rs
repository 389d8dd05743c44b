//! Measurements against a ground truth: hollow nodes inject a known pod start delay, and
//! the pod startup latency burner reports must match it.
//!
//! The tests of this binary take turns (one fleet of hollow nodes at a time), so each one
//! knows which nodes its pods run on and what delay they inject.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use burner::hollow::{Delay, HollowFleet};
use burner::measure::PodQuantilesRow;
use burner::measure::pod_latency::{PodLatencyRow, WatchStart};
use burner::results::summary::{Family, RunOutcome, RunSummary};
use burner::{RunReport, RunSettings};

/// One fleet of hollow nodes at a time.
static ONE_FLEET: Mutex<()> = Mutex::new(());

fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workloads")
        .join(name)
        .join("config.yml")
}

fn uuid(test: u32) -> String {
    format!("{test:08x}-aaaa-4bbb-8ccc-{:012}", std::process::id())
}

/// Runs `config` through the library with a fleet of hollow nodes whose pods start after
/// `start_delay`.
fn run_with_fleet(
    test: u32,
    start_delay: Delay,
    config: &Path,
    set: &[&str],
    output_dir: &Path,
) -> RunReport {
    let mut options = common::hollow_options(format!("measure-{test}"), 10);
    options.pod_delays.start = start_delay;
    // Pods of Jobs stay Running a moment, so the watch sees them Ready before they end.
    options.pod_delays.run = Delay::Fixed(Duration::from_secs(1));
    let load = burner::config::LoadOptions {
        uuid: uuid(test),
        set: set.iter().map(|s| s.to_string()).collect(),
        ..burner::config::LoadOptions::default()
    };
    let config = burner::config::load(config, &load).expect("the config loads");
    let settings = RunSettings {
        output_dir: Some(output_dir.to_path_buf()),
        timeout: Duration::from_secs(600),
        ..RunSettings::default()
    };
    common::run_on_harness(async move {
        let client = common::client().await;
        let fleet = HollowFleet::start(client.clone(), options).await.unwrap();
        let report = burner::run(&client, &config, &settings).await;
        fleet.shutdown().await.unwrap();
        report.expect("the run finishes")
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .deserialize()
        .map(|row| row.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The accuracy bar: 1,000 pods of kubelet-density on nodes that start every pod 2,000 ms
/// after accepting it. The watch family must find the delay with little on top; the
/// server family (one-second timestamps) is reported beside it.
#[test]
fn watch_ready_latency_of_1000_pods_matches_an_injected_2s_start_delay() {
    let _turn = ONE_FLEET.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let report = run_with_fleet(
        1,
        Delay::Fixed(Duration::from_millis(2000)),
        &workload("kubelet-density"),
        &["jobs.0.jobIterations=1000"],
        dir.path(),
    );
    let job = report.summary.job("kubelet-density").expect("the job ran");
    assert!(job.passed, "{:?}", report.summary);
    let latency = job.pod_latency.as_ref().expect("podLatency is on");
    assert_eq!((latency.pods, latency.ready), (1000, 1000));
    let watch = latency.quantiles("Ready", Family::Watch).unwrap();
    assert!(
        (2000.0..=2100.0).contains(&watch.p50),
        "watch Ready {watch:?}"
    );
    assert!(
        (2000.0..=2250.0).contains(&watch.p99),
        "watch Ready {watch:?}"
    );
    assert!(
        watch.min >= 2000.0,
        "nothing can be faster than the delay: {watch:?}"
    );
    let server = latency.quantiles("Ready", Family::Server).unwrap();
    eprintln!("Ready, watch: {watch:?}\nReady, server: {server:?}");
    // Whole seconds on both ends: the delay shows as 1, 2 or 3 s.
    assert!(
        (1000.0..=3000.0).contains(&server.p50),
        "server Ready {server:?}"
    );
    assert_eq!(server.p50 % 1000.0, 0.0, "{server:?}");
    let scheduled = latency.quantiles("PodScheduled", Family::Watch).unwrap();
    assert!(scheduled.p50 < watch.p50 - 1900.0, "{scheduled:?}");

    // The per-pod rows: one per pod, the same in JSON and CSV.
    let stem = dir.path().join("podLatencyMeasurement-kubelet-density");
    let rows: Vec<PodLatencyRow> = read_json(&stem.with_extension("json"));
    assert_eq!(rows.len(), 1000);
    assert_eq!(read_csv::<PodLatencyRow>(&stem.with_extension("csv")), rows);
    assert!(rows.iter().all(|r| r.watch_start == WatchStart::Create));
    let ready_ms = |r: &PodLatencyRow| r.watch_pod_ready_latency.unwrap();
    assert!(rows.iter().all(|r| ready_ms(r) >= 2000.0));
    assert!(
        rows.iter()
            .all(|r| r.pod_ready_latency.is_some() && r.node_name.is_some())
    );

    // The quantile rows: kube-burner's fields hold the server family.
    let stem = dir
        .path()
        .join("podLatencyQuantilesMeasurement-kubelet-density");
    let quantiles: Vec<PodQuantilesRow> = read_json(&stem.with_extension("json"));
    assert_eq!(
        read_csv::<PodQuantilesRow>(&stem.with_extension("csv")),
        quantiles
    );
    let ready = quantiles
        .iter()
        .find(|q| q.quantile_name == "Ready")
        .unwrap();
    assert_eq!(ready.p50 as f64, server.p50);
    assert_eq!(ready.watch_p99, Some(watch.p99));
    assert_eq!(ready.count, 1000);

    // The summary on disk is the one returned.
    let on_disk: RunSummary = read_json(&dir.path().join("summary.json"));
    assert_eq!(on_disk, report.summary);
}

/// A log-normal start delay of median 2 s: the measured median follows the distribution's.
#[test]
fn a_log_normal_start_delay_is_measured_at_its_median() {
    let _turn = ONE_FLEET.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let report = run_with_fleet(
        2,
        Delay::LogNormal {
            median: Duration::from_millis(2000),
            sigma: 0.25,
        },
        &workload("kubelet-density"),
        &[
            "jobs.0.jobIterations=1000",
            "jobs.0.qps=50",
            "jobs.0.burst=50",
        ],
        dir.path(),
    );
    let job = report.summary.job("kubelet-density").unwrap();
    let latency = job.pod_latency.as_ref().unwrap();
    assert_eq!(latency.ready, 1000);
    let watch = latency.quantiles("Ready", Family::Watch).unwrap();
    eprintln!("Ready, watch: {watch:?}");
    assert!(
        (watch.p50 - 2000.0).abs() <= 100.0,
        "median {} ms is not within 5% of 2000 ms: {watch:?}",
        watch.p50
    );
    // A spread distribution shows as one.
    assert!(watch.p99 > 2800.0 && watch.min < 1500.0, "{watch:?}");
}

const CONTROLLERS: &str = r#"
global:
  gc: true
  measurements:
    - name: podLatency
jobs:
  - name: controllers
    jobIterations: 1
    qps: 20
    burst: 20
    namespace: measure-controllers-{{ .UUID | trunc 8 }}
    waitWhenFinished: true
    objects:
      - objectTemplate: deployment.yml
        replicas: 1
      - objectTemplate: job.yml
        replicas: 1
"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.k8s.io/pause:3.10
"#;

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: batch
spec:
  parallelism: 5
  completions: 5
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: batch
          image: registry.k8s.io/pause:3.10
"#;

/// Pods that controllers make are measured too, from the moment the watch first sees
/// them.
#[test]
fn pods_of_a_deployment_and_a_job_are_measured_from_their_first_sighting() {
    let _turn = ONE_FLEET.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yml"), CONTROLLERS).unwrap();
    std::fs::write(dir.path().join("deployment.yml"), DEPLOYMENT).unwrap();
    std::fs::write(dir.path().join("job.yml"), JOB).unwrap();
    let out = dir.path().join("results");
    let report = run_with_fleet(
        3,
        Delay::Fixed(Duration::from_millis(500)),
        &dir.path().join("config.yml"),
        &[],
        &out,
    );
    let job = report.summary.job("controllers").unwrap();
    assert!(job.passed, "{:?}", report.summary);
    let latency = job.pod_latency.as_ref().unwrap();
    assert_eq!((latency.pods, latency.ready), (10, 10), "{latency:?}");
    let watch = latency.quantiles("Ready", Family::Watch).unwrap();
    assert!(watch.min >= 500.0, "{watch:?}");
    let rows: Vec<PodLatencyRow> = read_json(&out.join("podLatencyMeasurement-controllers.json"));
    let of = |prefix: &str| {
        rows.iter()
            .filter(|r| r.pod_name.starts_with(prefix))
            .count()
    };
    assert_eq!((of("web-"), of("batch-")), (5, 5), "{rows:?}");
    assert!(rows.iter().all(|r| r.watch_start == WatchStart::FirstSeen));
    assert!(rows.iter().all(|r| r.first_seen_latency.is_none()));
    // The API calls of the job: two creates of workloads and one namespace.
    let creates = &job.api_calls.by_verb["create"];
    assert_eq!(creates.count, 3, "{:?}", job.api_calls);
}

const THRESHOLDS: &str = r#"
global:
  gc: true
  measurements:
    - name: podLatency
      thresholds:
        - conditionType: Ready
          metric: P99
          threshold: 1ms
        - conditionType: Ready
          metric: Max
          threshold: 1h
          family: server
jobs:
  - name: limited
    jobIterations: 5
    qps: 20
    burst: 20
    namespace: measure-limited-{{ .UUID | trunc 8 }}
    waitWhenFinished: true
    objects:
      - objectTemplate: pod.yml
        replicas: 1
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: limited-{{ .Iteration }}
spec:
  containers:
    - name: app
      image: registry.k8s.io/pause:3.10
"#;

/// A threshold the run exceeds: exit code 4, and every result is written all the same.
#[test]
fn an_exceeded_threshold_exits_4_with_every_file_written() {
    let _turn = ONE_FLEET.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yml"), THRESHOLDS).unwrap();
    std::fs::write(dir.path().join("pod.yml"), POD).unwrap();
    let out = dir.path().join("results");
    let kubeconfig = common::cluster().kubeconfig.clone();
    let mut options = common::hollow_options("measure-4", 2);
    options.pod_delays.start = Delay::Fixed(Duration::from_millis(200));
    let fleet = common::run_on_harness(async move {
        HollowFleet::start(common::client().await, options)
            .await
            .unwrap()
    });
    let run = Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(["init", "--uuid", &uuid(4), "--output", "json", "-c"])
        .arg(dir.path().join("config.yml"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    common::run_on_harness(async move { fleet.shutdown().await.unwrap() });
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("measurement thresholds were exceeded"),
        "{stderr}"
    );

    // stdout is the summary as JSON, the same as summary.json.
    let printed: RunSummary = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    let written: RunSummary = read_json(&out.join("summary.json"));
    assert_eq!(printed, written);
    assert_eq!(
        (written.outcome, written.exit_code),
        (RunOutcome::Completed, 4)
    );
    let verdicts: Vec<(Family, bool)> = written
        .thresholds
        .iter()
        .map(|t| (t.family, t.passed))
        .collect();
    assert_eq!(verdicts, [(Family::Watch, false), (Family::Server, true)]);
    assert!(written.jobs[0].passed, "the job itself did its work");

    for file in [
        "jobSummary.json",
        "summary.txt",
        "podLatencyMeasurement-limited.json",
        "podLatencyMeasurement-limited.csv",
        "podLatencyQuantilesMeasurement-limited.json",
        "podLatencyQuantilesMeasurement-limited.csv",
        "apiCallLatency-limited.json",
        "apiCallLatency-limited.csv",
        "jobTimeseries-limited.json",
        "apiCallTimeseries-limited.json",
    ] {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    let job_summary: Vec<serde_json::Value> = read_json(&out.join("jobSummary.json"));
    assert_eq!(
        job_summary[0]["passed"], false,
        "as kube-burner: the exit code is not 0"
    );
    let errors = job_summary[0]["executionErrors"].as_str().unwrap();
    assert!(
        errors.contains("Ready P99 (watch) exceeded 1 ms"),
        "{errors}"
    );
    let text = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(text.contains("EXCEEDED"), "{text}");
}
