//! The statuses a kubelet writes for a pod, stage by stage, as strategic-merge patches of
//! `pods/status`. Pure functions of the pod's spec and the stage times.
//!
//! Stages, each written at most once:
//! 1. **Pending**: the kubelet has accepted the pod: hostIP, startTime, containers waiting.
//! 2. **Running**: the sandbox and containers run: podIP, PodReadyToStartContainers and
//!    Initialized true, init containers completed. Containers without a readiness probe
//!    are ready at once, so a pod without probes is Ready in this same write.
//! 3. **Ready** (only when a container has a readiness probe): the probes pass.
//! 4. **Succeeded** (restartPolicy Never or OnFailure): every container exited 0.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// What of a pod's spec shapes its statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    pub init_containers: Vec<ContainerFacts>,
    pub containers: Vec<ContainerFacts>,
    /// restartPolicy Never or OnFailure: the pod runs to completion.
    pub runs_to_completion: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    pub name: String,
    pub image: String,
    pub has_readiness_probe: bool,
}

impl PodFacts {
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let facts = |containers: Option<&Vec<k8s_openapi::api::core::v1::Container>>| {
            containers
                .into_iter()
                .flatten()
                .map(|c| ContainerFacts {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    has_readiness_probe: c.readiness_probe.is_some(),
                })
                .collect()
        };
        Self {
            init_containers: facts(spec.and_then(|s| s.init_containers.as_ref())),
            containers: facts(spec.map(|s| &s.containers)),
            runs_to_completion: matches!(
                spec.and_then(|s| s.restart_policy.as_deref()),
                Some("Never") | Some("OnFailure")
            ),
        }
    }

    /// Whether a separate Ready stage follows Running.
    pub fn waits_for_readiness(&self) -> bool {
        self.containers.iter().any(|c| c.has_readiness_probe)
    }
}

/// When each stage happened, for the timestamps the statuses carry.
#[derive(Debug, Clone, Copy)]
pub struct StageTimes {
    pub accepted: Timestamp,
    pub started: Timestamp,
}

/// A pod condition. `reason` is always sent, null when there is none: a strategic merge
/// would otherwise keep the reason of the condition's previous state.
fn condition(kind: &str, ok: bool, reason: Option<&str>, at: Timestamp) -> Value {
    json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "reason": reason,
        "lastProbeTime": null,
        "lastTransitionTime": at.to_string(),
    })
}

fn waiting(containers: &[ContainerFacts], reason: &str) -> Value {
    containers
        .iter()
        .map(|c| json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": reason}}}))
        .collect()
}

/// The status of a container that has started, with `state` its running or terminated
/// state.
fn started_container(c: &ContainerFacts, ready: bool, running: bool, state: Value) -> Value {
    json!({
        "name": c.name, "image": c.image, "imageID": format!("hollow://{}", c.image),
        "containerID": format!("hollow://{}", c.name),
        "ready": ready, "restartCount": 0, "started": running, "state": state,
    })
}

fn running(containers: &[ContainerFacts], started: Timestamp, probes_passed: bool) -> Value {
    containers
        .iter()
        .map(|c| {
            let ready = probes_passed || !c.has_readiness_probe;
            let state = json!({"running": {"startedAt": started.to_string()}});
            started_container(c, ready, true, state)
        })
        .collect()
}

fn completed(containers: &[ContainerFacts], started: Timestamp, finished: Timestamp) -> Value {
    let state = json!({"terminated": {
        "exitCode": 0, "reason": "Completed",
        "startedAt": started.to_string(), "finishedAt": finished.to_string(),
    }});
    containers
        .iter()
        .map(|c| started_container(c, false, false, state.clone()))
        .collect()
}

/// Stage 1: accepted by the node, nothing started yet.
pub fn pending(facts: &PodFacts, host_ip: Ipv4Addr, at: Timestamp) -> Value {
    let initialized = facts.init_containers.is_empty();
    json!({"status": {
        "phase": "Pending",
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "startTime": at.to_string(),
        "conditions": [
            condition("PodReadyToStartContainers", false, None, at),
            condition("Initialized", initialized, (!initialized).then_some("ContainersNotInitialized"), at),
            condition("ContainersReady", false, Some("ContainersNotReady"), at),
            condition("Ready", false, Some("ContainersNotReady"), at),
        ],
        "initContainerStatuses": waiting(&facts.init_containers, "PodInitializing"),
        "containerStatuses": waiting(&facts.containers, if initialized { "ContainerCreating" } else { "PodInitializing" }),
    }})
}

/// Stage 2: running; Ready too unless a readiness probe has yet to pass. It carries the
/// fields of stage 1 as well, so it stands alone when stage 1 was superseded before it was
/// written (see [`crate::hollow`]'s status coalescing).
pub fn running_stage(
    facts: &PodFacts,
    host_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    times: StageTimes,
    probes_passed: bool,
) -> Value {
    let ready = probes_passed || !facts.waits_for_readiness();
    let at = times.started;
    let not_ready = (!ready).then_some("ContainersNotReady");
    json!({"status": {
        "phase": "Running",
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "startTime": times.accepted.to_string(),
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "conditions": [
            condition("PodReadyToStartContainers", true, None, at),
            condition("Initialized", true, None, at),
            condition("ContainersReady", ready, not_ready, at),
            condition("Ready", ready, not_ready, at),
        ],
        "initContainerStatuses": completed(&facts.init_containers, times.accepted, at),
        "containerStatuses": running(&facts.containers, at, probes_passed),
    }})
}

/// Stage 3: readiness probes passed.
pub fn ready_stage(facts: &PodFacts, times: StageTimes, at: Timestamp) -> Value {
    json!({"status": {
        "conditions": [
            condition("ContainersReady", true, None, at),
            condition("Ready", true, None, at),
        ],
        "containerStatuses": running(&facts.containers, times.started, true),
    }})
}

/// Stage 4: every container exited 0.
pub fn succeeded(facts: &PodFacts, times: StageTimes, at: Timestamp) -> Value {
    json!({"status": {
        "phase": "Succeeded",
        "conditions": [
            condition("PodReadyToStartContainers", false, None, at),
            condition("ContainersReady", false, Some("PodCompleted"), at),
            condition("Ready", false, Some("PodCompleted"), at),
        ],
        "containerStatuses": completed(&facts.containers, times.started, at),
    }})
}

/// Whether the pod's status already shows the last thing a hollow kubelet writes for it:
/// finished, or (for pods that do not run to completion) Running and Ready.
pub fn lifecycle_complete(pod: &Pod, facts: &PodFacts) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    match status.phase.as_deref() {
        Some("Succeeded") | Some("Failed") => true,
        Some("Running") if !facts.runs_to_completion => status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        _ => false,
    }
}

/// The pod an event is about.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// The `Started` event the kubelet posts for a container, named as client-go's recorder
/// names events: `<pod>.<creation time in hexadecimal Unix nanoseconds>`. kube-burner reads
/// the container start time from that name.
pub fn started_event(pod: PodRef<'_>, node: &str, container: &str, at: Timestamp) -> Event {
    let nanos = at.as_nanosecond().max(0);
    serde_json::from_value(json!({
        "metadata": {"name": format!("{}.{nanos:x}", pod.name), "namespace": pod.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
            "fieldPath": format!("spec.containers{{{container}}}"),
        },
        "reason": "Started",
        "message": format!("Started container {container}"),
        "type": "Normal",
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": at.to_string(),
        "lastTimestamp": at.to_string(),
        "count": 1,
    }))
    .expect("an Event from its own fields")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};

    #[test]
    fn a_started_event_carries_the_start_time_in_its_name_as_client_go_names_events() {
        let at: Timestamp = "2026-11-28T03:27:05.123456789Z".parse().unwrap();
        let pod = PodRef {
            namespace: "ns",
            name: "web-0",
            uid: "u-1",
        };
        let event = started_event(pod, "hollow-3", "app", at);
        let name = event.metadata.name.unwrap();
        let (pod_name, hex) = name.split_once('.').unwrap();
        assert_eq!(pod_name, "web-0");
        // What kube-burner does with the suffix: hexadecimal Unix nanoseconds.
        assert_eq!(
            i128::from(i64::from_str_radix(hex, 16).unwrap()),
            at.as_nanosecond()
        );
        assert_eq!(event.reason.as_deref(), Some("Started"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("u-1"));
        assert_eq!(
            event.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(event.source.unwrap().host.as_deref(), Some("hollow-3"));
    }

    fn pod(restart_policy: &str, probe: bool, init: bool) -> Pod {
        let container = |name: &str| Container {
            name: name.into(),
            image: Some("pause".into()),
            readiness_probe: probe.then(Probe::default),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                containers: vec![container("app")],
                init_containers: init.then(|| vec![container("setup")]),
                restart_policy: Some(restart_policy.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn times() -> StageTimes {
        StageTimes {
            accepted: Timestamp::UNIX_EPOCH,
            started: Timestamp::from_second(2).unwrap(),
        }
    }

    fn condition_status<'a>(patch: &'a Value, kind: &str) -> &'a str {
        patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .map(|c| c["status"].as_str().unwrap())
            .unwrap_or("absent")
    }

    #[test]
    fn facts_follow_the_spec() {
        let facts = PodFacts::of(&pod("Never", true, true));
        assert!(facts.runs_to_completion && facts.waits_for_readiness());
        assert_eq!(facts.init_containers[0].name, "setup");
        assert!(!PodFacts::of(&pod("Always", false, false)).runs_to_completion);
    }

    #[test]
    fn a_pod_without_probes_is_ready_when_it_starts() {
        let facts = PodFacts::of(&pod("Always", false, false));
        let pending = pending(&facts, Ipv4Addr::LOCALHOST, Timestamp::UNIX_EPOCH);
        assert_eq!(pending["status"]["phase"], "Pending");
        assert_eq!(condition_status(&pending, "Ready"), "False");
        assert_eq!(condition_status(&pending, "Initialized"), "True");
        let running = running_stage(
            &facts,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(10, 128, 0, 1),
            times(),
            false,
        );
        assert_eq!(running["status"]["phase"], "Running");
        assert_eq!(running["status"]["hostIP"], "127.0.0.1");
        assert_eq!(running["status"]["startTime"], "1970-01-01T00:00:00Z");
        assert_eq!(running["status"]["podIP"], "10.128.0.1");
        for kind in [
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            assert_eq!(condition_status(&running, kind), "True", "{kind}");
        }
        let app = &running["status"]["containerStatuses"][0];
        assert_eq!(app["ready"], true);
        assert_eq!(app["state"]["running"]["startedAt"], "1970-01-01T00:00:02Z");
    }

    #[test]
    fn a_pod_with_a_readiness_probe_becomes_ready_in_a_later_stage() {
        let facts = PodFacts::of(&pod("Always", true, true));
        let pending = pending(&facts, Ipv4Addr::LOCALHOST, Timestamp::UNIX_EPOCH);
        assert_eq!(condition_status(&pending, "Initialized"), "False");
        let running = running_stage(
            &facts,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            times(),
            false,
        );
        assert_eq!(condition_status(&running, "Ready"), "False");
        let at_once = running_stage(
            &facts,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            times(),
            true,
        );
        assert_eq!(condition_status(&at_once, "Ready"), "True");
        assert_eq!(
            running["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let ready = ready_stage(&facts, times(), Timestamp::from_second(3).unwrap());
        assert_eq!(condition_status(&ready, "Ready"), "True");
        assert_eq!(ready["status"]["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn a_finished_pod_succeeds_with_exit_code_zero() {
        let facts = PodFacts::of(&pod("OnFailure", false, false));
        let done = succeeded(&facts, times(), Timestamp::from_second(9).unwrap());
        assert_eq!(done["status"]["phase"], "Succeeded");
        assert_eq!(condition_status(&done, "Ready"), "False");
        assert_eq!(
            done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }
}
