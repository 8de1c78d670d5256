//! Lookups and list queries.

use std::collections::BTreeMap;
use std::str::FromStr;

use orchestrator_core::Timestamp;
use orchestrator_core::change;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentActivityCounts, AgentQuery, COMPLETION_SAMPLE, Event, Exception, ExceptionQuery,
    ExceptionType, LogPage, LogQuery, Page, RunnerSession, SortOrder, SystemStats, Task,
    TaskActivityCounts, TaskAttempt, TaskQuery, TaskSort, TaskStatus, VerificationResult,
};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit, push_list};
use crate::rows::{
    JsonRow, RowReader, agent_activity_from_row, agent_from_row, attempt_from_row, event_from_row,
    exception_from_row, log_from_row, runner_session_from_row, task_activity_from_row,
    task_from_row, verification_from_row,
};

/// Whether a read inside a write transaction locks the rows it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// A plain read.
    None,
    /// Lock the rows until the transaction ends (where the dialect locks rows).
    ForUpdate,
}

impl Lock {
    fn clause<D: Dialect>(self, of: Option<&str>) -> String {
        match (self, D::LOCKS_ROWS, of) {
            (Lock::ForUpdate, true, Some(alias)) => format!(" FOR UPDATE OF {alias}"),
            (Lock::ForUpdate, true, None) => " FOR UPDATE".to_owned(),
            _ => String::new(),
        }
    }
}

fn push_task_select<D: Dialect>(query: &mut QueryBuilder<D>) {
    query.push(format!(
        "SELECT t.*, (SELECT {} FROM task_dependencies d WHERE d.task_id = t.id) AS depends_on \
         FROM tasks t",
        D::DEPENDENCY_LIST
    ));
}

fn task_select<D: Dialect>() -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    push_task_select(&mut query);
    query
}

/// A query built from a part of a script.
fn from_part<D: Dialect>(part: Part<D>) -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    part(&mut query);
    query
}

/// The first row of a script's result set, decoded.
fn first<D: Dialect, T>(
    rows: Option<Vec<D::Row>>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    rows.and_then(|rows| rows.into_iter().next())
        .map(|row| decode(&row))
        .transpose()
}

async fn one<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    query: QueryBuilder<D>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    conn.fetch_optional(query)
        .await?
        .map(|row| decode(&row))
        .transpose()
}

async fn all<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    query: QueryBuilder<D>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Vec<T>> {
    conn.fetch_all(query).await?.iter().map(decode).collect()
}

/// `SELECT * FROM table WHERE id = ?`, optionally locked.
async fn by_id<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    table: &str,
    id: Uuid,
    lock: Lock,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    let mut query = QueryBuilder::<D>::new(format!("SELECT * FROM {table} WHERE id = "));
    Value::id(id).bind(&mut query);
    query.push(lock.clause::<D>(None));
    one::<D, _>(conn, query, decode).await
}

/// The rows a task action starts from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskRows {
    pub task: Option<Task>,
    pub agent: Option<Agent>,
    pub attempt: Option<TaskAttempt>,
    /// The database clock when they were read, where it was read along (PostgreSQL).
    pub clock: Option<Timestamp>,
}

/// The task `id` with the agent `agent` (or, without one, the task's own), both locked
/// with `lock`, and the task's latest attempt: the rows a task action starts from, read as
/// one script.
pub(crate) async fn task_with_agent_and_attempt<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: TaskId,
    agent: Option<AgentId>,
    lock: Lock,
) -> Result<TaskRows> {
    if !D::SCRIPTS {
        return task_with_agent_and_attempt_as_json(conn, id, agent, lock).await;
    }
    let task: Part<D> = Box::new(move |query| {
        push_task_select(query);
        query.push(" WHERE t.id = ");
        Value::id(id).bind(query);
        query.push(lock.clause::<D>(Some("t")));
    });
    let agent: Part<D> = Box::new(move |query| {
        query.push("SELECT * FROM agents WHERE id = ");
        match agent {
            Some(agent) => Value::id(agent).bind(query),
            None => {
                query.push("(SELECT assigned_agent_id FROM tasks WHERE id = ");
                Value::id(id).bind(query);
                query.push(")");
            }
        }
        query.push(lock.clause::<D>(None));
    });
    let attempt: Part<D> = Box::new(move |query| {
        query.push("SELECT * FROM task_attempts WHERE task_id = ");
        Value::id(id).bind(query);
        query.push(" AND attempt_number = (SELECT attempt FROM tasks WHERE id = ");
        Value::id(id).bind(query);
        query.push(")");
    });
    let mut sets = conn
        .fetch_script(vec![task, agent, attempt])
        .await?
        .into_iter();
    Ok(TaskRows {
        task: first::<D, _>(sets.next(), task_from_row)?,
        agent: first::<D, _>(sets.next(), agent_from_row)?,
        attempt: first::<D, _>(sets.next(), attempt_from_row)?,
        clock: None,
    })
}

/// [`task_with_agent_and_attempt`] in one statement, for a dialect that runs one
/// statement per round trip (PostgreSQL): the agent and the attempt come as JSON columns
/// of the task's row, and the database clock along. Locks (with `lock`) the task, then
/// the agent.
async fn task_with_agent_and_attempt_as_json<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: TaskId,
    agent: Option<AgentId>,
    lock: Lock,
) -> Result<TaskRows> {
    let mut query = QueryBuilder::<D>::new("WITH t AS (SELECT * FROM tasks WHERE id = ");
    Value::id(id).bind(&mut query);
    query.push(lock.clause::<D>(None));
    query.push("), a AS (SELECT * FROM agents WHERE id = ");
    match agent {
        Some(agent) => Value::id(agent).bind(&mut query),
        None => {
            query.push("(SELECT assigned_agent_id FROM t)");
        }
    }
    query.push(lock.clause::<D>(None));
    query.push(format!(
        ") SELECT t.*, \
         (SELECT {} FROM task_dependencies d WHERE d.task_id = t.id) AS depends_on, \
         (SELECT to_jsonb(a) FROM a) AS agent_row, \
         (SELECT to_jsonb(p) FROM task_attempts p \
          WHERE p.task_id = t.id AND p.attempt_number = t.attempt) AS attempt_row, \
         clock_timestamp() AS clock \
         FROM t",
        D::DEPENDENCY_LIST
    ));
    let Some(row) = conn.fetch_optional(query).await? else {
        return Ok(TaskRows {
            task: None,
            agent: None,
            attempt: None,
            clock: None,
        });
    };
    let nested = |column: &str| row.json(column)?.map(JsonRow::new).transpose();
    Ok(TaskRows {
        task: Some(task_from_row(&row)?),
        agent: nested("agent_row")?
            .map(|r| agent_from_row(&r))
            .transpose()?,
        attempt: nested("attempt_row")?
            .map(|r| attempt_from_row(&r))
            .transpose()?,
        clock: row.instant("clock")?,
    })
}

pub(crate) async fn task<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: TaskId,
    lock: Lock,
) -> Result<Option<Task>> {
    let mut query = task_select::<D>();
    query.push(" WHERE t.id = ");
    Value::id(id).bind(&mut query);
    query.push(lock.clause::<D>(Some("t")));
    one::<D, _>(conn, query, task_from_row).await
}

/// The tasks among `ids` that exist.
pub(crate) async fn tasks_by_id<D: Dialect>(
    conn: &mut impl Exec<D>,
    ids: &[TaskId],
) -> Result<Vec<Task>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = task_select::<D>();
    query.push(" WHERE t.id IN (");
    push_list(&mut query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(")");
    all::<D, _>(conn, query, task_from_row).await
}

pub(crate) async fn task_by_idempotency_key<D: Dialect>(
    conn: &mut impl Exec<D>,
    key: &str,
) -> Result<Option<Task>> {
    let mut query = task_select::<D>();
    query.push(" WHERE t.idempotency_key = ");
    Value::text(key).bind(&mut query);
    one::<D, _>(conn, query, task_from_row).await
}

pub(crate) async fn agent<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: AgentId,
    lock: Lock,
) -> Result<Option<Agent>> {
    by_id::<D, _>(conn, "agents", id.into(), lock, agent_from_row).await
}

pub(crate) async fn runner_session<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: RunnerSessionId,
    lock: Lock,
) -> Result<Option<RunnerSession>> {
    by_id::<D, _>(
        conn,
        "runner_sessions",
        id.into(),
        lock,
        runner_session_from_row,
    )
    .await
}

pub(crate) async fn exception<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: ExceptionId,
    lock: Lock,
) -> Result<Option<Exception>> {
    by_id::<D, _>(conn, "exceptions", id.into(), lock, exception_from_row).await
}

pub(crate) async fn runner_session_by_token<D: Dialect>(
    conn: &mut impl Exec<D>,
    token_hash: &str,
) -> Result<Option<RunnerSession>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM runner_sessions WHERE token_hash = ");
    Value::text(token_hash).bind(&mut query);
    one::<D, _>(conn, query, runner_session_from_row).await
}

pub(crate) async fn runner_sessions<D: Dialect>(
    conn: &mut impl Exec<D>,
) -> Result<Vec<RunnerSession>> {
    let query =
        QueryBuilder::<D>::new("SELECT * FROM runner_sessions ORDER BY created_at DESC, id DESC");
    all::<D, _>(conn, query, runner_session_from_row).await
}

pub(crate) async fn attempts<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
) -> Result<Vec<TaskAttempt>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM task_attempts WHERE task_id = ");
    Value::id(task).bind(&mut query);
    query.push(" ORDER BY attempt_number");
    all::<D, _>(conn, query, attempt_from_row).await
}

/// The ids among `ids` that `table` has no row for.
pub(crate) async fn missing<D: Dialect, T: Copy + Into<Uuid>>(
    conn: &mut impl Exec<D>,
    table: &str,
    ids: &[T],
) -> Result<Vec<T>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<D>::new(format!("SELECT id FROM {table} WHERE id IN ("));
    push_list(&mut query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(")");
    let present = all::<D, _>(conn, query, |row: &D::Row| row.uuid("id")).await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !present.contains(&Some((*id).into())))
        .collect())
}

pub(crate) async fn unfinished_dependencies<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
) -> Result<Vec<(TaskId, TaskStatus)>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT t.id, t.status FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on_id \
         WHERE t.status <> 'COMPLETED' AND d.task_id = ",
    );
    Value::id(task).bind(&mut query);
    query.push(" ORDER BY t.id");
    all::<D, _>(conn, query, |row: &D::Row| {
        let id = row
            .uuid("id")?
            .ok_or_else(|| Error::backend("a dependency without an id"))?;
        let status = row.text("status")?.unwrap_or_default().parse()?;
        Ok((TaskId::from(id), status))
    })
    .await
}

pub(crate) async fn dependents<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
) -> Result<Vec<TaskId>> {
    let mut query =
        QueryBuilder::<D>::new("SELECT task_id FROM task_dependencies WHERE depends_on_id = ");
    Value::id(task).bind(&mut query);
    query.push(" ORDER BY task_id");
    let ids = all::<D, _>(conn, query, |row: &D::Row| row.uuid("task_id")).await?;
    Ok(ids.into_iter().flatten().map(TaskId::from).collect())
}

pub(crate) async fn unresolved_exception<D: Dialect>(
    conn: &mut impl Exec<D>,
    kind: ExceptionType,
    task: TaskId,
) -> Result<Option<Exception>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT * FROM exceptions WHERE status IN ('OPEN', 'ACKNOWLEDGED') AND exception_type = ",
    );
    Value::text(kind.as_str()).bind(&mut query);
    query.push(" AND task_id = ");
    Value::id(task).bind(&mut query);
    query.push(Lock::ForUpdate.clause::<D>(None));
    one::<D, _>(conn, query, exception_from_row).await
}

/// Conditions joined by `AND`, each a SQL fragment followed by one bound value.
type Filters = Vec<(&'static str, Value)>;

fn push_filters<D: Dialect>(query: &mut QueryBuilder<D>, filters: &Filters) {
    query.push(" WHERE 1 = 1");
    for (condition, value) in filters {
        query.push(" AND ").push(*condition);
        value.clone().bind(query);
    }
}

fn push_page<D: Dialect>(query: &mut QueryBuilder<D>, limit: u32, offset: u64) {
    push_limit(query, limit);
    query.push(" OFFSET ");
    Value::count(offset).bind(query);
}

fn direction(order: SortOrder) -> &'static str {
    match order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    }
}

pub(crate) async fn tasks<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &TaskQuery,
) -> Result<Page<Task>> {
    let mut filters: Filters = Vec::new();
    if let Some(priority) = query.priority {
        filters.push(("t.priority = ", Value::int(priority)));
    }
    // A status is one of a closed set of names, written into the statement: SQLite
    // prepares a statement again at every run when it compares a bound value with a
    // partial index's condition (`tasks_delayed` names a status).
    let status = query
        .status
        .map(|status| format!(" AND t.status = '{}'", status.as_str()));
    let needle = query.search_needle();
    let with_search = |builder: &mut QueryBuilder<D>| {
        push_filters::<D>(builder, &filters);
        if let Some(status) = &status {
            builder.push(status.as_str());
        }
        if let Some(needle) = &needle {
            builder.push(" AND (");
            D::push_contains(builder, "t.title", needle.clone());
            builder.push(" OR ");
            D::push_contains(builder, "t.description", needle.clone());
            builder.push(")");
        }
    };
    let mut count = QueryBuilder::<D>::new("SELECT COUNT(*) FROM tasks t");
    with_search(&mut count);
    let total_count = conn.fetch_count(count).await?;

    let dir = direction(query.sort_order);
    let bytes = D::BYTE_ORDER;
    let primary = match query.sort_by {
        TaskSort::Priority => "t.priority".to_owned(),
        TaskSort::CreatedAt => String::new(),
        TaskSort::UpdatedAt => "t.updated_at".to_owned(),
        TaskSort::Status => format!("t.status{bytes}"),
        TaskSort::Title => format!("t.title{bytes}"),
    };
    let mut page = task_select::<D>();
    with_search(&mut page);
    page.push(" ORDER BY ");
    if !primary.is_empty() {
        page.push(format!("{primary} {dir}, "));
    }
    page.push(format!("t.created_at {dir}, t.id {dir}"));
    push_page::<D>(&mut page, query.limit, query.offset);
    Ok(Page {
        items: all::<D, _>(conn, page, task_from_row).await?,
        total_count,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(crate) async fn agents<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &AgentQuery,
) -> Result<Page<Agent>> {
    let mut filters: Filters = Vec::new();
    if let Some(status) = query.status {
        filters.push(("status = ", Value::text(status.as_str())));
    }
    if let Some(session) = query.runner_session_id {
        filters.push(("runner_session_id = ", Value::id(session)));
    }
    let mut count = QueryBuilder::<D>::new("SELECT COUNT(*) FROM agents");
    push_filters::<D>(&mut count, &filters);
    let total_count = conn.fetch_count(count).await?;
    let mut page = QueryBuilder::<D>::new("SELECT * FROM agents");
    push_filters::<D>(&mut page, &filters);
    page.push(" ORDER BY created_at DESC, id DESC");
    push_page::<D>(&mut page, query.limit, query.offset);
    Ok(Page {
        items: all::<D, _>(conn, page, agent_from_row).await?,
        total_count,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(crate) async fn logs<D: Dialect>(conn: &mut impl Exec<D>, query: &LogQuery) -> Result<LogPage> {
    let mut filters: Filters = Vec::new();
    if let Some(agent) = query.agent_id {
        filters.push(("agent_id = ", Value::id(agent)));
    }
    if let Some(task) = query.task_id {
        filters.push(("task_id = ", Value::id(task)));
    }
    if let Some(kind) = query.log_type {
        filters.push(("log_type = ", Value::text(kind.as_str())));
    }
    let mut count = QueryBuilder::<D>::new("SELECT COUNT(*) FROM agent_logs");
    push_filters::<D>(&mut count, &filters);
    let total_count = conn.fetch_count(count).await?;
    let mut page = QueryBuilder::<D>::new("SELECT * FROM agent_logs");
    push_filters::<D>(&mut page, &filters);
    if let Some(cursor) = query.before {
        page.push(" AND (created_at < ");
        Value::at(cursor.created_at).bind(&mut page);
        page.push(" OR (created_at = ");
        Value::at(cursor.created_at).bind(&mut page);
        page.push(" AND id < ");
        Value::id(cursor.id).bind(&mut page);
        page.push("))");
    }
    page.push(" ORDER BY created_at DESC, id DESC");
    push_limit(&mut page, query.limit + 1);
    let logs = all::<D, _>(conn, page, log_from_row).await?;
    Ok(LogPage::from_fetched(logs, query.limit, total_count))
}

pub(crate) async fn verification_results<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
    limit: u32,
) -> Result<Vec<VerificationResult>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM verification_results WHERE task_id = ");
    Value::id(task).bind(&mut query);
    query.push(" ORDER BY attempt_number DESC");
    push_limit(&mut query, limit);
    all::<D, _>(conn, query, verification_from_row).await
}

pub(crate) async fn exceptions<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &ExceptionQuery,
) -> Result<Page<Exception>> {
    let mut filters: Filters = Vec::new();
    if let Some(status) = query.status {
        filters.push(("status = ", Value::text(status.as_str())));
    }
    if let Some(severity) = query.severity {
        filters.push(("severity = ", Value::text(severity.as_str())));
    }
    if let Some(kind) = query.exception_type {
        filters.push(("exception_type = ", Value::text(kind.as_str())));
    }
    if let Some(task) = query.task_id {
        filters.push(("task_id = ", Value::id(task)));
    }
    if let Some(agent) = query.agent_id {
        filters.push(("agent_id = ", Value::id(agent)));
    }
    let mut count = QueryBuilder::<D>::new("SELECT COUNT(*) FROM exceptions");
    push_filters::<D>(&mut count, &filters);
    let total_count = conn.fetch_count(count).await?;
    let mut page = QueryBuilder::<D>::new("SELECT * FROM exceptions");
    push_filters::<D>(&mut page, &filters);
    page.push(
        " ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 \
         WHEN 'WARNING' THEN 2 ELSE 3 END, created_at DESC, id DESC",
    );
    push_page::<D>(&mut page, query.limit, query.offset);
    Ok(Page {
        items: all::<D, _>(conn, page, exception_from_row).await?,
        total_count,
        limit: query.limit,
        offset: query.offset,
    })
}

pub(crate) async fn events_since<D: Dialect>(
    conn: &mut impl Exec<D>,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM events WHERE seq > ");
    Value::int(after).bind(&mut query);
    query.push(" ORDER BY seq");
    push_limit(&mut query, limit);
    all::<D, _>(conn, query, event_from_row).await
}

/// Up to `limit` claimable tasks in queue order after `after` (priority, creation,
/// id): QUEUED, past `notBefore`, every dependency COMPLETED. The rows are not locked: a
/// claim looking this far takes the one it wants with [`claimable_task`], so that reading
/// deep into a blocked queue does not hold every row it read against other claims.
pub(crate) async fn claimable<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    after: Option<Task>,
    limit: u32,
) -> Result<Vec<Task>> {
    let query = from_part(claimable_rows::<D>(now, after, limit, false));
    all::<D, _>(conn, query, task_from_row).await
}

/// The first `limit` claimable tasks (see [`claimable`]), for a script; where the dialect
/// can, rows other claimers have locked are passed over, and the returned ones stay
/// locked.
pub(crate) fn claimable_part<D: Dialect>(now: Timestamp, limit: u32) -> Part<D> {
    claimable_rows::<D>(now, None, limit, true)
}

/// Task `id` if it is still claimable, locked; `None` as well where another claimer holds
/// its row.
pub(crate) async fn claimable_task<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    id: TaskId,
) -> Result<Option<Task>> {
    let mut query = QueryBuilder::<D>::new("");
    push_task_select(&mut query);
    push_claimable_conditions(&mut query, now);
    query.push(" AND t.id = ");
    Value::id(id).bind(&mut query);
    query.push(D::SKIP_LOCKED);
    one::<D, _>(conn, query, task_from_row).await
}

fn claimable_rows<D: Dialect>(
    now: Timestamp,
    after: Option<Task>,
    limit: u32,
    lock: bool,
) -> Part<D> {
    Box::new(move |query| {
        push_task_select(query);
        push_claimable_conditions(query, now);
        if let Some(last) = after {
            query.push(" AND (t.priority, t.created_at, t.id) > (");
            push_list(
                query,
                vec![
                    Value::int(last.priority),
                    Value::at(last.created_at),
                    Value::id(last.id),
                ],
            );
            query.push(")");
        }
        query.push(" ORDER BY t.priority, t.created_at, t.id");
        push_limit(query, limit);
        if lock {
            query.push(D::SKIP_LOCKED);
        }
    })
}

/// ` WHERE` the task `t` is claimable at `now`, its files hint aside.
fn push_claimable_conditions<D: Dialect>(query: &mut QueryBuilder<D>, now: Timestamp) {
    query.push(" WHERE t.status = 'QUEUED' AND (t.not_before IS NULL OR t.not_before <= ");
    Value::at(now).bind(query);
    query.push(
        ") AND NOT EXISTS (SELECT 1 FROM task_dependencies d \
         JOIN tasks dt ON dt.id = d.depends_on_id \
         WHERE d.task_id = t.id AND dt.status <> 'COMPLETED')",
    );
}

/// Decodes the rows of a script's result set.
pub(crate) fn decode_all<R, T>(rows: &[R], decode: fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// Ids of up to `limit` running tasks whose lease ran out by `now`, earliest first.
pub(crate) async fn expired_leases<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<TaskId>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT id FROM tasks WHERE status IN ('ASSIGNED', 'IN_PROGRESS', 'VERIFYING') \
         AND lease_expires_at <= ",
    );
    Value::at(now).bind(&mut query);
    query.push(" ORDER BY lease_expires_at, id");
    push_limit(&mut query, limit);
    let ids = all::<D, _>(conn, query, |row: &D::Row| row.uuid("id")).await?;
    Ok(ids.into_iter().flatten().map(TaskId::from).collect())
}

/// Ids of ACTIVE runner sessions not seen since `seen_before`.
pub(crate) async fn quiet_runners<D: Dialect>(
    conn: &mut impl Exec<D>,
    seen_before: Timestamp,
) -> Result<Vec<RunnerSessionId>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT id FROM runner_sessions WHERE status = 'ACTIVE' AND last_seen_at < ",
    );
    Value::at(seen_before).bind(&mut query);
    query.push(" ORDER BY id");
    let ids = all::<D, _>(conn, query, |row: &D::Row| row.uuid("id")).await?;
    Ok(ids
        .into_iter()
        .flatten()
        .map(RunnerSessionId::from)
        .collect())
}

/// Running tasks with a live lease whose agent, not paused, has shown no activity since
/// `quiet_since`.
pub(crate) async fn stalled<D: Dialect>(
    conn: &mut impl Exec<D>,
    quiet_since: Timestamp,
    now: Timestamp,
) -> Result<Vec<Task>> {
    let mut query = task_select::<D>();
    query.push(
        " JOIN agents a ON a.id = t.assigned_agent_id \
         WHERE t.status IN ('ASSIGNED', 'IN_PROGRESS', 'VERIFYING') AND a.status <> 'PAUSED' \
         AND t.lease_expires_at > ",
    );
    Value::at(now).bind(&mut query);
    query.push(" AND (a.last_activity_at IS NULL OR a.last_activity_at < ");
    Value::at(quiet_since).bind(&mut query);
    query.push(") ORDER BY t.id");
    all::<D, _>(conn, query, task_from_row).await
}

/// The earliest instant after `now` at which a queued task's `notBefore` passes or a lock
/// runs out (each through an index).
pub(crate) async fn next_due<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT (SELECT MIN(not_before) FROM tasks \
         WHERE status = 'QUEUED' AND not_before IS NOT NULL AND not_before > ",
    );
    Value::at(now).bind(&mut query);
    query.push(") AS task_due, (SELECT MIN(expires_at) FROM file_locks WHERE expires_at > ");
    Value::at(now).bind(&mut query);
    query.push(") AS lock_due");
    let Some(row) = conn.fetch_optional(query).await? else {
        return Ok(None);
    };
    let task_due = row.instant("task_due")?;
    let lock_due = row.instant("lock_due")?;
    Ok(task_due.into_iter().chain(lock_due).min())
}

/// Up to `limit` QUEUED tasks waiting, directly or through other queued tasks, for a task
/// that FAILED or was CANCELLED.
pub(crate) async fn blocked<D: Dialect>(
    conn: &mut impl Exec<D>,
    limit: u32,
) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
    // `stuck`: every queued task that waits, directly or through queued tasks in between,
    // for a task that FAILED or was CANCELLED (the blocker).
    let mut query = QueryBuilder::<D>::new(format!(
        "WITH RECURSIVE stuck (task_id, blocker_id, blocker_status) AS ( \
             SELECT bd.task_id, dt.id, dt.status FROM task_dependencies bd \
             JOIN tasks dt ON dt.id = bd.depends_on_id \
             JOIN tasks waiter ON waiter.id = bd.task_id \
             WHERE dt.status IN ('FAILED', 'CANCELLED') AND waiter.status = 'QUEUED' \
           UNION \
             SELECT d.task_id, s.blocker_id, s.blocker_status FROM task_dependencies d \
             JOIN stuck s ON d.depends_on_id = s.task_id \
             JOIN tasks waiter ON waiter.id = d.task_id \
             WHERE waiter.status = 'QUEUED') \
         SELECT t.*, (SELECT {} FROM task_dependencies d WHERE d.task_id = t.id) AS depends_on, \
         s.blocker_id, s.blocker_status \
         FROM tasks t JOIN stuck s ON s.task_id = t.id \
         WHERE NOT EXISTS (SELECT 1 FROM exceptions e WHERE e.task_id = t.id \
         AND e.status IN ('OPEN', 'ACKNOWLEDGED') AND e.exception_type = ",
        D::DEPENDENCY_LIST
    ));
    Value::text(change::BLOCKED_TASK_EXCEPTION.as_str()).bind(&mut query);
    query.push(") ORDER BY t.created_at, t.id, s.blocker_id");
    push_limit(&mut query, limit);
    let rows = all::<D, _>(conn, query, |row: &D::Row| {
        let task = task_from_row(row)?;
        let blocker = row
            .uuid("blocker_id")?
            .ok_or_else(|| Error::backend("a blocking dependency without an id"))?;
        let status = row.text("blocker_status")?.unwrap_or_default().parse()?;
        Ok((task, TaskId::from(blocker), status))
    })
    .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|(task, _, _)| seen.insert(task.id))
        .collect())
}

/// The newest event sequence number (0 for an empty log).
pub(crate) async fn newest_event_seq<D: Dialect>(conn: &mut impl Exec<D>) -> Result<i64> {
    let query = QueryBuilder::<D>::new("SELECT COALESCE(MAX(seq), 0) FROM events");
    Ok(i64::try_from(conn.fetch_count(query).await?).unwrap_or(i64::MAX))
}

/// The agents with the given ids, locked until the transaction ends (where the dialect
/// locks rows), in id order; unknown ids are left out.
pub(crate) async fn agents_by_id<D: Dialect>(
    conn: &mut impl Exec<D>,
    ids: &[AgentId],
    lock: Lock,
) -> Result<Vec<Agent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = from_part(agents_by_id_part::<D>(ids, lock));
    all::<D, _>(conn, query, agent_from_row).await
}

/// The statement of [`agents_by_id`] (for at least one id), for a script.
pub(crate) fn agents_by_id_part<D: Dialect>(ids: &[AgentId], lock: Lock) -> Part<D> {
    let ids: Vec<Value> = ids.iter().map(|id| Value::id(*id)).collect();
    Box::new(move |query| {
        query.push("SELECT * FROM agents WHERE id IN (");
        push_list(query, ids);
        query.push(") ORDER BY id");
        query.push(lock.clause::<D>(None));
    })
}

/// For each row of `owners` among `ids`: its id and, per `(alias, table, column)`, how
/// many rows of `table` point at it through `column` (an indexed lookup each).
fn related_counts<D: Dialect>(
    owners: &str,
    ids: Vec<Value>,
    related: &[(&str, &str, &str)],
) -> QueryBuilder<D> {
    let mut sql = String::from("SELECT o.id");
    for (alias, table, column) in related {
        sql.push_str(&format!(
            ", (SELECT COUNT(*) FROM {table} r WHERE r.{column} = o.id) AS {alias}"
        ));
    }
    sql.push_str(&format!(" FROM {owners} o WHERE o.id IN ("));
    let mut query = QueryBuilder::<D>::new(sql);
    push_list(&mut query, ids);
    query.push(")");
    query
}

/// Verification results, log entries and exceptions per task of `ids`.
pub(crate) async fn task_activity_counts<D: Dialect>(
    conn: &mut impl Exec<D>,
    ids: &[TaskId],
) -> Result<Vec<TaskActivityCounts>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = related_counts::<D>(
        "tasks",
        ids.iter().map(|id| Value::id(*id)).collect(),
        &[
            ("verifications", "verification_results", "task_id"),
            ("logs", "agent_logs", "task_id"),
            ("exceptions", "exceptions", "task_id"),
        ],
    );
    all::<D, _>(conn, query, task_activity_from_row).await
}

/// Log entries, file locks and exceptions per agent of `ids`.
pub(crate) async fn agent_activity_counts<D: Dialect>(
    conn: &mut impl Exec<D>,
    ids: &[AgentId],
) -> Result<Vec<AgentActivityCounts>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = related_counts::<D>(
        "agents",
        ids.iter().map(|id| Value::id(*id)).collect(),
        &[
            ("logs", "agent_logs", "agent_id"),
            ("file_locks", "file_locks", "agent_id"),
            ("exceptions", "exceptions", "agent_id"),
        ],
    );
    all::<D, _>(conn, query, agent_activity_from_row).await
}

/// The server setting `name`, if set.
pub(crate) async fn setting<D: Dialect>(
    conn: &mut impl Exec<D>,
    name: &str,
) -> Result<Option<String>> {
    let mut query = QueryBuilder::<D>::new("SELECT value FROM server_settings WHERE name = ");
    Value::text(name).bind(&mut query);
    conn.fetch_optional(query)
        .await?
        .map(|row| {
            row.text("value")?
                .ok_or_else(|| Error::backend("setting without a value"))
        })
        .transpose()
}

/// Rows of `sql` (`SELECT <text key> AS k, COUNT(*) AS n ... GROUP BY ...`) as counts per
/// parsed key.
async fn grouped_counts<D: Dialect, K: Ord + FromStr<Err = Error>>(
    conn: &mut impl Exec<D>,
    sql: &str,
) -> Result<BTreeMap<K, u64>> {
    let rows = conn.fetch_all(QueryBuilder::<D>::new(sql)).await?;
    rows.iter()
        .map(|row| {
            let key = row
                .text("k")?
                .ok_or_else(|| Error::backend("grouped count without a key"))?;
            let count = row.integer("n")?.unwrap_or(0);
            Ok((key.parse()?, u64::try_from(count).unwrap_or(0)))
        })
        .collect()
}

/// The dashboard's counts, each through an index or a grouped scan of one table.
pub(crate) async fn stats<D: Dialect>(
    conn: &mut impl Exec<D>,
    since: Timestamp,
) -> Result<SystemStats> {
    let tasks_by_status = grouped_counts::<D, _>(
        conn,
        "SELECT status AS k, COUNT(*) AS n FROM tasks GROUP BY status",
    )
    .await?;
    let agents_by_status = grouped_counts::<D, _>(
        conn,
        "SELECT status AS k, COUNT(*) AS n FROM agents GROUP BY status",
    )
    .await?;
    let open_exceptions_by_severity = grouped_counts::<D, _>(
        conn,
        "SELECT severity AS k, COUNT(*) AS n FROM exceptions WHERE status = 'OPEN' \
         GROUP BY severity",
    )
    .await?;
    let exceptions_total = conn
        .fetch_count(QueryBuilder::<D>::new("SELECT COUNT(*) FROM exceptions"))
        .await?;
    let mut completed = QueryBuilder::<D>::new(
        "SELECT COUNT(*) FROM tasks WHERE status = 'COMPLETED' AND completed_at >= ",
    );
    Value::at(since).bind(&mut completed);
    let completed_since = conn.fetch_count(completed).await?;
    let mut failed = QueryBuilder::<D>::new(
        "SELECT COUNT(*) FROM tasks WHERE status = 'FAILED' AND updated_at >= ",
    );
    Value::at(since).bind(&mut failed);
    let failed_since = conn.fetch_count(failed).await?;
    let recent = QueryBuilder::<D>::new(format!(
        "SELECT assigned_at, completed_at FROM tasks WHERE status = 'COMPLETED' \
         AND assigned_at IS NOT NULL AND completed_at IS NOT NULL \
         ORDER BY completed_at DESC LIMIT {COMPLETION_SAMPLE}"
    ));
    let durations = conn
        .fetch_all(recent)
        .await?
        .iter()
        .map(|row| {
            let assigned = row.instant("assigned_at")?;
            let completed = row.instant("completed_at")?;
            Ok(match (assigned, completed) {
                (Some(assigned), Some(completed)) => completed.as_millis() - assigned.as_millis(),
                _ => 0,
            })
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(SystemStats {
        tasks_by_status,
        agents_by_status,
        open_exceptions_by_severity,
        exceptions_total,
        completed_since,
        failed_since,
        mean_completion_ms: SystemStats::mean(&durations),
    })
}
