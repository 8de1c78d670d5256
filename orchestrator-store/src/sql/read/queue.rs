//! Reads of the queue: claimable tasks in order, and when work next comes due.

use orchestrator_core::Timestamp;
use orchestrator_core::error::Result;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::Task;
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit, push_list};
use crate::rows::{RowReader, task_from_row};

use super::{all, from_part, one, push_task_select, push_task_select_from};

/// Up to `limit` claimable tasks in queue order after `after` (priority, creation,
/// id): QUEUED, past `notBefore`, every dependency COMPLETED, and no live lock of anyone
/// but `holders` in the way of the files hint (found through the task's path keys and
/// ranges, so the database passes over blocked tasks without handing them out). The rows
/// are not locked: a claim takes the one it wants with [`claimable_task`], so that reading
/// deep into a queue does not hold every row it read against other claims.
pub(crate) async fn claimable<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    holders: &[AgentId],
    after: Option<Task>,
    limit: u32,
) -> Result<Vec<Task>> {
    let query = from_part(claimable_rows::<D>(now, holders, after, limit, false));
    all::<D, _>(conn, query, task_from_row).await
}

/// The first `limit` claimable tasks (see [`claimable`]), for a script; where the dialect
/// can, rows other claimers have locked are passed over, and the returned ones stay
/// locked.
pub(crate) fn claimable_part<D: Dialect>(
    now: Timestamp,
    holders: &[AgentId],
    limit: u32,
) -> Part<D> {
    claimable_rows::<D>(now, holders, None, limit, true)
}

/// Those of the tasks `ids` that are still claimable (see [`claimable`]), in queue order,
/// for a script.
pub(crate) fn claimable_among_part<D: Dialect>(
    now: Timestamp,
    holders: &[AgentId],
    ids: &[TaskId],
) -> Part<D> {
    let holders = holders.to_vec();
    let ids: Vec<Value> = ids.iter().map(|id| Value::id(*id)).collect();
    Box::new(move |query| {
        push_task_select(query);
        push_claimable_conditions(query, now);
        push_paths_free(query, now, &holders);
        query.push(" AND t.id IN (");
        push_list(query, ids);
        query.push(") ORDER BY t.priority, t.created_at, t.id");
    })
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
    holders: &[AgentId],
    after: Option<Task>,
    limit: u32,
    lock: bool,
) -> Part<D> {
    let holders = holders.to_vec();
    Box::new(move |query| {
        push_task_select_from(query, &D::indexed_by("tasks_claim_order"));
        push_claimable_conditions(query, now);
        push_paths_free(query, now, &holders);
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

/// ` AND` task `t` is not set aside behind a long-held lock (see [`crate::sql::hidden`]),
/// and no live lock of anyone but `holders` stands in the way of its files hint: none has
/// one of the task's path keys (it covers one of its paths), and none lies in the key
/// range below one of its paths.
fn push_paths_free<D: Dialect>(query: &mut QueryBuilder<D>, now: Timestamp, holders: &[AgentId]) {
    let live = |query: &mut QueryBuilder<D>| {
        query.push(" AND l.expires_at > ");
        Value::at(now).bind(query);
        if !holders.is_empty() {
            query.push(" AND l.agent_id NOT IN (");
            push_list(query, holders.iter().map(|id| Value::id(*id)).collect());
            query.push(")");
        }
    };
    query.push(
        " AND t.hidden_behind IS NULL \
         AND NOT EXISTS (SELECT 1 FROM task_path_keys k JOIN file_locks l \
         ON l.file_path = k.key WHERE k.task_id = t.id",
    );
    live(query);
    query.push(
        ") AND NOT EXISTS (SELECT 1 FROM task_path_ranges r JOIN file_locks l \
         ON l.file_path >= r.range_start AND (r.range_end IS NULL OR l.file_path < r.range_end) \
         WHERE r.task_id = t.id",
    );
    live(query);
    query.push(")");
}

/// The earliest instant after `now` at which a queued task's `notBefore` passes or a lock
/// runs out (each through an index).
pub(crate) async fn next_due<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let mut query = QueryBuilder::<D>::new(format!(
        "SELECT (SELECT MIN(not_before) FROM tasks{} \
         WHERE status = 'QUEUED' AND not_before IS NOT NULL AND not_before > ",
        D::indexed_by("tasks_delayed")
    ));
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
