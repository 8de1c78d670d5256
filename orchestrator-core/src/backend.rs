//! The [`AgentBackend`] seam: whatever does the coding (Claude Code, a model API, any CLI).

use std::fmt::Debug;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{LogType, Usage};

/// What an agent is asked to do, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    /// The full prompt: task, constraints, previous failures.
    pub prompt: String,
    /// The isolated working tree the agent may change.
    pub work_dir: PathBuf,
    /// Paths the agent holds locks on and must stay inside.
    pub locked_paths: Vec<String>,
}

/// One thing the agent did or said, streamed while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    pub log_type: LogType,
    pub content: String,
    pub metadata: Option<serde_json::Value>,
}

/// Receives an agent's output as it happens. Must not block.
pub trait AgentOutputSink: Send + Sync {
    /// Takes one entry.
    fn emit(&self, output: AgentOutput);
}

/// How an agent run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    /// The agent itself reported success (not merely "the process exited 0").
    pub success: bool,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
}

impl AgentOutcome {
    /// The agent finished its work.
    pub fn succeeded(summary: Option<String>, usage: Usage) -> Self {
        Self {
            success: true,
            summary,
            error: None,
            usage,
        }
    }

    /// The agent did not finish its work, for the reason given.
    pub fn failed(error: impl Into<String>, usage: Usage) -> Self {
        Self {
            success: false,
            summary: None,
            error: Some(error.into()),
            usage,
        }
    }
}

/// Runs an agent on a request.
///
/// Contract: `run` returns when the agent has finished; a failed task is an `Ok` outcome
/// with `success: false`, and `Err` is for the backend being unable to run at all.
/// Dropping the future stops the agent and every process it started.
#[async_trait]
pub trait AgentBackend: Send + Sync + Debug + 'static {
    /// A short, stable name ("claude-code", "anthropic").
    fn name(&self) -> &str;

    /// Runs the agent to completion, streaming its output to `sink`.
    async fn run(&self, request: AgentRequest, sink: &dyn AgentOutputSink) -> Result<AgentOutcome>;
}
