//! burner: a Kubernetes control-plane load generator and measurement tool.
//!
//! The library is organised by the stages data flows through (see `docs/architecture.md`):
//! a job config is rendered and planned, executed against the cluster under test, measured,
//! and written out as results. Beside that pipeline stand two programs that share the binary:
//! [`local`] runs a real control plane on 127.0.0.1 as the cluster under test, and [`hollow`]
//! simulates kubelets.
//!
//! Only [`cli`] prints for humans; everything else returns values and logs through `tracing`.

pub mod cli;
pub mod config;
pub mod exec;
pub mod hollow;
pub mod jq;
pub mod local;
pub mod measure;
pub mod plan;
pub mod progress;
pub mod results;
pub mod rng;
pub mod runner;
pub mod shutdown;
pub mod template;

pub use runner::{RunReport, RunSettings, run};
