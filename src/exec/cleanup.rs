//! Removing what a run created, selected by its uuid (and job), never by a job name
//! alone, and waiting until it is gone.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::{ApiResource, Discovery, Scope};

use super::run::RunError;
use super::{labels, wait};

/// What a clean-up removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub namespaces: u64,
    /// Objects outside those namespaces: cluster-scoped ones, and namespaced ones that
    /// templates put in namespaces of their own choosing.
    pub objects: u64,
}

/// Removes everything run `uuid` created: its namespaces (with all inside), its objects
/// elsewhere, and waits until they are gone.
pub async fn destroy(client: &kube::Client, uuid: &str) -> Result<Removed, RunError> {
    remove(client, uuid, &format!("{}={uuid}", labels::UUID)).await
}

/// The uuids of runs whose namespaces carry one of `jobs`' names.
pub async fn runs_of_jobs(
    client: &kube::Client,
    jobs: &[String],
) -> Result<std::collections::BTreeSet<String>, RunError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("{},{}", labels::UUID, labels::JOB));
    let list = api
        .list_metadata(&params)
        .await
        .map_err(cleanup_error(""))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.labels)
        .filter(|l| l.get(labels::JOB).is_some_and(|j| jobs.contains(j)))
        .filter_map(|mut l| l.remove(labels::UUID))
        .collect())
}

/// Removes what job `job` of run `uuid` created.
pub async fn destroy_job(
    client: &kube::Client,
    uuid: &str,
    job: &str,
) -> Result<Removed, RunError> {
    let selector = format!("{}={uuid},{}={job}", labels::UUID, labels::JOB);
    remove(client, uuid, &selector).await
}

async fn remove(client: &kube::Client, uuid: &str, selector: &str) -> Result<Removed, RunError> {
    let namespaces = delete_namespaces(client, uuid, selector).await?;
    let objects = delete_elsewhere(client, uuid, selector, &namespaces).await?;
    Ok(Removed {
        namespaces: namespaces.len() as u64,
        objects,
    })
}

fn cleanup_error(uuid: &str) -> impl Fn(kube::Error) -> RunError + '_ {
    move |source| RunError::Cleanup {
        uuid: uuid.to_string(),
        source,
    }
}

/// Deletes the labelled namespaces and waits until they (and so everything in them) have
/// vanished; returns their names.
async fn delete_namespaces(
    client: &kube::Client,
    uuid: &str,
    selector: &str,
) -> Result<Vec<String>, RunError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let params = ListParams::default().labels(selector);
    let names: Vec<String> = api
        .list_metadata(&params)
        .await
        .map_err(cleanup_error(uuid))?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for name in &names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(cleanup_error(uuid)(e)),
        }
    }
    let dynamic: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    wait::until_gone(&dynamic, selector, |_| true).await;
    Ok(names)
}

/// Deletes the labelled objects of every kind the cluster serves that are not inside the
/// namespaces just removed: cluster-scoped ones (CRDs, ClusterRoles, ...; deleting a CRD
/// also removes its custom resources) and namespaced ones in namespaces burner did not
/// create. Waits until they are gone.
async fn delete_elsewhere(
    client: &kube::Client,
    uuid: &str,
    selector: &str,
    removed_namespaces: &[String],
) -> Result<u64, RunError> {
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(RunError::Discovery)?;
    let params = ListParams::default().labels(selector);
    let outside = |o: &DynamicObject| {
        o.metadata
            .namespace
            .as_ref()
            .is_none_or(|ns| !removed_namespaces.contains(ns))
    };
    let mut deleted = Vec::new();
    let mut count = 0;
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            let deletable = capabilities.supports_operation(kube::discovery::verbs::LIST)
                && capabilities.supports_operation(kube::discovery::verbs::DELETE);
            if !deletable || resource.kind == "Namespace" {
                continue;
            }
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = all.list_metadata(&params).await else {
                continue;
            };
            let mut any = false;
            for object in list.items {
                let as_dynamic = DynamicObject {
                    types: None,
                    metadata: object.metadata,
                    data: serde_json::Value::Null,
                };
                if !outside(&as_dynamic) {
                    continue;
                }
                let (Some(name), namespace) =
                    (as_dynamic.metadata.name, as_dynamic.metadata.namespace)
                else {
                    continue;
                };
                let api: Api<DynamicObject> = match (&capabilities.scope, namespace) {
                    (Scope::Namespaced, Some(ns)) => {
                        Api::namespaced_with(client.clone(), &ns, &resource)
                    }
                    _ => all.clone(),
                };
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => count += 1,
                    Err(kube::Error::Api(status)) if status.is_not_found() => {}
                    Err(e) => return Err(cleanup_error(uuid)(e)),
                }
                any = true;
            }
            if any {
                deleted.push(all);
            }
        }
    }
    // A CRD lingers until its finalizer has removed every custom resource of it: wait, so
    // that a finished clean-up means nothing of the run is left.
    for api in &deleted {
        wait::until_gone(api, selector, outside).await;
    }
    Ok(count)
}
