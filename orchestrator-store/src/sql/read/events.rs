//! Reads of the event log.

use orchestrator_core::error::Result;
use orchestrator_core::model::Event;
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value, push_limit};
use crate::rows::event_from_row;

use super::all;

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

/// The newest event sequence number (0 for an empty log).
pub(crate) async fn newest_event_seq<D: Dialect>(conn: &mut impl Exec<D>) -> Result<i64> {
    let query = QueryBuilder::<D>::new("SELECT COALESCE(MAX(seq), 0) FROM events");
    Ok(i64::try_from(conn.fetch_count(query).await?).unwrap_or(i64::MAX))
}
