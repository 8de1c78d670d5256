//! Reads of tasks: single rows, the rows a task action starts from, lists, attempts,
//! dependencies and activity counts.

use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::{
    Agent, Page, SortKey, SortOrder, Task, TaskActivityCounts, TaskAttempt, TaskCursor, TaskQuery,
    TaskSort, TaskStatus,
};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit, push_list};
use crate::rows::{
    JsonRow, RowReader, agent_from_row, attempt_from_row, task_activity_from_row, task_from_row,
};

use super::{
    Filters, Lock, all, direction, first, one, push_filters, push_page, push_task_select,
    related_counts, task_select,
};

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

/// The task created with idempotency key `key`, and the fingerprint of what its creation
/// asked for (`None` for a task that has none).
pub(crate) async fn task_by_idempotency_key<D: Dialect>(
    conn: &mut impl Exec<D>,
    key: &str,
) -> Result<Option<(Task, Option<String>)>> {
    let mut query = task_select::<D>();
    query.push(" WHERE t.idempotency_key = ");
    Value::text(key).bind(&mut query);
    one::<D, _>(conn, query, |row: &D::Row| {
        Ok((task_from_row(row)?, row.text("idempotency_fingerprint")?))
    })
    .await
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

/// Attempt `number` of `task`, if it had one.
pub(crate) async fn attempt<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
    number: u32,
) -> Result<Option<TaskAttempt>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM task_attempts WHERE task_id = ");
    Value::id(task).bind(&mut query);
    query.push(" AND attempt_number = ");
    Value::count(u64::from(number)).bind(&mut query);
    one::<D, _>(conn, query, attempt_from_row).await
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

/// Whether any of `tasks` waits for `task`, directly or through the tasks it waits for.
pub(crate) async fn waits_for<D: Dialect>(
    conn: &mut impl Exec<D>,
    tasks: &[TaskId],
    task: TaskId,
) -> Result<bool> {
    if tasks.is_empty() {
        return Ok(false);
    }
    let mut query = QueryBuilder::<D>::new(
        "WITH RECURSIVE awaited (id) AS ( \
             SELECT depends_on_id FROM task_dependencies WHERE task_id IN (",
    );
    push_list(&mut query, tasks.iter().map(|id| Value::id(*id)).collect());
    query.push(
        ") UNION SELECT d.depends_on_id FROM task_dependencies d \
             JOIN awaited a ON d.task_id = a.id) \
         SELECT COUNT(*) FROM awaited WHERE id = ",
    );
    Value::id(task).bind(&mut query);
    Ok(conn.fetch_count(query).await? > 0)
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

pub(crate) async fn tasks<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &TaskQuery,
) -> Result<Page<Task>> {
    let mut filters: Filters = Vec::new();
    if let Some(priority) = query.priority {
        filters.push(("t.priority = ", Value::int(priority)));
    }
    if let Some(prefix) = &query.id_prefix {
        let (lowest, highest) = prefix.range();
        filters.push(("t.id >= ", Value::id(lowest)));
        filters.push(("t.id <= ", Value::id(highest)));
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
    if let Some(cursor) = &query.after {
        push_after_cursor::<D>(&mut page, &primary, cursor, query.sort_order);
    }
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

/// Keeps the rows after `cursor` in the list's order: a row-value comparison over the
/// sort columns, which the sort's index answers.
fn push_after_cursor<D: Dialect>(
    page: &mut QueryBuilder<D>,
    primary: &str,
    cursor: &TaskCursor,
    order: SortOrder,
) {
    let beyond = match order {
        SortOrder::Asc => ">",
        SortOrder::Desc => "<",
    };
    let key = match &cursor.key {
        SortKey::None => None,
        SortKey::Priority(priority) => Some(Value::int(*priority)),
        SortKey::Time(at) => Some(Value::at(*at)),
        SortKey::Text(text) => Some(Value::text(text.clone())),
    };
    page.push(" AND (");
    if key.is_some() {
        page.push(format!("{primary}, "));
    }
    page.push(format!("t.created_at, t.id) {beyond} ("));
    if let Some(key) = key {
        key.bind(page);
        page.push(", ");
    }
    Value::at(cursor.created_at).bind(page);
    page.push(", ");
    Value::id(cursor.id).bind(page);
    page.push(")");
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

/// Up to `limit` queued tasks with a files hint but no path rows (queued before the
/// database kept them).
pub(crate) async fn queued_tasks_without_paths<D: Dialect>(
    conn: &mut impl Exec<D>,
    limit: u32,
) -> Result<Vec<Task>> {
    let mut query = task_select::<D>();
    query.push(
        " WHERE t.status = 'QUEUED' AND t.files_hint <> '[]' \
         AND NOT EXISTS (SELECT 1 FROM task_path_ranges r WHERE r.task_id = t.id)",
    );
    push_limit(&mut query, limit);
    all::<D, _>(conn, query, task_from_row).await
}
