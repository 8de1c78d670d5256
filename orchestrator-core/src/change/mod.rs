//! What an operation writes, decided in one place for every store.
//!
//! A store loads the rows an operation concerns into a context ([`TaskContext`], an
//! [`Agent`], an [`Exception`], a [`RunnerSession`]), calls the matching `plan_*` function
//! here, and persists the resulting [`Change`] in one transaction: rows are written with a
//! guard on their previous `revision`, and the events are appended to the log. The rules —
//! which transition, which fields, which side effects — therefore exist once, not once per
//! backend.

use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::ids::VerificationResultId;
use crate::ids::{AgentId, AttemptId, LeaseToken, RunnerSessionId, TaskId};
use crate::lock::LockConflict;
use crate::model::{
    Agent, AgentLog, AgentStatus, AttemptChanges, AttemptOutcome, EventKind, Exception,
    ExceptionStatus, NewAgentLog, NewEvent, NewVerificationResult, RunnerIdentity, RunnerSession,
    RunnerSessionStatus, Task, TaskAttempt, TaskEdit, TaskStatus, Usage, VerificationResult,
    VerificationStatus,
};
use crate::model::{FileLock, LockMode};
use crate::state::agent::{self as agent_state, AgentEvent};
use crate::state::exception::{self as exception_state, ExceptionEvent};
use crate::state::runner_session::{self as runner_state, RunnerSessionEvent};
use crate::state::task::{self as task_state, TaskEvent};
use crate::time::Timestamp;

mod activity;
mod attempt_end;
mod exception;
mod requests;
mod task;

pub use activity::*;
pub use attempt_end::*;
pub use exception::*;
pub use requests::*;
pub use task::*;

/// The rows one operation writes. Updated rows carry their new `revision`; a store writes
/// them only if the stored revision is the one before it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub task: Option<Task>,
    pub agent: Option<Agent>,
    /// Inserted if its id is new, else updated.
    pub attempt: Option<TaskAttempt>,
    pub exception: Option<Exception>,
    pub runner_session: Option<RunnerSession>,
    pub verification: Option<VerificationResult>,
    /// The changes an ending attempt reported, inserted.
    pub attempt_changes: Option<AttemptChanges>,
    /// Log entries appended.
    pub logs: Vec<AgentLog>,
    /// Locks granted; the store assigns their fencing tokens.
    pub lock_grants: Vec<FileLock>,
    /// Release every lock held for this task.
    pub release_task_locks: Option<TaskId>,
    /// Extend every lock held for this task to the given instant.
    pub renew_task_locks: Option<(TaskId, Timestamp)>,
    pub events: Vec<NewEvent>,
    /// Nothing is written: the operation found its effect already in place (a repeated
    /// report, an edit to the same values). The rows above are reported as they are.
    pub noop: bool,
}

/// Proof of holding a task attempt: every runner mutation presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LeaseRef {
    pub task_id: TaskId,
    pub attempt: u32,
    pub lease_token: LeaseToken,
}

impl Change {
    /// A change that writes nothing and reports `task` as it is.
    fn default_with_task(task: Task) -> Self {
        Self {
            task: Some(task),
            noop: true,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests;
