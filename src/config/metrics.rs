//! `metricsEndpoints`: the Prometheus servers a run reads the cluster's own metrics from,
//! with the metric and alert profiles to query there, as kube-burner writes them.
//!
//! Everything is checked when the config loads: unknown keys (in the config, the `-e`
//! file and every profile, with file, line and column), credentials, profile files and
//! their query templates, which are rendered once with a stand-in `elapsed` so a missing
//! variable fails now and not after the jobs ran. PromQL itself is checked by the endpoint,
//! before the first write of `burner init` (see `crate::metrics`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigError, decode, fetch, resolve_template};
use crate::template::go::{GoTemplate, MissingKey, RenderOptions};

/// kube-burner's default range-query step.
pub const DEFAULT_STEP: Duration = Duration::from_secs(30);

/// One `metricsEndpoints` entry as it is written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetricsEndpoint {
    /// The Prometheus URL; an entry without one only names an indexer (for measurements).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A bearer token.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default, deserialize_with = "super::raw::go_duration")]
    #[schemars(with = "Option<String>")]
    pub step: Option<Duration>,
    #[serde(default = "yes", rename = "skipTLSVerify")]
    pub skip_tls_verify: bool,
    /// Metric profile files or URLs.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Alert profile files or URLs.
    #[serde(default)]
    pub alerts: Vec<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub indexer: Option<RawIndexer>,
}

fn yes() -> bool {
    true
}

/// Where kube-burner sends documents. burner writes them into the run directory; the
/// other kinds are accepted so a kube-burner config runs, with a warning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIndexer {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub es_servers: Vec<String>,
    #[serde(default)]
    pub default_index: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub metrics_directory: Option<String>,
    #[serde(default)]
    pub create_tarball: bool,
    #[serde(default)]
    pub tarball_name: Option<String>,
}

const INDEXERS: &[&str] = &["local", "tsdb", "elastic", "opensearch"];

/// A checked endpoint with its profiles loaded.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    /// The base URL, without a trailing slash.
    pub url: String,
    pub auth: EndpointAuth,
    pub step: Duration,
    pub skip_tls_verify: bool,
    pub metric_profiles: Vec<MetricProfile>,
    pub alert_profiles: Vec<AlertProfile>,
    /// kube-burner's alias, `indexer-<position>` by default.
    pub alias: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum EndpointAuth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for EndpointAuth {
    // Credentials stay out of logs and error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointAuth::None => write!(f, "None"),
            EndpointAuth::Bearer(_) => write!(f, "Bearer(..)"),
            EndpointAuth::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
        }
    }
}

/// A metric profile file and its queries.
#[derive(Debug, Clone)]
pub struct MetricProfile {
    pub file: PathBuf,
    pub queries: Vec<MetricQuery>,
}

#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub metric_name: String,
    pub query: QueryTemplate,
    /// One query at the end of the window instead of a range over it.
    pub instant: bool,
    /// With `instant`, also one at the start, written as `<metricName>-start`.
    pub capture_start: bool,
}

/// An alert profile file and its rules.
#[derive(Debug, Clone)]
pub struct AlertProfile {
    pub file: PathBuf,
    pub rules: Vec<AlertRule>,
}

#[derive(Debug, Clone)]
pub struct AlertRule {
    pub expr: QueryTemplate,
    /// Rendered per fired series with `$labels` and `$value`.
    pub description: Arc<GoTemplate>,
    pub description_text: String,
    pub severity: Severity,
    /// burner's addition: the expression must hold this long (consecutive samples) before
    /// the alert fires. Without it, the first sample fires, as in kube-burner.
    pub hold_for: Option<Duration>,
}

/// How bad a fired alert is, and what it does to the run (kube-burner's).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Logged.
    #[default]
    Info,
    /// Logged as a warning.
    Warning,
    /// Exit code 3 after everything is written.
    Error,
    /// Stops the run at once; exit code 3.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// A PromQL query as a Go template over the environment and `elapsed`.
#[derive(Debug, Clone)]
pub struct QueryTemplate {
    pub text: String,
    parsed: Arc<GoTemplate>,
    missing: MissingKey,
}

impl QueryTemplate {
    fn parse(name: &str, text: &str, missing: MissingKey) -> Result<Self, ConfigError> {
        Ok(Self {
            text: text.to_string(),
            parsed: Arc::new(GoTemplate::parse(name, text)?),
            missing,
        })
    }

    /// The query for a window `elapsed` long: kube-burner gives metric queries the
    /// duration in seconds (`300s`) and alert expressions in minutes (`5m`), at least one.
    pub fn render(&self, elapsed: Duration, unit: ElapsedUnit) -> Result<String, ConfigError> {
        let mut data = serde_json::Map::new();
        for (key, value) in std::env::vars() {
            data.insert(key, Value::String(value));
        }
        data.insert("elapsed".into(), Value::String(unit.format(elapsed)));
        Ok(self.parsed.render(
            &Value::Object(data),
            &RenderOptions::new(self.missing, None),
        )?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElapsedUnit {
    Seconds,
    Minutes,
}

impl ElapsedUnit {
    pub fn format(self, elapsed: Duration) -> String {
        match self {
            ElapsedUnit::Seconds => format!("{}s", elapsed.as_secs_f64().ceil().max(1.0)),
            ElapsedUnit::Minutes => format!("{}m", (elapsed.as_secs_f64() / 60.0).ceil().max(1.0)),
        }
    }
}

/// One entry of a metric profile as it is written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetricQuery {
    query: String,
    metric_name: String,
    #[serde(default)]
    instant: bool,
    #[serde(default)]
    capture_start: bool,
}

/// One entry of an alert profile as it is written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertRule {
    expr: String,
    description: String,
    #[serde(default)]
    severity: Severity,
    #[serde(default, rename = "for", deserialize_with = "super::raw::go_duration")]
    hold_for: Option<Duration>,
}

/// What loading the endpoints found: the endpoints to query, and warnings for the CLI.
#[derive(Debug, Default)]
pub struct LoadedEndpoints {
    pub endpoints: Vec<MetricsEndpoint>,
    pub warnings: Vec<String>,
}

/// Reads the list of endpoints of a `-e FILE` (a template over the environment, as the
/// config is).
pub fn read_endpoint_file(path: &Path) -> Result<Vec<RawMetricsEndpoint>, ConfigError> {
    let source = super::read(path)?;
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rendered = super::render_config(path, &source, &folder, &super::LoadOptions::default())?;
    decode(path, &rendered)
}

/// Checks the endpoints written in `file` (the config or an `-e` file) and loads their
/// profiles, found relative to `folder` first, then to the working directory.
pub fn load_endpoints(
    raw: &[RawMetricsEndpoint],
    file: &Path,
    folder: &Path,
    missing: MissingKey,
) -> Result<LoadedEndpoints, ConfigError> {
    let mut loaded = LoadedEndpoints::default();
    let mut not_shipped = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let at = |field: &str| format!("metricsEndpoints[{i}].{field}");
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            path: at(field),
            message,
        };
        if let Some(indexer) = &entry.indexer {
            match indexer.kind.as_str() {
                "local" => {}
                kind if INDEXERS.contains(&kind) => not_shipped.push(kind.to_string()),
                kind => {
                    return Err(invalid(
                        "indexer.type",
                        format!("`{kind}` is not one of {}", INDEXERS.join(", ")),
                    ));
                }
            }
        }
        let Some(url) = entry.endpoint.as_deref() else {
            if !entry.metrics.is_empty() || !entry.alerts.is_empty() {
                return Err(invalid(
                    "endpoint",
                    "missing: metric and alert profiles need a Prometheus to query".into(),
                ));
            }
            continue;
        };
        let url = check_url(url).map_err(|message| invalid("endpoint", message))?;
        let auth = match (&entry.token, &entry.username, &entry.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid(
                    "token",
                    "give a token or a username and password, not both".into(),
                ));
            }
            (Some(token), None, None) if token.trim().is_empty() => {
                return Err(invalid(
                    "token",
                    "empty (an environment variable it comes from may be unset)".into(),
                ));
            }
            (Some(token), None, None) => EndpointAuth::Bearer(token.trim().to_string()),
            (None, Some(username), Some(password)) => EndpointAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            (None, Some(_), None) => {
                return Err(invalid("password", "missing for the username".into()));
            }
            (None, None, Some(_)) => {
                return Err(invalid("username", "missing for the password".into()));
            }
            (None, None, None) => EndpointAuth::None,
        };
        let step = entry.step.unwrap_or(DEFAULT_STEP);
        if step < Duration::from_secs(1) {
            return Err(invalid("step", "must be at least 1s".into()));
        }
        let mut metric_profiles = Vec::new();
        for (p, source) in entry.metrics.iter().enumerate() {
            let (profile_file, text) = read_profile(source, folder)
                .map_err(|message| invalid(&format!("metrics[{p}]"), message))?;
            metric_profiles.push(metric_profile(&profile_file, &text, missing)?);
        }
        let mut alert_profiles = Vec::new();
        for (p, source) in entry.alerts.iter().enumerate() {
            let (profile_file, text) = read_profile(source, folder)
                .map_err(|message| invalid(&format!("alerts[{p}]"), message))?;
            alert_profiles.push(alert_profile(&profile_file, &text, missing)?);
        }
        loaded.endpoints.push(MetricsEndpoint {
            url,
            auth,
            step,
            skip_tls_verify: entry.skip_tls_verify,
            metric_profiles,
            alert_profiles,
            alias: entry
                .alias
                .clone()
                .unwrap_or_else(|| format!("indexer-{i}")),
        });
    }
    not_shipped.sort();
    not_shipped.dedup();
    if !not_shipped.is_empty() {
        loaded.warnings.push(format!(
            "metricsEndpoints: indexer {} not shipped by burner yet; every document is written \
             into the run directory instead",
            not_shipped.join(", ")
        ));
    }
    Ok(loaded)
}

fn check_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed: http::Uri = trimmed
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") if parsed.host().is_some() => Ok(trimmed.to_string()),
        _ => Err(format!(
            "`{url}` is not an http:// or https:// URL of a Prometheus"
        )),
    }
}

/// A profile's text from a URL or a file (relative to the config's folder first).
fn read_profile(source: &str, folder: &Path) -> Result<(PathBuf, String), String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let text = fetch::fetch(source).map_err(|e| format!("cannot download {source}: {e}"))?;
        return Ok((PathBuf::from(source), text));
    }
    let file = resolve_template(folder, source).ok_or_else(|| {
        format!(
            "file {source} not found (relative to the config file's folder {}, or to the working directory)",
            super::display_folder(folder)
        )
    })?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok((file, text))
}

/// The data a query is checked with at load: the environment and a stand-in `elapsed`.
const CHECK_ELAPSED: Duration = Duration::from_secs(60);

/// Parses and checks a metric profile's text (`file` names it in errors).
pub fn metric_profile(
    file: &Path,
    text: &str,
    missing: MissingKey,
) -> Result<MetricProfile, ConfigError> {
    let raw: Vec<RawMetricQuery> = decode(file, text)?;
    let mut queries = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            path: format!("[{i}]"),
            message,
        };
        if entry.metric_name.trim().is_empty() {
            return Err(invalid("metricName is empty".into()));
        }
        if entry.query.trim().is_empty() {
            return Err(invalid(format!(
                "query of `{}` is empty",
                entry.metric_name
            )));
        }
        if entry.capture_start && !entry.instant {
            return Err(invalid(format!(
                "`{}`: captureStart needs instant: true",
                entry.metric_name
            )));
        }
        let name = format!("{} ({})", file.display(), entry.metric_name);
        let query = QueryTemplate::parse(&name, &entry.query, missing)?;
        query.render(CHECK_ELAPSED, ElapsedUnit::Seconds)?;
        queries.push(MetricQuery {
            metric_name: entry.metric_name,
            query,
            instant: entry.instant,
            capture_start: entry.capture_start,
        });
    }
    Ok(MetricProfile {
        file: file.to_path_buf(),
        queries,
    })
}

/// Go's text/template gives an alert's description its series' labels and value through
/// these variables, as Prometheus and kube-burner do.
const DESCRIPTION_PRELUDE: &str = "{{$labels := .labels}}{{$value := .value}}";

/// Parses and checks an alert profile's text (`file` names it in errors).
pub fn alert_profile(
    file: &Path,
    text: &str,
    missing: MissingKey,
) -> Result<AlertProfile, ConfigError> {
    let raw: Vec<RawAlertRule> = decode(file, text)?;
    let mut rules = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        if entry.expr.trim().is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_path_buf(),
                path: format!("[{i}].expr"),
                message: "empty".into(),
            });
        }
        let name = format!("{} (alert {i})", file.display());
        let expr = QueryTemplate::parse(&name, &entry.expr, missing)?;
        expr.render(CHECK_ELAPSED, ElapsedUnit::Minutes)?;
        let description = GoTemplate::parse(
            &format!("{name} description"),
            &format!("{DESCRIPTION_PRELUDE}{}", entry.description),
        )?;
        rules.push(AlertRule {
            expr,
            description: Arc::new(description),
            description_text: entry.description,
            severity: entry.severity,
            hold_for: entry.hold_for,
        });
    }
    Ok(AlertProfile {
        file: file.to_path_buf(),
        rules,
    })
}

impl AlertRule {
    /// The description of a fired series: `$labels.x` and `$value` (three decimals, as
    /// kube-burner rounds it); a label the series lacks reads as nothing.
    pub fn describe(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
        value: f64,
    ) -> String {
        let data = serde_json::json!({
            "labels": labels,
            "value": (value * 1000.0).round() / 1000.0,
        });
        match self
            .description
            .render(&data, &RenderOptions::new(MissingKey::Zero, None))
        {
            // Labels are a map of strings in Prometheus and kube-burner, where a label the
            // series lacks prints as nothing; here it is a missing JSON key.
            Ok(text) => text.replace("<no value>", ""),
            Err(e) => format!(
                "{} (the description failed to render: {e})",
                self.description_text
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn endpoints(dir: &Path, yaml: &str) -> Result<LoadedEndpoints, ConfigError> {
        let file = write(dir, "endpoints.yml", yaml);
        let raw = read_endpoint_file(&file)?;
        load_endpoints(&raw, &file, dir, MissingKey::Error)
    }

    #[test]
    fn an_endpoint_loads_its_profiles_with_kube_burners_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "metrics.yml",
            "- query: sum(rate(apiserver_request_total[{{.elapsed}}])) by (verb)\n  metricName: requestRate\n\
             - query: up\n  metricName: up\n  instant: true\n  captureStart: true\n",
        );
        write(
            dir.path(),
            "alerts.yml",
            "- expr: up == 0\n  description: '{{$labels.job}} is down ({{$value}})'\n  severity: error\n  for: 30s\n",
        );
        let loaded = endpoints(
            dir.path(),
            "- endpoint: http://127.0.0.1:9090/\n  token: abc\n  metrics: [metrics.yml]\n  alerts: [alerts.yml]\n",
        )
        .unwrap();
        let endpoint = &loaded.endpoints[0];
        assert_eq!(endpoint.url, "http://127.0.0.1:9090");
        assert_eq!(endpoint.auth, EndpointAuth::Bearer("abc".into()));
        assert_eq!(endpoint.step, DEFAULT_STEP);
        assert!(endpoint.skip_tls_verify);
        assert_eq!(endpoint.alias, "indexer-0");
        let queries = &endpoint.metric_profiles[0].queries;
        assert_eq!(queries.len(), 2);
        assert_eq!(
            queries[0]
                .query
                .render(Duration::from_millis(299_500), ElapsedUnit::Seconds)
                .unwrap(),
            "sum(rate(apiserver_request_total[300s])) by (verb)"
        );
        assert!(queries[1].instant && queries[1].capture_start);
        let rule = &endpoint.alert_profiles[0].rules[0];
        assert_eq!(rule.severity, Severity::Error);
        assert_eq!(rule.hold_for, Some(Duration::from_secs(30)));
        assert_eq!(
            rule.expr
                .render(Duration::from_secs(61), ElapsedUnit::Minutes)
                .unwrap(),
            "up == 0"
        );
        let labels = [("job".to_string(), "etcd".to_string())].into();
        assert_eq!(rule.describe(&labels, 0.12345), "etcd is down (0.123)");
        assert_eq!(rule.describe(&Default::default(), 1.0), " is down (1)");
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn elapsed_is_whole_seconds_or_minutes_and_never_zero() {
        assert_eq!(ElapsedUnit::Seconds.format(Duration::from_millis(10)), "1s");
        assert_eq!(ElapsedUnit::Seconds.format(Duration::from_secs(90)), "90s");
        assert_eq!(ElapsedUnit::Minutes.format(Duration::from_secs(10)), "1m");
        assert_eq!(ElapsedUnit::Minutes.format(Duration::from_secs(121)), "3m");
    }

    #[test]
    fn unknown_keys_in_a_profile_name_its_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "metrics.yml",
            "- query: up\n  metricName: up\n  instnat: true\n",
        );
        let error = endpoints(
            dir.path(),
            "- endpoint: http://localhost:9090\n  metrics: [metrics.yml]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("metrics.yml:3:3"), "{error}");
        assert!(error.contains("instnat"), "{error}");
    }

    #[test]
    fn an_unknown_severity_is_named_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "alerts.yml",
            "- expr: up == 0\n  description: down\n  severity: fatal\n",
        );
        let error = endpoints(
            dir.path(),
            "- endpoint: http://localhost:9090\n  alerts: [alerts.yml]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("alerts.yml:3"), "{error}");
        assert!(error.contains("fatal"), "{error}");
    }

    #[test]
    fn bad_endpoints_are_refused_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        for (yaml, expected) in [
            (
                "- endpoint: localhost:9090\n",
                "metricsEndpoints[0].endpoint",
            ),
            (
                "- endpoint: http://h:9090\n  token: ''\n",
                "metricsEndpoints[0].token: empty",
            ),
            (
                "- endpoint: http://h:9090\n  username: u\n",
                "metricsEndpoints[0].password: missing",
            ),
            (
                "- endpoint: http://h:9090\n  token: t\n  password: p\n",
                "not both",
            ),
            (
                "- metrics: [m.yml]\n",
                "metricsEndpoints[0].endpoint: missing",
            ),
            (
                "- endpoint: http://h:9090\n  metrics: [nowhere.yml]\n",
                "metricsEndpoints[0].metrics[0]: file nowhere.yml not found",
            ),
            (
                "- endpoint: http://h:9090\n  indexer: {type: kafka}\n",
                "`kafka` is not one of local, tsdb, elastic, opensearch",
            ),
            (
                "- endpoint: http://h:9090\n  stpe: 5s\n",
                "endpoints.yml:2:3",
            ),
        ] {
            let error = endpoints(dir.path(), yaml).unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn a_query_using_a_missing_variable_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "metrics.yml",
            "- query: up{job=\"{{.BURNER_TEST_NO_SUCH_VARIABLE}}\"}\n  metricName: up\n",
        );
        let error = endpoints(
            dir.path(),
            "- endpoint: http://h:9090\n  metrics: [metrics.yml]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("metrics.yml (up)"), "{error}");
        assert!(error.contains("BURNER_TEST_NO_SUCH_VARIABLE"), "{error}");
    }

    #[test]
    fn indexers_burner_does_not_ship_warn_once_and_an_indexer_alone_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = endpoints(
            dir.path(),
            "- indexer: {type: local, metricsDirectory: out}\n\
             - endpoint: http://h:9090\n  indexer: {type: elastic, esServers: [http://es:9200], defaultIndex: x}\n\
             - endpoint: http://h:9091\n  indexer: {type: elastic}\n",
        )
        .unwrap();
        assert_eq!(loaded.endpoints.len(), 2);
        assert_eq!(loaded.endpoints[1].alias, "indexer-2");
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("elastic"),
            "{:?}",
            loaded.warnings
        );
    }
}
