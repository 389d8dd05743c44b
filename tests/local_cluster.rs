//! The local control plane works as a Kubernetes cluster: burner's client reaches it, the
//! apiserver stores and watches objects, the controller-manager creates pods for a
//! Deployment and the scheduler tries to place them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Event, Namespace, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client, ResourceExt};

const WAIT: Duration = Duration::from_secs(60);

async fn delete_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await
        .expect("delete namespace");
}

#[tokio::test]
async fn the_apiserver_reports_ready() {
    let client = common::client().await;
    let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
    assert_eq!(client.request_text(request).await.unwrap().trim(), "ok");
}

#[tokio::test]
async fn configmaps_can_be_created_listed_watched_and_deleted() {
    let client = common::client().await;
    let namespace = common::create_namespace(&client, "configmaps").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let selector = "burner.test/case=configmaps";

    let mut watch = configmaps
        .watch(&WatchParams::default().labels(selector), "0")
        .await
        .expect("watch configmaps")
        .boxed();
    for i in 0..3 {
        let configmap = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i}")),
                labels: Some(BTreeMap::from([(
                    "burner.test/case".to_string(),
                    "configmaps".to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("index".to_string(), i.to_string())])),
            ..Default::default()
        };
        configmaps
            .create(&PostParams::default(), &configmap)
            .await
            .expect("create configmap");
    }

    let listed = configmaps
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list configmaps");
    let mut names: Vec<String> = listed.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["cm-0", "cm-1", "cm-2"]);
    assert_eq!(listed.items[0].data.as_ref().unwrap()["index"], "0");

    let mut added = Vec::new();
    while added.len() < 3 {
        match next_event(&mut watch).await {
            WatchEvent::Added(configmap) => added.push(configmap.name_any()),
            other => panic!("expected an Added event, got {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, names);

    configmaps
        .delete("cm-1", &DeleteParams::default())
        .await
        .expect("delete configmap");
    match next_event(&mut watch).await {
        WatchEvent::Deleted(configmap) => assert_eq!(configmap.name_any(), "cm-1"),
        other => panic!("expected a Deleted event, got {other:?}"),
    }
    let left = configmaps
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list configmaps");
    assert_eq!(left.items.len(), 2);
    assert!(configmaps.get_opt("cm-1").await.unwrap().is_none());

    delete_namespace(&client, &namespace).await;
}

/// The next event that is about an object (bookmarks only mark progress).
async fn next_event<S>(watch: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(WAIT, watch.try_next())
            .await
            .expect("a watch event in time")
            .expect("a healthy watch")
            .expect("the watch to stay open");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

#[tokio::test]
async fn a_deployment_gets_pods_that_stay_pending_without_nodes() {
    let client = common::client().await;
    let namespace = common::create_namespace(&client, "deployment").await;
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".to_string()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "pause".to_string(),
                        image: Some("registry.k8s.io/pause:3.10".to_string()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    // The controller-manager's deployment and replicaset controllers create the pods...
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let created = common::eventually("3 pods of the deployment", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (list.items.len() == 3).then_some(list.items)
    })
    .await;
    for pod in &created {
        let status = pod.status.as_ref().expect("pod status");
        assert_eq!(
            status.phase.as_deref(),
            Some("Pending"),
            "{}",
            pod.name_any()
        );
        assert!(
            pod.spec.as_ref().unwrap().node_name.is_none(),
            "{} was bound",
            pod.name_any()
        );
    }

    // ...and the scheduler, finding no node, says so in an event.
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let event = common::eventually("a FailedScheduling event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
    })
    .await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert!(
        event
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("nodes available"),
        "{:?}",
        event.message
    );

    delete_namespace(&client, &namespace).await;
}
