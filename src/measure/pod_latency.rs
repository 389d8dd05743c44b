//! Pod startup latency: a timeline per pod from its watch events, in two families.
//!
//! - **watch**: from the moment burner sent the pod's create request (or, for pods a
//!   controller made, the first watch event that showed the pod) to the first watch event
//!   that shows each phase, on burner's monotonic clock.
//! - **server**: kube-burner's definition, the phase condition's `lastTransitionTime` minus
//!   the pod's `creationTimestamp`, both server timestamps with one-second resolution.
//!
//! A pod is measured once it is seen Ready: its row is handed out and its timeline dropped,
//! so memory holds only pods still starting, plus 8 bytes per finished pod to ignore its
//! later events.

use crate::watched::WatchedPod;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::histogram::{LatencyHistogram, Rule, Unit};
use crate::config::measurements::{Family, POD_PHASES};
use crate::exec::labels;
use crate::results::summary::{PhaseQuantiles, PodLatencySummary};

const SCHEDULED: usize = 0;
const CONTAINERS_STARTED: usize = 3;
const READY: usize = 5;

/// What a pod's watch event says, stripped to what the measurement needs.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub job: Option<String>,
    pub iteration: Option<i64>,
    pub replica: Option<i64>,
    pub node_name: Option<String>,
    /// `creationTimestamp`, ms since the epoch.
    pub created_ms: Option<i64>,
    /// Per phase (in [`POD_PHASES`] order): reached, and the server's time for it (ms since
    /// the epoch) when it carries one.
    pub phases: [Option<Option<i64>>; 6],
}

fn epoch_ms(time: &k8s_openapi::jiff::Timestamp) -> i64 {
    time.as_millisecond()
}

impl PodView {
    pub fn from_watched(pod: &WatchedPod) -> Self {
        let meta = &pod.metadata;
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
        let number = |key: &str| label(key).and_then(|v| v.parse().ok());
        let status = pod.status.as_ref();
        let mut phases: [Option<Option<i64>>; 6] = Default::default();
        let node_name = pod.spec.node_name.clone();
        for condition in status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
        {
            if condition.status != "True" {
                continue;
            }
            if let Some(index) = POD_PHASES.iter().position(|p| *p == condition.type_) {
                phases[index] = Some(
                    condition
                        .last_transition_time
                        .as_ref()
                        .map(|t| epoch_ms(&t.0)),
                );
            }
        }
        if node_name.is_some() {
            // The watch family's scheduling is the binding; the server family keeps the
            // PodScheduled condition's time.
            phases[SCHEDULED].get_or_insert(None);
        }
        let containers = pod.spec.containers;
        let statuses = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        let started: Vec<Option<i64>> = statuses
            .iter()
            .filter_map(|c| {
                let state = c.state.as_ref()?;
                if let Some(running) = &state.running {
                    Some(running.started_at.as_ref().map(|t| epoch_ms(&t.0)))
                } else {
                    state
                        .terminated
                        .as_ref()
                        .map(|t| t.started_at.as_ref().map(|t| epoch_ms(&t.0)))
                }
            })
            .collect();
        if containers > 0 && started.len() == containers {
            phases[CONTAINERS_STARTED] = Some(started.into_iter().flatten().max());
        }
        Self {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            job: label(labels::JOB).cloned(),
            iteration: number(labels::ITERATION),
            replica: number(labels::REPLICA),
            node_name,
            created_ms: meta.creation_timestamp.as_ref().map(|t| epoch_ms(&t.0)),
            phases,
        }
    }
}

/// One measured pod: kube-burner's fields, then burner's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodLatencyRow {
    pub timestamp: Option<String>,
    pub scheduling_latency: Option<i64>,
    pub ready_to_start_containers_latency: Option<i64>,
    pub initialized_latency: Option<i64>,
    pub containers_started_latency: Option<i64>,
    pub containers_ready_latency: Option<i64>,
    pub pod_ready_latency: Option<i64>,
    pub metric_name: String,
    pub uuid: String,
    pub job_name: String,
    pub job_iteration: Option<i64>,
    pub replica: Option<i64>,
    pub namespace: String,
    pub pod_name: String,
    pub node_name: Option<String>,
    pub watch_start: WatchStart,
    pub first_seen_latency: Option<f64>,
    pub watch_scheduling_latency: Option<f64>,
    pub watch_ready_to_start_containers_latency: Option<f64>,
    pub watch_initialized_latency: Option<f64>,
    pub watch_containers_started_latency: Option<f64>,
    pub watch_containers_ready_latency: Option<f64>,
    pub watch_pod_ready_latency: Option<f64>,
    pub ready_timestamp: String,
}

impl PodLatencyRow {
    /// The pod's latency of each phase in one family, in [`POD_PHASES`] order.
    pub fn latencies(&self, family: Family) -> [Option<f64>; POD_PHASES.len()] {
        let server = |ms: Option<i64>| ms.map(|ms| ms as f64);
        match family {
            Family::Server => [
                server(self.scheduling_latency),
                server(self.ready_to_start_containers_latency),
                server(self.initialized_latency),
                server(self.containers_started_latency),
                server(self.containers_ready_latency),
                server(self.pod_ready_latency),
            ],
            Family::Watch => [
                self.watch_scheduling_latency,
                self.watch_ready_to_start_containers_latency,
                self.watch_initialized_latency,
                self.watch_containers_started_latency,
                self.watch_containers_ready_latency,
                self.watch_pod_ready_latency,
            ],
        }
    }
}

/// Where a pod's watch-family latencies start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WatchStart {
    /// burner's create request.
    Create,
    /// The first watch event that showed the pod.
    FirstSeen,
}

/// The pod-latency numbers of one job.
#[derive(Debug, Clone)]
pub struct JobPodStats {
    pub seen: u64,
    pub ready: u64,
    pub watch: [LatencyHistogram; 6],
    pub server: [LatencyHistogram; 6],
    /// Server-family latencies below zero, clamped to zero (clock skew between the
    /// apiserver and the node).
    pub negative: u64,
}

impl Default for JobPodStats {
    fn default() -> Self {
        Self {
            seen: 0,
            ready: 0,
            watch: std::array::from_fn(|_| LatencyHistogram::new(Unit::Micros, Rule::NearestRank)),
            server: std::array::from_fn(|_| LatencyHistogram::new(Unit::Millis, Rule::KubeBurner)),
            negative: 0,
        }
    }
}

impl JobPodStats {
    pub fn summary(&self) -> PodLatencySummary {
        let quantiles = |h: &LatencyHistogram| (!h.is_empty()).then(|| h.quantiles());
        PodLatencySummary {
            pods: self.seen,
            ready: self.ready,
            phases: POD_PHASES
                .iter()
                .enumerate()
                .map(|(i, phase)| {
                    let q = PhaseQuantiles {
                        watch: quantiles(&self.watch[i]),
                        server: quantiles(&self.server[i]),
                    };
                    (phase.to_string(), q)
                })
                .filter(|(_, q)| q.watch.is_some() || q.server.is_some())
                .collect(),
        }
    }
}

struct Timeline {
    job: Arc<str>,
    start: Instant,
    watch_start: WatchStart,
    first_seen: Instant,
    watch: [Option<Instant>; 6],
    server: [Option<i64>; 6],
}

/// What one event told of a measured job's pod, for the job's time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub job: Arc<str>,
    /// The first event that showed the pod.
    pub first_seen: bool,
    /// The pod was seen Ready: its row.
    pub ready: Option<Box<PodLatencyRow>>,
}

/// The per-pod state of the measurement.
pub struct PodTracker {
    uuid: String,
    /// Wall-clock time of `anchor`, for turning watch instants into timestamps.
    anchor: (Instant, SystemTime),
    /// Jobs whose pods are measured.
    jobs: HashMap<String, Arc<str>>,
    /// Create requests of pods not seen yet, by `namespace/name`.
    sent: HashMap<String, Instant>,
    pods: HashMap<String, Timeline>,
    /// Hashes of the uids of pods already measured.
    measured: HashSet<u64>,
    pub stats: HashMap<Arc<str>, JobPodStats>,
}

fn uid_hash(uid: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut hasher);
    hasher.finish()
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1000.0
}

impl PodTracker {
    pub fn new(
        uuid: &str,
        jobs: impl IntoIterator<Item = String>,
        anchor: (Instant, SystemTime),
    ) -> Self {
        let jobs: HashMap<String, Arc<str>> = jobs
            .into_iter()
            .map(|name| (name.clone(), Arc::from(name)))
            .collect();
        Self {
            uuid: uuid.to_string(),
            anchor,
            stats: jobs
                .values()
                .map(|j| (j.clone(), JobPodStats::default()))
                .collect(),
            jobs,
            sent: HashMap::new(),
            pods: HashMap::new(),
            measured: HashSet::new(),
        }
    }

    /// burner is sending the create request of pod `namespace/name` now.
    pub fn create_sent(&mut self, namespace: &str, name: &str, at: Instant) {
        // A retry's send replaces the first: the pod exists since the attempt that landed.
        self.sent.insert(format!("{namespace}/{name}"), at);
    }

    /// Pods seen but not Ready yet.
    pub fn starting(&self) -> usize {
        self.pods.len()
    }

    /// Takes a watch event of a pod, received at `at`; says what it told, if anything.
    pub fn observe(&mut self, view: &PodView, at: Instant) -> Option<Observed> {
        let job = view.job.as_ref().and_then(|j| self.jobs.get(j)).cloned()?;
        let key = uid_hash(&view.uid);
        if self.measured.contains(&key) {
            return None;
        }
        let mut first = false;
        let timeline = self.pods.entry(view.uid.clone()).or_insert_with(|| {
            first = true;
            let sent = self
                .sent
                .remove(&format!("{}/{}", view.namespace, view.name));
            Timeline {
                job: job.clone(),
                start: sent.unwrap_or(at),
                watch_start: if sent.is_some() {
                    WatchStart::Create
                } else {
                    WatchStart::FirstSeen
                },
                first_seen: at,
                watch: [None; 6],
                server: [None; 6],
            }
        });
        if first {
            self.stats.entry(job.clone()).or_default().seen += 1;
        }
        for (i, phase) in view.phases.iter().enumerate() {
            if let Some(server_time) = phase
                && timeline.watch[i].is_none()
            {
                timeline.watch[i] = Some(at);
                timeline.server[i] = *server_time;
            }
        }
        if timeline.watch[READY].is_none() {
            return first.then_some(Observed {
                job,
                first_seen: true,
                ready: None,
            });
        }
        let timeline = self.pods.remove(&view.uid).expect("inserted above");
        self.measured.insert(key);
        Some(Observed {
            job,
            first_seen: first,
            ready: Some(self.finish(timeline, view)),
        })
    }

    fn finish(&mut self, timeline: Timeline, view: &PodView) -> Box<PodLatencyRow> {
        let stats = self.stats.entry(timeline.job.clone()).or_default();
        stats.ready += 1;
        let mut watch = [None; 6];
        let mut server = [None; 6];
        for i in 0..POD_PHASES.len() {
            if let Some(time) = timeline.watch[i] {
                let latency = time.saturating_duration_since(timeline.start);
                stats.watch[i].record_duration(latency);
                watch[i] = Some(ms(latency));
            }
            if let (Some(time), Some(created)) = (timeline.server[i], view.created_ms) {
                let latency = time - created;
                if latency < 0 {
                    stats.negative += 1;
                }
                let latency = latency.max(0);
                stats.server[i].record(latency as u64);
                server[i] = Some(latency);
            }
        }
        let ready_at = timeline.watch[READY].expect("finished pods are Ready");
        let wall = |instant: Instant| {
            let (anchor, wall) = self.anchor;
            let time = if instant >= anchor {
                wall + (instant - anchor)
            } else {
                wall - (anchor - instant)
            };
            humantime::format_rfc3339_millis(time).to_string()
        };
        let timestamp = view.created_ms.map(|ms| {
            humantime::format_rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
            )
            .to_string()
        });
        Box::new(PodLatencyRow {
            timestamp,
            scheduling_latency: server[0],
            ready_to_start_containers_latency: server[1],
            initialized_latency: server[2],
            containers_started_latency: server[3],
            containers_ready_latency: server[4],
            pod_ready_latency: server[5],
            metric_name: "podLatencyMeasurement".into(),
            uuid: self.uuid.clone(),
            job_name: timeline.job.to_string(),
            job_iteration: view.iteration,
            replica: view.replica,
            namespace: view.namespace.clone(),
            pod_name: view.name.clone(),
            node_name: view.node_name.clone(),
            watch_start: timeline.watch_start,
            first_seen_latency: (timeline.watch_start == WatchStart::Create)
                .then(|| ms(timeline.first_seen - timeline.start)),
            watch_scheduling_latency: watch[0],
            watch_ready_to_start_containers_latency: watch[1],
            watch_initialized_latency: watch[2],
            watch_containers_started_latency: watch[3],
            watch_containers_ready_latency: watch[4],
            watch_pod_ready_latency: watch[5],
            ready_timestamp: wall(ready_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: i64 = 1_700_000_000_000;

    fn view(uid: &str, reached: &[(usize, i64)]) -> PodView {
        let mut phases: [Option<Option<i64>>; 6] = Default::default();
        for &(i, offset) in reached {
            phases[i] = Some(Some(CREATED + offset));
        }
        PodView {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            job: Some("job".into()),
            created_ms: Some(CREATED),
            node_name: Some("hollow-1".into()),
            phases,
            ..PodView::default()
        }
    }

    fn tracker() -> (PodTracker, Instant) {
        let t0 = Instant::now();
        (
            PodTracker::new("u", ["job".to_string()], (t0, SystemTime::now())),
            t0,
        )
    }

    #[test]
    fn a_created_pod_is_timed_from_its_create_request_and_measured_once() {
        let (mut tracker, t0) = tracker();
        tracker.create_sent("ns", "pod-a", t0);
        let seen = tracker.observe(&view("a", &[]), t0 + Duration::from_millis(5));
        assert!(matches!(
            seen,
            Some(Observed {
                first_seen: true,
                ready: None,
                ..
            })
        ));
        tracker.observe(&view("a", &[(0, 0)]), t0 + Duration::from_millis(9));
        let all = [
            (0, 0),
            (1, 2000),
            (2, 2000),
            (3, 2000),
            (4, 2000),
            (5, 2000),
        ];
        let Some(Observed {
            first_seen: false,
            ready: Some(row),
            ..
        }) = tracker.observe(&view("a", &all), t0 + Duration::from_millis(2012))
        else {
            panic!("Ready expected");
        };
        assert_eq!(row.watch_start, WatchStart::Create);
        assert_eq!(row.first_seen_latency, Some(5.0));
        assert_eq!(row.watch_scheduling_latency, Some(9.0));
        assert_eq!(row.watch_pod_ready_latency, Some(2012.0));
        assert_eq!(row.pod_ready_latency, Some(2000));
        assert_eq!(row.scheduling_latency, Some(0));
        // Later events of a measured pod change nothing.
        assert_eq!(
            tracker.observe(&view("a", &all), t0 + Duration::from_secs(9)),
            None
        );
        let summary = tracker.stats[&Arc::from("job")].summary();
        assert_eq!((summary.pods, summary.ready), (1, 1));
        assert_eq!(summary.phases["Ready"].watch.unwrap().p50, 2012.0);
        assert_eq!(summary.phases["Ready"].server.unwrap().p50, 2000.0);
        assert_eq!(tracker.starting(), 0);
    }

    #[test]
    fn a_controllers_pod_is_timed_from_its_first_sighting_and_other_jobs_are_ignored() {
        let (mut tracker, t0) = tracker();
        let ready = [(0, 0), (5, 1000)];
        let Some(Observed {
            first_seen: true,
            ready: Some(row),
            ..
        }) = tracker.observe(&view("b", &ready), t0)
        else {
            panic!("seen and Ready in one event");
        };
        assert_eq!(row.watch_start, WatchStart::FirstSeen);
        assert_eq!(
            (row.first_seen_latency, row.watch_pod_ready_latency),
            (None, Some(0.0))
        );
        let mut other = view("c", &ready);
        other.job = Some("another".into());
        assert_eq!(tracker.observe(&other, t0), None);
    }

    #[test]
    fn negative_server_latencies_are_clamped_and_counted() {
        let (mut tracker, t0) = tracker();
        tracker.observe(&view("d", &[(0, -1000), (5, 1000)]), t0);
        let stats = &tracker.stats[&Arc::from("job")];
        assert_eq!(stats.negative, 1);
        assert_eq!(stats.server[0].quantiles().max, 0.0);
    }
}
