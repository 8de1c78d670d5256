//! How a change to one task is made: the rows it starts from, read (and locked) in one
//! round trip, the plan, and the write; where reads lock rows, a first try without locks.

use orchestrator_core::Timestamp;
use orchestrator_core::change::{Change, TaskAction, TaskContext};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::parse_paths;
use orchestrator_core::model::{Exception, ExceptionType, LockMode};

use super::{ClockSource, SqlStore, Tx, found, planned};
use crate::dialect::Dialect;
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};

/// The rows a task action on task `id` starts from, locked; `None` if there is no such
/// task. The task, its agent and its latest attempt are read together (one script on
/// SQLite, one statement on PostgreSQL).
pub(super) async fn task_context<D: Dialect>(
    tx: &mut Tx<D>,
    id: TaskId,
    action: &TaskAction,
    now: Timestamp,
) -> Result<Option<TaskContext>> {
    let assignee = match action {
        TaskAction::Assign { agent_id, .. } => Some(*agent_id),
        _ => None,
    };
    let read::TaskRows {
        task,
        agent,
        attempt,
        ..
    } = read::task_with_agent_and_attempt::<D>(tx, id, assignee, Lock::ForUpdate).await?;
    let Some(task) = task else {
        return Ok(None);
    };
    let (unfinished_dependencies, lock_conflicts) = match assignee {
        Some(agent_id) => {
            found(agent.as_ref(), "agent", agent_id)?;
            let paths = parse_paths(&task.files_hint, "filesHint")?;
            let guards = sql_locks::guard_keys(&paths);
            D::guard_lock_keys(tx, &guards, true).await?;
            let conflicts =
                sql_locks::conflicts::<D>(tx, &paths, LockMode::Exclusive, Some(agent_id), now)
                    .await?;
            (
                read::unfinished_dependencies::<D>(tx, task.id).await?,
                conflicts,
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Some(TaskContext {
        task,
        agent,
        attempt,
        unfinished_dependencies,
        lock_conflicts,
    }))
}

impl<D: Dialect> SqlStore<D> {
    /// A change to task `id` and its agent where reads lock rows (PostgreSQL), tried
    /// first for task actions other than claims and for heartbeats: the task's rows and the
    /// clock are read without locks, `plan` decides, and the change is written as one
    /// guarded statement that commits by itself — two round trips instead of four. A row
    /// changed between the read and the write fails the guarded statement whole; on that,
    /// or on any other refusal, returns `None`: the caller runs the operation again in a
    /// transaction that locks the rows, which decides. An unreachable database is the
    /// caller's error instead, as the write may have committed before its reply was lost.
    pub(super) async fn write_unlocked<T>(
        &self,
        id: TaskId,
        now: Timestamp,
        plan: impl FnOnce(TaskContext, Timestamp) -> Result<(Change, T)>,
    ) -> Result<Option<T>> {
        match self.try_write_unlocked(id, now, plan).await {
            Ok(outcome) => Ok(Some(outcome)),
            Err(err @ Error::Unavailable(_)) => Err(err),
            Err(_) => Ok(None),
        }
    }

    async fn try_write_unlocked<T>(
        &self,
        id: TaskId,
        now: Timestamp,
        plan: impl FnOnce(TaskContext, Timestamp) -> Result<(Change, T)>,
    ) -> Result<T> {
        let mut tx = Tx::implicit(self.writer.acquire().await?);
        let rows = read::task_with_agent_and_attempt::<D>(&mut tx, id, None, Lock::None).await?;
        let now = match self.clock {
            ClockSource::Caller => now,
            ClockSource::Database => planned(rows.clock, "database clock")?,
        };
        let context = TaskContext {
            task: found(rows.task, "task", id)?,
            agent: rows.agent,
            attempt: rows.attempt,
            unfinished_dependencies: Vec::new(),
            lock_conflicts: Vec::new(),
        };
        let (change, outcome) = plan(context, now)?;
        self.persist(tx, &change, now).await?;
        Ok(outcome)
    }

    /// Plans a change to task `id` from its rows as `action` needs them, and writes it.
    /// With `exception`, `plan` also gets the task's unresolved exception of that type,
    /// read under the transaction's locks. Where reads lock rows, an attempt without locks
    /// comes first (see [`Self::write_unlocked`]) for changes that need no exception;
    /// claims always lock.
    pub(super) async fn change_task<T>(
        &self,
        id: TaskId,
        action: &TaskAction,
        exception: Option<ExceptionType>,
        now: Timestamp,
        plan: impl Fn(TaskContext, Option<Exception>, Timestamp) -> Result<(Change, T)>,
    ) -> Result<T> {
        let unlocked_first =
            D::LOCKS_ROWS && exception.is_none() && !matches!(action, TaskAction::Assign { .. });
        if unlocked_first {
            let unlocked = self.write_unlocked(id, now, |context, now| plan(context, None, now));
            if let Some(outcome) = unlocked.await? {
                return Ok(outcome);
            }
        }
        let (mut tx, now) = self.begin_at(now).await?;
        let context = found(task_context(&mut tx, id, action, now).await?, "task", id)?;
        let unresolved = match exception {
            Some(kind) => read::unresolved_exception::<D>(&mut tx, kind, id).await?,
            None => None,
        };
        let (tx, (change, outcome)) = tx.check(plan(context, unresolved, now)).await?;
        self.persist(tx, &change, now).await?;
        Ok(outcome)
    }
}
