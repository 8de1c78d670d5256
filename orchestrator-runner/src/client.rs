//! How a runner talks to the orchestrator: the [`OrchestratorClient`] seam, with an HTTP
//! implementation in [`crate::http`].

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::{AttemptCompletion, LockAnswer};
use orchestrator_core::change::LeaseRef;
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::{FileLock, LogType, Task, TaskStatus};
use serde::{Deserialize, Serialize};

/// A task handed to one of the runner's agent slots.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub task: Task,
    pub agent: AssignedAgent,
    pub lease: LeaseRef,
    /// The locks taken on the task's files hint.
    #[serde(default)]
    pub locks: Vec<FileLock>,
}

/// The agent slot a task was given to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedAgent {
    pub id: AgentId,
}

/// Who holds an attempt: every report on it carries this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRef {
    pub agent_id: AgentId,
    pub lease: LeaseRef,
}

impl AttemptRef {
    pub fn task_id(&self) -> TaskId {
        self.lease.task_id
    }
}

impl From<&Assignment> for AttemptRef {
    fn from(assignment: &Assignment) -> Self {
        Self {
            agent_id: assignment.agent.id,
            lease: assignment.lease,
        }
    }
}

/// One log entry on its way to the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub log_type: LogType,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// Why a call to the orchestrator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The orchestrator answered with an error (its code and message).
    #[error("the orchestrator refused: {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// It could not be reached, or its answer could not be read.
    #[error("the orchestrator at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
}

impl ClientError {
    /// The attempt's lease is no longer valid: stop working on it.
    pub fn is_stale_lease(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                status: 409 | 404,
                ..
            }
        )
    }

    /// The runner's token was refused: reconnecting is the only fix.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// The orchestrator as a runner sees it.
#[async_trait]
pub trait OrchestratorClient: Send + Sync + Debug + 'static {
    /// Claims up to `max` tasks, waiting up to `wait` for work when none is claimable.
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
    ) -> Result<Vec<Assignment>, ClientError>;

    /// Extends the attempt's lease (optionally reporting where it has got to) and returns
    /// what the runner must do.
    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError>;

    /// Appends a batch of log entries to the attempt.
    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogLine]) -> Result<(), ClientError>;

    /// Locks `paths` the attempt changed beyond its locks, all or none.
    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError>;

    /// Ends the attempt with its evidence; sending the same completion again is harmless.
    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError>;
}
