//! [`SqlStore`]: the [`Store`](orchestrator_core::Store) of every SQL backend.
//!
//! Each operation follows the same flow — open a write transaction, load (and on
//! PostgreSQL lock) the rows, ask `orchestrator_core::change` what to write, write it,
//! append the events, commit — so the rules live in the core, the flow here, and the SQL
//! in [`crate::sql`]. What every aggregate shares (the store, its transactions and its
//! writer) is in this module and [`tx`], [`writer`] and [`task_change`]; each aggregate's
//! trait is implemented in a module of its own.

mod agents;
mod events;
mod evidence;
mod exceptions;
mod hiding;
mod housekeeping;
mod locks;
mod queue;
mod runners;
mod task_change;
mod tasks;
mod tx;
mod writer;

pub(crate) use tx::Tx;
#[cfg(feature = "sqlite")]
pub(crate) use writer::Commits;
pub(crate) use writer::{Held, Writer};

use std::fmt;

use orchestrator_core::Timestamp;
use orchestrator_core::change::Change;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{FileLock, Task};
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use tokio::sync::watch;

use crate::dialect::{Dialect, Exec};
use crate::error::{SqlxResultExt, watch_unique_keys};
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};
use crate::sql::write;

/// A [`Store`](orchestrator_core::Store) over a SQL database: [`SqliteStore`](crate::SqliteStore) or
/// [`PostgresStore`](crate::PostgresStore).
pub struct SqlStore<D: Dialect> {
    /// Connections reads run on.
    pub(crate) pool: Pool<D>,
    /// Where write transactions get their connection.
    writer: Writer<D>,
    clock: ClockSource,
    /// Counts the commits that appended events (here or, as far as this process heard, in
    /// another process): subscribers wake when it moves.
    committed: watch::Sender<i64>,
    /// Where a commit that appended events is told to other processes sharing the
    /// database, if any follow it.
    peers: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// When queued tasks were last set aside behind long-held locks.
    hiding: hiding::HidingPasses,
    /// Background work that lives as long as the store (a listener for other processes'
    /// commits, a checkpointer); stopped when the store is dropped.
    background: Vec<tokio::task::JoinHandle<()>>,
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

impl<D: Dialect> SqlStore<D> {
    /// A store reading through `pool` and writing through `writer`.
    pub(crate) async fn new(pool: Pool<D>, writer: Writer<D>, clock: ClockSource) -> Result<Self> {
        let newest = read::newest_event_seq::<D>(&mut pool.acquire().await.db()?).await?;
        let store = Self {
            pool,
            writer,
            clock,
            committed: watch::Sender::new(newest),
            peers: None,
            hiding: hiding::HidingPasses::default(),
            background: Vec::new(),
        };
        store.record_missing_task_paths().await?;
        Ok(store)
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

    /// Has every commit that appends events also poke `peers`, which tells the other
    /// processes on the database.
    #[cfg(feature = "postgres")]
    pub(crate) fn tell_peers_through(&mut self, peers: std::sync::Arc<tokio::sync::Notify>) {
        self.peers = Some(peers);
    }

    /// Wakes this process's subscribers and lets the other processes know: events may
    /// have been committed.
    pub(crate) fn announce_commit(&self) {
        announce(&self.committed);
        if let Some(peers) = &self.peers {
            peers.notify_one();
        }
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
            self.announce_commit();
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

/// The task `id`, read without a lock; `NotFound` if there is none.
async fn existing_task<D: Dialect>(conn: &mut impl Exec<D>, id: TaskId) -> Result<Task> {
    found(read::task::<D>(conn, id, Lock::None).await?, "task", id)
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
    let logs = write::number_logs::<D>(tx, &change.logs).await?;
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
        write::update_runner_session(batch, session)?;
    }
    if let Some(result) = &change.verification {
        write::insert_verification(batch, result)?;
    }
    if let Some(changes) = &change.attempt_changes {
        write::insert_attempt_changes(batch, changes)?;
    }
    if !logs.is_empty() {
        write::insert_logs(batch, &logs);
    }
    sql_locks::insert(batch, &granted);
    write::append_events(batch, &change.events, now);
    Ok(granted)
}

/// Runs `operation` once more if it lost a uniqueness race with a concurrent writer (an
/// idempotency key, an exception raised twice at once): the second run sees the winner's
/// row and takes the path that reuses it. Any other outcome, other conflicts included, is
/// returned as it is.
async fn retry_on_race<T, F, Fut>(mut operation: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match watch_unique_keys(operation()).await {
        (Err(Error::Conflict(_)), true) => operation().await,
        (outcome, _) => outcome,
    }
}

#[cfg(test)]
mod tests;
