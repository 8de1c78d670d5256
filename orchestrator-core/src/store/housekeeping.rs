//! [`HousekeepingStore`]: what the supervisor does on its passes, and the system's
//! health and counts.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::coordination::{PruneReport, RetentionPolicy};
use crate::error::Result;
use crate::ids::TaskId;
use crate::model::{Activity, RunnerSession, SystemStats, Task, TaskStatus};
use crate::time::Timestamp;

/// Reaping expired leases, finding quiet runners and stuck work, taking turns between
/// server processes, pruning history; the database's health and the system's counts.
#[async_trait]
pub trait HousekeepingStore: Send + Sync + Debug + 'static {
    /// Checks that the backing database answers.
    async fn ping(&self) -> Result<()>;

    /// Counts of tasks, agents and exceptions; tasks finished at or after `since`.
    async fn stats(&self, since: Timestamp) -> Result<SystemStats>;

    /// The activity of the `hours` hours (1 to [`MAX_ACTIVITY_HOURS`]) that end with the
    /// one holding `now`: arrivals, attempt starts and ends, queue waits, queue depth.
    ///
    /// [`MAX_ACTIVITY_HOURS`]: crate::model::MAX_ACTIVITY_HOURS
    async fn activity(&self, now: Timestamp, hours: u32) -> Result<Activity>;

    /// Ends up to `limit` attempts whose lease ran out by `now`: the slot goes STUCK and
    /// lets go of the task, its locks are released, an AGENT_STUCK exception is raised, and
    /// the task returns to the queue (FAILED once its attempts are used up) — each in one
    /// transaction. Returns the tasks as they are afterwards.
    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>>;

    /// Marks ACTIVE runner sessions not seen since `seen_before` as INACTIVE.
    async fn mark_inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>>;

    /// Running tasks (live lease) whose agent has logged nothing since `quiet_since`.
    async fn stalled_tasks(&self, quiet_since: Timestamp, now: Timestamp) -> Result<Vec<Task>>;

    /// Up to `limit` QUEUED tasks that wait, directly or through other queued tasks, for a
    /// task that FAILED or was CANCELLED, with that task (the one with the smallest id when
    /// there are several) and its status, oldest first; tasks already reported (an
    /// unresolved [`BLOCKED_TASK_EXCEPTION`](crate::change::BLOCKED_TASK_EXCEPTION) on the
    /// task) are left out, so that every blocked task is reported in turn.
    async fn blocked_tasks(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>>;

    /// Takes the named lease for `holder` until `now + ttl` if it is free, expired or
    /// already `holder`'s. Several server processes use it to take turns.
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool>;

    /// Deletes agent logs and events beyond the retention policy.
    async fn prune(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<PruneReport>;
}
