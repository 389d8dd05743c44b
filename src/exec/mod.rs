//! Execution: the only stage that talks to the cluster under test.
//!
//! For now it holds the API client construction every later stage shares; the job
//! engine's create, patch, delete and wait loops will live here too.

pub mod client;

pub use client::{ClientError, ClientOptions, connect};
