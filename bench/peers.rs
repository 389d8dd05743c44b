//! burner side by side with the tools its users would otherwise pick: kube-burner (load and
//! measurement) and kwok (simulated kubelets), on the same machine and the same local
//! control plane, in one run.
//!
//! Scenarios (each run of each tool on a fresh local cluster; tools alternate A B A B):
//!
//! 1. `client`: kubelet-density, 2,000 pods at qps 100 / burst 100 with podLatency, both
//!    tools running the same kube-burner config file: client CPU, peak RSS, wall time,
//!    the apiserver's CPU, the creation rate the harness's own watch saw;
//! 2. `max-rate`: the same at qps 5,000 / burst 5,000 with the apiserver's in-flight limits
//!    off: the achieved creation rate and the client's CPU beside the apiserver's;
//! 3. `hollow`: 1,000 and 5,000 nodes of `burner hollow` or kwok (40 s leases renewed every
//!    10 s), idle for 2 minutes, then a Deployment of 10,000 pods: RSS per node, CPU, pods
//!    turning Running per second;
//! 4. `accuracy`: hollow nodes that start every container exactly 2,000 ms (and, second,
//!    1,500 ms) after accepting the pod; burner creates 1,000 pods while `kube-burner
//!    measure` watches the same pods; each tool's Ready P50 and P99 against the injected
//!    delay.
//!
//! Run with `cargo bench --bench peers` (about 90 minutes on 2 cores), or
//! `cargo bench --bench peers -- --quick` (smaller sizes and one round, under 10 minutes
//! once the peers are built). `--only client,max-rate,hollow,accuracy` picks scenarios,
//! `--rounds N` changes the number of A B rounds (default 3), `--hollow-nodes 1000,5000`
//! the fleet sizes. The peers are built first by
//! `tools/build-peers.sh` (cached under ~/.cache/burner/peers). The table goes to stdout,
//! every run's figures to `bench/results/peers-<date>[-quick].json`.

#[path = "common/mod.rs"]
mod common;
#[path = "peers/observe.rs"]
mod observe;
#[path = "peers/process.rs"]
mod process;
#[path = "peers/scenarios.rs"]
mod scenarios;
#[path = "peers/table.rs"]
mod table;
#[path = "peers/truth.rs"]
mod truth;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use scenarios::{RunFigures, Sizes, Tools, Workspace};
use table::ScenarioResult;

const SCENARIOS: [&str; 4] = ["client", "max-rate", "hollow", "accuracy"];

struct Args {
    quick: bool,
    rounds: Option<usize>,
    only: Vec<String>,
    hollow_nodes: Option<Vec<u32>>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        quick: false,
        rounds: None,
        only: SCENARIOS.iter().map(|s| s.to_string()).collect(),
        hollow_nodes: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--rounds" => {
                let rounds = it.next().context("--rounds needs a number")?;
                args.rounds = Some(rounds.parse().context("--rounds needs a number")?);
            }
            "--hollow-nodes" => {
                let sizes = it
                    .next()
                    .context("--hollow-nodes needs sizes like 1000,5000")?;
                let sizes = sizes.split(',').map(str::parse).collect::<Result<_, _>>();
                args.hollow_nodes =
                    Some(sizes.context("--hollow-nodes needs sizes like 1000,5000")?);
            }
            "--only" => {
                args.only = it
                    .next()
                    .context("--only needs scenario names")?
                    .split(',')
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = args.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    bail!(
                        "unknown scenario `{bad}`; the scenarios are {}",
                        SCENARIOS.join(", ")
                    );
                }
            }
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => bail!("unknown argument `{other}`; see the top of bench/peers.rs"),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let tools = build_peers()?;
    let mut sizes = if args.quick {
        // One round of each pair: a check that everything runs, not numbers to publish.
        Sizes {
            rounds: args.rounds.unwrap_or(1),
            client_pods: 500,
            hollow_nodes: vec![200],
            idle: Duration::from_secs(20),
            deployment_replicas: 1_000,
            accuracy_pods: 300,
        }
    } else {
        Sizes {
            rounds: args.rounds.unwrap_or(3),
            client_pods: 2_000,
            hollow_nodes: vec![1_000, 5_000],
            idle: Duration::from_secs(120),
            deployment_replicas: 10_000,
            accuracy_pods: 1_000,
        }
    };
    if let Some(nodes) = args.hollow_nodes {
        sizes.hollow_nodes = nodes;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(run_scenarios(&tools, &sizes, &args.only))?;

    let machine = table::Machine::read();
    let versions = table::Versions::read(&tools)?;
    table::print(&machine, &versions, &results);
    let name = format!(
        "peers-{}{}.json",
        table::today(),
        if args.quick { "-quick" } else { "" }
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench/results")
        .join(name);
    // A day's file keeps the latest run of every scenario, so scenarios run separately
    // (`--only`) end up side by side.
    let earlier = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let document = table::document(&machine, &versions, &sizes, args.quick, &results);
    let document = table::merge(earlier, document);
    std::fs::write(&path, serde_json::to_string_pretty(&document)? + "\n")?;
    println!("\nevery run's figures: {}", path.display());
    Ok(())
}

/// Builds kube-burner and kwok (or finds them built) and returns where everything is.
fn build_peers() -> anyhow::Result<Tools> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/build-peers.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .context("cannot run tools/build-peers.sh")?;
    if !status.success() {
        bail!("tools/build-peers.sh failed ({status})");
    }
    let printed = std::process::Command::new("bash")
        .arg(&script)
        .arg("--print-paths")
        .output()?;
    let paths: Vec<PathBuf> = String::from_utf8(printed.stdout)?
        .lines()
        .map(PathBuf::from)
        .collect();
    let [kube_burner, kwok, kwok_stages] = paths.as_slice() else {
        bail!(
            "tools/build-peers.sh --print-paths printed {} paths, not 3",
            paths.len()
        );
    };
    Ok(Tools {
        burner: PathBuf::from(env!("CARGO_BIN_EXE_burner")),
        kube_burner: kube_burner.clone(),
        kwok: kwok.clone(),
        kwok_stages: kwok_stages.clone(),
    })
}

async fn run_scenarios(
    tools: &Tools,
    sizes: &Sizes,
    only: &[String],
) -> anyhow::Result<Vec<ScenarioResult>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers-bench");
    let mut results = Vec::new();
    let wanted = |name: &str| only.iter().any(|o| o == name);
    if wanted("client") {
        let title = format!(
            "client cost at equal load: kubelet-density, {} pods, qps 100",
            sizes.client_pods
        );
        results.push(
            alternate(
                "client",
                title,
                "kube-burner",
                sizes.rounds,
                |tool, round| {
                    let ws = Workspace::new(&root, &format!("client-{tool}-{round}"));
                    async move {
                        scenarios::client_load(tools, tool, &ws?, sizes.client_pods, 100, false)
                            .await
                    }
                },
            )
            .await?,
        );
    }
    if wanted("max-rate") {
        let title = format!(
            "maximum rate: kubelet-density, {} pods, qps 5000, in-flight limits off",
            sizes.client_pods
        );
        results.push(
            alternate(
                "max-rate",
                title,
                "kube-burner",
                sizes.rounds,
                |tool, round| {
                    let ws = Workspace::new(&root, &format!("max-rate-{tool}-{round}"));
                    async move {
                        scenarios::client_load(tools, tool, &ws?, sizes.client_pods, 5_000, true)
                            .await
                    }
                },
            )
            .await?,
        );
    }
    if wanted("hollow") {
        for &nodes in &sizes.hollow_nodes {
            let title = format!(
                "hollow nodes: {nodes} nodes idle {} s, then a Deployment of {} pods",
                sizes.idle.as_secs(),
                sizes.deployment_replicas
            );
            results.push(
                alternate(
                    &format!("hollow-{nodes}"),
                    title,
                    "kwok",
                    sizes.rounds,
                    |tool, round| {
                        let ws = Workspace::new(&root, &format!("hollow-{nodes}-{tool}-{round}"));
                        async move {
                            scenarios::hollow_nodes(
                                tools,
                                tool,
                                &ws?,
                                nodes,
                                sizes.idle,
                                sizes.deployment_replicas,
                            )
                            .await
                        }
                    },
                )
                .await?,
            );
        }
    }
    if wanted("accuracy") {
        // 2,000 ms is the ground truth; 1,500 ms is not a whole number of seconds,
        // which is where whole-second server timestamps show their resolution.
        for injected_ms in [2_000, 1_500] {
            let name = format!("accuracy-{injected_ms}");
            let title = format!(
                "accuracy: {} pods, every container started {injected_ms} ms after its pod was accepted",
                sizes.accuracy_pods
            );
            let mut result = ScenarioResult::new(&name, title, "kube-burner");
            for round in 0..sizes.rounds {
                eprintln!("[peers] {name}, round {}", round + 1);
                let ws = Workspace::new(&root, &format!("{name}-{round}"))?;
                for run in scenarios::accuracy(tools, &ws, sizes.accuracy_pods, injected_ms).await?
                {
                    result.add(round, run);
                }
            }
            results.push(result);
        }
    }
    Ok(results)
}

/// Runs burner and the peer in turn, `rounds` times: burner, peer, burner, peer...
async fn alternate<F, Fut>(
    name: &str,
    title: String,
    peer: &'static str,
    rounds: usize,
    mut run: F,
) -> anyhow::Result<ScenarioResult>
where
    F: FnMut(&'static str, usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<RunFigures>>,
{
    let mut result = ScenarioResult::new(name, title, peer);
    for round in 0..rounds {
        for tool in ["burner", peer] {
            eprintln!("[peers] {name}, round {}: {tool}", round + 1);
            let figures = run(tool, round)
                .await
                .with_context(|| format!("{name}, round {}, {tool}", round + 1))?;
            result.add(round, figures);
        }
    }
    Ok(result)
}
