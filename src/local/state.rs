//! The state directory of one local cluster: where its certificates, etcd data, logs,
//! kubeconfigs and its record live, and the lock that says a supervisor is running it.
//!
//! Layout of `<state-dir>`:
//!
//! ```text
//! cluster.json        the record: supervisor pid, phase, components, pids, ports
//! supervisor.lock     held (flock) by the running supervisor for its whole life
//! supervisor.log      output of a detached supervisor
//! kubeconfig          admin kubeconfig (system:masters)
//! pki/                CA, serving and client certificates, service-account key
//! etcd/               etcd's data directory
//! logs/<component>.log
//! prometheus/         with --prometheus: its configuration, web configuration, password
//!                     and data/ (its TSDB)
//! metrics-endpoint.yaml   with --prometheus: a kube-burner metricsEndpoints list for it
//! metrics/            with --prometheus: the metric and alert profiles that list names
//! ```

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state directory of one local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default state directory for a cluster name:
    /// `$XDG_STATE_HOME/burner/clusters/<name>` (or `~/.local/state/...`).
    pub fn for_name(name: &str) -> Self {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home_dir().join(".local/state"));
        Self::new(base.join("burner/clusters").join(name))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn record_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("supervisor.lock")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.root.join("supervisor.log")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn component_kubeconfig(&self, component: &str) -> PathBuf {
        self.root.join(format!("{component}.kubeconfig"))
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn component_log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }
    /// Prometheus's configuration, credentials and TSDB (with `--prometheus`).
    pub fn prometheus(&self) -> PathBuf {
        self.root.join("prometheus")
    }
    /// The metrics-endpoint file for the cluster's Prometheus, beside the kubeconfig.
    pub fn metrics_endpoint(&self) -> PathBuf {
        self.root.join("metrics-endpoint.yaml")
    }
    /// The metric and alert profiles the metrics-endpoint file names.
    pub fn metrics_profiles(&self) -> PathBuf {
        self.root.join("metrics")
    }

    /// True when a supervisor holds this cluster's lock, that is, the cluster is running
    /// (or starting, or stopping).
    pub fn is_supervised(&self) -> io::Result<bool> {
        let file = match File::options().write(true).open(self.lock_file()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes the supervisor lock, creating the directory if needed. Returns `None` when
    /// another supervisor already holds it.
    pub fn try_lock_supervisor(&self) -> io::Result<Option<SupervisorLock>> {
        fs::create_dir_all(&self.root)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_file())?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SupervisorLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn read_record(&self) -> io::Result<Option<ClusterRecord>> {
        match fs::read(self.record_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the record atomically, so a reader never sees half of it.
    pub fn write_record(&self, record: &ClusterRecord) -> io::Result<()> {
        let tmp = self.root.join("cluster.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
        fs::rename(tmp, self.record_file())
    }

    /// Removes everything in the state directory but the lock file, which the caller holds,
    /// and the supervisor's log, which a detached supervisor is writing to.
    pub fn clear_except_lock(&self) -> io::Result<()> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name() == "supervisor.lock" || entry.file_name() == "supervisor.log" {
                continue;
            }
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(entry.path())?;
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Removes the whole state directory.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Held by the supervisor of a running cluster; dropping it (or the process dying) frees it.
#[derive(Debug)]
pub struct SupervisorLock {
    _file: File,
}

/// What a running (or starting) local cluster looks like, written to `cluster.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub name: String,
    pub supervisor_pid: u32,
    pub phase: Phase,
    /// The apiserver URL, `https://127.0.0.1:<port>`.
    pub server: String,
    pub kubeconfig: PathBuf,
    pub kubernetes_version: String,
    pub etcd_version: String,
    /// RFC 3339 time the supervisor started.
    pub started_at: String,
    pub components: Vec<ComponentRecord>,
    /// The cluster's Prometheus, when it runs one (`--prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRecord>,
}

/// Where a local cluster's Prometheus serves and how to log in to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRecord {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The basic-auth user of its HTTP API.
    pub username: String,
    /// The file holding the user's password, readable by its owner only.
    pub password_file: PathBuf,
    /// A kube-burner `metricsEndpoints` list for this Prometheus (`burner init -e FILE`).
    pub metrics_endpoint: PathBuf,
}

impl PrometheusRecord {
    /// The password of [`PrometheusRecord::username`], read from its file.
    pub fn password(&self) -> io::Result<String> {
        Ok(fs::read_to_string(&self.password_file)?
            .trim_end()
            .to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "message")]
pub enum Phase {
    Starting,
    Ready,
    Failed(String),
}

/// One running control-plane program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRecord {
    pub name: String,
    pub pid: u32,
    /// Named ports this component listens on, for example `client` and `peer` for etcd.
    pub ports: Vec<NamedPort>,
    pub log: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
}

pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("c"));
        assert!(!state.is_supervised().unwrap());
        let first = state.try_lock_supervisor().unwrap().expect("first lock");
        assert!(state.try_lock_supervisor().unwrap().is_none());
        assert!(state.is_supervised().unwrap());
        drop(first);
        assert!(!state.is_supervised().unwrap());
        assert!(state.try_lock_supervisor().unwrap().is_some());
    }

    #[test]
    fn the_record_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let record = ClusterRecord {
            name: "t".into(),
            supervisor_pid: 42,
            phase: Phase::Failed("etcd exited".into()),
            server: "https://127.0.0.1:6443".into(),
            kubeconfig: state.kubeconfig(),
            kubernetes_version: "v1.36.3".into(),
            etcd_version: "v3.6.16".into(),
            started_at: "2026-11-27T00:00:00Z".into(),
            components: vec![ComponentRecord {
                name: "etcd".into(),
                pid: 7,
                ports: vec![NamedPort {
                    name: "client".into(),
                    port: 2379,
                }],
                log: state.component_log("etcd"),
            }],
            prometheus: Some(PrometheusRecord {
                url: "http://127.0.0.1:9090".into(),
                username: "burner".into(),
                password_file: state.prometheus().join("password"),
                metrics_endpoint: state.metrics_endpoint(),
            }),
        };
        assert_eq!(state.read_record().unwrap(), None);
        state.write_record(&record).unwrap();
        assert_eq!(state.read_record().unwrap(), Some(record.clone()));
        record_matches_published_schema(&record);
    }

    /// The record's fields are exactly those `schemas/local-cluster.schema.json` publishes.
    fn record_matches_published_schema(record: &ClusterRecord) {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/local-cluster.schema.json")).unwrap();
        let keys = |value: &serde_json::Value| -> Vec<String> {
            let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let json = serde_json::to_value(record).unwrap();
        assert_eq!(keys(&json), keys(&schema["properties"]));
        let component_schema = &schema["properties"]["components"]["items"]["properties"];
        assert_eq!(keys(&json["components"][0]), keys(component_schema));
        let prometheus_schema = &schema["properties"]["prometheus"]["properties"];
        assert_eq!(keys(&json["prometheus"]), keys(prometheus_schema));
        assert_eq!(json["phase"]["state"], "failed");
        let phases = schema["properties"]["phase"]["properties"]["state"]["enum"].clone();
        for phase in [Phase::Starting, Phase::Ready, Phase::Failed("x".into())] {
            let state = serde_json::to_value(&phase).unwrap()["state"].clone();
            assert!(phases.as_array().unwrap().contains(&state), "{state}");
        }
    }
}
