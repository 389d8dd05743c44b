//! `burner compare` on two run directories: the deltas on stdout, and an exit code that
//! follows the threshold, so CI can gate on it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use burner::results::summary::{
    ApiCallSummary, JobSummary, PhaseQuantiles, PodLatencySummary, Quantiles, RunOutcome,
    RunSummary, SUMMARY_FILE,
};

/// A run whose pods became Ready at `ready_p99` ms at the 99th percentile.
fn run(ready_p99: f64) -> RunSummary {
    let ready = Quantiles {
        count: 100,
        p50: 2000.0,
        p95: ready_p99 - 10.0,
        p99: ready_p99,
        p999: ready_p99,
        min: 1990.0,
        max: ready_p99,
        avg: 2010.0,
    };
    let phases = BTreeMap::from([(
        "Ready".to_string(),
        PhaseQuantiles {
            watch: Some(ready),
            server: None,
        },
    )]);
    RunSummary {
        uuid: "u".into(),
        run_id: "r".into(),
        config: "cfg.yml".into(),
        outcome: RunOutcome::Completed,
        exit_code: 0,
        burner_version: "0".into(),
        k8s_version: None,
        total_nodes: None,
        started_at: "2026-11-28T00:00:00.000Z".into(),
        ended_at: "2026-11-28T00:01:00.000Z".into(),
        jobs: vec![JobSummary {
            name: "density".into(),
            job_type: "create".into(),
            started_at: None,
            ended_at: None,
            elapsed_seconds: 60.0,
            expected: 100,
            done: 100,
            namespaces: 1,
            errors: 0,
            achieved_rate: 20.0,
            ready_seconds: Some(3.0),
            ready: true,
            verification_passed: Some(true),
            stopped: false,
            passed: true,
            churn: None,
            pod_latency: Some(PodLatencySummary {
                pods: 100,
                ready: 100,
                phases,
            }),
            api_calls: ApiCallSummary::default(),
        }],
        thresholds: Vec::new(),
        metrics: Default::default(),
    }
}

fn write_run(dir: &Path, summary: &RunSummary) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(SUMMARY_FILE),
        serde_json::to_string(summary).unwrap(),
    )
    .unwrap();
}

fn compare(a: &Path, b: &Path, threshold: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burner"))
        .arg("compare")
        .args([a, b])
        .args(["--threshold", threshold])
        .output()
        .unwrap()
}

#[test]
fn a_regression_beyond_the_threshold_exits_1_and_within_it_0() {
    let dir = tempfile::tempdir().unwrap();
    let (baseline, candidate) = (dir.path().join("a"), dir.path().join("b"));
    write_run(&baseline, &run(2100.0));
    // Ready P99 20% higher.
    write_run(&candidate, &run(2520.0));

    let strict = compare(&baseline, &candidate, "10%");
    let printed = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{printed}");
    let row = printed
        .lines()
        .find(|l| l.contains("Ready P99 watch"))
        .unwrap_or_else(|| panic!("no Ready P99 row in:\n{printed}"));
    assert!(
        row.contains("+20.0%") && row.contains("REGRESSION"),
        "{row}"
    );
    assert!(printed.contains("1 regression beyond 10%"), "{printed}");

    let lenient = compare(&baseline, &candidate, "25%");
    let printed = String::from_utf8_lossy(&lenient.stdout);
    assert_eq!(lenient.status.code(), Some(0), "{printed}");
    assert!(printed.contains("no regression beyond 25%"), "{printed}");

    // The other way round it is an improvement.
    let better = compare(&candidate, &baseline, "10%");
    assert_eq!(better.status.code(), Some(0));
}

#[test]
fn a_folder_that_is_not_a_run_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = compare(dir.path(), dir.path(), "10%");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains(SUMMARY_FILE), "{stderr}");
    let bad = compare(dir.path(), dir.path(), "ten");
    assert_eq!(bad.status.code(), Some(2), "clap refuses a bad threshold");
}
