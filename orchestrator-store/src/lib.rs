//! Durable [`Store`](orchestrator_core::Store)s for the orchestrator.
//!
//! * [`SqliteStore`] (feature `sqlite`, the default): one file, nothing to install.
//! * [`PostgresStore`] (feature `postgres`): for teams and several server replicas.
//!
//! [`connect`] picks one from a database URL. Both run their embedded migrations when
//! they open, share their rules with every other store through `orchestrator-core`, and
//! pass the same conformance suite.

mod dialect;
mod engine;
mod error;
mod migrations;
mod rows;
mod sql;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "testing")]
pub mod scratch;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

use orchestrator_core::Store;
use orchestrator_core::error::{Error, Result};

pub use dialect::Dialect;
pub use engine::{ClockSource, SqlStore};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use rows::RowReader;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// The backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres://` and `postgresql://` URLs.
    Postgres,
}

impl DatabaseKind {
    /// The kind of `url`, by its scheme.
    pub fn of_url(url: &str) -> Result<Self> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(Error::invalid(
                "databaseUrl",
                "use a sqlite: URL (sqlite://path/to/orchestrator.db) or a postgres:// URL \
                 (postgres://user@host:5432/database)",
            )),
        }
    }
}

/// Opens the store a database URL names and runs its migrations.
///
/// A URL whose backend was not compiled in is an error that says which feature to enable.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    match DatabaseKind::of_url(url)? {
        DatabaseKind::Sqlite => open_sqlite(url).await,
        DatabaseKind::Postgres => open_postgres(url).await,
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<Arc<dyn Store>> {
    Err(missing_feature("SQLite", "sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(PostgresStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<Arc<dyn Store>> {
    Err(missing_feature("PostgreSQL", "postgres"))
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn missing_feature(database: &str, feature: &str) -> Error {
    Error::invalid(
        "databaseUrl",
        format!(
            "this build has no {database} support; rebuild with the cargo feature \
             `{feature}` of orchestrator-store enabled"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_scheme_picks_the_backend() {
        assert_eq!(
            DatabaseKind::of_url("sqlite://a.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of_url("sqlite::memory:").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of_url("postgresql://u@h/d").unwrap(),
            DatabaseKind::Postgres
        );
        let err = DatabaseKind::of_url("mysql://u@h/d").unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        assert!(DatabaseKind::of_url("").is_err());
    }
}
