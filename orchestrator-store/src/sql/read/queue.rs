//! Reads of the queue: claimable tasks in order, and when work next comes due.

use orchestrator_core::Timestamp;
use orchestrator_core::error::Result;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::Task;
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit, push_list};
use crate::rows::{RowReader, task_from_row};

use super::{all, from_part, one, push_task_select};

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
