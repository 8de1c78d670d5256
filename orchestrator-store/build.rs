//! Finds the migrations in `migrations/<backend>/` and writes the list that
//! `src/migrations.rs` embeds: every `NNNN_words.sql` file, in version order, with its
//! version, its description (the words) and its SQL (`include_str!`). A file whose name
//! does not follow that pattern stops the build and says why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The backends, each with its folder and the constant the list is written to.
const BACKENDS: [(&str, &str); 2] = [("sqlite", "SQLITE"), ("postgres", "POSTGRES")];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("migrations");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut generated = String::new();
    for (backend, constant) in BACKENDS {
        let folder = root.join(backend);
        println!("cargo::rerun-if-changed={}", folder.display());
        let migrations = migrations_in(&folder);
        writeln!(generated, "/// The {backend} migrations, in version order.").unwrap();
        writeln!(generated, "#[cfg(any(test, feature = {backend:?}))]").unwrap();
        writeln!(generated, "pub(crate) const {constant}: &[Embedded] = &[").unwrap();
        for (version, description, path) in migrations {
            writeln!(
                generated,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(generated, "];").unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    std::fs::write(&out, generated).expect("write the migration list");
}

/// The migrations in `folder`: version, description and path, sorted by version.
fn migrations_in(folder: &Path) -> Vec<(i64, String, PathBuf)> {
    let entries = std::fs::read_dir(folder)
        .unwrap_or_else(|err| panic!("cannot read the migrations in {}: {err}", folder.display()));
    let mut migrations: Vec<(i64, String, PathBuf)> = entries
        .map(|entry| entry.expect("a migration folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            let (version, words) = stem.split_once('_').unwrap_or((&stem, ""));
            let version: i64 = version.parse().unwrap_or_else(|_| {
                panic!(
                    "{} is not named NNNN_description.sql (a version number, an underscore, \
                     the words of its description)",
                    path.display()
                )
            });
            (version, words.replace('_', " "), path)
        })
        .collect();
    migrations.sort_by_key(|(version, _, _)| *version);
    for pair in migrations.windows(2) {
        assert!(
            pair[0].0 != pair[1].0,
            "{} and {} have the same version",
            pair[0].2.display(),
            pair[1].2.display()
        );
    }
    migrations
}
