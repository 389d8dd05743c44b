//! Every workload shipped in `workloads/` runs with `burner init` on the local cluster with
//! hollow nodes: all jobs succeed and verify, and the run's garbage collection leaves no
//! namespace or cluster-scoped object with its uuid.

mod common;

use std::path::Path;
use std::process::Command;

use burner::hollow::HollowFleet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;

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
    for (n, workload) in workloads.iter().enumerate() {
        let uuid = format!("{n:08}-aaaa-4bbb-8ccc-{:012}", std::process::id());
        let output = Command::new(env!("CARGO_BIN_EXE_burner"))
            .args(["init", "--kubeconfig", &kubeconfig, "--uuid", &uuid, "-c"])
            .arg(root.join(workload).join("config.yml"))
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
        // The table on stdout: a header, then one row per job.
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let rows: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with("JOB"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(!rows.is_empty(), "{workload}: no job rows in\n{text}");
        for row in rows {
            assert!(row.ends_with("yes"), "{workload}: {row}");
        }
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
    common::run_on_harness(async move { fleet.shutdown().await.unwrap() });
}
