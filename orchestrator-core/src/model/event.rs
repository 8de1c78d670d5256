use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use crate::time::Timestamp;

wire_enum!(
    /// What an [`Event`] records. Spelled `entity.change` on the wire (and as SSE event names).
    EventKind, "kind" {
        /// A task was created.
        TaskCreated = "task.created",
        /// A task's editable fields changed.
        TaskUpdated = "task.updated",
        /// A task changed status (the payload has `from`, `to` and the event).
        TaskStatusChanged = "task.status_changed",
        /// A person asked to cancel a running task.
        TaskCancelRequested = "task.cancel_requested",
        /// A task was deleted.
        TaskDeleted = "task.deleted",
        /// An attempt's lease was extended.
        LeaseRenewed = "attempt.lease_renewed",
        /// An agent slot was registered.
        AgentCreated = "agent.created",
        /// An agent changed status.
        AgentStatusChanged = "agent.status_changed",
        /// A runner session was created.
        RunnerConnected = "runner.connected",
        /// A runner session changed status.
        RunnerStatusChanged = "runner.status_changed",
        /// A runner stated a host name, version or agent backends other than before (the
        /// payload has the new ones).
        RunnerUpdated = "runner.updated",
        /// Agent log entries were appended (the payload has the count).
        LogsAppended = "logs.appended",
        /// A verification result was recorded.
        VerificationRecorded = "verification.recorded",
        /// An exception was opened (or an open one recurred).
        ExceptionOpened = "exception.opened",
        /// An exception changed status.
        ExceptionStatusChanged = "exception.status_changed",
        /// A file lock was granted.
        LockAcquired = "lock.acquired",
        /// A file lock was released, expired or taken away.
        LockReleased = "lock.released",
        /// A holder's file locks were extended (the payload has the count and the new
        /// expiry).
        LockRenewed = "lock.renewed",
    }
);

/// An entry of the append-only event log, numbered by a strictly increasing sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: i64,
    pub kind: EventKind,
    pub task_id: Option<TaskId>,
    pub agent_id: Option<AgentId>,
    pub runner_session_id: Option<RunnerSessionId>,
    pub exception_id: Option<ExceptionId>,
    /// Small JSON details (the new status, a count, a path).
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// An event before the store numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub task_id: Option<TaskId>,
    pub agent_id: Option<AgentId>,
    pub runner_session_id: Option<RunnerSessionId>,
    pub exception_id: Option<ExceptionId>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` with no entity references and an empty payload.
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            task_id: None,
            agent_id: None,
            runner_session_id: None,
            exception_id: None,
            payload: serde_json::Value::Null,
        }
    }

    /// Names the task concerned.
    pub fn task(mut self, id: TaskId) -> Self {
        self.task_id = Some(id);
        self
    }

    /// Names the agent concerned, if any.
    pub fn agent(mut self, id: Option<AgentId>) -> Self {
        self.agent_id = id;
        self
    }

    /// Names the runner session concerned, if any.
    pub fn runner_session(mut self, id: Option<RunnerSessionId>) -> Self {
        self.runner_session_id = id;
        self
    }

    /// Names the exception concerned.
    pub fn exception(mut self, id: ExceptionId) -> Self {
        self.exception_id = Some(id);
        self
    }

    /// Attaches details.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }

    /// The stored event, numbered `seq` at `now`.
    pub fn into_event(self, seq: i64, now: Timestamp) -> Event {
        Event {
            seq,
            kind: self.kind,
            task_id: self.task_id,
            agent_id: self.agent_id,
            runner_session_id: self.runner_session_id,
            exception_id: self.exception_id,
            payload: self.payload,
            created_at: now,
        }
    }
}
