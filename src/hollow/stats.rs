//! Counters of a hollow fleet, shared by its tasks, and the ground truth it injects: how
//! long each pod took from being seen bound to its Ready status being written.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

#[derive(Debug)]
pub struct FleetStats {
    pub nodes_registered: AtomicU64,
    pub pods_running: AtomicU64,
    pub pods_ready: AtomicU64,
    pub pods_succeeded: AtomicU64,
    pub pods_deleted: AtomicU64,
    pub writes: AtomicU64,
    pub write_errors: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub conflicts: AtomicU64,
    /// Microseconds from seeing a pod bound to its Ready status being acknowledged.
    bound_to_ready: Mutex<Histogram<u64>>,
}

impl Default for FleetStats {
    fn default() -> Self {
        Self {
            nodes_registered: AtomicU64::new(0),
            pods_running: AtomicU64::new(0),
            pods_ready: AtomicU64::new(0),
            pods_succeeded: AtomicU64::new(0),
            pods_deleted: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            bound_to_ready: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl FleetStats {
    pub fn record_bound_to_ready(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut histogram) = self.bound_to_ready.lock() {
            histogram.saturating_record(micros);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let histogram = self.bound_to_ready.lock().map(|h| h.clone()).ok();
        let quantile = |q: f64| {
            histogram
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| Duration::from_micros(h.value_at_quantile(q)))
        };
        StatsSnapshot {
            nodes_registered: load(&self.nodes_registered),
            pods_running: load(&self.pods_running),
            pods_ready: load(&self.pods_ready),
            pods_succeeded: load(&self.pods_succeeded),
            pods_deleted: load(&self.pods_deleted),
            writes: load(&self.writes),
            write_errors: load(&self.write_errors),
            retries: load(&self.retries),
            throttled: load(&self.throttled),
            conflicts: load(&self.conflicts),
            bound_to_ready: LatencySummary {
                count: histogram.as_ref().map_or(0, |h| h.len()),
                min: histogram
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| Duration::from_micros(h.min())),
                p50: quantile(0.50),
                p99: quantile(0.99),
                max: histogram
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| Duration::from_micros(h.max())),
            },
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub nodes_registered: u64,
    /// Pods this fleet moved to Running (cumulative).
    pub pods_running: u64,
    pub pods_ready: u64,
    pub pods_succeeded: u64,
    pub pods_deleted: u64,
    pub writes: u64,
    pub write_errors: u64,
    pub retries: u64,
    pub throttled: u64,
    pub conflicts: u64,
    pub bound_to_ready: LatencySummary,
}

/// Quantiles of a latency, serialized in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    #[serde(rename = "minMs", serialize_with = "as_millis")]
    pub min: Option<Duration>,
    #[serde(rename = "p50Ms", serialize_with = "as_millis")]
    pub p50: Option<Duration>,
    #[serde(rename = "p99Ms", serialize_with = "as_millis")]
    pub p99: Option<Duration>,
    #[serde(rename = "maxMs", serialize_with = "as_millis")]
    pub max: Option<Duration>,
}

fn as_millis<S: serde::Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_f64(d.as_secs_f64() * 1e3),
        None => serializer.serialize_none(),
    }
}
