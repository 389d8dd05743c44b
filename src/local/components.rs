//! The command lines of the programs a local cluster runs: the four of the control plane,
//! and Prometheus when it is asked for.
//!
//! Pure functions from ports, paths and options to arguments, so what burner runs can be
//! read and tested without starting anything. Every server binds to 127.0.0.1.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::pki::{CertAndKey, ClusterPki};
use super::prometheus::PrometheusFiles;
use super::state::StateDir;

/// The programs of a local cluster, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    /// Optional (`--prometheus`): started last, it scrapes the other four.
    Prometheus,
}

impl Component {
    /// The control plane: the programs every local cluster runs, in start order.
    pub const ALL: [Component; 4] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];
    /// Every program a local cluster may run, the optional ones included.
    pub const ANY: [Component; 5] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
        Component::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Prometheus => "prometheus",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Component {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Component::ANY
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown component `{s}`; expected one of {}",
                    Component::ANY.map(Component::name).join(", ")
                )
            })
    }
}

/// One flag passed through to one component, from `--extra-arg COMPONENT=FLAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraArg {
    pub component: Component,
    pub flag: String,
}

impl FromStr for ExtraArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (component, flag) = s.split_once('=').ok_or_else(|| {
            format!("`{s}` is not COMPONENT=FLAG (for example kube-apiserver=--v=4)")
        })?;
        if !flag.starts_with('-') {
            return Err(format!("`{flag}` is not a flag: it must start with `-`"));
        }
        Ok(ExtraArg {
            component: component.parse()?,
            flag: flag.to_string(),
        })
    }
}

impl fmt::Display for ExtraArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.component, self.flag)
    }
}

/// Settings that change how the components run.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Turn off the apiserver's in-flight limits and priority and fairness, and raise the
    /// client QPS of the controller-manager and scheduler, so the control plane is limited
    /// by its own capacity and not by its protective throttles.
    pub disable_qps_limits: bool,
    /// Make etcd fsync its writes. Off by default: a throwaway cluster on a laptop or CI
    /// disk is faster and steadier without it.
    pub etcd_fsync: bool,
    pub extra_args: Vec<ExtraArg>,
}

impl Tuning {
    fn extra_for(&self, component: Component) -> impl Iterator<Item = String> + '_ {
        self.extra_args
            .iter()
            .filter(move |a| a.component == component)
            .map(|a| a.flag.clone())
    }
}

/// Service addresses handed out by the apiserver; nothing is ever dialled there.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";
/// Pod addresses the node IPAM controller assigns, a /24 per node (room for 32,768 nodes);
/// never dialled either.
pub const CLUSTER_CIDR: &str = "10.128.0.0/9";

pub fn etcd_args(
    state: &StateDir,
    client_port: u16,
    peer_port: u16,
    tuning: &Tuning,
) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut args = vec![
        "--name=burner".to_string(),
        format!("--data-dir={}", state.etcd_data().display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=burner={peer}"),
        "--initial-cluster-state=new".to_string(),
        format!("--unsafe-no-fsync={}", !tuning.etcd_fsync),
        "--auto-compaction-mode=periodic".to_string(),
        "--auto-compaction-retention=5m".to_string(),
        "--quota-backend-bytes=8589934592".to_string(),
        "--log-level=warn".to_string(),
    ];
    args.extend(tuning.extra_for(Component::Etcd));
    args
}

pub fn apiserver_args(
    state: &StateDir,
    pki: &ClusterPki,
    secure_port: u16,
    etcd_client_port: u16,
    tuning: &Tuning,
) -> Vec<String> {
    let mut args = vec![
        "--bind-address=127.0.0.1".to_string(),
        format!("--secure-port={secure_port}"),
        "--advertise-address=127.0.0.1".to_string(),
        // 127.0.0.1 is not a valid endpoint address for the `kubernetes` Service.
        "--endpoint-reconciler-type=none".to_string(),
        format!("--etcd-servers=http://127.0.0.1:{etcd_client_port}"),
        format!(
            "--cert-dir={}",
            state.pki().join("apiserver-generated").display()
        ),
        path_flag("--tls-cert-file", &pki.apiserver_serving.cert),
        path_flag("--tls-private-key-file", &pki.apiserver_serving.key),
        path_flag("--client-ca-file", &pki.ca.cert),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        path_flag(
            "--service-account-key-file",
            &pki.service_account_public_key,
        ),
        path_flag(
            "--service-account-signing-key-file",
            &pki.service_account_key,
        ),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--authorization-mode=Node,RBAC".to_string(),
        "--allow-privileged=true".to_string(),
    ];
    if tuning.disable_qps_limits {
        args.extend([
            "--max-requests-inflight=0".to_string(),
            "--max-mutating-requests-inflight=0".to_string(),
            "--enable-priority-and-fairness=false".to_string(),
        ]);
    }
    args.extend(tuning.extra_for(Component::KubeApiserver));
    args
}

pub fn controller_manager_args(
    state: &StateDir,
    pki: &ClusterPki,
    secure_port: u16,
    tuning: &Tuning,
) -> Vec<String> {
    let mut args = client_component_args(
        state,
        Component::KubeControllerManager,
        &pki.controller_manager_serving,
        secure_port,
    );
    args.extend([
        path_flag(
            "--service-account-private-key-file",
            &pki.service_account_key,
        ),
        path_flag("--root-ca-file", &pki.ca.cert),
        path_flag("--cluster-signing-cert-file", &pki.ca.cert),
        path_flag("--cluster-signing-key-file", &pki.ca.key),
        "--use-service-account-credentials=true".to_string(),
        "--allocate-node-cidrs=true".to_string(),
        format!("--cluster-cidr={CLUSTER_CIDR}"),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
    ]);
    if tuning.disable_qps_limits {
        args.extend(client_qps_flags());
    }
    args.extend(tuning.extra_for(Component::KubeControllerManager));
    args
}

pub fn scheduler_args(
    state: &StateDir,
    pki: &ClusterPki,
    secure_port: u16,
    tuning: &Tuning,
) -> Vec<String> {
    let mut args = client_component_args(
        state,
        Component::KubeScheduler,
        &pki.scheduler_serving,
        secure_port,
    );
    if tuning.disable_qps_limits {
        args.extend(client_qps_flags());
    }
    args.extend(tuning.extra_for(Component::KubeScheduler));
    args
}

/// Prometheus: its HTTP API on loopback behind basic auth (the web configuration), its TSDB
/// in the state directory. What it scrapes is in its configuration file.
pub fn prometheus_args(state: &StateDir, port: u16, tuning: &Tuning) -> Vec<String> {
    let files = PrometheusFiles::in_state(state);
    let mut args = vec![
        path_flag("--config.file", &files.config),
        path_flag("--web.config.file", &files.web_config),
        format!("--web.listen-address=127.0.0.1:{port}"),
        path_flag("--storage.tsdb.path", &files.data),
    ];
    args.extend(tuning.extra_for(Component::Prometheus));
    args
}

/// What the controller-manager and the scheduler share: their own identity towards the
/// apiserver (also for delegated authentication and authorization of their health
/// endpoints), no leader election, and a loopback HTTPS port with a CA-signed certificate.
fn client_component_args(
    state: &StateDir,
    component: Component,
    serving: &CertAndKey,
    secure_port: u16,
) -> Vec<String> {
    let kubeconfig = state.component_kubeconfig(component.name());
    vec![
        path_flag("--kubeconfig", &kubeconfig),
        path_flag("--authentication-kubeconfig", &kubeconfig),
        path_flag("--authorization-kubeconfig", &kubeconfig),
        "--leader-elect=false".to_string(),
        "--bind-address=127.0.0.1".to_string(),
        format!("--secure-port={secure_port}"),
        path_flag("--tls-cert-file", &serving.cert),
        path_flag("--tls-private-key-file", &serving.key),
    ]
}

fn client_qps_flags() -> [String; 2] {
    [
        "--kube-api-qps=5000".to_string(),
        "--kube-api-burst=10000".to_string(),
    ]
}

fn path_flag(flag: &str, path: &Path) -> String {
    format!("{flag}={}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, StateDir, ClusterPki) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let pki = ClusterPki::generate(&state.pki()).unwrap();
        (dir, state, pki)
    }

    #[test]
    fn every_server_binds_to_loopback_only() {
        let (_dir, state, pki) = fixture();
        let tuning = Tuning::default();
        for args in [
            apiserver_args(&state, &pki, 1, 2, &tuning),
            controller_manager_args(&state, &pki, 3, &tuning),
            scheduler_args(&state, &pki, 4, &tuning),
        ] {
            assert!(
                args.contains(&"--bind-address=127.0.0.1".to_string()),
                "{args:?}"
            );
        }
        let etcd = etcd_args(&state, 5, 6, &tuning);
        for listen in etcd.iter().filter(|a| a.starts_with("--listen-")) {
            assert!(listen.contains("=http://127.0.0.1:"), "{listen}");
        }
        let prometheus = prometheus_args(&state, 7, &tuning);
        let listen: Vec<&String> = prometheus
            .iter()
            .filter(|a| a.starts_with("--web.listen-address"))
            .collect();
        assert_eq!(listen, ["--web.listen-address=127.0.0.1:7"]);
    }

    #[test]
    fn prometheus_asks_for_basic_auth_and_keeps_everything_in_the_state_directory() {
        let (_dir, state, _pki) = fixture();
        let args = prometheus_args(&state, 7, &Tuning::default());
        let files = PrometheusFiles::in_state(&state);
        assert!(args.contains(&path_flag("--web.config.file", &files.web_config)));
        for flag in ["--config.file", "--web.config.file", "--storage.tsdb.path"] {
            let value = args
                .iter()
                .find_map(|a| a.strip_prefix(&format!("{flag}=")))
                .unwrap_or_else(|| panic!("{flag} missing from {args:?}"));
            assert!(Path::new(value).starts_with(state.root()), "{flag}={value}");
        }
        assert!(!args.iter().any(|a| a.contains("enable-lifecycle")
            || a.contains("enable-admin-api")
            || a.contains("remote-write-receiver")));
    }

    #[test]
    fn disabling_qps_limits_turns_off_inflight_limits_and_priority_and_fairness() {
        let (_dir, state, pki) = fixture();
        let tuning = Tuning {
            disable_qps_limits: true,
            ..Tuning::default()
        };
        let args = apiserver_args(&state, &pki, 1, 2, &tuning);
        for flag in [
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
            "--enable-priority-and-fairness=false",
        ] {
            assert!(
                args.contains(&flag.to_string()),
                "{flag} missing from {args:?}"
            );
        }
        let default = apiserver_args(&state, &pki, 1, 2, &Tuning::default());
        assert!(
            !default
                .iter()
                .any(|a| a.starts_with("--max-requests-inflight"))
        );
    }

    #[test]
    fn extra_args_go_last_to_their_component_only() {
        let (_dir, state, pki) = fixture();
        let tuning = Tuning {
            extra_args: vec!["kube-scheduler=--v=4".parse().unwrap()],
            ..Tuning::default()
        };
        let scheduler = scheduler_args(&state, &pki, 1, &tuning);
        assert_eq!(scheduler.last().map(String::as_str), Some("--v=4"));
        assert!(!apiserver_args(&state, &pki, 1, 2, &tuning).contains(&"--v=4".to_string()));
    }

    #[test]
    fn extra_arg_parsing_names_what_is_wrong() {
        assert_eq!(
            "etcd=--log-level=debug".parse::<ExtraArg>().unwrap(),
            ExtraArg {
                component: Component::Etcd,
                flag: "--log-level=debug".into()
            }
        );
        assert!(
            "kubelet=--v=2"
                .parse::<ExtraArg>()
                .unwrap_err()
                .contains("unknown component `kubelet`")
        );
        assert!(
            "kube-apiserver"
                .parse::<ExtraArg>()
                .unwrap_err()
                .contains("COMPONENT=FLAG")
        );
        assert!(
            "etcd=debug"
                .parse::<ExtraArg>()
                .unwrap_err()
                .contains("not a flag")
        );
    }
}
