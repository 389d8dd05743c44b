//! Every workload shipped in `workloads/` runs with `burner init` on the local cluster with
//! hollow nodes: all jobs succeed and verify, the jobs that measure pod latency report it,
//! and the run's garbage collection leaves no namespace or cluster-scoped object with its
//! uuid.

mod common;

use std::path::Path;
use std::process::Command;

use burner::config::{JobType, LoadOptions};
use burner::hollow::HollowFleet;
use burner::results::summary::{Family, RunSummary, SUMMARY_FILE};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;

/// The create jobs of a workload that measure pod latency, as the run decides it: a job's
/// own `measurements` over the global ones.
fn pod_latency_jobs(config: &Path, uuid: &str) -> Vec<String> {
    let options = LoadOptions {
        uuid: uuid.to_string(),
        ..LoadOptions::default()
    };
    let config = burner::config::load(config, &options)
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    config
        .jobs
        .iter()
        .filter(|j| j.job_type() == JobType::Create && j.measurements.pod_latency.is_some())
        .map(|j| j.name().to_string())
        .collect()
}

#[test]
fn every_shipped_workload_runs_verifies_and_cleans_up() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let options = common::hollow_options(format!("workloads-{}", std::process::id()), 10);
    let fleet = common::run_on_harness(async move {
        HollowFleet::start(common::client().await, options)
            .await
            .unwrap()
    });

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let mut workloads: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("config.yml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    workloads.sort();
    assert!(workloads.len() >= 4, "{workloads:?}");
    // Run directories go here rather than into the working directory, the repository.
    let results = tempfile::tempdir().unwrap();
    let mut any_measures_pod_latency = false;
    for (n, workload) in workloads.iter().enumerate() {
        let uuid = format!("{n:08}-aaaa-4bbb-8ccc-{:012}", std::process::id());
        let config = root.join(workload).join("config.yml");
        let dir = results.path().join(workload);
        let output = Command::new(env!("CARGO_BIN_EXE_burner"))
            .args(["init", "--kubeconfig", &kubeconfig, "--uuid", &uuid, "-c"])
            .arg(&config)
            .arg("--output-dir")
            .arg(&dir)
            // Small sizes: the point is that each runs, not how big.
            .envs([
                ("JOB_ITERATIONS", "3"),
                ("PODS", "20"),
                ("QPS", "50"),
                ("BURST", "50"),
                ("CHURN_CYCLES", "1"),
            ])
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{workload}:\n{text}");
        let json = std::fs::read_to_string(dir.join(SUMMARY_FILE))
            .unwrap_or_else(|e| panic!("{workload}: no {SUMMARY_FILE}: {e}\n{text}"));
        let summary: RunSummary = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{workload}: {SUMMARY_FILE} is no run summary: {e}"));
        assert!(!summary.jobs.is_empty(), "{workload}: no jobs in\n{json}");
        for job in &summary.jobs {
            assert!(
                job.passed && job.verification_passed == Some(true),
                "{workload}: {job:#?}"
            );
        }
        let measured = pod_latency_jobs(&config, &uuid);
        for name in &measured {
            let latency = summary
                .job(name)
                .and_then(|j| j.pod_latency.as_ref())
                .unwrap_or_else(|| panic!("{workload}: no pod latency for {name} in\n{json}"));
            assert!(latency.ready > 0, "{workload}: {name}: {latency:#?}");
            for family in [Family::Watch, Family::Server] {
                assert!(
                    latency.quantiles("Ready", family).is_some(),
                    "{workload}: {name}: no Ready {family:?} quantiles: {latency:#?}"
                );
            }
        }
        any_measures_pod_latency |= !measured.is_empty();
        let selector = format!("kube-burner.io/uuid={uuid}");
        let (namespaces, crds) = common::run_on_harness(async move {
            let client = common::client().await;
            let params = ListParams::default().labels(&selector);
            let namespaces = Api::<Namespace>::all(client.clone())
                .list_metadata(&params)
                .await
                .unwrap()
                .items
                .len();
            let crds = Api::<CustomResourceDefinition>::all(client)
                .list_metadata(&params)
                .await
                .unwrap()
                .items
                .len();
            (namespaces, crds)
        });
        assert_eq!(
            (namespaces, crds),
            (0, 0),
            "{workload}: gc left objects behind"
        );
    }
    // Else the pod latency checks above checked nothing.
    assert!(any_measures_pod_latency, "no workload measures pod latency");
    common::run_on_harness(async move { fleet.shutdown().await.unwrap() });
}
