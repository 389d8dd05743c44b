//! Objects as burner's watches decode them: only the fields burner reads.
//!
//! Most of a pod's JSON is its spec and its managedFields, which no watch of burner looks
//! at. Decoding them into typed objects (every managedFields entry is a tree of maps) was
//! the largest share of a run's CPU time and allocations. Fields left out here are skipped
//! by the JSON reader without being built.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ApiResource, DynamicResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// The metadata fields burner's watches use.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
}

fn slim_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let meta = SlimMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp,
        deletion_timestamp: meta.deletion_timestamp,
        labels: meta.labels,
        ..ObjectMeta::default()
    })
}

/// How many entries a list has, without decoding them.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let entries = Option::<Vec<serde::de::IgnoredAny>>::deserialize(deserializer)?;
    Ok(entries.map_or(0, |e| e.len()))
}

/// A pod as the pod-latency measurement watches it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WatchedPod {
    #[serde(deserialize_with = "slim_metadata", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WatchedPodSpec,
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    pub node_name: Option<String>,
    /// How many containers the pod has.
    #[serde(deserialize_with = "count", default)]
    pub containers: usize,
}

impl kube::Resource for WatchedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Any object as a wait for readiness watches it: its metadata, `spec.replicas` and its
/// status, which is all a readiness rule reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WatchedObject {
    #[serde(deserialize_with = "slim_metadata", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: ReplicasSpec,
    #[serde(default)]
    status: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ReplicasSpec {
    replicas: Option<i64>,
}

impl WatchedObject {
    /// The object as JSON in the shape readiness rules read: `metadata.generation`,
    /// `spec.replicas` and `status`.
    pub fn readiness_view(&self) -> Value {
        let mut spec = json!({});
        if let Some(replicas) = self.spec.replicas {
            spec["replicas"] = json!(replicas);
        }
        json!({
            "metadata": {"generation": self.metadata.generation},
            "spec": spec,
            "status": self.status,
        })
    }
}

impl kube::Resource for WatchedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_json() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "2026-11-28T03:00:00Z",
                "labels": {"app": "x"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:containers": {}}}}],
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        })
    }

    #[test]
    fn a_watched_pod_keeps_what_the_measurement_reads_and_drops_managed_fields() {
        let pod: WatchedPod = serde_json::from_value(pod_json()).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(pod.metadata.uid.as_deref(), Some("u"));
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(pod.metadata.labels.unwrap()["app"], "x");
        assert!(pod.metadata.managed_fields.is_none());
        assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
        assert_eq!(pod.spec.containers, 2);
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_watched_object_shows_readiness_rules_generation_replicas_and_status() {
        let deployment: WatchedObject = serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 3, "managedFields": []},
            "spec": {"replicas": 5, "template": {"spec": {"containers": []}}},
            "status": {"readyReplicas": 5, "observedGeneration": 3},
        }))
        .unwrap();
        let view = deployment.readiness_view();
        assert_eq!(view.pointer("/metadata/generation"), Some(&json!(3)));
        assert_eq!(view.pointer("/spec/replicas"), Some(&json!(5)));
        assert_eq!(view.pointer("/status/readyReplicas"), Some(&json!(5)));
        let bare: WatchedObject =
            serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
        assert_eq!(bare.readiness_view().pointer("/spec/replicas"), None);
    }
}
