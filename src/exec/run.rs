//! Running the create jobs of a checked config against a cluster.
//!
//! Everything is rendered and every kind resolved before the first write, so bad input
//! changes nothing. Then, job by job: the job's namespaces, then its objects, each write
//! through the job's rate gate (qps and burst) with bounded concurrency and retries; then
//! the wait until what was created is ready (by watch, never by polling), the
//! verification of what exists, and the job's garbage collection if asked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{labels, selected, wait};
use crate::config::{Config, Job, JobType};
use crate::plan::{self, PlanError, PlannedObject};

/// Writes in flight at once per job.
const CONCURRENCY: usize = 32;
/// How long a job waits for a kind that an earlier job's CRD defines to be served.
const KIND_PATIENCE: Duration = Duration::from_secs(60);
/// Retries of a write that failed with a status worth retrying.
const MAX_RETRIES: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("job `{job}`: jobType {job_type} is not supported by `burner init` yet (only create)")]
    JobTypeNotSupported { job: String, job_type: String },
    #[error("cannot discover the cluster's API resources")]
    Discovery(#[source] kube::Error),
    #[error("job `{job}`: the cluster has no kind {kind} in {api_version} ({template})")]
    UnknownKind {
        job: String,
        kind: String,
        api_version: String,
        template: String,
    },
    #[error("job `{job}`: cannot create namespace {namespace} (the log above says why)")]
    Namespace { job: String, namespace: String },
    #[error("job `{job}`: the patch rendered from {template} is not valid YAML: {message}")]
    Patch {
        job: String,
        template: String,
        message: String,
    },
    #[error(
        "job `{job}`: patchType {patch_type} is not supported yet (use application/merge-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml)"
    )]
    PatchType { job: String, patch_type: String },
    #[error("cannot remove what run {uuid} created")]
    Cleanup {
        uuid: String,
        #[source]
        source: kube::Error,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    TimedOut,
    Interrupted,
}

#[derive(Debug, Clone, Default)]
pub struct JobResult {
    pub name: String,
    pub expected: u64,
    pub created: u64,
    pub namespaces: u64,
    pub errors: u64,
    pub retries: u64,
    /// How long creating took, and the write rate achieved over it.
    pub create_time: Duration,
    pub achieved_rate: f64,
    /// How long waiting for readiness took, if the job waited.
    pub wait_time: Option<Duration>,
    /// Objects found by label after the job, by `index/kind`, when verification ran.
    pub verified: Option<BTreeMap<String, u64>>,
    pub verification_passed: Option<bool>,
    /// The run stopped (timeout or Ctrl-C) while this job was running.
    pub stopped: bool,
}

pub struct RunOptions {
    pub run_id: String,
    pub timeout: Duration,
    pub cancel: CancellationToken,
}

/// Runs every job; returns what each did and how the run ended.
pub async fn run(
    client: &kube::Client,
    config: &Config,
    options: &RunOptions,
) -> Result<(Vec<JobResult>, Outcome), RunError> {
    // Render everything, and refuse what cannot run, before the first write.
    let mut plans = Vec::with_capacity(config.jobs.len());
    for job in &config.jobs {
        match job.job_type() {
            JobType::Create | JobType::Delete | JobType::Read => {}
            JobType::Kubevirt => {
                return Err(RunError::JobTypeNotSupported {
                    job: job.name().into(),
                    job_type: "kubevirt".into(),
                });
            }
            JobType::Patch => {
                for object in &job.objects {
                    let patch_type = object.raw.patch_type.clone().unwrap_or_default();
                    if selected::PatchKind::parse(&patch_type).is_none() {
                        return Err(RunError::PatchType {
                            job: job.name().into(),
                            patch_type,
                        });
                    }
                    // A sample render, so a broken patch fails before the first write.
                    selected::render_patch(config, job, object, 0, &options.run_id)?;
                }
            }
        }
        let mut objects = Vec::new();
        plan::expand_job(config, job, &options.run_id, |o| {
            objects.push(o.clone());
            Ok(())
        })?;
        plans.push(objects);
    }
    let mut discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(RunError::Discovery)?;
    let creates_crds = |objects: &[PlannedObject]| {
        objects
            .iter()
            .any(|o| o.manifest["kind"] == "CustomResourceDefinition")
    };
    for (j, (job, objects)) in config.jobs.iter().zip(&plans).enumerate() {
        let later_kinds_may_appear = plans[..j].iter().any(|p| creates_crds(p));
        if !later_kinds_may_appear {
            for object in objects {
                resolve(&discovery, job, object)?;
            }
            if job.job_type() != JobType::Create {
                for object in &job.objects {
                    selected::resolve_selected(&discovery, job, object)?;
                }
            }
        }
    }

    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut results = Vec::new();
    for (job, objects) in config.jobs.iter().zip(plans) {
        // A kind an earlier job's CRD defines appears once the CRD is established: look
        // again until every kind resolves, for a while.
        let patience = tokio::time::Instant::now() + KIND_PATIENCE;
        while objects.iter().any(|o| resolve(&discovery, job, o).is_err())
            && tokio::time::Instant::now() < patience
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
            discovery = Discovery::new(client.clone())
                .run_aggregated()
                .await
                .map_err(RunError::Discovery)?;
        }
        if let Some(object) = objects
            .iter()
            .find(|o| resolve(&discovery, job, o).is_err())
        {
            return Err(resolve(&discovery, job, object).expect_err("just found unresolvable"));
        }
        // The job's counters live here, so a timeout or Ctrl-C still reports what it did.
        let counters = Counters::default();
        let started = Instant::now();
        let work = async {
            match job.job_type() {
                JobType::Create => {
                    run_job(
                        client, config, job, &objects, &discovery, options, &counters,
                    )
                    .await
                }
                _ => {
                    selected::run_selected_job(client, config, job, &discovery, options, &counters)
                        .await
                }
            }
        };
        let stopped = tokio::select! {
            result = work => {
                results.push(result?);
                if let Some(pause) = job.raw.job_pause {
                    tracing::info!(job = job.name(), "pausing for {}", humantime::format_duration(pause));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = tokio::time::sleep_until(deadline) => return Ok((results, Outcome::TimedOut)),
                        _ = options.cancel.cancelled() => return Ok((results, Outcome::Interrupted)),
                    }
                }
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => Outcome::TimedOut,
            _ = options.cancel.cancelled() => Outcome::Interrupted,
        };
        results.push(counters.partial(job.name(), objects.len() as u64, started.elapsed()));
        return Ok((results, stopped));
    }
    if config.global.gc {
        let gc = destroy(client, &config.uuid);
        tokio::select! {
            done = gc => { done?; }
            _ = tokio::time::sleep_until(deadline) => return Ok((results, Outcome::TimedOut)),
            _ = options.cancel.cancelled() => return Ok((results, Outcome::Interrupted)),
        }
    }
    Ok((results, Outcome::Completed))
}

fn resolve(
    discovery: &Discovery,
    job: &Job,
    object: &PlannedObject,
) -> Result<(ApiResource, ApiCapabilities), RunError> {
    let api_version = object.manifest["apiVersion"].as_str().unwrap_or_default();
    let kind = object.manifest["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    discovery
        .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
        .ok_or_else(|| RunError::UnknownKind {
            job: job.name().into(),
            kind: kind.into(),
            api_version: api_version.into(),
            template: job.objects[object.object].template.as_ref().map_or_else(
                || job.objects[object.object].raw.object_template.clone(),
                |t| t.file.display().to_string(),
            ),
        })
}

/// The rate gate of a job: client-go's qps and burst; unlimited when qps is not positive.
pub(super) fn gate(job: &Job) -> Option<DefaultDirectRateLimiter> {
    let qps = job.qps?;
    let burst = NonZeroU32::new(job.burst.max(1)).expect("at least 1");
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / qps))?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

async fn run_job(
    client: &kube::Client,
    config: &Config,
    job: &Job,
    objects: &[PlannedObject],
    discovery: &Discovery,
    options: &RunOptions,
    counters: &Counters,
) -> Result<JobResult, RunError> {
    let name = job.name();
    let gate = gate(job);
    let started = Instant::now();
    tracing::info!(job = name, objects = objects.len(), "creating");

    let namespaces: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.manifest.pointer("/metadata/namespace").is_none())
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    for namespace in &namespaces {
        create_namespace(
            client,
            config,
            job,
            namespace,
            &options.run_id,
            gate.as_ref(),
            counters,
        )
        .await?;
    }

    // With a jobIterationDelay the iterations go one after another, with the pause between
    // them; without, all objects stream through the gate at once.
    let batches: Vec<&[PlannedObject]> = match job.raw.job_iteration_delay {
        Some(_) => objects
            .chunk_by(|a, b| a.iteration == b.iteration)
            .collect(),
        None => vec![objects],
    };
    for (n, batch) in batches.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(job.raw.job_iteration_delay.unwrap_or_default()).await;
        }
        let writes = futures::stream::iter(batch.iter().enumerate().map(|(index, object)| {
            let gate = gate.as_ref();
            async move {
                let Ok((resource, capabilities)) = resolve(discovery, job, object) else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut manifest = object.manifest.clone();
                let object_labels = labels::object_labels(
                    &config.uuid,
                    name,
                    &options.run_id,
                    object.object,
                    object.iteration,
                    object.replica,
                );
                labels::apply(&mut manifest, &object_labels);
                let api: Api<DynamicObject> = match (&capabilities.scope, &object.namespace) {
                    (Scope::Namespaced, Some(namespace)) => {
                        Api::namespaced_with(client.clone(), namespace, &resource)
                    }
                    (Scope::Namespaced, None) => {
                        Api::default_namespaced_with(client.clone(), &resource)
                    }
                    (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
                };
                let Ok(dynamic) = serde_json::from_value::<DynamicObject>(manifest) else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if create_with_retries(&api, &dynamic, gate, counters).await {
                    counters.created.fetch_add(1, Ordering::Relaxed);
                } else {
                    tracing::warn!(job = name, index, "creating an object failed");
                }
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>();
        writes.await;
    }
    let create_time = started.elapsed();
    let created = counters.created.load(Ordering::Relaxed);
    let mut result = JobResult {
        name: name.to_string(),
        expected: objects.len() as u64,
        created,
        namespaces: namespaces.len() as u64,
        errors: counters.errors.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        create_time,
        achieved_rate: (created + namespaces.len() as u64) as f64
            / create_time.as_secs_f64().max(1e-9),
        ..JobResult::default()
    };
    tracing::info!(
        job = name,
        created,
        rate = format!("{:.1}/s", result.achieved_rate),
        "created"
    );

    let selector = format!(
        "{}={},{}={}",
        labels::RUN_ID,
        options.run_id,
        labels::JOB,
        name
    );
    if job.raw.wait_when_finished || job.raw.pod_wait {
        let wait_started = Instant::now();
        wait_until_ready(client, job, objects, discovery, &selector).await;
        result.wait_time = Some(wait_started.elapsed());
        tracing::info!(
            job = name,
            seconds = wait_started.elapsed().as_secs_f64(),
            "ready"
        );
    }
    if job.raw.verify_objects {
        let (found, passed) = verify(client, job, objects, discovery, &selector).await;
        result.verification_passed = Some(passed);
        result.verified = Some(found);
    }
    if job.raw.gc {
        destroy_job(client, &config.uuid, name).await?;
    }
    Ok(result)
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) created: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) retries: AtomicU64,
}

impl Counters {
    /// What a job that was stopped midway had done.
    fn partial(&self, name: &str, expected: u64, elapsed: Duration) -> JobResult {
        let created = self.created.load(Ordering::Relaxed);
        JobResult {
            name: name.to_string(),
            expected,
            created,
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            create_time: elapsed,
            achieved_rate: created as f64 / elapsed.as_secs_f64().max(1e-9),
            stopped: true,
            ..JobResult::default()
        }
    }
}

async fn create_namespace(
    client: &kube::Client,
    config: &Config,
    job: &Job,
    name: &str,
    run_id: &str,
    gate: Option<&DefaultDirectRateLimiter>,
    counters: &Counters,
) -> Result<(), RunError> {
    let mut labels: BTreeMap<String, String> = job.raw.namespace_labels.clone();
    labels.insert(labels::UUID.into(), config.uuid.clone());
    labels.insert(labels::JOB.into(), job.name().into());
    labels.insert(labels::RUN_ID.into(), run_id.into());
    let namespace: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": job.raw.namespace_annotations},
    }))
    .expect("a namespace from known fields");
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    // A namespace that exists already is used as it is, as kube-burner does.
    let created = send(gate, counters, |_| async {
        match api.create(&PostParams::default(), &namespace).await {
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                tracing::info!(namespace = name, "namespace exists already; using it");
                Ok(())
            }
            other => other.map(|_| ()),
        }
    })
    .await;
    created.ok_or_else(|| RunError::Namespace {
        job: job.name().into(),
        namespace: name.into(),
    })
}

/// Creates through the gate. AlreadyExists after a retry means an earlier attempt landed:
/// success.
async fn create_with_retries(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    gate: Option<&DefaultDirectRateLimiter>,
    counters: &Counters,
) -> bool {
    send(gate, counters, |attempt| async move {
        match api.create(&PostParams::default(), object).await {
            Err(kube::Error::Api(status)) if status.is_already_exists() && attempt > 0 => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await
    .is_some()
}

/// Sends one write (or read) through the gate, retrying 429, 5xx and connection failures
/// with backoff, counting retries and errors. `request` gets the attempt number.
pub(super) async fn send<T, F, Fut>(
    gate: Option<&DefaultDirectRateLimiter>,
    counters: &Counters,
    mut request: F,
) -> Option<T>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    for attempt in 0..=MAX_RETRIES {
        if let Some(gate) = gate {
            gate.until_ready().await;
        }
        match request(attempt).await {
            Ok(value) => return Some(value),
            Err(kube::Error::Api(status)) if status.code == 429 || status.code >= 500 => {}
            Err(kube::Error::HyperError(_) | kube::Error::Service(_)) => {}
            Err(error) => {
                tracing::warn!("request failed: {error}");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
    }
    counters.errors.fetch_add(1, Ordering::Relaxed);
    None
}

/// What a job created, grouped as verification and waiting see it: by the object's index
/// in the job (the `kube-burner.io/index` label) and kind. Grouping by index keeps the pods
/// of a Deployment, which carry the job's labels too, apart from the job's own pods.
struct Group {
    index: usize,
    resource: ApiResource,
    expected: u64,
}

fn groups(job: &Job, objects: &[PlannedObject], discovery: &Discovery) -> Vec<Group> {
    let mut groups: BTreeMap<(usize, String), Group> = BTreeMap::new();
    for object in objects {
        if let Ok((resource, _)) = resolve(discovery, job, object) {
            groups
                .entry((object.object, resource.kind.clone()))
                .or_insert(Group {
                    index: object.object,
                    resource,
                    expected: 0,
                })
                .expected += 1;
        }
    }
    groups.into_values().collect()
}

fn group_selector(selector: &str, group: &Group) -> String {
    format!("{selector},{}={}", labels::INDEX, group.index)
}

/// Objects found per `index/kind`, and whether every group has what was created.
async fn verify(
    client: &kube::Client,
    job: &Job,
    objects: &[PlannedObject],
    discovery: &Discovery,
    selector: &str,
) -> (BTreeMap<String, u64>, bool) {
    let mut found = BTreeMap::new();
    let groups = groups(job, objects, discovery);
    // Objects of a kind that does not resolve were not created: that is a failure too.
    let grouped: u64 = groups.iter().map(|g| g.expected).sum();
    let mut passed = grouped == objects.len() as u64;
    for group in groups {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &group.resource);
        let params = ListParams::default().labels(&group_selector(selector, &group));
        let count = api
            .list_metadata(&params)
            .await
            .map_or(0, |l| l.items.len() as u64);
        passed &= count == group.expected;
        found.insert(format!("{}/{}", group.index, group.resource.kind), count);
    }
    (found, passed)
}

/// Waits, by watching, until every created object of a kind with a notion of readiness is
/// ready: Pods Running and Ready; Deployments, ReplicaSets, StatefulSets with all replicas
/// ready; DaemonSets with every scheduled pod ready; Jobs complete.
async fn wait_until_ready(
    client: &kube::Client,
    job: &Job,
    objects: &[PlannedObject],
    discovery: &Discovery,
    selector: &str,
) {
    let waits = groups(job, objects, discovery).into_iter().filter_map(|group| {
        let is_ready = readiness(&group.resource.kind)?;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &group.resource);
        let selector = group_selector(selector, &group);
        Some(async move {
            let mut ready: HashMap<String, bool> = HashMap::new();
            let mut events = watcher::watcher(api, watcher::Config::default().labels(&selector)).boxed();
            while (ready.values().filter(|r| **r).count() as u64) < group.expected {
                match events.try_next().await {
                    Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                        let value = serde_json::to_value(&o).unwrap_or_default();
                        ready.insert(o.metadata.uid.clone().unwrap_or_default(), is_ready(&value));
                    }
                    Ok(Some(watcher::Event::Delete(o))) => {
                        ready.remove(&o.metadata.uid.unwrap_or_default());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => tracing::warn!(kind = %group.resource.kind, "watch failed; retrying: {e}"),
                }
            }
        })
    });
    futures::future::join_all(waits).await;
}

fn readiness(kind: &str) -> Option<fn(&Value) -> bool> {
    fn number(v: &Value, pointer: &str) -> i64 {
        v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
    }
    fn condition(v: &Value, kind: &str) -> bool {
        v.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
    }
    Some(match kind {
        "Pod" => |v| v.pointer("/status/phase") == Some(&json!("Running")) && condition(v, "Ready"),
        "Deployment" | "ReplicaSet" | "StatefulSet" => |v| {
            let wanted = v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            number(v, "/status/readyReplicas") >= wanted
        },
        "DaemonSet" => |v| {
            number(v, "/status/numberReady") >= number(v, "/status/desiredNumberScheduled")
                && v.pointer("/status/desiredNumberScheduled").is_some()
        },
        "Job" => |v| condition(v, "Complete"),
        _ => return None,
    })
}

/// Removes everything run `uuid` created: its namespaces (with all inside) and its
/// cluster-scoped objects, and waits until they are gone.
pub async fn destroy(client: &kube::Client, uuid: &str) -> Result<u64, RunError> {
    let selector = format!("{}={uuid}", labels::UUID);
    let namespaces = delete_namespaces(client, uuid, &selector).await?;
    delete_cluster_scoped(client, uuid, &selector).await?;
    Ok(namespaces)
}

/// Deletes the run's cluster-scoped objects (CRDs, ClusterRoles, ...) of every kind the
/// cluster serves; deleting a CRD also removes its custom resources.
async fn delete_cluster_scoped(
    client: &kube::Client,
    uuid: &str,
    selector: &str,
) -> Result<(), RunError> {
    let error = |source| RunError::Cleanup {
        uuid: uuid.to_string(),
        source,
    };
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(RunError::Discovery)?;
    let params = ListParams::default().labels(selector);
    let mut deleted = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            let deletable = capabilities.supports_operation(kube::discovery::verbs::LIST)
                && capabilities.supports_operation(kube::discovery::verbs::DELETE);
            if capabilities.scope != Scope::Cluster || !deletable || resource.kind == "Namespace" {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = api.list_metadata(&params).await else {
                continue;
            };
            if list.items.is_empty() {
                continue;
            }
            for name in list.items.into_iter().filter_map(|o| o.metadata.name) {
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.is_not_found() => {}
                    Err(e) => return Err(error(e)),
                }
            }
            deleted.push(api);
        }
    }
    // A CRD lingers until its finalizer has removed every custom resource of it: wait, so
    // that a finished gc means nothing of the run is left.
    for api in &deleted {
        wait::until_gone(api, selector).await;
    }
    Ok(())
}

async fn destroy_job(client: &kube::Client, uuid: &str, job: &str) -> Result<u64, RunError> {
    delete_namespaces(
        client,
        uuid,
        &format!("{}={uuid},{}={job}", labels::UUID, labels::JOB),
    )
    .await
}

async fn delete_namespaces(
    client: &kube::Client,
    uuid: &str,
    selector: &str,
) -> Result<u64, RunError> {
    let error = |source| RunError::Cleanup {
        uuid: uuid.to_string(),
        source,
    };
    let api: Api<Namespace> = Api::all(client.clone());
    let params = ListParams::default().labels(selector);
    let names: Vec<String> = api
        .list_metadata(&params)
        .await
        .map_err(error)?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for name in &names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(error(e)),
        }
    }
    // Gone means gone: wait until the namespaces (and so everything in them) have vanished.
    let dynamic: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    wait::until_gone(&dynamic, selector).await;
    Ok(names.len() as u64)
}
