//! [`SqliteStore`]: the embedded default. One file, WAL journal, a busy timeout, foreign
//! keys on, created on first start. Reads run on a pool of connections; every write runs
//! on one connection of its own, taking the database's write lock up front
//! (`BEGIN IMMEDIATE`), so write transactions queue in order, never wait behind readers
//! for a connection, and see the latest rows.
//!
//! UUIDs are stored as text, instants as milliseconds since the Unix epoch, JSON as text.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Pool, QueryBuilder, Row, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use crate::dialect::{Batch, Dialect};
use crate::engine::{ClockSource, SqlStore};
use crate::error::SqlxResultExt;
use crate::migrations;
use crate::rows::RowReader;

/// How long a writer waits for the write lock before reporting the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Reading connections: readers run in parallel under WAL (writes have one of their own).
const MAX_READERS: u32 = 8;

/// The SQLite [`Store`](orchestrator_core::Store).
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating it and its directory if needed) the database file at `path`, and
    /// migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_options(SqliteConnectOptions::new().filename(path.as_ref())).await
    }

    /// Opens the database a `sqlite:` URL names (`sqlite://path/to/file.db`,
    /// `sqlite:file.db`, `sqlite::memory:`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url).map_err(|err| {
            Error::invalid("databaseUrl", format!("not a usable SQLite URL: {err}"))
        })?;
        if url.contains(":memory:") {
            // Each connection would get its own empty in-memory database.
            return Self::with_pools(options, 1).await;
        }
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self> {
        let path = options.get_filename();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| {
                Error::Unavailable(format!(
                    "cannot create the database directory {}: {err}",
                    parent.display()
                ))
            })?;
        }
        Self::with_pools(options, MAX_READERS).await
    }

    /// Opens `readers` reading connections and, for a file, one more for all writes (an
    /// in-memory database lives in one connection, which then does both).
    async fn with_pools(options: SqliteConnectOptions, readers: u32) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = pool_of(options.clone(), 1).await?;
        migrations::sqlite().run(&writer).await.map_err(|err| {
            Error::Unavailable(format!("migrating the SQLite database failed: {err}"))
        })?;
        let pool = if readers > 1 {
            pool_of(options, readers).await?
        } else {
            writer.clone()
        };
        SqlStore::new(pool, writer, ClockSource::Caller).await
    }
}

async fn pool_of(options: SqliteConnectOptions, size: u32) -> Result<Pool<Sqlite>> {
    SqlitePoolOptions::new()
        .max_connections(size)
        // A local file cannot drop a connection; skip the round trip per checkout.
        .test_before_acquire(false)
        .acquire_timeout(BUSY_TIMEOUT)
        .connect_with(options)
        .await
        .db()
}

#[async_trait]
impl Dialect for Sqlite {
    const DEPENDENCY_LIST: &'static str = "group_concat(d.depends_on_id)";
    // SQLite's default collation already compares bytes.
    const BYTE_ORDER: &'static str = "";
    const LOCKS_ROWS: bool = false;
    const EVENT_INSERT_WRAPPER: (&'static str, &'static str) = ("", " RETURNING seq");
    const BATCHES_WRITES: bool = true;
    const SKIP_LOCKED: &'static str = "";

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>> {
        pool.begin_with("BEGIN IMMEDIATE").await.db()
    }

    async fn number_events(_pool: &Pool<Self>) -> Result<()> {
        // Numbered as they are inserted: write transactions run one at a time.
        Ok(())
    }

    async fn run_batch(conn: &mut SqliteConnection, batch: Batch<Self>) -> Result<Option<i64>> {
        let appends_events = batch.appends_events();
        let Some(mut query) = batch.into_combined() else {
            return Ok(None);
        };
        // Write transactions run one at a time here, so events are numbered in commit
        // order as they are inserted; the event insert comes last, so the last row id is
        // the last sequence number.
        let result = query.build().execute(conn).await.db()?;
        Ok(appends_events.then(|| result.last_insert_rowid()))
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        mut query: QueryBuilder<Self>,
    ) -> Result<Vec<SqliteRow>> {
        query.build().fetch_all(conn).await.db()
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        mut query: QueryBuilder<Self>,
    ) -> Result<Option<SqliteRow>> {
        query.build().fetch_optional(conn).await.db()
    }

    async fn fetch_count(
        conn: &mut SqliteConnection,
        mut query: QueryBuilder<Self>,
    ) -> Result<u64> {
        let count: i64 = query.build_query_scalar().fetch_one(conn).await.db()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn execute(conn: &mut SqliteConnection, mut query: QueryBuilder<Self>) -> Result<u64> {
        Ok(query.build().execute(conn).await.db()?.rows_affected())
    }

    async fn database_now(_conn: &mut SqliteConnection) -> Result<Timestamp> {
        // One process owns the file: its clock is the clock.
        Ok(Timestamp::from(chrono::Utc::now()))
    }

    async fn next_fencing_tokens(conn: &mut SqliteConnection, count: u64) -> Result<Vec<i64>> {
        let count = i64::try_from(count).map_err(Error::backend)?;
        // The write transaction holds the only writer lock: the reserved range is ours alone.
        let last: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + ? WHERE name = 'file_lock_fencing' RETURNING value",
        )
        .bind(count)
        .fetch_one(conn)
        .await
        .db()?;
        Ok((last - count + 1..=last).collect())
    }

    async fn guard_lock_keys(
        _conn: &mut SqliteConnection,
        _keys: &[(i64, bool)],
        _wait: bool,
    ) -> Result<bool> {
        // The write transaction already excludes every other writer.
        Ok(true)
    }

    fn bind_id(query: &mut QueryBuilder<Self>, value: Option<Uuid>) {
        query.push_bind(value.map(|id| id.to_string()));
    }

    fn bind_instant(query: &mut QueryBuilder<Self>, value: Option<Timestamp>) {
        query.push_bind(value.map(|at| at.as_millis()));
    }

    fn bind_json(query: &mut QueryBuilder<Self>, value: Option<serde_json::Value>) {
        query.push_bind(value.map(|v| v.to_string()));
    }

    fn bind_text(query: &mut QueryBuilder<Self>, value: Option<String>) {
        query.push_bind(value);
    }

    fn bind_integer(query: &mut QueryBuilder<Self>, value: Option<i64>) {
        query.push_bind(value);
    }

    fn bind_real(query: &mut QueryBuilder<Self>, value: Option<f64>) {
        query.push_bind(value);
    }

    fn bind_flag(query: &mut QueryBuilder<Self>, value: Option<bool>) {
        query.push_bind(value);
    }

    fn push_contains(query: &mut QueryBuilder<Self>, column: &str, needle: String) {
        // lower() folds ASCII letters only, as the other stores do.
        query.push(format!("instr(lower({column}), "));
        query.push_bind(needle);
        query.push(") > 0");
    }
}

fn column<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    name: &str,
) -> Result<Option<T>> {
    row.try_get::<Option<T>, _>(name).db()
}

impl RowReader for SqliteRow {
    fn text(&self, name: &str) -> Result<Option<String>> {
        column(self, name)
    }

    fn integer(&self, name: &str) -> Result<Option<i64>> {
        column(self, name)
    }

    fn real(&self, name: &str) -> Result<Option<f64>> {
        column(self, name)
    }

    fn flag(&self, name: &str) -> Result<Option<bool>> {
        column(self, name)
    }

    fn uuid(&self, name: &str) -> Result<Option<Uuid>> {
        column::<String>(self, name)?
            .map(|text| {
                Uuid::parse_str(&text)
                    .map_err(|_| Error::backend(format!("column {name} holds no UUID")))
            })
            .transpose()
    }

    fn instant(&self, name: &str) -> Result<Option<Timestamp>> {
        column::<i64>(self, name)?
            .map(|ms| {
                Timestamp::from_millis(ms)
                    .ok_or_else(|| Error::backend(format!("column {name} is out of range")))
            })
            .transpose()
    }

    fn json(&self, name: &str) -> Result<Option<serde_json::Value>> {
        column::<String>(self, name)?
            .map(|text| serde_json::from_str(&text).map_err(Error::backend))
            .transpose()
    }
}
