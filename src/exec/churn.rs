//! Churn: after a create job, cycles of deleting part of what it made and creating it
//! again, so the control plane sees sustained turnover rather than one wave.
//!
//! Mode `namespaces` deletes a random window of the job's consecutive namespaces (with
//! everything in them, and the cluster-scoped objects of those iterations) and re-creates
//! those iterations. Mode `objects` deletes the oldest `percent` of each churnable
//! object's instances and re-creates them. Every delete and create goes through the job's
//! rate gate; deletions are waited for (by watch) before re-creating, and re-created
//! objects are waited for when the job waits.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ObjectMeta;
use kube::discovery::{ApiResource, Scope};

use super::run::{
    Call, ChurnSummary, JobContext, RunError, create_namespaces, create_objects, resolve, send,
};
use super::{labels, ready, wait};
use crate::config::raw::{ChurnConfig, ChurnMode};
use crate::plan::{self, PlannedObject};
use crate::rng::SplitMix64;

/// Churn runs when it has cycles or a duration.
pub(super) fn enabled(churn: &ChurnConfig) -> bool {
    churn.cycles > 0 || churn.duration.is_some()
}

/// Runs the churn cycles; returns what they did and whether everything re-created was
/// ready within `maxWaitTimeout`.
pub(super) async fn churn(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
    churn: &ChurnConfig,
) -> Result<(ChurnSummary, bool), RunError> {
    let job = ctx.job;
    let started = Instant::now();
    let mut rng = SplitMix64::from_entropy();
    let mut summary = ChurnSummary {
        started_at: Some(std::time::SystemTime::now()),
        ..ChurnSummary::default()
    };
    let mut ready = true;
    let mut last_churned = LastChurned::new();
    tracing::info!(job = job.name(), mode = ?churn.mode, "churning");
    loop {
        if churn.cycles > 0 && summary.cycles >= churn.cycles {
            break;
        }
        if churn.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let chosen = match churn.mode {
            ChurnMode::Namespaces => delete_namespace_window(ctx, objects, churn, &mut rng).await?,
            ChurnMode::Objects => {
                delete_oldest(ctx, objects, churn, &mut last_churned, summary.cycles + 1).await
            }
        };
        summary.deleted += chosen.deleted;
        if let Some(delay) = churn.delete_delay {
            tokio::time::sleep(delay).await;
        }
        let before = ctx.counters.created.load(Ordering::Relaxed);
        // Collected first: an iterator mapping through a closure here would keep the run's
        // future from being Send (the closure's lifetimes are not general enough).
        let recreate: Vec<&PlannedObject> = chosen.recreate.iter().map(|&i| &objects[i]).collect();
        if chosen.namespaces {
            create_namespaces(ctx, recreate.iter().copied()).await?;
        }
        create_objects(ctx, recreate.into_iter()).await;
        summary.recreated += ctx.counters.created.load(Ordering::Relaxed) - before;
        if job.raw.wait_when_finished || job.raw.pod_wait {
            ready &= ready::wait_until_ready(ctx, objects, None).await;
        }
        summary.cycles += 1;
        tracing::info!(
            job = job.name(),
            cycle = summary.cycles,
            deleted = chosen.deleted,
            "churn cycle done"
        );
        if let Some(delay) = churn.delay {
            tokio::time::sleep(delay).await;
        }
    }
    summary.duration = started.elapsed();
    Ok((summary, ready))
}

/// The cycle in which each planned object (by position) was last re-created. Creation
/// timestamps have a resolution of a second, too coarse to tell a re-created object from
/// the original it replaced; burner remembers instead.
type LastChurned = BTreeMap<usize, u32>;

/// What one cycle deleted, and which planned objects (by position) to create again.
struct Chosen {
    deleted: u64,
    recreate: Vec<usize>,
    /// The re-created objects need their namespaces made again.
    namespaces: bool,
}

/// How many of `total` a cycle churns: `percent` of them, at least one.
fn share(total: usize, percent: u32) -> usize {
    (total * percent as usize / 100).clamp(1, total.max(1))
}

/// Mode `namespaces`: deletes a random window of consecutive namespaces and the
/// cluster-scoped objects of their iterations, and waits until they are gone.
async fn delete_namespace_window(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
    churn: &ChurnConfig,
    rng: &mut SplitMix64,
) -> Result<Chosen, RunError> {
    let job = ctx.job;
    // The job's namespaces in creation order.
    let mut namespaces: Vec<&str> = Vec::new();
    for object in objects {
        if let Some(ns) = object.namespace.as_deref()
            && !object.own_namespace
            && namespaces.last() != Some(&ns)
            && !namespaces.contains(&ns)
        {
            namespaces.push(ns);
        }
    }
    if namespaces.is_empty() {
        return Ok(Chosen {
            deleted: 0,
            recreate: Vec::new(),
            namespaces: false,
        });
    }
    let count = share(namespaces.len(), churn.percent);
    let start = (rng.next_u64() % (namespaces.len() - count + 1) as u64) as usize;
    let window: BTreeSet<&str> = namespaces[start..start + count].iter().copied().collect();

    let in_window = |o: &PlannedObject| {
        plan::job_namespace(job, o.iteration).is_some_and(|ns| window.contains(ns.as_str()))
    };
    let cluster_scoped = |o: &PlannedObject| {
        resolve(ctx.discovery, job, o).is_ok_and(|(_, c)| c.scope == Scope::Cluster)
    };
    let recreate: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            let o = &objects[i];
            let in_job_namespace =
                !o.own_namespace && o.namespace.as_deref().is_some_and(|ns| window.contains(ns));
            in_job_namespace || (cluster_scoped(o) && in_window(o))
        })
        .collect();

    let mut deleted = 0;
    let namespace_api: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<Namespace>(&()));
    for name in &window {
        if delete(
            ctx,
            &namespace_api,
            "namespaces",
            name,
            DeleteParams::background(),
        )
        .await
        {
            deleted += 1;
        }
    }
    // Cluster-scoped objects of the window's iterations, found by their labels so that
    // generated names are found too.
    let iterations: HashSet<String> = recreate
        .iter()
        .map(|&i| objects[i].iteration.to_string())
        .collect();
    let mut waits = Vec::new();
    for resource in kinds(ctx, recreate.iter().map(|&i| &objects[i]), Scope::Cluster) {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let selector = run_selector(ctx);
        for meta in list(ctx, &api, &resource.plural, &selector).await {
            let iteration = meta.labels.as_ref().and_then(|l| l.get(labels::ITERATION));
            if iteration.is_some_and(|i| iterations.contains(i))
                && let Some(name) = &meta.name
                && delete(
                    ctx,
                    &api,
                    &resource.plural,
                    name,
                    DeleteParams::background(),
                )
                .await
            {
                deleted += 1;
            }
        }
        waits.push((api, selector));
    }
    let selector = format!(
        "{}={},{}={}",
        labels::UUID,
        ctx.config.uuid,
        labels::JOB,
        job.name()
    );
    wait::until_gone(&namespace_api, &selector, |o| {
        o.metadata
            .name
            .as_deref()
            .is_some_and(|n| window.contains(n))
    })
    .await;
    for (api, selector) in &waits {
        wait::until_gone(api, selector, |o| {
            o.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ITERATION))
                .is_some_and(|i| iterations.contains(i))
        })
        .await;
    }
    Ok(Chosen {
        deleted,
        recreate,
        namespaces: true,
    })
}

/// Mode `objects`: for each churnable object of the job and each kind it makes, deletes
/// the oldest `percent` of its instances (with foreground propagation, so what they own
/// goes too), and waits until they are gone.
async fn delete_oldest(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
    churn: &ChurnConfig,
    last_churned: &mut LastChurned,
    cycle: u32,
) -> Chosen {
    let job = ctx.job;
    // Planned objects by (object index, kind, iteration, replica), to find the manifest of
    // an instance found by its labels.
    let mut planned: BTreeMap<(usize, String, String, String), usize> = BTreeMap::new();
    let mut groups: BTreeMap<(usize, String), (ApiResource, Scope)> = BTreeMap::new();
    for (i, object) in objects.iter().enumerate() {
        if !job.objects[object.object].raw.churn {
            continue;
        }
        let Ok((resource, capabilities)) = resolve(ctx.discovery, job, object) else {
            continue;
        };
        planned.insert(
            (
                object.object,
                resource.kind.clone(),
                object.iteration.to_string(),
                object.replica.to_string(),
            ),
            i,
        );
        groups
            .entry((object.object, resource.kind.clone()))
            .or_insert((resource, capabilities.scope));
    }
    let mut deleted = 0;
    let mut recreate = Vec::new();
    for ((index, kind), (resource, scope)) in groups {
        let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
        let selector = format!("{},{}={index}", run_selector(ctx), labels::INDEX);
        // Each instance found, with the planned object it was made from.
        let mut instances: Vec<(ObjectMeta, usize)> = list(ctx, &all, &resource.plural, &selector)
            .await
            .into_iter()
            .filter_map(|meta| {
                let label = |key: &str| {
                    meta.labels
                        .as_ref()
                        .and_then(|l| l.get(key).cloned())
                        .unwrap_or_default()
                };
                let key = (
                    index,
                    kind.clone(),
                    label(labels::ITERATION),
                    label(labels::REPLICA),
                );
                let position = *planned.get(&key)?;
                Some((meta, position))
            })
            .collect();
        // Oldest first: never churned before, then churned longest ago, then by creation.
        instances.sort_by_key(|(meta, position)| {
            (
                last_churned.get(position).copied().unwrap_or(0),
                meta.creation_timestamp.clone().map(|t| t.0),
                *position,
            )
        });
        let count = share(instances.len(), churn.percent).min(instances.len());
        let mut gone = HashSet::new();
        for (meta, position) in instances.into_iter().take(count) {
            let Some(name) = meta.name.clone() else {
                continue;
            };
            let api = match (scope.clone(), meta.namespace.clone()) {
                (Scope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(ctx.client.clone(), &ns, &resource)
                }
                _ => all.clone(),
            };
            if delete(
                ctx,
                &api,
                &resource.plural,
                &name,
                DeleteParams::foreground(),
            )
            .await
            {
                deleted += 1;
                recreate.push(position);
                last_churned.insert(position, cycle);
                gone.insert(meta.uid.clone().unwrap_or_default());
            }
        }
        wait::until_gone(&all, &selector, |o| {
            o.metadata.uid.as_ref().is_some_and(|u| gone.contains(u))
        })
        .await;
    }
    recreate.sort_unstable();
    Chosen {
        deleted,
        recreate,
        namespaces: false,
    }
}

/// This run's objects of this job.
fn run_selector(ctx: &JobContext<'_>) -> String {
    format!(
        "{}={},{}={}",
        labels::RUN_ID,
        ctx.options.run_id,
        labels::JOB,
        ctx.job.name()
    )
}

/// The distinct kinds of `scope` among `objects`.
fn kinds<'a>(
    ctx: &JobContext<'_>,
    objects: impl Iterator<Item = &'a PlannedObject>,
    scope: Scope,
) -> Vec<ApiResource> {
    let mut seen = BTreeMap::new();
    for object in objects {
        if let Ok((resource, capabilities)) = resolve(ctx.discovery, ctx.job, object)
            && capabilities.scope == scope
        {
            seen.entry(resource.kind.clone()).or_insert(resource);
        }
    }
    seen.into_values().collect()
}

async fn list(
    ctx: &JobContext<'_>,
    api: &Api<DynamicObject>,
    resource: &str,
    selector: &str,
) -> Vec<ObjectMeta> {
    let params = ListParams::default().labels(selector);
    send(ctx, Call::new("list", resource), |_| {
        api.list_metadata(&params)
    })
    .await
    .map(|l| l.items.into_iter().map(|o| o.metadata).collect())
    .unwrap_or_default()
}

/// Deletes one object through the gate; true when it was deleted (or was already gone).
async fn delete(
    ctx: &JobContext<'_>,
    api: &Api<DynamicObject>,
    resource: &str,
    name: &str,
    params: DeleteParams,
) -> bool {
    send(ctx, Call::new("delete", resource), |_| async {
        match api.delete(name, &params).await {
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_churns_its_share_and_at_least_one() {
        assert_eq!(share(10, 20), 2);
        assert_eq!(share(10, 0), 1);
        assert_eq!(share(3, 10), 1);
        assert_eq!(share(7, 100), 7);
        assert_eq!(share(0, 50), 1);
    }
}
