//! The runner as a library: claims tasks, runs an
//! [`AgentBackend`](orchestrator_core::AgentBackend) in an isolated git worktree, streams
//! its output, verifies its change and reports back through an orchestrator client.

pub use orchestrator_core::backend::{AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest};
