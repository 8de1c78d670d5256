//! [`PostgresStore`]: for teams and for several server replicas on one database. Writers
//! lock the rows they read (`SELECT … FOR UPDATE`) until commit, and take turns appending
//! events so that sequence numbers follow commit order.
//!
//! Every SQL statement of this backend is in this module and its children.

mod reads;
mod tx;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Column, PgPool, Row, TypeInfo};
use uuid::Uuid;

use crate::engine::SqlStore;
use crate::error::SqlxResultExt;
use crate::migrations;
use crate::rows::RowReader;

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL [`Store`](orchestrator_core::Store).
pub type PostgresStore = SqlStore<PostgresBackend>;

/// The PostgreSQL side of [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

impl SqlStore<PostgresBackend> {
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
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .db()?;
        migrations::postgres().run(&pool).await.map_err(|err| {
            Error::Unavailable(format!("migrating the PostgreSQL database failed: {err}"))
        })?;
        Ok(SqlStore {
            backend: PostgresBackend { pool },
        })
    }

    /// The connection pool, for embedders that keep their own tables alongside.
    pub fn pool(&self) -> &PgPool {
        &self.backend.pool
    }
}

/// How this backend stores identifiers: as native UUIDs.
type IdParam = Uuid;

fn id_param(id: impl Into<Uuid>) -> IdParam {
    id.into()
}

fn time_param(at: Timestamp) -> DateTime<Utc> {
    at.as_datetime()
}

fn opt_time_param(at: Option<Timestamp>) -> Option<DateTime<Utc>> {
    at.map(time_param)
}

fn json_param(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(Error::backend)
}

fn column<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
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
