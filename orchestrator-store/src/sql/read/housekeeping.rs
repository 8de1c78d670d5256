//! Reads for the supervisor's passes and the system's counts.

use std::collections::BTreeMap;
use std::str::FromStr;

use orchestrator_core::Timestamp;
use orchestrator_core::change;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Activity, AttemptSpan, COMPLETION_SAMPLE, QueueStay, SystemStats, Task, TaskStatus,
};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value, push_limit};
use crate::rows::{RowReader, task_from_row};

use super::{all, task_select};

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

/// The activity of the `hours` hours ending with the one holding `now`, from the stays
/// in the queue of the tasks that were queued in the window and the attempts that
/// started or ended in it.
pub(crate) async fn activity<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
    hours: u32,
) -> Result<Activity> {
    let since = Activity::window_start(now, hours);
    let mut tasks = QueryBuilder::<D>::new(
        "SELECT t.created_at, t.updated_at, t.status, \
         (SELECT MIN(a.started_at) FROM task_attempts a WHERE a.task_id = t.id) AS first_start \
         FROM tasks t WHERE t.status = 'QUEUED' OR t.updated_at >= ",
    );
    Value::at(since).bind(&mut tasks);
    let mut stays = Vec::new();
    for row in conn.fetch_all(tasks).await? {
        let required = |column: &str| {
            row.instant(column)?
                .ok_or_else(|| Error::backend(format!("a task without {column}")))
        };
        stays.extend(QueueStay::of_task(
            required("created_at")?,
            row.text("status")?.as_deref() == Some(TaskStatus::Queued.as_str()),
            row.instant("first_start")?,
            required("updated_at")?,
        ));
    }
    let mut attempts = QueryBuilder::<D>::new(
        "SELECT a.started_at, a.ended_at, a.outcome, a.attempt_number, \
         t.created_at AS task_created_at \
         FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE a.started_at >= ",
    );
    Value::at(since).bind(&mut attempts);
    attempts.push(" OR a.ended_at >= ");
    Value::at(since).bind(&mut attempts);
    let mut spans = Vec::new();
    for row in conn.fetch_all(attempts).await? {
        let started = row
            .instant("started_at")?
            .ok_or_else(|| Error::backend("an attempt without started_at"))?;
        let created = row.instant("task_created_at")?;
        spans.push(AttemptSpan {
            started,
            ended: row.instant("ended_at")?,
            outcome: row
                .text("outcome")?
                .ok_or_else(|| Error::backend("an attempt without outcome"))?
                .parse()?,
            waited_ms: (row.integer("attempt_number")? == Some(1))
                .then_some(created)
                .flatten()
                .map(|created| started.as_millis() - created.as_millis()),
        });
    }
    Ok(Activity::tally(now, hours, &stays, &spans))
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
