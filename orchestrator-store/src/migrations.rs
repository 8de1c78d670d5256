//! Embedded migrations: one folder per backend (`migrations/sqlite`, `migrations/postgres`)
//! with the same version numbers, compiled into the binary and run at startup.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::borrow::Cow;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sqlx::SqlSafeStr;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

/// The SQLite migrations, in order.
#[cfg(any(test, feature = "sqlite"))]
pub(crate) const SQLITE: &[Embedded] = &[
    (
        1,
        "initial schema",
        include_str!("../migrations/sqlite/0001_initial_schema.sql"),
    ),
    (
        2,
        "coordination",
        include_str!("../migrations/sqlite/0002_coordination.sql"),
    ),
    (
        3,
        "event sequencer",
        include_str!("../migrations/sqlite/0003_event_sequencer.sql"),
    ),
    (
        4,
        "server secrets",
        include_str!("../migrations/sqlite/0004_server_settings.sql"),
    ),
    (
        5,
        "task listing",
        include_str!("../migrations/sqlite/0005_task_listing.sql"),
    ),
    (
        6,
        "write guard",
        include_str!("../migrations/sqlite/0006_write_guard.sql"),
    ),
    (
        7,
        "delayed tasks",
        include_str!("../migrations/sqlite/0007_delayed_tasks.sql"),
    ),
];

/// The PostgreSQL migrations, in order; the same versions as the SQLite ones.
#[cfg(any(test, feature = "postgres"))]
pub(crate) const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial schema",
        include_str!("../migrations/postgres/0001_initial_schema.sql"),
    ),
    (
        2,
        "coordination",
        include_str!("../migrations/postgres/0002_coordination.sql"),
    ),
    (
        3,
        "event sequencer",
        include_str!("../migrations/postgres/0003_event_sequencer.sql"),
    ),
    (
        4,
        "server secrets",
        include_str!("../migrations/postgres/0004_server_settings.sql"),
    ),
    (
        5,
        "task listing",
        include_str!("../migrations/postgres/0005_task_listing.sql"),
    ),
    (
        6,
        "write guard",
        include_str!("../migrations/postgres/0006_write_guard.sql"),
    ),
    (
        7,
        "delayed tasks",
        include_str!("../migrations/postgres/0007_delayed_tasks.sql"),
    ),
];

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn migrator(embedded: &'static [Embedded]) -> Migrator {
    Migrator::with_migrations(
        embedded
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(feature = "sqlite")]
pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

#[cfg(feature = "postgres")]
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The versions of the `.sql` files in `migrations/<backend>`, from their names.
    fn versions_on_disk(backend: &str) -> Vec<i64> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut versions: Vec<i64> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .map(|name| name.split('_').next().unwrap().parse().unwrap())
            .collect();
        versions.sort_unstable();
        versions
    }

    fn versions(embedded: &[Embedded]) -> Vec<i64> {
        embedded.iter().map(|(version, _, _)| *version).collect()
    }

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        assert_eq!(versions_on_disk("sqlite"), versions_on_disk("postgres"));
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        assert_eq!(versions(SQLITE), versions_on_disk("sqlite"));
        assert_eq!(versions(POSTGRES), versions_on_disk("postgres"));
        assert!(versions(SQLITE).windows(2).all(|w| w[0] < w[1]));
    }
}
