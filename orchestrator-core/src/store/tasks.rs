//! [`TaskStore`]: the tasks of the queue, their edits, lifecycle actions and attempts.

use std::fmt::Debug;

use async_trait::async_trait;

use super::Created;
use crate::change::{AttemptEnd, LateEvidence, LeaseRef, TaskAction};
use crate::error::Result;
use crate::ids::TaskId;
use crate::model::{
    NewTask, Page, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery, UsageQuery,
    UsageSummary,
};
use crate::time::Timestamp;

/// Tasks: creation, lookups, lists, edits, lifecycle actions, attempts and deletion.
#[async_trait]
pub trait TaskStore: Send + Sync + Debug + 'static {
    /// Creates a QUEUED task. With an idempotency key already used, returns that task
    /// (`created: false`) and writes nothing. Every dependency must exist.
    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>>;

    /// Creates 1 to [`MAX_BATCH_SIZE`](crate::model::MAX_BATCH_SIZE) tasks in one
    /// transaction: all of them, or none when any is invalid (the error names its index).
    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>>;

    /// The tasks among `ids` that exist, in no particular order.
    async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<Task>>;

    /// Verification results, log entries and exceptions recorded about each task of
    /// `ids` that exists (tasks with none recorded may be left out).
    async fn task_activity_counts(&self, ids: &[TaskId]) -> Result<Vec<TaskActivityCounts>>;

    /// A filtered, sorted page of tasks. Ties are broken by creation time, then id.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>>;

    /// Changes a task's editable fields; refused (`Conflict`) while an attempt runs.
    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task>;

    /// Applies a lifecycle action (see [`crate::change::plan_task_action`]) with all of its
    /// effects on the attempt and the agent slot. Runner actions need `lease`.
    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task>;

    /// Ends the attempt `lease` names as [`crate::change::plan_attempt_end`] decides: its
    /// outcome, its verification result, its closing log entries and a failure's
    /// follow-up, in one transaction. The same end reported again changes nothing.
    async fn end_attempt(&self, lease: LeaseRef, end: AttemptEnd, now: Timestamp) -> Result<Task>;

    /// Keeps the evidence of a completion that came after `lease` was lost on the attempt
    /// it names, as [`crate::change::plan_late_evidence`] decides; the task is not
    /// changed. Returns the attempt.
    async fn keep_late_evidence(
        &self,
        lease: LeaseRef,
        evidence: LateEvidence,
        now: Timestamp,
    ) -> Result<TaskAttempt>;

    /// Deletes a QUEUED or CANCELLED task with its logs, attempts, verification results
    /// and exceptions. Refused (`Conflict`) in other states or while tasks depend on it.
    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()>;

    /// A task's attempts, oldest first.
    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>>;

    /// What the attempts started in the window `query` names used, summed in all and per
    /// day (UTC), runner session, backend and model, and task (see [`UsageSummary`]), each
    /// grouping read in one query. `InvalidInput` for a window that is empty or longer
    /// than [`MAX_USAGE_DAYS`](crate::model::MAX_USAGE_DAYS), or a task count out of range.
    async fn usage_summary(&self, query: &UsageQuery) -> Result<UsageSummary>;

    /// The tasks that wait for `task` (name it in their dependencies), by id.
    async fn dependents(&self, task: TaskId) -> Result<Vec<TaskId>>;
}
