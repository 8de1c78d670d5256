//! [`EvidenceStore`]: what attempts leave behind, their log entries, verification
//! results and changes.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::change::LeaseRef;
use crate::error::Result;
use crate::ids::TaskId;
use crate::model::{
    AttemptChanges, LogPage, LogQuery, NewAgentLog, NewVerificationResult, VerificationResult,
};
use crate::time::Timestamp;

/// Most log entries appended in one call (the runner protocol's batch size).
pub const MAX_LOG_BATCH: usize = 500;
/// Most verification results returned by one call.
pub const MAX_VERIFICATION_PAGE: u32 = 50;

/// Agent log entries, verification results and the changes of attempts.
#[async_trait]
pub trait EvidenceStore: Send + Sync + Debug + 'static {
    /// Appends 1 to [`MAX_LOG_BATCH`] entries in one insert, stamped with `now`, and bumps
    /// each agent's last activity. Every agent (and task, if named) must exist.
    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64>;

    /// Appends the entries a runner reports on a live attempt, like
    /// [`EvidenceStore::append_logs`] but only while `lease` is live and only from the
    /// attempt's agent about its task; a stale lease is a `Conflict` that writes nothing.
    async fn append_attempt_logs(
        &self,
        lease: LeaseRef,
        logs: Vec<NewAgentLog>,
        now: Timestamp,
    ) -> Result<u64>;

    /// A page of log entries (an agent's, a task's, or both), newest first, keyed by `(createdAt, id)`.
    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage>;

    /// Records a verification run of a task (numbered after the previous ones) and sets
    /// its verification status. A runner reports with its attempt's `lease`: only while it
    /// is live; a stale lease is a `Conflict` that writes nothing.
    async fn record_verification(
        &self,
        task: TaskId,
        lease: Option<LeaseRef>,
        result: NewVerificationResult,
        now: Timestamp,
    ) -> Result<VerificationResult>;

    /// A task's latest verification results, newest attempt first (1 to
    /// [`MAX_VERIFICATION_PAGE`]).
    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>>;

    /// The changes of a task's attempts, oldest attempt first: those whose runner reported
    /// them when it ended the attempt (see [`crate::change::AttemptEnd::changes`]), kept
    /// until the task is deleted. `NotFound` for an unknown task.
    async fn attempt_changes(&self, task: TaskId) -> Result<Vec<AttemptChanges>>;
}
