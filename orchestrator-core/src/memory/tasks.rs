//! The in-memory store's [`TaskStore`].

use std::collections::HashMap;

use async_trait::async_trait;

use super::{InMemoryStore, State, existing, ordering, page};
use crate::change::{self, AttemptEnd, LateEvidence, LeaseRef, TaskAction};
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{
    NewTask, Page, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery, UsageQuery,
    UsageSummary,
};
use crate::store::{Created, TaskStore, check_lookup_size};
use crate::time::Timestamp;

impl State {
    /// The tasks that name `task` in their dependencies, by id.
    fn dependents(&self, task: TaskId) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.depends_on.contains(&task))
            .map(|t| t.id)
            .collect();
        ids.sort();
        ids
    }

    /// Refuses dependencies that do not all exist, naming them `field`.
    fn check_dependencies(&self, dependencies: &[TaskId], field: &str) -> Result<()> {
        for dependency in dependencies {
            if !self.tasks.contains_key(dependency) {
                return Err(change::missing_dependency(field, *dependency));
            }
        }
        Ok(())
    }

    /// Whether any of `tasks` waits for `task`, directly or through the tasks it waits for.
    fn waits_for(&self, tasks: &[TaskId], task: TaskId) -> bool {
        let mut seen: std::collections::HashSet<TaskId> = std::collections::HashSet::new();
        let mut next: Vec<TaskId> = tasks.to_vec();
        while let Some(id) = next.pop() {
            let Some(waiter) = self.tasks.get(&id) else {
                continue;
            };
            for dependency in &waiter.depends_on {
                if *dependency == task {
                    return true;
                }
                if seen.insert(*dependency) {
                    next.push(*dependency);
                }
            }
        }
        false
    }

    /// The task an earlier creation with `new`'s idempotency key made, if any; a conflict
    /// if that creation asked for something else.
    fn existing_by_key(&self, new: &NewTask) -> Result<Option<Task>> {
        let Some((id, fingerprint)) = new
            .idempotency_key
            .as_ref()
            .and_then(|key| self.idempotency_keys.get(key))
        else {
            return Ok(None);
        };
        new.check_repeat(Some(fingerprint))?;
        Ok(self.tasks.get(id).cloned())
    }

    fn insert_task(&mut self, new: NewTask, id: TaskId, now: Timestamp) -> Task {
        let new_fingerprint = new.fingerprint();
        let task = new.into_task(id, now);
        if let Some(key) = &task.idempotency_key {
            self.idempotency_keys
                .insert(key.clone(), (task.id, new_fingerprint.clone()));
        }
        self.tasks.insert(task.id, task.clone());
        self.append_events(vec![change::task_created_event(&task)], now);
        task
    }
}

#[async_trait]
impl TaskStore for InMemoryStore {
    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>> {
        new.validate()?;
        let mut state = self.state();
        if let Some(existing) = state.existing_by_key(&new)? {
            return Ok(Created {
                value: existing,
                created: false,
            });
        }
        state.check_dependencies(&new.depends_on, "dependsOn")?;
        Ok(Created {
            value: state.insert_task(new, TaskId::new(), now),
            created: true,
        })
    }

    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>> {
        change::validate_task_batch(&batch)?;
        let mut state = self.state();
        for (index, new) in batch.iter().enumerate() {
            state.check_dependencies(&new.depends_on, &format!("tasks[{index}].dependsOn"))?;
        }
        // Every repeat is checked before anything is written: a batch is all or nothing.
        let existing = batch
            .iter()
            .map(|new| state.existing_by_key(new))
            .collect::<Result<Vec<_>>>()?;
        let ids = change::batch_task_ids(batch.len());
        Ok(batch
            .into_iter()
            .zip(ids)
            .zip(existing)
            .map(|((new, id), existing)| match existing {
                Some(existing) => existing,
                None => state.insert_task(new, id, now),
            })
            .collect())
    }

    async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<Task>> {
        check_lookup_size(ids)?;
        Ok(existing(&self.state().tasks, ids))
    }

    async fn task_activity_counts(&self, ids: &[TaskId]) -> Result<Vec<TaskActivityCounts>> {
        check_lookup_size(ids)?;
        let state = self.state();
        let mut counts: HashMap<TaskId, TaskActivityCounts> = ids
            .iter()
            .filter(|id| state.tasks.contains_key(id))
            .map(|id| (*id, TaskActivityCounts::none(*id)))
            .collect();
        for (task, results) in &state.verifications {
            if let Some(entry) = counts.get_mut(task) {
                entry.verification_results = results.len() as u64;
            }
        }
        for log in state.logs.values().flatten() {
            if let Some(entry) = log.task_id.and_then(|task| counts.get_mut(&task)) {
                entry.logs += 1;
            }
        }
        for exception in state.exceptions.values() {
            if let Some(entry) = exception.task_id.and_then(|task| counts.get_mut(&task)) {
                entry.exceptions += 1;
            }
        }
        Ok(counts.into_values().collect())
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        query.validate()?;
        let state = self.state();
        let needle = query.search_needle();
        let mut tasks: Vec<Task> = state
            .tasks
            .values()
            .filter(|t| query.status.is_none_or(|s| t.status == s))
            .filter(|t| query.priority.is_none_or(|p| t.priority == p))
            .filter(|t| query.id_prefix.as_ref().is_none_or(|p| p.matches(t.id)))
            .filter(|t| {
                needle
                    .as_deref()
                    .is_none_or(|n| ordering::matches_search(t, n))
            })
            .cloned()
            .collect();
        tasks.sort_by(|a, b| query.sort_by.compare(a, b, query.sort_order));
        if let Some(cursor) = &query.after {
            let total_count = tasks.len() as u64;
            tasks.retain(|t| cursor.precedes(t, query.sort_by, query.sort_order));
            return Ok(Page {
                total_count,
                ..page(tasks, query.limit, query.offset)
            });
        }
        Ok(page(tasks, query.limit, query.offset))
    }

    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task> {
        let mut state = self.state();
        let task = state.task(id)?.clone();
        if let Some(dependencies) = &edit.depends_on {
            state.check_dependencies(dependencies, "dependsOn")?;
            if state.waits_for(dependencies, id) {
                return Err(change::circular_wait(id));
            }
        }
        let change = change::plan_task_edit(task, edit, now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("edit planned no task"))
    }

    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task> {
        let mut state = self.state();
        let context = state.context_for(id, &action, now)?;
        let change = change::plan_task_action(context, action, lease.as_ref(), now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("task action planned no task"))
    }

    async fn end_attempt(&self, lease: LeaseRef, end: AttemptEnd, now: Timestamp) -> Result<Task> {
        end.validate()?;
        let mut state = self.state();
        let task = state.task(lease.task_id)?.clone();
        let unresolved = end
            .follow_up_exception()
            .and_then(|kind| state.open_exception(kind, task.id).cloned());
        let context = state.task_context(task, &end.action, now)?;
        let change = change::plan_attempt_end(context, end, unresolved, &lease, now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("an attempt's end planned no task"))
    }

    async fn keep_late_evidence(
        &self,
        lease: LeaseRef,
        evidence: LateEvidence,
        now: Timestamp,
    ) -> Result<TaskAttempt> {
        let mut state = self.state();
        let task = state.task(lease.task_id)?.clone();
        let attempt = state
            .attempts
            .get(&task.id)
            .and_then(|attempts| {
                attempts
                    .iter()
                    .find(|a| a.attempt_number == lease.attempt)
                    .cloned()
            })
            .ok_or_else(|| Error::not_found("attempt", lease.attempt))?;
        let change = change::plan_late_evidence(&task, attempt, evidence, &lease, now)?;
        let kept = change.attempt.clone();
        state.persist(change, now);
        kept.ok_or_else(|| Error::backend("late evidence planned no attempt"))
    }

    async fn dependents(&self, task: TaskId) -> Result<Vec<TaskId>> {
        Ok(self.state().dependents(task))
    }

    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()> {
        let mut state = self.state();
        let task = state.task(id)?.clone();
        let dependents = state.dependents(id);
        let event = change::check_deletable(&task, &dependents)?;
        state.tasks.remove(&id);
        if let Some(key) = &task.idempotency_key {
            state.idempotency_keys.remove(key);
        }
        state.attempts.remove(&id);
        state.verifications.remove(&id);
        state.attempt_changes.remove(&id);
        state.exceptions.retain(|_, e| e.task_id != Some(id));
        for logs in state.logs.values_mut() {
            logs.retain(|log| log.task_id != Some(id));
        }
        state.append_events(vec![event], now);
        Ok(())
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        let state = self.state();
        state.task(task)?;
        let mut attempts = state.attempts.get(&task).cloned().unwrap_or_default();
        attempts.sort_by_key(|a| a.attempt_number);
        Ok(attempts)
    }

    async fn usage_summary(&self, query: &UsageQuery) -> Result<UsageSummary> {
        query.validate()?;
        Ok(self.state().usage_summary(query))
    }
}
