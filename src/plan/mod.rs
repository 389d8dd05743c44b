//! Planning: expanding a checked config into the objects it creates, without a cluster.
//!
//! A create job runs `jobIterations` iterations; in each, every object template is
//! rendered once per replica (skipping `runOnce` objects after iteration 0, and iterations
//! that `repeatEveryNIterations` leaves out), and each rendered document is one object.
//! Objects without their own `metadata.namespace` go to the job's namespace for that
//! iteration. `burner check` walks this expansion to count and render everything; the
//! executor will walk the same expansion to create it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

mod yaml;

use crate::config::{Config, Job, JobType};
use crate::template::RenderOptions;
use crate::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "{template}, iteration {iteration}, replica {replica}: the rendered object is not valid YAML: {message}"
    )]
    Yaml {
        template: String,
        iteration: u32,
        replica: u32,
        message: String,
    },
    #[error("{template}, iteration {iteration}, replica {replica}, document {document}: {message}")]
    Object {
        template: String,
        iteration: u32,
        replica: u32,
        document: usize,
        message: String,
    },
}

/// One object a job would create.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedObject {
    pub iteration: u32,
    pub replica: u32,
    /// Which of the job's objects (its index in `objects`) and which document of it.
    pub object: usize,
    pub document: usize,
    /// The namespace it goes to: its own, or the job's for this iteration.
    pub namespace: Option<Arc<str>>,
    /// Whether the object names its own namespace rather than going to the job's.
    pub own_namespace: bool,
    pub api_version: Arc<str>,
    pub kind: Arc<str>,
    /// The rendered object as compact JSON: a run keeps every planned object until it
    /// ends, and a parsed value takes ten times the memory (6 KB for a small pod).
    json: Box<str>,
}

impl PlannedObject {
    /// A planned object of the first replica of iteration 0, from its manifest.
    pub fn from_manifest(manifest: &Value, namespace: Option<&str>) -> Self {
        let text = |key: &str| Arc::from(manifest[key].as_str().unwrap_or_default());
        let own = manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        Self {
            iteration: 0,
            replica: 1,
            object: 0,
            document: 0,
            namespace: own.or(namespace).map(Arc::from),
            own_namespace: own.is_some(),
            api_version: text("apiVersion"),
            kind: text("kind"),
            json: manifest.to_string().into_boxed_str(),
        }
    }

    /// The rendered object.
    pub fn manifest(&self) -> Value {
        serde_json::from_str(&self.json).expect("the JSON of a value parses")
    }
}

/// One shared copy of each of the few distinct strings a plan repeats.
#[derive(Default)]
struct Interned(HashMap<String, Arc<str>>);

impl Interned {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(text.to_string(), shared.clone());
        shared
    }
}

/// What a job amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    pub name: String,
    pub job_type: JobType,
    pub iterations: u32,
    pub objects: u64,
    /// Namespaces the job creates.
    pub namespaces: u64,
    /// API writes: every object and every namespace.
    pub writes: u64,
    /// The least time the writes take at the job's qps and burst; `None` when unlimited.
    pub minimum_duration: Option<Duration>,
}

/// Expands one create job, calling `visit` for each object in creation order.
pub fn expand_job(
    config: &Config,
    job: &Job,
    run_id: &str,
    mut visit: impl FnMut(&PlannedObject) -> Result<(), PlanError>,
) -> Result<JobPlan, PlanError> {
    let raw = &job.raw;
    let options = RenderOptions::new(job.missing, config.file.parent().map(|p| p.to_path_buf()));
    let mut objects = 0u64;
    let mut namespaces = BTreeSet::new();
    let mut interned = Interned::default();
    if job.job_type() == JobType::Create {
        for iteration in 0..raw.job_iterations {
            let job_namespace = job_namespace(job, iteration);
            let shared_namespace = job_namespace.as_deref().map(Arc::from);
            for (index, object) in job.objects.iter().enumerate() {
                // Validation gives every object of a create job a template.
                let Some(object_template) = &object.template else {
                    continue;
                };
                let repeat = object.raw.repeat_every_n_iterations.max(1);
                if (object.raw.run_once && iteration > 0) || iteration % repeat != 0 {
                    continue;
                }
                for replica in 1..=object.replicas {
                    let data = template_data(
                        config,
                        job,
                        iteration / repeat,
                        replica,
                        run_id,
                        &object.raw.input_vars,
                    );
                    let rendered = object_template.parsed.render(&data, &options)?;
                    let template = object_template.file.display().to_string();
                    let documents = match yaml::parse_documents(&rendered) {
                        Some(documents) => documents,
                        None => {
                            serde_saphyr::from_multiple(&rendered).map_err(|e| PlanError::Yaml {
                                template: template.clone(),
                                iteration,
                                replica,
                                message: e.without_snippet().to_string(),
                            })?
                        }
                    };
                    for (document, manifest) in documents
                        .into_iter()
                        .enumerate()
                        .filter(|(_, d)| !d.is_null())
                    {
                        check_manifest(&manifest).map_err(|message| PlanError::Object {
                            template: template.clone(),
                            iteration,
                            replica,
                            document,
                            message,
                        })?;
                        let own = manifest
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .map(|ns| interned.get(ns));
                        let own_namespace = own.is_some();
                        let namespace = own.or_else(|| shared_namespace.clone());
                        if let (Some(ns), false) = (&job_namespace, own_namespace) {
                            namespaces.insert(ns.clone());
                        }
                        objects += 1;
                        let text = |key: &str| manifest[key].as_str().unwrap_or_default();
                        visit(&PlannedObject {
                            iteration,
                            replica,
                            object: index,
                            document,
                            namespace,
                            own_namespace,
                            api_version: interned.get(text("apiVersion")),
                            kind: interned.get(text("kind")),
                            json: manifest.to_string().into_boxed_str(),
                        })?;
                    }
                }
            }
        }
    }
    let namespaces = namespaces.len() as u64;
    let writes = objects + namespaces;
    let minimum_duration = job.qps.map(|qps| {
        Duration::from_secs_f64(writes.saturating_sub(u64::from(job.burst)) as f64 / qps)
    });
    Ok(JobPlan {
        name: raw.name.clone(),
        job_type: job.job_type(),
        iterations: raw.job_iterations,
        objects,
        namespaces,
        writes,
        minimum_duration,
    })
}

/// The namespace of an iteration: `<namespace>-<iteration / iterationsPerNamespace>`, or
/// `<namespace>` when iterations share one; none when the job names no namespace.
pub fn job_namespace(job: &Job, iteration: u32) -> Option<String> {
    let raw = &job.raw;
    if raw.namespace.is_empty() {
        return None;
    }
    Some(if raw.namespaced_iterations {
        format!(
            "{}-{}",
            raw.namespace,
            iteration / raw.iterations_per_namespace.max(1)
        )
    } else {
        raw.namespace.clone()
    })
}

/// The data an object template sees: kube-burner's built-ins, then the object's inputVars
/// (which win on a clash, as in kube-burner).
fn template_data(
    config: &Config,
    job: &Job,
    iteration: u32,
    replica: u32,
    run_id: &str,
    input_vars: &Map<String, Value>,
) -> Value {
    let mut data = json!({
        "Iteration": iteration,
        "Replica": replica,
        "JobName": job.raw.name,
        "UUID": config.uuid,
        "RunID": run_id,
    });
    let map = data.as_object_mut().expect("an object literal");
    for (key, value) in input_vars {
        map.insert(key.clone(), value.clone());
    }
    data
}

fn check_manifest(manifest: &Value) -> Result<(), String> {
    let text = |pointer: &str| {
        manifest
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if !manifest.is_object() {
        return Err("is not a mapping (an object needs apiVersion, kind and metadata)".into());
    }
    if text("/apiVersion").is_none() {
        return Err("has no apiVersion".into());
    }
    if text("/kind").is_none() {
        return Err("has no kind".into());
    }
    if text("/metadata/name").is_none() && text("/metadata/generateName").is_none() {
        return Err("has neither metadata.name nor metadata.generateName".into());
    }
    Ok(())
}
