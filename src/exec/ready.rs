//! After creating: waiting, by watch, until what a job created is ready, and verifying by
//! label that everything it created exists.

use crate::watched::WatchedObject;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::labels;
use super::run::{JobContext, resolve};
use crate::config::raw::WaitOptions;
use crate::jq::{self, Filter};
use crate::plan::PlannedObject;

/// What a job created, grouped as verification and waiting see it: by the object's index
/// in the job (the `kube-burner.io/index` label) and kind. Grouping by index keeps the pods
/// of a Deployment, which carry the job's labels too, apart from the job's own pods.
struct Group {
    index: usize,
    resource: ApiResource,
    expected: u64,
}

fn groups<'a>(
    ctx: &JobContext<'_>,
    objects: impl IntoIterator<Item = &'a PlannedObject>,
) -> Vec<Group> {
    let mut groups: BTreeMap<(usize, String), Group> = BTreeMap::new();
    for object in objects {
        if let Ok((resource, _)) = resolve(ctx.discovery, ctx.job, object) {
            groups
                .entry((object.object, resource.kind.clone()))
                .or_insert(Group {
                    index: object.object,
                    resource,
                    expected: 0,
                })
                .expected += 1;
        }
    }
    groups.into_values().collect()
}

/// The job's objects of this run: `kube-burner.io/runid` and `job`, and the index.
fn group_selector(ctx: &JobContext<'_>, index: usize) -> String {
    format!(
        "{}={},{}={},{}={index}",
        labels::RUN_ID,
        ctx.options.run_id,
        labels::JOB,
        ctx.job.name(),
        labels::INDEX
    )
}

/// Objects found per `index/kind`, and whether every group has what was created.
pub(super) async fn verify(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
) -> (BTreeMap<String, u64>, bool) {
    let mut found = BTreeMap::new();
    let groups = groups(ctx, objects);
    // Objects of a kind that does not resolve were not created: that is a failure too.
    let grouped: u64 = groups.iter().map(|g| g.expected).sum();
    let mut passed = grouped == objects.len() as u64;
    for group in groups {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &group.resource);
        let count = count_labelled(&api, &group_selector(ctx, group.index))
            .await
            .unwrap_or(0);
        if count != group.expected {
            tracing::warn!(
                job = ctx.job.name(),
                kind = %group.resource.kind,
                index = group.index,
                "found {count}, expected {}",
                group.expected
            );
        }
        passed &= count == group.expected;
        found.insert(format!("{}/{}", group.index, group.resource.kind), count);
    }
    (found, passed)
}

/// How many objects `selector` selects, listed a page at a time: a job of 100,000 pods
/// would otherwise list them all at once, and hold them all.
async fn count_labelled(api: &Api<DynamicObject>, selector: &str) -> kube::Result<u64> {
    let mut params = ListParams::default().labels(selector).limit(LIST_PAGE);
    let mut count = 0;
    loop {
        let page = api.list_metadata(&params).await?;
        count += page.items.len() as u64;
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(count),
        }
    }
}

/// Objects per page of a list.
const LIST_PAGE: u32 = 500;

/// When an object counts as ready.
enum Readiness {
    /// The kind's own rule (Pods, Deployments, ...).
    Kind(fn(&Value) -> bool),
    /// Every `waitOptions.customStatusPaths` key gives its value.
    Status(Vec<(Filter, String)>),
}

impl Readiness {
    fn is_ready(&self, object: &Value) -> bool {
        match self {
            Readiness::Kind(rule) => rule(object),
            Readiness::Status(paths) => {
                let status = object.get("status").cloned().unwrap_or(Value::Null);
                paths.iter().all(|(filter, value)| {
                    filter
                        .eval(&status)
                        .first()
                        .is_some_and(|v| jq::as_text(v) == *value)
                })
            }
        }
    }
}

/// One thing to wait for: objects of `resource` matching `selector`, until `expected` of
/// them are ready, or (when the count is not known, as for the Pods of a Deployment)
/// until there are some and all are ready.
struct Wait {
    resource: ApiResource,
    selector: String,
    expected: Option<u64>,
    readiness: Readiness,
}

/// Waits, by watching, until every created object that has a notion of readiness is
/// ready: Pods Running and Ready; Deployments, ReplicaSets, StatefulSets with all replicas
/// ready; DaemonSets with every scheduled pod ready; Jobs complete; PVCs bound; anything
/// by its object's `waitOptions`. Objects with `wait: false` are not waited for.
/// `only_iteration` narrows the wait to one iteration's objects (`podWait`). Returns false
/// when `maxWaitTimeout` passed first.
pub(super) async fn wait_until_ready(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
    only_iteration: Option<u32>,
) -> bool {
    let waits: Vec<Wait> = groups(ctx, objects)
        .into_iter()
        .filter_map(|group| wait_for(ctx, group, only_iteration))
        .collect();
    let all = futures::future::join_all(waits.into_iter().map(|w| watch_until_ready(ctx, w)));
    match ctx.job.raw.max_wait_timeout {
        Some(limit) => {
            if tokio::time::timeout(limit, all).await.is_err() {
                tracing::error!(
                    job = ctx.job.name(),
                    "objects were not ready within maxWaitTimeout {}",
                    humantime::format_duration(limit)
                );
                return false;
            }
            true
        }
        None => {
            all.await;
            true
        }
    }
}

fn wait_for(ctx: &JobContext<'_>, group: Group, only_iteration: Option<u32>) -> Option<Wait> {
    let object = &ctx.job.objects[group.index];
    if !object.raw.wait {
        return None;
    }
    let mut selector = group_selector(ctx, group.index);
    if let Some(iteration) = only_iteration {
        selector.push_str(&format!(",{}={iteration}", labels::ITERATION));
    }
    let options = object.raw.wait_options.clone().unwrap_or_default();
    for (key, value) in &options.label_selector {
        selector.push_str(&format!(",{key}={value}"));
    }
    let (resource, expected) = match other_kind(ctx, &options) {
        Some(resource) => (resource, None),
        None => (group.resource, Some(group.expected)),
    };
    let readiness = if options.custom_status_paths.is_empty() {
        Readiness::Kind(kind_readiness(&resource.kind)?)
    } else {
        Readiness::Status(
            options
                .custom_status_paths
                .iter()
                .map(|p| {
                    let filter = Filter::parse(&p.key).expect("checked when the config loaded");
                    (filter, p.value.clone())
                })
                .collect(),
        )
    };
    Some(Wait {
        resource,
        selector,
        expected,
        readiness,
    })
}

/// The kind `waitOptions.kind` names, if any and if the cluster serves it.
fn other_kind(ctx: &JobContext<'_>, options: &WaitOptions) -> Option<ApiResource> {
    let kind = options.kind.as_deref()?;
    let api_version = options.api_version.as_deref().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resolved = ctx
        .discovery
        .discovery()
        .resolve_gvk(&GroupVersionKind::gvk(group, version, kind));
    if resolved.is_none() {
        tracing::warn!(
            job = ctx.job.name(),
            "waitOptions.kind {kind} ({api_version}) is not served; waiting for the created kind"
        );
    }
    resolved.map(|(resource, _)| resource)
}

async fn watch_until_ready(ctx: &JobContext<'_>, wait: Wait) {
    // Thousands of objects change several times each: decode only what readiness reads.
    let api: Api<WatchedObject> = Api::all_with(ctx.client.clone(), &wait.resource);
    let mut ready: HashMap<String, bool> = HashMap::new();
    let mut listed = false;
    let mut events =
        watcher::watcher(api, watcher::Config::default().labels(&wait.selector)).boxed();
    let done = |ready: &HashMap<String, bool>, listed: bool| {
        let count = ready.values().filter(|r| **r).count() as u64;
        match wait.expected {
            Some(expected) => count >= expected,
            None => listed && !ready.is_empty() && count == ready.len() as u64,
        }
    };
    while !done(&ready, listed) {
        match events.try_next().await {
            Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                let is_ready = wait.readiness.is_ready(&o.readiness_view());
                ready.insert(o.metadata.uid.unwrap_or_default(), is_ready);
            }
            Ok(Some(watcher::Event::Delete(o))) => {
                ready.remove(&o.metadata.uid.unwrap_or_default());
            }
            Ok(Some(watcher::Event::InitDone)) => listed = true,
            Ok(Some(watcher::Event::Init)) => {}
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(kind = %wait.resource.kind, "watch failed; retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Watches what `config` selects until one object of it passes `is_ready`.
pub(super) async fn until_one_is_ready(
    api: &Api<DynamicObject>,
    config: watcher::Config,
    is_ready: fn(&Value) -> bool,
) {
    let mut events = watcher::watcher(api.clone(), config).boxed();
    loop {
        match events.try_next().await {
            Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                if is_ready(&serde_json::to_value(&o).unwrap_or_default()) {
                    return;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("watch failed; retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The readiness rule of a kind, if it has one.
pub(super) fn kind_readiness(kind: &str) -> Option<fn(&Value) -> bool> {
    fn number(v: &Value, pointer: &str) -> i64 {
        v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
    }
    fn condition(v: &Value, kind: &str) -> bool {
        v.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
    }
    Some(match kind {
        "Pod" => |v| v.pointer("/status/phase") == Some(&json!("Running")) && condition(v, "Ready"),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController" => |v| {
            let wanted = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            number(v, "/status/readyReplicas") >= wanted
        },
        "DaemonSet" => |v| {
            // Until the controller has looked at it, its status says nothing.
            number(v, "/status/observedGeneration") >= number(v, "/metadata/generation")
                && v.pointer("/status/desiredNumberScheduled").is_some()
                && number(v, "/status/numberReady") >= number(v, "/status/desiredNumberScheduled")
        },
        "Job" => |v| condition(v, "Complete"),
        "PersistentVolumeClaim" => |v| v.pointer("/status/phase") == Some(&json!("Bound")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_status_paths_all_have_to_match() {
        let deployment = json!({"status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "False"},
        ]}});
        let paths = |pairs: &[(&str, &str)]| {
            Readiness::Status(
                pairs
                    .iter()
                    .map(|(k, v)| (Filter::parse(k).unwrap(), v.to_string()))
                    .collect(),
            )
        };
        let available = r#"(.conditions.[] | select(.type == "Available")).status"#;
        let progressing = r#"(.conditions.[] | select(.type == "Progressing")).status"#;
        assert!(paths(&[(available, "True")]).is_ready(&deployment));
        assert!(!paths(&[(available, "True"), (progressing, "True")]).is_ready(&deployment));
        assert!(!paths(&[(available, "True")]).is_ready(&json!({"metadata": {}})));
    }

    #[test]
    fn a_daemonset_is_not_ready_before_its_controller_has_seen_it() {
        let rule = kind_readiness("DaemonSet").unwrap();
        let fresh = json!({"metadata": {"generation": 1}, "status": {}});
        let seen = json!({"metadata": {"generation": 1}, "status": {
            "observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 3}});
        let partly = json!({"metadata": {"generation": 1}, "status": {
            "observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 2}});
        assert!(!rule(&fresh));
        assert!(rule(&seen));
        assert!(!rule(&partly));
    }
}
