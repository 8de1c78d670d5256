//! [`SqlStore`]: the [`Store`] of every SQL backend.
//!
//! Each operation follows the same flow — open a write transaction, load (and on
//! PostgreSQL lock) the rows, ask `orchestrator_core::change` what to write, write it,
//! append the events, commit — so the rules live in the core, the flow here, and the SQL
//! in [`crate::sql`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{
    self, AgentAction, AttemptEnd, Change, ExceptionDecision, LeaseRef, TaskAction, TaskContext,
};
use orchestrator_core::coordination::{
    Claim, ClaimRequest, HeartbeatAck, PruneReport, RetentionPolicy,
};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use orchestrator_core::lock::parse_paths;
use orchestrator_core::model::{
    Agent, AgentActivityCounts, AgentLog, AgentQuery, Event, Exception, ExceptionQuery,
    ExceptionStatus, ExceptionType, LogPage, LogQuery, NewAgent, NewAgentLog, NewEvent,
    NewException, NewRunnerSession, NewTask, NewVerificationResult, Page, RunnerSession,
    SystemStats, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery, TaskStatus,
    VerificationResult,
};
use orchestrator_core::model::{FileLock, LockMode};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::store::{Created, Store, check_lookup_size, check_token_hash};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, QueryBuilder};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use crate::dialect::{Batch, Dialect, Exec, Part, prefixed};
use crate::error::SqlxResultExt;
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};
use crate::sql::write;

mod coordination;
mod locks;

/// The `server_settings` row that holds the admin token's hash.
const ADMIN_TOKEN_SETTING: &str = "admin_token_hash";

/// A [`Store`] over a SQL database: [`SqliteStore`](crate::SqliteStore) or
/// [`PostgresStore`](crate::PostgresStore).
pub struct SqlStore<D: Dialect> {
    /// Connections reads run on.
    pub(crate) pool: Pool<D>,
    /// Where write transactions get their connection.
    writer: Writer<D>,
    clock: ClockSource,
    /// The newest event sequence number known to be committed.
    committed: watch::Sender<i64>,
    /// Background work that lives as long as the store (a listener for other processes'
    /// commits, a checkpointer); stopped when the store is dropped.
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Where write transactions get their connection.
pub(crate) enum Writer<D: Dialect> {
    /// From the pool reads use too.
    Shared(Pool<D>),
    /// One connection of its own (SQLite's writer), taken from a pool of one and kept:
    /// writers queue for it in order (instead of polling the busy handler, and without
    /// waiting behind readers), and none waits for the pool's check of a returned
    /// connection (on SQLite a round trip to the connection's thread).
    Own {
        pool: Pool<D>,
        conn: Arc<Mutex<Option<PoolConnection<D>>>>,
        commits: Arc<Commits>,
    },
}

impl<D: Dialect> Clone for Writer<D> {
    fn clone(&self) -> Self {
        match self {
            Self::Shared(pool) => Self::Shared(pool.clone()),
            Self::Own {
                pool,
                conn,
                commits,
            } => Self::Own {
                pool: pool.clone(),
                conn: conn.clone(),
                commits: commits.clone(),
            },
        }
    }
}

impl<D: Dialect> Writer<D> {
    /// A writer with a connection of its own from `pool`, counting its commits in
    /// `commits`.
    pub(crate) fn own(pool: Pool<D>, commits: Arc<Commits>) -> Self {
        Self::Own {
            pool,
            conn: Arc::new(Mutex::new(None)),
            commits,
        }
    }

    /// The writer's connection, for this caller alone until the returned guard is
    /// dropped: write transactions wait meanwhile.
    pub(crate) async fn acquire(&self) -> Result<Held<D>> {
        match self {
            Self::Shared(pool) => Ok(Held::Pooled(pool.acquire().await.db()?)),
            Self::Own {
                pool,
                conn,
                commits,
            } => {
                let mut held = conn.clone().lock_owned().await;
                if held.is_none() {
                    *held = Some(pool.acquire().await.db()?);
                }
                Ok(Held::Own(held, commits.clone()))
            }
        }
    }
}

/// Counts a writer's commits and wakes one waiter on the first commit after a reset and
/// on every `wake_every`-th.
#[derive(Debug)]
pub(crate) struct Commits {
    since_reset: AtomicU64,
    wake_every: u64,
    wake: Notify,
}

impl Commits {
    pub(crate) fn new(wake_every: u64) -> Self {
        Self {
            since_reset: AtomicU64::new(0),
            wake_every: wake_every.max(1),
            wake: Notify::new(),
        }
    }

    fn record(&self) {
        let count = self.since_reset.fetch_add(1, Ordering::Relaxed) + 1;
        if count == 1 || count.is_multiple_of(self.wake_every) {
            self.wake.notify_one();
        }
    }

    /// Commits since the last [`reset`](Self::reset).
    pub(crate) fn since_reset(&self) -> u64 {
        self.since_reset.load(Ordering::Relaxed)
    }

    pub(crate) fn reset(&self) {
        self.since_reset.store(0, Ordering::Relaxed);
    }

    /// Waits for a wake-up (one that came while nobody waited is kept).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// The connection of a write transaction.
pub(crate) enum Held<D: Dialect> {
    Pooled(PoolConnection<D>),
    /// Never empty while held.
    Own(OwnedMutexGuard<Option<PoolConnection<D>>>, Arc<Commits>),
}

impl<D: Dialect> Held<D> {
    pub(crate) fn connection(&mut self) -> &mut D::Connection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Own(held, _) => held.as_mut().expect("a held writer connection"),
        }
    }

    /// Makes sure the connection is closed, not reused, once released.
    fn discard(&mut self) {
        match self {
            Self::Pooled(conn) => conn.close_on_drop(),
            Self::Own(held, _) => {
                if let Some(mut conn) = held.take() {
                    conn.close_on_drop();
                }
            }
        }
    }

    fn committed(&self) {
        if let Self::Own(_, commits) = self {
            commits.record();
        }
    }
}

/// Whose clock decides time-dependent outcomes (lease expiry, delays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The `now` the caller passes in (tests, simulations, a single process).
    Caller,
    /// The database server's clock, shared by every server process using it.
    Database,
}

impl<D: Dialect> Drop for SqlStore<D> {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &std::any::type_name::<D>())
            .field("connections", &self.pool.size())
            .finish()
    }
}

/// A write transaction, begun and ended by hand rather than through sqlx's transaction
/// type. Writes wait in [`Tx::batch`] and go out as one query before the next statement
/// or with the commit. Where the dialect takes several statements in one call (SQLite),
/// the BEGIN also travels in front of the first statement and the COMMIT behind the last
/// writes: on SQLite every call is a hand-off to the connection's own thread, the largest
/// cost of a small transaction. Dropped before its commit, the transaction rolls back.
pub(crate) struct Tx<D: Dialect> {
    /// Taken when the transaction is dropped.
    conn: Option<Held<D>>,
    /// A BEGIN not sent yet.
    begin: Option<&'static str>,
    /// Whether a BEGIN went out and no COMMIT has succeeded since.
    open: bool,
    /// Writes not sent yet.
    batch: Batch<D>,
    /// Whether the transaction appended events.
    appends_events: bool,
    /// Whether there is no explicit transaction: each statement commits by itself.
    implicit: bool,
}

impl<D: Dialect> Tx<D> {
    /// Opens a write transaction on `conn`; with `read_clock`, also returns the database
    /// clock.
    async fn begin(
        conn: Held<D>,
        settings: &'static str,
        read_clock: bool,
    ) -> Result<(Self, Option<Timestamp>)> {
        let mut tx = Self {
            conn: Some(conn),
            begin: D::SCRIPTS.then_some(D::BEGIN),
            open: !D::SCRIPTS,
            batch: Batch::new(),
            appends_events: false,
            implicit: false,
        };
        let clock = D::begin(tx.connection(), settings, read_clock).await?;
        Ok((tx, clock))
    }

    /// Statements on `conn` without an explicit transaction, each committed by itself: for
    /// a change whose writes go out as one statement after unlocked reads. Only for a
    /// dialect that sends a batch as one statement, not as a script.
    fn implicit(conn: Held<D>) -> Self {
        debug_assert!(
            !D::SCRIPTS,
            "a script outside a transaction commits piecemeal"
        );
        Self {
            conn: Some(conn),
            begin: None,
            open: false,
            batch: Batch::new(),
            appends_events: false,
            implicit: true,
        }
    }

    fn connection(&mut self) -> &mut D::Connection {
        self.conn
            .as_mut()
            .expect("a transaction keeps its connection until dropped")
            .connection()
    }

    /// Where writes go: they are sent with the transaction's next statement or commit.
    fn batch(&mut self) -> &mut Batch<D> {
        &mut self.batch
    }

    /// Sends the writes waiting in the batch (and a BEGIN not sent yet), then a COMMIT if
    /// `commit`.
    async fn send(&mut self, commit: bool) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Batch::new());
        self.appends_events |= batch.appends_events();
        let begin = self.begin.take();
        self.open |= begin.is_some();
        D::run_batch(self.connection(), begin, batch, commit).await
    }

    /// `query` ready to send: waiting writes go out first (it may read what they wrote),
    /// a BEGIN not sent yet goes in front of it.
    async fn lead(&mut self, query: QueryBuilder<D>) -> Result<QueryBuilder<D>> {
        if !self.batch.is_empty() {
            self.send(false).await?;
        }
        match self.begin.take() {
            Some(begin) => {
                self.open = true;
                prefixed(begin, query)
            }
            None => Ok(query),
        }
    }

    /// Rolls back at once, not in the background as a drop does: the rows it locked (on
    /// SQLite, the writer) are free when the caller goes on.
    async fn rollback(mut self) {
        if self.open {
            self.open = false;
            let rollback = QueryBuilder::new("ROLLBACK");
            if D::execute(self.connection(), rollback).await.is_err()
                && let Some(conn) = self.conn.as_mut()
            {
                conn.discard();
            }
        }
    }

    /// Rolls back at once and returns `refusal`.
    async fn refuse<T>(self, refusal: Error) -> Result<T> {
        self.rollback().await;
        Err(refusal)
    }

    /// The transaction and `outcome`'s value (a plan, a check) to go on with; a refusal
    /// rolls back at once and is returned.
    async fn check<T>(self, outcome: Result<T>) -> Result<(Self, T)> {
        match outcome {
            Ok(value) => Ok((self, value)),
            Err(refusal) => self.refuse(refusal).await,
        }
    }

    /// Sends what is left and commits; returns whether the transaction appended events.
    async fn commit(mut self) -> Result<bool> {
        if self.open || !self.batch.is_empty() {
            let commit = !self.implicit;
            self.send(commit).await?;
            if let Some(conn) = &self.conn {
                conn.committed();
            }
        }
        self.open = false;
        Ok(self.appends_events)
    }
}

impl<D: Dialect> Drop for Tx<D> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.open {
            return;
        }
        // Rolled back before the connection is released (the next writer waits for it);
        // if that fails, or there is no runtime to do it on, closing the connection ends
        // the transaction instead.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let rollback = QueryBuilder::new("ROLLBACK");
                    if D::execute(conn.connection(), rollback).await.is_err() {
                        conn.discard();
                    }
                });
            }
            Err(_) => conn.discard(),
        }
    }
}

#[async_trait]
impl<D: Dialect> Exec<D> for Tx<D> {
    async fn fetch_all(&mut self, query: QueryBuilder<D>) -> Result<Vec<D::Row>> {
        let query = self.lead(query).await?;
        D::fetch_all(self.connection(), query).await
    }

    async fn fetch_optional(&mut self, query: QueryBuilder<D>) -> Result<Option<D::Row>> {
        let query = self.lead(query).await?;
        D::fetch_optional(self.connection(), query).await
    }

    async fn fetch_count(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        let query = self.lead(query).await?;
        D::fetch_count(self.connection(), query).await
    }

    async fn execute(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        let query = self.lead(query).await?;
        D::execute(self.connection(), query).await
    }

    async fn fetch_script(&mut self, parts: Vec<Part<D>>) -> Result<Vec<Vec<D::Row>>> {
        if !self.batch.is_empty() {
            self.send(false).await?;
        }
        let begin = self.begin.take();
        self.open |= begin.is_some();
        D::fetch_script(self.connection(), begin, parts).await
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store reading through `pool` and writing through `writer`.
    pub(crate) async fn new(pool: Pool<D>, writer: Writer<D>, clock: ClockSource) -> Result<Self> {
        let newest = read::newest_event_seq::<D>(&mut pool.acquire().await.db()?).await?;
        Ok(Self {
            pool,
            writer,
            clock,
            committed: watch::Sender::new(newest),
            background: Vec::new(),
        })
    }

    /// Runs `task` for as long as the store lives.
    pub(crate) fn keep_running(&mut self, task: tokio::task::JoinHandle<()>) {
        self.background.push(task);
    }

    /// The sender subscribers are woken through, for work that learns of commits
    /// elsewhere.
    #[cfg(feature = "postgres")]
    pub(crate) fn committed_sender(&self) -> watch::Sender<i64> {
        self.committed.clone()
    }

    /// Uses the caller's `now` instead of the database clock (for tests that drive time).
    pub fn with_clock(mut self, clock: ClockSource) -> Self {
        self.clock = clock;
        self
    }

    /// The connection pool, for embedders that keep their own tables alongside.
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// Opens a write transaction and settles the instant it works with (the caller's or
    /// the database's, see [`ClockSource`]).
    async fn begin_at(&self, caller_now: Timestamp) -> Result<(Tx<D>, Timestamp)> {
        self.begin_with("", caller_now).await
    }

    /// [`begin_at`](Self::begin_at) with `settings` sent along with the BEGIN.
    async fn begin_with(
        &self,
        settings: &'static str,
        caller_now: Timestamp,
    ) -> Result<(Tx<D>, Timestamp)> {
        let conn = self.writer.acquire().await?;
        let read_clock = self.clock == ClockSource::Database;
        let (tx, clock) = Tx::begin(conn, settings, read_clock).await?;
        Ok((tx, clock.unwrap_or(caller_now)))
    }

    /// Writes planned log entries, marks `agents` active, records the events, commits;
    /// returns how many entries were written.
    async fn store_logs(
        &self,
        mut tx: Tx<D>,
        stored: &[AgentLog],
        agents: &[AgentId],
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<u64> {
        write::insert_logs(tx.batch(), stored);
        write::touch_agents(tx.batch(), agents, now);
        write::append_events(tx.batch(), events, now);
        self.commit(tx).await?;
        Ok(stored.len() as u64)
    }

    /// The instant a read works with: the caller's, or the database's.
    async fn now(&self, conn: &mut impl Exec<D>, caller: Timestamp) -> Result<Timestamp> {
        match self.clock {
            ClockSource::Caller => Ok(caller),
            ClockSource::Database => D::database_now(conn).await,
        }
    }

    /// Commits and, if events were appended, wakes subscribers.
    async fn commit(&self, tx: Tx<D>) -> Result<()> {
        if tx.commit().await? {
            announce(&self.committed);
        }
        Ok(())
    }

    /// Writes a planned change and commits it; returns the locks it granted.
    async fn persist(
        &self,
        mut tx: Tx<D>,
        change: &Change,
        now: Timestamp,
    ) -> Result<Vec<FileLock>> {
        if change.noop {
            return Ok(Vec::new());
        }
        let granted = write_change(&mut tx, change, now).await?;
        self.commit(tx).await?;
        Ok(granted)
    }

    async fn read(&self) -> Result<PoolConnection<D>> {
        self.pool.acquire().await.db()
    }
}

fn found<T>(row: Option<T>, entity: &'static str, id: impl fmt::Display) -> Result<T> {
    row.ok_or_else(|| Error::not_found(entity, id))
}

/// The task `id`, locked until the transaction ends; `NotFound` if there is none.
async fn locked_task<D: Dialect>(tx: &mut Tx<D>, id: TaskId) -> Result<Task> {
    found(read::task::<D>(tx, id, Lock::ForUpdate).await?, "task", id)
}

fn planned<T>(row: Option<T>, what: &str) -> Result<T> {
    row.ok_or_else(|| Error::backend(format!("the plan carried no {what}")))
}

/// Wakes subscribers: events may have been committed.
pub(crate) fn announce(committed: &watch::Sender<i64>) {
    committed.send_modify(|generation| *generation += 1);
}

/// Adds the writes of a planned change to `tx`'s batch (nothing for a no-op); returns the
/// locks it granted.
async fn write_change<D: Dialect>(
    tx: &mut Tx<D>,
    change: &Change,
    now: Timestamp,
) -> Result<Vec<FileLock>> {
    if change.noop {
        return Ok(Vec::new());
    }
    let granted = sql_locks::number::<D>(tx, &change.lock_grants).await?;
    let batch = tx.batch();
    if let Some(task) = change.release_task_locks {
        sql_locks::release_task(batch, task);
    }
    if let Some((task, expires)) = change.renew_task_locks {
        sql_locks::renew_task(batch, task, expires);
    }
    if let Some(task) = &change.task {
        write::update_task(batch, task)?;
    }
    if let Some(agent) = &change.agent {
        write::update_agent(batch, agent);
    }
    if let Some(attempt) = &change.attempt {
        write::upsert_attempt(batch, attempt);
    }
    if let Some(exception) = &change.exception {
        write::upsert_exception(batch, exception);
    }
    if let Some(session) = &change.runner_session {
        write::update_runner_session(batch, session);
    }
    if let Some(result) = &change.verification {
        write::insert_verification(batch, result)?;
    }
    if !change.logs.is_empty() {
        write::insert_logs(batch, &change.logs);
    }
    sql_locks::insert(batch, &granted);
    write::append_events(batch, &change.events, now);
    Ok(granted)
}

/// Runs `operation` once more if it lost a uniqueness race with a concurrent writer (an
/// idempotency key, an exception raised twice at once): the second run sees the winner's
/// row and takes the path that reuses it.
async fn retry_on_race<T, F, Fut>(mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match operation().await {
        Err(Error::Conflict(_)) => operation().await,
        other => other,
    }
}

async fn check_dependencies<D: Dialect>(
    tx: &mut Tx<D>,
    new: &NewTask,
    field_prefix: &str,
) -> Result<()> {
    if let Some(id) = read::missing::<D, _>(tx, "tasks", &new.depends_on)
        .await?
        .first()
    {
        return Err(Error::invalid(
            format!("{field_prefix}dependsOn"),
            format!("task {id} does not exist"),
        ));
    }
    Ok(())
}

/// Adds `new` to `tx`'s batch unless its idempotency key names an existing task.
async fn insert_new_task<D: Dialect>(
    tx: &mut Tx<D>,
    new: NewTask,
    now: Timestamp,
) -> Result<Created<Task>> {
    if let Some(key) = &new.idempotency_key
        && let Some(existing) = read::task_by_idempotency_key::<D>(tx, key).await?
    {
        return Ok(Created {
            value: existing,
            created: false,
        });
    }
    let task = new.into_task(TaskId::new(), now);
    write::insert_task(tx.batch(), &task)?;
    write::append_events(tx.batch(), &[change::task_created_event(&task)], now);
    Ok(Created {
        value: task,
        created: true,
    })
}

/// The rows a task action on task `id` starts from, locked; `None` if there is no such
/// task. The task, its agent and its latest attempt are read together (one script on
/// SQLite, one statement on PostgreSQL).
async fn task_context<D: Dialect>(
    tx: &mut Tx<D>,
    id: TaskId,
    action: &TaskAction,
    now: Timestamp,
) -> Result<Option<TaskContext>> {
    let assignee = match action {
        TaskAction::Assign { agent_id, .. } => Some(*agent_id),
        _ => None,
    };
    let read::TaskRows {
        task,
        agent,
        attempt,
        ..
    } = read::task_with_agent_and_attempt::<D>(tx, id, assignee, Lock::ForUpdate).await?;
    let Some(task) = task else {
        return Ok(None);
    };
    let (unfinished_dependencies, lock_conflicts) = match assignee {
        Some(agent_id) => {
            found(agent.as_ref(), "agent", agent_id)?;
            let paths = parse_paths(&task.files_hint, "filesHint")?;
            let guards = sql_locks::guard_keys(&paths);
            D::guard_lock_keys(tx, &guards, true).await?;
            let conflicts =
                sql_locks::conflicts::<D>(tx, &paths, LockMode::Exclusive, Some(agent_id), now)
                    .await?;
            (
                read::unfinished_dependencies::<D>(tx, task.id).await?,
                conflicts,
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Some(TaskContext {
        task,
        agent,
        attempt,
        unfinished_dependencies,
        lock_conflicts,
    }))
}

impl<D: Dialect> SqlStore<D> {
    /// A change to task `id` and its agent where reads lock rows (PostgreSQL), tried
    /// first for task actions other than claims and for heartbeats: the task's rows and the
    /// clock are read without locks, `plan` decides, and the change is written as one
    /// guarded statement that commits by itself — two round trips instead of four. A row
    /// changed between the read and the write fails the guarded statement whole; on that,
    /// or on any other refusal, returns `None`: the caller runs the operation again in a
    /// transaction that locks the rows, which decides. An unreachable database is the
    /// caller's error instead, as the write may have committed before its reply was lost.
    async fn write_unlocked<T>(
        &self,
        id: TaskId,
        now: Timestamp,
        plan: impl FnOnce(TaskContext, Timestamp) -> Result<(Change, T)>,
    ) -> Result<Option<T>> {
        match self.try_write_unlocked(id, now, plan).await {
            Ok(outcome) => Ok(Some(outcome)),
            Err(err @ Error::Unavailable(_)) => Err(err),
            Err(_) => Ok(None),
        }
    }

    async fn try_write_unlocked<T>(
        &self,
        id: TaskId,
        now: Timestamp,
        plan: impl FnOnce(TaskContext, Timestamp) -> Result<(Change, T)>,
    ) -> Result<T> {
        let mut tx = Tx::implicit(self.writer.acquire().await?);
        let rows = read::task_with_agent_and_attempt::<D>(&mut tx, id, None, Lock::None).await?;
        let now = match self.clock {
            ClockSource::Caller => now,
            ClockSource::Database => planned(rows.clock, "database clock")?,
        };
        let context = TaskContext {
            task: found(rows.task, "task", id)?,
            agent: rows.agent,
            attempt: rows.attempt,
            unfinished_dependencies: Vec::new(),
            lock_conflicts: Vec::new(),
        };
        let (change, outcome) = plan(context, now)?;
        self.persist(tx, &change, now).await?;
        Ok(outcome)
    }

    /// Plans a change to task `id` from its rows as `action` needs them, and writes it.
    /// With `exception`, `plan` also gets the task's unresolved exception of that type,
    /// read under the transaction's locks. Where reads lock rows, an attempt without locks
    /// comes first (see [`Self::write_unlocked`]) for changes that need no exception;
    /// claims always lock.
    async fn change_task<T>(
        &self,
        id: TaskId,
        action: &TaskAction,
        exception: Option<ExceptionType>,
        now: Timestamp,
        plan: impl Fn(TaskContext, Option<Exception>, Timestamp) -> Result<(Change, T)>,
    ) -> Result<T> {
        let unlocked_first =
            D::LOCKS_ROWS && exception.is_none() && !matches!(action, TaskAction::Assign { .. });
        if unlocked_first {
            let unlocked = self.write_unlocked(id, now, |context, now| plan(context, None, now));
            if let Some(outcome) = unlocked.await? {
                return Ok(outcome);
            }
        }
        let (mut tx, now) = self.begin_at(now).await?;
        let context = found(task_context(&mut tx, id, action, now).await?, "task", id)?;
        let unresolved = match exception {
            Some(kind) => read::unresolved_exception::<D>(&mut tx, kind, id).await?,
            None => None,
        };
        let (tx, (change, outcome)) = tx.check(plan(context, unresolved, now)).await?;
        self.persist(tx, &change, now).await?;
        Ok(outcome)
    }

    async fn raise_once(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(agent) = new.agent_id {
            found(
                read::agent::<D>(&mut tx, agent, Lock::None).await?,
                "agent",
                agent,
            )?;
        }
        let unresolved = match new.task_id {
            Some(task) => {
                found(
                    read::task::<D>(&mut tx, task, Lock::None).await?,
                    "task",
                    task,
                )?;
                read::unresolved_exception::<D>(&mut tx, new.exception_type, task).await?
            }
            None => None,
        };
        let (tx, change) = tx
            .check(change::plan_exception(new, unresolved, now))
            .await?;
        let exception = planned(change.exception.clone(), "exception")?;
        self.persist(tx, &change, now).await?;
        Ok(exception)
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    async fn ping(&self) -> Result<()> {
        read::events_since::<D>(&mut self.read().await?, i64::MAX, 1).await?;
        Ok(())
    }

    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>> {
        new.validate()?;
        retry_on_race(|| async {
            let (mut tx, now) = self.begin_at(now).await?;
            check_dependencies(&mut tx, &new, "").await?;
            let created = insert_new_task(&mut tx, new.clone(), now).await?;
            if created.created {
                self.commit(tx).await?;
            }
            Ok(created)
        })
        .await
    }

    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>> {
        change::validate_task_batch(&batch)?;
        retry_on_race(|| async {
            let (mut tx, now) = self.begin_at(now).await?;
            for (index, new) in batch.iter().enumerate() {
                check_dependencies(&mut tx, new, &format!("tasks[{index}].")).await?;
            }
            let mut tasks = Vec::with_capacity(batch.len());
            for new in batch.iter().cloned() {
                tasks.push(insert_new_task(&mut tx, new, now).await?.value);
            }
            self.commit(tx).await?;
            Ok(tasks)
        })
        .await
    }

    async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<Task>> {
        check_lookup_size(ids)?;
        read::tasks_by_id::<D>(&mut self.read().await?, ids).await
    }

    async fn task_activity_counts(&self, ids: &[TaskId]) -> Result<Vec<TaskActivityCounts>> {
        check_lookup_size(ids)?;
        read::task_activity_counts::<D>(&mut self.read().await?, ids).await
    }

    async fn get_task(&self, id: TaskId) -> Result<Task> {
        found(
            read::task::<D>(&mut self.read().await?, id, Lock::None).await?,
            "task",
            id,
        )
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        query.validate()?;
        read::tasks::<D>(&mut self.read().await?, query).await
    }

    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task> {
        edit.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, id).await?;
        let (tx, change) = tx.check(change::plan_task_edit(task, edit, now)).await?;
        let task = planned(change.task.clone(), "task")?;
        self.persist(tx, &change, now).await?;
        Ok(task)
    }

    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task> {
        self.change_task(id, &action, None, now, |context, _, now| {
            let change = change::plan_task_action(context, action.clone(), lease.as_ref(), now)?;
            let task = planned(change.task.clone(), "task")?;
            Ok((change, task))
        })
        .await
    }

    async fn end_attempt(&self, lease: LeaseRef, end: AttemptEnd, now: Timestamp) -> Result<Task> {
        end.validate()?;
        let exception = end.follow_up_exception();
        let run = || {
            self.change_task(
                lease.task_id,
                &end.action,
                exception,
                now,
                |context, unresolved, now| {
                    let change =
                        change::plan_attempt_end(context, end.clone(), unresolved, &lease, now)?;
                    let task = planned(change.task.clone(), "task")?;
                    Ok((change, task))
                },
            )
        };
        match exception {
            // Raising the exception while another writer raises the same fails on the
            // unique index; the second run counts the winner's instead.
            Some(_) => retry_on_race(run).await,
            None => run().await,
        }
    }

    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()> {
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, id).await?;
        let dependents = read::dependents::<D>(&mut tx, id).await?;
        let (mut tx, event) = tx
            .check(change::check_deletable(&task, &dependents))
            .await?;
        write::delete_task(tx.batch(), id);
        write::append_events(tx.batch(), &[event], now);
        self.commit(tx).await
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        let mut conn = self.read().await?;
        found(
            read::task::<D>(&mut conn, task, Lock::None).await?,
            "task",
            task,
        )?;
        read::attempts::<D>(&mut conn, task).await
    }

    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent> {
        new.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(session) = new.runner_session_id {
            let row = read::runner_session::<D>(&mut tx, session, Lock::None).await?;
            found(row, "runnerSession", session)?;
        }
        let agent = new.into_agent(AgentId::new(), now);
        write::insert_agent(tx.batch(), &agent);
        write::append_events(tx.batch(), &[change::agent_created_event(&agent)], now);
        self.commit(tx).await?;
        Ok(agent)
    }

    async fn agent_activity_counts(&self, ids: &[AgentId]) -> Result<Vec<AgentActivityCounts>> {
        check_lookup_size(ids)?;
        read::agent_activity_counts::<D>(&mut self.read().await?, ids).await
    }

    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>> {
        check_lookup_size(ids)?;
        read::agents_by_id::<D>(&mut self.read().await?, ids, Lock::None).await
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        found(
            read::agent::<D>(&mut self.read().await?, id, Lock::None).await?,
            "agent",
            id,
        )
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        query.validate()?;
        read::agents::<D>(&mut self.read().await?, query).await
    }

    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent> {
        let (mut tx, now) = self.begin_at(now).await?;
        let agent = found(
            read::agent::<D>(&mut tx, id, Lock::ForUpdate).await?,
            "agent",
            id,
        )?;
        let (tx, change) = tx
            .check(change::plan_agent_action(agent, action, now))
            .await?;
        let agent = planned(change.agent.clone(), "agent")?;
        self.persist(tx, &change, now).await?;
        Ok(agent)
    }

    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        new.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let session = new.into_session(RunnerSessionId::new(), now);
        write::insert_runner_session(tx.batch(), &session);
        write::append_events(tx.batch(), &[change::runner_connected_event(&session)], now);
        self.commit(tx).await.map_err(|err| match err {
            Error::Conflict(_) => {
                Error::conflict("a runner session with this token already exists")
            }
            other => other,
        })?;
        Ok(session)
    }

    async fn admin_token_hash(&self) -> Result<Option<String>> {
        read::setting::<D>(&mut self.read().await?, ADMIN_TOKEN_SETTING).await
    }

    async fn save_admin_token_hash(&self, hash: &str, now: Timestamp) -> Result<String> {
        check_token_hash(hash)?;
        let (mut tx, now) = self.begin_at(now).await?;
        write::insert_setting_if_absent::<D>(&mut tx, ADMIN_TOKEN_SETTING, hash, now).await?;
        let saved = read::setting::<D>(&mut tx, ADMIN_TOKEN_SETTING).await?;
        tx.commit().await?;
        saved.ok_or_else(|| Error::backend("the admin token hash was not saved"))
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        check_token_hash(token_hash)?;
        let (mut tx, now) = self.begin_at(now).await?;
        write::delete_expired_setup_tokens::<D>(&mut tx, now).await?;
        write::insert_setup_token::<D>(&mut tx, token_hash, expires_at, now)
            .await
            .map_err(|err| match err {
                Error::Conflict(_) => Error::conflict("a setup token with this hash exists"),
                other => other,
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        let (mut tx, now) = self.begin_at(now).await?;
        let redeemed = write::take_setup_token::<D>(&mut tx, token_hash, now).await?;
        tx.commit().await?;
        Ok(redeemed)
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession> {
        let row = read::runner_session::<D>(&mut self.read().await?, id, Lock::None).await?;
        found(row, "runnerSession", id)
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        read::runner_session_by_token::<D>(&mut self.read().await?, token_hash).await
    }

    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>> {
        read::runner_sessions::<D>(&mut self.read().await?).await
    }

    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let (mut tx, now) = self.begin_at(now).await?;
        let session = read::runner_session::<D>(&mut tx, id, Lock::ForUpdate).await?;
        let session = found(session, "runnerSession", id)?;
        let planned_change = change::plan_runner_session_event(session, event, now);
        let (tx, change) = tx.check(planned_change).await?;
        let session = planned(change.runner_session.clone(), "runner session")?;
        self.persist(tx, &change, now).await?;
        Ok(session)
    }

    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64> {
        let (stored, events) = change::plan_logs(logs, now)?;
        let agents: Vec<AgentId> = stored
            .iter()
            .map(|log| log.agent_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tasks: Vec<TaskId> = stored
            .iter()
            .filter_map(|log| log.task_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(agent) = read::missing::<D, _>(&mut tx, "agents", &agents)
            .await?
            .first()
        {
            return Err(Error::not_found("agent", agent));
        }
        if let Some(task) = read::missing::<D, _>(&mut tx, "tasks", &tasks)
            .await?
            .first()
        {
            return Err(Error::not_found("task", task));
        }
        self.store_logs(tx, &stored, &agents, &events, now).await
    }

    async fn append_attempt_logs(
        &self,
        lease: LeaseRef,
        logs: Vec<NewAgentLog>,
        now: Timestamp,
    ) -> Result<u64> {
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, lease.task_id).await?;
        let planned_logs = change::plan_attempt_logs(&task, &lease, logs, now);
        let (tx, (stored, events)) = tx.check(planned_logs).await?;
        let agents: Vec<AgentId> = task.assigned_agent_id.into_iter().collect();
        self.store_logs(tx, &stored, &agents, &events, now).await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage> {
        query.validate()?;
        let mut conn = self.read().await?;
        if let Some(id) = query.agent_id {
            found(
                read::agent::<D>(&mut conn, id, Lock::None).await?,
                "agent",
                id,
            )?;
        }
        if let Some(id) = query.task_id {
            found(
                read::task::<D>(&mut conn, id, Lock::None).await?,
                "task",
                id,
            )?;
        }
        read::logs::<D>(&mut conn, query).await
    }

    async fn record_verification(
        &self,
        task: TaskId,
        lease: Option<LeaseRef>,
        result: NewVerificationResult,
        now: Timestamp,
    ) -> Result<VerificationResult> {
        result.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let current = locked_task(&mut tx, task).await?;
        let planned_change = change::plan_verification(current, result, lease.as_ref(), now);
        let (tx, change) = tx.check(planned_change).await?;
        let recorded = planned(change.verification.clone(), "verification result")?;
        self.persist(tx, &change, now).await?;
        Ok(recorded)
    }

    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>> {
        change::check_verification_limit(limit)?;
        let mut conn = self.read().await?;
        found(
            read::task::<D>(&mut conn, task, Lock::None).await?,
            "task",
            task,
        )?;
        read::verification_results::<D>(&mut conn, task, limit).await
    }

    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        new.validate()?;
        retry_on_race(|| self.raise_once(new.clone(), now)).await
    }

    async fn get_exception(&self, id: ExceptionId) -> Result<Exception> {
        let row = read::exception::<D>(&mut self.read().await?, id, Lock::None).await?;
        found(row, "exception", id)
    }

    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>> {
        query.validate()?;
        read::exceptions::<D>(&mut self.read().await?, query).await
    }

    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception> {
        decision.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let exception = read::exception::<D>(&mut tx, id, Lock::ForUpdate).await?;
        let exception = found(exception, "exception", id)?;
        if decision.status == ExceptionStatus::Open
            && let Some(task) = exception.task_id
            && let Some(other) =
                read::unresolved_exception::<D>(&mut tx, exception.exception_type, task).await?
            && other.id != id
        {
            let refusal = Error::conflict(format!(
                "exception {} of this type is already unresolved for the task",
                other.id
            ));
            return tx.refuse(refusal).await;
        }
        let planned_change = change::plan_exception_decision(exception, decision, now);
        let (tx, change) = tx.check(planned_change).await?;
        let exception = planned(change.exception.clone(), "exception")?;
        self.persist(tx, &change, now).await?;
        Ok(exception)
    }

    async fn stats(&self, since: Timestamp) -> Result<SystemStats> {
        read::stats::<D>(&mut self.read().await?, since).await
    }

    async fn last_event_seq(&self) -> Result<i64> {
        D::number_events(&self.pool).await?;
        let query = QueryBuilder::<D>::new("SELECT COALESCE(MAX(seq), 0) FROM events");
        let last = self.read().await?.fetch_count(query).await?;
        Ok(i64::try_from(last).unwrap_or(i64::MAX))
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        change::check_events_limit(limit)?;
        D::number_events(&self.pool).await?;
        read::events_since::<D>(&mut self.read().await?, after, limit).await
    }

    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>> {
        self.claim_work(request, now).await
    }

    async fn heartbeat(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        self.heartbeat_lease(lease, ttl, now).await
    }

    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        self.expire(now, limit).await
    }

    async fn mark_inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>> {
        self.inactive_runners(seen_before, now).await
    }

    async fn stalled_tasks(&self, quiet_since: Timestamp, now: Timestamp) -> Result<Vec<Task>> {
        self.stalled(quiet_since, now).await
    }

    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let due = read::next_due::<D>(&mut conn, now).await?;
        Ok(due.map(|at| at.since(now)))
    }

    async fn blocked_tasks(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
        self.blocked(limit).await
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool> {
        self.take_lease(name, holder, ttl, now).await
    }

    async fn prune(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<PruneReport> {
        self.prune_history(policy, now).await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use orchestrator_core::Timestamp;
    use orchestrator_core::change;
    use orchestrator_core::coordination::ClaimRequest;
    use orchestrator_core::error::Error;
    use orchestrator_core::model::{Agent, NewAgent, NewTask};
    use orchestrator_core::store::Store;

    use super::{Dialect, SqlStore};
    use crate::sql::read::{self, Lock};
    use crate::sql::write;

    /// Writes batched in front of a guarded update whose row changed meanwhile are not
    /// committed, the transaction fails with a conflict, and the writer keeps working.
    async fn failed_guard_writes_nothing<D: Dialect>(store: &SqlStore<D>) {
        let now = Timestamp::from_millis(1_000).expect("an instant");
        let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
        let events_before = store.last_event_seq().await.unwrap();

        let (tx, now) = store.begin_at(now).await.unwrap();
        stale_batch_keeps_nothing(store, tx, &agent, events_before, now).await;
        store.create_agent(NewAgent::default(), now).await.unwrap();
        assert!(store.last_event_seq().await.unwrap() > events_before);
    }

    /// The same without an explicit transaction (PostgreSQL's unlocked task actions): the
    /// guard fails the batch's one statement, so the writes ahead of it are not kept.
    async fn failed_guard_outside_a_transaction_writes_nothing<D: Dialect>(store: &SqlStore<D>) {
        let now = Timestamp::from_millis(3_000).expect("an instant");
        let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
        let events_before = store.last_event_seq().await.unwrap();

        let tx = super::Tx::implicit(store.writer.acquire().await.unwrap());
        stale_batch_keeps_nothing(store, tx, &agent, events_before, now).await;
    }

    /// Batches an event and an update of `agent` from a stale read into `tx` and commits:
    /// the commit fails with a conflict and keeps neither.
    async fn stale_batch_keeps_nothing<D: Dialect>(
        store: &SqlStore<D>,
        mut tx: super::Tx<D>,
        agent: &Agent,
        events_before: i64,
        now: Timestamp,
    ) {
        write::append_events(tx.batch(), &[change::agent_created_event(agent)], now);
        let mut stale = agent.clone();
        stale.name = Some("from a stale read".into());
        stale.revision += 5;
        write::update_agent(tx.batch(), &stale);
        let failed = store.commit(tx).await;
        assert!(matches!(failed, Err(Error::Conflict(_))), "{failed:?}");

        assert_eq!(store.last_event_seq().await.unwrap(), events_before);
        assert_eq!(&store.get_agent(agent.id).await.unwrap(), agent);
    }

    /// The combined read of a task action gives the rows the single-row lookups give.
    async fn task_context_matches_lookups<D: Dialect>(store: &SqlStore<D>) {
        let now = Timestamp::from_millis(2_000).expect("an instant");
        let mut new = NewTask::new("read together", "d");
        new.files_hint = vec!["src/".into()];
        store.create_task(new, now).await.unwrap();
        let named = NewAgent {
            name: Some("slot".into()),
            ..NewAgent::default()
        };
        let agent = store.create_agent(named, now).await.unwrap();
        let request = ClaimRequest {
            agents: vec![agent.id],
            runner_session_id: None,
            task_id: None,
            lease_ttl: Duration::from_secs(60),
        };
        let claim = store.claim(request, now).await.unwrap().remove(0);
        let id = claim.task.id;

        let (mut tx, _) = store.begin_at(now).await.unwrap();
        let locked = read::task_with_agent_and_attempt::<D>(&mut tx, id, None, Lock::ForUpdate)
            .await
            .unwrap();
        drop(tx);
        let mut conn = store.read().await.unwrap();
        let unlocked = read::task_with_agent_and_attempt::<D>(&mut conn, id, None, Lock::None)
            .await
            .unwrap();
        let attempts = store.list_attempts(id).await.unwrap();
        let expected = (
            Some(store.get_task(id).await.unwrap()),
            Some(store.get_agent(agent.id).await.unwrap()),
            attempts.last().cloned(),
        );
        for rows in [locked, unlocked] {
            assert_eq!((rows.task, rows.agent, rows.attempt), expected);
            // Read along where the dialect reads rows in one statement.
            assert_eq!(rows.clock.is_some(), !D::SCRIPTS);
        }
        assert!(expected.2.is_some());
    }

    /// Whether SQLite's writer is free at this moment: nothing holds it, not even a
    /// rollback waiting in the background (which, on this test's one-thread runtime,
    /// cannot run before the test awaits).
    fn writer_is_free(store: &crate::SqliteStore) -> bool {
        match &store.writer {
            super::Writer::Own { conn, .. } => conn.try_lock().is_ok(),
            super::Writer::Shared(_) => panic!("a file database has a writer of its own"),
        }
    }

    /// A SQLite store in a file of a new directory, which lives as long as it is kept.
    async fn sqlite_store() -> (tempfile::TempDir, crate::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(dir.path().join("store.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn sqlite_transactions() {
        let (_dir, store) = sqlite_store().await;
        failed_guard_writes_nothing(&store).await;
        task_context_matches_lookups(&store).await;
    }

    /// A refusal found inside a write transaction ends the transaction before the caller
    /// hears of it: a claim whose second slot does not exist finds out after it read (on
    /// PostgreSQL, locked) the head of the queue, and a delete of a running task after it
    /// locked the task.
    #[tokio::test]
    async fn refusals_end_their_transaction_before_answering() {
        let (_dir, store) = sqlite_store().await;
        let now = Timestamp::from_millis(1_000).expect("an instant");
        store
            .create_task(NewTask::new("queued", "d"), now)
            .await
            .unwrap();
        let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
        let mut request = ClaimRequest {
            agents: vec![agent.id, orchestrator_core::ids::AgentId::new()],
            runner_session_id: None,
            task_id: None,
            lease_ttl: Duration::from_secs(60),
        };

        let refused = store.claim(request.clone(), now).await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert!(
            writer_is_free(&store),
            "the refused claim still holds the writer"
        );

        request.agents.truncate(1);
        let claimed = store.claim(request, now).await.unwrap().remove(0);
        let refused = store.delete_task(claimed.task.id, now).await;
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        assert!(
            writer_is_free(&store),
            "the refused delete still holds the writer"
        );
    }

    #[tokio::test]
    async fn postgres_transactions() {
        let Some(schema) = crate::scratch::ScratchSchema::from_env("transaction tests").await
        else {
            return;
        };
        let store = schema.open(super::ClockSource::Caller).await;
        failed_guard_writes_nothing(&store).await;
        task_context_matches_lookups(&store).await;
        failed_guard_outside_a_transaction_writes_nothing(&store).await;
        drop(store);
        schema.drop_schema().await;
    }
}
