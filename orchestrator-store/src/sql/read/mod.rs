//! Lookups and list queries, one module per aggregate; what they share is here.

mod agents;
mod events;
mod evidence;
mod exceptions;
mod housekeeping;
mod queue;
mod runners;
mod tasks;
mod usage;

pub(crate) use agents::*;
pub(crate) use events::*;
pub(crate) use evidence::*;
pub(crate) use exceptions::*;
pub(crate) use housekeeping::*;
pub(crate) use queue::*;
pub(crate) use runners::*;
pub(crate) use tasks::*;
pub(crate) use usage::*;

use orchestrator_core::error::Result;
use orchestrator_core::model::SortOrder;
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::dialect::{Dialect, Exec, Part, Value, push_limit, push_list};
use crate::rows::RowReader;

/// Whether a read inside a write transaction locks the rows it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// A plain read.
    None,
    /// Lock the rows until the transaction ends (where the dialect locks rows).
    ForUpdate,
}

impl Lock {
    /// The clause that locks the rows read, if this dialect locks rows.
    pub(crate) fn clause<D: Dialect>(self, of: Option<&str>) -> String {
        match (self, D::LOCKS_ROWS, of) {
            (Lock::ForUpdate, true, Some(alias)) => format!(" FOR UPDATE OF {alias}"),
            (Lock::ForUpdate, true, None) => " FOR UPDATE".to_owned(),
            _ => String::new(),
        }
    }
}

fn push_task_select<D: Dialect>(query: &mut QueryBuilder<D>) {
    push_task_select_from(query, "");
}

/// [`push_task_select`] with `index_hint` after `FROM tasks t`.
fn push_task_select_from<D: Dialect>(query: &mut QueryBuilder<D>, index_hint: &str) {
    query.push(format!(
        "SELECT t.*, (SELECT {} FROM task_dependencies d WHERE d.task_id = t.id) AS depends_on \
         FROM tasks t{index_hint}",
        D::DEPENDENCY_LIST
    ));
}

fn task_select<D: Dialect>() -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    push_task_select(&mut query);
    query
}

/// A query built from a part of a script.
fn from_part<D: Dialect>(part: Part<D>) -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    part(&mut query);
    query
}

/// The first row of a script's result set, decoded.
fn first<D: Dialect, T>(
    rows: Option<Vec<D::Row>>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    rows.and_then(|rows| rows.into_iter().next())
        .map(|row| decode(&row))
        .transpose()
}

async fn one<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    query: QueryBuilder<D>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    conn.fetch_optional(query)
        .await?
        .map(|row| decode(&row))
        .transpose()
}

pub(crate) async fn all<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    query: QueryBuilder<D>,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Vec<T>> {
    conn.fetch_all(query).await?.iter().map(decode).collect()
}

/// `SELECT * FROM table WHERE id = ?`, optionally locked.
async fn by_id<D: Dialect, T>(
    conn: &mut impl Exec<D>,
    table: &str,
    id: Uuid,
    lock: Lock,
    decode: fn(&D::Row) -> Result<T>,
) -> Result<Option<T>> {
    let mut query = QueryBuilder::<D>::new(format!("SELECT * FROM {table} WHERE id = "));
    Value::id(id).bind(&mut query);
    query.push(lock.clause::<D>(None));
    one::<D, _>(conn, query, decode).await
}

/// The ids among `ids` that `table` has no row for.
pub(crate) async fn missing<D: Dialect, T: Copy + Into<Uuid>>(
    conn: &mut impl Exec<D>,
    table: &str,
    ids: &[T],
) -> Result<Vec<T>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<D>::new(format!("SELECT id FROM {table} WHERE id IN ("));
    push_list(&mut query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(")");
    let present = all::<D, _>(conn, query, |row: &D::Row| row.uuid("id")).await?;
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !present.contains(&Some((*id).into())))
        .collect())
}

/// Conditions joined by `AND`, each a SQL fragment followed by one bound value.
type Filters = Vec<(&'static str, Value)>;

fn push_filters<D: Dialect>(query: &mut QueryBuilder<D>, filters: &Filters) {
    query.push(" WHERE 1 = 1");
    for (condition, value) in filters {
        query.push(" AND ").push(*condition);
        value.clone().bind(query);
    }
}

fn push_page<D: Dialect>(query: &mut QueryBuilder<D>, limit: u32, offset: u64) {
    push_limit(query, limit);
    query.push(" OFFSET ");
    Value::count(offset).bind(query);
}

fn direction(order: SortOrder) -> &'static str {
    match order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    }
}

/// Decodes the rows of a script's result set.
pub(crate) fn decode_all<R, T>(rows: &[R], decode: fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// For each row of `owners` among `ids`: its id and, per `(alias, table, column)`, how
/// many rows of `table` point at it through `column` (an indexed lookup each).
fn related_counts<D: Dialect>(
    owners: &str,
    ids: Vec<Value>,
    related: &[(&str, &str, &str)],
) -> QueryBuilder<D> {
    let mut sql = String::from("SELECT o.id");
    for (alias, table, column) in related {
        sql.push_str(&format!(
            ", (SELECT COUNT(*) FROM {table} r WHERE r.{column} = o.id) AS {alias}"
        ));
    }
    sql.push_str(&format!(" FROM {owners} o WHERE o.id IN ("));
    let mut query = QueryBuilder::<D>::new(sql);
    push_list(&mut query, ids);
    query.push(")");
    query
}
