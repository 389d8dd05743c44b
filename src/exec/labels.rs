//! The labels burner puts on what it creates: kube-burner v2's, so dashboards, tooling and
//! clean-up that know kube-burner work unchanged. Clean-up selects by uuid (and runid),
//! never by job name alone.

use serde_json::Value;

pub const UUID: &str = "kube-burner.io/uuid";
pub const JOB: &str = "kube-burner.io/job";
pub const INDEX: &str = "kube-burner.io/index";
pub const RUN_ID: &str = "kube-burner.io/runid";
pub const ITERATION: &str = "kube-burner.io/job-iteration";
pub const REPLICA: &str = "kube-burner.io/replica";

/// Kinds whose pods come from a template, which gets the labels too so measurements see
/// the pods (kube-burner forgets Jobs; burner does not).
const POD_TEMPLATE_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
];

/// The labels of one created object.
pub fn object_labels(
    uuid: &str,
    job: &str,
    run_id: &str,
    index: usize,
    iteration: u32,
    replica: u32,
) -> Vec<(&'static str, String)> {
    vec![
        (UUID, uuid.to_string()),
        (JOB, job.to_string()),
        (INDEX, index.to_string()),
        (RUN_ID, run_id.to_string()),
        (ITERATION, iteration.to_string()),
        (REPLICA, replica.to_string()),
    ]
}

/// Adds `labels` to the manifest and to its pod template, keeping the template's own
/// labels where keys clash (as kube-burner does).
pub fn apply(manifest: &mut Value, labels: &[(&'static str, String)]) {
    let is_workload = manifest
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| POD_TEMPLATE_KINDS.contains(&k));
    merge_into(manifest, &["metadata", "labels"], labels);
    if is_workload {
        merge_into(
            manifest,
            &["spec", "template", "metadata", "labels"],
            labels,
        );
    }
}

fn merge_into(manifest: &mut Value, path: &[&str], labels: &[(&'static str, String)]) {
    let mut target = manifest;
    for key in path {
        if !target.is_object() {
            return;
        }
        let map = target.as_object_mut().expect("checked above");
        target = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if let Value::Object(map) = target {
        for (key, value) in labels {
            map.entry(key.to_string())
                .or_insert_with(|| Value::String(value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_get_labels_on_their_pod_template_and_template_labels_win() {
        let mut deployment = json!({"kind": "Deployment", "metadata": {"labels": {"kube-burner.io/job": "mine"}}, "spec": {"template": {}}});
        apply(&mut deployment, &object_labels("u", "j", "r", 2, 3, 1));
        assert_eq!(deployment["metadata"]["labels"][JOB], "mine");
        assert_eq!(deployment["metadata"]["labels"][UUID], "u");
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"][ITERATION],
            "3"
        );
        let mut job = json!({"kind": "Job", "metadata": {}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}});
        apply(&mut job, &object_labels("u", "j", "r", 0, 0, 1));
        assert_eq!(job["spec"]["template"]["metadata"]["labels"]["a"], "b");
        assert_eq!(job["spec"]["template"]["metadata"]["labels"][RUN_ID], "r");
        let mut config_map = json!({"kind": "ConfigMap", "metadata": {"name": "x"}});
        apply(&mut config_map, &object_labels("u", "j", "r", 0, 0, 1));
        assert!(config_map.get("spec").is_none());
    }
}
