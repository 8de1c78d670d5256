//! Reads of agent slots.

use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::AgentId;
use orchestrator_core::model::{Agent, AgentActivityCounts, AgentQuery, AgentSort, Page};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Part, Value, push_list};
use crate::rows::{RowReader, agent_activity_from_row, agent_from_row};

use super::{
    Filters, Lock, all, by_id, direction, from_part, push_filters, push_page, related_counts,
};

pub(crate) async fn agent<D: Dialect>(
    conn: &mut impl Exec<D>,
    id: AgentId,
    lock: Lock,
) -> Result<Option<Agent>> {
    by_id::<D, _>(conn, "agents", id.into(), lock, agent_from_row).await
}

pub(crate) async fn agents<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &AgentQuery,
) -> Result<Page<Agent>> {
    let mut filters: Filters = Vec::new();
    if let Some(status) = query.status {
        filters.push(("a.status = ", Value::text(status.as_str())));
    }
    if let Some(session) = query.runner_session_id {
        filters.push(("a.runner_session_id = ", Value::id(session)));
    }
    if let Some(prefix) = &query.id_prefix {
        let (lowest, highest) = prefix.range();
        filters.push(("a.id >= ", Value::id(lowest)));
        filters.push(("a.id <= ", Value::id(highest)));
    }
    let needle = query.search_needle();
    // The current task's title is searched too; without a search no join is needed.
    let from = if needle.is_some() {
        " FROM agents a LEFT JOIN tasks t ON t.id = a.current_task_id"
    } else {
        " FROM agents a"
    };
    let with_search = |builder: &mut QueryBuilder<D>| {
        push_filters::<D>(builder, &filters);
        if let Some(needle) = &needle {
            builder.push(" AND (");
            D::push_contains(builder, "a.name", needle.clone());
            builder.push(" OR ");
            D::push_contains(builder, "CAST(a.id AS TEXT)", needle.clone());
            builder.push(" OR ");
            D::push_contains(builder, "t.title", needle.clone());
            builder.push(")");
        }
    };
    let mut count = QueryBuilder::<D>::new(format!("SELECT COUNT(*){from}"));
    with_search(&mut count);
    let total_count = conn.fetch_count(count).await?;
    let mut page = QueryBuilder::<D>::new(format!("SELECT a.*{from}"));
    with_search(&mut page);
    let dir = direction(query.sort_order);
    let bytes = D::BYTE_ORDER;
    page.push(" ORDER BY ");
    match query.sort_by {
        AgentSort::CreatedAt => {}
        // Unnamed slots last in either direction (the stores differ on where NULL sorts).
        AgentSort::Name => {
            page.push(format!("(a.name IS NULL), a.name{bytes} {dir}, "));
        }
        AgentSort::Status => {
            page.push(format!("a.status{bytes} {dir}, "));
        }
    }
    page.push(format!("a.created_at {dir}, a.id {dir}"));
    push_page::<D>(&mut page, query.limit, query.offset);
    Ok(Page {
        items: all::<D, _>(conn, page, agent_from_row).await?,
        total_count,
        limit: query.limit,
        offset: query.offset,
    })
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

/// Log entries, file locks and exceptions per agent of `ids`.
/// The summed cost of each agent's attempts, one grouped read over the attempts' agent
/// index.
pub(crate) async fn agent_costs<D: Dialect>(
    conn: &mut impl Exec<D>,
    ids: &[AgentId],
) -> Result<Vec<(AgentId, f64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<D>::new(
        "SELECT agent_id, SUM(cost_usd) AS cost FROM task_attempts WHERE agent_id IN (",
    );
    push_list(&mut query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(") GROUP BY agent_id");
    all::<D, _>(conn, query, |row: &D::Row| {
        let agent = row
            .uuid("agent_id")?
            .ok_or_else(|| Error::backend("a cost without its agent"))?;
        Ok((AgentId::from(agent), row.real("cost")?.unwrap_or(0.0)))
    })
    .await
}

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
