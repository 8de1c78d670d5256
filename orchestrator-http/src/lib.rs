//! The orchestrator's HTTP face: the REST API compatible with the original, the runner
//! protocol, and Server-Sent Events, built on the services of `orchestrator-core`.
//!
//! The crate's handlers depend only on the core's `Store` and `LockManager` seams, so any
//! backend `orchestrator-store` provides (or an embedder's own) can serve the API.

pub use orchestrator_core as core;
