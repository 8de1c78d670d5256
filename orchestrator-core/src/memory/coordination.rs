//! Claims, heartbeats and the supervisor's housekeeping for the in-memory store.

use std::time::Duration;

use super::{InMemoryStore, State};
use crate::change::{self, LeaseRef, TaskAction, TaskContext};
use crate::coordination::{Claim, ClaimRequest, HeartbeatAck, PruneReport, RetentionPolicy};
use crate::error::{Error, Result};
use crate::ids::{AgentId, TaskId};
use crate::model::{
    AgentStatus, ExceptionType, RunnerSession, RunnerSessionStatus, Task, TaskStatus,
};
use crate::state::agent::{self as agent_state, AgentEvent};
use crate::state::runner_session::RunnerSessionEvent;
use crate::time::Timestamp;

impl State {
    /// Assigns `task` to `agent` if nothing stands in the way, returning the claim.
    fn assign(
        &mut self,
        task: Task,
        agent: AgentId,
        request: &ClaimRequest,
        now: Timestamp,
    ) -> Result<Claim> {
        let action = TaskAction::Assign {
            agent_id: agent,
            runner_session_id: request.runner_session_id,
            lease_ttl: request.lease_ttl,
        };
        let context = self.task_context(task, &action, now)?;
        let change = change::plan_task_action(context, action, None, now)?;
        let assigned = change
            .task
            .clone()
            .ok_or_else(|| Error::backend("claim planned no task"))?;
        let locks = self.persist(change, now);
        let lease = LeaseRef {
            task_id: assigned.id,
            attempt: assigned.attempt,
            lease_token: assigned
                .lease_token
                .ok_or_else(|| Error::backend("claim left no lease"))?,
        };
        Ok(Claim {
            task: assigned,
            agent_id: agent,
            lease,
            locks,
        })
    }

    /// Ids of the QUEUED tasks that may be claimed now, in queue order, files hint aside.
    fn claimable(&self, now: Timestamp) -> Vec<TaskId> {
        let mut ready: Vec<(u8, Timestamp, TaskId)> = self
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Queued)
            .filter(|t| t.not_before.is_none_or(|at| at <= now))
            .filter(|t| {
                t.depends_on.iter().all(|d| {
                    self.tasks
                        .get(d)
                        .is_some_and(|d| d.status == TaskStatus::Completed)
                })
            })
            .map(|t| (t.priority, t.created_at, t.id))
            .collect();
        ready.sort_unstable();
        ready.into_iter().map(|(_, _, id)| id).collect()
    }

    fn context_for(
        &self,
        task: TaskId,
        action: &TaskAction,
        now: Timestamp,
    ) -> Result<TaskContext> {
        let task = self.task(task)?.clone();
        self.task_context(task, action, now)
    }
}

impl State {
    /// The task (the one with the smallest id) that FAILED or was CANCELLED and that `task`
    /// waits for, directly or through queued tasks in between.
    fn blocker_of(&self, task: &Task) -> Option<&Task> {
        let mut waiting_on: Vec<TaskId> = task.depends_on.clone();
        let mut seen = std::collections::HashSet::new();
        let mut blocker: Option<&Task> = None;
        while let Some(id) = waiting_on.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(dependency) = self.tasks.get(&id) else {
                continue;
            };
            match dependency.status {
                TaskStatus::Failed | TaskStatus::Cancelled
                    if blocker.is_none_or(|found| dependency.id < found.id) =>
                {
                    blocker = Some(dependency);
                }
                TaskStatus::Queued => waiting_on.extend(dependency.depends_on.iter().copied()),
                _ => {}
            }
        }
        blocker
    }
}

impl InMemoryStore {
    pub(super) fn claim_work(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>> {
        request.validate()?;
        let mut state = self.state();
        for agent in &request.agents {
            let slot = state.agent(*agent)?;
            agent_state::transition(slot.status, AgentEvent::Assign)?;
        }
        if let Some(task) = request.task_id {
            let task = state.task(task)?.clone();
            return Ok(vec![state.assign(
                task,
                request.agents[0],
                &request,
                now,
            )?]);
        }
        let mut claims = Vec::new();
        let mut agents = request.agents.iter();
        let Some(mut agent) = agents.next() else {
            return Ok(claims);
        };
        for id in state.claimable(now) {
            let task = state.task(id)?.clone();
            match state.assign(task, *agent, &request, now) {
                Ok(claim) => {
                    claims.push(claim);
                    match agents.next() {
                        Some(next) => agent = next,
                        None => break,
                    }
                }
                // Its files are locked by someone else: try the next task.
                Err(Error::Conflict(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(claims)
    }

    pub(super) fn heartbeat_lease(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        let mut state = self.state();
        let context = state.context_for(lease.task_id, &TaskAction::Start, now)?;
        let (change, ack) = change::plan_heartbeat(context, &lease, ttl, now)?;
        state.persist(change, now);
        Ok(ack)
    }

    pub(super) fn expire(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        let mut state = self.state();
        let mut due: Vec<&Task> = state
            .tasks
            .values()
            .filter(|t| t.status.is_running() && t.lease_expires_at.is_some_and(|at| at <= now))
            .collect();
        due.sort_by_key(|t| (t.lease_expires_at, t.id));
        let due: Vec<TaskId> = due.iter().take(limit as usize).map(|t| t.id).collect();
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            let context = state.context_for(id, &TaskAction::ExpireLease, now)?;
            let unresolved = state.open_exception(ExceptionType::AgentStuck, id).cloned();
            let change = change::plan_lease_expiry(context, unresolved, now)?;
            let task = change.task.clone();
            state.persist(change, now);
            expired.extend(task);
        }
        Ok(expired)
    }

    pub(super) fn inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>> {
        let mut state = self.state();
        let quiet: Vec<RunnerSession> = state
            .sessions
            .values()
            .filter(|s| s.status == RunnerSessionStatus::Active && s.last_seen_at < seen_before)
            .cloned()
            .collect();
        let mut marked = Vec::with_capacity(quiet.len());
        for session in quiet {
            let change =
                change::plan_runner_session_event(session, RunnerSessionEvent::MarkInactive, now)?;
            marked.extend(change.runner_session.clone());
            state.persist(change, now);
        }
        marked.sort_by_key(|s| s.id);
        Ok(marked)
    }

    pub(super) fn stalled(&self, quiet_since: Timestamp, now: Timestamp) -> Vec<Task> {
        let state = self.state();
        let mut stalled: Vec<Task> = state
            .tasks
            .values()
            .filter(|t| t.status.is_running() && t.lease_expires_at.is_some_and(|at| at > now))
            .filter(|t| {
                t.assigned_agent_id
                    .and_then(|a| state.agents.get(&a))
                    .filter(|a| a.status != AgentStatus::Paused)
                    .is_some_and(|a| a.last_activity_at.is_none_or(|at| at < quiet_since))
            })
            .cloned()
            .collect();
        stalled.sort_by_key(|t| t.id);
        stalled
    }

    pub(super) fn blocked(&self, limit: u32) -> Vec<(Task, TaskId, TaskStatus)> {
        let state = self.state();
        let mut blocked: Vec<(Task, TaskId, TaskStatus)> = state
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Queued)
            .filter(|t| {
                state
                    .open_exception(change::BLOCKED_TASK_EXCEPTION, t.id)
                    .is_none()
            })
            .filter_map(|t| {
                let blocker = state.blocker_of(t)?;
                Some((t.clone(), blocker.id, blocker.status))
            })
            .collect();
        blocked.sort_by_key(|(t, _, _)| (t.created_at, t.id));
        blocked.truncate(limit as usize);
        blocked
    }

    pub(super) fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> bool {
        let mut state = self.state();
        let free = state
            .leases
            .get(name)
            .is_none_or(|(current, expires)| current == holder || *expires <= now);
        if free {
            state
                .leases
                .insert(name.to_owned(), (holder.to_owned(), now.add(ttl)));
        }
        free
    }

    pub(super) fn prune_history(&self, policy: &RetentionPolicy, now: Timestamp) -> PruneReport {
        let mut state = self.state();
        let log_cutoff = now.sub(policy.log_max_age);
        let mut all: Vec<(Timestamp, crate::ids::AgentLogId)> = state
            .logs
            .values()
            .flatten()
            .map(|l| (l.created_at, l.id))
            .collect();
        all.sort_by_key(|entry| std::cmp::Reverse(*entry));
        let keep: std::collections::HashSet<_> = all
            .iter()
            .take(usize::try_from(policy.log_max_count).unwrap_or(usize::MAX))
            .map(|(_, id)| *id)
            .collect();
        let mut logs_deleted = 0;
        for logs in state.logs.values_mut() {
            let before = logs.len();
            logs.retain(|l| l.created_at >= log_cutoff && keep.contains(&l.id));
            logs_deleted += (before - logs.len()) as u64;
        }
        let event_cutoff = now.sub(policy.event_max_age);
        let before = state.events.len();
        let overflow =
            before.saturating_sub(usize::try_from(policy.event_max_count).unwrap_or(usize::MAX));
        let mut index = 0;
        state.events.retain(|e| {
            index += 1;
            index > overflow && e.created_at >= event_cutoff
        });
        PruneReport {
            logs_deleted,
            events_deleted: (before - state.events.len()) as u64,
        }
    }
}
