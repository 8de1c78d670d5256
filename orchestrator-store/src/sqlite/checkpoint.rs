//! Checkpoints of the write-ahead log, kept off the writers' path.
//!
//! Left to itself, SQLite copies the log's pages back into the database file inside the
//! commit that takes the log past a threshold: that commit, and every writer queued
//! behind it, waits for the copy and two fsyncs (tens of milliseconds, once every hundred
//! or so claims). Here writers never checkpoint (`wal_autocheckpoint = 0`). A background
//! task does, on a connection of its own, after every [`COMMITS_PER_CHECKPOINT`] commits
//! or [`IDLE`] after the first commit it has not copied; a passive checkpoint takes no lock
//! that writers need, so they go on meanwhile. Light traffic thus costs a checkpoint (and
//! its fsyncs) at most every [`IDLE`], not one after every few commits.
//!
//! The log is rewound to its start only by a write that begins when every frame in it
//! has been copied, which a checkpoint running beside a steady stream of commits never
//! achieves. So when a checkpoint leaves more than [`REWIND_FRAMES`] frames in the log,
//! the task copies the rest while it holds the writer between two transactions: a short
//! wait for writers, as most pages were already copied beside them.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::error::{Error, Result};
use sqlx::{Row, Sqlite, SqliteConnection};

use crate::engine::{Commits, Writer};
use crate::error::SqlxResultExt;

/// Commits after which the log is checkpointed (about 20 pages each for a claim or a
/// completion).
pub(super) const COMMITS_PER_CHECKPOINT: u64 = 100;
/// How long at most commits fewer than [`COMMITS_PER_CHECKPOINT`] wait to be copied
/// into the database file.
const IDLE: Duration = Duration::from_secs(30);
/// Frames (pages of 4 KiB) left in the log after a checkpoint beyond which the task
/// holds the writer to finish copying, so that the next write rewinds the log.
const REWIND_FRAMES: i64 = 8_000;
/// How long to wait after a failed checkpoint before the next.
const RETRY: Duration = Duration::from_secs(1);

/// Checkpoints the log of the database `conn` is open on for as long as the store lives
/// (the store aborts the task when dropped).
pub(super) async fn run(mut conn: SqliteConnection, writer: Writer<Sqlite>, commits: Arc<Commits>) {
    loop {
        // The first commit since the last checkpoint, then enough more or some time.
        commits.woken().await;
        let _ = tokio::time::timeout(IDLE, async {
            while commits.since_reset() < COMMITS_PER_CHECKPOINT {
                commits.woken().await;
            }
        })
        .await;
        commits.reset();
        let outcome = match checkpoint(&mut conn).await {
            Ok(left) if left > REWIND_FRAMES => finish_holding_writer(&writer).await,
            other => other.map(drop),
        };
        if let Err(err) = outcome {
            tracing::warn!(error = %err, "checkpointing the SQLite log failed; retrying");
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Copies what it can of the log into the database file, beside readers and the writer;
/// returns the number of frames in the log.
async fn checkpoint(conn: &mut SqliteConnection) -> Result<i64> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await
        .db()?;
    row.try_get::<i64, _>(1).db()
}

/// Copies the rest of the log while no write transaction runs, so that the next one
/// starts the log over.
async fn finish_holding_writer(writer: &Writer<Sqlite>) -> Result<()> {
    let mut held = writer.acquire().await?;
    let left = checkpoint(held.connection()).await?;
    if left < 0 {
        return Err(Error::backend("the database is not in WAL mode"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use orchestrator_core::Timestamp;
    use orchestrator_core::model::NewTask;

    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::{COMMITS_PER_CHECKPOINT, REWIND_FRAMES};
    use crate::SqliteStore;
    use orchestrator_core::store::TaskStore;

    /// Tasks in the database file alone, without its log: what checkpoints copied there.
    async fn tasks_in_file(file: &Path) -> i64 {
        let copy = tempfile::tempdir().unwrap();
        let copied = copy.path().join("copy.db");
        std::fs::copy(file, &copied).unwrap();
        let mut conn = SqliteConnectOptions::new()
            .filename(&copied)
            .connect()
            .await
            .unwrap();
        // Before the first checkpoint the file holds no table at all.
        sqlx::query_scalar("SELECT count(*) FROM tasks")
            .fetch_one(&mut conn)
            .await
            .unwrap_or(0)
    }

    async fn create_tasks(store: &SqliteStore, count: u64) {
        let now = Timestamp::from_millis(1_000).unwrap();
        for index in 0..count {
            let task = NewTask::new(format!("task {index}"), "d");
            store.create_task(task, now).await.unwrap();
        }
    }

    /// Commits reach the database file although no commit checkpoints: the background
    /// task copies them after a batch of commits.
    #[tokio::test]
    async fn commits_reach_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("checkpointed.db");
        let store = SqliteStore::open(&file).await.unwrap();
        create_tasks(&store, 2 * COMMITS_PER_CHECKPOINT).await;

        // At least the first batch, whose last commit woke the task.
        let batch = COMMITS_PER_CHECKPOINT as i64;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut copied = tasks_in_file(&file).await;
        while copied < batch && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            copied = tasks_in_file(&file).await;
        }
        assert!(copied >= batch, "{copied} tasks checkpointed into the file");
    }

    /// How many times the log at `path` has started over, from its header.
    fn log_restarts(path: &Path) -> u32 {
        let header = std::fs::read(path).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    /// Under a steady stream of commits the log still starts over now and then, instead
    /// of growing with every commit until writes pause.
    #[tokio::test]
    async fn the_log_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("steady.db");
        let store = SqliteStore::open(&file).await.unwrap();
        create_tasks(&store, 1).await;
        let log = dir.path().join("steady.db-wal");
        let before = log_restarts(&log);
        // A task written changes ten or so pages (the row, its indexes, its event): enough
        // commits to pass the rewinding threshold several times over.
        let commits = 5 * REWIND_FRAMES as u64 / 10;
        create_tasks(&store, commits).await;
        let restarts = log_restarts(&log) - before;
        assert!(
            restarts >= 2,
            "the log started over {restarts} times in {commits} commits"
        );
    }
}
