//! The four side-by-side scenarios. Every run of a tool gets a fresh local cluster, so no
//! run inherits another's objects, watch caches or etcd history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burner::local::{Component, ExtraArg, LocalCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use crate::observe::{PodObserver, wait_nodes_ready};
use crate::process::Measured;
use crate::truth;

/// The programs compared.
pub struct Tools {
    pub burner: PathBuf,
    pub kube_burner: PathBuf,
    pub kwok: PathBuf,
    /// kwok's default node and pod stages, from its release (see tools/build-peers.sh).
    pub kwok_stages: PathBuf,
}

/// How big each scenario is; `--quick` shrinks them.
pub struct Sizes {
    pub rounds: usize,
    pub client_pods: u32,
    pub hollow_nodes: Vec<u32>,
    pub idle: Duration,
    pub deployment_replicas: u32,
    pub accuracy_pods: u32,
}

/// One tool's figures from one run, by name.
pub struct RunFigures {
    pub tool: &'static str,
    pub figures: BTreeMap<String, f64>,
}

/// Where a run keeps its config, logs and results (kept after the run for inspection).
pub struct Workspace {
    pub dir: PathBuf,
}

impl Workspace {
    pub fn new(root: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = root.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("templates"))?;
        Ok(Self { dir })
    }
}

/// kubelet-density in kube-burner's syntax, so both tools run the same file. The local
/// indexer makes kube-burner write its measurement documents as files; burner writes its
/// run directory anyway and leaves `metricsEndpoints` to a later release.
const KUBELET_DENSITY: &str = r#"metricsEndpoints:
  - indexer:
      type: local
      metricsDirectory: kube-burner-metrics
global:
  gc: true
  measurements:
    - name: podLatency
jobs:
  - name: kubelet-density
    jobIterations: {{ env "JOB_ITERATIONS" }}
    qps: {{ env "QPS" }}
    burst: {{ env "BURST" }}
    namespacedIterations: false
    namespace: kubelet-density-{{ .UUID | trunc 8 }}
    waitWhenFinished: true
    podWait: false
    preLoadImages: false
    objects:
      - objectTemplate: templates/pod.yml
        replicas: 1
        inputVars:
          containerImage: registry.k8s.io/pause:3.10
"#;

/// What `kube-burner measure` needs: the measurement and where to write its documents.
const MEASURE_ONLY: &str = r#"metricsEndpoints:
  - indexer:
      type: local
      metricsDirectory: kube-burner-metrics
global:
  measurements:
    - name: podLatency
jobs: []
"#;

fn write_kubelet_density(ws: &Workspace) -> anyhow::Result<PathBuf> {
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/kubelet-density/templates/pod.yml");
    std::fs::copy(&template, ws.dir.join("templates/pod.yml"))
        .with_context(|| format!("cannot copy {}", template.display()))?;
    let config = ws.dir.join("config.yml");
    std::fs::write(&config, KUBELET_DENSITY)?;
    Ok(config)
}

async fn start_cluster(
    name: &str,
    disable_limits: bool,
    extra_args: Vec<ExtraArg>,
) -> anyhow::Result<(LocalCluster, Client, u32)> {
    let (cluster, apiserver) =
        crate::common::start_cluster(name, !disable_limits, extra_args).await?;
    let client = cluster.client().await?;
    Ok((cluster, client, apiserver))
}

/// A fleet of burner hollow nodes that serves the client scenarios, the same for both
/// tools; its own cost is not part of theirs.
async fn start_fleet(
    tools: &Tools,
    cluster: &LocalCluster,
    client: &Client,
    ws: &Workspace,
    nodes: u32,
    start_delay: &str,
) -> anyhow::Result<Measured> {
    let fleet = Measured::spawn(
        "burner hollow (fleet)",
        Command::new(&tools.burner)
            // Started events as a kubelet posts them: kube-burner's podLatency waits for them.
            .args([
                "hollow",
                "--nodes",
                &nodes.to_string(),
                "--status-every",
                "0s",
                "--container-events",
                "--start-delay",
                start_delay,
                "--kubeconfig",
            ])
            .arg(cluster.kubeconfig()),
        &ws.dir.join("fleet.log"),
    )?;
    wait_nodes_ready(client, nodes as usize, Duration::from_secs(120)).await?;
    Ok(fleet)
}

/// Runs kubelet-density with one tool against a fresh cluster: the client's CPU, peak RSS
/// and wall time, the apiserver's CPU, and the creation rate the harness's watch saw.
pub async fn client_load(
    tools: &Tools,
    tool: &'static str,
    ws: &Workspace,
    pods: u32,
    qps: u32,
    disable_limits: bool,
) -> anyhow::Result<RunFigures> {
    let (cluster, client, apiserver) =
        start_cluster(&format!("peers-{tool}"), disable_limits, Vec::new()).await?;
    let outcome = async {
        let fleet = start_fleet(tools, &cluster, &client, ws, 50, "fixed:0s").await?;
        let config = write_kubelet_density(ws)?;
        let uuid = uuid_for(tool);
        let observer = PodObserver::start(&client, &format!("kube-burner.io/uuid={uuid}")).await?;
        let api_before = crate::common::cpu_seconds(apiserver);
        let mut command = tool_command(tools, tool, ws, &config, &uuid, cluster.kubeconfig());
        command
            .env("JOB_ITERATIONS", pods.to_string())
            .env("QPS", qps.to_string())
            .env("BURST", qps.to_string());
        let usage = Measured::spawn(tool, &mut command, &ws.dir.join(format!("{tool}.log")))?
            .finish(Duration::from_secs(1800))
            .await?;
        let api_cpu = crate::common::cpu_seconds(apiserver) - api_before;
        let times = observer.stop();
        fleet.interrupt().await?;
        if times.first_seen.len() != pods as usize {
            bail!(
                "{tool} made {} of {pods} pods; see {}",
                times.first_seen.len(),
                ws.dir.display()
            );
        }
        let mut figures = BTreeMap::new();
        figures.insert("cpuSeconds".into(), usage.cpu_seconds);
        figures.insert("peakRssMiB".into(), usage.peak_rss_mib);
        figures.insert("wallSeconds".into(), usage.wall_seconds);
        figures.insert("apiserverCpuSeconds".into(), api_cpu);
        figures.insert(
            "createdPerSecond".into(),
            times.creation_rate().unwrap_or(0.0),
        );
        figures.insert(
            "cpuPerApiserverCpu".into(),
            usage.cpu_seconds / api_cpu.max(1e-9),
        );
        anyhow::Ok(RunFigures { tool, figures })
    }
    .await;
    cluster.stop().await?;
    outcome
}

fn uuid_for(tool: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{tool}-{:x}", nanos & 0xffff_ffff_ffff)
}

/// The command line that runs `config` with one tool, its results under the workspace.
fn tool_command(
    tools: &Tools,
    tool: &str,
    ws: &Workspace,
    config: &Path,
    uuid: &str,
    kubeconfig: &Path,
) -> Command {
    let mut command;
    if tool == "burner" {
        command = Command::new(&tools.burner);
        command.args([
            "init",
            "--quiet",
            "--output-dir",
            "burner-results",
            "--timeout",
            "30m",
            "--uuid",
            uuid,
            "-c",
        ]);
    } else {
        command = Command::new(&tools.kube_burner);
        command.args([
            "init",
            "--skip-log-file",
            "--timeout",
            "30m",
            "--uuid",
            uuid,
            "-c",
        ]);
    }
    command
        .arg(config)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(&ws.dir);
    command
}

/// Hollow nodes: `nodes` nodes from one tool, idle for `idle`, then a Deployment of
/// `replicas` pods scaled up at once.
pub async fn hollow_nodes(
    tools: &Tools,
    tool: &'static str,
    ws: &Workspace,
    nodes: u32,
    idle: Duration,
    replicas: u32,
) -> anyhow::Result<RunFigures> {
    let (cluster, client, apiserver) =
        start_cluster(&format!("peers-{tool}"), true, Vec::new()).await?;
    let outcome = async {
        let started = Instant::now();
        let fleet = match tool {
            "burner" => Measured::spawn(
                "burner hollow",
                Command::new(&tools.burner)
                    .args([
                        "hollow",
                        "--nodes",
                        &nodes.to_string(),
                        "--status-every",
                        "0s",
                    ])
                    // kwok's lease settings: 40 s leases renewed every 10 s; node status
                    // without change every 10 to 20 minutes (kwok's heartbeat stage).
                    .args([
                        "--lease-duration",
                        "40s",
                        "--lease-interval",
                        "10s",
                        "--status-interval",
                        "10m",
                        "--kubeconfig",
                    ])
                    .arg(cluster.kubeconfig()),
                &ws.dir.join("hollow.log"),
            )?,
            _ => {
                // kwok plays kubelets for Node objects that exist; they are created here, as
                // its docs do, before it starts, and that setup is not counted as its cost.
                create_kwok_nodes(&client, nodes).await?;
                let port = std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port();
                Measured::spawn(
                    "kwok",
                    Command::new(&tools.kwok)
                        .args([
                            "--manage-all-nodes=false",
                            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                        ])
                        .args(["--node-lease-duration-seconds=40", "--node-ip=127.0.0.1"])
                        .arg(format!("--server-address=127.0.0.1:{port}"))
                        .arg("--config")
                        .arg(&tools.kwok_stages)
                        .arg("--kubeconfig")
                        .arg(cluster.kubeconfig()),
                    &ws.dir.join("kwok.log"),
                )?
            }
        };
        let registration =
            wait_nodes_ready(&client, nodes as usize, Duration::from_secs(900)).await?;
        let to_ready = started.elapsed();

        let (cpu_before, api_before) = (fleet.cpu_seconds(), crate::common::cpu_seconds(apiserver));
        tokio::time::sleep(idle).await;
        let idle_cpu = fleet.cpu_seconds() - cpu_before;
        let idle_api = crate::common::cpu_seconds(apiserver) - api_before;
        let idle_rss = fleet.rss_mib();

        let observer = PodObserver::start(&client, "app=bench-scale").await?;
        let (cpu_before, api_before) = (fleet.cpu_seconds(), crate::common::cpu_seconds(apiserver));
        let scale_started = Instant::now();
        create_deployment(&client, replicas).await?;
        observer
            .wait_running(replicas as usize, Duration::from_secs(1800))
            .await?;
        let all_running = scale_started.elapsed();
        let scale_cpu = fleet.cpu_seconds() - cpu_before;
        let scale_api = crate::common::cpu_seconds(apiserver) - api_before;
        let busy_rss = fleet.rss_mib();
        let times = observer.stop();
        let usage = fleet.interrupt().await?;

        let mut figures = BTreeMap::new();
        figures.insert("nodesReadySeconds".into(), registration.as_secs_f64());
        figures.insert("startToReadySeconds".into(), to_ready.as_secs_f64());
        figures.insert("idleRssMiB".into(), idle_rss);
        figures.insert(
            "idleRssKiBPerNode".into(),
            idle_rss * 1024.0 / f64::from(nodes),
        );
        figures.insert(
            "idleCpuSecondsPerMinute".into(),
            idle_cpu * 60.0 / idle.as_secs_f64(),
        );
        figures.insert(
            "idleApiserverCpuSecondsPerMinute".into(),
            idle_api * 60.0 / idle.as_secs_f64(),
        );
        figures.insert("scaleRssMiB".into(), busy_rss);
        figures.insert("peakRssMiB".into(), usage.peak_rss_mib);
        figures.insert(
            "peakRssKiBPerNode".into(),
            usage.peak_rss_mib * 1024.0 / f64::from(nodes),
        );
        figures.insert("scaleCpuSeconds".into(), scale_cpu);
        figures.insert("scaleApiserverCpuSeconds".into(), scale_api);
        figures.insert(
            "runningPerSecond".into(),
            times.running_rate().unwrap_or(0.0),
        );
        figures.insert("boundToRunningP50Ms".into(), times.bound_to_running_ms(0.5));
        figures.insert(
            "boundToRunningP99Ms".into(),
            times.bound_to_running_ms(0.99),
        );
        figures.insert("allRunningSeconds".into(), all_running.as_secs_f64());
        figures.insert("cpuSeconds".into(), usage.cpu_seconds);
        anyhow::Ok(RunFigures { tool, figures })
    }
    .await;
    cluster.stop().await?;
    outcome
}

/// Node objects as kwok's docs write them: the annotation kwok selects, the capacity
/// burner's hollow nodes report, and no taint (the Deployment tolerates any anyway).
async fn create_kwok_nodes(client: &Client, nodes: u32) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let capacity =
        json!({"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"});
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = api.clone();
            let name = format!("kwok-{i}");
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
                },
                "status": {"allocatable": capacity, "capacity": capacity},
            }))
            .expect("a valid Node");
            async move { api.create(&PostParams::default(), &node).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
        .context("cannot create kwok's Node objects")
}

async fn create_deployment(client: &Client, replicas: u32) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench-scale"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench-scale"}},
            "template": {
                "metadata": {"labels": {"app": "bench-scale"}},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "pause",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
                    }],
                },
            },
        },
    }))?;
    api.create(&PostParams::default(), &deployment)
        .await
        .context("cannot create the Deployment")?;
    Ok(())
}

/// Both tools measure the same pods, started by hollow nodes that hold every container
/// `injected_ms` before starting it. burner creates the pods and measures them; kube-burner's
/// `measure` command watches them by label. The apiserver's audit log gives each pod's true
/// latency (see `truth`), so each tool's error is its distance from what really happened,
/// and also, as the scenario is first stated, from the injected delay.
pub async fn accuracy(
    tools: &Tools,
    ws: &Workspace,
    pods: u32,
    injected_ms: u32,
) -> anyhow::Result<Vec<RunFigures>> {
    const QPS: u32 = 20;
    let injected = f64::from(injected_ms);
    let policy = ws.dir.join("audit-policy.yaml");
    std::fs::write(&policy, truth::AUDIT_POLICY)?;
    let audit_log = ws.dir.join("audit.log");
    let audit_flags = [
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", audit_log.display()),
        "--audit-log-format=json".to_string(),
        "--audit-log-maxsize=0".to_string(),
    ];
    let extra_args = audit_flags
        .into_iter()
        .map(|flag| ExtraArg {
            component: Component::KubeApiserver,
            flag,
        })
        .collect();
    let (cluster, client, _) = start_cluster("peers-accuracy", false, extra_args).await?;
    let outcome = async {
        let fleet = start_fleet(
            tools,
            &cluster,
            &client,
            ws,
            50,
            &format!("fixed:{injected_ms}ms"),
        )
        .await?;
        let config = write_kubelet_density(ws)?;
        let uuid = uuid_for("accuracy");
        // kube-burner's measure command watches for a fixed time: long enough for the
        // creations at 20/s, the delay and the last status update.
        let watch_for = Duration::from_secs(u64::from(pods / QPS) + 40);
        let measure_config = ws.dir.join("measure.yml");
        std::fs::write(&measure_config, MEASURE_ONLY)?;
        let kube_burner_log = ws.dir.join("kube-burner-measure.log");
        let kube_burner = Measured::spawn(
            "kube-burner measure",
            Command::new(&tools.kube_burner)
                .args([
                    "measure",
                    "--skip-log-file",
                    "--uuid",
                    &uuid,
                    "-j",
                    "accuracy",
                    "-l",
                    &format!("kube-burner.io/uuid={uuid}"),
                ])
                .arg(format!("--duration={}s", watch_for.as_secs()))
                .arg("-c")
                .arg(&measure_config)
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig())
                .current_dir(&ws.dir),
            &kube_burner_log,
        )?;
        wait_for_log(
            &kube_burner_log,
            "Running measurements for",
            Duration::from_secs(60),
        )
        .await?;

        let mut command = tool_command(tools, "burner", ws, &config, &uuid, cluster.kubeconfig());
        command
            .env("JOB_ITERATIONS", pods.to_string())
            .env("QPS", QPS.to_string())
            .env("BURST", QPS.to_string());
        Measured::spawn("burner", &mut command, &ws.dir.join("burner.log"))?
            .finish(Duration::from_secs(900))
            .await?;
        kube_burner
            .finish(watch_for + Duration::from_secs(120))
            .await?;
        fleet.interrupt().await?;

        let truth = truth::read_audit_log(&audit_log)?;
        let burner_pods: Vec<serde_json::Value> = read_json(
            &ws.dir
                .join("burner-results/podLatencyMeasurement-kubelet-density.json"),
        )?;
        let kube_burner_pods: Vec<serde_json::Value> = read_json(
            &ws.dir
                .join("kube-burner-metrics/podLatencyMeasurement-accuracy.json"),
        )?;
        let measured = [
            (
                "burner",
                truth::pod_latencies(&burner_pods, "watchPodReadyLatency"),
            ),
            (
                "burner (server timestamps)",
                truth::pod_latencies(&burner_pods, "podReadyLatency"),
            ),
            (
                "kube-burner",
                truth::pod_latencies(&kube_burner_pods, "podReadyLatency"),
            ),
        ];
        let mut rows = Vec::new();
        for (tool, latencies) in measured {
            let values: Vec<f64> = latencies.values().copied().collect();
            let (p50, p99) = (
                truth::quantile(&values, 0.50),
                truth::quantile(&values, 0.99),
            );
            let errors = truth::errors(&latencies, &truth);
            let figures = BTreeMap::from([
                ("pods".to_string(), values.len() as f64),
                ("readyP50Ms".to_string(), p50),
                ("readyP99Ms".to_string(), p99),
                ("p50ErrorMs".to_string(), (p50 - injected).abs()),
                ("p99ErrorMs".to_string(), (p99 - injected).abs()),
                ("podsWithTruth".to_string(), errors.pods as f64),
                ("p50TruthErrorMs".to_string(), errors.p50),
                ("p99TruthErrorMs".to_string(), errors.p99),
                ("podErrorP50Ms".to_string(), errors.per_pod_p50),
                ("podErrorP99Ms".to_string(), errors.per_pod_p99),
            ]);
            rows.push(RunFigures { tool, figures });
        }
        let real: Vec<f64> = truth.values().copied().collect();
        rows.push(RunFigures {
            tool: "truth (apiserver audit log)",
            figures: BTreeMap::from([
                ("pods".to_string(), real.len() as f64),
                ("readyP50Ms".to_string(), truth::quantile(&real, 0.50)),
                ("readyP99Ms".to_string(), truth::quantile(&real, 0.99)),
            ]),
        });
        anyhow::Ok(rows)
    }
    .await;
    cluster.stop().await?;
    outcome
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not the JSON expected", path.display()))
}

async fn wait_for_log(log: &Path, needle: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "`{needle}` did not appear in {} within {limit:?}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
