//! The usage summary: the attempts of a window summed per day, runner session, backend and
//! model, and task, each grouping one `GROUP BY` over the attempts' start index.

use orchestrator_core::error::Result;
use orchestrator_core::model::{UsageQuery, UsageSummary};
use sqlx::QueryBuilder;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit};
use crate::rows::{
    day_usage_from_row, model_usage_from_row, runner_usage_from_row, task_usage_from_row,
};

use super::decode_all;

/// The sums of a group of attempts `a`, under the names the rows' decoders read.
const SUMS: &str = "COUNT(*) AS attempts, \
     CAST(SUM(a.input_tokens) AS BIGINT) AS total_input_tokens, \
     CAST(SUM(a.output_tokens) AS BIGINT) AS total_output_tokens, \
     CAST(SUM(a.cache_read_tokens) AS BIGINT) AS total_cache_read_tokens, \
     CAST(SUM(a.cache_write_tokens) AS BIGINT) AS total_cache_write_tokens, \
     SUM(a.cost_usd) AS total_cost_usd";

/// `SELECT keys, sums FROM from WHERE <started in the window> GROUP BY group ORDER BY
/// order`, with at most `limit` rows if given.
fn grouped<D: Dialect>(
    query: &UsageQuery,
    keys: String,
    from: &'static str,
    group: String,
    order: String,
    limit: Option<u32>,
) -> Part<D> {
    let UsageQuery { since, until, .. } = *query;
    Box::new(move |sql: &mut QueryBuilder<D>| {
        sql.push(format!(
            "SELECT {keys}, {SUMS} FROM {from} WHERE a.started_at >= "
        ));
        Value::at(since).bind(sql);
        sql.push(" AND a.started_at < ");
        Value::at(until).bind(sql);
        sql.push(format!(" GROUP BY {group} ORDER BY {order}"));
        if let Some(limit) = limit {
            push_limit(sql, limit);
        }
    })
}

pub(crate) async fn usage_summary<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &UsageQuery,
) -> Result<UsageSummary> {
    let day = D::utc_date("a.started_at");
    let text_order = |column: &str| format!("{column} IS NULL, {column}{}", D::BYTE_ORDER);
    let parts = vec![
        grouped::<D>(
            query,
            format!("{day} AS day"),
            "task_attempts a",
            day.clone(),
            "day".into(),
            None,
        ),
        grouped::<D>(
            query,
            "a.runner_session_id, r.name".into(),
            "task_attempts a LEFT JOIN runner_sessions r ON r.id = a.runner_session_id",
            "a.runner_session_id, r.name".into(),
            "total_cost_usd DESC, a.runner_session_id IS NULL, a.runner_session_id".into(),
            None,
        ),
        grouped::<D>(
            query,
            "a.backend, a.model".into(),
            "task_attempts a",
            "a.backend, a.model".into(),
            format!(
                "total_cost_usd DESC, {}, {}",
                text_order("a.backend"),
                text_order("a.model")
            ),
            None,
        ),
        grouped::<D>(
            query,
            "a.task_id, t.title".into(),
            "task_attempts a JOIN tasks t ON t.id = a.task_id",
            "a.task_id, t.title".into(),
            "total_cost_usd DESC, a.task_id".into(),
            Some(query.top_tasks),
        ),
    ];
    let mut sets = conn.fetch_script(parts).await?.into_iter();
    let days = decode_all(&sets.next().unwrap_or_default(), day_usage_from_row)?;
    let runners = decode_all(&sets.next().unwrap_or_default(), runner_usage_from_row)?;
    let models = decode_all(&sets.next().unwrap_or_default(), model_usage_from_row)?;
    let tasks = decode_all(&sets.next().unwrap_or_default(), task_usage_from_row)?;
    Ok(UsageSummary::from_groups(
        query, days, runners, models, tasks,
    ))
}
