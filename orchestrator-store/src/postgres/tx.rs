//! Writes, inside transactions that lock the rows they read, and the [`Backend`] glue.

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentLog, AgentQuery, Event, Exception, ExceptionQuery, ExceptionType, LogPage,
    LogQuery, NewEvent, Page, RunnerSession, Task, TaskAttempt, TaskQuery, TaskStatus,
    VerificationResult,
};
use sqlx::{Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::reads::{self, TASK_COLUMNS};
use super::{PostgresBackend, id_param, json_param, opt_time_param, time_param};
use crate::engine::{Backend, Tx};
use crate::error::SqlxResultExt;
use crate::rows::{RowReader, exception_from_row, task_from_row};

/// A write transaction; the rows it reads stay locked until it ends.
pub(crate) struct PostgresTx {
    tx: Transaction<'static, Postgres>,
}

fn ids_of<T: Copy + Into<Uuid>>(ids: &[T]) -> Vec<super::IdParam> {
    ids.iter().map(|id| id_param(*id)).collect()
}

/// The ids among `ids` that `table` has no row for.
async fn missing<T: Copy + Into<Uuid> + Ord>(
    tx: &mut Transaction<'static, Postgres>,
    table: &str,
    ids: &[T],
) -> Result<Vec<T>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::new(format!("SELECT id FROM {table} WHERE id IN ("));
    let mut list = query.separated(", ");
    for id in ids_of(ids) {
        list.push_bind(id);
    }
    query.push(")");
    let present: Vec<_> = query.build_query_scalar().fetch_all(&mut **tx).await.db()?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !present.contains(&id_param(*id)))
        .collect())
}

fn require_one_row(affected: u64, what: &str) -> Result<()> {
    if affected == 1 {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "the {what} was changed by someone else meanwhile; retry"
        )))
    }
}

#[async_trait]
impl Tx for PostgresTx {
    async fn task(&mut self, id: TaskId) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1 FOR UPDATE OF t");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_param(id))
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| task_from_row(&row))
            .transpose()
    }

    async fn task_by_idempotency_key(&mut self, key: &str) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.idempotency_key = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| task_from_row(&row))
            .transpose()
    }

    async fn missing_tasks(&mut self, ids: &[TaskId]) -> Result<Vec<TaskId>> {
        missing(&mut self.tx, "tasks", ids).await
    }

    async fn unfinished_dependencies(&mut self, task: TaskId) -> Result<Vec<(TaskId, TaskStatus)>> {
        let rows = sqlx::query(
            "SELECT t.id, t.status FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on_id \
             WHERE d.task_id = $1 AND t.status <> 'COMPLETED' ORDER BY t.id",
        )
        .bind(id_param(task))
        .fetch_all(&mut *self.tx)
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                let id = row
                    .uuid("id")?
                    .ok_or_else(|| Error::backend("dependency without id"))?;
                let status = row.text("status")?.unwrap_or_default().parse()?;
                Ok((id.into(), status))
            })
            .collect()
    }

    async fn dependents(&mut self, task: TaskId) -> Result<Vec<TaskId>> {
        let rows = sqlx::query(
            "SELECT task_id FROM task_dependencies WHERE depends_on_id = $1 ORDER BY task_id",
        )
        .bind(id_param(task))
        .fetch_all(&mut *self.tx)
        .await
        .db()?;
        Ok(rows
            .iter()
            .map(|row| row.uuid("task_id"))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .map(TaskId::from)
            .collect())
    }

    async fn agent(&mut self, id: AgentId) -> Result<Option<Agent>> {
        sqlx::query("SELECT * FROM agents WHERE id = $1 FOR UPDATE")
            .bind(id_param(id))
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| crate::rows::agent_from_row(&row))
            .transpose()
    }

    async fn missing_agents(&mut self, ids: &[AgentId]) -> Result<Vec<AgentId>> {
        missing(&mut self.tx, "agents", ids).await
    }

    async fn attempt(&mut self, task: TaskId, number: u32) -> Result<Option<TaskAttempt>> {
        sqlx::query("SELECT * FROM task_attempts WHERE task_id = $1 AND attempt_number = $2")
            .bind(id_param(task))
            .bind(i64::from(number))
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| crate::rows::attempt_from_row(&row))
            .transpose()
    }

    async fn runner_session(&mut self, id: RunnerSessionId) -> Result<Option<RunnerSession>> {
        sqlx::query("SELECT * FROM runner_sessions WHERE id = $1 FOR UPDATE")
            .bind(id_param(id))
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| crate::rows::runner_session_from_row(&row))
            .transpose()
    }

    async fn exception(&mut self, id: ExceptionId) -> Result<Option<Exception>> {
        sqlx::query("SELECT * FROM exceptions WHERE id = $1 FOR UPDATE")
            .bind(id_param(id))
            .fetch_optional(&mut *self.tx)
            .await
            .db()?
            .map(|row| exception_from_row(&row))
            .transpose()
    }

    async fn unresolved_exception(
        &mut self,
        kind: ExceptionType,
        task: TaskId,
    ) -> Result<Option<Exception>> {
        sqlx::query(
            "SELECT * FROM exceptions WHERE exception_type = $1 AND task_id = $2 \
             AND status IN ('OPEN', 'ACKNOWLEDGED') FOR UPDATE",
        )
        .bind(kind.as_str())
        .bind(id_param(task))
        .fetch_optional(&mut *self.tx)
        .await
        .db()?
        .map(|row| exception_from_row(&row))
        .transpose()
    }

    async fn insert_task(&mut self, task: &Task) -> Result<()> {
        sqlx::query(
            "INSERT INTO tasks (id, title, description, priority, risk_level, status, \
             assigned_agent_id, assigned_at, branch_name, commit_sha, pr_url, verification_status, \
             verification_attempts, estimated_complexity, files_hint, idempotency_key, attempt, \
             attempts_used, max_attempts, retry_count, not_before, lease_token, lease_expires_at, \
             cancel_requested, last_error, revision, created_at, updated_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)",
        )
        .bind(id_param(task.id))
        .bind(&task.title)
        .bind(&task.description)
        .bind(i64::from(task.priority))
        .bind(task.risk_level.as_str())
        .bind(task.status.as_str())
        .bind(task.assigned_agent_id.map(id_param))
        .bind(opt_time_param(task.assigned_at))
        .bind(&task.branch_name)
        .bind(&task.commit_sha)
        .bind(&task.pr_url)
        .bind(task.verification_status.as_str())
        .bind(i64::from(task.verification_attempts))
        .bind(task.estimated_complexity.map(|c| c.as_str()))
        .bind(json_param(&task.files_hint)?)
        .bind(&task.idempotency_key)
        .bind(i64::from(task.attempt))
        .bind(i64::from(task.attempts_used))
        .bind(i64::from(task.max_attempts))
        .bind(i64::from(task.retry_count))
        .bind(opt_time_param(task.not_before))
        .bind(task.lease_token.map(id_param))
        .bind(opt_time_param(task.lease_expires_at))
        .bind(task.cancel_requested)
        .bind(&task.last_error)
        .bind(task.revision as i64)
        .bind(time_param(task.created_at))
        .bind(time_param(task.updated_at))
        .bind(opt_time_param(task.completed_at))
        .execute(&mut *self.tx)
        .await
        .db()?;
        if !task.depends_on.is_empty() {
            let mut query =
                QueryBuilder::new("INSERT INTO task_dependencies (task_id, depends_on_id) ");
            query.push_values(&task.depends_on, |mut row, dependency| {
                row.push_bind(id_param(task.id))
                    .push_bind(id_param(*dependency));
            });
            query.build().execute(&mut *self.tx).await.db()?;
        }
        Ok(())
    }

    async fn update_task(&mut self, task: &Task) -> Result<()> {
        let affected = sqlx::query(
            "UPDATE tasks SET title = $1, description = $2, priority = $3, risk_level = $4, status = $5, \
             assigned_agent_id = $6, assigned_at = $7, branch_name = $8, commit_sha = $9, pr_url = $10, \
             verification_status = $11, verification_attempts = $12, estimated_complexity = $13, \
             files_hint = $14, attempt = $15, attempts_used = $16, max_attempts = $17, retry_count = $18, \
             not_before = $19, lease_token = $20, lease_expires_at = $21, cancel_requested = $22, \
             last_error = $23, revision = $24, updated_at = $25, completed_at = $26 \
             WHERE id = $27 AND revision = $28",
        )
        .bind(&task.title)
        .bind(&task.description)
        .bind(i64::from(task.priority))
        .bind(task.risk_level.as_str())
        .bind(task.status.as_str())
        .bind(task.assigned_agent_id.map(id_param))
        .bind(opt_time_param(task.assigned_at))
        .bind(&task.branch_name)
        .bind(&task.commit_sha)
        .bind(&task.pr_url)
        .bind(task.verification_status.as_str())
        .bind(i64::from(task.verification_attempts))
        .bind(task.estimated_complexity.map(|c| c.as_str()))
        .bind(json_param(&task.files_hint)?)
        .bind(i64::from(task.attempt))
        .bind(i64::from(task.attempts_used))
        .bind(i64::from(task.max_attempts))
        .bind(i64::from(task.retry_count))
        .bind(opt_time_param(task.not_before))
        .bind(task.lease_token.map(id_param))
        .bind(opt_time_param(task.lease_expires_at))
        .bind(task.cancel_requested)
        .bind(&task.last_error)
        .bind(task.revision as i64)
        .bind(time_param(task.updated_at))
        .bind(opt_time_param(task.completed_at))
        .bind(id_param(task.id))
        .bind(task.revision as i64 - 1)
        .execute(&mut *self.tx)
        .await
        .db()?
        .rows_affected();
        require_one_row(affected, "task")
    }

    async fn delete_task(&mut self, id: TaskId) -> Result<()> {
        sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(id_param(id))
            .execute(&mut *self.tx)
            .await
            .db()?;
        Ok(())
    }

    async fn insert_agent(&mut self, agent: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, status, current_task_id, branch_name, conversation_id, \
             total_tokens_used, last_activity_at, started_at, completed_at, tasks_completed, \
             tasks_failed, is_local_runner, runner_session_id, slot, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(id_param(agent.id))
        .bind(&agent.name)
        .bind(agent.status.as_str())
        .bind(agent.current_task_id.map(id_param))
        .bind(&agent.branch_name)
        .bind(&agent.conversation_id)
        .bind(agent.total_tokens_used as i64)
        .bind(opt_time_param(agent.last_activity_at))
        .bind(opt_time_param(agent.started_at))
        .bind(opt_time_param(agent.completed_at))
        .bind(i64::from(agent.tasks_completed))
        .bind(i64::from(agent.tasks_failed))
        .bind(agent.is_local_runner)
        .bind(agent.runner_session_id.map(id_param))
        .bind(agent.slot.map(i64::from))
        .bind(agent.revision as i64)
        .bind(time_param(agent.created_at))
        .bind(time_param(agent.updated_at))
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn update_agent(&mut self, agent: &Agent) -> Result<()> {
        let affected = sqlx::query(
            "UPDATE agents SET name = $1, status = $2, current_task_id = $3, branch_name = $4, \
             conversation_id = $5, total_tokens_used = $6, last_activity_at = $7, started_at = $8, \
             completed_at = $9, tasks_completed = $10, tasks_failed = $11, is_local_runner = $12, \
             runner_session_id = $13, slot = $14, revision = $15, updated_at = $16 \
             WHERE id = $17 AND revision = $18",
        )
        .bind(&agent.name)
        .bind(agent.status.as_str())
        .bind(agent.current_task_id.map(id_param))
        .bind(&agent.branch_name)
        .bind(&agent.conversation_id)
        .bind(agent.total_tokens_used as i64)
        .bind(opt_time_param(agent.last_activity_at))
        .bind(opt_time_param(agent.started_at))
        .bind(opt_time_param(agent.completed_at))
        .bind(i64::from(agent.tasks_completed))
        .bind(i64::from(agent.tasks_failed))
        .bind(agent.is_local_runner)
        .bind(agent.runner_session_id.map(id_param))
        .bind(agent.slot.map(i64::from))
        .bind(agent.revision as i64)
        .bind(time_param(agent.updated_at))
        .bind(id_param(agent.id))
        .bind(agent.revision as i64 - 1)
        .execute(&mut *self.tx)
        .await
        .db()?
        .rows_affected();
        require_one_row(affected, "agent")
    }

    async fn touch_agents(&mut self, ids: &[AgentId], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::new("UPDATE agents SET last_activity_at = ");
        query.push_bind(time_param(now)).push(" WHERE id IN (");
        let mut list = query.separated(", ");
        for id in ids_of(ids) {
            list.push_bind(id);
        }
        query.push(")");
        query.build().execute(&mut *self.tx).await.db()?;
        Ok(())
    }

    async fn upsert_attempt(&mut self, attempt: &TaskAttempt) -> Result<()> {
        sqlx::query(
            "INSERT INTO task_attempts (id, task_id, attempt_number, agent_id, runner_session_id, \
             lease_token, lease_expires_at, started_at, ended_at, outcome, failure_reason, \
             commit_sha, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at, \
             ended_at = excluded.ended_at, outcome = excluded.outcome, \
             failure_reason = excluded.failure_reason, commit_sha = excluded.commit_sha, \
             input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
             cache_read_tokens = excluded.cache_read_tokens, \
             cache_write_tokens = excluded.cache_write_tokens, cost_usd = excluded.cost_usd",
        )
        .bind(id_param(attempt.id))
        .bind(id_param(attempt.task_id))
        .bind(i64::from(attempt.attempt_number))
        .bind(id_param(attempt.agent_id))
        .bind(attempt.runner_session_id.map(id_param))
        .bind(attempt.lease_token.map(id_param))
        .bind(time_param(attempt.lease_expires_at))
        .bind(time_param(attempt.started_at))
        .bind(opt_time_param(attempt.ended_at))
        .bind(attempt.outcome.as_str())
        .bind(&attempt.failure_reason)
        .bind(&attempt.commit_sha)
        .bind(attempt.usage.input_tokens as i64)
        .bind(attempt.usage.output_tokens as i64)
        .bind(attempt.usage.cache_read_tokens as i64)
        .bind(attempt.usage.cache_write_tokens as i64)
        .bind(attempt.usage.cost_usd)
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn insert_runner_session(&mut self, session: &RunnerSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO runner_sessions (id, name, working_dir, status, token_hash, last_seen_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id_param(session.id))
        .bind(&session.name)
        .bind(&session.working_dir)
        .bind(session.status.as_str())
        .bind(&session.token_hash)
        .bind(time_param(session.last_seen_at))
        .bind(time_param(session.created_at))
        .bind(time_param(session.updated_at))
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn update_runner_session(&mut self, session: &RunnerSession) -> Result<()> {
        sqlx::query(
            "UPDATE runner_sessions SET name = $1, working_dir = $2, status = $3, last_seen_at = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&session.name)
        .bind(&session.working_dir)
        .bind(session.status.as_str())
        .bind(time_param(session.last_seen_at))
        .bind(time_param(session.updated_at))
        .bind(id_param(session.id))
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn insert_logs(&mut self, logs: &[AgentLog]) -> Result<()> {
        let mut query = QueryBuilder::new(
            "INSERT INTO agent_logs (id, agent_id, task_id, log_type, content, metadata, created_at) ",
        );
        let mut rows = Vec::with_capacity(logs.len());
        for log in logs {
            let metadata = log.metadata.as_ref().map(json_param).transpose()?;
            rows.push((log, metadata));
        }
        query.push_values(rows, |mut row, (log, metadata)| {
            row.push_bind(id_param(log.id))
                .push_bind(id_param(log.agent_id))
                .push_bind(log.task_id.map(id_param))
                .push_bind(log.log_type.as_str())
                .push_bind(log.content.clone())
                .push_bind(metadata)
                .push_bind(time_param(log.created_at));
        });
        query.build().execute(&mut *self.tx).await.db()?;
        Ok(())
    }

    async fn insert_verification(&mut self, result: &VerificationResult) -> Result<()> {
        sqlx::query(
            "INSERT INTO verification_results (id, task_id, attempt_number, passed, confidence_score, \
             syntax_passed, types_passed, lint_passed, tests_passed, tests_total, tests_failed, \
             semantic_score, semantic_explanation, failures, recommendations, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(id_param(result.id))
        .bind(id_param(result.task_id))
        .bind(i64::from(result.attempt_number))
        .bind(result.passed)
        .bind(result.confidence_score)
        .bind(result.syntax_passed)
        .bind(result.types_passed)
        .bind(result.lint_passed)
        .bind(result.tests_passed)
        .bind(result.tests_total.map(i64::from))
        .bind(result.tests_failed.map(i64::from))
        .bind(result.semantic_score)
        .bind(&result.semantic_explanation)
        .bind(json_param(&result.failures)?)
        .bind(json_param(&result.recommendations)?)
        .bind(time_param(result.created_at))
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn upsert_exception(&mut self, exception: &Exception) -> Result<()> {
        sqlx::query(
            "INSERT INTO exceptions (id, exception_type, agent_id, task_id, severity, title, \
             description, suggested_action, status, resolved_by, resolved_at, resolution_notes, \
             occurrences, last_occurred_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             resolved_by = excluded.resolved_by, resolved_at = excluded.resolved_at, \
             resolution_notes = excluded.resolution_notes, occurrences = excluded.occurrences, \
             last_occurred_at = excluded.last_occurred_at, updated_at = excluded.updated_at",
        )
        .bind(id_param(exception.id))
        .bind(exception.exception_type.as_str())
        .bind(exception.agent_id.map(id_param))
        .bind(exception.task_id.map(id_param))
        .bind(exception.severity.as_str())
        .bind(&exception.title)
        .bind(&exception.description)
        .bind(&exception.suggested_action)
        .bind(exception.status.as_str())
        .bind(&exception.resolved_by)
        .bind(opt_time_param(exception.resolved_at))
        .bind(&exception.resolution_notes)
        .bind(i64::from(exception.occurrences))
        .bind(time_param(exception.last_occurred_at))
        .bind(time_param(exception.created_at))
        .bind(time_param(exception.updated_at))
        .execute(&mut *self.tx)
        .await
        .db()?;
        Ok(())
    }

    async fn append_events(&mut self, events: &[NewEvent], now: Timestamp) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // Appending transactions take turns, so sequence numbers follow commit order and a
        // reader that has seen event N never later finds an event below N appear.
        sqlx::query("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *self.tx)
            .await
            .db()?;
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            rows.push((event, json_param(&event.payload)?));
        }
        let mut query = QueryBuilder::new(
            "INSERT INTO events (kind, task_id, agent_id, runner_session_id, exception_id, payload, \
             created_at) ",
        );
        query.push_values(rows, |mut row, (event, payload)| {
            row.push_bind(event.kind.as_str())
                .push_bind(event.task_id.map(id_param))
                .push_bind(event.agent_id.map(id_param))
                .push_bind(event.runner_session_id.map(id_param))
                .push_bind(event.exception_id.map(id_param))
                .push_bind(payload)
                .push_bind(time_param(now));
        });
        query.build().execute(&mut *self.tx).await.db()?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.db()
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let tx = self.pool.begin().await.db()?;
        Ok(Box::new(PostgresTx { tx }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(())
    }

    async fn get_task(&self, id: TaskId) -> Result<Option<Task>> {
        reads::task(&mut *self.pool.acquire().await.db()?, id).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        reads::tasks(&mut *self.pool.acquire().await.db()?, query).await
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        reads::attempts(&mut *self.pool.acquire().await.db()?, task).await
    }

    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        reads::agent(&mut *self.pool.acquire().await.db()?, id).await
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        reads::agents(&mut *self.pool.acquire().await.db()?, query).await
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<Option<RunnerSession>> {
        reads::runner_session(&mut *self.pool.acquire().await.db()?, id).await
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        reads::runner_session_by_token(&mut *self.pool.acquire().await.db()?, token_hash).await
    }

    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>> {
        reads::runner_sessions(&mut *self.pool.acquire().await.db()?).await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage> {
        reads::logs(&mut *self.pool.acquire().await.db()?, query).await
    }

    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>> {
        reads::verification_results(&mut *self.pool.acquire().await.db()?, task, limit).await
    }

    async fn get_exception(&self, id: ExceptionId) -> Result<Option<Exception>> {
        reads::exception(&mut *self.pool.acquire().await.db()?, id).await
    }

    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>> {
        reads::exceptions(&mut *self.pool.acquire().await.db()?, query).await
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        reads::events_since(&mut *self.pool.acquire().await.db()?, after, limit).await
    }
}
