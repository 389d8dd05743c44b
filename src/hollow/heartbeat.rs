//! Heartbeats as the kubelet sends them: the Lease renewed every `lease_interval`, the node
//! status posted every `status_interval` (or at the next beat after the heartbeat resumed).
//! Node `i` of `n` beats at offset `i/n` of the interval, so a fleet never beats in step.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use super::node::{self, LEASE_NAMESPACE};

pub(super) fn spawn_all(fleet: &Arc<Fleet>, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
    let start = Instant::now();
    let count = fleet.options.nodes;
    (0..count)
        .map(|index| {
            // Registration has just renewed and posted; the first beats come within one interval.
            let offset =
                |interval: Duration| interval.mul_f64(f64::from(index + 1) / f64::from(count));
            let first_lease = start + offset(fleet.options.lease_interval);
            let first_status = start + offset(fleet.options.status_interval);
            tokio::spawn(beat(
                fleet.clone(),
                index,
                first_lease,
                first_status,
                cancel.clone(),
            ))
        })
        .collect()
}

async fn beat(
    fleet: Arc<Fleet>,
    index: u32,
    mut next_lease: Instant,
    mut next_status: Instant,
    cancel: CancellationToken,
) {
    let name = fleet.template.node_name(index);
    let state = &fleet.nodes[index as usize];
    let leases: Api<Lease> = Api::namespaced(fleet.client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(fleet.client.clone());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next_lease.min(next_status)) => {}
        }
        let now = Instant::now();
        let alive = state.heartbeat.load(Ordering::Relaxed);
        if now >= next_lease {
            next_lease += fleet.options.lease_interval;
            if alive {
                let renewal = node::lease_renewal(Timestamp::now());
                if let Err(e) = fleet
                    .node_writes
                    .send(|| async {
                        leases
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&renewal))
                            .await
                    })
                    .await
                {
                    tracing::warn!(node = %name, "lease renewal failed: {e}");
                }
            }
        }
        let resumed = alive && state.status_due.swap(false, Ordering::Relaxed);
        if now >= next_status || resumed {
            if now >= next_status {
                next_status += fleet.options.status_interval;
            }
            if alive {
                let now = Timestamp::now();
                // Conditions last changed at registration, or now when the node comes back.
                let changed = if resumed { now } else { fleet.registered_at };
                let status = fleet.template.status_patch(index, now, changed);
                if let Err(e) = fleet
                    .node_writes
                    .send(|| async {
                        nodes
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Strategic(&status),
                            )
                            .await
                    })
                    .await
                {
                    tracing::warn!(node = %name, "status update failed: {e}");
                }
            }
        }
    }
}
