use serde::{Deserialize, Serialize};

use super::{MAX_BACKEND_CHARS, MAX_MODEL_CHARS, check_name};
use crate::error::{Error, Result};
use crate::ids::{AgentId, AttemptId, LeaseToken, RunnerSessionId, TaskId};
use crate::model::AttemptOutcome;
use crate::time::Timestamp;

/// One try at a task by one agent, under a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskAttempt {
    pub id: AttemptId,
    pub task_id: TaskId,
    /// 1 for the first attempt; matches `Task::attempt` while it runs.
    pub attempt_number: u32,
    pub agent_id: AgentId,
    pub runner_session_id: Option<RunnerSessionId>,
    /// The lease secret; never serialized.
    #[serde(skip)]
    pub lease_token: Option<LeaseToken>,
    pub lease_expires_at: Timestamp,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub outcome: AttemptOutcome,
    pub failure_reason: Option<String>,
    pub commit_sha: Option<String>,
    pub usage: Usage,
    /// The agent backend that ran the attempt, as its runner reported it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::BackendName>))]
    pub backend: Option<String>,
    /// The model the agent ran on, when its runner knew it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::ModelName>))]
    pub model: Option<String>,
}

/// Checks what a runner reports ran an attempt: the name of the agent backend and the
/// model, each not blank and within its length.
pub(crate) fn check_backend_and_model(backend: Option<&str>, model: Option<&str>) -> Result<()> {
    if let Some(backend) = backend {
        check_name("backend", backend, MAX_BACKEND_CHARS)?;
    }
    if let Some(model) = model {
        check_name("model", model, MAX_MODEL_CHARS)?;
    }
    Ok(())
}

/// Model usage of an attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Cost in US dollars.
    #[serde(default)]
    pub cost_usd: f64,
}

impl std::ops::AddAssign for Usage {
    /// Adds another call's tokens and cost.
    fn add_assign(&mut self, other: Self) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.cost_usd += other.cost_usd;
    }
}

impl Usage {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Rejects a negative or non-finite cost.
    pub fn validate(&self) -> Result<()> {
        if !self.cost_usd.is_finite() || self.cost_usd < 0.0 {
            return Err(Error::invalid(
                "usage.costUsd",
                "must be a non-negative number of dollars",
            ));
        }
        Ok(())
    }
}
