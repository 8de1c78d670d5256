//! Embedded migrations: one folder per backend (`migrations/sqlite`, `migrations/postgres`)
//! with the same version numbers, compiled into the binary and run at startup. A new
//! migration is a new `NNNN_description.sql` file in each folder; the build script finds
//! it. A migration runs in a transaction unless its first line is `-- no-transaction`
//! (one that must change settings a transaction cannot, and manages its own).

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::borrow::Cow;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sqlx::SqlSafeStr;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

// `SQLITE` and `POSTGRES`: every `.sql` file of `migrations/sqlite` and
// `migrations/postgres`, found by the build script.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

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
                    sql.starts_with("-- no-transaction"),
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
