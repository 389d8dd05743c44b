//! Running the create jobs of a checked config against a cluster.
//!
//! Everything is rendered and every kind resolved before the first write, so bad input
//! changes nothing. Then, job by job: the job's namespaces, then its objects, each write
//! through the job's rate gate (qps and burst) with bounded concurrency and retries; then
//! the wait until what was created is ready (by watch, never by polling), the
//! verification of what exists, and the job's garbage collection if asked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{churn, cleanup, labels, preload, ready, selected};
use crate::config::{Config, Job, JobType};
use crate::measure::{JobRecorder, Recorder};
use crate::plan::{self, PlanError, PlannedObject};
use crate::progress::{Counters, JobProgress, Phase, RunProgress};

/// Requests in flight at once per job: enough for the job's qps at a second of latency
/// each, so the client is not what limits a fast job (kube-burner caps nothing), within
/// bounds that keep a slow job's connections few and a huge one's finite. kube's client
/// speaks HTTP/1.1, so each request in flight holds a connection.
const MIN_IN_FLIGHT: usize = 32;
const MAX_IN_FLIGHT: usize = 1_000;
/// How long a job waits for a kind that an earlier job's CRD defines to be served.
const KIND_PATIENCE: Duration = Duration::from_secs(60);
/// kube-burner's default `global.requestTimeout`.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a write that failed with a status worth retrying.
const MAX_RETRIES: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("global.clusterHealth: the cluster is not healthy: {reason}")]
    Unhealthy { reason: String },
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
    #[error("job `{job}`: the patch rendered from {template} is not valid: {message}")]
    Patch {
        job: String,
        template: String,
        message: String,
    },
    #[error("job `{job}`: cannot pre-load its images")]
    Preload {
        job: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot remove what run {uuid} created")]
    Cleanup {
        uuid: String,
        #[source]
        source: kube::Error,
    },
}

impl Default for JobResult {
    fn default() -> Self {
        Self {
            name: String::new(),
            expected: 0,
            created: 0,
            namespaces: 0,
            errors: 0,
            retries: 0,
            create_time: Duration::ZERO,
            achieved_rate: 0.0,
            wait_time: None,
            verified: None,
            verification_passed: None,
            ready: true,
            churn: None,
            stopped: false,
            started_at: None,
            ended_at: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    TimedOut,
    Interrupted,
    /// A check after a job (a critical alert) stopped the run.
    Stopped,
}

/// Looks at each job that finished before the next starts; `false` stops the run at once
/// (a critical alert does).
pub type AfterJob =
    Arc<dyn Fn(&JobResult) -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

#[derive(Debug, Clone)]
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
    /// Everything waited for was ready within `maxWaitTimeout` (true when nothing waited).
    pub ready: bool,
    /// What churn did, when the job churned.
    pub churn: Option<ChurnSummary>,
    /// The run stopped (timeout or Ctrl-C) while this job was running.
    pub stopped: bool,
    /// Wall-clock start and end of the job.
    pub started_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
}

/// What a job's churn did.
#[derive(Debug, Clone, Default)]
pub struct ChurnSummary {
    pub started_at: Option<SystemTime>,
    pub cycles: u32,
    pub deleted: u64,
    pub recreated: u64,
    pub duration: Duration,
}

pub struct RunOptions {
    pub run_id: String,
    pub timeout: Duration,
    pub cancel: CancellationToken,
    /// Where jobs report what they do, for measurement.
    pub recorder: Recorder,
    /// Where jobs show how far they are.
    pub progress: Arc<RunProgress>,
    pub after_job: Option<AfterJob>,
}

/// Runs every job; returns what each did and how the run ended.
pub async fn run(
    client: &kube::Client,
    config: &Config,
    options: &RunOptions,
) -> Result<(Vec<JobResult>, Outcome), RunError> {
    let prepared = prepare(client, config, &options.run_id).await?;
    let mut results = Vec::new();
    let outcome = prepared.execute(options, &mut results).await?;
    Ok((results, outcome))
}

/// A run rendered and checked against the cluster: every object planned, every kind
/// resolved. Nothing has been written yet.
pub struct Prepared<'a> {
    client: &'a kube::Client,
    config: &'a Config,
    plans: Vec<Vec<PlannedObject>>,
    discovery: Kinds,
}

/// Renders everything and refuses what cannot run, before the first write.
pub async fn prepare<'a>(
    client: &'a kube::Client,
    config: &'a Config,
    run_id: &str,
) -> Result<Prepared<'a>, RunError> {
    let mut plans = Vec::with_capacity(config.jobs.len());
    // Config validation has refused job types and patch types burner cannot run.
    for job in &config.jobs {
        if job.job_type() == JobType::Patch {
            for object in &job.objects {
                // A sample render, so a broken patch fails before the first write.
                selected::render_patch(config, job, object, 0, run_id)?;
            }
        }
        let mut objects = Vec::new();
        plan::expand_job(config, job, run_id, |o| {
            objects.push(o.clone());
            Ok(())
        })?;
        plans.push(objects);
    }
    if config.global.cluster_health {
        check_health(client).await?;
    }
    let discovery = Kinds::new(
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .map_err(RunError::Discovery)?,
    );
    let creates_crds = |objects: &[PlannedObject]| {
        objects
            .iter()
            .any(|o| &*o.kind == "CustomResourceDefinition")
    };
    for (j, (job, objects)) in config.jobs.iter().zip(&plans).enumerate() {
        let later_kinds_may_appear = plans[..j].iter().any(|p| creates_crds(p));
        if !later_kinds_may_appear {
            for object in objects {
                resolve(&discovery, job, object)?;
            }
            if job.job_type() != JobType::Create {
                for object in &job.objects {
                    selected::resolve_selected(discovery.discovery(), job, object)?;
                }
            }
        }
    }

    Ok(Prepared {
        client,
        config,
        plans,
        discovery,
    })
}

impl Prepared<'_> {
    /// Runs every job; `results` gets what each did, also when an error ends the run
    /// midway. Returns how the run ended.
    pub async fn execute(
        self,
        options: &RunOptions,
        results: &mut Vec<JobResult>,
    ) -> Result<Outcome, RunError> {
        let Prepared {
            client,
            config,
            plans,
            mut discovery,
        } = self;
        let deadline = tokio::time::Instant::now() + options.timeout;
        let mut created = Vec::new();
        for (job, objects) in config.jobs.iter().zip(plans) {
            // A kind an earlier job's CRD defines appears once the CRD is established: look
            // again until every kind resolves, for a while.
            let patience = tokio::time::Instant::now() + KIND_PATIENCE;
            while objects.iter().any(|o| resolve(&discovery, job, o).is_err())
                && tokio::time::Instant::now() < patience
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
                discovery = Kinds::new(
                    Discovery::new(client.clone())
                        .run_aggregated()
                        .await
                        .map_err(RunError::Discovery)?,
                );
            }
            if let Some(object) = objects
                .iter()
                .find(|o| resolve(&discovery, job, o).is_err())
            {
                return Err(resolve(&discovery, job, object).expect_err("just found unresolvable"));
            }
            // The job's counters live in its progress, so a timeout or Ctrl-C still reports
            // what it did.
            let progress = options.progress.start_job(job.name(), objects.len() as u64);
            let counters = &progress.counters;
            let ctx = JobContext {
                client,
                config,
                job,
                discovery: &discovery,
                options,
                gate: gate(job),
                in_flight: in_flight(job.qps),
                counters,
                progress: &progress,
                recorder: options.recorder.job_started(job.name()),
            };
            let started = Instant::now();
            let work = async {
                match job.job_type() {
                    JobType::Create => run_create_job(&ctx, &objects).await,
                    _ => selected::run_selected_job(&ctx).await,
                }
            };
            let started_at = Some(SystemTime::now());
            let stopped = tokio::select! {
                result = work => {
                    let result = match result {
                        Ok(result) => result,
                        Err(error) => {
                            // What the job did before the error still counts.
                            results.push(JobResult {
                                started_at,
                                ended_at: Some(SystemTime::now()),
                                ..partial(counters, job.name(), objects.len() as u64, started.elapsed())
                            });
                            return Err(error);
                        }
                    };
                    let result = JobResult { started_at, ended_at: Some(SystemTime::now()), ..result };
                    // The check after the job (alerts) answers to the deadline and Ctrl-C too.
                    let stop = match &options.after_job {
                        None => None,
                        Some(after_job) => tokio::select! {
                            go_on = after_job(&result) => (!go_on).then_some(Outcome::Stopped),
                            _ = tokio::time::sleep_until(deadline) => Some(Outcome::TimedOut),
                            _ = options.cancel.cancelled() => Some(Outcome::Interrupted),
                        },
                    };
                    results.push(result);
                    if let Some(outcome) = stop {
                        return Ok(outcome);
                    }
                    created.push((job, objects));
                    progress.set_phase(Phase::Done);
                    if let Some(pause) = job.raw.job_pause {
                        progress.set_phase(Phase::Pausing);
                        tracing::info!(job = job.name(), "pausing for {}", humantime::format_duration(pause));
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = tokio::time::sleep_until(deadline) => return Ok(Outcome::TimedOut),
                            _ = options.cancel.cancelled() => return Ok(Outcome::Interrupted),
                        }
                        progress.set_phase(Phase::Done);
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => Outcome::TimedOut,
                _ = options.cancel.cancelled() => Outcome::Interrupted,
            };
            results.push(JobResult {
                started_at,
                ended_at: Some(SystemTime::now()),
                ..partial(
                    counters,
                    job.name(),
                    objects.len() as u64,
                    started.elapsed(),
                )
            });
            return Ok(stopped);
        }
        let finish = async {
            if config.global.wait_when_finished {
                // After all jobs, everything the create jobs made, ready together.
                for (job, objects) in created
                    .iter()
                    .filter(|(j, _)| j.job_type() == JobType::Create)
                {
                    let progress = options.progress.job(job.name()).unwrap_or_else(|| {
                        options.progress.start_job(job.name(), objects.len() as u64)
                    });
                    progress.set_phase(Phase::Waiting);
                    let ctx = JobContext {
                        client,
                        config,
                        job,
                        discovery: &discovery,
                        options,
                        gate: None,
                        in_flight: in_flight(job.qps),
                        counters: &Counters::default(),
                        progress: &progress,
                        recorder: JobRecorder::default(),
                    };
                    let ready = ready::wait_until_ready(&ctx, objects, None).await;
                    progress.set_phase(Phase::Done);
                    if let Some(result) = results.iter_mut().find(|r| r.name == job.name()) {
                        result.ready &= ready;
                    }
                }
            }
            if config.global.gc {
                let progress = options.progress.start_job("garbage-collection", 0);
                progress.set_phase(Phase::CleaningUp);
                cleanup::destroy(client, &config.uuid).await?;
                progress.set_phase(Phase::Done);
            }
            Ok::<_, RunError>(())
        };
        tokio::select! {
            done = finish => { done?; }
            _ = tokio::time::sleep_until(deadline) => return Ok(Outcome::TimedOut),
            _ = options.cancel.cancelled() => return Ok(Outcome::Interrupted),
        }
        Ok(Outcome::Completed)
    }
}

/// `global.clusterHealth`: the apiserver says ok on /healthz, and every node is Ready with
/// no other condition (pressure, network) true.
async fn check_health(client: &kube::Client) -> Result<(), RunError> {
    let unhealthy = |reason: String| RunError::Unhealthy { reason };
    let request = http::Request::get("/healthz")
        .body(Vec::new())
        .expect("a request from constant parts");
    let answer = client
        .request_text(request)
        .await
        .map_err(|e| unhealthy(format!("/healthz: {e}")))?;
    if answer.trim() != "ok" {
        return Err(unhealthy(format!("/healthz says {answer:?}")));
    }
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let list = nodes
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| unhealthy(format!("cannot list nodes: {e}")))?;
    let mut sick = Vec::new();
    for node in &list.items {
        let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref());
        if !node_is_healthy(conditions.unwrap_or_default()) {
            sick.push(node.metadata.name.clone().unwrap_or_default());
        }
    }
    if !sick.is_empty() {
        let shown: Vec<&str> = sick.iter().take(5).map(String::as_str).collect();
        return Err(unhealthy(format!(
            "{} of {} nodes are not healthy: {}{}",
            sick.len(),
            list.items.len(),
            shown.join(", "),
            if sick.len() > 5 { ", ..." } else { "" }
        )));
    }
    Ok(())
}

/// Ready is True, and every other condition (pressure, network) is not.
fn node_is_healthy(conditions: &[k8s_openapi::api::core::v1::NodeCondition]) -> bool {
    conditions.iter().any(|c| c.type_ == "Ready")
        && conditions
            .iter()
            .all(|c| (c.type_ == "Ready") == (c.status == "True"))
}

/// The cluster's API resources as discovery found them, each kind looked up once: a job
/// resolves the kind of every one of its objects, and a search of discovery for each of
/// 100,000 objects would take seconds.
pub struct Kinds {
    discovery: Discovery,
    /// By api version and kind; none when the cluster does not serve it.
    resolved: Mutex<HashMap<KindKey, Option<Resolved>>>,
}

/// An object's api version and kind.
type KindKey = (Arc<str>, Arc<str>);
type Resolved = (ApiResource, ApiCapabilities);

impl Kinds {
    pub(super) fn new(discovery: Discovery) -> Self {
        Self {
            discovery,
            resolved: Mutex::default(),
        }
    }

    pub(super) fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    fn lookup(&self, object: &PlannedObject) -> Option<Resolved> {
        let key = (object.api_version.clone(), object.kind.clone());
        let mut resolved = self
            .resolved
            .lock()
            .expect("no panic while holding the lock");
        resolved
            .entry(key)
            .or_insert_with(|| {
                let api_version = &*object.api_version;
                let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                self.discovery
                    .resolve_gvk(&GroupVersionKind::gvk(group, version, &object.kind))
            })
            .clone()
    }
}

pub(super) fn resolve(
    kinds: &Kinds,
    job: &Job,
    object: &PlannedObject,
) -> Result<(ApiResource, ApiCapabilities), RunError> {
    let api_version = &*object.api_version;
    let kind = &*object.kind;
    kinds.lookup(object).ok_or_else(|| RunError::UnknownKind {
        job: job.name().into(),
        kind: kind.into(),
        api_version: api_version.into(),
        template: job.objects[object.object].template.as_ref().map_or_else(
            || job.objects[object.object].raw.object_template.clone(),
            |t| t.file.display().to_string(),
        ),
    })
}

/// How many requests of a job with this qps (none: unlimited) may be in flight at once
/// (see [`MIN_IN_FLIGHT`]).
pub(super) fn in_flight(qps: Option<f64>) -> usize {
    qps.map_or(MAX_IN_FLIGHT, |qps| {
        (qps.ceil() as usize).clamp(MIN_IN_FLIGHT, MAX_IN_FLIGHT)
    })
}

/// The rate gate of a job: client-go's qps and burst; unlimited when qps is not positive.
pub(super) fn gate(job: &Job) -> Option<DefaultDirectRateLimiter> {
    let qps = job.qps?;
    let burst = NonZeroU32::new(job.burst.max(1)).expect("at least 1");
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / qps))?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

/// Opens, before a create job's clock starts, as many connections to the apiserver as the
/// job may keep requests in flight. Without them the first creates wait for TLS handshakes
/// (each request in flight needs its own HTTP/1.1 connection), which costs tens of
/// milliseconds on a busy machine, reads as pod startup latency of the first pods and
/// slows the job's first second. Idle connections stay in the client's pool.
async fn warm_connections(ctx: &JobContext<'_>) {
    let connections = ctx.in_flight;
    let answered =
        futures::future::join_all((0..connections).map(|_| ctx.client.apiserver_version()))
            .await
            .iter()
            .filter(|answer| answer.is_ok())
            .count();
    tracing::debug!(
        job = ctx.job.name(),
        connections,
        answered,
        "connections opened"
    );
}

/// What every step of a job needs.
pub(super) struct JobContext<'a> {
    pub(super) client: &'a kube::Client,
    pub(super) config: &'a Config,
    pub(super) job: &'a Job,
    pub(super) discovery: &'a Kinds,
    pub(super) options: &'a RunOptions,
    pub(super) gate: Option<DefaultDirectRateLimiter>,
    pub(super) in_flight: usize,
    pub(super) counters: &'a Counters,
    pub(super) progress: &'a JobProgress,
    pub(super) recorder: JobRecorder,
}

async fn run_create_job(
    ctx: &JobContext<'_>,
    objects: &[PlannedObject],
) -> Result<JobResult, RunError> {
    let job = ctx.job;
    let name = job.name();
    if job.raw.cleanup {
        // What an earlier run with this uuid left of this job goes first, so the counts
        // that follow are this run's own.
        let removed = cleanup::destroy_job(ctx.client, &ctx.config.uuid, name).await?;
        if removed != cleanup::Removed::default() {
            tracing::info!(
                job = name,
                namespaces = removed.namespaces,
                objects = removed.objects,
                "removed what an earlier run with this uuid left"
            );
        }
    }
    if job.raw.pre_load_images {
        preload::pull_images(ctx, objects).await?;
    }
    warm_connections(ctx).await;
    ctx.progress.set_phase(Phase::Creating);
    let started = Instant::now();
    tracing::info!(job = name, objects = objects.len(), "creating");

    // Iterations go one after another when there is a pause between them or a wait after
    // each; otherwise all objects stream through the gate at once.
    let by_iteration = job.raw.job_iteration_delay.is_some() || job.raw.pod_wait;
    let batches: Vec<&[PlannedObject]> = if by_iteration {
        objects
            .chunk_by(|a, b| a.iteration == b.iteration)
            .collect()
    } else {
        vec![objects]
    };
    // Namespaces go first, all of them unless iterations go one by one and the job does
    // not ask for them up front.
    let mut namespaces_made = 0u64;
    if !by_iteration || job.raw.pre_create_namespaces {
        namespaces_made += create_namespaces(ctx, objects).await?;
    }
    let mut ready = true;
    for (n, batch) in batches.iter().enumerate() {
        if n > 0
            && let Some(delay) = job.raw.job_iteration_delay
        {
            tokio::time::sleep(delay).await;
        }
        if by_iteration && !job.raw.pre_create_namespaces {
            namespaces_made += create_namespaces(ctx, batch.iter()).await?;
        }
        create_objects(ctx, batch.iter()).await;
        if job.raw.pod_wait {
            ctx.progress.set_phase(Phase::Waiting);
            ready &= ready::wait_until_ready(ctx, batch, Some(batch[0].iteration)).await;
            ctx.progress.set_phase(Phase::Creating);
        }
    }
    let create_time = started.elapsed();
    let created = ctx.counters.created.load(Ordering::Relaxed);
    let mut result = JobResult {
        name: name.to_string(),
        expected: objects.len() as u64,
        created,
        namespaces: namespaces_made,
        create_time,
        achieved_rate: (created + namespaces_made) as f64 / create_time.as_secs_f64().max(1e-9),
        ..JobResult::default()
    };
    tracing::info!(
        job = name,
        created,
        rate = format!("{:.1}/s", result.achieved_rate),
        "created"
    );

    if job.raw.wait_when_finished {
        ctx.progress.set_phase(Phase::Waiting);
        let wait_started = Instant::now();
        ready &= ready::wait_until_ready(ctx, objects, None).await;
        result.wait_time = Some(wait_started.elapsed());
        tracing::info!(
            job = name,
            seconds = wait_started.elapsed().as_secs_f64(),
            "ready"
        );
    }
    if let Some(churn) = job.raw.churn_config.as_ref().filter(|c| churn::enabled(c)) {
        ctx.progress.set_phase(Phase::Churning);
        let (summary, churn_ready) = churn::churn(ctx, objects, churn).await?;
        result.churn = Some(summary);
        ready &= churn_ready;
    }
    result.ready = ready;
    if job.raw.verify_objects {
        ctx.progress.set_phase(Phase::Verifying);
        let (found, passed) = ready::verify(ctx, objects).await;
        result.verification_passed = Some(passed);
        result.verified = Some(found);
    }
    result.errors = ctx.counters.errors.load(Ordering::Relaxed);
    result.retries = ctx.counters.retries.load(Ordering::Relaxed);
    if job.raw.gc {
        ctx.progress.set_phase(Phase::CleaningUp);
        cleanup::destroy_job(ctx.client, &ctx.config.uuid, name).await?;
    }
    Ok(result)
}

/// Creates the job's namespaces that `objects` go to; returns how many.
pub(super) async fn create_namespaces<'a>(
    ctx: &JobContext<'_>,
    objects: impl IntoIterator<Item = &'a PlannedObject>,
) -> Result<u64, RunError> {
    let namespaces: BTreeSet<&str> = objects
        .into_iter()
        .filter(|o| !o.own_namespace)
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    for namespace in &namespaces {
        create_namespace(ctx, namespace).await?;
    }
    Ok(namespaces.len() as u64)
}

/// Creates `objects` through the job's gate, at most `in_flight` at once, with the
/// job's labels; counts what was created and what failed.
pub(super) async fn create_objects<'a>(
    ctx: &JobContext<'_>,
    objects: impl Iterator<Item = &'a PlannedObject>,
) {
    paced(ctx, objects, |object, intended| async move {
        let job = ctx.job;
        let Ok((resource, capabilities)) = resolve(ctx.discovery, job, object) else {
            ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut manifest = object.manifest();
        let object_labels = labels::object_labels(
            &ctx.config.uuid,
            job.name(),
            &ctx.options.run_id,
            object.object,
            object.iteration,
            object.replica,
        );
        labels::apply(&mut manifest, &object_labels);
        let api = object_api(ctx.client, &resource, &capabilities, object);
        let Ok(body) = serde_json::to_vec(&manifest) else {
            ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let call = Call {
            verb: "create",
            resource: &resource.plural,
            paced: intended,
        };
        let metadata = &manifest["metadata"];
        let pod = match (&resource.kind[..], metadata["name"].as_str()) {
            ("Pod", Some(name)) => Some((
                metadata["namespace"]
                    .as_str()
                    .or(object.namespace.as_deref())
                    .unwrap_or("default"),
                name,
            )),
            _ => None,
        };
        if create_with_retries(ctx, call, pod, &api, body).await {
            ctx.counters.created.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(
                job = job.name(),
                iteration = object.iteration,
                replica = object.replica,
                "creating an object failed"
            );
        }
    })
    .await;
}

/// Runs `work` on every item, at most the job's `in_flight` at once. Items pass the job's gate
/// one by one, in order, before they wait for a free slot; `work` gets the moment the gate
/// let its item go, the intended send time from which API-call latency counts, so a
/// client that cannot keep up shows as latency. Without a gate items go when a slot is
/// free.
pub(super) async fn paced<I, F, Fut>(ctx: &JobContext<'_>, items: I, work: F)
where
    I: IntoIterator,
    F: Fn(I::Item, Option<Instant>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(gate) = &ctx.gate else {
        futures::stream::iter(items)
            .for_each_concurrent(ctx.in_flight, |item| work(item, None))
            .await;
        return;
    };
    let (released, waiting) = futures::channel::mpsc::unbounded();
    let pacer = async move {
        for item in items {
            gate.until_ready().await;
            if released.unbounded_send((item, Instant::now())).is_err() {
                break;
            }
        }
    };
    let workers =
        waiting.for_each_concurrent(ctx.in_flight, |(item, intended)| work(item, Some(intended)));
    futures::join!(pacer, workers);
}

/// The API of the namespace (or cluster) a planned object lives in.
pub(super) fn object_api(
    client: &kube::Client,
    resource: &ApiResource,
    capabilities: &ApiCapabilities,
    object: &PlannedObject,
) -> Api<DynamicObject> {
    match (&capabilities.scope, &object.namespace) {
        (Scope::Namespaced, Some(namespace)) => {
            Api::namespaced_with(client.clone(), namespace, resource)
        }
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), resource),
    }
}

/// What a job that was stopped midway had done.
fn partial(counters: &Counters, name: &str, expected: u64, elapsed: Duration) -> JobResult {
    let created = counters.created.load(Ordering::Relaxed);
    JobResult {
        name: name.to_string(),
        expected,
        created,
        errors: counters.errors.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        create_time: elapsed,
        achieved_rate: created as f64 / elapsed.as_secs_f64().max(1e-9),
        stopped: true,
        ..JobResult::default()
    }
}

async fn create_namespace(ctx: &JobContext<'_>, name: &str) -> Result<(), RunError> {
    let job = ctx.job;
    let mut labels: BTreeMap<String, String> = job.raw.namespace_labels.clone();
    labels.insert(labels::UUID.into(), ctx.config.uuid.clone());
    labels.insert(labels::JOB.into(), job.name().into());
    labels.insert(labels::RUN_ID.into(), ctx.options.run_id.clone());
    let namespace: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": job.raw.namespace_annotations},
    }))
    .expect("a namespace from known fields");
    let api: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<Namespace>(&()));
    // A namespace that exists already is used as it is, as kube-burner does.
    let created = send(ctx, Call::new("create", "namespaces"), |_| async {
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
/// `pod` names a pod by namespace and name, for pod startup latency.
async fn create_with_retries(
    ctx: &JobContext<'_>,
    call: Call<'_>,
    pod: Option<(&str, &str)>,
    api: &Api<DynamicObject>,
    body: Vec<u8>,
) -> bool {
    let body = &body;
    send(ctx, call, |attempt| {
        // Pod startup latency counts from the request that created the pod.
        if let Some((namespace, name)) = pod {
            ctx.recorder.pod_create_sent(namespace, name);
        }
        async move {
            // The created object that comes back is not needed: it is not decoded.
            let request = kube::core::Request::new(api.resource_url())
                .create(&PostParams::default(), body.clone())
                .map_err(kube::Error::BuildRequest)?;
            match ctx.client.request_text(request).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() && attempt > 0 => {
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        }
    })
    .await
    .is_some()
}

/// What a request is, for API-call latency.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    /// create, get, list, patch or delete.
    pub(super) verb: &'static str,
    /// The resource's plural name.
    pub(super) resource: &'a str,
    /// When the job's gate released the request already (see [`paced`]).
    pub(super) paced: Option<Instant>,
}

impl<'a> Call<'a> {
    pub(super) fn new(verb: &'static str, resource: &'a str) -> Self {
        Self {
            verb,
            resource,
            paced: None,
        }
    }
}

/// Sends one request of a job through its gate, retrying 429, 5xx, connection failures and
/// requests that took longer than `global.requestTimeout`, with backoff and jitter (and a
/// 429's Retry-After), counting retries and errors and recording every attempt's latency
/// from its intended send time. `request` gets the attempt number.
pub(super) async fn send<T, F, Fut>(
    ctx: &JobContext<'_>,
    call: Call<'_>,
    mut request: F,
) -> Option<T>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let timeout = ctx
        .config
        .global
        .request_timeout
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let success = if call.verb == "create" { 201 } else { 200 };
    for attempt in 0..=MAX_RETRIES {
        let intended = match call.paced {
            Some(released) if attempt == 0 => released,
            _ => {
                if let Some(gate) = &ctx.gate {
                    gate.until_ready().await;
                }
                Instant::now()
            }
        };
        let mut wait = Duration::from_millis(100 << attempt.min(5));
        let answer = tokio::time::timeout(timeout, request(attempt)).await;
        let code = match &answer {
            Ok(Ok(_)) => success,
            Ok(Err(kube::Error::Api(status))) => status.code,
            _ => 0,
        };
        ctx.recorder
            .api_call(call.verb, call.resource, code, intended);
        match answer {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(kube::Error::Api(status))) if status.code == 429 || status.code >= 500 => {
                if let Some(seconds) = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                {
                    wait = wait.max(Duration::from_secs(u64::from(seconds)));
                }
            }
            Ok(Err(kube::Error::HyperError(_) | kube::Error::Service(_))) => {}
            Err(_) => tracing::warn!(
                "a request took longer than {}; retrying",
                humantime::format_duration(timeout)
            ),
            Ok(Err(error)) => {
                tracing::warn!("request failed: {error}");
                ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        ctx.counters.retries.fetch_add(1, Ordering::Relaxed);
        // Jitter, so requests that failed together do not come back together.
        let jitter = Duration::from_millis(crate::rng::SplitMix64::from_entropy().below(100));
        tokio::time::sleep(wait + jitter).await;
    }
    ctx.counters.errors.fetch_add(1, Ordering::Relaxed);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeCondition;

    #[test]
    fn a_job_keeps_as_many_requests_in_flight_as_its_qps_within_bounds() {
        assert_eq!(in_flight(Some(20.0)), 32);
        assert_eq!(in_flight(Some(100.0)), 100);
        assert_eq!(in_flight(Some(250.5)), 251);
        assert_eq!(in_flight(Some(5_000.0)), 1_000);
        assert_eq!(in_flight(None), 1_000);
    }

    fn conditions(pairs: &[(&str, &str)]) -> Vec<NodeCondition> {
        pairs
            .iter()
            .map(|(t, s)| NodeCondition {
                type_: t.to_string(),
                status: s.to_string(),
                ..NodeCondition::default()
            })
            .collect()
    }

    #[test]
    fn a_node_is_healthy_when_ready_and_nothing_else_is_true() {
        assert!(node_is_healthy(&conditions(&[
            ("Ready", "True"),
            ("MemoryPressure", "False")
        ])));
        assert!(!node_is_healthy(&conditions(&[("Ready", "Unknown")])));
        assert!(!node_is_healthy(&conditions(&[
            ("Ready", "True"),
            ("DiskPressure", "True")
        ])));
        assert!(!node_is_healthy(&conditions(&[(
            "MemoryPressure",
            "False"
        )])));
    }
}
