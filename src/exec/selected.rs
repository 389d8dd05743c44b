//! Jobs that act on objects that already exist, chosen by kind and label selector: delete
//! (then wait until they are gone), patch (with a rendered patch per iteration) and read
//! (get each, per iteration). Every request goes through the job's rate gate.

use std::sync::atomic::Ordering;
use std::time::Instant;

use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::run::{Call, JobContext, JobResult, RunError, paced, send};
use crate::config::raw::ExecutionMode;
use crate::config::{Config, Job, JobType, Object};
use crate::template::RenderOptions;

/// How a patch object's rendered template is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn parse(patch_type: &str) -> Option<Self> {
        match patch_type {
            "application/json-patch+json" => Some(PatchKind::Json),
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
    let patch_error = |message: String| RunError::Patch {
        job: job.name().into(),
        template: template.file.display().to_string(),
        message,
    };
    let patch: Value = serde_saphyr::from_str(&rendered)
        .map_err(|e| patch_error(e.without_snippet().to_string()))?;
    let patch_kind = object.raw.patch_type.as_deref().and_then(PatchKind::parse);
    if patch_kind == Some(PatchKind::Json)
        && let Err(e) = serde_json::from_value::<json_patch::Patch>(patch.clone())
    {
        return Err(patch_error(format!(
            "not a JSON patch (a list of {{op, path, value}} operations): {e}"
        )));
    }
    Ok(patch)
}

pub(super) async fn run_selected_job(ctx: &JobContext<'_>) -> Result<JobResult, RunError> {
    let job = ctx.job;
    ctx.progress.set_phase(crate::progress::Phase::Acting);
    let started = Instant::now();
    let mut expected = 0u64;
    // A delete job runs once, whatever its jobIterations, as in kube-burner.
    let iterations = if job.job_type() == JobType::Delete {
        1
    } else {
        job.raw.job_iterations
    };
    // Patch jobs go in parallel unless told otherwise; delete and read jobs go one object
    // after another only when asked.
    let sequential = job.raw.execution_mode == Some(ExecutionMode::Sequential);
    for iteration in 0..iterations {
        if iteration > 0
            && let Some(delay) = job.raw.job_iteration_delay
        {
            tokio::time::sleep(delay).await;
        }
        for object in &job.objects {
            let (resource, scope) = resolve_selected(ctx.discovery.discovery(), job, object)?;
            let selector = object
                .raw
                .label_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let all: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
            let params = ListParams::default().labels(&selector);
            let listed = send(ctx, Call::new("list", &resource.plural), |_| {
                all.list_metadata(&params)
            })
            .await;
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
                    ctx.config,
                    job,
                    object,
                    iteration,
                    &ctx.options.run_id,
                )?),
                _ => None,
            };
            let patch_kind = object.raw.patch_type.as_deref().and_then(PatchKind::parse);
            let api_of = |namespace: &Option<String>| match (&scope, namespace) {
                (Scope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(ctx.client.clone(), ns, &resource)
                }
                _ => all.clone(),
            };
            if sequential {
                for (n, (namespace, name)) in items.iter().enumerate() {
                    if n > 0
                        && let Some(delay) = job.raw.object_delay
                    {
                        tokio::time::sleep(delay).await;
                    }
                    let api = api_of(namespace);
                    act(
                        ctx,
                        (&api, &resource.plural),
                        None,
                        name,
                        patch.as_ref(),
                        patch_kind,
                    )
                    .await;
                    if job.raw.object_wait {
                        until_ready(&api, name, &resource.kind).await;
                    }
                }
            } else {
                let patch = patch.as_ref();
                paced(ctx, &items, |(namespace, name), intended| {
                    let api = api_of(namespace);
                    let plural = &resource.plural;
                    async move {
                        act(ctx, (&api, plural), intended, name, patch, patch_kind).await;
                    }
                })
                .await;
            }
            if job.job_type() == JobType::Delete && job.raw.wait_for_deletion {
                super::wait::until_gone(&all, &selector, |_| true).await;
            }
        }
    }
    let elapsed = started.elapsed();
    let done = ctx.counters.created.load(Ordering::Relaxed);
    Ok(JobResult {
        name: job.name().into(),
        expected,
        created: done,
        errors: ctx.counters.errors.load(Ordering::Relaxed),
        retries: ctx.counters.retries.load(Ordering::Relaxed),
        create_time: elapsed,
        achieved_rate: done as f64 / elapsed.as_secs_f64().max(1e-9),
        ..JobResult::default()
    })
}

/// Deletes, reads or patches one object through the job's gate, counting it when done.
/// `resource` is the object's plural name; `intended`, when the job's gate released the
/// request already.
async fn act(
    ctx: &JobContext<'_>,
    (api, resource): (&Api<DynamicObject>, &str),
    intended: Option<Instant>,
    name: &str,
    patch: Option<&Value>,
    patch_kind: Option<PatchKind>,
) {
    let call = |verb| Call {
        verb,
        resource,
        paced: intended,
    };
    let done = match ctx.job.job_type() {
        JobType::Delete => send(ctx, call("delete"), |_| async {
            match api.delete(name, &DeleteParams::default()).await {
                Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await
        .is_some(),
        JobType::Read => send(ctx, call("get"), |_| api.get(name)).await.is_some(),
        _ => {
            let body = patch.expect("rendered for patch jobs");
            send(ctx, call("patch"), |_| async {
                let params = PatchParams::default();
                let result = match patch_kind {
                    Some(PatchKind::Json) => {
                        let operations: json_patch::Patch = serde_json::from_value(body.clone())
                            .expect("checked when the patch was rendered");
                        api.patch(name, &params, &Patch::Json::<()>(operations))
                            .await
                    }
                    Some(PatchKind::Merge) => api.patch(name, &params, &Patch::Merge(body)).await,
                    Some(PatchKind::Strategic) => {
                        api.patch(name, &params, &Patch::Strategic(body)).await
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
        ctx.counters.created.fetch_add(1, Ordering::Relaxed);
    }
}

/// `objectWait`: watches one object until its kind's readiness rule holds (at once for a
/// kind without one).
async fn until_ready(api: &Api<DynamicObject>, name: &str, kind: &str) {
    if let Some(is_ready) = super::ready::kind_readiness(kind) {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        super::ready::until_one_is_ready(api, config, is_ready).await;
    }
}
