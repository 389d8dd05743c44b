//! `burner index` (metric profiles over a time range into a folder, without running jobs)
//! and `burner check-alerts` (an alert profile over a time range).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;

use crate::config::metrics::{self, MetricsEndpoint, RawMetricsEndpoint, Severity};
use crate::metrics::{JobWindow, MetricsSession};
use crate::template::go::MissingKey;

/// Which Prometheus to ask, as flags or as an endpoint file.
#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// The Prometheus URL.
    #[arg(
        short = 'u',
        long,
        value_name = "URL",
        required_unless_present = "metrics_endpoint"
    )]
    pub prometheus_url: Option<String>,
    /// A bearer token for it.
    #[arg(short, long, conflicts_with_all = ["username", "password"])]
    pub token: Option<String>,
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    #[arg(short, long, requires = "username")]
    pub password: Option<String>,
    /// Check the server's certificate (kube-burner skips the check by default).
    #[arg(long)]
    pub verify_tls: bool,
    /// The step of range queries.
    #[arg(short, long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// A metricsEndpoints file instead of the flags above (its profiles are used when
    /// no profile flag is given).
    #[arg(
        short = 'e',
        long,
        value_name = "FILE",
        conflicts_with = "prometheus_url"
    )]
    pub metrics_endpoint: Option<PathBuf>,
    /// Start of the time range: seconds since the epoch, or an RFC 3339 time [default: an
    /// hour before the end].
    #[arg(long, value_parser = parse_time)]
    pub start: Option<SystemTime>,
    /// End of the time range [default: now].
    #[arg(long, value_parser = parse_time)]
    pub end: Option<SystemTime>,
    /// The UUID written into every document [default: a new random one].
    #[arg(long)]
    pub uuid: Option<String>,
    /// The job name written into every document.
    #[arg(short, long, default_value = "kube-burner-indexing")]
    pub job_name: String,
}

#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Metric profiles (files or URLs), comma separated or repeated.
    #[arg(
        short,
        long = "metrics-profile",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub metrics_profiles: Vec<String>,
    /// Where the documents go [default: collected-metrics-<uuid>].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckAlertsArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Alert profiles (files or URLs), comma separated or repeated.
    #[arg(
        short,
        long = "alert-profile",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub alert_profiles: Vec<String>,
    /// Also write the fired alerts as alert.json and alert.csv into this folder.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

pub async fn index(args: &IndexArgs) -> anyhow::Result<ExitCode> {
    let (endpoints, window, uuid) = args
        .endpoint
        .resolve(&args.metrics_profiles, &[])
        .context("cannot index")?;
    if endpoints.iter().all(|e| e.metric_profiles.is_empty()) {
        anyhow::bail!(
            "no metric profile to index: give --metrics-profile or an endpoint file with metrics"
        );
    }
    let session = MetricsSession::connect(&endpoints, &uuid).await?;
    let dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| crate::runner::default_output_dir(&uuid));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (documents, summaries) = session.scrape(std::slice::from_ref(&window)).await;
    crate::metrics::documents::write_documents(&dir, &documents)?;
    for (name, docs) in &documents {
        println!("{name}: {} documents", docs.len());
    }
    let failed: Vec<_> = summaries.iter().flat_map(|s| &s.failed_queries).collect();
    for failure in &failed {
        eprintln!("error: `{}` failed: {}", failure.name, failure.error);
    }
    eprintln!("documents: {}", dir.display());
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::results::exit_code::FAILED)
    })
}

/// Exit code 1 when an alert of severity error fired, 3 for critical, as kube-burner's
/// `check-alerts`.
pub async fn check_alerts(args: &CheckAlertsArgs) -> anyhow::Result<ExitCode> {
    let (endpoints, window, uuid) = args
        .endpoint
        .resolve(&[], &args.alert_profiles)
        .context("cannot check alerts")?;
    if endpoints.iter().all(|e| e.alert_profiles.is_empty()) {
        anyhow::bail!(
            "no alert profile to check: give --alert-profile or an endpoint file with alerts"
        );
    }
    let session = MetricsSession::connect(&endpoints, &uuid).await?;
    let (fired, failed) = session.evaluate_alerts(&window).await;
    for alert in &fired {
        println!(
            "{:<8} {}  {}",
            alert.severity.as_str(),
            alert.timestamp,
            alert.description
        );
    }
    if fired.is_empty() {
        println!("no alert fired");
    }
    for failure in &failed {
        eprintln!("error: an alert expression failed: {}", failure.error);
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        crate::metrics::alerts::write_alerts(dir, &fired)?;
    }
    let code = match fired.iter().map(|a| a.severity).max() {
        Some(Severity::Critical) => crate::results::exit_code::ALERT,
        Some(Severity::Error) => crate::results::exit_code::FAILED,
        _ if !failed.is_empty() => crate::results::exit_code::FAILED,
        _ => crate::results::exit_code::OK,
    };
    Ok(ExitCode::from(code))
}

impl EndpointArgs {
    /// The endpoints to ask (with the given profiles, or the endpoint file's), the time
    /// range as a window, and the uuid.
    fn resolve(
        &self,
        metric_profiles: &[String],
        alert_profiles: &[String],
    ) -> anyhow::Result<(Vec<MetricsEndpoint>, JobWindow, String)> {
        let (raw, file, folder) = match &self.metrics_endpoint {
            Some(file) => {
                let mut raw = metrics::read_endpoint_file(file)?;
                for entry in &mut raw {
                    if !metric_profiles.is_empty() || !alert_profiles.is_empty() {
                        entry.metrics = metric_profiles.to_vec();
                        entry.alerts = alert_profiles.to_vec();
                    }
                }
                let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
                (raw, file.clone(), folder)
            }
            None => {
                let raw = RawMetricsEndpoint {
                    endpoint: self.prometheus_url.clone(),
                    username: self.username.clone(),
                    password: self.password.clone(),
                    token: self.token.clone(),
                    step: Some(self.step),
                    skip_tls_verify: !self.verify_tls,
                    metrics: metric_profiles.to_vec(),
                    alerts: alert_profiles.to_vec(),
                    alias: None,
                    indexer: None,
                };
                (vec![raw], PathBuf::from("the command line"), PathBuf::new())
            }
        };
        let loaded = metrics::load_endpoints(&raw, &file, &folder, MissingKey::Error)?;
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        let end = self.end.unwrap_or_else(SystemTime::now);
        let start = self
            .start
            .unwrap_or_else(|| end - Duration::from_secs(3600));
        if start >= end {
            anyhow::bail!("--start must come before --end");
        }
        let window = JobWindow {
            job: self.job_name.clone(),
            start,
            end,
            churn: None,
        };
        let uuid = self
            .uuid
            .clone()
            .unwrap_or_else(|| crate::rng::SplitMix64::from_entropy().uuid_v4());
        Ok((loaded.endpoints, window, uuid))
    }
}

/// Seconds since the epoch (fractions allowed) or an RFC 3339 time.
fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(seconds));
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("`{text}` is neither seconds since the epoch nor an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_epoch_seconds_or_rfc3339() {
        assert_eq!(
            parse_time("1700000000.25").unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.250Z").unwrap(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
        );
        assert!(parse_time("yesterday").unwrap_err().contains("yesterday"));
    }
}
