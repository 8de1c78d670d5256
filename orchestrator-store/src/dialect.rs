//! What differs between the SQL backends, and nothing else.
//!
//! The statements themselves are written once, in [`crate::sql`], against this trait:
//! how a backend binds identifiers, instants and JSON, how it runs a built query, how it
//! opens a write transaction, and the few SQL fragments that are spelled differently.

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Execute, IntoArguments, QueryBuilder};
use uuid::Uuid;

use crate::rows::RowReader;

/// A SQL backend: SQLite or PostgreSQL.
#[async_trait]
pub trait Dialect:
    Database<Row: RowReader, Arguments: IntoArguments<Self>> + Sized + private::Sealed
{
    /// An aggregate over `task_dependencies d` giving the dependency ids comma-separated.
    const DEPENDENCY_LIST: &'static str;
    /// Appended to a text column in `ORDER BY` so that it sorts by bytes, as Rust does.
    const BYTE_ORDER: &'static str;
    /// Whether reads inside a write transaction must lock their rows (`FOR UPDATE`);
    /// false where the transaction already holds the whole database's write lock.
    const LOCKS_ROWS: bool;
    /// Whether several statements (with their parameters) can be sent in one call. Such
    /// dialects send a write transaction's BEGIN in front of its first statement, several
    /// reads as one script, and the COMMIT behind the last writes.
    const SCRIPTS: bool;
    /// The statement that opens a write transaction.
    const BEGIN: &'static str;
    /// Settings for a transaction that claims from the queue, sent with its BEGIN, that
    /// make the candidate query walk the queue index in order and stop at the first free
    /// task.
    const QUEUE_CLAIM_SETTINGS: &'static str;
    /// Follows a table in `FROM` to have the planner use `index`, where it needs telling
    /// (it may otherwise walk every queued task to find the few an index holds).
    fn indexed_by(index: &str) -> String;
    /// Whether claims may pass over rows another transaction has locked
    /// (`FOR UPDATE SKIP LOCKED`).
    const SKIP_LOCKED: &'static str;
    /// The `LIMIT` clause in front of its bound row count.
    const LIMIT: &'static str;

    /// Opens a write transaction on `conn` with [`BEGIN`](Self::BEGIN) followed by
    /// `settings` and, if `read_clock`, returns the database clock read in the same round
    /// trip. Dialects that [take scripts](Self::SCRIPTS) send nothing here: their BEGIN
    /// goes in front of the transaction's first statement.
    async fn begin(
        conn: &mut Self::Connection,
        settings: &'static str,
        read_clock: bool,
    ) -> Result<Option<Timestamp>>;
    /// Numbers the events committed since the last call, where they are not numbered as
    /// they are inserted (PostgreSQL). Every read of the event log calls it first.
    async fn number_events(pool: &sqlx::Pool<Self>) -> Result<()>;

    /// Runs, in order, `begin` (a BEGIN not sent yet), the statements of `batch` and, if
    /// `commit`, a COMMIT — in one call where the database takes scripts — and checks what
    /// each statement must do. A failing statement or guard fails the call before the
    /// COMMIT runs.
    async fn run_batch(
        conn: &mut Self::Connection,
        begin: Option<&'static str>,
        batch: Batch<Self>,
        commit: bool,
    ) -> Result<()>;

    async fn fetch_all(
        conn: &mut Self::Connection,
        query: QueryBuilder<Self>,
    ) -> Result<Vec<Self::Row>>;
    async fn fetch_optional(
        conn: &mut Self::Connection,
        query: QueryBuilder<Self>,
    ) -> Result<Option<Self::Row>>;
    async fn fetch_count(conn: &mut Self::Connection, query: QueryBuilder<Self>) -> Result<u64>;
    /// Runs `query`; returns the number of rows its last statement touched.
    async fn execute(conn: &mut Self::Connection, query: QueryBuilder<Self>) -> Result<u64>;
    /// Runs `begin` (a BEGIN not sent yet) and the statements `parts` write — as one
    /// script where the database takes several statements at once, else one by one — and
    /// returns the rows of each part.
    async fn fetch_script(
        conn: &mut Self::Connection,
        begin: Option<&'static str>,
        parts: Vec<Part<Self>>,
    ) -> Result<Vec<Vec<Self::Row>>>;

    /// The database's own clock, where it should decide lease expiry instead of the
    /// caller's (PostgreSQL, shared by several server processes).
    async fn database_now<E: Exec<Self>>(conn: &mut E) -> Result<Timestamp>;

    /// Reserves `count` fresh fencing tokens and returns them in increasing order. They
    /// need not be consecutive: concurrent transactions may interleave.
    async fn next_fencing_tokens<E: Exec<Self>>(conn: &mut E, count: u64) -> Result<Vec<i64>>;

    /// Takes the transaction-scoped guards of lock `keys` (hashed path keys, exclusive or
    /// shared), in the given order, so that concurrent acquirers of overlapping paths
    /// take turns. With `wait` false, gives up at once (returns false) if one is taken.
    async fn guard_lock_keys<E: Exec<Self>>(
        conn: &mut E,
        keys: &[(i64, bool)],
        wait: bool,
    ) -> Result<bool>;

    fn bind_id(query: &mut QueryBuilder<Self>, value: Option<Uuid>);
    fn bind_instant(query: &mut QueryBuilder<Self>, value: Option<Timestamp>);
    fn bind_json(query: &mut QueryBuilder<Self>, value: Option<serde_json::Value>);
    fn bind_text(query: &mut QueryBuilder<Self>, value: Option<String>);
    fn bind_integer(query: &mut QueryBuilder<Self>, value: Option<i64>);
    fn bind_real(query: &mut QueryBuilder<Self>, value: Option<f64>);
    fn bind_flag(query: &mut QueryBuilder<Self>, value: Option<bool>);

    /// Adds to `batch` the insert of `rows` into `table`: each row the id `owner.1` in the
    /// column `owner.0`, then one text (or NULL) per column of `columns`, in as few
    /// statements as the dialect's limit on bound values allows. A row whose key is taken
    /// already is left as it is.
    fn insert_text_rows(
        batch: &mut Batch<Self>,
        table: &str,
        owner: (&'static str, Uuid),
        columns: &[&'static str],
        rows: Vec<Vec<Option<String>>>,
    );

    /// Pushes a condition: `needle` occurs in `column`, ignoring the case of ASCII letters.
    fn push_contains(query: &mut QueryBuilder<Self>, column: &str, needle: String);

    /// The UTC date of the instant in `column`, as `YYYY-MM-DD` text.
    fn utc_date(column: &str) -> String;

    /// Pushes what comes before statement `index` of a [`Batch`].
    fn start_statement(query: &mut QueryBuilder<Self>, index: usize);
    /// Pushes what comes after statement `index` of a [`Batch`], which must do `expect`.
    fn end_statement(query: &mut QueryBuilder<Self>, index: usize, expect: Expect);
    /// Pushes what comes after the last statement of a [`Batch`].
    fn end_batch(query: &mut QueryBuilder<Self>, expects: &[Expect]);
}

/// A statement of a script: written into the script's query by the reader that needs it.
pub(crate) type Part<D> = Box<dyn FnOnce(&mut QueryBuilder<D>) + Send>;

/// Where statements run: a pooled connection, or a write transaction (which may still
/// have statements of its own to send in front).
#[async_trait]
pub trait Exec<D: Dialect>: Send {
    async fn fetch_all(&mut self, query: QueryBuilder<D>) -> Result<Vec<D::Row>>;
    async fn fetch_optional(&mut self, query: QueryBuilder<D>) -> Result<Option<D::Row>>;
    async fn fetch_count(&mut self, query: QueryBuilder<D>) -> Result<u64>;
    /// Runs a statement; returns the number of rows it touched.
    async fn execute(&mut self, query: QueryBuilder<D>) -> Result<u64>;
    /// Runs several reads as one script where the dialect can; returns each one's rows.
    async fn fetch_script(&mut self, parts: Vec<Part<D>>) -> Result<Vec<Vec<D::Row>>>;
}

#[async_trait]
impl<D: Dialect> Exec<D> for PoolConnection<D> {
    async fn fetch_all(&mut self, query: QueryBuilder<D>) -> Result<Vec<D::Row>> {
        D::fetch_all(self, query).await
    }

    async fn fetch_optional(&mut self, query: QueryBuilder<D>) -> Result<Option<D::Row>> {
        D::fetch_optional(self, query).await
    }

    async fn fetch_count(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        D::fetch_count(self, query).await
    }

    async fn execute(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        D::execute(self, query).await
    }

    async fn fetch_script(&mut self, parts: Vec<Part<D>>) -> Result<Vec<Vec<D::Row>>> {
        D::fetch_script(self, None, parts).await
    }
}

/// `query` with the parameterless statement `first` in front, to be sent in one call.
pub(crate) fn prefixed<D: Dialect>(
    first: &str,
    mut query: QueryBuilder<D>,
) -> Result<QueryBuilder<D>> {
    let sql = format!("{first}; {}", query.sql().as_str());
    let arguments = query.build().take_arguments().map_err(Error::backend)?;
    Ok(match arguments {
        Some(arguments) => QueryBuilder::with_arguments(sql, arguments),
        None => QueryBuilder::new(sql),
    })
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
            .map_err(Error::backend)
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

/// Pushes ` LIMIT` with `count` as a bound parameter.
pub(crate) fn push_limit<D: Dialect>(query: &mut QueryBuilder<D>, count: u32) {
    query.push(D::LIMIT);
    Value::int(count).bind(query);
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

/// Pushes `INSERT INTO table (columns) VALUES (…), (…)` for rows of `(column, value)`
/// pairs, every row naming the same columns in the same order.
pub(crate) fn insert_into<D: Dialect>(
    query: &mut QueryBuilder<D>,
    table: &str,
    rows: Vec<Vec<(&'static str, Value)>>,
) {
    let columns: Vec<&str> = rows
        .first()
        .map(|row| row.iter().map(|(column, _)| *column).collect())
        .unwrap_or_default();
    query.push(format!(
        "INSERT INTO {table} ({}) VALUES ",
        columns.join(", ")
    ));
    for (index, row) in rows.into_iter().enumerate() {
        query.push(if index == 0 { "(" } else { ", (" });
        push_list(query, row.into_iter().map(|(_, value)| value).collect());
        query.push(")");
    }
}

/// `INSERT INTO table …` as a statement of its own; see [`insert_into`].
pub(crate) fn insert<D: Dialect>(
    table: &str,
    rows: Vec<Vec<(&'static str, Value)>>,
) -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    insert_into(&mut query, table, rows);
    query
}

/// Pushes `UPDATE table SET column = value, … ` — the caller adds the `WHERE` clause.
pub(crate) fn update_into<D: Dialect>(
    query: &mut QueryBuilder<D>,
    table: &str,
    assignments: Vec<(&'static str, Value)>,
) {
    query.push(format!("UPDATE {table} SET "));
    for (index, (column, value)) in assignments.into_iter().enumerate() {
        if index > 0 {
            query.push(", ");
        }
        query.push(column).push(" = ");
        value.bind(query);
    }
}

/// `UPDATE table SET …` as a statement of its own; see [`update_into`].
pub(crate) fn update<D: Dialect>(
    table: &str,
    assignments: Vec<(&'static str, Value)>,
) -> QueryBuilder<D> {
    let mut query = QueryBuilder::new("");
    update_into(&mut query, table, assignments);
    query
}

/// What a statement of a [`Batch`] must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any number of rows.
    Anything,
    /// Exactly one row (a guarded update); otherwise the row changed meanwhile and the
    /// transaction fails with a conflict.
    OneRow(&'static str),
    /// Appends events.
    Events,
}

/// The writes of one operation (or several), sent as one query: statements that the
/// dialect frames ([`Dialect::start_statement`], [`Dialect::end_statement`],
/// [`Dialect::end_batch`]) so that they run together and a failed guard fails them all.
pub struct Batch<D: Dialect> {
    query: QueryBuilder<D>,
    /// What each statement must do, in order.
    expects: Vec<Expect>,
    /// Whether the last statement still needs its end.
    open: bool,
}

impl<D: Dialect> std::fmt::Debug for Batch<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("expects", &self.expects)
            .finish()
    }
}

impl<D: Dialect> Batch<D> {
    pub(crate) fn new() -> Self {
        Self {
            query: QueryBuilder::new(""),
            expects: Vec::new(),
            open: false,
        }
    }

    /// The builder to write the next statement into.
    pub(crate) fn statement(&mut self, expect: Expect) -> &mut QueryBuilder<D> {
        self.end_last();
        D::start_statement(&mut self.query, self.expects.len());
        self.expects.push(expect);
        self.open = true;
        &mut self.query
    }

    fn end_last(&mut self) {
        if self.open {
            let index = self.expects.len() - 1;
            D::end_statement(&mut self.query, index, self.expects[index]);
            self.open = false;
        }
    }

    /// Whether the batch holds no statement.
    pub fn is_empty(&self) -> bool {
        self.expects.is_empty()
    }

    /// Whether one of the statements appends events.
    pub fn appends_events(&self) -> bool {
        self.expects.contains(&Expect::Events)
    }

    /// The query, its guards framed by the dialect; `None` for an empty batch.
    pub fn finish(mut self) -> Option<QueryBuilder<D>> {
        if self.is_empty() {
            return None;
        }
        self.end_last();
        D::end_batch(&mut self.query, &self.expects);
        Some(self.query)
    }
}
