//! Reads of log entries and verification results.

use orchestrator_core::error::Result;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{
    AttemptChanges, LOG_COUNT_LIMIT, LogCursor, LogPage, LogQuery, VerificationResult,
};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value, push_limit};
use crate::rows::{attempt_changes_from_row, log_from_row, verification_from_row};

use super::{Filters, all, push_filters};

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
    let needle = query.search_needle();
    let with_search = |builder: &mut QueryBuilder<D>| {
        push_filters::<D>(builder, &filters);
        if let Some(needle) = &needle {
            builder.push(" AND ");
            D::push_contains(builder, "content", needle.clone());
        }
    };
    // Counted up to one past the limit: a long history is not read to count it.
    let mut count = QueryBuilder::<D>::new("SELECT COUNT(*) FROM (SELECT 1 FROM agent_logs");
    with_search(&mut count);
    push_limit(
        &mut count,
        u32::try_from(LOG_COUNT_LIMIT + 1).unwrap_or(u32::MAX),
    );
    count.push(") counted");
    let counted = conn.fetch_count(count).await?;
    let mut page = QueryBuilder::<D>::new("SELECT * FROM agent_logs");
    with_search(&mut page);
    if let Some(cursor) = query.before {
        push_beyond(&mut page, query, cursor, "<");
    }
    if let Some(cursor) = query.after {
        push_beyond(&mut page, query, cursor, ">");
    }
    let direction = if query.after.is_some() { "ASC" } else { "DESC" };
    if query.by_agent() {
        page.push(format!(" ORDER BY sequence {direction}"));
    } else {
        page.push(format!(
            " ORDER BY attempt {direction}, sequence {direction}"
        ));
    }
    push_limit(&mut page, query.limit + 1);
    let logs = all::<D, _>(conn, page, log_from_row).await?;
    Ok(LogPage::from_fetched(logs, query.limit, counted))
}

/// Keeps the entries on the `comparison` side (`<` older, `>` newer) of `cursor` in the
/// query's order.
fn push_beyond<D: Dialect>(
    page: &mut QueryBuilder<D>,
    query: &LogQuery,
    cursor: LogCursor,
    comparison: &str,
) {
    match cursor {
        LogCursor::Entry { sequence, .. } if query.by_agent() => {
            page.push(format!(" AND sequence {comparison} "));
            Value::count(sequence).bind(page);
        }
        LogCursor::Entry { attempt, sequence } => {
            page.push(format!(" AND (attempt {comparison} "));
            Value::int(attempt).bind(page);
            page.push(" OR (attempt = ");
            Value::int(attempt).bind(page);
            page.push(format!(" AND sequence {comparison} "));
            Value::count(sequence).bind(page);
            page.push("))");
        }
        LogCursor::Instant(at) => {
            page.push(format!(" AND created_at {comparison} "));
            Value::at(at).bind(page);
        }
    }
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

pub(crate) async fn attempt_changes<D: Dialect>(
    conn: &mut impl Exec<D>,
    task: TaskId,
) -> Result<Vec<AttemptChanges>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM attempt_changes WHERE task_id = ");
    Value::id(task).bind(&mut query);
    query.push(" ORDER BY attempt_number");
    all::<D, _>(conn, query, attempt_changes_from_row).await
}
