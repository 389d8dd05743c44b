//! The job config: loading a kube-burner v2 config file into a checked [`Config`].
//!
//! Loading goes in the order kube-burner uses, with burner's checks at each step:
//! 1. the file is rendered as a Go template, with the environment variables, the
//!    `--user-data` file's keys (which win) and `UUID` as data;
//! 2. the result is decoded strictly ([`raw`]): an unknown key is an error with its file,
//!    line and column, and the nearest valid key;
//! 3. `--set key.path=value` overrides are applied;
//! 4. every job is validated, and every object template is found and parsed, so nothing
//!    bad can surface after the first write to a cluster.
//!
//! This module knows nothing of the stages after it.

mod fetch;
pub mod measurements;
pub mod metrics;
pub mod raw;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use measurements::JobMeasurements;
pub use metrics::MetricsEndpoint;

use crate::template::TemplateError;
use crate::template::go::{GoTemplate, MissingKey, RenderOptions};
use crate::template::{Syntax, Template};
pub use raw::{ChurnConfig, Global, JobType, RawConfig, RawJob, RawObject};

/// How to load a config.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The run's UUID, available to the config as `{{.UUID}}`.
    pub uuid: String,
    /// A YAML file whose top-level keys are data for the config template.
    pub user_data: Option<PathBuf>,
    /// `key.path=value` overrides applied to the rendered config.
    pub set: Vec<String>,
    /// Render missing keys as no value instead of failing (kube-burner's `--allow-missing`).
    pub allow_missing: bool,
    /// A file with a `metricsEndpoints` list that replaces the config's (`-e`).
    pub metrics_endpoints: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{}:{line}:{column}: {message}{}", file.display(), hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    Yaml {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
        hint: Option<String>,
    },
    #[error("--set {expression}: {message}")]
    Set { expression: String, message: String },
    #[error("{}: {path}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        path: String,
        message: String,
    },
}

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub uuid: String,
    pub global: Global,
    pub jobs: Vec<Job>,
    /// The Prometheus servers to read the cluster's metrics from, profiles loaded.
    pub metrics_endpoints: Vec<MetricsEndpoint>,
    /// Things that are allowed but probably not meant, for the CLI to show.
    pub warnings: Vec<String>,
}

/// A checked job: the raw fields, plus what validation resolved.
#[derive(Debug, Clone)]
pub struct Job {
    pub raw: RawJob,
    /// The client-side write rate; `None` is unlimited.
    pub qps: Option<f64>,
    pub burst: u32,
    pub missing: MissingKey,
    pub objects: Vec<Object>,
    /// What the job measures: its own measurements over the global ones.
    pub measurements: JobMeasurements,
    /// The job as the rendered config (with `--set` applied) writes it.
    pub rendered: Value,
}

impl Job {
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    pub fn job_type(&self) -> JobType {
        self.raw.job_type
    }
}

#[derive(Debug, Clone)]
pub struct Object {
    pub raw: RawObject,
    /// The object's template; every create and patch object has one, delete and read
    /// objects need none.
    pub template: Option<ObjectTemplate>,
    pub replicas: u32,
}

/// A template file, found and parsed.
#[derive(Debug, Clone)]
pub struct ObjectTemplate {
    pub file: PathBuf,
    pub parsed: Arc<Template>,
}

/// The JSON Schema of the config, generated from the types that decode it (checked in as
/// `schemas/config.schema.json`, for editors and other tools).
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).expect("a schema is JSON")
}

/// Step 1 alone: the config file rendered as a template, as text.
pub fn render(path: &Path, options: &LoadOptions) -> Result<String, ConfigError> {
    let source = read(path)?;
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    render_config(path, &source, &folder, options)
}

/// Loads and checks the config at `path`.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
    let source = read(path)?;
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rendered = render_config(path, &source, &folder, options)?;
    let mut raw: RawConfig = decode(path, &rendered)?;
    let document = apply_set(&rendered, &options.set)?;
    if !options.set.is_empty() {
        raw = serde_json::from_value(document.clone()).map_err(|e| ConfigError::Set {
            expression: options.set.join(" "),
            message: e.to_string(),
        })?;
    }
    let mut config = validate(path, &folder, raw, options)?;
    for (j, job) in config.jobs.iter_mut().enumerate() {
        job.rendered = document
            .pointer(&format!("/jobs/{j}"))
            .cloned()
            .unwrap_or_default();
    }
    Ok(config)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Step 1: the config is a template over the environment, the user data and the UUID.
fn render_config(
    path: &Path,
    source: &str,
    folder: &Path,
    options: &LoadOptions,
) -> Result<String, ConfigError> {
    let mut data = serde_json::Map::new();
    for (key, value) in std::env::vars() {
        data.insert(key, Value::String(value));
    }
    if let Some(user_data) = &options.user_data {
        let text = read(user_data)?;
        let values: serde_json::Map<String, Value> = decode(user_data, &text)?;
        data.extend(values);
    }
    data.insert("UUID".into(), Value::String(options.uuid.clone()));
    let name = path.display().to_string();
    let template = GoTemplate::parse(&name, source)?;
    let missing = if options.allow_missing {
        MissingKey::Zero
    } else {
        MissingKey::Error
    };
    Ok(template.render(
        &Value::Object(data),
        &RenderOptions::new(missing, Some(folder.to_path_buf())),
    )?)
}

/// Decodes YAML strictly, turning serde-saphyr's error into file:line:column and a hint.
fn decode<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|error| {
        let (line, column) = error.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = bare_message(&error.without_snippet().to_string(), line, column);
        let hint = nearest_key(&message);
        ConfigError::Yaml {
            file: file.to_path_buf(),
            line,
            column,
            message,
            hint,
        }
    })
}

/// serde-saphyr's message without the position it also carries ("error: line L column
/// C: ..." or "... at line L, column C"), since burner prints the position in front.
fn bare_message(full: &str, line: u64, column: u64) -> String {
    let message = full.strip_prefix("error: ").unwrap_or(full);
    let message = message
        .strip_prefix(&format!("line {line} column {column}: "))
        .unwrap_or(message);
    let message = message
        .strip_suffix(&format!(" at line {line}, column {column}"))
        .unwrap_or(message);
    message.to_string()
}

/// For "unknown field `x`", the known key nearest to `x`, if it is close.
fn nearest_key(message: &str) -> Option<String> {
    let unknown = message.strip_prefix("unknown field `")?.split('`').next()?;
    raw::KNOWN_KEYS
        .iter()
        .map(|key| {
            (
                edit_distance(&unknown.to_lowercase(), &key.to_lowercase()),
                *key,
            )
        })
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, key)| key.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Step 3: `--set a.b.0.c=value`, the value read as YAML (so `10` is a number). Returns the
/// rendered config as a document with the values set.
fn apply_set(rendered: &str, set: &[String]) -> Result<Value, ConfigError> {
    let set_error = |expression: &str, message: String| ConfigError::Set {
        expression: expression.to_string(),
        message,
    };
    let mut document: Value =
        serde_saphyr::from_str(rendered).map_err(|e| set_error("", e.to_string()))?;
    for expression in set {
        let (path, value) = expression
            .split_once('=')
            .ok_or_else(|| set_error(expression, "expected key.path=value".into()))?;
        let value: Value =
            serde_saphyr::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        let mut target = &mut document;
        for key in path.split('.') {
            target = match target {
                Value::Array(items) => {
                    let index: usize = key.parse().map_err(|_| {
                        set_error(expression, format!("`{key}` is not an index into a list"))
                    })?;
                    items.get_mut(index).ok_or_else(|| {
                        set_error(
                            expression,
                            format!("index {index} is past the end of the list"),
                        )
                    })?
                }
                Value::Object(map) => map.entry(key.to_string()).or_insert(Value::Null),
                Value::Null => {
                    *target = Value::Object(serde_json::Map::new());
                    target
                        .as_object_mut()
                        .expect("just made an object")
                        .entry(key.to_string())
                        .or_insert(Value::Null)
                }
                _ => {
                    return Err(set_error(
                        expression,
                        format!("`{key}` is inside a value that is not a map"),
                    ));
                }
            };
        }
        *target = value;
    }
    Ok(document)
}

/// Step 4: every job valid, every template found and parsed.
fn validate(
    file: &Path,
    folder: &Path,
    raw: RawConfig,
    options: &LoadOptions,
) -> Result<Config, ConfigError> {
    let invalid = |path: String, message: String| ConfigError::Invalid {
        file: file.to_path_buf(),
        path,
        message,
    };
    if raw.jobs.is_empty() {
        return Err(invalid("jobs".into(), "the config has no jobs".into()));
    }
    let mut warnings = Vec::new();
    let library = function_templates(file, folder, &raw.global)?;
    let mut names = BTreeSet::new();
    let mut jobs = Vec::with_capacity(raw.jobs.len());
    for (j, job) in raw.jobs.into_iter().enumerate() {
        let at = |field: &str| format!("jobs[{j}].{field}");
        if !is_dns_label(&job.name) {
            return Err(invalid(
                at("name"),
                format!(
                    "`{}` is not a valid job name (lowercase letters, digits and '-', at most 63)",
                    job.name
                ),
            ));
        }
        if !names.insert(job.name.clone()) {
            return Err(invalid(
                at("name"),
                format!("a job named `{}` comes earlier", job.name),
            ));
        }
        if job.job_iterations == 0 {
            return Err(invalid(at("jobIterations"), "must be at least 1".into()));
        }
        if job.iterations_per_namespace == 0 {
            return Err(invalid(
                at("iterationsPerNamespace"),
                "must be at least 1".into(),
            ));
        }
        let qps = (job.qps > 0.0).then_some(job.qps);
        if qps.is_none() {
            warnings.push(format!(
                "job `{}`: qps is {} so its writes are not rate limited",
                job.name, job.qps
            ));
        }
        let burst = u32::try_from(job.burst.max(1)).unwrap_or(u32::MAX);
        if job.job_type == JobType::Create && job.objects.is_empty() {
            return Err(invalid(
                at("objects"),
                "a create job needs at least one object".into(),
            ));
        }
        let missing = if options.allow_missing || job.default_missing_keys_with_zero {
            MissingKey::Zero
        } else {
            MissingKey::Error
        };
        let mut objects = Vec::with_capacity(job.objects.len());
        for (o, object) in job.objects.iter().enumerate() {
            let at = |field: &str| format!("jobs[{j}].objects[{o}].{field}");
            if job.job_type != JobType::Create {
                if object.kind.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid(
                        at("kind"),
                        format!(
                            "a {:?} job selects objects by kind; it is missing",
                            job.job_type
                        )
                        .to_lowercase(),
                    ));
                }
                if object.label_selector.is_empty() {
                    return Err(invalid(
                        at("labelSelector"),
                        "must not be empty: it selects what the job works on".into(),
                    ));
                }
            }
            if job.job_type == JobType::Patch {
                const PATCH_TYPES: [&str; 4] = [
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ];
                match object.patch_type.as_deref() {
                    None => {
                        return Err(invalid(
                            at("patchType"),
                            "a patch job needs a patchType".into(),
                        ));
                    }
                    Some(t) if !PATCH_TYPES.contains(&t) => {
                        return Err(invalid(
                            at("patchType"),
                            format!("`{t}` is not one of {}", PATCH_TYPES.join(", ")),
                        ));
                    }
                    Some(_) => {}
                }
            }
            let replicas = u32::try_from(object.replicas.max(0)).unwrap_or(u32::MAX);
            if object.object_template.is_empty() {
                if job.job_type == JobType::Create || job.job_type == JobType::Patch {
                    return Err(invalid(at("objectTemplate"), "missing".into()));
                }
                objects.push(Object {
                    raw: object.clone(),
                    template: None,
                    replicas,
                });
                continue;
            }
            let (template_file, source) = if object.object_template.starts_with("http://")
                || object.object_template.starts_with("https://")
            {
                let url = &object.object_template;
                let source = fetch::fetch(url).map_err(|message| {
                    invalid(
                        at("objectTemplate"),
                        format!("cannot download {url}: {message}"),
                    )
                })?;
                (PathBuf::from(url), source)
            } else {
                let file = resolve_template(folder, &object.object_template).ok_or_else(|| {
                    invalid(
                        at("objectTemplate"),
                        format!(
                            "file {} not found (relative to the config file's folder {}, or to the working directory)",
                            object.object_template,
                            display_folder(folder)
                        ),
                    )
                })?;
                let source = read(&file)?;
                (file, source)
            };
            let syntax = object.template_syntax.map(|s| match s {
                raw::TemplateSyntax::Go => Syntax::Go,
                raw::TemplateSyntax::Handlebars => Syntax::Handlebars,
            });
            let template = Template::parse(
                &template_file.display().to_string(),
                &source,
                syntax,
                &library,
            )?;
            if object.replicas < 1 {
                warnings.push(format!(
                    "job `{}`: {} has replicas {}, so it is skipped",
                    job.name, object.object_template, object.replicas
                ));
            }
            objects.push(Object {
                raw: object.clone(),
                template: Some(ObjectTemplate {
                    file: template_file,
                    parsed: Arc::new(template),
                }),
                replicas,
            });
        }
        check_job_support(&job, &at).map_err(|(path, message)| invalid(path, message))?;
        job_warnings(&job, raw.global.wait_when_finished, &at, &mut warnings)
            .map_err(|(path, message)| invalid(path, message))?;
        let measurements = measurements::job_measurements(
            &raw.global.measurements,
            &job.measurements,
            &at,
            &mut warnings,
        )
        .map_err(|(path, message)| invalid(path, message))?;
        jobs.push(Job {
            raw: job,
            qps,
            burst,
            missing,
            objects,
            measurements,
            rendered: Value::Null,
        });
    }
    check_global_support(&raw.global, &mut warnings)
        .map_err(|(path, message)| invalid(path, message))?;
    let missing = if options.allow_missing {
        MissingKey::Zero
    } else {
        MissingKey::Error
    };
    let loaded = match &options.metrics_endpoints {
        Some(endpoint_file) => {
            let raw_endpoints = metrics::read_endpoint_file(endpoint_file)?;
            let endpoint_folder = endpoint_file.parent().unwrap_or(Path::new(""));
            metrics::load_endpoints(&raw_endpoints, endpoint_file, endpoint_folder, missing)?
        }
        None => metrics::load_endpoints(&raw.metrics_endpoints, file, folder, missing)?,
    };
    warnings.extend(loaded.warnings);
    Ok(Config {
        file: file.to_path_buf(),
        uuid: options.uuid.clone(),
        global: raw.global,
        jobs,
        metrics_endpoints: loaded.endpoints,
        warnings,
    })
}

/// A place in the config and what is wrong there.
type Problem = (String, String);

/// Refuses, before anything runs, what burner parses but cannot do yet: a config that
/// relies on it would otherwise measure something other than what its author meant.
fn check_job_support(job: &RawJob, at: &dyn Fn(&str) -> String) -> Result<(), Problem> {
    let not_supported = |field: &str, what: &str| {
        Err((
            at(field),
            format!("{what} not supported by burner yet (docs/config.md lists what is)"),
        ))
    };
    if !job.watchers.is_empty() {
        return not_supported("watchers", "watchers are");
    }
    if !job.hooks.is_empty() {
        return not_supported("hooks", "hooks are");
    }
    if job.incremental_load.is_some() {
        return not_supported("incrementalLoad", "incrementalLoad is");
    }
    if job.job_type == JobType::Kubevirt {
        return not_supported("jobType", "jobType kubevirt is");
    }
    if let Some(o) = job.objects.iter().position(|o| o.group.is_some()) {
        return not_supported(&format!("objects[{o}].group"), "grouped execution is");
    }
    for (o, object) in job.objects.iter().enumerate() {
        let paths = object
            .wait_options
            .iter()
            .flat_map(|w| &w.custom_status_paths);
        for (p, path) in paths.enumerate() {
            crate::jq::Filter::parse(&path.key).map_err(|message| {
                (
                    at(&format!(
                        "objects[{o}].waitOptions.customStatusPaths[{p}].key"
                    )),
                    format!("`{}`: {message}", path.key),
                )
            })?;
        }
    }
    if let Some(churn) = &job.churn_config {
        let enabled = churn.cycles > 0 || churn.duration.is_some();
        if enabled && job.job_type != JobType::Create {
            return Err((
                at("churnConfig"),
                "churn re-creates what a create job made; this job does not create".into(),
            ));
        }
        if churn.percent > 100 {
            return Err((
                at("churnConfig.percent"),
                format!("{} is not a percentage (0 to 100)", churn.percent),
            ));
        }
        if enabled && churn.mode == raw::ChurnMode::Namespaces && job.namespace.is_empty() {
            return Err((
                at("churnConfig.mode"),
                "churn mode namespaces needs the job to have a namespace; use mode objects".into(),
            ));
        }
    }
    Ok(())
}

/// Combinations that are allowed but do nothing, and combinations that cannot work.
fn job_warnings(
    job: &RawJob,
    global_wait: bool,
    at: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Result<(), Problem> {
    let name = &job.name;
    if job.gc && global_wait {
        return Err((
            at("gc"),
            "a job that removes its objects right after it cannot be waited for by global.waitWhenFinished".into(),
        ));
    }
    if let Some(churn) = &job.churn_config
        && churn.cycles == 0
        && churn.duration.is_none()
    {
        warnings.push(format!(
            "job `{name}`: churnConfig has neither cycles nor duration, so there is no churn"
        ));
    }
    if job.execution_mode.is_some() && job.job_type == JobType::Create {
        warnings.push(format!(
            "job `{name}`: executionMode applies to patch, delete and read jobs; a create job ignores it"
        ));
    }
    if job.metrics_aggregate || job.metrics_closing.is_some() {
        warnings.push(format!(
            "job `{name}`: metricsAggregate and metricsClosing are not supported yet; the job's metrics cover it from its start to its end"
        ));
    }
    Ok(())
}

fn check_global_support(global: &Global, warnings: &mut Vec<String>) -> Result<(), Problem> {
    if global.gc_metrics {
        warnings.push(
            "global.gcMetrics: the garbage collection's metrics are not read yet; gc runs and blocks as usual".into(),
        );
    }
    if global.deletion_strategy.as_deref() == Some("gvr") {
        warnings.push(
            "global.deletionStrategy gvr: burner deletes namespaces whole (the default strategy)"
                .into(),
        );
    }
    if let Some(strategy) = &global.deletion_strategy
        && strategy != "default"
        && strategy != "gvr"
    {
        return Err((
            "global.deletionStrategy".into(),
            format!("`{strategy}` is not a deletion strategy (default or gvr)"),
        ));
    }
    Ok(())
}

/// `global.functionTemplates`: files of `{{define}}`s that every Go object template can
/// call with `{{template "name" ...}}`.
fn function_templates(
    file: &Path,
    folder: &Path,
    global: &Global,
) -> Result<Vec<GoTemplate>, ConfigError> {
    global
        .function_templates
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let path = resolve_template(folder, name).ok_or_else(|| ConfigError::Invalid {
                file: file.to_path_buf(),
                path: format!("global.functionTemplates[{n}]"),
                message: format!(
                    "file {name} not found (relative to the config file's folder {}, or to the working directory)",
                    display_folder(folder)
                ),
            })?;
            let source = read(&path)?;
            Ok(GoTemplate::parse_library(&path.display().to_string(), &source)?)
        })
        .collect()
}

/// A template path, relative to the config's folder first, then to the working directory
/// (kube-burner resolves only the latter, which breaks configs run from elsewhere).
fn resolve_template(folder: &Path, template: &str) -> Option<PathBuf> {
    let path = Path::new(template);
    if path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    [folder.join(path), path.to_path_buf()]
        .into_iter()
        .find(|p| p.is_file())
}

fn display_folder(folder: &Path) -> String {
    if folder.as_os_str().is_empty() {
        "./".into()
    } else {
        format!("{}/", folder.display())
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in schema is what the types generate. To update it after changing the
    /// types: `BURNER_UPDATE_SCHEMA=1 cargo test --lib config::tests`.
    #[test]
    fn the_checked_in_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/config.schema.json");
        let generated = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
        if std::env::var_os("BURNER_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "schemas/config.schema.json is stale; run BURNER_UPDATE_SCHEMA=1 cargo test --lib config::tests"
        );
    }

    #[test]
    fn unknown_keys_get_the_nearest_known_key_as_a_hint() {
        assert_eq!(
            nearest_key("unknown field `jobIteration`, expected one of"),
            Some("jobIterations".into())
        );
        assert_eq!(
            nearest_key("unknown field `qsp`, expected"),
            Some("qps".into())
        );
        assert_eq!(
            nearest_key("unknown field `completelyDifferent`, expected"),
            None
        );
        assert_eq!(nearest_key("invalid u32"), None);
    }
}
