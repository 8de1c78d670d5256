//! The in-memory store's [`HousekeepingStore`]: the supervisor's passes, health and
//! counts.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use super::{InMemoryStore, State};
use crate::change::{self, TaskAction};
use crate::coordination::{PruneReport, RetentionPolicy};
use crate::error::Result;
use crate::ids::{AgentLogId, TaskId};
use crate::model::{
    Activity, AgentStatus, AttemptSpan, COMPLETION_SAMPLE, ExceptionStatus, ExceptionType,
    QueueStay, RunnerSession, RunnerSessionStatus, SystemStats, Task, TaskStatus,
};
use crate::state::runner_session::RunnerSessionEvent;
use crate::store::HousekeepingStore;
use crate::time::Timestamp;

impl State {
    /// The task (the one with the smallest id) that FAILED or was CANCELLED and that `task`
    /// waits for, directly or through queued tasks in between.
    fn blocker_of(&self, task: &Task) -> Option<&Task> {
        let mut waiting_on: Vec<TaskId> = task.depends_on.clone();
        let mut seen = HashSet::new();
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

#[async_trait]
impl HousekeepingStore for InMemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn activity(&self, now: Timestamp, hours: u32) -> Result<Activity> {
        Activity::check_hours(hours)?;
        let state = self.state();
        let mut stays = Vec::new();
        let mut spans = Vec::new();
        for task in state.tasks.values() {
            let attempts = state
                .attempts
                .get(&task.id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let first_start = attempts.iter().map(|a| a.started_at).min();
            stays.extend(QueueStay::of_task(
                task.created_at,
                task.status == TaskStatus::Queued,
                first_start,
                task.updated_at,
            ));
            spans.extend(attempts.iter().map(|attempt| {
                AttemptSpan {
                    started: attempt.started_at,
                    ended: attempt.ended_at,
                    outcome: attempt.outcome,
                    waited_ms: (attempt.attempt_number == 1)
                        .then(|| attempt.started_at.as_millis() - task.created_at.as_millis()),
                }
            }));
        }
        Ok(Activity::tally(now, hours, &stays, &spans))
    }

    async fn stats(&self, since: Timestamp) -> Result<SystemStats> {
        let state = self.state();
        let mut stats = SystemStats::default();
        for task in state.tasks.values() {
            *stats.tasks_by_status.entry(task.status).or_default() += 1;
            match task.status {
                TaskStatus::Completed if task.completed_at.is_some_and(|at| at >= since) => {
                    stats.completed_since += 1;
                }
                TaskStatus::Failed if task.updated_at >= since => stats.failed_since += 1,
                _ => {}
            }
        }
        for agent in state.agents.values() {
            *stats.agents_by_status.entry(agent.status).or_default() += 1;
        }
        for exception in state.exceptions.values() {
            stats.exceptions_total += 1;
            if exception.status == ExceptionStatus::Open {
                *stats
                    .open_exceptions_by_severity
                    .entry(exception.severity)
                    .or_default() += 1;
            }
        }
        let mut finished: Vec<(Timestamp, Timestamp)> = state
            .tasks
            .values()
            .filter(|task| task.status == TaskStatus::Completed)
            .filter_map(|task| Some((task.completed_at?, task.assigned_at?)))
            .collect();
        finished.sort_by_key(|(completed, _)| std::cmp::Reverse(*completed));
        let durations: Vec<i64> = finished
            .iter()
            .take(COMPLETION_SAMPLE as usize)
            .map(|(completed, assigned)| completed.as_millis() - assigned.as_millis())
            .collect();
        stats.mean_completion_ms = SystemStats::mean(&durations);
        Ok(stats)
    }

    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
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

    async fn mark_inactive_runners(
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

    async fn stalled_tasks(&self, quiet_since: Timestamp, now: Timestamp) -> Result<Vec<Task>> {
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
        Ok(stalled)
    }

    async fn blocked_tasks(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
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
        Ok(blocked)
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool> {
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
        Ok(free)
    }

    async fn prune(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<PruneReport> {
        let mut state = self.state();
        let log_cutoff = now.sub(policy.log_max_age);
        let mut all: Vec<(Timestamp, AgentLogId)> = state
            .logs
            .values()
            .flatten()
            .map(|l| (l.created_at, l.id))
            .collect();
        all.sort_by_key(|entry| std::cmp::Reverse(*entry));
        let keep: HashSet<_> = all
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
        Ok(PruneReport {
            logs_deleted,
            events_deleted: (before - state.events.len()) as u64,
        })
    }
}
