//! The cluster's own metrics, read from Prometheus (kube-burner's `metricsEndpoints`):
//! metric profiles queried over each job's window into documents, alert profiles
//! evaluated over each job's window right after the job.
//!
//! Endpoints are reached, and every query is checked by the endpoint's own PromQL parser,
//! before the run's first write ([`MetricsSession::connect`]). After that, Prometheus
//! failing costs only the metrics: a failed query is recorded and reported, never the
//! end of the run.

pub mod alerts;
pub mod documents;
pub mod prometheus;

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::metrics::{ElapsedUnit, MetricsEndpoint, QueryTemplate, Severity};
pub use alerts::FiredAlert;
pub use documents::MetricDocument;
use prometheus::{PromError, Prometheus};

/// Queries in flight at once against one endpoint.
const QUERIES_IN_FLIGHT: usize = 8;
/// How long reading one endpoint's metrics after the run may take.
const SCRAPE_LIMIT: Duration = Duration::from_secs(600);
/// How long to wait for a scrape after a window ends before reading it.
const INGEST_PATIENCE: Duration = Duration::from_secs(40);
/// How long evaluating one endpoint's alerts after a job may take.
const ALERTS_LIMIT: Duration = Duration::from_secs(120);
/// The `elapsed` queries are checked with before the run.
const CHECK_ELAPSED: Duration = Duration::from_secs(60);

/// The time a job ran, which its metrics and alerts cover.
#[derive(Debug, Clone, PartialEq)]
pub struct JobWindow {
    pub job: String,
    pub start: SystemTime,
    pub end: SystemTime,
    /// When the job churned, for kube-burner's `churnMetric` flag.
    pub churn: Option<(SystemTime, SystemTime)>,
}

impl JobWindow {
    fn elapsed(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }

    fn in_churn(&self, at: SystemTime) -> bool {
        self.churn
            .is_some_and(|(start, end)| start <= at && at <= end)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metricsEndpoints: cannot use {url}: {source}")]
    Endpoint {
        url: String,
        #[source]
        source: PromError,
    },
    #[error("{file}: `{name}`: {url} refuses the query `{query}`: {message}")]
    BadQuery {
        file: String,
        name: String,
        url: String,
        query: String,
        message: String,
    },
    #[error("metricsEndpoints: {0}")]
    Template(#[from] crate::config::ConfigError),
}

/// A query that failed while the run's metrics were read; the others went on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedQuery {
    pub endpoint: String,
    pub job: String,
    /// The metric name, or `alert` for an alert expression.
    pub name: String,
    pub error: String,
}

/// What reading one endpoint gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSummary {
    pub url: String,
    pub alias: String,
    /// Documents written, by metric name.
    pub documents: std::collections::BTreeMap<String, u64>,
    pub failed_queries: Vec<FailedQuery>,
}

/// What a run read from its metrics endpoints, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    pub endpoints: Vec<EndpointSummary>,
    /// Every alert that fired, in the order the jobs ran.
    pub alerts: Vec<FiredAlert>,
}

impl MetricsSummary {
    /// The worst severity among the fired alerts.
    pub fn worst_alert(&self) -> Option<Severity> {
        self.alerts.iter().map(|a| a.severity).max()
    }
}

/// Endpoints reached, queries checked: ready for the run.
pub struct MetricsSession {
    uuid: String,
    endpoints: Vec<(MetricsEndpoint, Prometheus)>,
}

impl MetricsSession {
    /// Reaches every endpoint and has it parse every query, so a wrong URL, wrong
    /// credentials or a PromQL syntax error stop the run before it writes anything.
    pub async fn connect(endpoints: &[MetricsEndpoint], uuid: &str) -> Result<Self, MetricsError> {
        let mut connected = Vec::new();
        for endpoint in endpoints {
            let endpoint_error = |source| MetricsError::Endpoint {
                url: endpoint.url.clone(),
                source,
            };
            let prometheus = Prometheus::new(endpoint).map_err(endpoint_error)?;
            let version = prometheus.version().await.map_err(endpoint_error)?;
            tracing::info!(url = endpoint.url, version, "metrics endpoint reached");
            check_queries(endpoint, &prometheus).await?;
            connected.push((endpoint.clone(), prometheus));
        }
        Ok(Self {
            uuid: uuid.to_string(),
            endpoints: connected,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Whether any endpoint has alert rules to evaluate after each job.
    pub fn has_alerts(&self) -> bool {
        self.endpoints
            .iter()
            .any(|(e, _)| e.alert_profiles.iter().any(|p| !p.rules.is_empty()))
    }

    /// Every alert rule over `window`, on every endpoint; what fired, and what failed.
    pub async fn evaluate_alerts(&self, window: &JobWindow) -> (Vec<FiredAlert>, Vec<FailedQuery>) {
        let mut fired = Vec::new();
        let mut failed = Vec::new();
        for (endpoint, prometheus) in &self.endpoints {
            if endpoint.alert_profiles.iter().all(|p| p.rules.is_empty()) {
                continue;
            }
            wait_for_scrapes_after(prometheus, window.end).await;
            let evaluation = alerts::evaluate(endpoint, prometheus, window, &self.uuid);
            match tokio::time::timeout(ALERTS_LIMIT, evaluation).await {
                Ok((f, e)) => {
                    fired.extend(f);
                    failed.extend(e);
                }
                Err(_) => failed.push(FailedQuery {
                    endpoint: endpoint.url.clone(),
                    job: window.job.clone(),
                    name: "alert".into(),
                    error: format!(
                        "the alert expressions were not evaluated within {}; given up",
                        humantime::format_duration(ALERTS_LIMIT)
                    ),
                }),
            }
        }
        (fired, failed)
    }

    /// Every metric profile over every window, on every endpoint, into documents by
    /// metric name (kube-burner's file names), with a summary per endpoint.
    pub async fn scrape(
        &self,
        windows: &[JobWindow],
    ) -> (
        std::collections::BTreeMap<String, Vec<MetricDocument>>,
        Vec<EndpointSummary>,
    ) {
        let mut documents: std::collections::BTreeMap<String, Vec<MetricDocument>> =
            Default::default();
        let mut summaries = Vec::new();
        for (endpoint, prometheus) in &self.endpoints {
            if let Some(last_end) = windows.iter().map(|w| w.end).max() {
                wait_for_scrapes_after(prometheus, last_end).await;
            }
            let mut summary = EndpointSummary {
                url: endpoint.url.clone(),
                alias: endpoint.alias.clone(),
                ..EndpointSummary::default()
            };
            // Futures made in plain loops, not by closures over references: a closure's
            // higher-ranked lifetimes would make the run's future lose Send.
            let mut work = Vec::new();
            for window in windows {
                for query in endpoint.metric_profiles.iter().flat_map(|p| &p.queries) {
                    work.push(async move {
                        let result = documents::query_window(
                            prometheus, endpoint, query, window, &self.uuid,
                        )
                        .await;
                        (window, query, result)
                    });
                }
            }
            let total = work.len();
            let mut answered = 0;
            let mut answers = futures::stream::iter(work).buffered(QUERIES_IN_FLIGHT);
            // A Prometheus that stopped answering must not hold the run's results back
            // for hours: what has not come by the deadline is given up.
            let deadline = tokio::time::Instant::now() + SCRAPE_LIMIT;
            loop {
                let next = match tokio::time::timeout_at(deadline, answers.next()).await {
                    Ok(Some(next)) => next,
                    Ok(None) => break,
                    Err(_) => {
                        let error = format!(
                            "{} of {total} queries not answered within {}; given up",
                            total - answered,
                            humantime::format_duration(SCRAPE_LIMIT)
                        );
                        tracing::warn!(url = endpoint.url, "{error}");
                        summary.failed_queries.push(FailedQuery {
                            endpoint: endpoint.url.clone(),
                            job: String::new(),
                            name: "*".into(),
                            error,
                        });
                        break;
                    }
                };
                answered += 1;
                let (window, query, result) = next;
                match result {
                    Ok(found) => {
                        for (name, docs) in found {
                            *summary.documents.entry(name.clone()).or_default() +=
                                docs.len() as u64;
                            documents.entry(name).or_default().extend(docs);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            url = endpoint.url,
                            job = window.job,
                            metric = query.metric_name,
                            %error,
                            "a metric query failed; the others go on"
                        );
                        summary.failed_queries.push(FailedQuery {
                            endpoint: endpoint.url.clone(),
                            job: window.job.clone(),
                            name: query.metric_name.clone(),
                            error: error.to_string(),
                        });
                    }
                }
            }
            summaries.push(summary);
        }
        (documents, summaries)
    }
}

/// Waits until every target of the endpoint has been scraped after `end` (the newest `up`
/// sample of each is newer), so a window's last samples are in before it is read and
/// reading the same window later (`burner index`) gives the same answers. Gives up after
/// [`INGEST_PATIENCE`]: an endpoint that does not scrape (a query front end) or whose
/// targets are gone still gets read.
async fn wait_for_scrapes_after(prometheus: &Prometheus, end: SystemTime) {
    let end_seconds = end
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let deadline = tokio::time::Instant::now() + INGEST_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let newest = prometheus
            .instant("min(timestamp(up))", SystemTime::now())
            .await
            .ok()
            .and_then(|series| series.first()?.samples.first().map(|s| s.1));
        match newest {
            Some(at) if at >= end_seconds => return,
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            None => return,
        }
    }
    tracing::debug!(
        url = prometheus.url(),
        "targets not scraped since the window ended; reading anyway"
    );
}

/// Has the endpoint parse each query (an instant query now), rendered as a run would.
async fn check_queries(
    endpoint: &MetricsEndpoint,
    prometheus: &Prometheus,
) -> Result<(), MetricsError> {
    let mut checks: Vec<(String, String, &QueryTemplate, ElapsedUnit)> = Vec::new();
    for profile in &endpoint.metric_profiles {
        for query in &profile.queries {
            checks.push((
                profile.file.display().to_string(),
                query.metric_name.clone(),
                &query.query,
                ElapsedUnit::Seconds,
            ));
        }
    }
    for profile in &endpoint.alert_profiles {
        for (i, rule) in profile.rules.iter().enumerate() {
            checks.push((
                profile.file.display().to_string(),
                format!("alert {i}"),
                &rule.expr,
                ElapsedUnit::Minutes,
            ));
        }
    }
    let now = SystemTime::now();
    let mut work = Vec::new();
    for (file, name, template, unit) in checks {
        work.push(async move {
            let query = template.render(CHECK_ELAPSED, unit)?;
            match prometheus.instant(&query, now).await {
                Ok(_) => Ok(()),
                Err(PromError::BadQuery { message }) => Err(MetricsError::BadQuery {
                    file,
                    name,
                    url: endpoint.url.clone(),
                    query,
                    message,
                }),
                Err(source) => Err(MetricsError::Endpoint {
                    url: endpoint.url.clone(),
                    source,
                }),
            }
        });
    }
    let results: Vec<Result<(), MetricsError>> = futures::stream::iter(work)
        .buffered(QUERIES_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A time as documents write it: RFC 3339 UTC with milliseconds.
pub(crate) fn timestamp(seconds: f64) -> String {
    humantime::format_rfc3339_millis(instant(seconds)).to_string()
}

/// A Prometheus sample time (float seconds) as a time. Rounding to the millisecond gives
/// back the millisecond that was asked for (1764316267.863 is a hair below .863 as a float).
pub(crate) fn instant(seconds: f64) -> SystemTime {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    std::time::UNIX_EPOCH + Duration::from_millis(millis)
}
