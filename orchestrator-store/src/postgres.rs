//! [`PostgresStore`]: for teams and for several server replicas on one database. Writers
//! lock the rows they read (`SELECT … FOR UPDATE`) until commit. Events are inserted
//! unnumbered and numbered after commit by one serialized step before every read of the
//! log, so writers never wait for each other to append.
//!
//! Columns use the native types: UUID, TIMESTAMPTZ, JSONB.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Column, PgConnection, Pool, Postgres, QueryBuilder, Row, TypeInfo};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::dialect::{Batch, Dialect, Exec, Expect, Part};
use crate::engine::{ClockSource, SqlStore, Writer, announce};
use crate::error::SqlxResultExt;
use crate::migrations;
use crate::rows::RowReader;

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first connection may take before the server is reported unreachable.
const FIRST_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to the database `options` name, within [`FIRST_CONNECTION_TIMEOUT`]:
/// an unreachable or refusing server is reported at once, naming its host and port,
/// instead of after the pool's retries.
async fn check_reachable(options: &PgConnectOptions) -> Result<()> {
    use sqlx::Connection as _;
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let unreachable =
        |why: String| Error::Unavailable(format!("cannot reach PostgreSQL at {place}: {why}"));
    match tokio::time::timeout(
        FIRST_CONNECTION_TIMEOUT,
        PgConnection::connect_with(options),
    )
    .await
    {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            FIRST_CONNECTION_TIMEOUT.as_secs()
        ))),
    }
}

/// The PostgreSQL [`Store`](orchestrator_core::Store).
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the database a `postgres://` URL names and migrates it.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|err| {
            Error::invalid("databaseUrl", format!("not a usable PostgreSQL URL: {err}"))
        })?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options (for example a `search_path` naming a schema) and
    /// migrates the database.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        check_reachable(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .db()?;
        migrations::postgres().run(&pool).await.map_err(|err| {
            Error::Unavailable(format!("migrating the PostgreSQL database failed: {err}"))
        })?;
        let writer = Writer::Shared(pool.clone());
        let mut store = SqlStore::new(pool.clone(), writer, ClockSource::Database).await?;
        // Tells this process's own notifications apart from other processes'.
        let process = Uuid::new_v4().to_string();
        let peers = Arc::new(Notify::new());
        store.tell_peers_through(peers.clone());
        let channel = events_channel(&pool).await?;
        let committed = store.committed_sender();
        store.keep_running(tokio::spawn(tell_peers(
            pool.clone(),
            peers,
            channel.clone(),
            process.clone(),
        )));
        store.keep_running(tokio::spawn(listen_for_commits(
            pool, channel, committed, process,
        )));
        Ok(store)
    }
}

/// The channel on which the processes using this store's schema tell each other of
/// commits. Named after the schema (stores in other schemas of the database are other
/// stores), by a digest that keeps the name within PostgreSQL's 63 bytes.
async fn events_channel(pool: &Pool<Postgres>) -> Result<String> {
    sqlx::query_scalar("SELECT 'orchestrator_events_' || md5(coalesce(current_schema(), ''))")
        .fetch_one(pool)
        .await
        .db()
}

/// Tells the other processes using the schema, by NOTIFY on its [`events_channel`], that
/// this one committed events. It runs after the commits, never inside a write transaction
/// (where NOTIFY makes commits wait for each other), and sends at most one notification
/// per [`NOTIFY_INTERVAL`]: a notification is only a hint to read the event log, which
/// holds what happened.
async fn tell_peers(pool: Pool<Postgres>, commits: Arc<Notify>, channel: String, process: String) {
    while !pool.is_closed() {
        commits.notified().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(&process)
            .execute(&pool)
            .await;
        if let Err(err) = sent {
            // The listeners of other processes wake everyone when they reconnect, and
            // the next commit notifies again.
            tracing::warn!(error = %err, "cannot tell other processes of a commit");
        }
        tokio::time::sleep(NOTIFY_INTERVAL).await;
    }
}

/// Follows other processes' commits (LISTEN on the [`events_channel`]) so that this process's
/// subscribers wake for them too. After a lost connection it listens again and wakes
/// every subscriber (which also drops what was cached since), as notifications sent
/// meanwhile were lost. Ends when the pool closes or the store is dropped (which aborts
/// it).
async fn listen_for_commits(
    pool: Pool<Postgres>,
    channel: String,
    committed: watch::Sender<i64>,
    process: String,
) {
    let mut connected_before = false;
    while !pool.is_closed() {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for commits; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(&channel).await {
            tracing::warn!(error = %err, "cannot listen for commits; retrying in 5 s");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        if connected_before {
            announce(&committed);
        }
        connected_before = true;
        // `try_recv` answers `None` for a lost connection, where `recv` would reconnect
        // without saying so.
        while let Ok(Some(notification)) = listener.try_recv().await {
            if notification.payload() != process {
                announce(&committed);
            }
        }
        tracing::debug!("commit listener lost its connection; listening again");
    }
}

/// The shortest time between two notifications of one process.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// The advisory lock that makes event numbering one at a time.
const EVENT_NUMBERING_KEY: i64 = 0x6f72_6368_6576_6e74;

/// Advisory locks belong to the whole database, not to a schema: every key is mixed with
/// the store's schema, so that stores in different schemas of one database (tenants,
/// test runs) never wait for, nor are refused by, each other's guards.
const IN_THIS_SCHEMA: &str = " # hashtextextended(coalesce(current_schema(), ''), 0)";

/// `translate` arguments that lower-case ASCII letters only, as the other stores do.
const ASCII_LOWER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'";

#[async_trait]
impl Dialect for Postgres {
    // The planner weighs the partial indexes by itself.
    fn indexed_by(_index: &str) -> String {
        String::new()
    }

    const DEPENDENCY_LIST: &'static str = "string_agg(d.depends_on_id::text, ',')";
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const LOCKS_ROWS: bool = true;
    const SCRIPTS: bool = false;
    const BEGIN: &'static str = "BEGIN";
    // Without statistics (a new or bulk-filled table) the planner reads and sorts every
    // queued task, checking the dependencies of each, instead of walking the queue index
    // in order and stopping at the first free task: milliseconds per claim with a few
    // thousand queued. Sorting stays allowed but costed out for the claim transaction,
    // whose other reads (slots by primary key, locks by path) need no sort.
    const QUEUE_CLAIM_SETTINGS: &'static str = "SET LOCAL enable_sort = off";
    const SKIP_LOCKED: &'static str = " FOR UPDATE OF t SKIP LOCKED";
    const LIMIT: &'static str = " LIMIT ";

    async fn begin(
        conn: &mut PgConnection,
        settings: &'static str,
        read_clock: bool,
    ) -> Result<Option<Timestamp>> {
        // Parameterless statements share one round trip (simple query protocol).
        let mut sql = String::from(Self::BEGIN);
        if !settings.is_empty() {
            sql.push_str("; ");
            sql.push_str(settings);
        }
        if read_clock {
            sql.push_str("; SELECT clock_timestamp() AS now");
        }
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_optional(conn)
            .await
            .db()?;
        match row {
            Some(row) if read_clock => row.instant("now"),
            _ => Ok(None),
        }
    }

    async fn number_events(pool: &Pool<Self>) -> Result<()> {
        let pending: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)")
                .fetch_one(pool)
                .await
                .db()?;
        if !pending {
            return Ok(());
        }
        // One numbering at a time: every number handed out here is larger than any handed
        // out before, and readers see a numbering whole or not at all. Events committed
        // after this snapshot, or still uncommitted, get larger numbers later — so a
        // reader that has seen number N never finds a number below N appear.
        let mut tx = pool.begin().await.db()?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock($1{IN_THIS_SCHEMA})"
        )))
        .bind(EVENT_NUMBERING_KEY)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "UPDATE events SET seq = numbered.seq FROM ( \
                 SELECT id, nextval('events_seq_seq') AS seq FROM ( \
                     SELECT id FROM events WHERE seq IS NULL ORDER BY id) pending \
             ) numbered WHERE events.id = numbered.id",
        )
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn run_batch(
        conn: &mut PgConnection,
        begin: Option<&'static str>,
        batch: Batch<Self>,
        commit: bool,
    ) -> Result<()> {
        if let Some(begin) = begin {
            sqlx::raw_sql(begin).execute(&mut *conn).await.db()?;
        }
        if let Some(mut query) = batch.finish() {
            // A failed guard fails the statement (see `end_batch`).
            query.build().execute(&mut *conn).await.db()?;
        }
        if commit {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await.db()?;
        }
        Ok(())
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        mut query: QueryBuilder<Self>,
    ) -> Result<Vec<PgRow>> {
        query.build().fetch_all(conn).await.db()
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        mut query: QueryBuilder<Self>,
    ) -> Result<Option<PgRow>> {
        query.build().fetch_optional(conn).await.db()
    }

    async fn fetch_count(conn: &mut PgConnection, mut query: QueryBuilder<Self>) -> Result<u64> {
        let count: i64 = query.build_query_scalar().fetch_one(conn).await.db()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn execute(conn: &mut PgConnection, mut query: QueryBuilder<Self>) -> Result<u64> {
        Ok(query.build().execute(conn).await.db()?.rows_affected())
    }

    async fn fetch_script(
        conn: &mut PgConnection,
        begin: Option<&'static str>,
        parts: Vec<Part<Self>>,
    ) -> Result<Vec<Vec<PgRow>>> {
        if let Some(begin) = begin {
            sqlx::raw_sql(begin).execute(&mut *conn).await.db()?;
        }
        let mut sets = Vec::with_capacity(parts.len());
        for part in parts {
            let mut query = QueryBuilder::new("");
            part(&mut query);
            sets.push(query.build().fetch_all(&mut *conn).await.db()?);
        }
        Ok(sets)
    }

    async fn database_now<E: Exec<Self>>(conn: &mut E) -> Result<Timestamp> {
        let row = conn
            .fetch_optional(QueryBuilder::new("SELECT clock_timestamp() AS now"))
            .await?;
        row.map(|row| row.instant("now"))
            .transpose()?
            .flatten()
            .ok_or_else(|| Error::backend("the database returned no time"))
    }

    async fn next_fencing_tokens<E: Exec<Self>>(conn: &mut E, count: u64) -> Result<Vec<i64>> {
        let count = i64::try_from(count).map_err(Error::backend)?;
        // A sequence hands out unique, increasing numbers without serializing transactions;
        // calls of concurrent transactions interleave, so the numbers are kept one by one.
        let mut query = QueryBuilder::new(
            "SELECT nextval('file_lock_fencing') AS token FROM generate_series(1, ",
        );
        query.push_bind(count).push(")");
        let mut tokens = conn
            .fetch_all(query)
            .await?
            .iter()
            .map(|row| {
                row.integer("token")?
                    .ok_or_else(|| Error::backend("a NULL fencing token"))
            })
            .collect::<Result<Vec<i64>>>()?;
        tokens.sort_unstable();
        Ok(tokens)
    }

    async fn guard_lock_keys<E: Exec<Self>>(
        conn: &mut E,
        keys: &[(i64, bool)],
        wait: bool,
    ) -> Result<bool> {
        if keys.is_empty() {
            return Ok(true);
        }
        // One statement for all the keys: `unnest` yields them in the given order, and
        // each row takes its guard as it is produced.
        let (prefix, exclusive, shared) = if wait {
            ("", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared")
        } else {
            // Stops at the first guard another transaction holds.
            (
                "NOT ",
                "pg_try_advisory_xact_lock",
                "pg_try_advisory_xact_lock_shared",
            )
        };
        let guard = format!(
            "{prefix}(CASE WHEN g.exclusive THEN {exclusive}(g.key{IN_THIS_SCHEMA}) \
             ELSE {shared}(g.key{IN_THIS_SCHEMA}) END)"
        );
        let mut query = QueryBuilder::new("SELECT ");
        query.push(if wait { guard.as_str() } else { "g.key" });
        query.push(" FROM unnest(");
        query.push_bind(keys.iter().map(|(key, _)| *key).collect::<Vec<i64>>());
        query.push("::bigint[], ");
        query.push_bind(
            keys.iter()
                .map(|(_, exclusive)| *exclusive)
                .collect::<Vec<bool>>(),
        );
        query.push("::boolean[]) AS g(key, exclusive)");
        if wait {
            conn.execute(query).await?;
            return Ok(true);
        }
        query.push(" WHERE ").push(guard).push(" LIMIT 1");
        Ok(conn.fetch_optional(query).await?.is_none())
    }

    fn bind_id(query: &mut QueryBuilder<Self>, value: Option<Uuid>) {
        query.push_bind(value);
    }

    fn bind_instant(query: &mut QueryBuilder<Self>, value: Option<Timestamp>) {
        query.push_bind(value.map(|at| at.as_datetime()));
    }

    fn bind_json(query: &mut QueryBuilder<Self>, value: Option<serde_json::Value>) {
        query.push_bind(value);
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
        if rows.is_empty() {
            return;
        }
        // One array per column, whatever the number of rows: a batch is one statement,
        // and a statement binds at most 65,535 values.
        let query = batch.statement(Expect::Anything);
        query.push(format!(
            "INSERT INTO {table} ({}, {}) SELECT ",
            owner.0,
            columns.join(", ")
        ));
        query.push_bind(owner.1);
        query.push(", u.* FROM unnest(");
        for (index, _) in columns.iter().enumerate() {
            if index > 0 {
                query.push(", ");
            }
            let column: Vec<Option<String>> = rows
                .iter()
                .map(|row| row.get(index).cloned().flatten())
                .collect();
            query.push_bind(column);
            query.push("::text[]");
        }
        query.push(") AS u ON CONFLICT DO NOTHING");
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
        query.push(format!("strpos(translate({column}, {ASCII_LOWER}), "));
        query.push_bind(needle);
        query.push(") > 0");
    }

    fn utc_date(column: &str) -> String {
        format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    }

    // A batch is one statement: each write a data-modifying WITH clause (they all run,
    // read or not), and a final SELECT of how many rows each guarded update touched.
    fn start_statement(query: &mut QueryBuilder<Self>, index: usize) {
        query.push(if index == 0 { "WITH " } else { ", " });
        query.push(format!("s{index} AS ("));
    }

    fn end_statement(query: &mut QueryBuilder<Self>, _index: usize, _expect: Expect) {
        query.push(" RETURNING 1)");
    }

    fn end_batch(query: &mut QueryBuilder<Self>, expects: &[Expect]) {
        query.push(" SELECT 1 AS done");
        for (index, expect) in expects.iter().enumerate() {
            if let Expect::OneRow(what) = expect {
                // Raises unless the guarded update touched one row: the statement fails
                // as a whole, so none of its writes is kept.
                query.push(format!(
                    ", orchestrator_write_guard((SELECT count(*) FROM s{index}), '{what}') \
                     AS s{index}"
                ));
            }
        }
    }
}

fn column<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    name: &str,
) -> Result<Option<T>> {
    row.try_get::<Option<T>, _>(name).db()
}

impl RowReader for PgRow {
    fn text(&self, name: &str) -> Result<Option<String>> {
        column(self, name)
    }

    fn integer(&self, name: &str) -> Result<Option<i64>> {
        let type_name = self.try_column(name).db()?.type_info().name().to_owned();
        match type_name.as_str() {
            "INT2" => Ok(column::<i16>(self, name)?.map(i64::from)),
            "INT4" => Ok(column::<i32>(self, name)?.map(i64::from)),
            _ => column(self, name),
        }
    }

    fn real(&self, name: &str) -> Result<Option<f64>> {
        column(self, name)
    }

    fn flag(&self, name: &str) -> Result<Option<bool>> {
        column(self, name)
    }

    fn uuid(&self, name: &str) -> Result<Option<Uuid>> {
        column(self, name)
    }

    fn instant(&self, name: &str) -> Result<Option<Timestamp>> {
        Ok(column::<DateTime<Utc>>(self, name)?.map(Timestamp::from))
    }

    fn json(&self, name: &str) -> Result<Option<serde_json::Value>> {
        column(self, name)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::pool::PoolConnection;

    use super::*;
    use crate::scratch::ScratchSchema;
    use orchestrator_core::store::TaskStore;

    async fn in_transaction(store: &PostgresStore) -> PoolConnection<Postgres> {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
        conn
    }

    /// Rolls back the transactions of `conns`, closes `store` and drops its schema.
    async fn finish(
        conns: impl IntoIterator<Item = PoolConnection<Postgres>>,
        store: PostgresStore,
        schema: ScratchSchema,
    ) {
        for mut conn in conns {
            sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
        }
        store.pool().close().await;
        schema.drop_schema().await;
    }

    #[tokio::test]
    async fn guards_of_one_schema_leave_another_schema_alone() {
        let Some(first) = ScratchSchema::from_env("guard keys").await else {
            return;
        };
        let second = ScratchSchema::from_env("guard keys").await.unwrap();
        let one = first.open(ClockSource::Caller).await;
        let two = second.open(ClockSource::Caller).await;
        let keys = [(42_i64, true)];

        let mut holder = in_transaction(&one).await;
        assert!(
            Postgres::guard_lock_keys(&mut holder, &keys, false)
                .await
                .unwrap()
        );
        let mut same_schema = in_transaction(&one).await;
        assert!(
            !Postgres::guard_lock_keys(&mut same_schema, &keys, false)
                .await
                .unwrap(),
            "a guard held in the schema is refused there"
        );
        let mut other_schema = in_transaction(&two).await;
        assert!(
            Postgres::guard_lock_keys(&mut other_schema, &keys, false)
                .await
                .unwrap(),
            "the same key in another schema is free"
        );

        finish([holder, same_schema], one, first).await;
        finish([other_schema], two, second).await;
    }

    /// A claim reading deep into the queue leaves the rows it read free for other claims;
    /// it takes the one it wants, which another claim then passes over.
    #[tokio::test]
    async fn deep_claim_reads_lock_only_the_task_taken() {
        use orchestrator_core::model::NewTask;

        let Some(schema) = ScratchSchema::from_env("claim reads").await else {
            return;
        };
        let store = schema.open(ClockSource::Caller).await;
        let now = Timestamp::from_millis(1_000).unwrap();
        let task = store
            .create_task(NewTask::new("deep", "d"), now)
            .await
            .unwrap()
            .value;
        let mut reader = in_transaction(&store).await;
        let read = crate::sql::read::claimable::<Postgres>(&mut reader, now, &[], None, 10)
            .await
            .unwrap();
        assert_eq!(read.iter().map(|t| t.id).collect::<Vec<_>>(), [task.id]);
        let mut other = in_transaction(&store).await;
        let taken = crate::sql::read::claimable_task::<Postgres>(&mut other, now, task.id)
            .await
            .unwrap();
        assert_eq!(
            taken.map(|t| t.id),
            Some(task.id),
            "the deep read locked nothing"
        );
        let passed_over = crate::sql::read::claimable_task::<Postgres>(&mut reader, now, task.id)
            .await
            .unwrap();
        assert!(passed_over.is_none(), "the row taken is passed over");
        finish([reader, other], store, schema).await;
    }

    /// A set of guards is taken in one statement, each in its mode; a try gives up on the
    /// first one held against it and reports it.
    #[tokio::test]
    async fn guard_sets_take_each_key_in_its_mode() {
        let Some(schema) = ScratchSchema::from_env("guard sets").await else {
            return;
        };
        let store = schema.open(ClockSource::Caller).await;
        let mut holder = in_transaction(&store).await;
        Postgres::guard_lock_keys(&mut holder, &[(1, false), (2, true)], true)
            .await
            .unwrap();
        let mut other = in_transaction(&store).await;
        for (keys, free) in [
            (vec![(1, false)], true),
            (vec![(1, true)], false),
            (vec![(3, true), (2, false)], false),
            (vec![(3, true), (4, false)], true),
            (Vec::new(), true),
        ] {
            assert_eq!(
                Postgres::guard_lock_keys(&mut other, &keys, false)
                    .await
                    .unwrap(),
                free,
                "{keys:?}"
            );
        }
        finish([holder, other], store, schema).await;
    }
}
