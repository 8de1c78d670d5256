//! What differs between the SQL backends, and nothing else.
//!
//! The statements themselves are written once, in [`crate::sql`], against this trait:
//! how a backend binds identifiers, instants and JSON, how it runs a built query, how it
//! opens a write transaction, and the few SQL fragments that are spelled differently.

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::error::Result;
use sqlx::{Database, Pool, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::rows::RowReader;

/// A SQL backend: SQLite or PostgreSQL.
#[async_trait]
pub trait Dialect: Database<Row: RowReader> + Sized + private::Sealed {
    /// An aggregate over `task_dependencies d` giving the dependency ids comma-separated.
    const DEPENDENCY_LIST: &'static str;
    /// Appended to a text column in `ORDER BY` so that it sorts by bytes, as Rust does.
    const BYTE_ORDER: &'static str;
    /// Whether reads inside a write transaction must lock their rows (`FOR UPDATE`);
    /// false where the transaction already holds the whole database's write lock.
    const LOCKS_ROWS: bool;
    /// Whether the database admits one writer at a time (then this process queues its
    /// writers itself instead of letting them poll for the lock).
    const SINGLE_WRITER: bool;
    /// Whether claims may pass over rows another transaction has locked
    /// (`FOR UPDATE SKIP LOCKED`).
    const SKIP_LOCKED: &'static str;

    /// Opens a transaction that may write: SQLite takes its write lock at once.
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>>;
    /// Makes concurrent event appends take turns, so that sequence numbers follow commit
    /// order.
    async fn serialize_event_appends(conn: &mut Self::Connection) -> Result<()>;

    async fn fetch_all(
        conn: &mut Self::Connection,
        query: QueryBuilder<Self>,
    ) -> Result<Vec<Self::Row>>;
    async fn fetch_optional(
        conn: &mut Self::Connection,
        query: QueryBuilder<Self>,
    ) -> Result<Option<Self::Row>>;
    async fn fetch_count(conn: &mut Self::Connection, query: QueryBuilder<Self>) -> Result<u64>;
    /// Runs a statement; returns the number of rows it touched.
    async fn execute(conn: &mut Self::Connection, query: QueryBuilder<Self>) -> Result<u64>;

    /// The database's own clock, where it should decide lease expiry instead of the
    /// caller's (PostgreSQL, shared by several server processes).
    async fn database_now(conn: &mut Self::Connection) -> Result<Timestamp>;

    /// Reserves `count` fresh fencing tokens; returns the last (they end at it).
    async fn next_fencing_tokens(conn: &mut Self::Connection, count: u64) -> Result<i64>;

    /// Takes the transaction-scoped guards of lock `keys` (hashed path keys, exclusive or
    /// shared), in the given order, so that concurrent acquirers of overlapping paths
    /// take turns. With `wait` false, gives up at once (returns false) if one is taken.
    async fn guard_lock_keys(
        conn: &mut Self::Connection,
        keys: &[(i64, bool)],
        wait: bool,
    ) -> Result<bool>;

    /// Tells other processes that events up to `seq` are committed (once the transaction
    /// commits).
    async fn notify_committed(conn: &mut Self::Connection, seq: i64) -> Result<()>;

    fn bind_id(query: &mut QueryBuilder<Self>, value: Option<Uuid>);
    fn bind_instant(query: &mut QueryBuilder<Self>, value: Option<Timestamp>);
    fn bind_json(query: &mut QueryBuilder<Self>, value: Option<serde_json::Value>);
    fn bind_text(query: &mut QueryBuilder<Self>, value: Option<String>);
    fn bind_integer(query: &mut QueryBuilder<Self>, value: Option<i64>);
    fn bind_real(query: &mut QueryBuilder<Self>, value: Option<f64>);
    fn bind_flag(query: &mut QueryBuilder<Self>, value: Option<bool>);

    /// Pushes a condition: `needle` occurs in `column`, ignoring the case of ASCII letters.
    fn push_contains(query: &mut QueryBuilder<Self>, column: &str, needle: String);
}

mod private {
    /// Only this crate's backends implement [`Dialect`](super::Dialect).
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::Sqlite {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}
}

/// A value that can be bound in any dialect.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Id(Option<Uuid>),
    Instant(Option<Timestamp>),
    Json(Option<serde_json::Value>),
    Text(Option<String>),
    Integer(Option<i64>),
    Real(Option<f64>),
    Flag(Option<bool>),
}

impl Value {
    pub(crate) fn id(id: impl Into<Uuid>) -> Self {
        Self::Id(Some(id.into()))
    }

    pub(crate) fn opt_id(id: Option<impl Into<Uuid>>) -> Self {
        Self::Id(id.map(Into::into))
    }

    pub(crate) fn at(at: Timestamp) -> Self {
        Self::Instant(Some(at))
    }

    pub(crate) fn text(text: impl Into<String>) -> Self {
        Self::Text(Some(text.into()))
    }

    pub(crate) fn int(value: impl Into<i64>) -> Self {
        Self::Integer(Some(value.into()))
    }

    /// An unsigned counter; saturates at `i64::MAX` (no column gets anywhere near it).
    pub(crate) fn count(value: u64) -> Self {
        Self::Integer(Some(i64::try_from(value).unwrap_or(i64::MAX)))
    }

    pub(crate) fn json(value: &impl serde::Serialize) -> Result<Self> {
        serde_json::to_value(value)
            .map(|v| Self::Json(Some(v)))
            .map_err(orchestrator_core::Error::backend)
    }

    pub(crate) fn bind<D: Dialect>(self, query: &mut QueryBuilder<D>) {
        match self {
            Self::Id(v) => D::bind_id(query, v),
            Self::Instant(v) => D::bind_instant(query, v),
            Self::Json(v) => D::bind_json(query, v),
            Self::Text(v) => D::bind_text(query, v),
            Self::Integer(v) => D::bind_integer(query, v),
            Self::Real(v) => D::bind_real(query, v),
            Self::Flag(v) => D::bind_flag(query, v),
        }
    }
}

/// Pushes `values` as a comma-separated list of bound parameters.
pub(crate) fn push_list<D: Dialect>(query: &mut QueryBuilder<D>, values: Vec<Value>) {
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            query.push(", ");
        }
        value.bind(query);
    }
}

/// `INSERT INTO table (columns) VALUES (…), (…)` for rows of `(column, value)` pairs,
/// every row naming the same columns in the same order.
pub(crate) fn insert<D: Dialect>(
    table: &str,
    rows: Vec<Vec<(&'static str, Value)>>,
) -> QueryBuilder<D> {
    let columns: Vec<&str> = rows
        .first()
        .map(|row| row.iter().map(|(column, _)| *column).collect())
        .unwrap_or_default();
    let mut query = QueryBuilder::new(format!(
        "INSERT INTO {table} ({}) VALUES ",
        columns.join(", ")
    ));
    for (index, row) in rows.into_iter().enumerate() {
        query.push(if index == 0 { "(" } else { ", (" });
        push_list(
            &mut query,
            row.into_iter().map(|(_, value)| value).collect(),
        );
        query.push(")");
    }
    query
}

/// `UPDATE table SET column = value, … ` — the caller adds the `WHERE` clause.
pub(crate) fn update<D: Dialect>(
    table: &str,
    assignments: Vec<(&'static str, Value)>,
) -> QueryBuilder<D> {
    let mut query = QueryBuilder::new(format!("UPDATE {table} SET "));
    for (index, (column, value)) in assignments.into_iter().enumerate() {
        if index > 0 {
            query.push(", ");
        }
        query.push(column).push(" = ");
        value.bind(&mut query);
    }
    query
}
