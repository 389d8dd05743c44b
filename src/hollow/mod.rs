//! `burner hollow`: thousands of simulated kubelets in one small process.
//!
//! A hollow node registers a Node and a Lease as a kubelet does, renews the lease and posts
//! its status on the kubelet's schedule, and drives the status of the pods the real
//! scheduler binds to it: Pending, Running, Ready and, for pods that run to completion,
//! Succeeded, after delays drawn from seeded models, so an experiment knows the ground
//! truth it injected. Nothing runs in a pod and no address is ever dialled. As the
//! kubelet's status manager sends only a pod's latest status, a stage superseded at the
//! moment it would be written is skipped: without a start delay a pod goes straight from
//! bound to Running, so a fleet spends one write per pod where it can.
//!
//! The fleet shares everything that can be shared: one pod watch for all nodes (never one
//! per node), one rate limit and one bound on writes in flight, one task per node for its
//! heartbeat and one per pod only while the pod is being driven.
//!
//! This module needs nothing of the job pipeline (config, template, plan, exec, measure).

pub mod delay;
mod heartbeat;
mod kubelet;
pub mod node;
pub mod pod_status;
mod stats;
mod writer;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use delay::Delay;
pub use node::{FLEET_LABEL, NodeShape, NodeTaint};
pub use stats::{LatencySummary, StatsSnapshot};

use node::{LEASE_NAMESPACE, NodeTemplate};
use stats::FleetStats;
use writer::Writer;

/// How long each simulated step of a pod takes.
#[derive(Debug, Clone, Default)]
pub struct PodDelays {
    /// From seeing the pod bound to writing it Pending (accepted by the node).
    pub accept: Delay,
    /// From accepted to Running (containers started).
    pub start: Delay,
    /// From Running to Ready, for pods with a readiness probe.
    pub ready: Delay,
    /// From Running (or Ready) to Succeeded, for pods with restartPolicy Never or OnFailure.
    pub run: Delay,
}

#[derive(Debug, Clone)]
pub struct HollowOptions {
    pub nodes: u32,
    /// Nodes are named `<prefix>-<index>`; the prefix also labels the fleet.
    pub name_prefix: String,
    pub shape: NodeShape,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// How often a node renews its Lease (the kubelet's default is 10 s).
    pub lease_interval: Duration,
    /// The Lease's duration (the kubelet's default is 40 s).
    pub lease_duration: Duration,
    /// How often a node posts its status when nothing changed (the kubelet's default is 5 min).
    pub status_interval: Duration,
    pub pod_delays: PodDelays,
    /// The longest a terminating pod waits before it is deleted (its grace period if shorter).
    pub deletion_cap: Duration,
    pub seed: u64,
    /// Client-side rate limit, per second, and its burst, of pod writes and, separately,
    /// of node writes (registration, leases, node status).
    pub qps: NonZeroU32,
    pub burst: NonZeroU32,
    /// Writes in flight at once, in each of the two lanes.
    pub concurrency: usize,
    /// Leave the Nodes and Leases in the cluster on shutdown.
    pub keep: bool,
    /// Post a `Started` event for each container as it starts, as the kubelet does
    /// (kube-burner's podLatency waits for them): one more write per container.
    pub container_events: bool,
}

impl Default for HollowOptions {
    fn default() -> Self {
        Self {
            nodes: 10,
            name_prefix: "hollow".into(),
            shape: NodeShape::default(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            lease_interval: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            status_interval: Duration::from_secs(300),
            pod_delays: PodDelays::default(),
            deletion_cap: Duration::from_secs(1),
            seed: 1,
            qps: NonZeroU32::new(5000).expect("non-zero"),
            burst: NonZeroU32::new(5000).expect("non-zero"),
            concurrency: 64,
            keep: false,
            container_events: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error("cannot read the apiserver's version")]
    Version(#[source] kube::Error),
    #[error("cannot register hollow node {node}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot remove the fleet's {what}")]
    Cleanup {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("`{0}` is not a node of this fleet")]
    UnknownNode(String),
    #[error("a fleet needs at least one node")]
    NoNodes,
}

/// What every task of a fleet shares.
struct Fleet {
    client: kube::Client,
    options: HollowOptions,
    template: NodeTemplate,
    nodes: Vec<NodeState>,
    /// Writes of node registration, leases and node status. A lane of their own, as the
    /// kubelet's heartbeat client is separate: a storm of pod updates must not starve the
    /// heartbeats and turn nodes NotReady.
    node_writes: Writer,
    /// Writes of pod status and pod deletion.
    pod_writes: Writer,
    stats: Arc<FleetStats>,
    /// When the fleet registered its nodes: the time their conditions last changed.
    registered_at: k8s_openapi::jiff::Timestamp,
}

/// The little a fleet keeps per node.
struct NodeState {
    /// Cleared by the fault switch: the node stops renewing its lease, posting its status
    /// and looking after its pods, like a kubelet that died.
    heartbeat: AtomicBool,
    /// Set when the status must be posted at the next beat (after the heartbeat resumes).
    status_due: AtomicBool,
    /// Round-robin counter for pod addresses.
    next_pod_ip: AtomicU32,
}

/// A running fleet of hollow nodes.
pub struct HollowFleet {
    fleet: Arc<Fleet>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl HollowFleet {
    /// Registers the nodes (each Ready, with its Lease) and starts their heartbeats and the
    /// shared pod watch. Returns once every node is registered.
    pub async fn start(client: kube::Client, options: HollowOptions) -> Result<Self, HollowError> {
        if options.nodes == 0 {
            return Err(HollowError::NoNodes);
        }
        let version = client
            .apiserver_version()
            .await
            .map_err(HollowError::Version)?;
        let stats = Arc::new(FleetStats::default());
        let fleet = Arc::new(Fleet {
            template: NodeTemplate {
                name_prefix: options.name_prefix.clone(),
                shape: options.shape.clone(),
                extra_labels: options.labels.clone(),
                taints: options.taints.clone(),
                kubelet_version: version.git_version,
            },
            nodes: (0..options.nodes)
                .map(|_| NodeState {
                    heartbeat: AtomicBool::new(true),
                    status_due: AtomicBool::new(false),
                    next_pod_ip: AtomicU32::new(0),
                })
                .collect(),
            node_writes: Writer::new(
                options.qps,
                options.burst,
                options.concurrency,
                stats.clone(),
            ),
            pod_writes: Writer::new(
                options.qps,
                options.burst,
                options.concurrency,
                stats.clone(),
            ),
            client,
            options,
            stats,
            registered_at: k8s_openapi::jiff::Timestamp::now(),
        });
        let cancel = CancellationToken::new();
        // The watch starts first, so no pod bound to a node that just became Ready is missed.
        let mut tasks = vec![tokio::spawn(kubelet::drive_pods(
            fleet.clone(),
            cancel.clone(),
        ))];

        let registered = futures::stream::iter(0..fleet.options.nodes)
            .map(|index| register_node(&fleet, index))
            .buffer_unordered(fleet.options.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        if let Some(error) = registered.into_iter().find_map(Result::err) {
            cancel.cancel();
            return Err(error);
        }
        tracing::info!(nodes = fleet.options.nodes, prefix = %fleet.options.name_prefix, "hollow nodes registered");
        tasks.extend(heartbeat::spawn_all(&fleet, &cancel));
        Ok(Self {
            fleet,
            cancel,
            tasks,
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.fleet.stats.snapshot()
    }

    pub fn node_names(&self) -> Vec<String> {
        (0..self.fleet.options.nodes)
            .map(|i| self.fleet.template.node_name(i))
            .collect()
    }

    /// The fault switch: the node stops its heartbeat and its pods, as if its kubelet died,
    /// so the node-lifecycle controller marks it NotReady and evicts as it would.
    pub fn stop_heartbeat(&self, node: &str) -> Result<(), HollowError> {
        self.node(node)?.heartbeat.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Brings a stopped node back: it posts its status at its next beat.
    pub fn resume_heartbeat(&self, node: &str) -> Result<(), HollowError> {
        let state = self.node(node)?;
        state.status_due.store(true, Ordering::Relaxed);
        state.heartbeat.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn node(&self, name: &str) -> Result<&NodeState, HollowError> {
        self.fleet
            .template
            .node_index(name)
            .and_then(|i| self.fleet.nodes.get(i as usize))
            .ok_or_else(|| HollowError::UnknownNode(name.to_string()))
    }

    /// Stops every task and, unless the fleet keeps them, removes its Nodes and Leases.
    pub async fn shutdown(mut self) -> Result<StatsSnapshot, HollowError> {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        let fleet = &self.fleet;
        if !fleet.options.keep {
            let selector = ListParams::default()
                .labels(&format!("{FLEET_LABEL}={}", fleet.options.name_prefix));
            let nodes: Api<Node> = Api::all(fleet.client.clone());
            delete_collection(&fleet.client, nodes.resource_url(), &selector)
                .await
                .map_err(|source| HollowError::Cleanup {
                    what: "Nodes",
                    source,
                })?;
            let leases: Api<Lease> = Api::namespaced(fleet.client.clone(), LEASE_NAMESPACE);
            delete_collection(&fleet.client, leases.resource_url(), &selector)
                .await
                .map_err(|source| HollowError::Cleanup {
                    what: "Leases",
                    source,
                })?;
        }
        Ok(fleet.stats.snapshot())
    }
}

/// Deletes every object at `url` that `selector` picks. The server answers with every
/// object it deleted; the answer is read as it streams and dropped, since decoding it
/// (5,000 Nodes) took hundreds of megabytes for nothing.
async fn delete_collection(
    client: &kube::Client,
    url: &str,
    selector: &ListParams,
) -> Result<(), kube::Error> {
    use http_body_util::BodyExt;
    let request = kube::core::Request::new(url)
        .delete_collection(&DeleteParams::background(), selector)
        .map_err(kube::Error::BuildRequest)?;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map_err(|e| kube::Error::Service(e.into()))?;
        let answer: kube::core::Status =
            serde_json::from_slice(&text.to_bytes()).unwrap_or_else(|_| {
                kube::core::Status::failure(&format!("the server answered {status}"), "")
            });
        return Err(kube::Error::Api(Box::new(answer)));
    }
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| kube::Error::Service(e.into()))?;
    }
    Ok(())
}

impl Drop for HollowFleet {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Registers one node as a kubelet does: the Node, then its status, then its Lease. A node
/// left by an earlier run with `--keep` is taken over.
async fn register_node(fleet: &Fleet, index: u32) -> Result<(), HollowError> {
    let name = fleet.template.node_name(index);
    let error = |source| HollowError::Register {
        node: name.clone(),
        source,
    };
    let nodes: Api<Node> = Api::all(fleet.client.clone());
    let node = fleet.template.node(index);
    let created = fleet
        .node_writes
        .send(|| async {
            match nodes.create(&PostParams::default(), &node).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    nodes.get(&name).await
                }
                other => other,
            }
        })
        .await
        .map_err(error)?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let status = fleet.template.status_patch(index, now, fleet.registered_at);
    fleet
        .node_writes
        .send(|| async {
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status))
                .await
        })
        .await
        .map_err(error)?;

    let leases: Api<Lease> = Api::namespaced(fleet.client.clone(), LEASE_NAMESPACE);
    let uid = created.metadata.uid.unwrap_or_default();
    let duration = i32::try_from(fleet.options.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let lease = node::lease(&name, &uid, duration, &fleet.options.name_prefix, now);
    fleet
        .node_writes
        .send(|| async {
            match leases.create(&PostParams::default(), &lease).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    let renewal = node::lease_renewal(k8s_openapi::jiff::Timestamp::now());
                    leases
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&renewal))
                        .await
                }
                other => other,
            }
        })
        .await
        .map_err(error)?;
    fleet.stats.nodes_registered.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
