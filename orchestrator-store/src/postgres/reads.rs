//! Reads: single rows by key and the list queries, usable on a pooled connection or
//! inside a transaction. `lock` takes the row lock a transaction holds until commit.

use orchestrator_core::error::Result;
use orchestrator_core::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentQuery, Event, Exception, ExceptionQuery, LogPage, LogQuery, Page, RunnerSession,
    SortOrder, Task, TaskAttempt, TaskQuery, TaskSort, VerificationResult,
};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{id_param, time_param};
use crate::error::SqlxResultExt;
use crate::rows::{
    agent_from_row, attempt_from_row, event_from_row, exception_from_row, log_from_row,
    runner_session_from_row, task_from_row, verification_from_row,
};

/// Every task column plus its dependencies folded into one comma-separated column.
pub(super) const TASK_COLUMNS: &str = "t.*, (SELECT string_agg(d.depends_on_id::text, ',') \
     FROM task_dependencies d WHERE d.task_id = t.id) AS depends_on";

pub(super) async fn task(conn: &mut PgConnection, id: TaskId) -> Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id_param(id))
        .fetch_optional(conn)
        .await
        .db()?
        .map(|row| task_from_row(&row))
        .transpose()
}

pub(super) async fn agent(conn: &mut PgConnection, id: AgentId) -> Result<Option<Agent>> {
    sqlx::query("SELECT * FROM agents WHERE id = $1")
        .bind(id_param(id))
        .fetch_optional(conn)
        .await
        .db()?
        .map(|row| agent_from_row(&row))
        .transpose()
}

pub(super) async fn runner_session(
    conn: &mut PgConnection,
    id: RunnerSessionId,
) -> Result<Option<RunnerSession>> {
    sqlx::query("SELECT * FROM runner_sessions WHERE id = $1")
        .bind(id_param(id))
        .fetch_optional(conn)
        .await
        .db()?
        .map(|row| runner_session_from_row(&row))
        .transpose()
}

pub(super) async fn runner_session_by_token(
    conn: &mut PgConnection,
    token_hash: &str,
) -> Result<Option<RunnerSession>> {
    sqlx::query("SELECT * FROM runner_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(conn)
        .await
        .db()?
        .map(|row| runner_session_from_row(&row))
        .transpose()
}

pub(super) async fn runner_sessions(conn: &mut PgConnection) -> Result<Vec<RunnerSession>> {
    sqlx::query("SELECT * FROM runner_sessions ORDER BY created_at DESC, id DESC")
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(runner_session_from_row)
        .collect()
}

pub(super) async fn exception(
    conn: &mut PgConnection,
    id: ExceptionId,
) -> Result<Option<Exception>> {
    sqlx::query("SELECT * FROM exceptions WHERE id = $1")
        .bind(id_param(id))
        .fetch_optional(conn)
        .await
        .db()?
        .map(|row| exception_from_row(&row))
        .transpose()
}

pub(super) async fn attempts(conn: &mut PgConnection, task: TaskId) -> Result<Vec<TaskAttempt>> {
    sqlx::query("SELECT * FROM task_attempts WHERE task_id = $1 ORDER BY attempt_number")
        .bind(id_param(task))
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(attempt_from_row)
        .collect()
}

fn direction(order: SortOrder) -> &'static str {
    match order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    }
}

/// `translate` arguments that lower-case ASCII letters only, as the other stores do.
const ASCII_UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'";

fn push_task_filters(builder: &mut QueryBuilder<Postgres>, query: &TaskQuery) {
    builder.push(" WHERE 1 = 1");
    if let Some(status) = query.status {
        builder.push(" AND t.status = ").push_bind(status.as_str());
    }
    if let Some(priority) = query.priority {
        builder
            .push(" AND t.priority = ")
            .push_bind(i64::from(priority));
    }
    if let Some(needle) = query.search_needle() {
        builder
            .push(format!(" AND (strpos(translate(t.title, {ASCII_UPPER}), "))
            .push_bind(needle.clone())
            .push(format!(
                ") > 0 OR strpos(translate(t.description, {ASCII_UPPER}), "
            ))
            .push_bind(needle)
            .push(") > 0)");
    }
}

pub(super) async fn tasks(conn: &mut PgConnection, query: &TaskQuery) -> Result<Page<Task>> {
    let mut count = QueryBuilder::new("SELECT COUNT(*) FROM tasks t");
    push_task_filters(&mut count, query);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .db()?;

    let dir = direction(query.sort_order);
    let primary = match query.sort_by {
        TaskSort::Priority => Some("t.priority"),
        TaskSort::CreatedAt => None,
        TaskSort::UpdatedAt => Some("t.updated_at"),
        TaskSort::Status => Some("t.status COLLATE \"C\""),
        TaskSort::Title => Some("t.title COLLATE \"C\""),
    };
    let mut page = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks t"));
    push_task_filters(&mut page, query);
    page.push(" ORDER BY ");
    if let Some(column) = primary {
        page.push(format!("{column} {dir}, "));
    }
    page.push(format!("t.created_at {dir}, t.id {dir} LIMIT "))
        .push_bind(i64::from(query.limit))
        .push(" OFFSET ")
        .push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let items = page
        .build()
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(task_from_row)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        total_count: total as u64,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(super) async fn agents(conn: &mut PgConnection, query: &AgentQuery) -> Result<Page<Agent>> {
    let filters = |builder: &mut QueryBuilder<Postgres>| {
        builder.push(" WHERE 1 = 1");
        if let Some(status) = query.status {
            builder.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(session) = query.runner_session_id {
            builder
                .push(" AND runner_session_id = ")
                .push_bind(id_param(session));
        }
    };
    let mut count = QueryBuilder::new("SELECT COUNT(*) FROM agents");
    filters(&mut count);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let mut page = QueryBuilder::new("SELECT * FROM agents");
    filters(&mut page);
    page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(query.limit))
        .push(" OFFSET ")
        .push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let items = page
        .build()
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(agent_from_row)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        total_count: total as u64,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(super) async fn logs(conn: &mut PgConnection, query: &LogQuery) -> Result<LogPage> {
    let filters = |builder: &mut QueryBuilder<Postgres>| {
        builder
            .push(" WHERE agent_id = ")
            .push_bind(id_param(query.agent_id));
        if let Some(task) = query.task_id {
            builder.push(" AND task_id = ").push_bind(id_param(task));
        }
        if let Some(kind) = query.log_type {
            builder.push(" AND log_type = ").push_bind(kind.as_str());
        }
    };
    let mut count = QueryBuilder::new("SELECT COUNT(*) FROM agent_logs");
    filters(&mut count);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let mut page = QueryBuilder::new("SELECT * FROM agent_logs");
    filters(&mut page);
    if let Some(cursor) = query.before {
        page.push(" AND (created_at < ")
            .push_bind(time_param(cursor.created_at))
            .push(" OR (created_at = ")
            .push_bind(time_param(cursor.created_at))
            .push(" AND id < ")
            .push_bind(id_param(cursor.id))
            .push("))");
    }
    page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
    let logs = page
        .build()
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(log_from_row)
        .collect::<Result<_>>()?;
    Ok(LogPage::from_fetched(logs, query.limit, total as u64))
}

pub(super) async fn verification_results(
    conn: &mut PgConnection,
    task: TaskId,
    limit: u32,
) -> Result<Vec<VerificationResult>> {
    sqlx::query(
        "SELECT * FROM verification_results WHERE task_id = $1 \
         ORDER BY attempt_number DESC LIMIT $2",
    )
    .bind(id_param(task))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .db()?
    .iter()
    .map(verification_from_row)
    .collect()
}

pub(super) async fn exceptions(
    conn: &mut PgConnection,
    query: &ExceptionQuery,
) -> Result<Page<Exception>> {
    let filters = |builder: &mut QueryBuilder<Postgres>| {
        builder.push(" WHERE 1 = 1");
        if let Some(status) = query.status {
            builder.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(severity) = query.severity {
            builder
                .push(" AND severity = ")
                .push_bind(severity.as_str());
        }
        if let Some(kind) = query.exception_type {
            builder
                .push(" AND exception_type = ")
                .push_bind(kind.as_str());
        }
        if let Some(task) = query.task_id {
            builder.push(" AND task_id = ").push_bind(id_param(task));
        }
        if let Some(agent) = query.agent_id {
            builder.push(" AND agent_id = ").push_bind(id_param(agent));
        }
    };
    let mut count = QueryBuilder::new("SELECT COUNT(*) FROM exceptions");
    filters(&mut count);
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .db()?;
    let mut page = QueryBuilder::new("SELECT * FROM exceptions");
    filters(&mut page);
    page.push(
        " ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 \
         WHEN 'WARNING' THEN 2 ELSE 3 END, created_at DESC, id DESC LIMIT ",
    )
    .push_bind(i64::from(query.limit))
    .push(" OFFSET ")
    .push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let items = page
        .build()
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(exception_from_row)
        .collect::<Result<_>>()?;
    Ok(Page {
        items,
        total_count: total as u64,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(super) async fn events_since(
    conn: &mut PgConnection,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>> {
    sqlx::query("SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
        .db()?
        .iter()
        .map(event_from_row)
        .collect()
}
