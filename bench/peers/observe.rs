//! What the harness sees of a run through its own watches, the same way whichever tool
//! drives the cluster: when each pod appeared, when it was first Running, how many nodes
//! are Ready.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::task::JoinHandle;

#[derive(Default)]
struct PodSeen {
    first_seen: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
}

/// Watches pods of a label selector from before the run writes its first one.
pub struct PodObserver {
    seen: Arc<Mutex<PodSeen>>,
    task: JoinHandle<()>,
}

/// The arrival and Running times of the pods one run made, in the harness's clock.
pub struct PodTimes {
    pub first_seen: Vec<Instant>,
    pub running: Vec<Instant>,
    /// Per pod, from the first sight of it bound to a node to the first sight of it Running:
    /// the time the simulated kubelet took, as the cluster shows it.
    pub bound_to_running: Vec<Duration>,
}

impl PodObserver {
    /// Starts the watch and returns once it has listed, so no pod of the run is missed.
    pub async fn start(client: &Client, selector: &str) -> anyhow::Result<Self> {
        let api: Api<Pod> = Api::all(client.clone());
        let seen = Arc::new(Mutex::new(PodSeen::default()));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let config = watcher::Config::default().labels(selector);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                let mut listed = Some(listed_tx);
                let mut events = watcher(api, config).boxed();
                while let Ok(Some(event)) = events.try_next().await {
                    let now = Instant::now();
                    let pod = match event {
                        watcher::Event::InitDone => {
                            if let Some(tx) = listed.take() {
                                let _ = tx.send(());
                            }
                            continue;
                        }
                        watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
                        watcher::Event::Delete(_) | watcher::Event::Init => continue,
                    };
                    let name = format!(
                        "{}/{}",
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        pod.metadata.name.as_deref().unwrap_or_default()
                    );
                    let is_running =
                        pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    let is_bound = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .is_some();
                    let mut seen = seen.lock().expect("pod observer lock");
                    if is_bound {
                        seen.bound.entry(name.clone()).or_insert(now);
                    }
                    if is_running {
                        seen.running.entry(name.clone()).or_insert(now);
                    }
                    seen.first_seen.entry(name).or_insert(now);
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .context("the pod watch did not list within 60 s")?
            .context("the pod watch ended before it listed")?;
        Ok(Self { seen, task })
    }

    pub fn running(&self) -> usize {
        self.seen.lock().expect("pod observer lock").running.len()
    }

    /// Waits until `count` pods are Running, or fails after `limit`.
    pub async fn wait_running(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.running() < count {
            if Instant::now() > deadline {
                bail!("{} of {count} pods Running after {limit:?}", self.running());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    pub fn stop(self) -> PodTimes {
        self.task.abort();
        let seen = self.seen.lock().expect("pod observer lock");
        let sorted = |m: &HashMap<String, Instant>| {
            let mut v: Vec<Instant> = m.values().copied().collect();
            v.sort();
            v
        };
        let mut bound_to_running: Vec<Duration> = seen
            .running
            .iter()
            .filter_map(|(name, running)| Some(running.duration_since(*seen.bound.get(name)?)))
            .collect();
        bound_to_running.sort();
        PodTimes {
            first_seen: sorted(&seen.first_seen),
            running: sorted(&seen.running),
            bound_to_running,
        }
    }
}

impl PodTimes {
    /// Pods per second between the first and the last arrival.
    pub fn creation_rate(&self) -> Option<f64> {
        rate(&self.first_seen)
    }

    /// Pods turning Running per second between the first and the last.
    pub fn running_rate(&self) -> Option<f64> {
        rate(&self.running)
    }
}

impl PodTimes {
    /// The `q` quantile (0..1, nearest rank) of bound-to-Running, in milliseconds.
    pub fn bound_to_running_ms(&self, q: f64) -> f64 {
        let n = self.bound_to_running.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.bound_to_running[rank - 1].as_secs_f64() * 1000.0
    }
}

fn rate(times: &[Instant]) -> Option<f64> {
    let (first, last) = (times.first()?, times.last()?);
    let span = last.duration_since(*first).as_secs_f64();
    (times.len() > 1 && span > 0.0).then(|| (times.len() - 1) as f64 / span)
}

/// Waits until `count` nodes report Ready, by watch (a list of thousands of nodes a second
/// would be load of the harness's own).
pub async fn wait_nodes_ready(
    client: &Client,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let api: Api<Node> = Api::all(client.clone());
    let mut ready = HashSet::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let outcome = tokio::time::timeout(limit, async {
        while let Some(event) = events.try_next().await? {
            let node = match event {
                watcher::Event::Apply(node) | watcher::Event::InitApply(node) => node,
                _ => continue,
            };
            let name = node.metadata.name.clone().unwrap_or_default();
            let is_ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_ready {
                ready.insert(name);
            } else {
                ready.remove(&name);
            }
            if ready.len() >= count {
                return anyhow::Ok(());
            }
        }
        bail!("the node watch ended")
    })
    .await;
    match outcome {
        Ok(result) => result.map(|()| started.elapsed()),
        Err(_) => bail!("{} of {count} nodes Ready after {limit:?}", ready.len()),
    }
}
