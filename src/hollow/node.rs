//! What a hollow node looks like to the API: the Node a kubelet registers, its status, its
//! Lease, and the addresses it hands its pods. Pure functions, testable without a cluster.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// Label on every Node and Lease burner's hollow nodes create; its value is the name
/// prefix, so fleets with different prefixes can share a cluster.
pub const FLEET_LABEL: &str = "burner.io/hollow-fleet";
/// Namespace of node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Capacity a hollow node reports (allocatable is the same: nothing is reserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShape {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub ephemeral_storage: String,
}

impl Default for NodeShape {
    fn default() -> Self {
        Self {
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: 110,
            ephemeral_storage: "1Ti".into(),
        }
    }
}

/// A taint from `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTaint(pub Taint);

impl FromStr for NodeTaint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key_value, effect) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` is not key[=value]:Effect"))?;
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            return Err(format!(
                "`{effect}` in `{text}` is not a taint effect; use NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = match key_value.split_once('=') {
            Some((key, value)) => (key, Some(value.to_string())),
            None => (key_value, None),
        };
        if key.is_empty() {
            return Err(format!("`{text}` has no key"));
        }
        Ok(NodeTaint(Taint {
            key: key.to_string(),
            value,
            effect: effect.to_string(),
            time_added: None,
        }))
    }
}

impl std::fmt::Display for NodeTaint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.value {
            Some(value) => write!(f, "{}={value}:{}", self.0.key, self.0.effect),
            None => write!(f, "{}:{}", self.0.key, self.0.effect),
        }
    }
}

/// A label from `key=value`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not key=value")),
    }
}

/// Everything that is the same for all nodes of a fleet.
#[derive(Debug, Clone)]
pub struct NodeTemplate {
    pub name_prefix: String,
    pub shape: NodeShape,
    pub extra_labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// The version the nodes report as their kubelet's: the apiserver's.
    pub kubelet_version: String,
}

impl NodeTemplate {
    pub fn node_name(&self, index: u32) -> String {
        format!("{}-{index}", self.name_prefix)
    }

    /// The index of one of this fleet's nodes, from its name.
    pub fn node_index(&self, name: &str) -> Option<u32> {
        let digits = name.strip_prefix(&self.name_prefix)?.strip_prefix('-')?;
        if digits.starts_with('0') && digits.len() > 1 {
            return None;
        }
        digits.parse().ok()
    }

    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        let mut labels = self.extra_labels.clone();
        labels.extend([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), go_arch().to_string()),
            (
                "node.kubernetes.io/instance-type".to_string(),
                "hollow".to_string(),
            ),
            (FLEET_LABEL.to_string(), self.name_prefix.clone()),
        ]);
        labels
    }

    /// The Node as registered: metadata and spec. Its status is written by [`Self::status_patch`].
    pub fn node(&self, index: u32) -> Node {
        let name = self.node_name(index);
        let cidr = pod_cidr(index);
        Node {
            metadata: ObjectMeta {
                labels: Some(self.labels(&name)),
                name: Some(name),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(cidr.clone()),
                pod_cidrs: Some(vec![cidr]),
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                provider_id: Some(format!("burner://hollow/{}", self.node_name(index))),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A strategic-merge patch of the node's status: capacity, conditions (all healthy, last
    /// heartbeat `now`, last changed `changed`), the loopback address and node info.
    pub fn status_patch(&self, index: u32, now: Timestamp, changed: Timestamp) -> Value {
        let resources = json!({
            "cpu": self.shape.cpu,
            "memory": self.shape.memory,
            "pods": self.shape.pods.to_string(),
            "ephemeral-storage": self.shape.ephemeral_storage,
        });
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now.to_string(), "lastTransitionTime": changed.to_string(),
            })
        };
        json!({
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "hollow node has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "hollow node has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "hollow node has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "hollow kubelet is posting ready status"),
                ],
                // Never dialled: the apiserver is never asked to reach a hollow kubelet.
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name(index)},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": format!("{index:032x}"),
                    "systemUUID": format!("{index:032x}"),
                    "bootID": format!("{index:032x}"),
                    "kernelVersion": "hollow",
                    "osImage": "burner hollow node",
                    "containerRuntimeVersion": "hollow://1.0.0",
                    "kubeletVersion": self.kubelet_version,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": go_arch(),
                },
            }
        })
    }
}

/// The node's heartbeat Lease, owned by the Node so it goes when the Node goes.
pub fn lease(
    node_name: &str,
    node_uid: &str,
    duration_seconds: i32,
    fleet: &str,
    now: Timestamp,
) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            labels: Some(BTreeMap::from([(
                FLEET_LABEL.to_string(),
                fleet.to_string(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: node_name.to_string(),
                uid: node_uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// A merge patch that renews a Lease.
pub fn lease_renewal(now: Timestamp) -> Value {
    json!({"spec": {"renewTime": MicroTime(now)}})
}

/// Node `index` gets the /24 at 10.128.0.0 + index × 256 (the local cluster's cluster CIDR
/// is 10.128.0.0/9, room for 32,768 nodes). Pod addresses are never dialled.
pub fn pod_cidr(index: u32) -> String {
    format!("{}/24", subnet_base(index))
}

fn subnet_base(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + ((index % 32_768) << 8))
}

/// The `n`-th pod address of node `index`: .1 to .254 of its /24, round robin.
pub fn pod_ip(index: u32, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet_base(index)) + 1 + n % 254)
}

/// This machine's architecture in Kubernetes' (Go's) words.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> NodeTemplate {
        NodeTemplate {
            name_prefix: "hollow".into(),
            shape: NodeShape::default(),
            extra_labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            taints: vec!["dedicated=load:NoSchedule".parse::<NodeTaint>().unwrap().0],
            kubelet_version: "v1.36.3".into(),
        }
    }

    #[test]
    fn node_names_and_indexes_round_trip_and_foreign_names_are_rejected() {
        let t = template();
        assert_eq!(t.node_name(42), "hollow-42");
        assert_eq!(t.node_index("hollow-42"), Some(42));
        for foreign in ["hollow-042", "hollowx-1", "other-1", "hollow-", "hollow-1a"] {
            assert_eq!(t.node_index(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_node_carries_the_kubelet_labels_its_taints_and_a_pod_cidr() {
        let node = template().node(3);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-3");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "hollow");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels[FLEET_LABEL], "hollow");
        assert_eq!(labels["zone"], "a");
        let spec = node.spec.unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.128.3.0/24"));
        assert_eq!(spec.taints.unwrap()[0].effect, "NoSchedule");
    }

    #[test]
    fn the_status_reports_capacity_healthy_conditions_and_only_loopback() {
        let patch = template().status_patch(1, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH);
        let status = &patch["status"];
        assert_eq!(status["capacity"]["cpu"], "32");
        assert_eq!(status["allocatable"]["pods"], "110");
        let conditions = status["conditions"].as_array().unwrap();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert!(
            conditions
                .iter()
                .filter(|c| c["type"] != "Ready")
                .all(|c| c["status"] == "False")
        );
        assert_eq!(status["addresses"][0]["address"], "127.0.0.1");
        assert_eq!(status["nodeInfo"]["kubeletVersion"], "v1.36.3");
    }

    #[test]
    fn pod_addresses_stay_inside_the_node_cidr() {
        assert_eq!(pod_ip(0, 0), Ipv4Addr::new(10, 128, 0, 1));
        assert_eq!(pod_ip(0, 253), Ipv4Addr::new(10, 128, 0, 254));
        assert_eq!(pod_ip(0, 254), Ipv4Addr::new(10, 128, 0, 1));
        assert_eq!(pod_ip(300, 5), Ipv4Addr::new(10, 129, 44, 6));
        assert_eq!(pod_cidr(300), "10.129.44.0/24");
    }

    #[test]
    fn taints_and_labels_parse_or_say_what_is_wrong() {
        let t = "gpu:NoExecute".parse::<NodeTaint>().unwrap().0;
        assert_eq!(
            (t.key.as_str(), t.value, t.effect.as_str()),
            ("gpu", None, "NoExecute")
        );
        assert!(
            "gpu=yes"
                .parse::<NodeTaint>()
                .unwrap_err()
                .contains("key[=value]:Effect")
        );
        assert!(
            "gpu:Sometimes"
                .parse::<NodeTaint>()
                .unwrap_err()
                .contains("not a taint effect")
        );
        assert_eq!(
            parse_label("a=b").unwrap(),
            ("a".to_string(), "b".to_string())
        );
        assert!(parse_label("ab").is_err());
    }
}
