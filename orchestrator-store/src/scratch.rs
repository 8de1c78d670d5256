//! Scratch PostgreSQL schemas for tests and benchmarks (feature `testing`).
//!
//! [`ScratchSchema::from_env`] reads `ORCHESTRATOR_TEST_DATABASE_URL` and creates a
//! schema of its own there; stores opened on it see nothing else, and
//! [`ScratchSchema::drop_schema`] removes everything afterwards. Without the variable it
//! prints that the caller is skipped — or, with `ORCHESTRATOR_REQUIRE_POSTGRES=1`, fails.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{ClockSource, PostgresStore};

/// The variable naming the PostgreSQL database tests may use.
pub const DATABASE_URL_VAR: &str = "ORCHESTRATOR_TEST_DATABASE_URL";
/// The variable that turns a missing database into a failure.
pub const REQUIRE_VAR: &str = "ORCHESTRATOR_REQUIRE_POSTGRES";

/// A schema created for one test or benchmark.
#[derive(Debug, Clone)]
pub struct ScratchSchema {
    admin: PgConnectOptions,
    url: String,
    name: String,
}

impl ScratchSchema {
    /// A fresh schema in the database the environment names; `None` (after saying so)
    /// when there is none and none is required.
    ///
    /// # Panics
    ///
    /// When a database is required but not configured, or cannot be reached.
    pub async fn from_env(purpose: &str) -> Option<Self> {
        let Ok(url) = std::env::var(DATABASE_URL_VAR) else {
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{REQUIRE_VAR}=1 but {DATABASE_URL_VAR} is not set"
            );
            println!("skipped: set {DATABASE_URL_VAR} to run the PostgreSQL {purpose}");
            return None;
        };
        let admin = PgConnectOptions::from_str(&url).expect("a valid PostgreSQL URL");
        let name = format!("orchestrator_scratch_{}", uuid::Uuid::new_v4().simple());
        let mut connection = PgConnection::connect_with(&admin)
            .await
            .expect("connect to the test database");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut connection)
            .await
            .expect("create a scratch schema");
        let _ = connection.close().await;
        Some(Self { admin, url, name })
    }

    /// A database URL whose connections work in this schema (for other processes).
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={}", self.url, self.name)
    }

    /// Opens a store on the schema (migrating it) with the given clock.
    ///
    /// # Panics
    ///
    /// When the store cannot be opened.
    pub async fn open(&self, clock: ClockSource) -> PostgresStore {
        PostgresStore::connect_with(self.admin.clone().options([("search_path", &self.name)]))
            .await
            .expect("open a store on the scratch schema")
            .with_clock(clock)
    }

    /// Drops the schema and everything in it; stores on it should be closed first.
    pub async fn drop_schema(self) {
        if let Ok(mut connection) = PgConnection::connect_with(&self.admin).await {
            let _ = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
                .execute(&mut connection)
                .await;
        }
    }
}
