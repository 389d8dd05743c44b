//! Jobs that act on objects that already exist, chosen by kind and label selector: delete
//! (then wait until they are gone), patch (with a rendered patch per iteration) and read
//! (get each, per iteration). Every request goes through the job's rate gate.

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::{ApiResource, Discovery, Scope};
use serde_json::{Value, json};

use super::run::{Counters, JobResult, RunError, RunOptions, gate, send};
use crate::config::{Config, Job, JobType, Object};
use crate::template::go::RenderOptions;

/// Requests in flight at once per job.
const CONCURRENCY: usize = 32;

/// How a patch object's rendered template is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn parse(patch_type: &str) -> Option<Self> {
        match patch_type {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// The kind an object of a delete, patch or read job selects.
pub(super) fn resolve_selected(
    discovery: &Discovery,
    job: &Job,
    object: &Object,
) -> Result<(ApiResource, Scope), RunError> {
    let kind = object.raw.kind.clone().unwrap_or_default();
    let api_version = object
        .raw
        .api_version
        .clone()
        .unwrap_or_else(|| "v1".into());
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    discovery
        .resolve_gvk(&GroupVersionKind::gvk(group, version, &kind))
        .map(|(resource, capabilities)| (resource, capabilities.scope))
        .ok_or_else(|| RunError::UnknownKind {
            job: job.name().into(),
            kind,
            api_version: api_version.clone(),
            template: "objects[].kind".into(),
        })
}

/// Renders the patch of `object` for `iteration` (Replica is 0, as in kube-burner).
pub(super) fn render_patch(
    config: &Config,
    job: &Job,
    object: &Object,
    iteration: u32,
    run_id: &str,
) -> Result<Value, RunError> {
    let mut data = json!({"Iteration": iteration, "Replica": 0, "JobName": job.name(), "UUID": config.uuid, "RunID": run_id});
    let map = data.as_object_mut().expect("an object literal");
    for (key, value) in &object.raw.input_vars {
        map.insert(key.clone(), value.clone());
    }
    let template = object.template.as_ref().ok_or_else(|| RunError::Patch {
        job: job.name().into(),
        template: "objectTemplate".into(),
        message: "a patch object needs an objectTemplate".into(),
    })?;
    let options = RenderOptions::new(job.missing, config.file.parent().map(|p| p.to_path_buf()));
    let rendered = template
        .parsed
        .render(&data, &options)
        .map_err(|e| RunError::Plan(e.into()))?;
    serde_saphyr::from_str(&rendered).map_err(|e| RunError::Patch {
        job: job.name().into(),
        template: template.file.display().to_string(),
        message: e.without_snippet().to_string(),
    })
}

pub(super) async fn run_selected_job(
    client: &kube::Client,
    config: &Config,
    job: &Job,
    discovery: &Discovery,
    options: &RunOptions,
    counters: &Counters,
) -> Result<JobResult, RunError> {
    let gate = gate(job);
    let started = Instant::now();
    let mut expected = 0u64;
    // A delete job runs once, whatever its jobIterations, as in kube-burner.
    let iterations = if job.job_type() == JobType::Delete {
        1
    } else {
        job.raw.job_iterations
    };
    for iteration in 0..iterations {
        for object in &job.objects {
            let (resource, scope) = resolve_selected(discovery, job, object)?;
            let selector = object
                .raw
                .label_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let params = ListParams::default().labels(&selector);
            let listed = send(gate.as_ref(), counters, |_| all.list_metadata(&params)).await;
            let items: Vec<(Option<String>, String)> = listed
                .map(|list| {
                    list.items
                        .into_iter()
                        .filter_map(|o| Some((o.metadata.namespace, o.metadata.name?)))
                        .collect()
                })
                .unwrap_or_default();
            expected += items.len() as u64;
            let patch = match job.job_type() {
                JobType::Patch => Some(render_patch(
                    config,
                    job,
                    object,
                    iteration,
                    &options.run_id,
                )?),
                _ => None,
            };
            let patch_kind = object.raw.patch_type.as_deref().and_then(PatchKind::parse);
            let requests = futures::stream::iter(items.iter().map(|(namespace, name)| {
                let api: Api<DynamicObject> = match (&scope, namespace) {
                    (Scope::Namespaced, Some(ns)) => {
                        Api::namespaced_with(client.clone(), ns, &resource)
                    }
                    _ => Api::all_with(client.clone(), &resource),
                };
                let (gate, patch) = (gate.as_ref(), patch.as_ref());
                async move {
                    let done = match job.job_type() {
                        JobType::Delete => send(gate, counters, |_| async {
                            match api.delete(name, &DeleteParams::default()).await {
                                Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                                other => other.map(|_| ()),
                            }
                        })
                        .await
                        .is_some(),
                        JobType::Read => send(gate, counters, |_| api.get(name)).await.is_some(),
                        _ => {
                            let body = patch.expect("rendered for patch jobs");
                            send(gate, counters, |_| async {
                                let result = match patch_kind {
                                    Some(PatchKind::Merge) => {
                                        api.patch(
                                            name,
                                            &PatchParams::default(),
                                            &Patch::Merge(body),
                                        )
                                        .await
                                    }
                                    Some(PatchKind::Strategic) => {
                                        api.patch(
                                            name,
                                            &PatchParams::default(),
                                            &Patch::Strategic(body),
                                        )
                                        .await
                                    }
                                    _ => {
                                        api.patch(
                                            name,
                                            &PatchParams::apply("burner").force(),
                                            &Patch::Apply(body),
                                        )
                                        .await
                                    }
                                };
                                result.map(|_| ())
                            })
                            .await
                            .is_some()
                        }
                    };
                    if done {
                        counters.created.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>();
            requests.await;
            if job.job_type() == JobType::Delete && job.raw.wait_for_deletion {
                super::wait::until_gone(&all, &selector).await;
            }
        }
        if let Some(delay) = job.raw.job_iteration_delay {
            tokio::time::sleep(delay).await;
        }
    }
    let elapsed = started.elapsed();
    let done = counters.created.load(Ordering::Relaxed);
    Ok(JobResult {
        name: job.name().into(),
        expected,
        created: done,
        errors: counters.errors.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        create_time: elapsed,
        achieved_rate: done as f64 / elapsed.as_secs_f64().max(1e-9),
        ..JobResult::default()
    })
}
