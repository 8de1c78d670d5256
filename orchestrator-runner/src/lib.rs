//! The runner as a library: claims tasks, runs an
//! [`AgentBackend`](orchestrator_core::AgentBackend) in an isolated git worktree per task,
//! streams its output, verifies its change and reports back through an
//! [`OrchestratorClient`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use orchestrator_runner::{HttpClient, Runner, Worktrees, backend::ClaudeCode};
//!
//! let client = HttpClient::new("http://127.0.0.1:3000", "runner-token")?;
//! let worktrees = Worktrees::new("/src/app", "/src/app/.orchestrator/worktrees");
//! Runner::builder(Arc::new(client), Arc::new(ClaudeCode::default()), worktrees)
//!     .build()
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

pub mod backend;
pub mod client;
pub mod http;
mod identity;
mod lease;
pub mod local;
pub mod logs;
pub mod process;
pub mod prompt;
pub mod runner;
pub mod spool;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worktree;

pub use client::{ClientError, OrchestratorClient, Refusal};
pub use http::{ConnectionToken, HttpClient, read_ca_certificates};
pub use identity::runner_identity;
pub use local::LocalClient;
pub use orchestrator_core::attempts::{AttemptCompletion, DiffStats, LockAnswer};
pub use orchestrator_core::backend::{
    AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest, PauseSignal,
};
pub use orchestrator_core::protocol::{AttemptRef, ClaimedTask, LogEntry, RunnerConnected};
pub use runner::{
    DEFAULT_MAX_PATCH_BYTES, RunMode, Runner, RunnerBuilder, RunnerConfig, RunnerControl,
    RunnerError, RunnerEvent,
};
pub use spool::Spool;
pub use worktree::{
    InUse, TaskWorktree, Workspace, WorktreeError, WorktreeState, Worktrees, repository_folder,
};
