//! [`SqliteStore`]: the embedded default. One file, WAL journal, a busy timeout, foreign
//! keys on, created on first start. Reads run on a pool of connections; every write runs
//! on one connection of its own, taking the database's write lock up front
//! (`BEGIN IMMEDIATE`), so write transactions queue in order, never wait behind readers
//! for a connection, and see the latest rows. The log is copied into the database file
//! by a background task ([`checkpoint`]), not by the commits themselves.
//!
//! UUIDs are stored as text, instants as milliseconds since the Unix epoch, JSON as text.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Either, Executor, Pool, QueryBuilder, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::dialect::{Batch, Dialect, Exec, Expect, Part, Value, prefixed, push_list};
use crate::engine::{ClockSource, Commits, SqlStore, Writer};
use crate::error::SqlxResultExt;
use crate::migrations;
use crate::rows::RowReader;

mod checkpoint;

/// How long a writer waits for the write lock before reporting the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Reading connections: readers run in parallel under WAL (writes have one of their own).
const MAX_READERS: u32 = 8;
/// Set up on every connection that writes: a row inserted into `write_guard` fails its
/// statement (with SQLITE_CONSTRAINT_TRIGGER), which is how a batch's guarded update
/// that touched no row stops the batch.
const WRITE_GUARD: &str = "CREATE TEMP TABLE write_guard (failed INTEGER); \
    CREATE TEMP TRIGGER write_guard_failed BEFORE INSERT ON write_guard \
    BEGIN SELECT RAISE(ABORT, 'a row was changed by someone else meanwhile; retry'); END";

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
            // Every page a transaction changes is written to the log whole, and a claim or
            // a completion changes about twenty (a row and a leaf of each index it moves):
            // 1 KiB pages write a quarter of the bytes 4 KiB pages would (about +25 % in
            // claim-complete cycles). Applies to new databases; an existing one keeps its size.
            .page_size(1024)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Commits never copy the log into the database file: a background task does
            // (see `checkpoint`), or, without one, the last connection to close.
            .pragma("wal_autocheckpoint", "0")
            // A log grown by a burst of writes is cut back when it starts over.
            .pragma("journal_size_limit", "67108864");
        let writer = pool_of(options.clone(), 1, true).await?;
        migrations::sqlite().run(&writer).await.map_err(|err| {
            Error::Unavailable(format!("migrating the SQLite database failed: {err}"))
        })?;
        if readers == 1 {
            // An in-memory database: no log to checkpoint.
            return SqlStore::new(writer.clone(), Writer::Shared(writer), ClockSource::Caller)
                .await;
        }
        let commits = Arc::new(Commits::new(checkpoint::COMMITS_PER_CHECKPOINT));
        let writer = Writer::own(writer, commits.clone());
        let checkpointer = options.connect().await.db()?;
        let readers = pool_of(options, readers, false).await?;
        let mut store = SqlStore::new(readers, writer.clone(), ClockSource::Caller).await?;
        store.keep_running(tokio::spawn(checkpoint::run(checkpointer, writer, commits)));
        Ok(store)
    }
}

/// A pool of `size` connections; with `writes`, each set up with [`WRITE_GUARD`].
async fn pool_of(options: SqliteConnectOptions, size: u32, writes: bool) -> Result<Pool<Sqlite>> {
    SqlitePoolOptions::new()
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if writes {
                    conn.execute(sqlx::raw_sql(WRITE_GUARD)).await?;
                }
                Ok(())
            })
        })
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
    // Without statistics the planner prefers the index of tasks by status for queries on
    // queued tasks, and reads every queued task to find the few a partial index holds.
    fn indexed_by(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }

    const DEPENDENCY_LIST: &'static str = "group_concat(d.depends_on_id)";
    // SQLite's default collation already compares bytes.
    const BYTE_ORDER: &'static str = "";
    const LOCKS_ROWS: bool = false;
    const SCRIPTS: bool = true;
    // Takes the write lock at once: the rows a transaction reads cannot change before it
    // writes, and another process's writer waits (busy timeout) instead of failing later.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // The planner walks the queue index in order without help.
    const QUEUE_CLAIM_SETTINGS: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    // A bare parameter as the row count makes SQLite plan the statement for the value
    // bound, so it prepares the statement again at every run (parsing the claim's
    // candidate query took 11 % of the connection thread's time); behind a unary plus
    // the count is read when the statement runs.
    const LIMIT: &'static str = " LIMIT +";

    async fn begin(
        _conn: &mut SqliteConnection,
        _settings: &'static str,
        read_clock: bool,
    ) -> Result<Option<Timestamp>> {
        // BEGIN goes in front of the first statement; the clock is this process's.
        Ok(read_clock.then(|| Timestamp::from(chrono::Utc::now())))
    }

    async fn number_events(_pool: &Pool<Self>) -> Result<()> {
        // Numbered as they are inserted: write transactions run one at a time.
        Ok(())
    }

    async fn run_batch(
        conn: &mut SqliteConnection,
        begin: Option<&'static str>,
        batch: Batch<Self>,
        commit: bool,
    ) -> Result<()> {
        // Write transactions run one at a time here, so events are numbered in commit
        // order as they are inserted.
        let query = match (batch.finish(), commit) {
            (Some(mut query), true) => {
                query.push("; COMMIT");
                query
            }
            (Some(query), false) => query,
            (None, true) => QueryBuilder::new("COMMIT"),
            (None, false) => return Ok(()),
        };
        let query = match begin {
            Some(begin) => prefixed(begin, query)?,
            None => query,
        };
        Self::execute(conn, query).await?;
        Ok(())
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
        // SQLite reports a statement's changes as those of the last statement that wrote,
        // so only the last statement's count is the query's own (not a BEGIN's, nor a sum).
        let mut stream = conn.fetch_many(query.build());
        let mut touched = 0;
        while let Some(step) = stream.try_next().await.db()? {
            if let Either::Left(done) = step {
                touched = done.rows_affected();
            }
        }
        Ok(touched)
    }

    async fn fetch_script(
        conn: &mut SqliteConnection,
        begin: Option<&'static str>,
        parts: Vec<Part<Self>>,
    ) -> Result<Vec<Vec<SqliteRow>>> {
        let count = parts.len();
        let mut query = QueryBuilder::new("");
        if let Some(begin) = begin {
            query.push(begin).push("; ");
        }
        for (index, part) in parts.into_iter().enumerate() {
            if index > 0 {
                query.push("; ");
            }
            part(&mut query);
        }
        // Every statement ends with its summary after its rows; a BEGIN in front has no
        // rows, so the parts' rows are the last `count` sets.
        let mut sets = Vec::new();
        let mut rows = Vec::new();
        let mut stream = conn.fetch_many(query.build());
        while let Some(step) = stream.try_next().await.db()? {
            match step {
                Either::Left(_) => sets.push(std::mem::take(&mut rows)),
                Either::Right(row) => rows.push(row),
            }
        }
        Ok(sets.split_off(sets.len().saturating_sub(count)))
    }

    async fn database_now<E: Exec<Self>>(_conn: &mut E) -> Result<Timestamp> {
        // One process owns the file: its clock is the clock.
        Ok(Timestamp::from(chrono::Utc::now()))
    }

    async fn next_fencing_tokens<E: Exec<Self>>(conn: &mut E, count: u64) -> Result<Vec<i64>> {
        let count = i64::try_from(count).map_err(Error::backend)?;
        // The write transaction holds the only writer lock: the reserved range is ours alone.
        let mut query = QueryBuilder::new("UPDATE counters SET value = value + ");
        query.push_bind(count);
        query.push(" WHERE name = 'file_lock_fencing' RETURNING value");
        let row = conn
            .fetch_optional(query)
            .await?
            .ok_or_else(|| Error::backend("the fencing counter is missing"))?;
        let last = row
            .integer("value")?
            .ok_or_else(|| Error::backend("the fencing counter is NULL"))?;
        Ok((last - count + 1..=last).collect())
    }

    async fn guard_lock_keys<E: Exec<Self>>(
        _conn: &mut E,
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

    fn insert_text_rows(
        batch: &mut Batch<Self>,
        table: &str,
        owner: (&'static str, Uuid),
        columns: &[&'static str],
        rows: Vec<Vec<Option<String>>>,
    ) {
        // Well under the 32,766 values a statement may bind.
        for chunk in rows.chunks(2_000) {
            let query = batch.statement(Expect::Anything);
            query.push(format!(
                "INSERT OR IGNORE INTO {table} ({}, {}) VALUES ",
                owner.0,
                columns.join(", ")
            ));
            for (index, row) in chunk.iter().enumerate() {
                query.push(if index == 0 { "(" } else { ", (" });
                let mut values = vec![Value::id(owner.1)];
                values.extend(row.iter().map(|text| Value::Text(text.clone())));
                push_list(query, values);
                query.push(")");
            }
        }
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

    fn utc_date(column: &str) -> String {
        // Instants are milliseconds since the epoch; dividing by a real keeps those
        // before it on the day they fall on.
        format!("date({column} / 1000.0, 'unixepoch')")
    }

    fn start_statement(query: &mut QueryBuilder<Self>, index: usize) {
        if index > 0 {
            query.push("; ");
        }
    }

    fn end_statement(query: &mut QueryBuilder<Self>, _index: usize, expect: Expect) {
        if let Expect::OneRow(_) = expect {
            // Stops the script, before its COMMIT, unless the update touched one row.
            query.push("; INSERT INTO temp.write_guard SELECT 1 WHERE changes() <> 1");
        }
    }

    fn end_batch(_query: &mut QueryBuilder<Self>, _expects: &[Expect]) {}
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
