//! `burner init` runs create jobs on the local cluster with hollow nodes: everything it
//! creates is labelled, ready and verified, and `burner destroy` removes it all; a config
//! that cannot run is refused before anything is written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use burner::hollow::{FLEET_LABEL, HollowFleet};
use burner::results::summary::{JobSummary, RunOutcome, RunSummary, SUMMARY_FILE};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::ListParams;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{{ .Iteration }}\nspec:\n  nodeSelector:\n    {{ .fleetLabel }}: {{ .fleet }}\n  containers:\n    - name: c\n      image: pause\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{{ .Replica }}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      nodeSelector:\n        {{ .fleetLabel }}: {{ .fleet }}\n      containers:\n        - name: c\n          image: pause\n";

fn write_workload(dir: &Path, fleet: &str, extra_template: Option<&str>) {
    std::fs::write(dir.join("pod.yml"), POD).unwrap();
    std::fs::write(dir.join("deployment.yml"), DEPLOYMENT).unwrap();
    let mut objects = format!(
        "      - objectTemplate: pod.yml\n        inputVars: {{fleetLabel: {FLEET_LABEL}, fleet: {fleet}}}\n      - objectTemplate: deployment.yml\n        replicas: 1\n        inputVars: {{fleetLabel: {FLEET_LABEL}, fleet: {fleet}}}\n"
    );
    if let Some(template) = extra_template {
        std::fs::write(dir.join("extra.yml"), template).unwrap();
        objects.push_str("      - objectTemplate: extra.yml\n");
    }
    let config = format!(
        "jobs:\n  - name: init-test\n    namespace: init-test-{}\n    jobIterations: 10\n    qps: 50\n    burst: 50\n    preLoadImages: false\n    objects:\n{objects}",
        std::process::id()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
}

/// A job creating 1,000 ConfigMaps at `qps` (burst 1) in one namespace: slow enough to be
/// stopped midway.
fn slow_configmaps(dir: &Path, job: &str, qps: u32) {
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}\n";
    std::fs::write(dir.join("cm.yml"), template).unwrap();
    let config = format!(
        "jobs:\n  - name: {job}\n    namespace: {job}-{}\n    namespacedIterations: false\n    jobIterations: 1000\n    qps: {qps}\n    burst: 1\n    objects:\n      - objectTemplate: cm.yml\n",
        std::process::id()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
}

/// `burner init -c config --kubeconfig K --uuid U --output-dir RESULTS` and `extra`
/// arguments. The run directory goes into the test's temporary folder: by default it
/// would be left in the working directory, which is the repository.
fn init(config: &str, kubeconfig: &str, uuid: &str, results: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "init",
        "-c",
        config,
        "--kubeconfig",
        kubeconfig,
        "--uuid",
        uuid,
        "--output-dir",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    burner(&args)
}

/// The run summary `run` wrote into `results`, which must give the exit code the run
/// exited with.
fn run_summary(run: &Output, results: &Path) -> RunSummary {
    let path = results.join(SUMMARY_FILE);
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", path.display(), text(run)));
    let summary: RunSummary = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{} is no run summary: {e}\n{json}", path.display()));
    assert_eq!(
        run.status.code(),
        Some(i32::from(summary.exit_code)),
        "{}",
        text(run)
    );
    summary
}

/// The summary of the job called `name`.
fn job<'a>(summary: &'a RunSummary, name: &str) -> &'a JobSummary {
    summary
        .job(name)
        .unwrap_or_else(|| panic!("no job {name} in the summary: {summary:#?}"))
}

/// The objects a job was to act on, those it did, and its errors: what every job reports.
fn counts(job: &JobSummary) -> [u64; 3] {
    [job.expected, job.done, job.errors]
}

/// `burner destroy --uuid U`, which must succeed and leave no namespace of the run; returns
/// what it printed.
fn destroy(kubeconfig: &str, uuid: &str) -> String {
    let output = burner(&["destroy", "--uuid", uuid, "--kubeconfig", kubeconfig]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(labelled(uuid).0, 0, "namespaces of run {uuid} are left");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn burner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Namespaces and pods carrying the run's uuid label.
fn labelled(uuid: &str) -> (usize, usize) {
    let selector = format!("kube-burner.io/uuid={uuid}");
    common::run_on_harness(async move {
        let client = common::client().await;
        let params = ListParams::default().labels(&selector);
        let namespaces = Api::<Namespace>::all(client.clone())
            .list_metadata(&params)
            .await
            .unwrap()
            .items;
        let live = namespaces
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .count();
        let pods = Api::<Pod>::all(client)
            .list_metadata(&params)
            .await
            .unwrap()
            .items
            .len();
        (live, pods)
    })
}

#[test]
fn a_create_job_runs_on_hollow_nodes_and_destroy_removes_everything() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let prefix = format!("init-{}", std::process::id());
    let options = common::hollow_options(prefix.clone(), 5);
    let fleet = common::run_on_harness(async move {
        HollowFleet::start(common::client().await, options)
            .await
            .unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    write_workload(dir.path(), &prefix, None);
    let uuid = format!("11111111-2222-4333-8444-{:012}", std::process::id());
    let config = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(config.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = run_summary(&run, &results);
    assert_eq!(summary.outcome, RunOutcome::Completed);
    let created = job(&summary, "init-test");
    // 10 iterations of a pod and a deployment, in 10 namespaces, ready and verified.
    assert_eq!(counts(created), [20, 20, 0], "{created:#?}");
    assert_eq!(created.api_calls.retries, 0, "{created:#?}");
    assert!(
        created.ready && created.verification_passed == Some(true),
        "{created:#?}"
    );
    assert!(text(&run).contains(&format!("burner destroy --uuid {uuid}")));

    // Pods of the deployments carry the run's labels through their template.
    assert_eq!(labelled(&uuid), (10, 10 + 10 * 2));

    // Without a uuid, destroy -c names the runs of the config's jobs and removes nothing.
    let config = config.to_str().unwrap();
    let listed = burner(&["destroy", "-c", config, "--kubeconfig", &kubeconfig]);
    assert_eq!(listed.status.code(), Some(1), "{}", text(&listed));
    assert!(
        text(&listed).contains(&format!("burner destroy --uuid {uuid}")),
        "{}",
        text(&listed)
    );
    assert_eq!(labelled(&uuid).0, 10);
    // With it, the config's jobs of that run go.
    let removed = burner(&[
        "destroy",
        "-c",
        config,
        "--uuid",
        &uuid,
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(
        String::from_utf8_lossy(&removed.stdout).contains("removed 10 namespaces"),
        "{}",
        text(&removed)
    );
    assert_eq!(labelled(&uuid), (0, 0));

    common::run_on_harness(async move { fleet.shutdown().await.unwrap() });
}

#[test]
fn a_config_that_cannot_run_writes_nothing() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    write_workload(
        dir.path(),
        "nobody",
        Some("apiVersion: example.invalid/v1\nkind: Frobnicator\nmetadata:\n  name: f\n"),
    );
    let uuid = format!("99999999-2222-4333-8444-{:012}", std::process::id());
    let config = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(config.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(
        text(&run).contains("the cluster has no kind Frobnicator in example.invalid/v1"),
        "{}",
        text(&run)
    );
    assert_eq!(labelled(&uuid), (0, 0), "nothing may be written");
    // Nor is there a run to report on.
    assert!(
        !results.exists(),
        "a refused run wrote {}",
        results.display()
    );
}

#[test]
fn a_run_that_times_out_exits_2_and_says_how_to_clean_up() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    slow_configmaps(dir.path(), "slow", 2);
    let uuid = format!("77777777-2222-4333-8444-{:012}", std::process::id());
    let path = dir.path().join("config.yml");
    let started = std::time::Instant::now();
    let results = dir.path().join("results");
    let run = init(
        path.to_str().unwrap(),
        &kubeconfig,
        &uuid,
        &results,
        &["--timeout", "3s"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout did not stop the run"
    );
    assert!(text(&run).contains("the run timed out"), "{}", text(&run));
    // What the stopped job did is still reported: a burst of 1, then 2 per second for ~3 s.
    let summary = run_summary(&run, &results);
    assert_eq!(summary.outcome, RunOutcome::TimedOut);
    let slow = job(&summary, "slow");
    let done = slow.done;
    assert!((3..=10).contains(&done), "{slow:#?}");
    assert!(slow.stopped && !slow.passed, "{slow:#?}");
    // The partial results are written in kube-burner's form too.
    let documents: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("jobSummary.json")).unwrap())
            .unwrap();
    let document = &documents[0];
    assert_eq!(document["metricName"], "jobSummary");
    assert_eq!(document["uuid"], uuid.as_str());
    assert_eq!(document["jobConfig"]["name"], "slow");
    assert_eq!(document["passed"], false);
    assert_eq!(document["executionErrors"], "the run timed out");
    assert_eq!(document["objectsDone"], done);
    assert!(
        document["elapsedTime"].as_f64().unwrap() >= 2.5,
        "{document}"
    );
    assert!(
        text(&run).contains(&format!("burner destroy --uuid {uuid}")),
        "{}",
        text(&run)
    );
    destroy(&kubeconfig, &uuid);
}

#[test]
fn patch_read_and_delete_jobs_act_on_what_a_create_job_made() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = format!("pipeline-{}", std::process::id());
    std::fs::write(
        dir.path().join("cm.yml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{{{ .Iteration }}}}\n  labels:\n    app: {app}\ndata:\n  stage: created\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("patch.yml"),
        "data:\n  stage: patched-{{ .Iteration }}\n",
    )
    .unwrap();
    let selector = format!("labelSelector: {{app: {app}}}");
    let config = format!(
        "jobs:\n  - name: create\n    namespace: {app}\n    namespacedIterations: false\n    jobIterations: 6\n    qps: 50\n    burst: 50\n    objects:\n      - objectTemplate: cm.yml\n\
         \x20 - name: patch\n    jobType: patch\n    jobIterations: 2\n    qps: 50\n    burst: 50\n    objects:\n      - kind: ConfigMap\n        {selector}\n        objectTemplate: patch.yml\n        patchType: application/merge-patch+json\n\
         \x20 - name: read\n    jobType: read\n    jobIterations: 3\n    qps: 50\n    burst: 50\n    objects:\n      - kind: ConfigMap\n        {selector}\n\
         \x20 - name: delete\n    jobType: delete\n    qps: 50\n    burst: 50\n    objects:\n      - kind: ConfigMap\n        {selector}\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let uuid = format!("55555555-2222-4333-8444-{:012}", std::process::id());
    let path = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = run_summary(&run, &results);
    let done = |name: &str| counts(job(&summary, name));
    assert_eq!(done("create"), [6, 6, 0]);
    // Two patch iterations over six objects, three reads of each, one delete of each.
    assert_eq!(done("patch"), [12, 12, 0]);
    assert_eq!(done("read"), [18, 18, 0]);
    assert_eq!(done("delete"), [6, 6, 0]);

    let left = common::run_on_harness({
        let app = app.clone();
        async move {
            let client = common::client().await;
            let params = ListParams::default().labels(&format!("app={app}"));
            Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client)
                .list_metadata(&params)
                .await
                .unwrap()
                .items
                .len()
        }
    });
    assert_eq!(left, 0, "the delete job waits until its objects are gone");
    destroy(&kubeconfig, &uuid);
}

#[test]
fn ctrl_c_stops_the_run_reports_what_was_done_and_says_how_to_clean_up() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    slow_configmaps(dir.path(), "interrupted", 5);
    let uuid = format!("66666666-2222-4333-8444-{:012}", std::process::id());
    let results = dir.path().join("results");
    let child = Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(["init", "--kubeconfig", &kubeconfig, "--uuid", &uuid, "-c"])
        .arg(dir.path().join("config.yml"))
        .arg("--output-dir")
        .arg(&results)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let it create a few objects, then interrupt it as Ctrl-C would.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let all = text(&output);
    assert!(all.contains("the run was interrupted"), "{all}");
    assert!(
        all.contains(&format!("burner destroy --uuid {uuid}")),
        "{all}"
    );
    // What was done until then is written, the stopped job marked as such.
    let summary = run_summary(&output, &results);
    assert_eq!(summary.outcome, RunOutcome::Interrupted);
    let interrupted = job(&summary, "interrupted");
    let done = interrupted.done;
    assert!((1..100).contains(&done), "{interrupted:#?}");
    assert!(
        interrupted.stopped && !interrupted.passed,
        "{interrupted:#?}"
    );
    // And in kube-burner's form.
    let documents: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("jobSummary.json")).unwrap())
            .unwrap();
    assert_eq!(documents[0]["executionErrors"], "the run was interrupted");
    assert_eq!(documents[0]["objectsDone"], done);
    destroy(&kubeconfig, &uuid);
}

#[test]
fn iterations_wait_for_the_iteration_delay_and_the_job_pauses_after() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}\n",
    )
    .unwrap();
    let namespace = format!("paced-{}", std::process::id());
    let config = format!(
        "jobs:\n  - name: paced\n    namespace: {namespace}\n    namespacedIterations: false\n    jobIterations: 3\n    jobIterationDelay: 2s\n    jobPause: 1s\n    qps: 50\n    burst: 50\n    objects:\n      - objectTemplate: cm.yml\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let uuid = format!("44444444-2222-4333-8444-{:012}", std::process::id());
    let path = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let started = std::time::Instant::now();
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    let elapsed = started.elapsed();
    assert!(run.status.success(), "{}", text(&run));
    // Two delays of 2 s between three iterations, then a pause of 1 s.
    assert!(elapsed >= std::time::Duration::from_secs(5), "{elapsed:?}");
    let created = common::run_on_harness(async move {
        let client = common::client().await;
        let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &namespace);
        let mut times = Vec::new();
        for i in 0..3 {
            let cm = api.get(&format!("cm-{i}")).await.unwrap();
            times.push(cm.metadata.creation_timestamp.unwrap().0);
        }
        times
    });
    let gap = |a: usize, b: usize| (created[b] - created[a]).get_seconds();
    assert!(gap(0, 1) >= 1 && gap(1, 2) >= 1, "{created:?}");
    destroy(&kubeconfig, &uuid);
}

/// The churn cycles, deletions and re-creations of a job, which must have churned.
fn churned(job: &JobSummary) -> (u32, u64, u64) {
    let churn = job
        .churn
        .as_ref()
        .unwrap_or_else(|| panic!("{} did not churn: {job:#?}", job.name));
    (churn.cycles, churn.deleted, churn.recreated)
}

/// ConfigMaps (name, uid) of a namespace.
fn configmaps(namespace: &str) -> Vec<(String, String)> {
    let namespace = namespace.to_string();
    common::run_on_harness(async move {
        let client = common::client().await;
        let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &namespace);
        let mut found: Vec<(String, String)> = api
            .list_metadata(&ListParams::default().labels("kube-burner.io/job"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| (c.metadata.name.unwrap(), c.metadata.uid.unwrap()))
            .collect();
        found.sort();
        found
    })
}

#[test]
fn churn_deletes_and_recreates_in_both_modes_and_verification_still_passes() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}-{{ .Replica }}\n",
    )
    .unwrap();
    let id = std::process::id();
    // Namespaces: 4 namespaces of 2 ConfigMaps, half of them (2) each cycle, 2 cycles.
    // Objects: 10 ConfigMaps in one namespace, 20% (2) each cycle, 5 cycles: each of the
    // 10 exactly once, oldest first.
    let config = format!(
        "jobs:\n  - name: churn-ns\n    namespace: churn-ns-{id}\n    jobIterations: 4\n    qps: 50\n    burst: 50\n    churnConfig: {{mode: namespaces, cycles: 2, percent: 50}}\n    objects:\n      - objectTemplate: cm.yml\n        replicas: 2\n\
         \x20 - name: churn-obj\n    namespace: churn-obj-{id}\n    namespacedIterations: false\n    jobIterations: 10\n    qps: 50\n    burst: 50\n    churnConfig: {{mode: objects, cycles: 5, percent: 20}}\n    objects:\n      - objectTemplate: cm.yml\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let uuid = format!("33333333-2222-4333-8444-{id:012}");
    let path = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = run_summary(&run, &results);

    let namespaces = job(&summary, "churn-ns");
    assert_eq!(counts(namespaces), [8, 8, 0]);
    // Deletions count namespaces (2 a cycle), re-creations their ConfigMaps (4 a cycle).
    assert_eq!(churned(namespaces), (2, 4, 8), "{namespaces:#?}");
    for n in 0..4 {
        assert_eq!(configmaps(&format!("churn-ns-{id}-{n}")).len(), 2);
    }

    let objects = job(&summary, "churn-obj");
    assert_eq!(counts(objects), [10, 10, 0]);
    assert_eq!(churned(objects), (5, 10, 10), "{objects:#?}");
    assert_eq!(objects.verification_passed, Some(true), "{objects:#?}");
    destroy(&kubeconfig, &uuid);
}

#[test]
fn objects_mode_churn_replaces_every_object_once_before_any_twice() {
    use futures::{StreamExt, TryStreamExt};
    use kube::runtime::watcher;
    use std::collections::{BTreeMap, BTreeSet};

    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}\n",
    )
    .unwrap();
    let id = std::process::id();
    let namespace = format!("rotate-{id}");
    // 4 cycles of 25% (2) of 8 ConfigMaps.
    let config = format!(
        "jobs:\n  - name: rotate\n    namespace: {namespace}\n    namespacedIterations: false\n    jobIterations: 8\n    qps: 50\n    burst: 50\n    churnConfig: {{mode: objects, cycles: 4, percent: 25}}\n    objects:\n      - objectTemplate: cm.yml\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();

    // Every uid each name has had, seen by a watch running through the whole run.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let seen = common::runtime().spawn({
        let namespace = namespace.clone();
        async move {
            let client = common::client().await;
            let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &namespace);
            let mut uids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let config = watcher::Config::default().labels("kube-burner.io/job=rotate");
            let mut events = watcher::watcher(api, config).boxed();
            let mut stopped = std::pin::pin!(stopped);
            loop {
                tokio::select! {
                    event = events.try_next() => {
                        if let Ok(Some(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm))) = event {
                            uids.entry(cm.metadata.name.unwrap())
                                .or_default()
                                .insert(cm.metadata.uid.unwrap());
                        }
                    }
                    _ = &mut stopped => return uids,
                }
            }
        }
    });
    let uuid = format!("34343434-2222-4333-8444-{id:012}");
    let path = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    stop.send(()).unwrap();
    let uids = common::run_on_harness(async move { seen.await.unwrap() });
    let summary = run_summary(&run, &results);
    let rotate = job(&summary, "rotate");
    let (_, deleted, recreated) = churned(rotate);
    assert_eq!((deleted, recreated), (8, 8), "{rotate:#?}");
    assert_eq!(uids.len(), 8, "{uids:?}");
    for (name, versions) in &uids {
        assert_eq!(
            versions.len(),
            2,
            "{name} was not replaced exactly once: {uids:?}"
        );
    }
    destroy(&kubeconfig, &uuid);
}

#[test]
fn waits_follow_wait_options_and_give_up_at_max_wait_timeout() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let prefix = format!("waits-{}", std::process::id());
    let options = common::hollow_options(prefix.clone(), 2);
    let fleet = common::run_on_harness(async move {
        HollowFleet::start(common::client().await, options)
            .await
            .unwrap()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deployment.yml"), DEPLOYMENT).unwrap();
    std::fs::write(
        dir.path().join("other-deployment.yml"),
        DEPLOYMENT.replace("name: web-", "name: other-web-"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ .Iteration }}\n",
    )
    .unwrap();
    let id = std::process::id();
    let vars = format!("inputVars: {{fleetLabel: {FLEET_LABEL}, fleet: {prefix}}}");
    // Ready by the Deployment's Available condition, and by its pods; then a ConfigMap
    // that never has the status it is waited for.
    let available = r#"'(.conditions.[] | select(.type == "Available")).status'"#;
    let write = |never: bool| {
        let mut config = format!(
            "jobs:\n  - name: waits\n    namespace: waits-{id}\n    jobIterations: 2\n    qps: 50\n    burst: 50\n    maxWaitTimeout: 3s\n    objects:\n      - objectTemplate: deployment.yml\n        {vars}\n        waitOptions:\n          customStatusPaths: [{{key: {available}, value: 'True'}}]\n      - objectTemplate: other-deployment.yml\n        {vars}\n        waitOptions:\n          kind: Pod\n          labelSelector: {{app: web}}\n"
        );
        if never {
            config.push_str("      - objectTemplate: cm.yml\n        waitOptions:\n          customStatusPaths: [{key: .phase, value: Never}]\n");
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
    };
    let path = dir.path().join("config.yml");

    write(false);
    let uuid = format!("22222222-2222-4333-8444-{id:012}");
    let results = dir.path().join("ready");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    destroy(&kubeconfig, &uuid);

    write(true);
    let uuid = format!("22222223-2222-4333-8444-{id:012}");
    let results = dir.path().join("never-ready");
    let started = std::time::Instant::now();
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // Not everything was ready within maxWaitTimeout.
    let summary = run_summary(&run, &results);
    let waits = job(&summary, "waits");
    assert!(!waits.ready && !waits.passed, "{waits:#?}");
    destroy(&kubeconfig, &uuid);
    common::run_on_harness(async move { fleet.shutdown().await.unwrap() });
}

#[test]
fn objects_outside_the_runs_namespaces_are_cleaned_up_and_a_rerun_replaces_them() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let id = std::process::id();
    // A namespace burner did not create, and objects that templates put there.
    let theirs = common::run_on_harness(async move {
        common::create_namespace(&common::client().await, "theirs").await
    });
    std::fs::write(
        dir.path().join("cm.yml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fixed-{{{{ .Iteration }}}}\n  namespace: {theirs}\n"),
    )
    .unwrap();
    let config = format!(
        "jobs:\n  - name: fixed\n    namespace: fixed-{id}\n    jobIterations: 3\n    qps: 50\n    burst: 50\n    objects:\n      - objectTemplate: cm.yml\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let uuid = format!("88888888-2222-4333-8444-{id:012}");
    let path = dir.path().join("config.yml");
    let results = dir.path().join("first");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(configmaps(&theirs).len(), 3);
    // Run again with the same uuid: `cleanup` (on by default) removes the first run's
    // objects first, so nothing collides and the counts are the second run's.
    let results = dir.path().join("second");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = run_summary(&run, &results);
    assert_eq!(counts(job(&summary, "fixed")), [3, 3, 0], "{}", text(&run));
    let printed = destroy(&kubeconfig, &uuid);
    assert!(printed.contains("3 other objects"), "{printed}");
    assert!(
        configmaps(&theirs).is_empty(),
        "destroy left objects in {theirs}"
    );
}

#[test]
fn a_sequential_json_patch_job_goes_one_object_at_a_time() {
    let kubeconfig = common::cluster().kubeconfig.to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let app = format!("sequential-{}", std::process::id());
    std::fs::write(
        dir.path().join("cm.yml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{{{ .Iteration }}}}\n  labels:\n    app: {app}\ndata:\n  stage: created\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("patch.json"),
        r#"[{"op": "replace", "path": "/data/stage", "value": "patched-{{ .Iteration }}"}]"#,
    )
    .unwrap();
    let config = format!(
        "jobs:\n  - name: create\n    namespace: {app}\n    namespacedIterations: false\n    jobIterations: 3\n    qps: 50\n    burst: 50\n    objects:\n      - objectTemplate: cm.yml\n\
         \x20 - name: patch\n    jobType: patch\n    executionMode: sequential\n    objectDelay: 1s\n    qps: 50\n    burst: 50\n    objects:\n      - kind: ConfigMap\n        labelSelector: {{app: {app}}}\n        objectTemplate: patch.json\n        patchType: application/json-patch+json\n"
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let uuid = format!("56565656-2222-4333-8444-{:012}", std::process::id());
    let path = dir.path().join("config.yml");
    let results = dir.path().join("results");
    let run = init(path.to_str().unwrap(), &kubeconfig, &uuid, &results, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = run_summary(&run, &results);
    assert_eq!(counts(job(&summary, "patch")), [3, 3, 0]);
    let stages = common::run_on_harness({
        let app = app.clone();
        async move {
            let client = common::client().await;
            let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &app);
            let mut stages = Vec::new();
            let mut patched_at = Vec::new();
            let params = ListParams::default().labels(&format!("app={app}"));
            for cm in api.list(&params).await.unwrap().items {
                let fields = cm.metadata.managed_fields.unwrap_or_default();
                patched_at.extend(fields.into_iter().filter_map(|f| f.time).map(|t| t.0).max());
                if let Some(data) = cm.data {
                    stages.push(data["stage"].clone());
                }
            }
            patched_at.sort();
            (stages, patched_at)
        }
    });
    let (stages, patched_at) = stages;
    assert_eq!(stages, ["patched-0", "patched-0", "patched-0"]);
    // One at a time, a second apart: the last patch is at least 2 s after the first
    // (the server's times have a resolution of a second).
    let spread = (patched_at[2] - patched_at[0]).get_seconds();
    assert!(spread >= 2, "{patched_at:?}");
    destroy(&kubeconfig, &uuid);
}
