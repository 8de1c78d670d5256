//! Reads of runner sessions and server settings.

use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::RunnerSessionId;
use orchestrator_core::model::{RunnerSession, RunnerSessionStatus};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Value, push_limit};
use crate::rows::{RowReader, runner_session_from_row};

use super::{Lock, all, by_id, one};

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
    status: Option<RunnerSessionStatus>,
    limit: u32,
) -> Result<Vec<RunnerSession>> {
    let mut query = QueryBuilder::<D>::new("SELECT * FROM runner_sessions");
    if let Some(status) = status {
        query.push(" WHERE status = ");
        Value::text(status.as_str()).bind(&mut query);
    }
    query.push(" ORDER BY created_at DESC, id DESC");
    push_limit(&mut query, limit);
    all::<D, _>(conn, query, runner_session_from_row).await
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
