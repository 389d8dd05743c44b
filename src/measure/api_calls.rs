//! Client-side API-call latency of a job, and what happened in each second of it.
//!
//! A call's latency runs from its intended send time (when the job's rate gate let it
//! go, before it waited for a free connection slot) to its answer, so a saturated client
//! shows up as latency instead of hiding it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::histogram::{LatencyHistogram, Rule, Unit};
use crate::results::summary::{ApiCallQuantiles, ApiCallSummary, Quantiles};

/// One answered (or failed) attempt.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub verb: &'static str,
    pub resource: Arc<str>,
    /// HTTP status; 0 when no answer came.
    pub code: u16,
    pub intended: Instant,
    pub answered: Instant,
}

impl ApiCall {
    fn failed(&self) -> bool {
        self.code == 0 || self.code >= 400
    }
}

/// What happened in one second of a job.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    requests: u64,
    writes: u64,
    errors: u64,
    throttled: u64,
    pods_seen: u64,
    pods_ready: u64,
}

/// A row of `jobTimeseries-<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSecondRow {
    pub metric_name: String,
    pub uuid: String,
    pub job_name: String,
    pub second: u64,
    pub timestamp: String,
    pub requests: u64,
    pub writes: u64,
    pub errors: u64,
    pub throttled: u64,
    /// Cumulative.
    pub pods_seen: u64,
    /// Cumulative.
    pub pods_ready: u64,
}

/// A row of `apiCallTimeseries-<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallSecondRow {
    pub metric_name: String,
    pub uuid: String,
    pub job_name: String,
    pub second: u64,
    pub timestamp: String,
    pub verb: String,
    pub count: u64,
    #[serde(rename = "P50")]
    pub p50: f64,
    #[serde(rename = "P99")]
    pub p99: f64,
}

/// A row of `apiCallLatency-<job>`. The quantiles are spelt out rather than flattened from
/// [`Quantiles`]: CSV rows cannot hold a flattened struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallRow {
    pub metric_name: String,
    pub uuid: String,
    pub job_name: String,
    pub verb: String,
    pub resource: String,
    pub code: u16,
    pub count: u64,
    #[serde(rename = "P50")]
    pub p50: f64,
    #[serde(rename = "P95")]
    pub p95: f64,
    #[serde(rename = "P99")]
    pub p99: f64,
    #[serde(rename = "P99.9")]
    pub p999: f64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

/// Latencies of one verb within one second, until that second is over.
struct OpenSecond {
    second: u64,
    micros: Vec<u32>,
}

/// The API calls and the time series of one job.
pub struct JobSeries {
    started: Instant,
    started_wall: SystemTime,
    seconds: Vec<Second>,
    requests: u64,
    throttled: u64,
    by_call: HashMap<(&'static str, Arc<str>, u16), LatencyHistogram>,
    by_verb: BTreeMap<&'static str, LatencyHistogram>,
    open: BTreeMap<&'static str, OpenSecond>,
    verb_seconds: Vec<ApiCallSecondRow>,
}

fn latency_histogram() -> LatencyHistogram {
    LatencyHistogram::new(Unit::Micros, Rule::NearestRank)
}

impl JobSeries {
    pub fn new(started: Instant, started_wall: SystemTime) -> Self {
        Self {
            started,
            started_wall,
            seconds: Vec::new(),
            requests: 0,
            throttled: 0,
            by_call: HashMap::new(),
            by_verb: BTreeMap::new(),
            open: BTreeMap::new(),
            verb_seconds: Vec::new(),
        }
    }

    fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs()
    }

    fn bucket(&mut self, at: Instant) -> &mut Second {
        let second = self.second_of(at) as usize;
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, Second::default());
        }
        &mut self.seconds[second]
    }

    pub fn record(&mut self, call: &ApiCall) {
        let latency = call.answered.saturating_duration_since(call.intended);
        self.requests += 1;
        let throttled = call.code == 429;
        self.throttled += u64::from(throttled);
        let failed = call.failed();
        let write = call.verb == "create" && !failed;
        let bucket = self.bucket(call.answered);
        bucket.requests += 1;
        bucket.writes += u64::from(write);
        bucket.errors += u64::from(failed);
        bucket.throttled += u64::from(throttled);
        self.by_call
            .entry((call.verb, call.resource.clone(), call.code))
            .or_insert_with(latency_histogram)
            .record_duration(latency);
        self.by_verb
            .entry(call.verb)
            .or_insert_with(latency_histogram)
            .record_duration(latency);

        let second = self.second_of(call.answered);
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let open = self.open.entry(call.verb).or_insert(OpenSecond {
            second,
            micros: Vec::new(),
        });
        if second > open.second {
            let closed = std::mem::replace(
                open,
                OpenSecond {
                    second,
                    micros: Vec::new(),
                },
            );
            let row = self.close_second(call.verb, closed);
            self.verb_seconds.push(row);
        }
        // A late answer of a second already closed counts in the open one.
        self.open
            .get_mut(call.verb)
            .expect("opened above")
            .micros
            .push(micros);
    }

    fn close_second(&self, verb: &str, mut open: OpenSecond) -> ApiCallSecondRow {
        open.micros.sort_unstable();
        let n = open.micros.len();
        let nearest = |p: f64| {
            let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
            f64::from(open.micros[rank - 1]) / 1000.0
        };
        ApiCallSecondRow {
            metric_name: "apiCallTimeseries".into(),
            uuid: String::new(),
            job_name: String::new(),
            second: open.second,
            timestamp: self.second_timestamp(open.second),
            verb: verb.to_string(),
            count: n as u64,
            p50: nearest(50.0),
            p99: nearest(99.0),
        }
    }

    fn second_timestamp(&self, second: u64) -> String {
        humantime::format_rfc3339_millis(self.started_wall + Duration::from_secs(second))
            .to_string()
    }

    pub fn pod_seen(&mut self, at: Instant) {
        self.bucket(at).pods_seen += 1;
    }

    pub fn pod_ready(&mut self, at: Instant) {
        self.bucket(at).pods_ready += 1;
    }

    /// The job's API-call summary (errors and retries are the job engine's to add).
    pub fn summary(&self) -> ApiCallSummary {
        let mut calls: Vec<ApiCallQuantiles> = self
            .by_call
            .iter()
            .map(|((verb, resource, code), h)| ApiCallQuantiles {
                verb: verb.to_string(),
                resource: resource.to_string(),
                code: *code,
                quantiles: h.quantiles(),
            })
            .collect();
        calls.sort_by(|a, b| (&a.verb, &a.resource, a.code).cmp(&(&b.verb, &b.resource, b.code)));
        ApiCallSummary {
            requests: self.requests,
            errors: 0,
            throttled: self.throttled,
            retries: 0,
            by_verb: self
                .by_verb
                .iter()
                .map(|(verb, h)| (verb.to_string(), h.quantiles()))
                .collect(),
            calls,
        }
    }

    /// The rows of `apiCallLatency-<job>`.
    pub fn call_rows(&self, uuid: &str, job: &str) -> Vec<ApiCallRow> {
        self.summary()
            .calls
            .into_iter()
            .map(|c| {
                let Quantiles {
                    count,
                    p50,
                    p95,
                    p99,
                    p999,
                    min,
                    max,
                    avg,
                } = c.quantiles;
                ApiCallRow {
                    metric_name: "apiCallLatency".into(),
                    uuid: uuid.into(),
                    job_name: job.into(),
                    verb: c.verb,
                    resource: c.resource,
                    code: c.code,
                    count,
                    p50,
                    p95,
                    p99,
                    p999,
                    min,
                    max,
                    avg,
                }
            })
            .collect()
    }

    /// The rows of `jobTimeseries-<job>` and `apiCallTimeseries-<job>`; closes the seconds
    /// still open.
    pub fn series_rows(
        &mut self,
        uuid: &str,
        job: &str,
    ) -> (Vec<JobSecondRow>, Vec<ApiCallSecondRow>) {
        let open = std::mem::take(&mut self.open);
        for (verb, second) in open {
            let row = self.close_second(verb, second);
            self.verb_seconds.push(row);
        }
        let mut verb_rows = std::mem::take(&mut self.verb_seconds);
        verb_rows.sort_by(|a, b| (a.second, &a.verb).cmp(&(b.second, &b.verb)));
        for row in &mut verb_rows {
            row.uuid = uuid.into();
            row.job_name = job.into();
        }
        let mut seen = 0;
        let mut ready = 0;
        let job_rows = self
            .seconds
            .iter()
            .enumerate()
            .map(|(second, s)| {
                seen += s.pods_seen;
                ready += s.pods_ready;
                JobSecondRow {
                    metric_name: "jobTimeseries".into(),
                    uuid: uuid.into(),
                    job_name: job.into(),
                    second: second as u64,
                    timestamp: self.second_timestamp(second as u64),
                    requests: s.requests,
                    writes: s.writes,
                    errors: s.errors,
                    throttled: s.throttled,
                    pods_seen: seen,
                    pods_ready: ready,
                }
            })
            .collect();
        (job_rows, verb_rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(verb: &'static str, code: u16, intended: Instant, ms: u64) -> ApiCall {
        ApiCall {
            verb,
            resource: Arc::from("pods"),
            code,
            intended,
            answered: intended + Duration::from_millis(ms),
        }
    }

    #[test]
    fn calls_are_counted_by_verb_resource_code_and_second() {
        let t0 = Instant::now();
        let mut series = JobSeries::new(t0, SystemTime::UNIX_EPOCH);
        series.record(&call("create", 201, t0, 10));
        series.record(&call("create", 201, t0, 30));
        series.record(&call("create", 429, t0 + Duration::from_millis(1500), 5));
        series.record(&call("get", 200, t0 + Duration::from_millis(2100), 2));
        series.pod_seen(t0 + Duration::from_millis(100));
        series.pod_ready(t0 + Duration::from_millis(2500));

        let summary = series.summary();
        assert_eq!((summary.requests, summary.throttled), (4, 1));
        assert_eq!(summary.by_verb["create"].count, 3);
        assert_eq!(summary.by_verb["create"].max, 30.0);
        assert_eq!(summary.calls.len(), 3, "{:?}", summary.calls);
        assert_eq!(series.call_rows("u", "j")[0].code, 201);

        let (seconds, verbs) = series.series_rows("u", "j");
        let writes: Vec<u64> = seconds.iter().map(|s| s.writes).collect();
        assert_eq!(writes, [2, 0, 0]);
        assert_eq!(seconds[1].throttled, 1);
        assert_eq!(seconds[2].pods_ready, 1, "cumulative");
        assert_eq!(seconds[2].pods_seen, 1, "cumulative");
        assert_eq!(seconds[1].timestamp, "1970-01-01T00:00:01.000Z");
        let creates: Vec<(u64, u64, f64)> = verbs
            .iter()
            .filter(|r| r.verb == "create")
            .map(|r| (r.second, r.count, r.p99))
            .collect();
        assert_eq!(creates, [(0, 2, 30.0), (1, 1, 5.0)]);
        assert_eq!(verbs.iter().filter(|r| r.verb == "get").count(), 1);
    }
}
