//! Benchmark of the measurement stage alone, without a cluster: it proves the bound
//! "measuring 100,000 pods costs ≤ 150 MB RSS".
//!
//! The benchmark plays both sides of a run: the job engine, which reports every pod's
//! create request and its API call through a [`JobRecorder`], and the pod watch, whose
//! events it feeds to [`Measurement::with_pod_events`]. Each pod shows up three times, as
//! a real watch shows it: pending, scheduled, then running and Ready. Up to 5,000 pods are
//! starting at once (seen, not Ready yet), as in a run at a high rate; each new pod pushes
//! the oldest starting one to Ready. Events go as fast as the collector takes them (the
//! watch channel is bounded), so the time is the measurement stage's throughput.
//!
//! Prints the pods, the time, the events per second, the peak RSS of the whole process
//! (VmHWM, so the benchmark's own feeding counts against the bound) beside the RSS before
//! the measurement started, and the sizes of the files written. MB are 10^6 bytes. Exits
//! non-zero when the measurement did not measure every pod or the bound did not hold.
//!
//! Run with `cargo bench --bench measure`; `PODS=10000 cargo bench --bench measure` for a
//! smaller run.

use burner::watched::WatchedPod;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use burner::config::measurements::POD_PHASES;
use burner::exec::labels;
use burner::measure::pod_latency::{PodLatencyRow, WatchStart};
use burner::measure::{JobRecorder, MeasureOptions, Measured, Measurement};
use futures::SinkExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodSpec,
    PodStatus, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::watcher;

/// The bound on what measuring 100,000 pods may cost.
const RSS_BOUND_MB: f64 = 150.0;
/// Pods seen but not Ready yet, at most, at any moment.
const STARTING_AT_ONCE: usize = 5_000;
/// Watch events that may wait for the collector: the watch channel is bounded, so the
/// feed cannot run ahead of the measurement and pile events up in memory.
const WATCH_BUFFER: usize = 1_024;
const JOB: &str = "bench";
const UUID: &str = "4f6f3c1e-6b1a-4d2e-9c57-0b3e5a7d2f10";
const RUN_ID: &str = "bench-measure";
/// kube-burner's density layout: each iteration creates this many replicas in a
/// namespace of its own.
const REPLICAS_PER_ITERATION: u64 = 10;
const NODES: u64 = 100;

type PodEvent = Result<watcher::Event<WatchedPod>, watcher::Error>;

fn main() -> anyhow::Result<ExitCode> {
    let pods: u64 = match std::env::var("PODS") {
        Ok(value) => value
            .parse()
            .with_context(|| format!("PODS={value}: expected a number of pods"))?,
        Err(_) => 100_000,
    };
    if pods == 0 {
        bail!("PODS=0: there is nothing to measure");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(pods))
}

async fn bench(pods: u64) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let baseline_kb = proc_status_kb("VmRSS")?;
    let (mut watch, events) = mpsc::channel::<PodEvent>(WATCH_BUFFER);
    watch.send(Ok(watcher::Event::Init)).await?;
    watch.send(Ok(watcher::Event::InitDone)).await?;
    let started = Instant::now();
    let measurement = Measurement::with_pod_events(
        Some(Box::pin(events)),
        MeasureOptions {
            uuid: UUID.into(),
            run_id: RUN_ID.into(),
            dir: dir.path().to_path_buf(),
            pod_latency_jobs: vec![JOB.into()],
            progress: None,
        },
    )
    .await?;
    let recorder = measurement.recorder().job_started(JOB);
    // The feed runs on the runtime's workers, as the job engine does: fed from the main
    // thread, every pod would be allocated on one thread and freed on another, and the
    // numbers would show the allocator's locks rather than the collector.
    let fed = tokio::spawn(feed(pods, watch, recorder)).await??;
    let measured = measurement.finish().await?;
    let elapsed = started.elapsed();
    // Read before the checks below, which read the files and have costs of their own.
    let peak_kb = proc_status_kb("VmHWM")?;

    let (baseline, peak) = (megabytes(baseline_kb), megabytes(peak_kb));
    let seconds = elapsed.as_secs_f64();
    println!("== measurement stage: {pods} pods, up to {STARTING_AT_ONCE} starting at once");
    println!(
        "   {} watch events and {} recorder samples in {seconds:.2} s: {:.0} watch events/s, {:.0} pods/s",
        fed.watch_events,
        fed.samples,
        fed.watch_events as f64 / seconds,
        pods as f64 / seconds
    );
    println!(
        "   RSS: baseline {baseline:.1} MB, peak {peak:.1} MB, measurement's share {:+.1} MB",
        peak - baseline
    );
    println!("   files written:");
    for (name, bytes) in file_sizes(dir.path())? {
        println!("     {name:<44} {:>10}", size(bytes));
    }

    let mut failures = check_measured(&measured, pods);
    let rows = check_rows(dir.path(), pods)?;
    failures.extend(rows.failures);
    if rows.first_seen > 0 {
        println!(
            "   note: {} pods were timed from their first sighting: their watch event \
             reached the collector before their create sample",
            rows.first_seen
        );
    }
    println!(
        "measure: {pods} pods, peak RSS {peak:.1} MB (baseline {baseline:.1} MB), {} events in {seconds:.1} s",
        fed.watch_events
    );
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    let bound_held = peak <= RSS_BOUND_MB;
    println!(
        "bound {}: peak RSS {peak:.1} MB {} {RSS_BOUND_MB:.0} MB for {pods} pods{}",
        if bound_held { "held" } else { "BROKEN" },
        if bound_held { "<=" } else { ">" },
        if failures.is_empty() {
            ""
        } else {
            ", but the measurement is incomplete (see FAILED above)"
        }
    );
    Ok(if bound_held && failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Fed {
    watch_events: u64,
    samples: u64,
}

/// Plays the job engine and the pod watch: creates `pods` pods and walks each through its
/// watch events, keeping up to [`STARTING_AT_ONCE`] of them starting.
async fn feed(
    pods: u64,
    mut watch: mpsc::Sender<PodEvent>,
    recorder: JobRecorder,
) -> anyhow::Result<Fed> {
    let mut fed = Fed {
        watch_events: 2,
        samples: 1,
    };
    let mut starting: VecDeque<(u64, Timestamp)> = VecDeque::with_capacity(STARTING_AT_ONCE);
    for index in 0..pods {
        if starting.len() == STARTING_AT_ONCE {
            let (oldest, created) = starting.pop_front().expect("the window is full");
            watch.send(apply(oldest, created, Stage::Running)).await?;
            fed.watch_events += 1;
        }
        // The server's timestamps have whole seconds.
        let created = Timestamp::from_second(Timestamp::now().as_second())?;
        let intended = Instant::now();
        let (namespace, name) = (namespace(index), name(index));
        recorder.pod_create_sent(&namespace, &name);
        recorder.api_call("create", "pods", 201, intended);
        fed.samples += 2;
        watch.send(apply(index, created, Stage::Pending)).await?;
        watch.send(apply(index, created, Stage::Scheduled)).await?;
        fed.watch_events += 2;
        starting.push_back((index, created));
    }
    for (index, created) in starting {
        watch.send(apply(index, created, Stage::Running)).await?;
        fed.watch_events += 1;
    }
    // Dropping the sender ends the watch stream, so the collector takes every event
    // before it sees the stop.
    drop(watch);
    Ok(fed)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Created, not bound to a node yet.
    Pending,
    /// Bound: nodeName set and PodScheduled true.
    Scheduled,
    /// Containers running, every condition true.
    Running,
}

/// The event as the watch decodes it: the pod's JSON read into what burner keeps of it.
fn apply(index: u64, created: Timestamp, stage: Stage) -> PodEvent {
    let json = serde_json::to_vec(&pod(index, created, stage)).expect("a pod serializes");
    let watched: WatchedPod = serde_json::from_slice(&json).expect("a pod decodes");
    Ok(watcher::Event::Apply(watched))
}

fn namespace(index: u64) -> String {
    format!("{JOB}-{}", index / REPLICAS_PER_ITERATION)
}

fn name(index: u64) -> String {
    format!("{JOB}-{index}")
}

/// Pod `index` of the benchmark's job as the watch shows it at `stage`, with server
/// times a hollow node would write: bound at creation, running 1–3 s later.
fn pod(index: u64, created: Timestamp, stage: Stage) -> Pod {
    let iteration = index / REPLICAS_PER_ITERATION;
    let replica = index % REPLICAS_PER_ITERATION + 1;
    let labels = BTreeMap::from([
        (labels::UUID.to_string(), UUID.to_string()),
        (labels::JOB.to_string(), JOB.to_string()),
        (labels::INDEX.to_string(), "0".to_string()),
        (labels::RUN_ID.to_string(), RUN_ID.to_string()),
        (labels::ITERATION.to_string(), iteration.to_string()),
        (labels::REPLICA.to_string(), replica.to_string()),
        ("app".to_string(), JOB.to_string()),
    ]);
    let image = "registry.k8s.io/pause:3.10";
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    let toleration = |key: &str| Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        effect: Some("NoExecute".to_string()),
        toleration_seconds: Some(300),
        ..Toleration::default()
    };
    let node = (stage >= Stage::Scheduled).then(|| format!("hollow-{}", index % NODES));
    let started = created + SignedDuration::from_secs(1 + (index % 3) as i64);
    let condition = |type_: &str, at: Timestamp| PodCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        last_transition_time: Some(Time(at)),
        ..PodCondition::default()
    };
    let mut conditions = Vec::new();
    if stage >= Stage::Scheduled {
        conditions.push(condition("PodScheduled", created));
    }
    let mut status = PodStatus {
        phase: Some("Pending".to_string()),
        qos_class: Some("Burstable".to_string()),
        ..PodStatus::default()
    };
    if stage == Stage::Running {
        for type_ in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
        ] {
            conditions.push(condition(type_, started));
        }
        let host_ip = format!("10.0.{}.{}", index % NODES / 250, index % NODES % 250 + 1);
        status.phase = Some("Running".to_string());
        status.host_ip = Some(host_ip);
        status.pod_ip = Some(format!("10.244.{}.{}", index / 250 % 256, index % 250 + 2));
        status.start_time = Some(Time(created));
        status.container_statuses = Some(vec![ContainerStatus {
            name: "pause".to_string(),
            image: image.to_string(),
            image_id: format!("{image}@sha256:{:064x}", 0xfeed_u64),
            container_id: Some(format!("containerd://{index:064x}")),
            ready: true,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(started)),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    Pod {
        metadata: ObjectMeta {
            name: Some(name(index)),
            namespace: Some(namespace(index)),
            uid: Some(format!(
                "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
                index,
                index >> 32,
                (index >> 48) & 0xfff,
                index.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
            )),
            resource_version: Some((index * 3 + stage as u64 + 1000).to_string()),
            creation_timestamp: Some(Time(created)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "pause".to_string(),
                image: Some(image.to_string()),
                image_pull_policy: Some("IfNotPresent".to_string()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities("10m", "16Mi")),
                    limits: Some(quantities("100m", "64Mi")),
                    ..ResourceRequirements::default()
                }),
                termination_message_path: Some("/dev/termination-log".to_string()),
                termination_message_policy: Some("File".to_string()),
                ..Container::default()
            }],
            node_name: node,
            restart_policy: Some("Always".to_string()),
            dns_policy: Some("ClusterFirst".to_string()),
            scheduler_name: Some("default-scheduler".to_string()),
            service_account_name: Some("default".to_string()),
            termination_grace_period_seconds: Some(30),
            tolerations: Some(vec![
                toleration("node.kubernetes.io/not-ready"),
                toleration("node.kubernetes.io/unreachable"),
            ]),
            ..PodSpec::default()
        }),
        status: Some(status),
    }
}

/// What the returned summary should say of a run where every pod became Ready.
fn check_measured(measured: &Measured, pods: u64) -> Vec<String> {
    let mut failures = Vec::new();
    let Some(job) = measured.jobs.get(JOB) else {
        return vec![format!("no measurement of job {JOB}")];
    };
    match &job.pod_latency {
        None => failures.push(format!("job {JOB} has no pod latency")),
        Some(latency) => {
            if (latency.pods, latency.ready) != (pods, pods) {
                failures.push(format!(
                    "the summary has {} pods seen and {} Ready, expected {pods} of each",
                    latency.pods, latency.ready
                ));
            }
            for phase in POD_PHASES {
                let counts = latency
                    .phases
                    .get(phase)
                    .map(|q| (q.watch.map(|q| q.count), q.server.map(|q| q.count)));
                if counts != Some((Some(pods), Some(pods))) {
                    failures.push(format!(
                        "phase {phase}: (watch, server) counts {counts:?}, expected {pods} of each"
                    ));
                }
            }
        }
    }
    if job.api_calls.requests != pods {
        failures.push(format!(
            "{} API calls recorded, expected {pods}",
            job.api_calls.requests
        ));
    }
    failures
}

struct RowCheck {
    first_seen: u64,
    failures: Vec<String>,
}

/// Reads the per-pod files back, a row at a time: every pod once, in JSON and in CSV.
fn check_rows(dir: &Path, pods: u64) -> anyhow::Result<RowCheck> {
    let stem = format!("podLatencyMeasurement-{JOB}");
    let mut failures = Vec::new();
    let json_path = dir.join(format!("{stem}.json"));
    let json = BufReader::new(std::fs::File::open(&json_path)?);
    let mut seen = vec![false; pods as usize];
    let (mut rows, mut first_seen, mut incomplete) = (0u64, 0u64, 0u64);
    for line in json.lines() {
        let line = line?;
        // `RowWriter` writes one row per line between the array's brackets.
        let row = line.trim().trim_end_matches(',');
        if row == "[" || row == "]" {
            continue;
        }
        let row: PodLatencyRow = serde_json::from_str(row)
            .with_context(|| format!("{}: not a pod row: {row}", json_path.display()))?;
        rows += 1;
        if row.watch_start == WatchStart::FirstSeen {
            first_seen += 1;
        }
        if row.pod_ready_latency.is_none() || row.watch_pod_ready_latency.is_none() {
            incomplete += 1;
        }
        let index = row
            .pod_name
            .strip_prefix(&format!("{JOB}-"))
            .and_then(|i| i.parse::<usize>().ok());
        match index.and_then(|i| seen.get_mut(i)) {
            Some(seen) => *seen = true,
            None => failures.push(format!("a row of an unknown pod: {}", row.pod_name)),
        }
    }
    let distinct = seen.iter().filter(|s| **s).count() as u64;
    if (rows, distinct) != (pods, pods) {
        failures.push(format!(
            "{stem}.json has {rows} rows of {distinct} distinct pods, expected {pods}"
        ));
    }
    if incomplete > 0 {
        failures.push(format!("{incomplete} rows lack a Ready latency"));
    }
    let csv_rows = csv::Reader::from_path(dir.join(format!("{stem}.csv")))?
        .records()
        .try_fold(0u64, |n, r| r.map(|_| n + 1))?;
    if csv_rows != pods {
        failures.push(format!("{stem}.csv has {csv_rows} rows, expected {pods}"));
    }
    println!("   rows read back: {rows} in {stem}.json, {csv_rows} in {stem}.csv");
    Ok(RowCheck {
        first_seen,
        failures,
    })
}

/// The files of the run directory and their sizes in bytes, by name.
fn file_sizes(dir: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut sizes = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        sizes.insert(
            entry.file_name().to_string_lossy().into_owned(),
            entry.metadata()?.len(),
        );
    }
    Ok(sizes)
}

/// A `kB` field of /proc/self/status (the kernel's kB are KiB).
fn proc_status_kb(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}
