//! Benchmark of `burner init`'s create path against a real local control plane with hollow
//! nodes. Prints:
//!
//! 1. rate accuracy: 2,000 pods at qps 100 and at qps 200, and 2,000 ConfigMaps at qps 200
//!    (burst equal), the achieved creation rate beside the asked one (overall, and after the
//!    initial burst). ConfigMaps cost the control plane less than pods, so their rate shows
//!    burner's gate where a 2-core machine cannot take 200 pods a second;
//! 2. unlimited rate: 2,000 pods with no client-side limit, and burner's CPU beside the
//!    apiserver's over the creation.
//!
//! Run with `cargo bench --bench init` (`-- --quick` for 500 pods).

use std::path::Path;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;
use burner::config::{self, LoadOptions};
use burner::exec::cleanup;
use burner::exec::run::{self, RunOptions};
use common::cpu_seconds;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let pods: u32 = if std::env::args().any(|a| a == "--quick") {
        500
    } else {
        2_000
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(pods))
}

async fn bench(pods: u32) -> anyhow::Result<()> {
    let (cluster, apiserver) = common::start_cluster("bench-init", false, Vec::new()).await?;
    let outcome = async {
        let client = cluster.client().await?;
        // The hollow nodes run in a process of their own, so burner's CPU below is the
        // job engine's alone.
        let mut fleet = std::process::Command::new(env!("CARGO_BIN_EXE_burner"))
            .args(["hollow", "--nodes", "20", "--status-every", "0s", "--kubeconfig"])
            .arg(cluster.kubeconfig())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let cases = [("rate accuracy", 100, "pods"), ("rate accuracy", 200, "pods"), ("rate accuracy", 200, "configmaps"), ("unlimited", 0, "pods")];
        for (label, qps, kind) in cases {
            let dir = tempfile::tempdir()?;
            let template = match kind {
                "pods" => Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/kubelet-density/templates/pod.yml"),
                _ => {
                    let path = dir.path().join("configmap.yml");
                    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}\ndata:\n  key: value\n")?;
                    path
                }
            };
            let config = format!(
                "jobs:\n  - name: bench\n    namespace: bench-{qps}-{kind}\n    namespacedIterations: false\n    jobIterations: {pods}\n    qps: {qps}\n    burst: {qps}\n    waitWhenFinished: false\n    verifyObjects: false\n    preLoadImages: false\n    objects:\n      - objectTemplate: {}\n        inputVars: {{containerImage: pause}}\n",
                template.display()
            );
            std::fs::write(dir.path().join("config.yml"), config)?;
            let uuid = format!("bench-{qps}-{kind}");
            let loaded = config::load(&dir.path().join("config.yml"), &LoadOptions { uuid: uuid.clone(), ..LoadOptions::default() })?;
            let run_options = RunOptions { run_id: uuid.clone(), timeout: Duration::from_secs(600), cancel: CancellationToken::new(), recorder: Default::default(), progress: burner::progress::RunProgress::new(), after_job: None };
            let (burner_before, api_before) = (cpu_seconds(std::process::id()), cpu_seconds(apiserver));
            let (jobs, _) = run::run(&client, &loaded, &run_options).await?;
            let (burner_cpu, api_cpu) = (cpu_seconds(std::process::id()) - burner_before, cpu_seconds(apiserver) - api_before);
            let job = &jobs[0];
            let writes = (job.created + job.namespaces) as f64;
            let seconds = job.create_time.as_secs_f64();
            println!("== {label}: {pods} {kind}, qps {}", if qps == 0 { "unlimited".to_string() } else { qps.to_string() });
            println!("   created {} in {seconds:.2} s: {:.1} writes/s overall", job.created, writes / seconds);
            if qps > 0 {
                // The first `burst` writes go at once; the rest at the asked rate.
                let steady = (writes - f64::from(qps)) / seconds.max(1e-9);
                println!("   after the burst: {steady:.1}/s, {:+.2}% from the asked {qps}/s", (steady / f64::from(qps) - 1.0) * 100.0);
            }
            println!("   CPU: burner {burner_cpu:.2} s, kube-apiserver {api_cpu:.2} s, ratio {:.3}", burner_cpu / api_cpu.max(1e-9));
            cleanup::destroy(&client, &uuid).await?;
        }
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(fleet.id() as i32, libc::SIGINT) };
        fleet.wait()?;
        anyhow::Ok(())
    }
    .await;
    cluster.stop().await?;
    outcome
}
