//! [`SqliteStore`]: the embedded default. One file, WAL journal, a busy timeout, foreign
//! keys on, created on first start. Writers take the database's write lock up front
//! (`BEGIN IMMEDIATE`), so every operation is serialized and sees the latest rows.
//!
//! Every SQL statement of this backend is in this module and its children.

mod reads;
mod tx;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use crate::engine::SqlStore;
use crate::error::SqlxResultExt;
use crate::migrations;
use crate::rows::RowReader;

/// How long a writer waits for the write lock before reporting the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections in the pool: readers run in parallel under WAL; writers queue.
const MAX_CONNECTIONS: u32 = 8;

/// The SQLite [`Store`](orchestrator_core::Store).
pub type SqliteStore = SqlStore<SqliteBackend>;

/// The SQLite side of [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqlStore<SqliteBackend> {
    /// Opens (creating it if needed) the database file at `path` and migrates it.
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
            return Self::with_pool_size(options, 1).await;
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
        Self::with_pool_size(options, MAX_CONNECTIONS).await
    }

    async fn with_pool_size(options: SqliteConnectOptions, size: u32) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(size)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .db()?;
        migrations::sqlite().run(&pool).await.map_err(|err| {
            Error::Unavailable(format!("migrating the SQLite database failed: {err}"))
        })?;
        Ok(SqlStore {
            backend: SqliteBackend { pool },
        })
    }

    /// The connection pool, for embedders that keep their own tables alongside.
    pub fn pool(&self) -> &SqlitePool {
        &self.backend.pool
    }
}

/// How this backend stores identifiers: as hyphenated text.
type IdParam = String;

fn id_param(id: impl Into<Uuid>) -> IdParam {
    id.into().to_string()
}

fn time_param(at: Timestamp) -> i64 {
    at.as_millis()
}

fn opt_time_param(at: Option<Timestamp>) -> Option<i64> {
    at.map(time_param)
}

fn json_param(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(Error::backend)
}

fn column<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
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
