//! The kube-burner v2 config schema as it is written: every key, with kube-burner's
//! defaults, decoded strictly (an unknown key is an error). Nothing here is checked beyond
//! its type; `super::validate` turns these into a [`super::Config`].

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub jobs: Vec<RawJob>,
    #[serde(default)]
    pub metrics_endpoints: Vec<super::metrics::RawMetricsEndpoint>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Global {
    #[serde(default)]
    pub measurements: Vec<Value>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub request_timeout: Option<Duration>,
    #[serde(default)]
    pub gc: bool,
    #[serde(default)]
    pub gc_metrics: bool,
    #[serde(default)]
    pub wait_when_finished: bool,
    #[serde(default)]
    pub cluster_health: bool,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub function_templates: Vec<String>,
    #[serde(default)]
    pub deletion_strategy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JobType {
    #[default]
    Create,
    Delete,
    Patch,
    Read,
    Kubevirt,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJob {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub job_type: JobType,
    #[serde(default = "one")]
    pub job_iterations: u32,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub job_iteration_delay: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub job_pause: Option<Duration>,
    #[serde(default)]
    pub qps: f64,
    #[serde(default)]
    pub burst: i64,
    #[serde(default)]
    pub namespace: String,
    #[serde(default = "yes")]
    pub namespaced_iterations: bool,
    #[serde(default = "one")]
    pub iterations_per_namespace: u32,
    #[serde(default)]
    pub pre_create_namespaces: bool,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub max_wait_timeout: Option<Duration>,
    #[serde(default = "yes")]
    pub wait_for_deletion: bool,
    #[serde(default)]
    pub pod_wait: bool,
    #[serde(default = "yes")]
    pub wait_when_finished: bool,
    #[serde(default = "yes")]
    pub cleanup: bool,
    #[serde(default = "yes")]
    pub verify_objects: bool,
    #[serde(default = "yes")]
    pub error_on_verify: bool,
    #[serde(default = "yes")]
    pub pre_load_images: bool,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub pre_load_period: Option<Duration>,
    #[serde(default)]
    pub pre_load_node_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub namespace_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub churn_config: Option<ChurnConfig>,
    #[serde(default)]
    pub skip_indexing: bool,
    #[serde(default)]
    pub default_missing_keys_with_zero: bool,
    #[serde(default)]
    pub execution_mode: Option<ExecutionMode>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub object_delay: Option<Duration>,
    #[serde(default)]
    pub object_wait: bool,
    #[serde(default)]
    pub metrics_aggregate: bool,
    #[serde(default)]
    pub metrics_closing: Option<String>,
    #[serde(default)]
    pub gc: bool,
    #[serde(default)]
    pub measurements: Vec<Value>,
    #[serde(default)]
    pub objects: Vec<RawObject>,
    #[serde(default)]
    pub watchers: Vec<Value>,
    #[serde(default)]
    pub hooks: Vec<Value>,
    #[serde(default)]
    pub incremental_load: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChurnConfig {
    #[serde(default)]
    pub cycles: u32,
    #[serde(default)]
    pub percent: u32,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub delay: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(with = "Option<String>")]
    pub delete_delay: Option<Duration>,
    #[serde(default)]
    pub mode: ChurnMode,
}

/// What churn deletes and re-creates each cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChurnMode {
    /// A window of the job's namespaces, with everything in them.
    #[default]
    Namespaces,
    /// A share of each churnable object's instances.
    Objects,
}

/// How a patch, delete or read job goes through its selected objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionMode {
    /// All at once, through the job's rate gate.
    Parallel,
    /// One after another, `objectDelay` apart (and, with `objectWait`, each ready first).
    Sequential,
}

/// What "ready" means for an object, when its kind's own rule is not the one wanted.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitOptions {
    /// Wait for objects of this kind instead (Pods of a Deployment, say), in every namespace.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    /// More labels the waited objects must have.
    #[serde(default)]
    pub label_selector: BTreeMap<String, String>,
    /// Ready when each `key` (a jq path into `.status`) gives `value`.
    #[serde(default)]
    pub custom_status_paths: Vec<StatusPath>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPath {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawObject {
    #[serde(default)]
    pub object_template: String,
    #[serde(default = "one_i64")]
    pub replicas: i64,
    #[serde(default)]
    pub input_vars: serde_json::Map<String, Value>,
    #[serde(default = "yes")]
    pub wait: bool,
    #[serde(default)]
    pub wait_options: Option<WaitOptions>,
    #[serde(default)]
    pub run_once: bool,
    #[serde(default = "yes")]
    pub churn: bool,
    #[serde(default = "one")]
    pub repeat_every_n_iterations: u32,
    #[serde(default)]
    pub group: Option<Value>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub label_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub patch_type: Option<String>,
    #[serde(default)]
    pub kube_virt_op: Option<String>,
    /// burner: the template's syntax, when detection should not decide.
    #[serde(default)]
    pub template_syntax: Option<TemplateSyntax>,
}

/// The syntax of an object template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TemplateSyntax {
    /// Go's text/template with sprig functions, as kube-burner templates are written.
    Go,
    /// Handlebars, burner's native syntax.
    Handlebars,
}

fn one_i64() -> i64 {
    1
}

/// A Go duration string (`30s`, `1m30s`, `500ms`, `1h`); `0` means none.
pub(super) fn go_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim() == "0" {
        return Ok(None);
    }
    humantime::parse_duration(text.trim())
        .map(Some)
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like 30s, 1m30s or 500ms: {e}"
            ))
        })
}

/// Every key the schema knows at each level, for "did you mean" hints.
pub const KNOWN_KEYS: &[&str] = &[
    "global",
    "jobs",
    "metricsEndpoints",
    "measurements",
    "requestTimeout",
    "gc",
    "gcMetrics",
    "waitWhenFinished",
    "clusterHealth",
    "timeout",
    "functionTemplates",
    "deletionStrategy",
    "name",
    "jobType",
    "jobIterations",
    "jobIterationDelay",
    "jobPause",
    "qps",
    "burst",
    "namespace",
    "namespacedIterations",
    "iterationsPerNamespace",
    "preCreateNamespaces",
    "maxWaitTimeout",
    "waitForDeletion",
    "podWait",
    "cleanup",
    "verifyObjects",
    "errorOnVerify",
    "preLoadImages",
    "preLoadPeriod",
    "preLoadNodeLabels",
    "namespaceLabels",
    "namespaceAnnotations",
    "churnConfig",
    "skipIndexing",
    "defaultMissingKeysWithZero",
    "executionMode",
    "objectDelay",
    "objectWait",
    "metricsAggregate",
    "metricsClosing",
    "objects",
    "watchers",
    "hooks",
    "incrementalLoad",
    "cycles",
    "percent",
    "duration",
    "delay",
    "deleteDelay",
    "mode",
    "objectTemplate",
    "replicas",
    "inputVars",
    "wait",
    "waitOptions",
    "runOnce",
    "churn",
    "repeatEveryNIterations",
    "group",
    "kind",
    "apiVersion",
    "labelSelector",
    "patchType",
    "kubeVirtOp",
    "customStatusPaths",
    "templateSyntax",
    "key",
    "value",
    "endpoint",
    "username",
    "password",
    "token",
    "step",
    "skipTLSVerify",
    "metrics",
    "alerts",
    "alias",
    "indexer",
    "type",
    "esServers",
    "defaultIndex",
    "insecureSkipVerify",
    "metricsDirectory",
    "createTarball",
    "tarballName",
    "query",
    "metricName",
    "instant",
    "captureStart",
    "expr",
    "description",
    "severity",
    "for",
];
