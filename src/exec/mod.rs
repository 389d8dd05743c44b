//! Execution: the only stage that talks to the cluster under test.
//!
//! It holds the API client construction every stage shares, and the job runner
//! ([`run`]): namespaces and objects created through a rate gate, waits by watch,
//! verification and clean-up by uuid.

mod churn;
pub mod cleanup;
pub mod client;
pub mod labels;
mod preload;
mod ready;
pub mod run;
mod selected;
mod wait;

pub use client::{ClientError, ClientOptions, connect};
