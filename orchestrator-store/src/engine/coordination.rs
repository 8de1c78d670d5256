//! Claims, heartbeats, lease expiry and the supervisor's housekeeping over SQL.

use std::time::Duration;

use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, LeaseRef, TaskAction, TaskContext};
use orchestrator_core::coordination::{
    Claim, ClaimRequest, HeartbeatAck, PruneReport, RetentionPolicy,
};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::parse_paths;
use orchestrator_core::model::{ExceptionType, LockMode, RunnerSession, Task, TaskStatus};
use orchestrator_core::state::agent::{self as agent_state, AgentEvent};
use orchestrator_core::state::runner_session::RunnerSessionEvent;

use super::{SqlStore, Tx, found, write_change};
use crate::dialect::Dialect;
use crate::error::SqlxResultExt;
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};
use crate::sql::write;

/// Candidates looked at per round of a claim, per slot to fill.
const CANDIDATES_PER_SLOT: u32 = 4;
/// Rounds of candidates a claim looks through before it settles for fewer tasks.
const MAX_CANDIDATE_ROUNDS: usize = 8;

/// Why a candidate was passed over.
enum Skip {
    /// Another claimer is taking overlapping paths right now.
    Contended,
    /// Its files hint is locked by someone else.
    Locked,
}

impl<D: Dialect> SqlStore<D> {
    /// Assigns `task` to `agent` inside `tx`, if its paths can be had; returns the claim
    /// and the last event sequence number written.
    async fn assign(
        tx: &mut Tx<D>,
        task: Task,
        agent: AgentId,
        request: &ClaimRequest,
        now: Timestamp,
        must_succeed: bool,
    ) -> Result<std::result::Result<(Claim, Option<i64>), Skip>> {
        let paths = parse_paths(&task.files_hint, "filesHint")?;
        let guards = sql_locks::guard_keys(&paths, LockMode::Exclusive);
        if !D::guard_lock_keys(tx, &guards, must_succeed).await? {
            return Ok(Err(Skip::Contended));
        }
        let lock_conflicts =
            sql_locks::conflicts::<D>(tx, &paths, LockMode::Exclusive, Some(agent), now).await?;
        if !lock_conflicts.is_empty() && !must_succeed {
            return Ok(Err(Skip::Locked));
        }
        let slot = found(
            read::agent::<D>(tx, agent, Lock::ForUpdate).await?,
            "agent",
            agent,
        )?;
        let unfinished_dependencies = if must_succeed {
            read::unfinished_dependencies::<D>(tx, task.id).await?
        } else {
            Vec::new()
        };
        let context = TaskContext {
            task,
            agent: Some(slot),
            attempt: None,
            unfinished_dependencies,
            lock_conflicts,
        };
        let action = TaskAction::Assign {
            agent_id: agent,
            runner_session_id: request.runner_session_id,
            lease_ttl: request.lease_ttl,
        };
        let change = change::plan_task_action(context, action, None, now)?;
        let (locks, seq) = write_change(tx, &change, now).await?;
        let assigned = change
            .task
            .ok_or_else(|| Error::backend("claim planned no task"))?;
        let lease = LeaseRef {
            task_id: assigned.id,
            attempt: assigned.attempt,
            lease_token: assigned
                .lease_token
                .ok_or_else(|| Error::backend("claim left no lease"))?,
        };
        let claim = Claim {
            task: assigned,
            agent_id: agent,
            lease,
            locks,
        };
        Ok(Ok((claim, seq)))
    }

    pub(super) async fn claim_work(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> Result<Vec<Claim>> {
        request.validate()?;
        let mut tx = self.begin().await?;
        let now = self.now(&mut tx, now).await?;
        for agent in &request.agents {
            let slot = found(
                read::agent::<D>(&mut tx, *agent, Lock::ForUpdate).await?,
                "agent",
                agent,
            )?;
            agent_state::transition(slot.status, AgentEvent::Assign)?;
        }
        if let Some(id) = request.task_id {
            let task = found(
                read::task::<D>(&mut tx, id, Lock::ForUpdate).await?,
                "task",
                id,
            )?;
            let assigned =
                Self::assign(&mut tx, task, request.agents[0], &request, now, true).await?;
            let Ok((claim, seq)) = assigned else {
                return Err(Error::conflict(format!(
                    "task {id} is being claimed by someone else; try again"
                )));
            };
            self.commit(tx, seq).await?;
            return Ok(vec![claim]);
        }

        let mut claims = Vec::new();
        let mut last_seq = None;
        let mut slots = request.agents.iter().copied().peekable();
        let mut after: Option<Task> = None;
        let per_round = CANDIDATES_PER_SLOT * request.agents.len() as u32;
        for _ in 0..MAX_CANDIDATE_ROUNDS {
            let candidates = read::claimable::<D>(&mut tx, now, after.as_ref(), per_round).await?;
            let exhausted = candidates.len() < per_round as usize;
            for task in candidates {
                let Some(agent) = slots.peek().copied() else {
                    break;
                };
                after = Some(task.clone());
                if let Ok((claim, seq)) =
                    Self::assign(&mut tx, task, agent, &request, now, false).await?
                {
                    claims.push(claim);
                    last_seq = last_seq.max(seq);
                    slots.next();
                }
            }
            if exhausted || slots.peek().is_none() {
                break;
            }
        }
        self.commit(tx, last_seq).await?;
        Ok(claims)
    }

    pub(super) async fn heartbeat_lease(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        let mut tx = self.begin().await?;
        let now = self.now(&mut tx, now).await?;
        let id = lease.task_id;
        let task = found(
            read::task::<D>(&mut tx, id, Lock::ForUpdate).await?,
            "task",
            id,
        )?;
        let context = super::task_context::<D>(&mut tx, task, &TaskAction::Start, now).await?;
        let (change, ack) = change::plan_heartbeat(context, &lease, ttl, now)?;
        self.persist(tx, &change, now).await?;
        Ok(ack)
    }

    pub(super) async fn expire(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let due = read::expired_leases::<D>(&mut conn, now, limit).await?;
        drop(conn);
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            let mut tx = self.begin().await?;
            let Some(task) = read::task::<D>(&mut tx, id, Lock::ForUpdate).await? else {
                continue;
            };
            if !task.status.is_running() || task.lease_expires_at.is_none_or(|at| at > now) {
                // Renewed or finished since it was listed.
                continue;
            }
            let context =
                super::task_context::<D>(&mut tx, task, &TaskAction::ExpireLease, now).await?;
            let unresolved =
                read::unresolved_exception::<D>(&mut tx, ExceptionType::AgentStuck, id).await?;
            let change = change::plan_lease_expiry(context, unresolved, now)?;
            let task = change.task.clone();
            self.persist(tx, &change, now).await?;
            expired.extend(task);
        }
        Ok(expired)
    }

    pub(super) async fn inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>> {
        let quiet = read::quiet_runners::<D>(&mut *self.read().await?, seen_before).await?;
        let mut marked = Vec::with_capacity(quiet.len());
        for id in quiet {
            let mut tx = self.begin().await?;
            let now = self.now(&mut tx, now).await?;
            let Some(session) = read::runner_session::<D>(&mut tx, id, Lock::ForUpdate).await?
            else {
                continue;
            };
            if session.last_seen_at >= seen_before {
                continue;
            }
            let change =
                change::plan_runner_session_event(session, RunnerSessionEvent::MarkInactive, now)?;
            marked.extend(change.runner_session.clone());
            self.persist(tx, &change, now).await?;
        }
        Ok(marked)
    }

    pub(super) async fn stalled(
        &self,
        quiet_since: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        read::stalled::<D>(&mut conn, quiet_since, now).await
    }

    pub(super) async fn blocked(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
        read::blocked::<D>(&mut *self.read().await?, limit).await
    }

    pub(super) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let now = self.now(&mut tx, now).await?;
        let taken = write::take_named_lease::<D>(&mut tx, name, holder, now.add(ttl), now).await?;
        tx.commit().await.db()?;
        Ok(taken)
    }

    pub(super) async fn prune_history(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<PruneReport> {
        let mut tx = self.begin().await?;
        let now = self.now(&mut tx, now).await?;
        let logs_deleted = write::prune_table::<D>(
            &mut tx,
            "agent_logs",
            now.sub(policy.log_max_age),
            policy.log_max_count,
            "created_at, id",
            "created_at DESC, id DESC",
        )
        .await?;
        let events_deleted = write::prune_table::<D>(
            &mut tx,
            "events",
            now.sub(policy.event_max_age),
            policy.event_max_count,
            "seq",
            "seq DESC",
        )
        .await?;
        tx.commit().await.db()?;
        Ok(PruneReport {
            logs_deleted,
            events_deleted,
        })
    }
}
