//! `burner check` on good and bad configs: what it counts, and for bad input an error
//! that names the file, the line and column or the field, and what was expected.
//! No cluster is involved: check never talks to one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p-{{ .Iteration }}-{{ .Replica }}\nspec:\n  containers:\n    - name: c\n      image: {{ .image }}\n";

/// A cluster at a port nobody listens on (port 1 is reserved and unused).
const UNREACHABLE_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n  - name: none\n    cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n  - name: none\n    context: {cluster: none, user: none}\ncurrent-context: none\nusers:\n  - name: none\n    user: {token: none}\n";

/// A folder with a config and templates.
struct Workload {
    dir: tempfile::TempDir,
}

impl Workload {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/pod.yml"), POD).unwrap();
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        Self { dir }
    }

    fn file(self, name: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `burner init` against a kubeconfig whose server does not exist.
    fn init_without_cluster(&self, extra: &[&str]) -> Output {
        let kubeconfig = self.path("unreachable-kubeconfig");
        std::fs::write(&kubeconfig, UNREACHABLE_KUBECONFIG).unwrap();
        Command::new(env!("CARGO_BIN_EXE_burner"))
            .arg("init")
            .arg("-c")
            .arg(self.path("config.yml"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .env_remove("BURNER_TEST_UNSET")
            .output()
            .unwrap()
    }

    fn check(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_burner"))
            .arg("check")
            .arg("-c")
            .arg(self.path("config.yml"))
            .args(extra)
            .env_remove("BURNER_TEST_UNSET")
            .output()
            .unwrap()
    }
}

fn job(body: &str) -> String {
    format!("jobs:\n  - name: density\n    namespace: ns\n    qps: 10\n    burst: 10\n{body}")
}

const OBJECTS: &str = "    objects:\n      - objectTemplate: templates/pod.yml\n        replicas: 2\n        inputVars:\n          image: pause\n";

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs check on a bad config and returns its error, asserting exit code 1.
fn error_of(workload: &Workload, extra: &[&str]) -> String {
    let output = workload.check(extra);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}

fn config_path(workload: &Workload) -> String {
    workload.path("config.yml").display().to_string()
}

#[test]
fn a_good_config_is_counted_job_by_job() {
    let workload = Workload::new(&job(&format!("    jobIterations: 5\n{OBJECTS}")));
    let output = workload.check(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let row = table.lines().find(|l| l.starts_with("density")).unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    // 5 iterations × 2 replicas = 10 pods, in 5 namespaces: 15 writes at 10/s after a burst of 10.
    assert_eq!(
        &columns[..6],
        ["density", "create", "5", "10", "5", "15"],
        "{row}"
    );
    assert!(row.contains("500ms (qps 10, burst 10)"), "{row}");
}

#[test]
fn rendered_objects_can_be_written_to_a_folder() {
    let workload = Workload::new(&job(&format!("    jobIterations: 2\n{OBJECTS}")));
    let out = workload.path("rendered");
    let output = workload.check(&["--output-dir", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let files: Vec<_> = std::fs::read_dir(out.join("density")).unwrap().collect();
    assert_eq!(files.len(), 4);
    let first = std::fs::read_to_string(out.join("density/000001-0-2-0.yaml")).unwrap();
    assert!(first.contains("name: p-1-2"), "{first}");
    assert!(first.contains("image: pause"), "{first}");
}

#[test]
fn set_and_user_data_change_the_rendered_config() {
    let config = format!(
        "jobs:\n  - name: density\n    namespace: {{{{ .prefix }}}}\n    jobIterations: 1\n    qps: 10\n{OBJECTS}"
    );
    let workload = Workload::new(&config).file("data.yml", "prefix: from-user-data\n");
    let data = workload.path("data.yml");
    let output = workload.check(&[
        "--user-data",
        data.to_str().unwrap(),
        "--set",
        "jobs.0.jobIterations=7",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row = stdout(&output)
        .lines()
        .find(|l| l.starts_with("density"))
        .unwrap()
        .to_string();
    assert!(row.split_whitespace().nth(2) == Some("7"), "{row}");
}

#[test]
fn allow_missing_renders_missing_keys_as_no_value() {
    let workload = Workload::new(&job(&format!(
        "    jobPause: 0\n    jobIterations: {{{{ .BURNER_TEST_UNSET | default 3 }}}}\n{OBJECTS}"
    )));
    assert!(error_of(&workload, &[]).contains("map has no entry for key \"BURNER_TEST_UNSET\""));
    let output = workload.check(&["--allow-missing"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A bad config: its text, extra files (name, text), extra arguments, and the text its
/// error must contain.
type BadInput = (
    String,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
    &'static str,
);

#[test]
fn bad_input_is_reported_with_where_and_what() {
    let cases: Vec<BadInput> = vec![
        (
            job(&format!("    jobIteration: 3\n{OBJECTS}")),
            vec![],
            vec![],
            ":6:5: unknown field `jobIteration`",
        ),
        (
            job(&format!("    jobIteration: 3\n{OBJECTS}")),
            vec![],
            vec![],
            "(did you mean `jobIterations`?)",
        ),
        (
            job(&format!("    jobIterations: ten\n{OBJECTS}")),
            vec![],
            vec![],
            ":6:20: invalid u32",
        ),
        (
            job(&format!("    jobPause: soon\n{OBJECTS}")),
            vec![],
            vec![],
            "`soon` is not a duration",
        ),
        (
            job(&format!("    jobType: destroy\n{OBJECTS}")),
            vec![],
            vec![],
            ":6:14: unknown variant `destroy`",
        ),
        (
            "global: {}\n".to_string(),
            vec![],
            vec![],
            ": jobs: the config has no jobs",
        ),
        (
            format!("jobs:\n  - name: Bad_Name\n{OBJECTS}"),
            vec![],
            vec![],
            ": jobs[0].name: `Bad_Name` is not a valid job name",
        ),
        (
            format!("jobs:\n  - name: a\n{OBJECTS}  - name: a\n{OBJECTS}"),
            vec![],
            vec![],
            ": jobs[1].name: a job named `a` comes earlier",
        ),
        (
            job("    jobIterations: 0\n"),
            vec![],
            vec![],
            ": jobs[0].jobIterations: must be at least 1",
        ),
        (
            job("    jobIterations: 1\n"),
            vec![],
            vec![],
            ": jobs[0].objects: a create job needs at least one object",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/nope.yml\n"),
            vec![],
            vec![],
            ": jobs[0].objects[0].objectTemplate: file templates/nope.yml not found (relative to the config file's folder",
        ),
        (
            job("    objects:\n      - objectTemplate: http://127.0.0.1:1/pod.yml\n"),
            vec![],
            vec![],
            ": jobs[0].objects[0].objectTemplate: cannot download http://127.0.0.1:1/pod.yml: ",
        ),
        (
            job("    jobType: delete\n    objects:\n      - kind: Pod\n"),
            vec![],
            vec![],
            ": jobs[0].objects[0].labelSelector: must not be empty",
        ),
        (
            job(
                "    jobType: patch\n    objects:\n      - kind: Pod\n        labelSelector: {a: b}\n        objectTemplate: templates/pod.yml\n",
            ),
            vec![],
            vec![],
            ": jobs[0].objects[0].patchType: a patch job needs a patchType",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/bad.yml\n"),
            vec![("templates/bad.yml", "a: 1\n{{ if .x }}\nb: 2\n")],
            vec![],
            "templates/bad.yml:2: {{if}} has no matching {{end}}",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/missing-key.yml\n"),
            vec![(
                "templates/missing-key.yml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .nope }}\n",
            )],
            vec![],
            "templates/missing-key.yml:4: map has no entry for key \"nope\"",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/no-kind.yml\n"),
            vec![(
                "templates/no-kind.yml",
                "apiVersion: v1\nmetadata:\n  name: x\n",
            )],
            vec![],
            "templates/no-kind.yml, iteration 0, replica 1, document 0: has no kind",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/no-yaml.yml\n"),
            vec![("templates/no-yaml.yml", "kind: [unclosed\n")],
            vec![],
            "the rendered object is not valid YAML",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/fn.yml\n"),
            vec![("templates/fn.yml", "x: {{ frobnicate 1 }}\n")],
            vec![],
            "templates/fn.yml:1: function or helper \"frobnicate\" not defined",
        ),
        (
            "jobs:\n  - name: {{ .BURNER_TEST_UNSET }}\n".to_string(),
            vec![],
            vec![],
            ":2: map has no entry for key \"BURNER_TEST_UNSET\"",
        ),
        ("jobs: [\n".to_string(), vec![], vec![], ":"),
        (
            format!(
                "global:\n  measurements:\n    - name: podLatency\n      thresholds:\n        - {{conditionType: Ready, metric: P98, threshold: 5s}}\n{}",
                job(OBJECTS)
            ),
            vec![],
            vec![],
            "global.measurements[0].thresholds[0].metric: `P98` is not one of P50, P95, P99, Avg, Max",
        ),
        (
            job(&format!(
                "    measurements:\n      - name: podLatency\n        thresholds:\n          - {{conditionType: Ready, metric: P99, threshold: soon}}\n{OBJECTS}"
            )),
            vec![],
            vec![],
            "jobs[0].measurements[0].thresholds[0].threshold: `soon` is not a duration",
        ),
        (
            job(OBJECTS),
            vec![],
            vec!["--set", "jobs.0.name.inner=x"],
            "--set jobs.0.name.inner=x: `inner` is inside a value that is not a map",
        ),
        (
            job(OBJECTS),
            vec![],
            vec!["--set", "jobs.5.qps=1"],
            "--set jobs.5.qps=1: index 5 is past the end of the list",
        ),
        (
            job(OBJECTS),
            vec![],
            vec!["--set", "novalue"],
            "--set novalue: expected key.path=value",
        ),
        (
            job(OBJECTS),
            vec![],
            vec!["--user-data", "/nonexistent/data.yml"],
            "cannot read /nonexistent/data.yml",
        ),
        (
            job(&format!("    watchers:\n      - kind: Pod\n{OBJECTS}")),
            vec![],
            vec![],
            ": jobs[0].watchers: watchers are not supported by burner yet",
        ),
        (
            job(&format!(
                "    hooks:\n      - cmd: [echo]\n        when: beforeJobExecution\n{OBJECTS}"
            )),
            vec![],
            vec![],
            ": jobs[0].hooks: hooks are not supported by burner yet",
        ),
        (
            job(
                "    jobType: delete\n    churnConfig: {cycles: 2}\n    objects:\n      - kind: Pod\n        labelSelector: {a: b}\n",
            ),
            vec![],
            vec![],
            ": jobs[0].churnConfig: churn re-creates what a create job made",
        ),
        (
            job(&format!(
                "    churnConfig: {{cycles: 2, percent: 150}}\n{OBJECTS}"
            )),
            vec![],
            vec![],
            ": jobs[0].churnConfig.percent: 150 is not a percentage",
        ),
        (
            format!("jobs:\n  - name: nons\n    churnConfig: {{cycles: 1}}\n{OBJECTS}"),
            vec![],
            vec![],
            ": jobs[0].churnConfig.mode: churn mode namespaces needs the job to have a namespace",
        ),
        (
            job(&format!(
                "    churnConfig: {{cycles: 1, mode: everything}}\n{OBJECTS}"
            )),
            vec![],
            vec![],
            "6:36: unknown variant `everything`, expected one of namespaces, objects",
        ),
        (
            job(&format!("    executionMode: random\n{OBJECTS}")),
            vec![],
            vec![],
            "unknown variant `random`, expected one of parallel, sequential",
        ),
        (
            job(
                "    objects:\n      - objectTemplate: templates/pod.yml\n        inputVars: {image: pause}\n        waitOptions:\n          customStatusPaths: [{key: '.conditions | length', value: '1'}]\n",
            ),
            vec![],
            vec![],
            ": jobs[0].objects[0].waitOptions.customStatusPaths[0].key: `.conditions | length`: `length` is not supported",
        ),
        (
            job(
                "    jobType: patch\n    objects:\n      - kind: Pod\n        labelSelector: {a: b}\n        objectTemplate: templates/pod.yml\n        patchType: application/xml\n",
            ),
            vec![],
            vec![],
            ": jobs[0].objects[0].patchType: `application/xml` is not one of application/json-patch+json",
        ),
        (
            format!(
                "global:\n  waitWhenFinished: true\njobs:\n  - name: gc\n    namespace: ns\n    gc: true\n{OBJECTS}"
            ),
            vec![],
            vec![],
            ": jobs[0].gc: a job that removes its objects right after it cannot be waited for by global.waitWhenFinished",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/mixed.yml\n"),
            vec![(
                "templates/mixed.yml",
                "name: {{.JobName}}\nitems:\n{{#each list}}\n- {{this}}\n{{/each}}\n",
            )],
            vec![],
            "templates/mixed.yml:3: mixes Go template syntax",
        ),
        (
            job(
                "    objects:\n      - objectTemplate: templates/hbs.yml\n        templateSyntax: handlebars\n",
            ),
            vec![("templates/hbs.yml", "name: {{#if x}}a\n")],
            vec![],
            "templates/hbs.yml:1: {{#if}} has no matching {{/if}}",
        ),
        (
            format!(
                "global:\n  functionTemplates: [templates/none.tpl]\n{}",
                job(OBJECTS)
            ),
            vec![],
            vec![],
            ": global.functionTemplates[0]: file templates/none.tpl not found",
        ),
        (
            job("    objects:\n      - objectTemplate: templates/call.yml\n"),
            vec![("templates/call.yml", "a: 1\nb: {{ template \"nope\" . }}\n")],
            vec![],
            "templates/call.yml:2: template \"nope\" not defined",
        ),
    ];
    assert!(cases.len() >= 30);
    for (config, files, args, expected) in cases {
        let mut workload = Workload::new(&config);
        for (name, text) in files {
            workload = workload.file(name, text);
        }
        let error = error_of(&workload, &args);
        assert!(
            error.contains(expected),
            "config:\n{config}\nexpected `{expected}` in:\n{error}"
        );
        // `burner init` refuses the same config with the same error before it contacts
        // the cluster at all: its kubeconfig names a server nobody listens on, so any
        // attempt to write would have failed with a connection error instead.
        let init = workload.init_without_cluster(&args);
        assert_eq!(init.status.code(), Some(1), "{}", stderr(&init));
        assert!(
            stderr(&init).contains(expected),
            "init, config:\n{config}\nexpected `{expected}` in:\n{}",
            stderr(&init)
        );
        let path = config_path(&workload);
        let names_a_file = error.contains(&path)
            || error.contains("templates/")
            || error.contains("--set")
            || error.contains("data.yml");
        assert!(names_a_file, "the error names no file or option:\n{error}");
    }
}

/// Serves `body` to HTTP requests on 127.0.0.1 (with 404 for any path but `path`) until the
/// test ends; returns the address.
fn serve(path: &'static str, body: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            // Read the headers up to the empty line.
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let found = request_line.split_whitespace().nth(1) == Some(path);
            let (status, text) = if found {
                ("200 OK", body)
            } else {
                ("404 Not Found", "")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            stream.write_all(response.as_bytes()).unwrap();
        }
    });
    format!("http://{address}")
}

#[test]
fn templates_can_come_from_urls() {
    let base = serve("/pod.yml", POD);
    let workload = Workload::new(&job(&format!(
        "    jobIterations: 3\n    objects:\n      - objectTemplate: {base}/pod.yml\n        inputVars: {{image: pause}}\n"
    )));
    let output = workload.check(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(all.contains("3 objects"), "{all}");

    let missing = Workload::new(&job(&format!(
        "    objects:\n      - objectTemplate: {base}/none.yml\n"
    )));
    let error = error_of(&missing, &[]);
    assert!(
        error.contains(&format!(
            "cannot download {base}/none.yml: the server answered 404 Not Found"
        )),
        "{error}"
    );
}

#[test]
fn template_paths_resolve_from_the_config_folder_whatever_the_working_directory() {
    let workload = Workload::new(&job(&format!("    jobIterations: 1\n{OBJECTS}")));
    let output = Command::new(env!("CARGO_BIN_EXE_burner"))
        .current_dir(Path::new("/"))
        .args(["check", "-c"])
        .arg(workload.path("config.yml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_shipped_kubelet_density_workload_checks() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/kubelet-density/config.yml");
    let output = Command::new(env!("CARGO_BIN_EXE_burner"))
        .args(["check", "-c"])
        .arg(&config)
        .env("JOB_ITERATIONS", "50")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let row = stdout(&output)
        .lines()
        .find(|l| l.starts_with("kubelet-density"))
        .unwrap()
        .to_string();
    assert_eq!(row.split_whitespace().nth(3), Some("50"), "{row}");
}

#[test]
fn every_shipped_workload_validates_against_the_published_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schemas/config.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let options = burner::config::LoadOptions {
        uuid: "01234567-89ab-4cde-8f01-234567890abc".into(),
        ..Default::default()
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("workloads")).unwrap() {
        let config = entry.unwrap().path().join("config.yml");
        if !config.is_file() {
            continue;
        }
        let rendered = burner::config::render(&config, &options).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&rendered).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", config.display());
        checked += 1;
    }
    assert!(checked >= 4);
    // And the schema does reject what burner rejects.
    let bad: serde_json::Value = serde_json::json!({"jobs": [{"name": "a", "jobIteration": 3}]});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn metrics_endpoints_and_their_profiles_are_checked_with_their_place() {
    let shipped = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("workloads/metrics")
            .join(name)
            .display()
            .to_string()
    };
    // The shipped profiles, through an endpoint file given with -e.
    let endpoint_file = format!(
        "- endpoint: http://127.0.0.1:9090\n  username: u\n  password: p\n  metrics: [{}]\n  alerts: [{}]\n",
        shipped("control-plane.yml"),
        shipped("slo-alerts.yml")
    );
    let workload = Workload::new(&job(&format!("    jobIterations: 5\n{OBJECTS}")))
        .file("endpoint.yml", &endpoint_file)
        .file(
            "metrics.yml",
            "- query: up\n  metricName: up\n  captureStrat: true\n",
        );
    let endpoint = workload.path("endpoint.yml").display().to_string();
    let output = workload.check(&["-e", &endpoint]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("metrics: 1 endpoint(s),"),
        "{}",
        stderr(&output)
    );

    // A profile with a misspelt key, named with its line and column.
    let config = format!(
        "{}metricsEndpoints:\n  - endpoint: http://127.0.0.1:9090\n    metrics: [metrics.yml]\n",
        job(&format!("    jobIterations: 5\n{OBJECTS}"))
    );
    let workload = workload.file("config.yml", &config);
    let error = error_of(&workload, &[]);
    assert!(
        error.contains("metrics.yml:3:3: unknown field `captureStrat`"),
        "{error}"
    );
    assert!(error.contains("did you mean `captureStart`?"), "{error}");
}
