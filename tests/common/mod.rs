//! The test harness: one local cluster per test binary.
//!
//! The first test that asks for the cluster starts it through burner's library API, on a
//! runtime that lives as long as the test binary; it is stopped and its state removed when
//! the binary exits, whether tests passed or failed. With `BURNER_TEST_KUBECONFIG` set, the
//! tests use that cluster instead and start nothing.
//!
//! Tests stay independent: each one works in namespaces of its own (see [`namespace`]).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use burner::local::{LocalCluster, LocalOptions, PrometheusAccess};

/// The cluster the tests of this binary share.
pub struct TestCluster {
    pub kubeconfig: PathBuf,
    /// Its Prometheus, when it was started with one ([`cluster_with_prometheus`]).
    pub prometheus: Option<PrometheusAccess>,
}

static SHARED: OnceLock<TestCluster> = OnceLock::new();
/// The cluster this binary started, kept so that it can be stopped at exit.
static STARTED: Mutex<Option<LocalCluster>> = Mutex::new(None);

/// A multi-threaded runtime that lives until the process exits. Clusters started on it
/// outlive any one test (their programs stop when the starting thread dies).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// Runs `future` on the harness runtime and waits for it; callable from sync and async
/// tests alike.
pub fn run_on_harness<F>(future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime().spawn(future);
    std::thread::spawn(move || futures::executor::block_on(handle))
        .join()
        .expect("harness thread")
        .expect("harness task")
}

/// The shared cluster, started on first use.
pub fn cluster() -> &'static TestCluster {
    shared_cluster(false)
}

/// The shared cluster with a Prometheus scraping it, for a binary whose tests read the
/// control plane's metrics (every test of such a binary asks for this one).
pub fn cluster_with_prometheus() -> &'static TestCluster {
    shared_cluster(true)
}

fn shared_cluster(prometheus: bool) -> &'static TestCluster {
    SHARED.get_or_init(|| {
        if let Some(path) = std::env::var_os("BURNER_TEST_KUBECONFIG").filter(|v| !v.is_empty()) {
            return TestCluster {
                kubeconfig: PathBuf::from(path),
                prometheus: None,
            };
        }
        let mut options = options_for("shared");
        options.prometheus = prometheus;
        // Notice a silent node within seconds rather than the default 50 s, so tests of
        // stopped heartbeats stay short. Hollow nodes in tests renew their leases every 1 s.
        options.tuning.extra_args = [
            "kube-controller-manager=--node-monitor-period=1s",
            "kube-controller-manager=--node-monitor-grace-period=8s",
        ]
        .iter()
        .map(|a| a.parse().expect("valid extra arg"))
        .collect();
        let cluster = start_on_keeper_thread(options)
            .unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
        let kubeconfig = cluster.kubeconfig().to_path_buf();
        let prometheus = cluster.prometheus().cloned();
        *STARTED.lock().unwrap() = Some(cluster);
        // SAFETY: registering a plain extern "C" function with atexit has no preconditions.
        unsafe {
            libc::atexit(stop_started_cluster);
        }
        TestCluster {
            kubeconfig,
            prometheus,
        }
    })
}

/// Starts a cluster from a thread of its own that lives as long as the process. The
/// cluster's programs die with the thread that started them (`PR_SET_PDEATHSIG`), so it
/// must be a thread no runtime ever retires: a runtime's worker that once ran
/// `block_in_place`, for one, may end as an idle blocking thread and take the cluster with
/// it. Waiting for this thread also never needs a worker of the harness runtime, so tests
/// that wait for the start together cannot starve it.
fn start_on_keeper_thread(
    options: LocalOptions,
) -> Result<LocalCluster, burner::local::LocalError> {
    let (started, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-cluster".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the cluster thread's runtime");
            runtime.block_on(async move {
                let _ = started.send(LocalCluster::start(&options).await);
                // The cluster's supervision runs on this runtime until the process exits.
                std::future::pending::<()>().await;
            });
        })
        .expect("the cluster thread starts");
    result.recv().expect("the cluster thread answers")
}

extern "C" fn stop_started_cluster() {
    let Some(cluster) = STARTED.lock().ok().and_then(|mut c| c.take()) else {
        return;
    };
    if let Err(e) = run_on_harness(async move { cluster.stop().await }) {
        eprintln!("warning: stopping the test cluster failed: {e}");
    }
}

/// Options for a cluster owned by this test process: its own name and state directory.
pub fn options_for(purpose: &str) -> LocalOptions {
    let name = format!("test-{purpose}-{}", std::process::id());
    let mut options = LocalOptions::new(&name);
    options.state_dir = Some(std::env::temp_dir().join("burner-tests").join(name));
    options
}

/// A client for the shared cluster, built by burner's own client code.
pub async fn client() -> kube::Client {
    // The first call starts the shared cluster and blocks until it is up; the start runs on
    // a thread of its own (see `start_on_keeper_thread`), so blocking here is safe.
    let cluster = cluster();
    let options = burner::exec::ClientOptions::for_kubeconfig(&cluster.kubeconfig);
    burner::exec::connect(&options)
        .await
        .expect("client for the test cluster")
}

/// Creates a namespace whose name is unique to one test in one run, and returns the name.
pub async fn create_namespace(client: &kube::Client, test: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{test}-{}-{n}", std::process::id());
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    name
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Hollow nodes for tests: leases renewed every second, well inside the test cluster's 8 s
/// node-monitor grace period, so a running fleet never looks silent to the node lifecycle
/// controller (which would mark its pods not ready).
pub fn hollow_options(name_prefix: impl Into<String>, nodes: u32) -> burner::hollow::HollowOptions {
    burner::hollow::HollowOptions {
        nodes,
        name_prefix: name_prefix.into(),
        lease_interval: std::time::Duration::from_secs(1),
        ..burner::hollow::HollowOptions::default()
    }
}
