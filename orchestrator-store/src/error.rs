//! Mapping of sqlx errors onto the core's taxonomy, by error kind and code, never by
//! message text.

use std::cell::Cell;

use orchestrator_core::Error;
use sqlx::error::ErrorKind;

tokio::task_local! {
    /// Whether a statement of the operation being watched broke a unique key (see
    /// [`watch_unique_keys`]).
    static UNIQUE_KEY_BROKEN: Cell<bool>;
}

/// Runs `operation` and tells whether one of its statements broke a unique key: the mark
/// of a lost race with a concurrent writer inserting the same key, which its
/// [`Error::Conflict`] alone does not tell apart from other conflicts.
pub(crate) async fn watch_unique_keys<T>(operation: impl Future<Output = T>) -> (T, bool) {
    UNIQUE_KEY_BROKEN
        .scope(Cell::new(false), async {
            let outcome = operation.await;
            (outcome, UNIQUE_KEY_BROKEN.with(Cell::get))
        })
        .await
}

/// SQLite result codes for a busy or locked database, and PostgreSQL SQLSTATEs for
/// serialization failures and deadlocks: all worth retrying.
const RETRYABLE_CODES: &[&str] = &["5", "6", "261", "517", "40001", "40P01"];
/// The codes of the stores' guards on batched updates, raised when a row changed
/// meanwhile: SQLite's for a trigger's RAISE(ABORT), and the SQLSTATE of PostgreSQL's
/// `orchestrator_write_guard` (migration 0006).
const GUARD_FAILED_CODES: &[&str] = &["1811", "OR001"];

pub(crate) fn map_sqlx(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            if db
                .code()
                .is_some_and(|code| RETRYABLE_CODES.contains(&code.as_ref()))
            {
                return Error::Unavailable("the database is busy; retry shortly".into());
            }
            if db
                .code()
                .is_some_and(|code| GUARD_FAILED_CODES.contains(&code.as_ref()))
            {
                return Error::conflict(db.message());
            }
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    // Outside a watched operation there is nobody to tell.
                    let _ = UNIQUE_KEY_BROKEN.try_with(|broken| broken.set(true));
                    Error::conflict(format!(
                        "a row with the same unique key already exists ({})",
                        db.constraint().unwrap_or("unique constraint")
                    ))
                }
                ErrorKind::ForeignKeyViolation => {
                    Error::conflict("the change refers to a row that does not exist (any more)")
                }
                ErrorKind::CheckViolation => Error::backend(format!(
                    "a value broke a check constraint: {}",
                    db.message()
                )),
                _ => Error::backend(db.message()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable(format!("the database cannot be reached: {err}"))
        }
        other => Error::backend(other),
    }
}

/// `?` support for sqlx results inside the store.
pub(crate) trait SqlxResultExt<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, Error> {
        self.map_err(map_sqlx)
    }
}
