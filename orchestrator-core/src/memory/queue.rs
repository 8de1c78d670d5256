//! The in-memory store's [`QueueStore`]: claims and heartbeats.

use std::time::Duration;

use async_trait::async_trait;

use super::{InMemoryStore, State};
use crate::change::{self, LeaseRef, TaskAction};
use crate::coordination::{Claim, ClaimRequest, HeartbeatAck};
use crate::error::{Error, Result};
use crate::ids::{AgentId, TaskId};
use crate::model::{Task, TaskStatus};
use crate::state::agent::{self as agent_state, AgentEvent};
use crate::store::QueueStore;
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
}

#[async_trait]
impl QueueStore for InMemoryStore {
    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>> {
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

    async fn heartbeat(
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

    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>> {
        let state = self.state();
        let task_due = state
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Queued)
            .filter_map(|t| t.not_before);
        let lock_due = state.locks.values().map(|lock| lock.expires_at);
        let due = task_due.chain(lock_due).filter(|at| *at > now).min();
        Ok(due.map(|at| at.since(now)))
    }
}
