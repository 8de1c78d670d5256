//! The [`Store`] implementation shared by the SQL backends.
//!
//! `SqlStore<B>` holds the flow of every operation — open a transaction, load and lock the
//! rows, ask `orchestrator_core::change` what to write, write it, append the events,
//! commit — while a [`Backend`] supplies the SQL primitives. The rules therefore live in
//! the core, the flow here, and each backend's module holds only its SQL.

use std::collections::BTreeSet;
use std::fmt::Debug;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{
    self, AgentAction, Change, ExceptionDecision, LeaseRef, TaskAction, TaskContext,
};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentLog, AgentQuery, Event, Exception, ExceptionQuery, ExceptionStatus, ExceptionType,
    LogPage, LogQuery, NewAgent, NewAgentLog, NewEvent, NewException, NewRunnerSession, NewTask,
    NewVerificationResult, Page, RunnerSession, Task, TaskAttempt, TaskEdit, TaskQuery, TaskStatus,
    VerificationResult,
};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::store::{Created, Store};

/// Reads outside a transaction, and the way into one.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    async fn ping(&self) -> Result<()>;
    async fn get_task(&self, id: TaskId) -> Result<Option<Task>>;
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>>;
    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>>;
    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>>;
    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>>;
    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<Option<RunnerSession>>;
    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>>;
    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>>;
    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage>;
    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>>;
    async fn get_exception(&self, id: ExceptionId) -> Result<Option<Exception>>;
    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>>;
    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>>;
}

/// The primitives of a write transaction. Row reads lock the row until commit
/// (PostgreSQL: `FOR UPDATE`; SQLite holds the database's one write lock throughout).
/// Dropping a transaction without committing rolls it back.
#[async_trait]
pub trait Tx: Send {
    async fn task(&mut self, id: TaskId) -> Result<Option<Task>>;
    async fn task_by_idempotency_key(&mut self, key: &str) -> Result<Option<Task>>;
    async fn missing_tasks(&mut self, ids: &[TaskId]) -> Result<Vec<TaskId>>;
    async fn unfinished_dependencies(&mut self, task: TaskId) -> Result<Vec<(TaskId, TaskStatus)>>;
    async fn dependents(&mut self, task: TaskId) -> Result<Vec<TaskId>>;
    async fn agent(&mut self, id: AgentId) -> Result<Option<Agent>>;
    async fn missing_agents(&mut self, ids: &[AgentId]) -> Result<Vec<AgentId>>;
    async fn attempt(&mut self, task: TaskId, number: u32) -> Result<Option<TaskAttempt>>;
    async fn runner_session(&mut self, id: RunnerSessionId) -> Result<Option<RunnerSession>>;
    async fn exception(&mut self, id: ExceptionId) -> Result<Option<Exception>>;
    async fn unresolved_exception(
        &mut self,
        kind: ExceptionType,
        task: TaskId,
    ) -> Result<Option<Exception>>;

    /// Inserts the task and its dependency rows.
    async fn insert_task(&mut self, task: &Task) -> Result<()>;
    /// Writes every column, if the stored revision is `task.revision - 1`.
    async fn update_task(&mut self, task: &Task) -> Result<()>;
    /// Deletes the task; foreign keys cascade to its attempts, logs, results, exceptions.
    async fn delete_task(&mut self, id: TaskId) -> Result<()>;
    async fn insert_agent(&mut self, agent: &Agent) -> Result<()>;
    /// Writes every column, if the stored revision is `agent.revision - 1`.
    async fn update_agent(&mut self, agent: &Agent) -> Result<()>;
    async fn touch_agents(&mut self, ids: &[AgentId], now: Timestamp) -> Result<()>;
    async fn upsert_attempt(&mut self, attempt: &TaskAttempt) -> Result<()>;
    async fn insert_runner_session(&mut self, session: &RunnerSession) -> Result<()>;
    async fn update_runner_session(&mut self, session: &RunnerSession) -> Result<()>;
    async fn insert_logs(&mut self, logs: &[AgentLog]) -> Result<()>;
    async fn insert_verification(&mut self, result: &VerificationResult) -> Result<()>;
    async fn upsert_exception(&mut self, exception: &Exception) -> Result<()>;
    /// Appends events so that their sequence numbers follow commit order.
    async fn append_events(&mut self, events: &[NewEvent], now: Timestamp) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A [`Store`] over a SQL backend: [`SqliteStore`](crate::SqliteStore) or
/// [`PostgresStore`](crate::PostgresStore).
#[derive(Debug)]
pub struct SqlStore<B> {
    pub(crate) backend: B,
}

/// Writes a planned change and commits.
async fn persist(mut tx: Box<dyn Tx>, change: &Change, now: Timestamp) -> Result<()> {
    if change.noop {
        return Ok(());
    }
    if let Some(task) = &change.task {
        tx.update_task(task).await?;
    }
    if let Some(agent) = &change.agent {
        tx.update_agent(agent).await?;
    }
    if let Some(attempt) = &change.attempt {
        tx.upsert_attempt(attempt).await?;
    }
    if let Some(exception) = &change.exception {
        tx.upsert_exception(exception).await?;
    }
    if let Some(session) = &change.runner_session {
        tx.update_runner_session(session).await?;
    }
    if let Some(result) = &change.verification {
        tx.insert_verification(result).await?;
    }
    tx.append_events(&change.events, now).await?;
    tx.commit().await
}

fn found<T>(row: Option<T>, entity: &'static str, id: impl std::fmt::Display) -> Result<T> {
    row.ok_or_else(|| Error::not_found(entity, id))
}

fn planned<T>(row: Option<T>, what: &str) -> Result<T> {
    row.ok_or_else(|| Error::backend(format!("the plan carried no {what}")))
}

/// Runs `operation` again once if it hit a uniqueness race with a concurrent writer
/// (an idempotency key or an exception raised twice at the same moment): the second run
/// sees the winner's row and takes the path that reuses it.
async fn retry_on_race<T, F, Fut>(mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match operation().await {
        Err(Error::Conflict(_)) => operation().await,
        other => other,
    }
}

impl<B: Backend> SqlStore<B> {
    async fn check_new_task(tx: &mut dyn Tx, new: &NewTask, field_prefix: &str) -> Result<()> {
        let missing = tx.missing_tasks(&new.depends_on).await?;
        if let Some(id) = missing.first() {
            return Err(Error::invalid(
                format!("{field_prefix}dependsOn"),
                format!("task {id} does not exist"),
            ));
        }
        Ok(())
    }

    /// Inserts `new` unless its idempotency key names an existing task.
    async fn insert_new_task(
        tx: &mut dyn Tx,
        new: NewTask,
        now: Timestamp,
    ) -> Result<Created<Task>> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = tx.task_by_idempotency_key(key).await?
        {
            return Ok(Created {
                value: existing,
                created: false,
            });
        }
        let task = new.into_task(TaskId::new(), now);
        tx.insert_task(&task).await?;
        tx.append_events(&[change::task_created_event(&task)], now)
            .await?;
        Ok(Created {
            value: task,
            created: true,
        })
    }

    async fn task_context(tx: &mut dyn Tx, task: Task, action: &TaskAction) -> Result<TaskContext> {
        let agent_id = match action {
            TaskAction::Assign { agent_id, .. } => Some(*agent_id),
            _ => task.assigned_agent_id,
        };
        let agent = match agent_id {
            Some(id) => tx.agent(id).await?,
            None => None,
        };
        let attempt = if task.attempt > 0 {
            tx.attempt(task.id, task.attempt).await?
        } else {
            None
        };
        let unfinished_dependencies = if matches!(action, TaskAction::Assign { .. }) {
            tx.unfinished_dependencies(task.id).await?
        } else {
            Vec::new()
        };
        Ok(TaskContext {
            task,
            agent,
            attempt,
            unfinished_dependencies,
        })
    }

    async fn raise_once(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        let mut tx = self.backend.begin().await?;
        if let Some(agent) = new.agent_id {
            found(tx.agent(agent).await?, "agent", agent)?;
        }
        let unresolved = match new.task_id {
            Some(task) => {
                found(tx.task(task).await?, "task", task)?;
                tx.unresolved_exception(new.exception_type, task).await?
            }
            None => None,
        };
        let change = change::plan_exception(new, unresolved, now)?;
        let exception = planned(change.exception.clone(), "exception")?;
        persist(tx, &change, now).await?;
        Ok(exception)
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }

    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>> {
        new.validate()?;
        retry_on_race(|| async {
            let mut tx = self.backend.begin().await?;
            Self::check_new_task(tx.as_mut(), &new, "").await?;
            let created = Self::insert_new_task(tx.as_mut(), new.clone(), now).await?;
            if created.created {
                tx.commit().await?;
            }
            Ok(created)
        })
        .await
    }

    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>> {
        change::validate_task_batch(&batch)?;
        retry_on_race(|| async {
            let mut tx = self.backend.begin().await?;
            for (index, new) in batch.iter().enumerate() {
                Self::check_new_task(tx.as_mut(), new, &format!("tasks[{index}].")).await?;
            }
            let mut tasks = Vec::with_capacity(batch.len());
            for new in batch.iter().cloned() {
                tasks.push(Self::insert_new_task(tx.as_mut(), new, now).await?.value);
            }
            tx.commit().await?;
            Ok(tasks)
        })
        .await
    }

    async fn get_task(&self, id: TaskId) -> Result<Task> {
        found(self.backend.get_task(id).await?, "task", id)
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        query.validate()?;
        self.backend.list_tasks(query).await
    }

    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task> {
        edit.validate()?;
        let mut tx = self.backend.begin().await?;
        let task = found(tx.task(id).await?, "task", id)?;
        let change = change::plan_task_edit(task, edit, now)?;
        let task = planned(change.task.clone(), "task")?;
        persist(tx, &change, now).await?;
        Ok(task)
    }

    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task> {
        let mut tx = self.backend.begin().await?;
        let task = found(tx.task(id).await?, "task", id)?;
        if let TaskAction::Assign { agent_id, .. } = &action
            && tx.agent(*agent_id).await?.is_none()
        {
            return Err(Error::not_found("agent", agent_id));
        }
        let context = Self::task_context(tx.as_mut(), task, &action).await?;
        let change = change::plan_task_action(context, action, lease.as_ref(), now)?;
        let task = planned(change.task.clone(), "task")?;
        persist(tx, &change, now).await?;
        Ok(task)
    }

    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()> {
        let mut tx = self.backend.begin().await?;
        let task = found(tx.task(id).await?, "task", id)?;
        let dependents = tx.dependents(id).await?;
        let event = change::check_deletable(&task, &dependents)?;
        tx.delete_task(id).await?;
        tx.append_events(&[event], now).await?;
        tx.commit().await
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        found(self.backend.get_task(task).await?, "task", task)?;
        self.backend.list_attempts(task).await
    }

    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent> {
        new.validate()?;
        let mut tx = self.backend.begin().await?;
        if let Some(session) = new.runner_session_id {
            found(tx.runner_session(session).await?, "runnerSession", session)?;
        }
        let agent = new.into_agent(AgentId::new(), now);
        tx.insert_agent(&agent).await?;
        tx.append_events(&[change::agent_created_event(&agent)], now)
            .await?;
        tx.commit().await?;
        Ok(agent)
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        found(self.backend.get_agent(id).await?, "agent", id)
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        query.validate()?;
        self.backend.list_agents(query).await
    }

    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent> {
        let mut tx = self.backend.begin().await?;
        let agent = found(tx.agent(id).await?, "agent", id)?;
        let change = change::plan_agent_action(agent, action, now)?;
        let agent = planned(change.agent.clone(), "agent")?;
        persist(tx, &change, now).await?;
        Ok(agent)
    }

    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        new.validate()?;
        let mut tx = self.backend.begin().await?;
        let session = new.into_session(RunnerSessionId::new(), now);
        tx.insert_runner_session(&session)
            .await
            .map_err(|err| match err {
                Error::Conflict(_) => {
                    Error::conflict("a runner session with this token already exists")
                }
                other => other,
            })?;
        tx.append_events(&[change::runner_connected_event(&session)], now)
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession> {
        found(
            self.backend.get_runner_session(id).await?,
            "runnerSession",
            id,
        )
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        self.backend.find_runner_session(token_hash).await
    }

    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>> {
        self.backend.list_runner_sessions().await
    }

    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let mut tx = self.backend.begin().await?;
        let session = found(tx.runner_session(id).await?, "runnerSession", id)?;
        let change = change::plan_runner_session_event(session, event, now)?;
        let session = planned(change.runner_session.clone(), "runner session")?;
        persist(tx, &change, now).await?;
        Ok(session)
    }

    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64> {
        let (stored, events) = change::plan_logs(logs, now)?;
        let agents: Vec<AgentId> = stored
            .iter()
            .map(|log| log.agent_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tasks: Vec<TaskId> = stored
            .iter()
            .filter_map(|log| log.task_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut tx = self.backend.begin().await?;
        if let Some(agent) = tx.missing_agents(&agents).await?.first() {
            return Err(Error::not_found("agent", agent));
        }
        if let Some(task) = tx.missing_tasks(&tasks).await?.first() {
            return Err(Error::not_found("task", task));
        }
        tx.insert_logs(&stored).await?;
        tx.touch_agents(&agents, now).await?;
        tx.append_events(&events, now).await?;
        tx.commit().await?;
        Ok(stored.len() as u64)
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage> {
        query.validate()?;
        found(
            self.backend.get_agent(query.agent_id).await?,
            "agent",
            query.agent_id,
        )?;
        self.backend.list_logs(query).await
    }

    async fn record_verification(
        &self,
        task: TaskId,
        result: NewVerificationResult,
        now: Timestamp,
    ) -> Result<VerificationResult> {
        result.validate()?;
        let mut tx = self.backend.begin().await?;
        let current = found(tx.task(task).await?, "task", task)?;
        let change = change::plan_verification(current, result, now)?;
        let recorded = planned(change.verification.clone(), "verification result")?;
        persist(tx, &change, now).await?;
        Ok(recorded)
    }

    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>> {
        change::check_verification_limit(limit)?;
        found(self.backend.get_task(task).await?, "task", task)?;
        self.backend.list_verification_results(task, limit).await
    }

    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        new.validate()?;
        retry_on_race(|| self.raise_once(new.clone(), now)).await
    }

    async fn get_exception(&self, id: ExceptionId) -> Result<Exception> {
        found(self.backend.get_exception(id).await?, "exception", id)
    }

    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>> {
        query.validate()?;
        self.backend.list_exceptions(query).await
    }

    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception> {
        decision.validate()?;
        let mut tx = self.backend.begin().await?;
        let exception = found(tx.exception(id).await?, "exception", id)?;
        if decision.status == ExceptionStatus::Open
            && let Some(task) = exception.task_id
            && let Some(other) = tx
                .unresolved_exception(exception.exception_type, task)
                .await?
            && other.id != id
        {
            return Err(Error::conflict(format!(
                "exception {} of this type is already unresolved for the task",
                other.id
            )));
        }
        let change = change::plan_exception_decision(exception, decision, now)?;
        let exception = planned(change.exception.clone(), "exception")?;
        persist(tx, &change, now).await?;
        Ok(exception)
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        change::check_events_limit(limit)?;
        self.backend.events_since(after, limit).await
    }
}
