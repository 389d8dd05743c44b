//! `burner local` starts, stops and fails the way its users are promised: a second `up` is
//! refused, a taken port is replaced, a program that exits is reported with its log and
//! takes the rest down, `down` leaves no process and no port behind, and missing programs
//! are named when Go cannot build them.
//!
//! Each test starts a cluster of its own, so they run one at a time.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use burner::local::{self, Component, DownOutcome, LocalCluster, LocalError, StateDir};

static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn burner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(args)
        .output()
        .expect("run burner")
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Pids of every process whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter(|pid| *pid != std::process::id())
        .collect()
}

/// Hollow nodes of the cluster behind `kubeconfig` that report Ready.
fn ready_hollow_nodes(kubeconfig: &Path) -> usize {
    let options = burner::exec::ClientOptions::for_kubeconfig(kubeconfig);
    common::run_on_harness(async move {
        let client = burner::exec::connect(&options).await.expect("client");
        let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client);
        let selector = kube::api::ListParams::default().labels(burner::hollow::FLEET_LABEL);
        let list = nodes.list(&selector).await.expect("list nodes");
        list.items
            .iter()
            .filter(|n| {
                let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
                conditions
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count()
    })
}

fn is_listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(300),
    )
    .is_ok()
}

#[test]
fn detached_up_refuses_a_second_up_and_down_leaves_no_process_or_port() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let options = common::options_for("detached");
    let state_dir = options.state_dir.clone().unwrap();
    let dir = state_dir.to_str().unwrap();

    let up = burner(&[
        "local",
        "up",
        "--detach",
        "--state-dir",
        dir,
        "--name",
        &options.name,
        "--nodes",
        "3",
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout);
    let kubeconfig = StateDir::new(&state_dir).kubeconfig();
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert_eq!(
        ready_hollow_nodes(&kubeconfig),
        3,
        "up --nodes 3 starts 3 hollow nodes"
    );

    let status = local::status(&StateDir::new(&state_dir)).unwrap();
    assert!(status.is_running(), "{status:?}");
    let record = status.record.clone().unwrap();
    let ports: Vec<u16> = record
        .components
        .iter()
        .flat_map(|c| c.ports.iter().map(|p| p.port))
        .collect();
    assert_eq!(record.components.len(), 4);
    assert!(ports.iter().all(|&p| is_listening(p)), "{ports:?}");
    let before = processes_mentioning(dir);

    let status_cli = burner(&["local", "status", "--state-dir", dir]);
    assert!(status_cli.status.success(), "{}", text(&status_cli));
    let shown = String::from_utf8_lossy(&status_cli.stdout);
    assert!(shown.contains("/readyz ok"), "{shown}");
    for component in Component::ALL {
        assert!(shown.contains(component.name()), "{shown}");
    }

    for again in [
        vec!["local", "up", "--detach", "--state-dir", dir],
        vec!["local", "up", "--state-dir", dir],
    ] {
        let second = burner(&again);
        assert_eq!(second.status.code(), Some(1), "{}", text(&second));
        assert!(
            String::from_utf8_lossy(&second.stderr).contains("is already running"),
            "{}",
            text(&second)
        );
    }
    assert_eq!(
        processes_mentioning(dir),
        before,
        "a second up must start nothing"
    );

    let env = burner(&["local", "env", "--state-dir", dir]);
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("export KUBECONFIG={}", kubeconfig.display())
    );

    let down = burner(&["local", "down", "--state-dir", dir]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(processes_mentioning(dir), Vec::<u32>::new());
    assert!(
        !is_listening(record.components[1].ports[0].port),
        "the apiserver port still listens"
    );
    assert!(ports.iter().all(|&p| !is_listening(p)), "{ports:?}");
    assert!(!state_dir.exists());

    let again = burner(&["local", "down", "--state-dir", dir]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("No local cluster"));
}

#[test]
fn a_taken_port_is_replaced_and_a_component_that_exits_stops_the_cluster() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut options = common::options_for("crash");
    options.apiserver_port = Some(taken_port);
    let state = options.state();

    common::run_on_harness(async move {
        let mut cluster = LocalCluster::start(&options)
            .await
            .expect("cluster starts on another port");
        let record = cluster.record().clone();
        assert_ne!(record.server, format!("https://127.0.0.1:{taken_port}"));
        let apiserver = &record.components[1];
        assert_eq!(apiserver.name, "kube-apiserver");
        assert_ne!(apiserver.ports[0].port, taken_port);

        let scheduler = record
            .components
            .iter()
            .find(|c| c.name == "kube-scheduler")
            .unwrap();
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(scheduler.pid as i32, libc::SIGKILL) };
        let error = tokio::time::timeout(Duration::from_secs(60), cluster.wait())
            .await
            .expect("the supervisor notices the exit")
            .expect_err("an exited component is an error");
        match &error {
            LocalError::ComponentExited {
                component, when, ..
            } => {
                assert_eq!(*component, Component::KubeScheduler);
                assert_eq!(*when, "while running");
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(error.to_string().contains("kube-scheduler.log"), "{error}");
        for component in &record.components {
            assert!(
                !Path::new(&format!("/proc/{}", component.pid)).exists()
                    || std::fs::read_to_string(format!("/proc/{}/stat", component.pid))
                        .map(|s| s.contains(") Z"))
                        .unwrap_or(true),
                "{} (pid {}) still runs",
                component.name,
                component.pid
            );
        }
    });
    assert_eq!(
        processes_mentioning(state.root().to_str().unwrap()),
        Vec::<u32>::new()
    );
    // The state stays for diagnosis after a failure and says what happened; down removes it.
    let record = state.read_record().unwrap().expect("record kept");
    assert!(matches!(record.phase, local::Phase::Failed(ref m) if m.contains("kube-scheduler")));
    let outcome = common::run_on_harness({
        let state = state.clone();
        async move { local::down(&state).await }
    });
    assert!(
        matches!(outcome, Ok(DownOutcome::Stopped { .. })),
        "{outcome:?}"
    );
    assert!(!state.root().exists());
    drop(taken);
}

#[test]
fn a_component_that_fails_to_start_is_reported_with_its_log_and_nothing_is_left_running() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut options = common::options_for("badflag");
    options.tuning.extra_args = vec!["kube-scheduler=--no-such-flag".parse().unwrap()];
    let state = options.state();

    let error = common::run_on_harness(async move { LocalCluster::start(&options).await })
        .expect_err("the scheduler rejects the flag");
    match &error {
        LocalError::ComponentExited {
            component,
            when,
            tail,
            ..
        } => {
            assert_eq!(*component, Component::KubeScheduler);
            assert_eq!(*when, "while starting");
            assert!(tail.contains("unknown flag: --no-such-flag"), "{tail}");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(
        processes_mentioning(state.root().to_str().unwrap()),
        Vec::<u32>::new()
    );
    assert!(!state.is_supervised().unwrap());
    state.remove().unwrap();
}

#[test]
fn missing_programs_are_named_when_go_cannot_build_them() {
    let empty_cache = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(["local", "up", "--state-dir"])
        .arg(state.path())
        .env("BURNER_CACHE_DIR", empty_cache.path())
        .env("PATH", "/nonexistent")
        .env_remove("BURNER_BIN_DIR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for program in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            stderr.contains(&format!("/bin/{program}")),
            "{program} not named in:\n{stderr}"
        );
    }
    assert!(stderr.contains("Go is not installed"), "{stderr}");
    assert!(!state.path().join("etcd").exists(), "nothing may start");
}
