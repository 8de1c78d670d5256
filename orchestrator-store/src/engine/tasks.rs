//! The SQL stores' [`TaskStore`].

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, AttemptEnd, LateEvidence, LeaseRef, TaskAction};
use orchestrator_core::error::Result;
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::parse_paths;
use orchestrator_core::model::{
    NewTask, Page, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery, UsageQuery,
    UsageSummary,
};
use orchestrator_core::store::{Created, TaskStore, check_lookup_size};

use super::{SqlStore, Tx, existing_task, found, locked_task, planned, retry_on_race};
use crate::dialect::Dialect;
use crate::sql::hidden;
use crate::sql::read;
use crate::sql::write;

async fn check_dependencies<D: Dialect>(
    tx: &mut Tx<D>,
    dependencies: &[TaskId],
    field_prefix: &str,
) -> Result<()> {
    if let Some(id) = read::missing::<D, _>(tx, "tasks", dependencies)
        .await?
        .first()
    {
        return Err(change::missing_dependency(
            &format!("{field_prefix}dependsOn"),
            *id,
        ));
    }
    Ok(())
}

/// Adds `new` to `tx`'s batch unless its idempotency key names an existing task.
async fn insert_new_task<D: Dialect>(
    tx: &mut Tx<D>,
    new: NewTask,
    id: TaskId,
    now: Timestamp,
) -> Result<Created<Task>> {
    if let Some(key) = &new.idempotency_key
        && let Some((existing, fingerprint)) = read::task_by_idempotency_key::<D>(tx, key).await?
    {
        new.check_repeat(fingerprint.as_deref())?;
        return Ok(Created {
            value: existing,
            created: false,
        });
    }
    let fingerprint = new.idempotency_key.is_some().then(|| new.fingerprint());
    let task = new.into_task(id, now);
    let paths = parse_paths(&task.files_hint, "filesHint")?;
    let in_the_way = hidden::lock_in_the_way::<D>(tx, &paths, now).await?;
    write::insert_task(tx.batch(), &task, in_the_way, fingerprint)?;
    write::append_events(tx.batch(), &[change::task_created_event(&task)], now);
    Ok(Created {
        value: task,
        created: true,
    })
}

/// Queued tasks given their path rows in one transaction at open.
const PATH_BACKFILL_BATCH: u32 = 500;

impl<D: Dialect> SqlStore<D> {
    /// Gives every queued task with a files hint its path rows (migration 0008) if it has
    /// none: tasks queued before the database kept them. Claims find such a task's
    /// conflicts without them too, only slower.
    pub(super) async fn record_missing_task_paths(&self) -> Result<()> {
        loop {
            let missing =
                read::queued_tasks_without_paths::<D>(&mut self.read().await?, PATH_BACKFILL_BATCH)
                    .await?;
            if missing.is_empty() {
                return Ok(());
            }
            let (mut tx, _) = Tx::begin(self.writer.acquire().await?, "", false).await?;
            for task in &missing {
                write::replace_task_paths(tx.batch(), task)?;
            }
            tx.commit().await?;
            if (missing.len() as u32) < PATH_BACKFILL_BATCH {
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl<D: Dialect> TaskStore for SqlStore<D> {
    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>> {
        new.validate()?;
        retry_on_race(|| async {
            let (mut tx, now) = self.begin_at(now).await?;
            check_dependencies(&mut tx, &new.depends_on, "").await?;
            let created = insert_new_task(&mut tx, new.clone(), TaskId::new(), now).await?;
            if created.created {
                self.commit(tx).await?;
            }
            Ok(created)
        })
        .await
    }

    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>> {
        change::validate_task_batch(&batch)?;
        retry_on_race(|| async {
            let (mut tx, now) = self.begin_at(now).await?;
            for (index, new) in batch.iter().enumerate() {
                check_dependencies(&mut tx, &new.depends_on, &format!("tasks[{index}].")).await?;
            }
            let mut tasks = Vec::with_capacity(batch.len());
            for (new, id) in batch
                .iter()
                .cloned()
                .zip(change::batch_task_ids(batch.len()))
            {
                tasks.push(insert_new_task(&mut tx, new, id, now).await?.value);
            }
            self.commit(tx).await?;
            Ok(tasks)
        })
        .await
    }

    async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<Task>> {
        check_lookup_size(ids)?;
        read::tasks_by_id::<D>(&mut self.read().await?, ids).await
    }

    async fn task_activity_counts(&self, ids: &[TaskId]) -> Result<Vec<TaskActivityCounts>> {
        check_lookup_size(ids)?;
        read::task_activity_counts::<D>(&mut self.read().await?, ids).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        query.validate()?;
        read::tasks::<D>(&mut self.read().await?, query).await
    }

    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task> {
        edit.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let before = locked_task(&mut tx, id).await?;
        if let Some(dependencies) = &edit.depends_on {
            check_dependencies(&mut tx, dependencies, "").await?;
            if read::waits_for::<D>(&mut tx, dependencies, id).await? {
                return Err(change::circular_wait(id));
            }
        }
        let (files_hint, depends_on) = (before.files_hint.clone(), before.depends_on.clone());
        let (mut tx, change) = tx.check(change::plan_task_edit(before, edit, now)).await?;
        let task = planned(change.task.clone(), "task")?;
        if task.files_hint != files_hint && !change.noop {
            write::replace_task_paths(tx.batch(), &task)?;
        }
        if task.depends_on != depends_on && !change.noop {
            write::replace_task_dependencies(tx.batch(), &task);
        }
        self.persist(tx, &change, now).await?;
        Ok(task)
    }

    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task> {
        self.change_task(id, &action, None, now, |context, _, now| {
            let change = change::plan_task_action(context, action.clone(), lease.as_ref(), now)?;
            let task = planned(change.task.clone(), "task")?;
            Ok((change, task))
        })
        .await
    }

    async fn end_attempt(&self, lease: LeaseRef, end: AttemptEnd, now: Timestamp) -> Result<Task> {
        end.validate()?;
        let exception = end.follow_up_exception();
        let run = || {
            self.change_task(
                lease.task_id,
                &end.action,
                exception,
                now,
                |context, unresolved, now| {
                    let change =
                        change::plan_attempt_end(context, end.clone(), unresolved, &lease, now)?;
                    let task = planned(change.task.clone(), "task")?;
                    Ok((change, task))
                },
            )
        };
        match exception {
            // Raising the exception while another writer raises the same fails on the
            // unique index; the second run counts the winner's instead.
            Some(_) => retry_on_race(run).await,
            None => run().await,
        }
    }

    async fn keep_late_evidence(
        &self,
        lease: LeaseRef,
        evidence: LateEvidence,
        now: Timestamp,
    ) -> Result<TaskAttempt> {
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, lease.task_id).await?;
        let attempt = found(
            read::attempt::<D>(&mut tx, lease.task_id, lease.attempt).await?,
            "attempt",
            lease.attempt,
        )?;
        let (tx, change) = tx
            .check(change::plan_late_evidence(
                &task, attempt, evidence, &lease, now,
            ))
            .await?;
        let kept = planned(change.attempt.clone(), "attempt")?;
        self.persist(tx, &change, now).await?;
        Ok(kept)
    }

    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()> {
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, id).await?;
        let dependents = read::dependents::<D>(&mut tx, id).await?;
        let (mut tx, event) = tx
            .check(change::check_deletable(&task, &dependents))
            .await?;
        write::delete_task(tx.batch(), id);
        write::append_events(tx.batch(), &[event], now);
        self.commit(tx).await
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        let mut conn = self.read().await?;
        existing_task::<D>(&mut conn, task).await?;
        read::attempts::<D>(&mut conn, task).await
    }

    async fn usage_summary(&self, query: &UsageQuery) -> Result<UsageSummary> {
        query.validate()?;
        read::usage_summary::<D>(&mut self.read().await?, query).await
    }

    async fn dependents(&self, task: TaskId) -> Result<Vec<TaskId>> {
        read::dependents::<D>(&mut self.read().await?, task).await
    }
}
