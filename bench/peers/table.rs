//! Medians, ratios and targets; the printed table and the JSON document of a whole run.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::scenarios::{RunFigures, Sizes, Tools};

/// Every run of one scenario.
pub struct ScenarioResult {
    pub name: String,
    pub title: String,
    pub peer: &'static str,
    runs: Vec<(usize, RunFigures)>,
}

/// A bound burner is held to: on the ratio of its median to the peer's, or (`absolute`)
/// on its own median.
struct Target {
    figure: &'static str,
    at_most: Option<f64>,
    at_least: Option<f64>,
    absolute: bool,
}

const fn at_most(figure: &'static str, ratio: f64) -> Target {
    Target {
        figure,
        at_most: Some(ratio),
        at_least: None,
        absolute: false,
    }
}

const fn at_least(figure: &'static str, ratio: f64) -> Target {
    Target {
        figure,
        at_most: None,
        at_least: Some(ratio),
        absolute: false,
    }
}

fn targets(scenario: &str) -> Vec<Target> {
    match scenario {
        "client" => vec![
            at_most("cpuSeconds", 0.33),
            at_most("peakRssMiB", 0.25),
            Target {
                figure: "createdPerSecond",
                at_most: Some(1.02),
                at_least: Some(0.98),
                absolute: false,
            },
        ],
        // Either burner is 1.2 times as fast, or both reach the same rate because the
        // apiserver is saturated and burner spends at most a tenth of the apiserver's CPU.
        "max-rate" => vec![
            at_least("createdPerSecond", 1.2),
            Target {
                figure: "cpuPerApiserverCpu",
                at_most: Some(0.1),
                at_least: None,
                absolute: true,
            },
        ],
        // Errors against the apiserver's record of each pod (see truth.rs): the distance
        // of each tool's P50 and P99 from the true ones, and each pod's own error.
        accuracy if accuracy.starts_with("accuracy") => vec![
            at_most("p50TruthErrorMs", 0.1),
            at_most("p99TruthErrorMs", 0.1),
            at_most("podErrorP50Ms", 0.1),
            at_most("podErrorP99Ms", 0.1),
        ],
        hollow if hollow.starts_with("hollow") => vec![
            at_most("idleRssKiBPerNode", 0.5),
            at_least("runningPerSecond", 2.0),
        ],
        _ => vec![],
    }
}

impl ScenarioResult {
    pub fn new(name: &str, title: String, peer: &'static str) -> Self {
        Self {
            name: name.to_string(),
            title,
            peer,
            runs: Vec::new(),
        }
    }

    pub fn add(&mut self, round: usize, figures: RunFigures) {
        self.runs.push((round, figures));
    }

    fn tools(&self) -> Vec<&'static str> {
        let mut tools: Vec<&'static str> = Vec::new();
        for (_, run) in &self.runs {
            if !tools.contains(&run.tool) {
                tools.push(run.tool);
            }
        }
        tools
    }

    /// The median of each figure over the rounds, for one tool.
    fn medians(&self, tool: &str) -> BTreeMap<String, f64> {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (_, run) in self.runs.iter().filter(|(_, r)| r.tool == tool) {
            for (figure, value) in &run.figures {
                values.entry(figure.clone()).or_default().push(*value);
            }
        }
        values
            .into_iter()
            .map(|(figure, v)| (figure, median(v)))
            .collect()
    }

    fn ratio(&self, figure: &str) -> Option<f64> {
        let burner = *self.medians("burner").get(figure)?;
        let peer = *self.medians(self.peer).get(figure)?;
        (peer != 0.0).then(|| burner / peer)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn verdict(target: &Target, result: &ScenarioResult) -> String {
    let value = if target.absolute {
        result.medians("burner").get(target.figure).copied()
    } else {
        result.ratio(target.figure)
    };
    let Some(value) = value else {
        return "no value".to_string();
    };
    let low_ok = target.at_least.is_none_or(|low| value >= low);
    let high_ok = target.at_most.is_none_or(|high| value <= high);
    let of = if target.absolute { "burner " } else { "" };
    let bound = match (target.at_least, target.at_most) {
        (Some(low), Some(high)) => format!("{of}{low}..{high}"),
        (Some(low), None) => format!("{of}>= {low}"),
        (None, Some(high)) => format!("{of}<= {high}"),
        (None, None) => String::new(),
    };
    format!(
        "{bound} {}",
        if low_ok && high_ok { "met" } else { "MISSED" }
    )
}

pub struct Machine {
    cores: usize,
    memory_gib: f64,
    kernel: String,
    cpu: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
                .unwrap_or_default(),
        }
    }
}

pub struct Versions {
    burner: String,
    kube_burner: String,
    kwok: String,
    kubernetes: String,
}

impl Versions {
    pub fn read(tools: &Tools) -> anyhow::Result<Self> {
        let first_line = |program: &std::path::Path, args: &[&str]| -> String {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .unwrap_or_default()
        };
        let versions = burner::local::ControlPlaneVersions::pinned();
        Ok(Self {
            burner: env!("CARGO_PKG_VERSION").to_string(),
            kube_burner: first_line(&tools.kube_burner, &["version"]),
            kwok: first_line(&tools.kwok, &["--version"]),
            kubernetes: format!("{}, etcd {}", versions.kubernetes, versions.etcd),
        })
    }
}

pub fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn print(machine: &Machine, versions: &Versions, results: &[ScenarioResult]) {
    println!(
        "machine: {} cores ({}), {:.1} GiB, Linux {}",
        machine.cores, machine.cpu, machine.memory_gib, machine.kernel
    );
    println!(
        "burner {}, {}, {}, control plane Kubernetes {}",
        versions.burner, versions.kube_burner, versions.kwok, versions.kubernetes
    );
    for result in results {
        let tools = result.tools();
        println!(
            "\n== {} (medians of {} rounds)",
            result.title,
            result.runs.iter().map(|(r, _)| r + 1).max().unwrap_or(0)
        );
        print!("{:<34}", "figure");
        for tool in &tools {
            print!("{:>16}", truncate(tool, 15));
        }
        println!("{:>10}  target", format!("ratio"));
        let medians: Vec<_> = tools.iter().map(|t| result.medians(t)).collect();
        let targets = targets(&result.name);
        for figure in medians[0].keys() {
            print!("{figure:<34}");
            for m in &medians {
                print!(
                    "{:>16}",
                    m.get(figure).map_or("-".to_string(), |v| format_value(*v))
                );
            }
            let ratio = result.ratio(figure);
            print!(
                "{:>10}",
                ratio.map_or("-".to_string(), |r| format!("{r:.3}"))
            );
            if let Some(target) = targets.iter().find(|t| t.figure == figure) {
                print!("  {}", verdict(target, result));
            }
            println!();
        }
    }
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Every run's figures, the medians and the ratios, for `bench/results/`.
pub fn document(
    machine: &Machine,
    versions: &Versions,
    sizes: &Sizes,
    quick: bool,
    results: &[ScenarioResult],
) -> Value {
    let sizes_json = json!({
        "rounds": sizes.rounds,
        "clientPods": sizes.client_pods,
        "hollowNodes": sizes.hollow_nodes,
        "idleSeconds": sizes.idle.as_secs(),
        "deploymentReplicas": sizes.deployment_replicas,
        "accuracyPods": sizes.accuracy_pods,
    });
    let scenarios: Vec<Value> = results
        .iter()
        .map(|result| {
            let tools = result.tools();
            let medians: BTreeMap<&str, BTreeMap<String, f64>> = tools.iter().map(|t| (*t, result.medians(t))).collect();
            let ratios: BTreeMap<String, f64> = medians
                .get("burner")
                .map(|m| m.keys().filter_map(|f| Some((f.clone(), result.ratio(f)?))).collect())
                .unwrap_or_default();
            let targets: BTreeMap<&str, String> = targets(&result.name).iter().map(|t| (t.figure, verdict(t, result))).collect();
            let runs: Vec<Value> = result.runs.iter().map(|(round, run)| json!({"round": round + 1, "tool": run.tool, "figures": run.figures})).collect();
            json!({
                "name": result.name,
                "title": result.title,
                "sizes": sizes_json,
                "peer": result.peer,
                "medians": medians,
                "ratios": ratios,
                "targets": targets,
                "runs": runs,
            })
        })
        .collect();
    json!({
        "date": today(),
        "quick": quick,
        "machine": {"cores": machine.cores, "cpu": machine.cpu, "memoryGiB": machine.memory_gib, "kernel": machine.kernel},
        "versions": {"burner": versions.burner, "kubeBurner": versions.kube_burner, "kwok": versions.kwok, "controlPlane": versions.kubernetes},
        "scenarios": scenarios,
    })
}

/// `latest` with the scenarios of `earlier` it does not have itself.
pub fn merge(earlier: Option<Value>, mut latest: Value) -> Value {
    let Some(mut earlier) = earlier else {
        return latest;
    };
    let Some(new) = latest["scenarios"].as_array().cloned() else {
        return latest;
    };
    let name = |s: &Value| s["name"].as_str().map(str::to_string);
    let replaced: Vec<Option<String>> = new.iter().map(name).collect();
    let mut scenarios: Vec<Value> = earlier["scenarios"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !replaced.contains(&name(s)))
        .collect();
    scenarios.extend(new);
    latest["scenarios"] = Value::Array(scenarios);
    latest
}
