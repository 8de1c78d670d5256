//! The [`Store`] trait: durable state of the orchestrator behind one seam.
//!
//! Implementations: [`InMemoryStore`](crate::memory::InMemoryStore) here (the reference),
//! and `SqliteStore` / `PostgresStore` in `orchestrator-store`. All three pass the same
//! conformance suite ([`crate::testing`]).
//!
//! # Contract
//!
//! * Every mutating method is atomic: all of its rows and its events are written, or none.
//! * Rules live in [`crate::change`]; a store loads, asks the matching `plan_*` function,
//!   and persists the result with each updated row guarded by its previous revision. A
//!   guard that fails (a concurrent writer won) is retried on fresh rows or reported as
//!   [`Error::Conflict`](crate::Error::Conflict); an update is never lost.
//! * Every state change appends [`Event`]s in the same transaction. Their `seq` numbers
//!   strictly increase, and an event never becomes visible with a number below one a
//!   reader has already seen, so `events_since` never skips an event.
//! * Errors: unknown ids are `NotFound`, rejected input is `InvalidInput` naming the
//!   field, an illegal transition is `InvalidTransition`, a stale lease or a clash with
//!   current state is `Conflict`. Nothing panics on bad input.
//! * `now` comes from the caller's [`Clock`](crate::Clock); stores do not read the time.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::change::{AgentAction, AttemptEnd, ExceptionDecision, LeaseRef, TaskAction};
use crate::coordination::{Claim, ClaimRequest, HeartbeatAck, PruneReport, RetentionPolicy};
use crate::error::Result;
use crate::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use crate::lock::LockManager;
use crate::model::{
    Agent, AgentActivityCounts, AgentQuery, Event, Exception, ExceptionQuery, LogPage, LogQuery,
    NewAgent, NewAgentLog, NewException, NewRunnerSession, NewTask, NewVerificationResult, Page,
    RunnerSession, SystemStats, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery,
    TaskStatus, VerificationResult,
};
use crate::state::runner_session::RunnerSessionEvent;
use crate::time::Timestamp;

/// Most log entries appended in one call (the runner protocol's batch size).
pub const MAX_LOG_BATCH: usize = 500;
/// Most events returned by one `events_since` call.
pub const MAX_EVENTS_PAGE: u32 = 1_000;
/// Most verification results returned by one call.
pub const MAX_VERIFICATION_PAGE: u32 = 50;

/// A created row, or the existing one an idempotency key pointed at.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T> {
    pub value: T,
    /// False when an earlier creation with the same idempotency key was returned.
    pub created: bool,
}

/// Most ids one lookup of several rows (`get_agents`, `task_activity_counts`) accepts.
pub const MAX_LOOKUP_IDS: usize = 1000;

/// Refuses a lookup of more than [`MAX_LOOKUP_IDS`] ids.
pub fn check_lookup_size<T>(ids: &[T]) -> Result<()> {
    if ids.len() > MAX_LOOKUP_IDS {
        return Err(crate::Error::invalid(
            "ids",
            format!("at most {MAX_LOOKUP_IDS} ids per lookup, got {}", ids.len()),
        ));
    }
    Ok(())
}

/// Refuses a token hash that is blank or longer than a hex SHA-512.
pub fn check_token_hash(hash: &str) -> Result<()> {
    if hash.trim().is_empty() || hash.len() > 128 {
        return Err(crate::Error::invalid(
            "tokenHash",
            "must be a token's digest (1 to 128 characters)",
        ));
    }
    Ok(())
}

/// Durable state of the orchestrator. See the module documentation for the contract.
/// Every store is also the [`LockManager`] of its data, so that claims take their locks in
/// the same transaction.
#[async_trait]
pub trait Store: LockManager {
    /// Checks that the backing database answers.
    async fn ping(&self) -> Result<()>;

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

    /// One task.
    async fn get_task(&self, id: TaskId) -> Result<Task>;

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

    /// Deletes a QUEUED or CANCELLED task with its logs, attempts, verification results
    /// and exceptions. Refused (`Conflict`) in other states or while tasks depend on it.
    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()>;

    /// A task's attempts, oldest first.
    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>>;

    /// Registers an IDLE agent slot. Its runner session, if named, must exist.
    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent>;

    /// The agents among `ids` that exist, in no particular order.
    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>>;

    /// Log entries, held locks and exceptions recorded about each agent of `ids` that
    /// exists (agents with none recorded may be left out).
    async fn agent_activity_counts(&self, ids: &[AgentId]) -> Result<Vec<AgentActivityCounts>>;

    /// One agent.
    async fn get_agent(&self, id: AgentId) -> Result<Agent>;

    /// A page of agents, newest first.
    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>>;

    /// Applies an action to an agent slot (pause, resume, recover, retire, fail).
    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent>;

    /// Creates an ACTIVE runner session. The token hash must be unique (`Conflict`).
    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession>;

    /// One runner session.
    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession>;

    /// The session whose token hashes to `token_hash`, revoked or not.
    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>>;

    /// The admin token hash a server saved at its first start, if any.
    async fn admin_token_hash(&self) -> Result<Option<String>>;

    /// Saves `hash` as the admin token hash unless one is saved already, and returns the
    /// saved one: servers starting together on one database all end up with the same.
    async fn save_admin_token_hash(&self, hash: &str, now: Timestamp) -> Result<String>;

    /// Keeps a setup token's hash until `expires_at`; it can be redeemed once.
    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;

    /// Spends a setup token: true exactly once for a hash that was created and has not
    /// expired by `now`; false for an unknown, spent or expired one.
    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool>;

    /// Every runner session, newest first.
    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>>;

    /// Applies a runner session event (seen, mark inactive, revoke).
    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession>;

    /// Appends 1 to [`MAX_LOG_BATCH`] entries in one insert, stamped with `now`, and bumps
    /// each agent's last activity. Every agent (and task, if named) must exist.
    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64>;

    /// Appends the entries a runner reports on a live attempt, like [`Store::append_logs`]
    /// but only while `lease` is live and only from the attempt's agent about its task; a
    /// stale lease is a `Conflict` that writes nothing.
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

    /// Opens an exception. While an unresolved exception of the same type exists for the
    /// same task, that one is returned with its occurrence count raised instead.
    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception>;

    /// One exception.
    async fn get_exception(&self, id: ExceptionId) -> Result<Exception>;

    /// A page of exceptions, most severe first, then newest, over the whole result.
    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>>;

    /// Applies a person's decision (acknowledge, resolve, dismiss, reopen).
    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception>;

    /// Counts of tasks, agents and exceptions; tasks finished at or after `since`.
    async fn stats(&self, since: Timestamp) -> Result<SystemStats>;

    /// The sequence number of the newest event (0 before any): where a reader that wants
    /// only what happens from now on starts.
    async fn last_event_seq(&self) -> Result<i64>;

    /// Events with `seq > after`, oldest first, at most `limit` (1 to [`MAX_EVENTS_PAGE`]).
    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>>;

    /// Fills idle agent slots with the next claimable tasks, atomically per slot: the task
    /// goes to ASSIGNED, a new attempt starts under a fresh lease, the slot is bound and the
    /// task's files hint is locked. Claimable means QUEUED, every dependency COMPLETED,
    /// `notBefore` passed and the files hint free; order is priority, creation time, id.
    /// Contention is never an error: fewer claims (or none) come back. With a specific
    /// `task_id`, that task is claimed or the reason it cannot be is the error.
    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>>;

    /// Extends the live attempt's lease and its locks to `now + ttl`; the answer tells the
    /// runner to continue, stop (cancellation) or pause. A stale lease is a `Conflict` that
    /// changes nothing.
    async fn heartbeat(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck>;

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

    /// How long until time alone may make work claimable, by the store's clock: the next
    /// queued task's `notBefore` passes or the next live lock runs out (`None` while
    /// neither waits for its time). When a waiting claim looks again without a commit.
    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>>;

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

    /// A number that grows whenever events may have been committed: after every commit
    /// here that records events or prunes history and, on PostgreSQL, when another process
    /// commits events. Waiters (long polls, event streams) wake on it instead of polling,
    /// then read `events_since`; readers may also use it as the generation of what they
    /// cached (every change to tasks, agents, logs, locks or exceptions records an event).
    fn subscribe(&self) -> watch::Receiver<i64>;
}
