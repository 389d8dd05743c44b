//! Hollow nodes behave like kubelets to the real control plane: they become Ready, the
//! real scheduler places a Deployment's pods on them and they run those pods through
//! their conditions in order, Jobs complete, a silent node goes NotReady, and nothing of a
//! fleet is left once it stops.
//!
//! Each test runs its own fleet (its own name prefix) and pins its pods to it with a node
//! selector, so the tests share the cluster without sharing nodes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burner::hollow::{Delay, FLEET_LABEL, HollowFleet, HollowOptions};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Container, Node, Pod, PodSpec, PodTemplateSpec, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

const WAIT: Duration = Duration::from_secs(120);

fn fleet_options(prefix: &str, nodes: u32) -> HollowOptions {
    common::hollow_options(format!("{prefix}-{}", std::process::id()), nodes)
}

fn fleet_selector(prefix: &str) -> String {
    format!("{FLEET_LABEL}={prefix}")
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod template pinned to one fleet's nodes.
fn pod_template(prefix: &str, app: &str, restart_policy: &str, probe: bool) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_selector: Some(BTreeMap::from([(
                FLEET_LABEL.to_string(),
                prefix.to_string(),
            )])),
            restart_policy: Some(restart_policy.to_string()),
            containers: vec![Container {
                name: "app".to_string(),
                image: Some("registry.k8s.io/pause:3.10".to_string()),
                readiness_probe: probe.then(|| Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(8080),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn fifty_nodes_run_a_deployment_of_200_pods_through_its_conditions_and_scale_to_zero() {
    let client = common::client().await;
    let mut options = fleet_options("deploy", 50);
    options.pod_delays.start = "uniform:100ms..300ms".parse::<Delay>().unwrap();
    options.pod_delays.ready = "fixed:200ms".parse::<Delay>().unwrap();
    let prefix = options.name_prefix.clone();
    let fleet = HollowFleet::start(client.clone(), options)
        .await
        .expect("fleet starts");

    let nodes: Api<Node> = Api::all(client.clone());
    let selector = ListParams::default().labels(&fleet_selector(&prefix));
    common::eventually("50 Ready hollow nodes", WAIT, || async {
        let list = nodes.list(&selector).await.ok()?;
        (list.items.len() == 50 && list.items.iter().all(node_is_ready)).then_some(())
    })
    .await;
    let node = nodes.get(&format!("{prefix}-7")).await.unwrap();
    let labels = node.labels();
    assert_eq!(labels["kubernetes.io/hostname"], format!("{prefix}-7"));
    assert_eq!(labels["node.kubernetes.io/instance-type"], "hollow");
    let status = node.status.unwrap();
    assert_eq!(status.capacity.unwrap()["pods"].0, "110");
    assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.1");
    let pod_cidr = node.spec.unwrap().pod_cidr.unwrap();

    let ns = common::create_namespace(&client, "hollow-deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".to_string()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(200),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            template: pod_template(&prefix, "web", "Always", true),
            ..Default::default()
        }),
        ..Default::default()
    };
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let running = common::eventually("200 pods Running and Ready", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let ready = |p: &Pod| {
            let status = p.status.as_ref();
            status.and_then(|s| s.phase.as_deref()) == Some("Running")
                && status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        (list.items.len() == 200 && list.items.iter().all(ready)).then_some(list.items)
    })
    .await;

    let mut used_nodes = BTreeSet::new();
    for pod in &running {
        let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
        assert!(
            node.starts_with(&prefix),
            "{} ran on {node}",
            pod.name_any()
        );
        used_nodes.insert(node);
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(status.pod_ip.as_deref().unwrap().starts_with("10.1"));
        let conditions = status.conditions.as_ref().unwrap();
        let at = |kind: &str| {
            let c = conditions
                .iter()
                .find(|c| c.type_ == kind)
                .unwrap_or_else(|| panic!("{kind} missing"));
            assert_eq!(c.status, "True", "{kind} of {}", pod.name_any());
            c.last_transition_time.clone().unwrap().0
        };
        let order = [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ];
        let times: Vec<_> = order.iter().map(|kind| at(kind)).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{} conditions out of order: {times:?}",
            pod.name_any()
        );
        let container = &status.container_statuses.as_ref().unwrap()[0];
        assert!(container.ready && container.started == Some(true));
        assert!(container.state.as_ref().unwrap().running.is_some());
    }
    assert!(
        used_nodes.len() >= 25,
        "the scheduler used only {} nodes",
        used_nodes.len()
    );
    let on_node_7: Vec<_> = running
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(&format!("{prefix}-7")))
        .collect();
    let cidr_base = pod_cidr.trim_end_matches(".0/24");
    for pod in on_node_7 {
        let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
        assert!(
            ip.starts_with(&format!("{cidr_base}.")),
            "{ip} outside {pod_cidr}"
        );
    }

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    common::eventually("every pod removed", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        list.items.is_empty().then_some(())
    })
    .await;

    let summary = fleet.shutdown().await.expect("fleet stops");
    assert_eq!(summary.nodes_registered, 50);
    assert!(summary.pods_ready >= 200, "{summary:?}");
    assert!(summary.pods_deleted >= 200, "{summary:?}");
    assert_eq!(summary.write_errors, 0, "{summary:?}");
}

#[tokio::test]
async fn a_job_with_five_completions_completes() {
    let client = common::client().await;
    let mut options = fleet_options("job", 3);
    options.pod_delays.run = "fixed:300ms".parse::<Delay>().unwrap();
    let prefix = options.name_prefix.clone();
    let fleet = HollowFleet::start(client.clone(), options)
        .await
        .expect("fleet starts");

    let ns = common::create_namespace(&client, "hollow-job").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = Job {
        metadata: ObjectMeta {
            name: Some("five".to_string()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions: Some(5),
            parallelism: Some(2),
            template: pod_template(&prefix, "five", "Never", false),
            ..Default::default()
        }),
        ..Default::default()
    };
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    common::eventually("the job to complete", WAIT, || async {
        let job = jobs.get("five").await.ok()?;
        let status = job.status?;
        let complete = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        (complete && status.succeeded == Some(5)).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let finished = pods
        .list(&ListParams::default().labels("app=five"))
        .await
        .unwrap();
    assert_eq!(finished.items.len(), 5);
    for pod in finished.items {
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
    }
    let summary = fleet.shutdown().await.unwrap();
    assert_eq!(summary.pods_succeeded, 5, "{summary:?}");
}

#[tokio::test]
async fn a_node_whose_heartbeat_stops_becomes_not_ready() {
    let client = common::client().await;
    let fleet = HollowFleet::start(client.clone(), fleet_options("silent", 3))
        .await
        .expect("fleet starts");
    let names = fleet.node_names();
    let nodes: Api<Node> = Api::all(client.clone());
    for name in &names {
        common::eventually("the node to be Ready", WAIT, || async {
            nodes.get(name).await.ok().filter(node_is_ready)
        })
        .await;
    }
    fleet.stop_heartbeat(&names[1]).unwrap();
    assert!(fleet.stop_heartbeat("someone-else-0").is_err());

    // The node-lifecycle controller marks the node Unknown, then taints it unreachable.
    let unreachable = |node: &Node| {
        let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
        taints.is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/unreachable"))
    };
    let silent = common::eventually(
        "the silent node to go NotReady and be tainted",
        WAIT,
        || async {
            nodes
                .get(&names[1])
                .await
                .ok()
                .filter(|n| !node_is_ready(n) && unreachable(n))
        },
    )
    .await;
    let conditions = silent.status.unwrap().conditions.unwrap();
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "Unknown", "{ready:?}");
    for name in [&names[0], &names[2]] {
        assert!(
            node_is_ready(&nodes.get(name).await.unwrap()),
            "{name} should stay Ready"
        );
    }

    fleet.resume_heartbeat(&names[1]).unwrap();
    common::eventually("the node to come back", WAIT, || async {
        nodes.get(&names[1]).await.ok().filter(node_is_ready)
    })
    .await;
    fleet.shutdown().await.unwrap();
}

#[test]
fn after_the_hollow_process_exits_its_nodes_and_leases_are_gone() {
    let kubeconfig = common::cluster().kubeconfig.clone();
    let prefix = format!("exit-{}", std::process::id());
    let process = std::process::Command::new(env!("CARGO_BIN_EXE_burner"))
        .args([
            "hollow",
            "--nodes",
            "5",
            "--name-prefix",
            &prefix,
            "--status-every",
            "0s",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let selector = fleet_selector(&prefix);
    let count = move |selector: String| {
        let kubeconfig = kubeconfig.clone();
        common::run_on_harness(async move {
            let client =
                burner::exec::connect(&burner::exec::ClientOptions::for_kubeconfig(kubeconfig))
                    .await
                    .unwrap();
            let list = ListParams::default().labels(&selector);
            let nodes = Api::<Node>::all(client.clone())
                .list(&list)
                .await
                .unwrap()
                .items
                .len();
            let leases = Api::<Lease>::namespaced(client, "kube-node-lease")
                .list(&list)
                .await
                .unwrap()
                .items
                .len();
            (nodes, leases)
        })
    };
    let deadline = std::time::Instant::now() + WAIT;
    while count(selector.clone()) != (5, 5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the 5 nodes never registered"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(process.id() as i32, libc::SIGINT) };
    let output = process.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("nodes registered     5"));
    assert_eq!(count(selector), (0, 0));
}
