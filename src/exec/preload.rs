//! `preLoadImages`: before a create job, a DaemonSet runs every image the job's pods use on
//! every node, so image pulls do not show up in the pod startup latency the job measures.
//! It is waited for up to `preLoadPeriod` (a timeout only warns, as in kube-burner), then
//! its namespace is deleted. Hollow nodes start it at once.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::labels;
use super::run::{JobContext, RunError};
use crate::plan::PlannedObject;

/// kube-burner's default `preLoadPeriod`.
const DEFAULT_PERIOD: Duration = Duration::from_secs(600);

/// The images of the pods `objects` make: bare Pods and the pod templates of workloads.
pub(super) fn images(objects: &[PlannedObject]) -> BTreeSet<String> {
    let mut images = BTreeSet::new();
    for object in objects {
        let manifest = object.manifest();
        let spec = match &*object.kind {
            "Pod" => manifest.pointer("/spec"),
            "CronJob" => manifest.pointer("/spec/jobTemplate/spec/template/spec"),
            _ => manifest.pointer("/spec/template/spec"),
        };
        let Some(spec) = spec else { continue };
        for list in ["initContainers", "containers"] {
            for container in spec[list].as_array().into_iter().flatten() {
                if let Some(image) = container["image"].as_str() {
                    images.insert(image.to_string());
                }
            }
        }
    }
    images
}

pub(super) async fn pull_images(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
) -> Result<(), RunError> {
    let images = images(objects);
    if images.is_empty() {
        return Ok(());
    }
    let job = ctx.job;
    let namespace = format!(
        "preload-{}-{}",
        job.name().chars().take(40).collect::<String>(),
        &ctx.config.uuid.chars().take(8).collect::<String>()
    )
    .to_lowercase();
    // The uuid label lets `burner destroy` and gc find it if the run stops midway.
    let labels = json!({
        labels::UUID: ctx.config.uuid,
        labels::JOB: "preload",
        labels::RUN_ID: ctx.options.run_id,
    });
    let namespaces: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<Namespace>(&()));
    let namespace_object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels},
    }))
    .expect("a namespace from known fields");
    let error = |source| RunError::Preload {
        job: job.name().into(),
        source,
    };
    match namespaces
        .create(&PostParams::default(), &namespace_object)
        .await
    {
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        other => {
            other.map_err(error)?;
        }
    }
    let daemonset: DaemonSet =
        serde_json::from_value(daemonset(&images, &labels, &job.raw.pre_load_node_labels))
            .expect("a DaemonSet from known fields");
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
    api.create(&PostParams::default(), &daemonset)
        .await
        .map_err(error)?;
    let period = job.raw.pre_load_period.unwrap_or(DEFAULT_PERIOD);
    tracing::info!(
        job = job.name(),
        images = images.len(),
        "pre-loading images for up to {}",
        humantime::format_duration(period)
    );
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &namespace,
        &ApiResource::erase::<DaemonSet>(&()),
    );
    let is_ready = super::ready::kind_readiness("DaemonSet").expect("DaemonSets have a rule");
    let ready = super::ready::until_one_is_ready(&dynamic, watcher::Config::default(), is_ready);
    if tokio::time::timeout(period, ready).await.is_err() {
        tracing::warn!(
            job = job.name(),
            "images were not pre-loaded on every node within preLoadPeriod; going on"
        );
    }
    // Deleted without waiting: the job need not wait for it, and gc waits for it.
    match namespaces
        .delete(&namespace, &DeleteParams::background())
        .await
    {
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        other => {
            other.map_err(error)?;
        }
    }
    Ok(())
}

/// One container per image, which only has to start: a pod Running means its images are on
/// the node.
fn daemonset(
    images: &BTreeSet<String>,
    labels: &Value,
    node_labels: &std::collections::BTreeMap<String, String>,
) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            json!({
                "name": format!("pull-{i}"),
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "inf"],
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
            })
        })
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "preload", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": "preload"}},
            "template": {
                "metadata": {"labels": {"app": "preload"}},
                "spec": {
                    "nodeSelector": node_labels,
                    "terminationGracePeriodSeconds": 0,
                    "containers": containers,
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(manifest: Value) -> PlannedObject {
        PlannedObject::from_manifest(&manifest, None)
    }

    #[test]
    fn images_come_from_pods_and_pod_templates_once_each() {
        let objects = [
            planned(json!({"kind": "Pod", "spec": {
                "initContainers": [{"image": "init:1"}],
                "containers": [{"image": "app:1"}, {"image": "app:1"}]}})),
            planned(json!({"kind": "Deployment", "spec": {"template": {"spec": {
                "containers": [{"image": "web:2"}]}}}})),
            planned(
                json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {
                "spec": {"containers": [{"image": "batch:3"}]}}}}}}),
            ),
            planned(json!({"kind": "ConfigMap", "data": {"image": "not-an-image"}})),
        ];
        let found: Vec<String> = images(&objects).into_iter().collect();
        assert_eq!(found, ["app:1", "batch:3", "init:1", "web:2"]);
    }
}
