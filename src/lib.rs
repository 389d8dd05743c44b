//! burner: a Kubernetes control-plane load generator and measurement tool.
//!
//! The library is organised by the stages data flows through (see `docs/architecture.md`):
//! a job config is rendered and planned, executed against the cluster under test, measured,
//! and written out as results. Beside that pipeline stand two programs that share the binary:
//! [`local`] runs a real control plane on 127.0.0.1 as the cluster under test, and [`hollow`]
//! simulates kubelets.
//!
//! Only [`cli`] prints for humans; everything else returns values and logs through `tracing`.
//!
//! # Driving burner from Rust
//!
//! [`run`] runs a config against a cluster as `burner init` does, writes the run directory,
//! and returns its summary as a typed value, so a test can assert on what it measured:
//!
//! ```no_run
//! use burner::config::{LoadOptions, load};
//! use burner::exec::{ClientOptions, connect};
//! use burner::results::summary::Family;
//!
//! # async fn pod_startup_stays_fast() -> Result<(), Box<dyn std::error::Error>> {
//! let client = connect(&ClientOptions::default()).await?;
//! let options = LoadOptions {
//!     uuid: "3f1c0e9a-7d2b-4e6f-8a91-0c5d2e7b4a10".into(),
//!     ..LoadOptions::default()
//! };
//! let config = load("workloads/kubelet-density/config.yml".as_ref(), &options)?;
//! let report = burner::run(&client, &config, &burner::RunSettings::default()).await?;
//!
//! let job = report.summary.job("kubelet-density").expect("the job ran");
//! let ready = job
//!     .pod_latency
//!     .as_ref()
//!     .and_then(|latency| latency.quantiles("Ready", Family::Watch))
//!     .expect("podLatency is on in this config");
//! assert!(ready.p99 < 5000.0, "pod startup P99 is {} ms", ready.p99);
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod config;
pub mod exec;
pub mod hollow;
pub mod jq;
pub mod local;
pub mod measure;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod results;
pub mod rng;
pub mod runner;
pub mod shutdown;
pub mod template;
pub mod watched;

pub use runner::{RunReport, RunSettings, run};
