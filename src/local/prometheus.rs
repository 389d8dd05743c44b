//! Prometheus beside a local cluster (`burner local up --prometheus`): finding Debian's
//! `prometheus` program, its scrape and web configuration, its credentials, and the
//! metrics-endpoint file that points `burner init -e` (or kube-burner's `-e`) at it.
//!
//! Prometheus scrapes kube-apiserver, kube-controller-manager and kube-scheduler over HTTPS,
//! verifying them against the cluster CA and presenting a client certificate of the group
//! `system:monitoring` (see [`super::pki`]); it scrapes etcd over its plain-HTTP loopback
//! client URL. Its own HTTP API asks for basic auth: Prometheus's web configuration offers
//! no bearer tokens, only users with bcrypt-hashed passwords, so every cluster gets a random
//! password whose hash goes into the web configuration.
//!
//! This module writes files and builds values; the supervisor starts and watches the
//! program like the other components.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::pki::{ClusterPki, write_owner_only};
use super::state::{PrometheusRecord, StateDir};

/// Where Debian's `prometheus` package installs the server.
pub const PROGRAM: &str = "/usr/bin/prometheus";
/// The basic-auth user of the HTTP API.
pub const USERNAME: &str = "burner";
/// How often every target is scraped, and the step the metrics-endpoint file asks for.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(5);
/// The job labels the targets get. `apiserver` and `etcd` are what kube-burner's shipped
/// profiles select (`job=~"apiserver|api|etcd"`).
pub const JOB_APISERVER: &str = "apiserver";
pub const JOB_ETCD: &str = "etcd";
pub const JOB_SCHEDULER: &str = "scheduler";
pub const JOB_CONTROLLER_MANAGER: &str = "controller-manager";

/// The metric profile burner ships (`workloads/metrics/control-plane.yml`).
pub const CONTROL_PLANE_PROFILE: &str = include_str!("../../workloads/metrics/control-plane.yml");
/// The alert profile burner ships (`workloads/metrics/slo-alerts.yml`).
pub const SLO_ALERTS_PROFILE: &str = include_str!("../../workloads/metrics/slo-alerts.yml");
const CONTROL_PLANE_PROFILE_FILE: &str = "control-plane.yml";
const SLO_ALERTS_PROFILE_FILE: &str = "slo-alerts.yml";

/// Length of the generated password, from 62 letters and digits: about 190 bits.
const PASSWORD_LENGTH: usize = 32;
/// bcrypt's cost factor for the web configuration. A password of 190 random bits cannot be
/// guessed whatever the cost, so the cost only has to keep Prometheus's check of each
/// request cheap; 4 is the lowest that Go's bcrypt accepts.
const BCRYPT_COST: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error(
        "--prometheus runs Prometheus from Debian's `prometheus` package, and {} does not \
         exist; install it with `apt-get install -y prometheus` (as root)",
        program.display()
    )]
    Missing { program: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot generate Prometheus's password")]
    Random,
    #[error("cannot hash Prometheus's password")]
    Hash(#[source] bcrypt::BcryptError),
    #[error("cannot serialize {what}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_saphyr::SerializeError,
    },
}

/// The Prometheus program, or an error that says how to install it.
pub fn find_program() -> Result<PathBuf, PrometheusError> {
    find_program_at(Path::new(PROGRAM))
}

fn find_program_at(program: &Path) -> Result<PathBuf, PrometheusError> {
    if program.is_file() {
        Ok(program.to_path_buf())
    } else {
        Err(PrometheusError::Missing {
            program: program.to_path_buf(),
        })
    }
}

/// How to reach a running local cluster's Prometheus.
#[derive(Clone, PartialEq, Eq)]
pub struct PrometheusAccess {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PrometheusAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusAccess")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The ports the control plane serves on, which become Prometheus's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeTargets {
    pub etcd_client: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

/// Prometheus's files in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusFiles {
    pub config: PathBuf,
    pub web_config: PathBuf,
    pub password: PathBuf,
    /// The TSDB.
    pub data: PathBuf,
}

impl PrometheusFiles {
    pub fn in_state(state: &StateDir) -> Self {
        let dir = state.prometheus();
        Self {
            config: dir.join("prometheus.yml"),
            web_config: dir.join("web.yml"),
            password: dir.join("password"),
            data: dir.join("data"),
        }
    }
}

/// Writes the scrape configuration, a new password and the web configuration with its hash.
/// Returns the password.
pub fn write_configuration(
    state: &StateDir,
    pki: &ClusterPki,
    targets: &ScrapeTargets,
) -> Result<String, PrometheusError> {
    let files = PrometheusFiles::in_state(state);
    for dir in [state.prometheus(), files.data.clone()] {
        fs::create_dir_all(&dir).map_err(|source| PrometheusError::Write { path: dir, source })?;
    }
    let password = generate_password()?;
    write_private(&files.password, &password)?;
    write_private(&files.web_config, &web_config(&password)?)?;
    write_private(&files.config, &scrape_config(pki, targets)?)?;
    Ok(password)
}

/// Writes the metric and alert profiles burner ships, and the metrics-endpoint file that
/// names them and the Prometheus at `access`. Returns the record of this Prometheus.
pub fn write_metrics_endpoint(
    state: &StateDir,
    access: &PrometheusAccess,
) -> Result<PrometheusRecord, PrometheusError> {
    let profiles = state.metrics_profiles();
    fs::create_dir_all(&profiles).map_err(|source| PrometheusError::Write {
        path: profiles.clone(),
        source,
    })?;
    let metrics = profiles.join(CONTROL_PLANE_PROFILE_FILE);
    let alerts = profiles.join(SLO_ALERTS_PROFILE_FILE);
    for (path, text) in [
        (&metrics, CONTROL_PLANE_PROFILE),
        (&alerts, SLO_ALERTS_PROFILE),
    ] {
        fs::write(path, text).map_err(|source| PrometheusError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let file = state.metrics_endpoint();
    write_private(&file, &metrics_endpoint(access, &metrics, &alerts)?)?;
    Ok(PrometheusRecord {
        url: access.url.clone(),
        username: access.username.clone(),
        password_file: PrometheusFiles::in_state(state).password,
        metrics_endpoint: file,
    })
}

/// A random password of letters and digits, safe in YAML, URLs and shells unquoted.
fn generate_password() -> Result<String, PrometheusError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes below the largest multiple of 62 map evenly onto the alphabet; the rest are
    // dropped, so every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    let mut bytes = [0u8; 64];
    while password.len() < PASSWORD_LENGTH {
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PrometheusError::Random)?;
        password.extend(
            bytes
                .iter()
                .filter(|&&b| b < limit)
                .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
                .take(PASSWORD_LENGTH - password.len()),
        );
    }
    Ok(password)
}

/// Prometheus's web configuration: basic auth for [`USERNAME`] with the password's hash.
fn web_config(password: &str) -> Result<String, PrometheusError> {
    #[derive(Serialize)]
    struct WebConfig {
        basic_auth_users: BTreeMap<&'static str, String>,
    }
    let hash = bcrypt::hash(password, BCRYPT_COST).map_err(PrometheusError::Hash)?;
    let config = WebConfig {
        basic_auth_users: BTreeMap::from([(USERNAME, hash)]),
    };
    to_yaml("Prometheus's web configuration", &config)
        .map(|yaml| format!("# Written by burner local: basic auth for the HTTP API.\n{yaml}"))
}

#[derive(Serialize)]
struct ScrapeConfigFile {
    global: GlobalConfig,
    scrape_configs: Vec<ScrapeJob>,
}

#[derive(Serialize)]
struct GlobalConfig {
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
struct ScrapeJob {
    job_name: &'static str,
    scheme: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_config: Option<TlsConfig>,
    static_configs: Vec<StaticConfig>,
}

#[derive(Serialize)]
struct TlsConfig {
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Serialize)]
struct StaticConfig {
    targets: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'static str, &'static str>,
}

/// What Prometheus scrapes: one job per component, every target on 127.0.0.1.
fn scrape_config(pki: &ClusterPki, targets: &ScrapeTargets) -> Result<String, PrometheusError> {
    let interval = humantime::format_duration(SCRAPE_INTERVAL).to_string();
    let https = |job_name, port: u16, labels| ScrapeJob {
        job_name,
        scheme: "https",
        tls_config: Some(TlsConfig {
            ca_file: pki.ca.cert.clone(),
            cert_file: pki.prometheus_client.cert.clone(),
            key_file: pki.prometheus_client.key.clone(),
        }),
        static_configs: vec![StaticConfig {
            targets: vec![format!("127.0.0.1:{port}")],
            labels,
        }],
    };
    let config = ScrapeConfigFile {
        global: GlobalConfig {
            scrape_interval: interval.clone(),
            scrape_timeout: interval,
        },
        scrape_configs: vec![
            // kube-burner's and OpenShift's profiles select the apiserver by this label,
            // which OpenShift's monitoring puts on every apiserver target.
            https(
                JOB_APISERVER,
                targets.apiserver,
                BTreeMap::from([("apiserver", "kube-apiserver")]),
            ),
            ScrapeJob {
                job_name: JOB_ETCD,
                scheme: "http",
                tls_config: None,
                static_configs: vec![StaticConfig {
                    targets: vec![format!("127.0.0.1:{}", targets.etcd_client)],
                    labels: BTreeMap::new(),
                }],
            },
            https(JOB_SCHEDULER, targets.scheduler, BTreeMap::new()),
            https(
                JOB_CONTROLLER_MANAGER,
                targets.controller_manager,
                BTreeMap::new(),
            ),
        ],
    };
    to_yaml("Prometheus's configuration", &config)
        .map(|yaml| format!("# Written by burner local: the cluster's control plane.\n{yaml}"))
}

/// A kube-burner `metricsEndpoints` list with this Prometheus as its one entry.
fn metrics_endpoint(
    access: &PrometheusAccess,
    metrics: &Path,
    alerts: &Path,
) -> Result<String, PrometheusError> {
    #[derive(Serialize)]
    struct Endpoint<'a> {
        endpoint: &'a str,
        username: &'a str,
        password: &'a str,
        step: String,
        metrics: [&'a Path; 1],
        alerts: [&'a Path; 1],
        indexer: Indexer,
    }
    #[derive(Serialize)]
    struct Indexer {
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let endpoints = [Endpoint {
        endpoint: &access.url,
        username: &access.username,
        password: &access.password,
        step: humantime::format_duration(SCRAPE_INTERVAL).to_string(),
        metrics: [metrics],
        alerts: [alerts],
        indexer: Indexer { kind: "local" },
    }];
    to_yaml("the metrics-endpoint file", &endpoints)
}

fn to_yaml(what: &'static str, value: &impl Serialize) -> Result<String, PrometheusError> {
    serde_saphyr::to_string(value).map_err(|source| PrometheusError::Serialize { what, source })
}

/// Files that hold the password, or paths of keys, are for their owner only.
fn write_private(path: &Path, text: &str) -> Result<(), PrometheusError> {
    write_owner_only(path, text.as_bytes()).map_err(|source| PrometheusError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metrics::{self as config_metrics, Severity};
    use crate::template::go::MissingKey;
    use serde_json::Value;
    use std::os::unix::fs::PermissionsExt;

    fn fixture() -> (tempfile::TempDir, StateDir, ClusterPki) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let pki = ClusterPki::generate(&state.pki()).unwrap();
        (dir, state, pki)
    }

    const TARGETS: ScrapeTargets = ScrapeTargets {
        etcd_client: 2379,
        apiserver: 6443,
        controller_manager: 10257,
        scheduler: 10259,
    };

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn a_missing_program_is_an_error_naming_the_package_and_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = find_program_at(&dir.path().join("prometheus"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("Debian's `prometheus` package"), "{error}");
        assert!(error.contains("apt-get install -y prometheus"), "{error}");
    }

    #[test]
    fn every_component_is_scraped_on_loopback_every_five_seconds() {
        let (_dir, _state, pki) = fixture();
        let config = yaml(&scrape_config(&pki, &TARGETS).unwrap());
        assert_eq!(config["global"]["scrape_interval"], "5s");
        assert_eq!(config["global"]["scrape_timeout"], "5s");
        let jobs: Vec<(&str, &str, &str)> = config["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| {
                let targets = job["static_configs"][0]["targets"].as_array().unwrap();
                assert_eq!(targets.len(), 1, "{job}");
                (
                    job["job_name"].as_str().unwrap(),
                    job["scheme"].as_str().unwrap(),
                    targets[0].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            jobs,
            [
                ("apiserver", "https", "127.0.0.1:6443"),
                ("etcd", "http", "127.0.0.1:2379"),
                ("scheduler", "https", "127.0.0.1:10259"),
                ("controller-manager", "https", "127.0.0.1:10257"),
            ]
        );
    }

    #[test]
    fn https_targets_are_verified_against_the_cluster_ca_with_the_monitoring_certificate() {
        let (_dir, _state, pki) = fixture();
        let config = yaml(&scrape_config(&pki, &TARGETS).unwrap());
        for job in config["scrape_configs"].as_array().unwrap() {
            let tls = &job["tls_config"];
            if job["scheme"] == "http" {
                assert!(tls.is_null(), "{job}");
                continue;
            }
            assert_eq!(tls["ca_file"], pki.ca.cert.to_str().unwrap(), "{job}");
            assert_eq!(
                tls["cert_file"],
                pki.prometheus_client.cert.to_str().unwrap()
            );
            assert_eq!(tls["key_file"], pki.prometheus_client.key.to_str().unwrap());
            assert!(tls.get("insecure_skip_verify").is_none(), "{job}");
        }
        let apiserver = &config["scrape_configs"][0];
        assert_eq!(
            apiserver["static_configs"][0]["labels"]["apiserver"],
            "kube-apiserver"
        );
    }

    #[test]
    fn the_web_config_holds_a_bcrypt_hash_of_the_password_not_the_password() {
        let password = generate_password().unwrap();
        let config = yaml(&web_config(&password).unwrap());
        let users = config["basic_auth_users"].as_object().unwrap();
        assert_eq!(users.len(), 1);
        let hash = users[USERNAME].as_str().unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(!hash.contains(&password));
        assert!(bcrypt::verify(&password, hash).unwrap());
        assert!(!bcrypt::verify("not-the-password", hash).unwrap());
    }

    #[test]
    fn passwords_are_long_random_and_plain() {
        let first = generate_password().unwrap();
        let second = generate_password().unwrap();
        assert_eq!(first.len(), PASSWORD_LENGTH);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
        assert_ne!(first, second);
    }

    #[test]
    fn credentials_and_configuration_are_readable_by_their_owner_only() {
        let (_dir, state, pki) = fixture();
        let password = write_configuration(&state, &pki, &TARGETS).unwrap();
        let files = PrometheusFiles::in_state(&state);
        assert_eq!(fs::read_to_string(&files.password).unwrap(), password);
        for file in [&files.password, &files.web_config, &files.config] {
            let mode = fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        assert!(files.data.is_dir());
    }

    #[test]
    fn the_metrics_endpoint_file_names_this_prometheus_and_the_shipped_profiles() {
        let (_dir, state, _pki) = fixture();
        let access = PrometheusAccess {
            url: "http://127.0.0.1:41234".into(),
            username: USERNAME.into(),
            password: "secret".into(),
        };
        let record = write_metrics_endpoint(&state, &access).unwrap();
        assert_eq!(record.metrics_endpoint, state.metrics_endpoint());
        let text = fs::read_to_string(&record.metrics_endpoint).unwrap();
        let endpoints = yaml(&text);
        let endpoint = &endpoints.as_array().unwrap()[0];
        assert_eq!(endpoint["endpoint"], "http://127.0.0.1:41234");
        assert_eq!(endpoint["username"], "burner");
        assert_eq!(endpoint["password"], "secret");
        assert_eq!(endpoint["step"], "5s");
        assert_eq!(endpoint["indexer"]["type"], "local");
        let metrics = PathBuf::from(endpoint["metrics"][0].as_str().unwrap());
        let alerts = PathBuf::from(endpoint["alerts"][0].as_str().unwrap());
        assert!(metrics.is_absolute() && alerts.is_absolute());
        assert_eq!(fs::read_to_string(metrics).unwrap(), CONTROL_PLANE_PROFILE);
        assert_eq!(fs::read_to_string(alerts).unwrap(), SLO_ALERTS_PROFILE);
        let mode = fs::metadata(&record.metrics_endpoint)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{access:?}").contains("secret"));
    }

    /// burner's own loader checks the shipped profiles as strictly as kube-burner decodes
    /// them (unknown keys are errors), and renders every query.
    #[test]
    fn the_metric_profile_has_kube_burners_schema_and_unique_names() {
        let profile = config_metrics::metric_profile(
            Path::new("control-plane.yml"),
            CONTROL_PLANE_PROFILE,
            MissingKey::Error,
        )
        .unwrap();
        let queries = &profile.queries;
        assert!(queries.len() >= 10);
        let mut names: Vec<&str> = queries.iter().map(|q| q.metric_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), queries.len(), "metric names repeat");
    }

    #[test]
    fn the_alert_profile_has_kube_burners_schema_and_the_official_slo_thresholds() {
        let profile = config_metrics::alert_profile(
            Path::new("slo-alerts.yml"),
            SLO_ALERTS_PROFILE,
            MissingKey::Error,
        )
        .unwrap();
        // kube-burner reads the shipped profile too, and it has no `for`.
        assert!(profile.rules.iter().all(|rule| rule.hold_for.is_none()));
        let errors: Vec<&str> = profile
            .rules
            .iter()
            .filter(|rule| rule.severity == Severity::Error)
            .map(|rule| rule.expr.text.as_str())
            .collect();
        let threshold = |scope: &str| {
            errors
                .iter()
                .find(|expr| expr.contains(scope))
                .map(|expr| expr.trim().rsplit_once('>').unwrap().1.trim().to_string())
        };
        assert_eq!(threshold(r#"scope="resource""#).as_deref(), Some("1"));
        assert_eq!(
            threshold(r#"scope=~"namespace|cluster""#).as_deref(),
            Some("30")
        );
        assert_eq!(
            errors
                .iter()
                .filter(|expr| expr.contains(r#"scope="resource""#))
                .count(),
            2,
            "mutating calls and resource reads"
        );
    }
}
