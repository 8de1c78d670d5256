//! Queued tasks set aside behind locks held for a while (`tasks.hidden_behind`), so that a
//! claim's walk of the queue passes only over tasks that may be free. Setting aside is an
//! optimization only: the database takes a task back when its lock goes, it leaves the
//! queue or its files hint changes (triggers of migration 0009), and claims take back
//! the tasks behind expired locks and behind their own slots' locks.

use orchestrator_core::Timestamp;
use orchestrator_core::error::Result;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::LockPath;
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value, push_limit, push_list};
use crate::rows::RowReader;

use super::read::{Lock, all};

/// Paths of live locks acquired at or before `held_since`: the tasks behind them may be
/// set aside.
pub(crate) async fn long_held_paths<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    held_since: Timestamp,
) -> Result<Vec<String>> {
    let mut query =
        QueryBuilder::<D>::new("SELECT DISTINCT file_path FROM file_locks WHERE expires_at > ");
    Value::at(now).bind(&mut query);
    query.push(" AND acquired_at <= ");
    Value::at(held_since).bind(&mut query);
    file_paths(conn, query).await
}

/// Up to `limit` queued tasks, not set aside yet, that a lock on `path` stands in the way
/// of. It walks the tasks not set aside (the ones claims walk), not every task behind
/// the lock, so a pass that finds nothing new costs about one claim's search.
pub(crate) async fn tasks_behind<D: Dialect>(
    conn: &mut impl Exec<D>,
    path: &str,
    limit: u32,
) -> Result<Vec<TaskId>> {
    let mut query = QueryBuilder::<D>::new(format!(
        "SELECT t.id FROM tasks t{} WHERE t.status = 'QUEUED' AND t.hidden_behind IS NULL",
        D::indexed_by("tasks_claim_order")
    ));
    push_behind(&mut query, "t", path);
    push_limit(&mut query, limit);
    let ids = all::<D, _>(conn, query, |row: &D::Row| row.uuid("id")).await?;
    Ok(ids.into_iter().flatten().map(TaskId::from).collect())
}

/// ` AND` a lock on `path` stands in the way of task `alias`: one of its path keys is
/// `path`, or one of its ranges holds it.
fn push_behind<D: Dialect>(query: &mut QueryBuilder<D>, alias: &str, path: &str) {
    query.push(format!(
        " AND (EXISTS (SELECT 1 FROM task_path_keys k WHERE k.task_id = {alias}.id AND k.key = "
    ));
    Value::text(path).bind(query);
    query.push(format!(
        ") OR EXISTS (SELECT 1 FROM task_path_ranges r WHERE r.task_id = {alias}.id \
         AND r.range_start <= "
    ));
    Value::text(path).bind(query);
    query.push(" AND (r.range_end IS NULL OR ");
    Value::text(path).bind(query);
    query.push(" < r.range_end)))");
}

/// Sets `ids` aside behind `path` if a lock on it is still live and was acquired at or
/// before `held_since` (kept until the transaction ends, so that its release, whose
/// trigger takes the tasks back, comes after), and each task is still queued, not set
/// aside, and behind `path`. Returns how many were set aside.
pub(crate) async fn hide<D: Dialect>(
    conn: &mut impl Exec<D>,
    path: &str,
    ids: &[TaskId],
    now: Timestamp,
    held_since: Timestamp,
) -> Result<u64> {
    let mut held = QueryBuilder::<D>::new("SELECT id FROM file_locks WHERE file_path = ");
    Value::text(path).bind(&mut held);
    held.push(" AND expires_at > ");
    Value::at(now).bind(&mut held);
    held.push(" AND acquired_at <= ");
    Value::at(held_since).bind(&mut held);
    held.push(Lock::ForUpdate.clause::<D>(None));
    if conn.fetch_all(held).await?.is_empty() || ids.is_empty() {
        return Ok(0);
    }
    let mut query = QueryBuilder::<D>::new("UPDATE tasks SET hidden_behind = ");
    Value::text(path).bind(&mut query);
    query.push(" WHERE status = 'QUEUED' AND hidden_behind IS NULL AND id IN (");
    push_list(&mut query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(")");
    push_behind(&mut query, "tasks", path);
    conn.execute(query).await
}

/// Paths that tasks are set aside behind although a claim by `holders` must see those
/// tasks: a lock on the path has expired, or one of `holders` holds it.
pub(crate) async fn paths_to_reveal<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    holders: &[AgentId],
) -> Result<Vec<String>> {
    let mut query = QueryBuilder::<D>::new(
        "SELECT DISTINCT l.file_path FROM file_locks l WHERE (l.expires_at <= ",
    );
    Value::at(now).bind(&mut query);
    if !holders.is_empty() {
        query.push(" OR l.agent_id IN (");
        push_list(
            &mut query,
            holders.iter().map(|id| Value::id(*id)).collect(),
        );
        query.push(")");
    }
    query.push(") AND EXISTS (SELECT 1 FROM tasks t WHERE t.hidden_behind = l.file_path)");
    file_paths(conn, query).await
}

/// The path of a live lock in the way of `paths`, if any: a task queued behind it is set
/// aside from the start. Where the dialect locks rows, the lock's row is kept from
/// release until the transaction ends, so that the release, whose trigger takes the task
/// back, comes after it.
pub(crate) async fn lock_in_the_way<D: Dialect>(
    conn: &mut impl Exec<D>,
    paths: &[LockPath],
    now: Timestamp,
) -> Result<Option<String>> {
    if paths.is_empty() {
        return Ok(None);
    }
    for lock in super::locks::held_overlapping::<D>(conn, paths, now).await? {
        if !D::LOCKS_ROWS {
            return Ok(Some(lock.file_path));
        }
        let mut query = QueryBuilder::<D>::new("SELECT id FROM file_locks WHERE id = ");
        Value::id(lock.id).bind(&mut query);
        query.push(" FOR SHARE");
        if conn.fetch_optional(query).await?.is_some() {
            return Ok(Some(lock.file_path));
        }
    }
    Ok(None)
}

/// Takes back the tasks set aside behind `paths`.
pub(crate) async fn reveal<D: Dialect>(conn: &mut impl Exec<D>, paths: &[String]) -> Result<u64> {
    if paths.is_empty() {
        return Ok(0);
    }
    let mut query =
        QueryBuilder::<D>::new("UPDATE tasks SET hidden_behind = NULL WHERE hidden_behind IN (");
    push_list(&mut query, paths.iter().cloned().map(Value::text).collect());
    query.push(")");
    conn.execute(query).await
}

/// Takes back the tasks set aside behind a path no live lock is on (after an expiry, or
/// where a release raced with setting aside).
pub(crate) async fn reveal_unheld<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
) -> Result<u64> {
    let mut query = QueryBuilder::<D>::new(
        "UPDATE tasks SET hidden_behind = NULL WHERE hidden_behind IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM file_locks l WHERE l.file_path = tasks.hidden_behind \
         AND l.expires_at > ",
    );
    Value::at(now).bind(&mut query);
    query.push(")");
    conn.execute(query).await
}

/// The `file_path` column of the rows `query` reads.
async fn file_paths<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: QueryBuilder<D>,
) -> Result<Vec<String>> {
    let paths = all::<D, _>(conn, query, |row: &D::Row| row.text("file_path")).await?;
    Ok(paths.into_iter().flatten().collect())
}
