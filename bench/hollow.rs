//! Benchmark of hollow nodes against a real local control plane. Prints:
//!
//! 1. accuracy: with a fixed 2 s start delay, the time from seeing a pod bound to its Ready
//!    status being written, against the injected 2 s;
//! 2. memory: whole-process RSS of `burner hollow` per node, after the nodes idled;
//! 3. throughput: Pending -> Running transitions per second for pods that already exist,
//!    bound to the fleet's nodes, and the CPU of `burner hollow` beside the apiserver's.
//!
//! Run with `cargo bench --bench hollow` (5,000 nodes idle for 2 minutes, 10,000 pods), or
//! `cargo bench --bench hollow -- --quick` for a smaller run of about a minute. Results are
//! also written to `target/bench-hollow.json`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[path = "common/mod.rs"]
mod common;
use burner::hollow::FLEET_LABEL;
use common::cpu_seconds;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

struct Sizes {
    idle_nodes: u32,
    idle_for: Duration,
    accuracy_pods: u32,
    throughput_nodes: u32,
    throughput_pods: u32,
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            idle_nodes: 500,
            idle_for: Duration::from_secs(20),
            accuracy_pods: 200,
            throughput_nodes: 20,
            throughput_pods: 2_000,
        }
    } else {
        Sizes {
            idle_nodes: 5_000,
            idle_for: Duration::from_secs(120),
            accuracy_pods: 1_000,
            throughput_nodes: 100,
            throughput_pods: 10_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&sizes))
}

async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let (cluster, apiserver) = common::start_cluster("bench-hollow", false, Vec::new()).await?;
    let bench = Bench {
        kubeconfig: cluster.kubeconfig().to_path_buf(),
        client: cluster.client().await?,
        apiserver,
    };
    let outcome = async {
        let mut results = BTreeMap::new();
        // Accuracy first, on a quiet control plane: it measures the fleet's timing, not
        // the apiserver's latency while it deletes thousands of nodes.
        results.insert("accuracy", bench.accuracy(sizes).await?);
        results.insert("memory", bench.memory(sizes).await?);
        results.insert("throughput", bench.throughput(sizes).await?);
        anyhow::Ok(results)
    }
    .await;
    cluster.stop().await?;
    let results = outcome?;
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    });
    let report = json!({"machine": machine, "results": results});
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-hollow.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

struct Bench {
    kubeconfig: PathBuf,
    client: Client,
    apiserver: u32,
}

impl Bench {
    fn hollow(&self, args: &[&str]) -> anyhow::Result<Child> {
        Command::new(env!("CARGO_BIN_EXE_burner"))
            .arg("hollow")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start burner hollow")
    }

    async fn wait_ready_nodes(&self, prefix: &str, count: usize) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let selector = ListParams::default().labels(&format!("{FLEET_LABEL}={prefix}"));
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let list = nodes.list(&selector).await?;
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ready} of {count} {prefix} nodes became Ready");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn memory(&self, sizes: &Sizes) -> anyhow::Result<Value> {
        let n = sizes.idle_nodes;
        println!(
            "== memory: {n} idle hollow nodes for {} s",
            sizes.idle_for.as_secs()
        );
        let started = Instant::now();
        let mut hollow = self.hollow(&[
            "--nodes",
            &n.to_string(),
            "--name-prefix",
            "idle",
            "--status-every",
            "0s",
        ])?;
        self.wait_ready_nodes("idle", n as usize).await?;
        let registration = started.elapsed();
        let cpu_before = cpu_seconds(hollow.id());
        let api_before = cpu_seconds(self.apiserver);
        tokio::time::sleep(sizes.idle_for).await;
        let rss_kib = rss_kib(hollow.id());
        let cpu = cpu_seconds(hollow.id()) - cpu_before;
        let api_cpu = cpu_seconds(self.apiserver) - api_before;
        stop(&mut hollow)?;
        let per_node = rss_kib as f64 / f64::from(n);
        println!(
            "   registered and Ready in {:.1} s",
            registration.as_secs_f64()
        );
        println!(
            "   RSS {:.1} MiB = {per_node:.1} KiB per node (target <= 64)",
            rss_kib as f64 / 1024.0
        );
        println!(
            "   CPU while idle: burner hollow {cpu:.2} s, kube-apiserver {api_cpu:.2} s over {} s",
            sizes.idle_for.as_secs()
        );
        Ok(
            json!({"nodes": n, "idleSeconds": sizes.idle_for.as_secs(), "registrationSeconds": registration.as_secs_f64(),
            "rssKiB": rss_kib, "rssKiBPerNode": per_node, "hollowCpuSeconds": cpu, "apiserverCpuSeconds": api_cpu}),
        )
    }

    async fn accuracy(&self, sizes: &Sizes) -> anyhow::Result<Value> {
        let pods = sizes.accuracy_pods;
        let nodes = 50u32;
        println!("== accuracy: fixed 2 s start delay, {pods} pods at 50/s on {nodes} nodes");
        let summary =
            std::env::temp_dir().join(format!("burner-bench-accuracy-{}.json", std::process::id()));
        let mut hollow = self.hollow(&[
            "--nodes",
            &nodes.to_string(),
            "--name-prefix",
            "acc",
            "--start-delay",
            "fixed:2s",
            "--status-every",
            "0s",
            "--summary-json",
            summary.to_str().unwrap(),
        ])?;
        self.wait_ready_nodes("acc", nodes as usize).await?;
        let namespace = self.namespace("bench-accuracy").await?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..pods {
            tick.tick().await;
            api.create(
                &PostParams::default(),
                &bound_pod(&format!("p-{i}"), &format!("acc-{}", i % nodes)),
            )
            .await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop(&mut hollow)?;
        // Their nodes are gone: remove the pods for good, so later phases start clean.
        let force = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        api.delete_collection(&force, &ListParams::default())
            .await?;
        let result: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
        let latency = &result["boundToReady"];
        let error = |key: &str| latency[key].as_f64().map(|ms| ms - 2000.0);
        println!(
            "   bound -> Ready written: n={} min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latency["count"],
            latency["minMs"].as_f64().unwrap_or(f64::NAN),
            latency["p50Ms"].as_f64().unwrap_or(f64::NAN),
            latency["p99Ms"].as_f64().unwrap_or(f64::NAN),
            latency["maxMs"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "   error against the injected 2 s: p50 {:+.1} ms, p99 {:+.1} ms (target: p99 within 20 ms)",
            error("p50Ms").unwrap_or(f64::NAN),
            error("p99Ms").unwrap_or(f64::NAN)
        );
        Ok(
            json!({"pods": pods, "injectedMs": 2000, "boundToReady": latency,
            "p50ErrorMs": error("p50Ms"), "p99ErrorMs": error("p99Ms")}),
        )
    }

    async fn throughput(&self, sizes: &Sizes) -> anyhow::Result<Value> {
        let (nodes, pods) = (sizes.throughput_nodes, sizes.throughput_pods);
        println!(
            "== throughput: {pods} pods already bound to {nodes} nodes, driven Pending -> Running"
        );
        // Register the nodes, then leave them (--keep) while the pods are created, so the
        // fleet that drives them finds them all waiting.
        let mut first = self.hollow(&[
            "--nodes",
            &nodes.to_string(),
            "--name-prefix",
            "tput",
            "--keep",
            "--status-every",
            "0s",
            "--node-max-pods",
            "250",
        ])?;
        self.wait_ready_nodes("tput", nodes as usize).await?;
        stop(&mut first)?;

        let namespace = self.namespace("bench-throughput").await?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let created_at = Instant::now();
        let created = futures::stream::iter(0..pods)
            .map(|i| {
                let api = api.clone();
                async move {
                    api.create(
                        &PostParams::default(),
                        &bound_pod(&format!("p-{i}"), &format!("tput-{}", i % nodes)),
                    )
                    .await
                }
            })
            .buffer_unordered(64)
            .filter(|r| futures::future::ready(r.is_ok()))
            .count()
            .await;
        let create_rate = created as f64 / created_at.elapsed().as_secs_f64();
        println!("   created {created} pods at {create_rate:.0}/s");

        let api_before = cpu_seconds(self.apiserver);
        let started = Instant::now();
        let mut driver = self.hollow(&[
            "--nodes",
            &nodes.to_string(),
            "--name-prefix",
            "tput",
            "--status-every",
            "1s",
            "--qps",
            "20000",
            "--burst",
            "20000",
            "--concurrency",
            "256",
            "--node-max-pods",
            "250",
        ])?;
        let lines = status_lines(&mut driver);
        let mut last = 0u64;
        let mut peak = 0.0f64;
        let mut previous = (Instant::now(), 0u64);
        // The first report with pods running: from here on the fleet only drives pods.
        let mut first_running: Option<(Instant, u64)> = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        while last < created as u64 {
            let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
                bail!("burner hollow stopped reporting at {last} pods running");
            };
            if let Some(running) = field(&line, "pods running ") {
                let now = Instant::now();
                if running > 0 && first_running.is_none() {
                    first_running = Some((now, running));
                }
                peak = peak.max((running - previous.1) as f64 / (now - previous.0).as_secs_f64());
                previous = (now, running);
                last = running;
            }
            if Instant::now() > deadline {
                bail!("only {last} of {created} pods became Running");
            }
        }
        let elapsed = started.elapsed();
        let hollow_cpu = cpu_seconds(driver.id());
        let api_cpu = cpu_seconds(self.apiserver) - api_before;
        stop(&mut driver)?;
        let rate = created as f64 / elapsed.as_secs_f64();
        let steady = first_running.map_or(f64::NAN, |(at, count)| {
            (created as u64 - count) as f64 / at.elapsed().as_secs_f64()
        });
        println!(
            "   {created} pods Running {:.1} s after the fleet started: {rate:.0}/s overall, \
             {steady:.0}/s once driving, peak {peak:.0}/s (target >= 500)",
            elapsed.as_secs_f64()
        );
        println!(
            "   CPU: burner hollow {hollow_cpu:.2} s, kube-apiserver {api_cpu:.2} s (ratio {:.2}, target < 0.25)",
            hollow_cpu / api_cpu.max(1e-9)
        );
        Ok(
            json!({"nodes": nodes, "pods": created, "createRatePerSecond": create_rate, "seconds": elapsed.as_secs_f64(),
            "transitionsPerSecond": rate, "steadyTransitionsPerSecond": steady, "peakTransitionsPerSecond": peak,
            "hollowCpuSeconds": hollow_cpu, "apiserverCpuSeconds": api_cpu}),
        )
    }

    async fn namespace(&self, name: &str) -> anyhow::Result<String> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(name.to_string())
    }
}

/// A pod already bound to `node`, as the scheduler would leave it.
fn bound_pod(name: &str, node: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            containers: vec![Container {
                name: "pause".to_string(),
                image: Some("registry.k8s.io/pause:3.10".to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The stderr lines of a child, read on a thread.
fn status_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The number after `label` in a status line.
fn field(line: &str, label: &str) -> Option<u64> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn stop(child: &mut Child) -> anyhow::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait()?;
    if !status.success() {
        bail!("burner hollow exited with {status}");
    }
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
