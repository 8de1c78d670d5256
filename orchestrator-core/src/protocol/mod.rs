//! The runner protocol, once for every transport: a runner claims work into its agent
//! slots by long poll, keeps each attempt's lease with heartbeats, streams its log,
//! locks the paths its change needs, and ends the attempt with its evidence.
//!
//! [`RunnerProtocol`] carries each step out over a [`Store`] for a runner session that its
//! transport has authenticated; [`wire`] holds the messages. The HTTP routes
//! (`/api/runner/*`) translate requests into these calls, and the in-process client calls
//! them directly, so both transports behave alike by construction.

pub mod wire;

use std::time::Duration;

pub use wire::*;

use crate::attempts::{self, LockAnswer};
use crate::change;
use crate::coordination::{self, ClaimRequest, ClaimRoom, MAX_BATCH_CLAIM};
use crate::error::{Error, Result};
use crate::ids::AgentId;
use crate::lock::MAX_LOCK_PATHS;
use crate::model::{Agent, AgentStatus, NewAgentLog, RunnerSession, RunnerSessionStatus};
use crate::retry::RetryPolicy;
use crate::state::runner_session::RunnerSessionEvent;
use crate::store::{MAX_LOG_BATCH, Store, StoreExt};
use crate::time::Clock;

/// Longest a claim may wait for work.
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(30);
/// Lease length when the runner does not ask for one.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
/// Largest body of a log batch a server accepts (500 entries of up to 50,000 characters
/// need room); runners keep their batches well under it.
pub const MAX_LOG_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Largest body of a completion a server accepts: a patch at
/// [`MAX_PATCH_BYTES`](crate::model::MAX_PATCH_BYTES) grows up to six times when JSON
/// escapes every byte of it, and the file list and the verification result need room
/// beside it.
pub const MAX_COMPLETION_BYTES: usize = 8 * 1024 * 1024;
/// A session's last-seen time is written at most this often.
const SEEN_EVERY: Duration = Duration::from_secs(30);

/// The runner protocol over a store: each method is one step a runner session takes.
#[derive(Debug, Clone, Copy)]
pub struct RunnerProtocol<'a> {
    store: &'a dyn Store,
    clock: &'a dyn Clock,
    retry_policy: &'a RetryPolicy,
    waiting: &'a ClaimRoom,
}

impl<'a> RunnerProtocol<'a> {
    /// The protocol over `store`, on `clock`, following failed verifications up by
    /// `retry_policy`; claims wait for work in `waiting` (the process's room over `store`).
    pub fn new(
        store: &'a dyn Store,
        clock: &'a dyn Clock,
        retry_policy: &'a RetryPolicy,
        waiting: &'a ClaimRoom,
    ) -> Self {
        Self {
            store,
            clock,
            retry_policy,
            waiting,
        }
    }

    /// Records that the session called in (at most every 30 s, and at once when it was
    /// marked inactive); returns the session as it is now.
    pub async fn check_in(&self, session: RunnerSession) -> Result<RunnerSession> {
        let now = self.clock.now();
        let quiet_for = now.since(session.last_seen_at);
        if session.status == RunnerSessionStatus::Inactive || quiet_for >= SEEN_EVERY {
            return self
                .store
                .apply_runner_session_event(session.id, RunnerSessionEvent::Seen, now)
                .await;
        }
        Ok(session)
    }

    /// Keeps what the runner states about itself in the claim, if it differs from what
    /// its session holds; then fills up to `max` idle slots of the session with queued
    /// tasks, waiting up to `waitMs` for work when none is claimable now. Slots are made
    /// as needed, up to [`MAX_BATCH_CLAIM`]; a session whose every slot is busy is a
    /// `Conflict`.
    pub async fn claim(&self, session: &RunnerSession, request: ClaimWork) -> Result<Claimed> {
        let wait = Duration::from_millis(request.wait_ms.unwrap_or(0));
        if wait > MAX_CLAIM_WAIT {
            return Err(Error::invalid("waitMs", "at most 30000 (30 s)"));
        }
        let max = request.max.unwrap_or(1);
        if !(1..=MAX_BATCH_CLAIM).contains(&max) {
            return Err(Error::invalid("max", format!("1 to {MAX_BATCH_CLAIM}")));
        }
        // A claim of a named task takes that task alone.
        let max = if request.task_id.is_some() { 1 } else { max };
        let lease_ttl = request
            .lease_ttl_ms
            .map_or(DEFAULT_LEASE, Duration::from_millis);
        coordination::check_lease_ttl(lease_ttl).map_err(|err| match err {
            Error::InvalidInput { message, .. } => Error::invalid("leaseTtlMs", message),
            other => other,
        })?;
        if let Some(runner) = &request.runner
            && *runner != session.identity()
        {
            self.store
                .update_runner_identity(session.id, runner.clone(), self.clock.now())
                .await?;
        }
        // Concurrent claims of this session take different slots: each picks among those
        // the others have not reserved.
        let now = self.clock.now();
        let reserved = self
            .waiting
            .slots
            .reserve(session.id, |taken| async move {
                coordination::idle_slots(self.store, session, max, now, &taken).await
            })
            .await?;
        if reserved.slots.is_empty() && !reserved.others_claiming {
            return Err(Error::conflict(format!(
                "Every one of this runner's {MAX_BATCH_CLAIM} agent slots is busy; finish or stop work first"
            )));
        }
        let request_for_store = ClaimRequest {
            agents: reserved.slots.clone(),
            runner_session_id: Some(session.id),
            task_id: request.task_id,
            lease_ttl,
        };
        let claims = if reserved.slots.is_empty() {
            // Every free slot is being filled by this runner's other claims.
            Vec::new()
        } else {
            match self
                .waiting
                .claim_waiting(self.clock, request_for_store, wait)
                .await
            {
                // A slot was taken by a claim of another server process in between: this
                // claim takes nothing rather than failing.
                Err(Error::InvalidTransition(_)) if request.task_id.is_none() => Vec::new(),
                claimed => claimed?,
            }
        };
        drop(reserved);
        let claims: Vec<ClaimedTask> = claims.into_iter().map(ClaimedTask::from).collect();
        let first = claims.first();
        Ok(Claimed {
            task: first.map(|c| c.task.clone()),
            agent: first.map(|c| c.agent.clone()),
            lease: first.map(|c| c.lease),
            working_dir: request.working_dir,
            message: claims.is_empty().then(|| "No tasks available".to_owned()),
            claims,
        })
    }

    /// Reports where the attempt has got to (if it says) and extends its lease; the
    /// answer tells the runner to continue, stop or pause.
    pub async fn heartbeat(
        &self,
        session: &RunnerSession,
        report: HeartbeatReport,
    ) -> Result<HeartbeatAnswer> {
        self.own_slot(session, report.agent_id).await?;
        let lease = report.attempt_ref().lease;
        let ttl = report
            .lease_ttl_ms
            .map_or(DEFAULT_LEASE, Duration::from_millis);
        let now = self.clock.now();
        if let Some(status) = report.status {
            attempts::report_progress(self.store, lease, status, now).await?;
        }
        let ack = self.store.heartbeat(lease, ttl, now).await?;
        Ok(HeartbeatAnswer {
            success: true,
            timestamp: now,
            signal: ack.signal,
            lease_expires_at: ack.lease_expires_at,
        })
    }

    /// Appends 1 to [`MAX_LOG_BATCH`] entries to the attempt's log while its lease is live.
    pub async fn append_logs(
        &self,
        session: &RunnerSession,
        batch: LogBatch,
    ) -> Result<LogsReceived> {
        self.own_slot(session, batch.agent_id).await?;
        if batch.logs.is_empty() || batch.logs.len() > MAX_LOG_BATCH {
            return Err(Error::invalid(
                "logs",
                format!("send 1 to {MAX_LOG_BATCH} entries per batch"),
            ));
        }
        let attempt = batch.attempt_ref();
        let entries = batch
            .logs
            .into_iter()
            .map(|entry| NewAgentLog {
                agent_id: attempt.agent_id,
                task_id: Some(attempt.task_id()),
                log_type: entry.log_type,
                content: entry.content,
                metadata: with_runner_time(entry.metadata, entry.timestamp),
            })
            .collect();
        let received = self
            .store
            .append_attempt_logs(attempt.lease, entries, self.clock.now())
            .await?;
        Ok(LogsReceived {
            success: true,
            logs_received: received,
        })
    }

    /// Locks the paths the attempt changed beyond its locks, all or none, until its lease
    /// ends; paths held by another agent are answered as conflicts, and a
    /// CONFLICT_DETECTED exception names their holders for a human.
    pub async fn lock_paths(
        &self,
        session: &RunnerSession,
        request: ChangedPaths,
    ) -> Result<LockAnswer> {
        self.own_slot(session, request.agent_id).await?;
        if request.paths.is_empty() || request.paths.len() > MAX_LOCK_PATHS {
            return Err(Error::invalid(
                "paths",
                format!("send 1 to {MAX_LOCK_PATHS} paths"),
            ));
        }
        let attempt = request.attempt_ref();
        attempts::lock_changed_paths(
            self.store,
            attempt.agent_id,
            attempt.lease,
            request.paths,
            self.clock.now(),
        )
        .await
    }

    /// Ends the attempt with its evidence, in one transaction (see
    /// [`attempts::complete_attempt`]); sent again, it changes nothing and answers alike.
    pub async fn complete(
        &self,
        session: &RunnerSession,
        report: CompletionReport,
    ) -> Result<Completed> {
        self.own_slot(session, report.agent_id).await?;
        let attempt = report.attempt_ref();
        let task = attempts::complete_attempt(
            self.store,
            self.retry_policy,
            attempt.agent_id,
            attempt.lease,
            report.completion(),
            self.clock.now(),
        )
        .await?;
        let agent = self.store.get_agent(attempt.agent_id).await?;
        Ok(Completed {
            success: true,
            task_status: task.status,
            agent_status: agent.status,
        })
    }

    /// Sets one of the session's own slots to the status the runner reports (see
    /// [`change::slot_status_request`]).
    pub async fn set_slot_status(
        &self,
        session: &RunnerSession,
        agent_id: AgentId,
        status: AgentStatus,
    ) -> Result<SlotStatusSet> {
        let agent = self.own_slot(session, agent_id).await?;
        let agent = match change::slot_status_request(agent.status, status)? {
            Some(action) => {
                self.store
                    .apply_agent_action(agent_id, action, self.clock.now())
                    .await?
            }
            None => agent,
        };
        Ok(SlotStatusSet {
            success: true,
            agent_id,
            status: agent.status,
        })
    }

    /// The agent `id`, which must be a slot of `session` (`Forbidden` otherwise).
    async fn own_slot(&self, session: &RunnerSession, id: AgentId) -> Result<Agent> {
        let agent = self.store.get_agent(id).await?;
        if agent.runner_session_id != Some(session.id) {
            return Err(Error::Forbidden(
                "Agent does not belong to this runner session".into(),
            ));
        }
        Ok(agent)
    }
}

/// Metadata with the runner's own timestamp kept under `runnerTimestamp`.
fn with_runner_time(
    metadata: Option<serde_json::Value>,
    timestamp: Option<String>,
) -> Option<serde_json::Value> {
    let Some(timestamp) = timestamp else {
        return metadata;
    };
    match metadata {
        Some(serde_json::Value::Object(mut map)) => {
            map.insert("runnerTimestamp".into(), timestamp.into());
            Some(serde_json::Value::Object(map))
        }
        Some(other) => Some(serde_json::json!({ "value": other, "runnerTimestamp": timestamp })),
        None => Some(serde_json::json!({ "runnerTimestamp": timestamp })),
    }
}
