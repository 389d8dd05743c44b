//! Measurement: one collector task owns every histogram and per-pod timeline of a run.
//!
//! The job engine sends it samples through a [`Recorder`] (a job started, a pod's create
//! request went out, an API call was answered); its own pod watch, started before the
//! run's first write, sends it every event of the run's pods. It streams measured pods
//! to the run directory as they become Ready and writes the rest when the run finishes
//! (or stops): quantiles, API-call latency and time series.

pub mod api_calls;
pub mod histogram;
pub mod pod_latency;

use crate::watched::WatchedPod;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::measurements::POD_PHASES;
use crate::exec::labels;
use crate::progress::{JobProgress, RunProgress};
use crate::results::files::{RowWriter, WriteError, write_rows};
use crate::results::summary::{ApiCallSummary, PodLatencySummary, Quantiles};
use api_calls::{ApiCall, JobSeries};
use pod_latency::{JobPodStats, Observed, PodTracker, PodView};

/// How long the pod watch may take to list before the run gives up.
const WATCH_START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("the pod watch did not start within {}s", WATCH_START_TIMEOUT.as_secs())]
    WatchNotReady,
    #[error("the pod watch failed before it started")]
    Watch(#[source] watcher::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the measurement task failed")]
    Task(#[source] tokio::task::JoinError),
}

enum Sample {
    JobStarted {
        job: Arc<str>,
        at: Instant,
        wall: SystemTime,
    },
    CreateSent {
        namespace: String,
        name: String,
        at: Instant,
    },
    ApiCall {
        job: Arc<str>,
        call: ApiCall,
    },
}

/// Where the job engine reports what it does. A default recorder drops everything.
#[derive(Clone, Default)]
pub struct Recorder {
    samples: Option<mpsc::UnboundedSender<Sample>>,
}

impl Recorder {
    fn send(&self, sample: Sample) {
        if let Some(samples) = &self.samples {
            // After the collector stopped nothing is measured any more; that is fine.
            let _ = samples.send(sample);
        }
    }

    /// A job starts now; its recorder.
    pub fn job_started(&self, job: &str) -> JobRecorder {
        let job: Arc<str> = Arc::from(job);
        self.send(Sample::JobStarted {
            job: job.clone(),
            at: Instant::now(),
            wall: SystemTime::now(),
        });
        JobRecorder {
            recorder: self.clone(),
            job,
        }
    }
}

/// A [`Recorder`] for one job's samples.
#[derive(Clone, Default)]
pub struct JobRecorder {
    recorder: Recorder,
    job: Arc<str>,
}

impl JobRecorder {
    /// The create request of pod `namespace/name` goes out now.
    pub fn pod_create_sent(&self, namespace: &str, name: &str) {
        if self.recorder.samples.is_some() {
            self.recorder.send(Sample::CreateSent {
                namespace: namespace.to_string(),
                name: name.to_string(),
                at: Instant::now(),
            });
        }
    }

    /// An attempt of `verb` on `resource` meant to go out at `intended` was answered now
    /// with `code` (0: no answer).
    pub fn api_call(&self, verb: &'static str, resource: &str, code: u16, intended: Instant) {
        if self.recorder.samples.is_some() {
            self.recorder.send(Sample::ApiCall {
                job: self.job.clone(),
                call: ApiCall {
                    verb,
                    resource: Arc::from(resource),
                    code,
                    intended,
                    answered: Instant::now(),
                },
            });
        }
    }
}

pub struct MeasureOptions {
    pub uuid: String,
    pub run_id: String,
    /// The run directory.
    pub dir: PathBuf,
    /// The jobs whose pods' startup latency is measured (`podLatency`).
    pub pod_latency_jobs: Vec<String>,
    /// Where to count pods seen Ready, for a progress display.
    pub progress: Option<Arc<RunProgress>>,
}

/// What was measured of one job.
#[derive(Debug, Clone, Default)]
pub struct JobMeasured {
    pub pod_latency: Option<PodLatencySummary>,
    pub api_calls: ApiCallSummary,
    /// Pods of the job whose server-family latencies came out negative and were clamped.
    pub negative_server_latencies: u64,
}

/// What a run measured, by job name.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub jobs: HashMap<String, JobMeasured>,
}

/// The running measurement of a run.
pub struct Measurement {
    recorder: Recorder,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<Measured, MeasureError>>,
}

impl Measurement {
    /// Starts the collector and, when a job measures pods, the pod watch; returns once the
    /// watch has listed, so it sees everything the run creates.
    pub async fn start(
        client: &kube::Client,
        options: MeasureOptions,
    ) -> Result<Self, MeasureError> {
        let pods = (!options.pod_latency_jobs.is_empty()).then(|| {
            // Only the fields the measurement reads are decoded (see `watched`).
            let api: kube::Api<WatchedPod> = kube::Api::all(client.clone());
            let config = watcher::Config::default().labels(&format!(
                "{}={}",
                labels::RUN_ID,
                options.run_id
            ));
            watcher(api, config).default_backoff().boxed()
        });
        Self::with_pod_events(pods, options).await
    }

    /// Starts the collector on a given stream of pod events, as a watch of the run's pods
    /// gives them (benchmarks feed it their own).
    pub async fn with_pod_events(
        pods: Option<PodEvents>,
        options: MeasureOptions,
    ) -> Result<Self, MeasureError> {
        let (samples, receiver) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let (listed, watch_listed) = oneshot::channel();
        let watching = pods.is_some();
        let collector = Collector::new(options)?;
        let task = tokio::spawn(collector.run(receiver, pods, listed, stop.clone()));
        if watching {
            match tokio::time::timeout(WATCH_START_TIMEOUT, watch_listed).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => return Err(MeasureError::Watch(error)),
                Ok(Err(_)) | Err(_) => {
                    stop.cancel();
                    return Err(MeasureError::WatchNotReady);
                }
            }
        }
        Ok(Self {
            recorder: Recorder {
                samples: Some(samples),
            },
            stop,
            task,
        })
    }

    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Stops measuring, writes what is left to write, and returns what was measured.
    pub async fn finish(self) -> Result<Measured, MeasureError> {
        self.stop.cancel();
        self.task.await.map_err(MeasureError::Task)?
    }
}

/// Watch events of the run's pods.
pub type PodEvents =
    futures::stream::BoxStream<'static, Result<watcher::Event<WatchedPod>, watcher::Error>>;

struct Collector {
    options: MeasureOptions,
    tracker: PodTracker,
    series: HashMap<Arc<str>, JobSeries>,
    rows: HashMap<Arc<str>, RowWriter>,
    progress: HashMap<Arc<str>, Arc<JobProgress>>,
    /// The first write that failed; measuring goes on, and the run hears of it at the end.
    write_error: Option<WriteError>,
}

impl Collector {
    fn new(options: MeasureOptions) -> Result<Self, WriteError> {
        std::fs::create_dir_all(&options.dir).map_err(|e| WriteError::new(&options.dir, e))?;
        let mut rows = HashMap::new();
        for job in &options.pod_latency_jobs {
            let writer = RowWriter::create(&options.dir, &format!("podLatencyMeasurement-{job}"))?;
            rows.insert(Arc::from(job.as_str()), writer);
        }
        Ok(Self {
            tracker: PodTracker::new(
                &options.uuid,
                options.pod_latency_jobs.iter().cloned(),
                (Instant::now(), SystemTime::now()),
            ),
            options,
            series: HashMap::new(),
            rows,
            progress: HashMap::new(),
            write_error: None,
        })
    }

    async fn run(
        mut self,
        mut samples: mpsc::UnboundedReceiver<Sample>,
        mut pods: Option<PodEvents>,
        listed: oneshot::Sender<Result<(), watcher::Error>>,
        stop: CancellationToken,
    ) -> Result<Measured, MeasureError> {
        let mut listed = Some(listed);
        loop {
            tokio::select! {
                // Samples first: a pod's create request is always queued before the watch
                // can show the pod.
                biased;
                sample = samples.recv() => match sample {
                    Some(sample) => self.take(sample),
                    None => break,
                },
                event = next_event(&mut pods) => {
                    let at = Instant::now();
                    match event {
                        Some(Ok(event)) => self.watch_event(event, at, &mut listed),
                        Some(Err(error)) => match listed.take() {
                            Some(listed) => {
                                let _ = listed.send(Err(error));
                                return Ok(Measured::default());
                            }
                            None => tracing::warn!("pod watch: {error}; it goes on"),
                        },
                        None => pods = None,
                    }
                }
                _ = stop.cancelled() => break,
            }
        }
        while let Ok(sample) = samples.try_recv() {
            self.take(sample);
        }
        self.finish()
    }

    fn take(&mut self, sample: Sample) {
        match sample {
            Sample::JobStarted { job, at, wall } => {
                if let Some(progress) = self.options.progress.as_ref().and_then(|p| p.job(&job)) {
                    self.progress.insert(job.clone(), progress);
                }
                self.series.insert(job, JobSeries::new(at, wall));
            }
            Sample::CreateSent {
                namespace,
                name,
                at,
            } => self.tracker.create_sent(&namespace, &name, at),
            Sample::ApiCall { job, call } => {
                if let Some(series) = self.series.get_mut(&job) {
                    series.record(&call);
                }
            }
        }
    }

    fn watch_event(
        &mut self,
        event: watcher::Event<WatchedPod>,
        at: Instant,
        listed: &mut Option<oneshot::Sender<Result<(), watcher::Error>>>,
    ) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                self.pod(&PodView::from_watched(&pod), at);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = listed.take() {
                    let _ = listed.send(Ok(()));
                }
            }
            watcher::Event::Delete(_) | watcher::Event::Init => {}
        }
    }

    fn pod(&mut self, view: &PodView, at: Instant) {
        let Some(Observed {
            job,
            first_seen: seen,
            ready: row,
        }) = self.tracker.observe(view, at)
        else {
            return;
        };
        if let Some(series) = self.series.get_mut(&job) {
            if seen {
                series.pod_seen(at);
            }
            if row.is_some() {
                series.pod_ready(at);
            }
        }
        if row.is_some()
            && let Some(progress) = self.progress.get(&job)
        {
            progress.pods_ready.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(row) = row
            && let Some(writer) = self.rows.get_mut(&job)
            && let Err(error) = writer.write(&row)
        {
            tracing::error!("{error}");
            self.write_error.get_or_insert(error);
        }
    }

    fn finish(mut self) -> Result<Measured, MeasureError> {
        let uuid = self.options.uuid.clone();
        let dir = self.options.dir.clone();
        let mut measured = Measured::default();
        let mut write = |result: Result<(), WriteError>| {
            if let Err(error) = result {
                self.write_error.get_or_insert(error);
            }
        };
        for (job, writer) in self.rows.drain() {
            write(writer.finish());
            let stats = self.tracker.stats.get(&job).cloned().unwrap_or_default();
            let quantile_rows = quantile_rows(&stats, &uuid, &job);
            write(write_rows(
                &dir,
                &format!("podLatencyQuantilesMeasurement-{job}"),
                &quantile_rows,
            ));
            if stats.negative > 0 {
                tracing::warn!(
                    job = &*job,
                    pods = stats.negative,
                    "server-family latencies below zero were clamped to zero (clock skew)"
                );
            }
            let entry: &mut JobMeasured = measured.jobs.entry(job.to_string()).or_default();
            entry.pod_latency = Some(stats.summary());
            entry.negative_server_latencies = stats.negative;
        }
        for (job, series) in &mut self.series {
            write(write_rows(
                &dir,
                &format!("apiCallLatency-{job}"),
                &series.call_rows(&uuid, job),
            ));
            let (seconds, verbs) = series.series_rows(&uuid, job);
            write(write_rows(&dir, &format!("jobTimeseries-{job}"), &seconds));
            write(write_rows(
                &dir,
                &format!("apiCallTimeseries-{job}"),
                &verbs,
            ));
            measured.jobs.entry(job.to_string()).or_default().api_calls = series.summary();
        }
        if self.tracker.starting() > 0 {
            tracing::info!(
                pods = self.tracker.starting(),
                "pods that never became Ready are not measured"
            );
        }
        match self.write_error {
            Some(error) => Err(error.into()),
            None => Ok(measured),
        }
    }
}

async fn next_event(
    pods: &mut Option<PodEvents>,
) -> Option<Result<watcher::Event<WatchedPod>, watcher::Error>> {
    match pods {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// A row of `podLatencyQuantilesMeasurement-<job>`: kube-burner's fields hold the server
/// family, burner's the watch family beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodQuantilesRow {
    pub quantile_name: String,
    pub uuid: String,
    #[serde(rename = "P99")]
    pub p99: i64,
    #[serde(rename = "P95")]
    pub p95: i64,
    #[serde(rename = "P50")]
    pub p50: i64,
    pub min: i64,
    pub max: i64,
    pub avg: i64,
    pub timestamp: String,
    pub metric_name: String,
    pub job_name: String,
    #[serde(rename = "P99.9")]
    pub p999: i64,
    pub count: u64,
    #[serde(rename = "watchP50")]
    pub watch_p50: Option<f64>,
    #[serde(rename = "watchP95")]
    pub watch_p95: Option<f64>,
    #[serde(rename = "watchP99")]
    pub watch_p99: Option<f64>,
    #[serde(rename = "watchP99.9")]
    pub watch_p999: Option<f64>,
    pub watch_min: Option<f64>,
    pub watch_max: Option<f64>,
    pub watch_avg: Option<f64>,
    pub watch_count: u64,
}

fn quantile_rows(stats: &JobPodStats, uuid: &str, job: &str) -> Vec<PodQuantilesRow> {
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    POD_PHASES
        .iter()
        .enumerate()
        .filter(|(i, _)| !stats.watch[*i].is_empty() || !stats.server[*i].is_empty())
        .map(|(i, phase)| {
            let server = stats.server[i].quantiles();
            let watch: Option<Quantiles> =
                (!stats.watch[i].is_empty()).then(|| stats.watch[i].quantiles());
            PodQuantilesRow {
                quantile_name: phase.to_string(),
                uuid: uuid.to_string(),
                p99: server.p99 as i64,
                p95: server.p95 as i64,
                p50: server.p50 as i64,
                min: server.min as i64,
                max: server.max as i64,
                avg: server.avg as i64,
                timestamp: now.clone(),
                metric_name: "podLatencyQuantilesMeasurement".into(),
                job_name: job.to_string(),
                p999: server.p999 as i64,
                count: server.count,
                watch_p50: watch.map(|q| q.p50),
                watch_p95: watch.map(|q| q.p95),
                watch_p99: watch.map(|q| q.p99),
                watch_p999: watch.map(|q| q.p999),
                watch_min: watch.map(|q| q.min),
                watch_max: watch.map(|q| q.max),
                watch_avg: watch.map(|q| q.avg),
                watch_count: watch.map_or(0, |q| q.count),
            }
        })
        .collect()
}
