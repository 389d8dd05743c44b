//! The kubelet's pod work for the whole fleet: one watch on bound pods, filtered to this
//! fleet's nodes, and one short-lived task per pod while its status is being driven.
//!
//! A pod is tracked only while something is still to be written for it: from the moment
//! it is seen bound until the watch shows the last status the fleet wrote (Ready, or
//! Succeeded for pods that run to completion), and while it is being deleted. Running
//! pods cost nothing, so a fleet with 100,000 running pods keeps no per-pod state.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use super::delay::SplitMix64;
use super::node::pod_ip;
use super::pod_status::{self, PodFacts, StageTimes};

/// What the driver still does for one pod.
enum Tracked {
    Driving(JoinHandle<()>),
    Deleting(JoinHandle<()>),
}

pub(super) async fn drive_pods(fleet: Arc<Fleet>, cancel: CancellationToken) {
    let pods: Api<Pod> = Api::all(fleet.client.clone());
    // Only bound pods; which of them are on this fleet's nodes is decided by name.
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let mut events = watcher::watcher(pods, config).default_backoff().boxed();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut rng = SplitMix64::new(fleet.options.seed);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                on_pod(&fleet, &mut tracked, &mut rng, pod);
            }
            Some(Ok(Event::Delete(pod))) => {
                if let Some(Tracked::Driving(task)) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| tracked.remove(uid))
                {
                    task.abort();
                }
            }
            Some(Ok(Event::Init | Event::InitDone)) => {}
            Some(Err(e)) => tracing::warn!("pod watch failed; retrying: {e}"),
            None => break,
        }
    }
    for (_, task) in tracked {
        match task {
            Tracked::Driving(task) | Tracked::Deleting(task) => task.abort(),
        }
    }
}

fn on_pod(
    fleet: &Arc<Fleet>,
    tracked: &mut HashMap<String, Tracked>,
    rng: &mut SplitMix64,
    pod: Pod,
) {
    let seen = Instant::now();
    let Some(index) = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .and_then(|node| fleet.template.node_index(node))
        .filter(|&i| i < fleet.options.nodes)
    else {
        return;
    };
    // A node whose heartbeat is stopped has a dead kubelet: nobody looks after its pods.
    if !fleet.nodes[index as usize]
        .heartbeat
        .load(Ordering::Relaxed)
    {
        return;
    }
    let (Some(uid), Some(namespace), Some(name)) = (
        pod.metadata.uid.clone(),
        pod.metadata.namespace.clone(),
        pod.metadata.name.clone(),
    ) else {
        return;
    };
    let target = PodTarget {
        namespace,
        name,
        uid: uid.clone(),
    };

    if pod.metadata.deletion_timestamp.is_some() {
        match tracked.get(&uid) {
            Some(Tracked::Deleting(_)) => {}
            other => {
                if let Some(Tracked::Driving(task)) = other {
                    task.abort();
                }
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .map_or(Duration::ZERO, |s| Duration::from_secs(s.max(0) as u64));
                let wait = grace.min(fleet.options.deletion_cap);
                tracked.insert(
                    uid,
                    Tracked::Deleting(tokio::spawn(delete_pod(fleet.clone(), target, wait))),
                );
            }
        }
        return;
    }

    let facts = PodFacts::of(&pod);
    if pod_status::lifecycle_complete(&pod, &facts) {
        // The watch shows the last status written for this pod: nothing more to do.
        tracked.remove(&uid);
        return;
    }
    if tracked.contains_key(&uid) {
        return; // an echo of a status this fleet wrote on the way
    }
    let delays = &fleet.options.pod_delays;
    let plan = StagePlan {
        accept: delays.accept.sample(rng),
        start: delays.start.sample(rng),
        ready: delays.ready.sample(rng),
        run: delays.run.sample(rng),
    };
    let n = fleet.nodes[index as usize]
        .next_pod_ip
        .fetch_add(1, Ordering::Relaxed);
    let task = tokio::spawn(drive_pod(
        fleet.clone(),
        target,
        facts,
        (index, pod_ip(index, n)),
        seen,
        plan,
    ));
    tracked.insert(uid, Tracked::Driving(task));
}

struct PodTarget {
    namespace: String,
    name: String,
    uid: String,
}

/// The delays drawn for one pod, each from the end of the previous stage.
struct StagePlan {
    accept: Duration,
    start: Duration,
    ready: Duration,
    run: Duration,
}

async fn drive_pod(
    fleet: Arc<Fleet>,
    target: PodTarget,
    facts: PodFacts,
    (node, ip): (u32, std::net::Ipv4Addr),
    seen: Instant,
    plan: StagePlan,
) {
    let pods: Api<Pod> = Api::namespaced(fleet.client.clone(), &target.namespace);
    let write = |patch: Value| {
        let pods = &pods;
        let name = &target.name;
        let fleet = &fleet;
        async move {
            fleet
                .pod_writes
                .send(|| async {
                    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                        .await
                })
                .await
        }
    };
    let stats = &fleet.stats;

    // Like the kubelet's status manager, which sends only a pod's latest status, a stage
    // that is superseded at the moment it would be written is not written: with no start
    // delay the pod goes straight to Running, with no readiness delay straight to Ready.
    let mut due = seen + plan.accept;
    tokio::time::sleep_until(due).await;
    let accepted = Timestamp::now();
    let host_ip = std::net::Ipv4Addr::LOCALHOST;
    if !plan.start.is_zero()
        && write(pod_status::pending(&facts, host_ip, accepted))
            .await
            .is_err()
    {
        return;
    }

    due += plan.start;
    tokio::time::sleep_until(due).await;
    let times = StageTimes {
        accepted,
        started: Timestamp::now(),
    };
    let probes_pass_at_once = plan.ready.is_zero();
    if write(pod_status::running_stage(
        &facts,
        host_ip,
        ip,
        times,
        probes_pass_at_once,
    ))
    .await
    .is_err()
    {
        return;
    }
    stats.pods_running.fetch_add(1, Ordering::Relaxed);
    if fleet.options.container_events {
        let events: Api<CoreEvent> = Api::namespaced(fleet.client.clone(), &target.namespace);
        let node = fleet.template.node_name(node);
        let create = PostParams::default();
        for container in &facts.containers {
            let pod = pod_status::PodRef {
                namespace: &target.namespace,
                name: &target.name,
                uid: &target.uid,
            };
            let event = pod_status::started_event(pod, &node, &container.name, times.started);
            // An event is a record, not state: one that cannot be written is only counted.
            let _ = fleet
                .pod_writes
                .send(|| events.create(&create, &event))
                .await;
        }
    }
    if facts.waits_for_readiness() && !probes_pass_at_once {
        due += plan.ready;
        tokio::time::sleep_until(due).await;
        if write(pod_status::ready_stage(&facts, times, Timestamp::now()))
            .await
            .is_err()
        {
            return;
        }
    }
    stats.pods_ready.fetch_add(1, Ordering::Relaxed);
    stats.record_bound_to_ready(seen.elapsed());

    if facts.runs_to_completion {
        due = Instant::now() + plan.run;
        tokio::time::sleep_until(due).await;
        if write(pod_status::succeeded(&facts, times, Timestamp::now()))
            .await
            .is_ok()
        {
            stats.pods_succeeded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Graceful deletion as the kubelet finishes it: after the (capped) grace period, delete
/// for good, and only the pod this was about (a new pod may have taken its name).
async fn delete_pod(fleet: Arc<Fleet>, target: PodTarget, wait: Duration) {
    tokio::time::sleep(wait).await;
    let pods: Api<Pod> = Api::namespaced(fleet.client.clone(), &target.namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(target.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match fleet
        .pod_writes
        .send(|| pods.delete(&target.name, &params))
        .await
    {
        Ok(_) => {
            fleet.stats.pods_deleted.fetch_add(1, Ordering::Relaxed);
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(e) => tracing::warn!(pod = %target.name, "deleting a terminated pod failed: {e}"),
    }
}
