//! Reads of exceptions.

use orchestrator_core::error::Result;
use orchestrator_core::ids::{ExceptionId, TaskId};
use orchestrator_core::model::{Exception, ExceptionQuery, ExceptionType, Page};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value};
use crate::rows::exception_from_row;

use super::{Filters, Lock, all, by_id, one, push_filters, push_page};

pub(crate) async fn exception<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: ExceptionId,
    lock: Lock,
) -> Result<Option<Exception>> {
    by_id::<D, _>(conn, "exceptions", id.into(), lock, exception_from_row).await
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
