//! The domain model: tasks with attempts under leases, dependencies, delayed retries and
//! idempotent creation; agents as reusable worker slots of runner sessions; their logs,
//! file locks, exceptions for a human, verification results, usage and changes per
//! attempt, and an append-only event log.
//!
//! Field names serialize in camelCase and enum values in upper case, so the JSON of these
//! types is the API's wire format.

mod activity;
mod agent;
mod attempt;
mod changes;
mod enums;
mod event;
mod exception;
mod id_prefix;
mod lock;
mod log;
mod query;
mod runner;
mod stats;
mod task;
mod task_cursor;
mod usage;
mod verification;

pub use activity::{Activity, AttemptSpan, HourActivity, MAX_ACTIVITY_HOURS, QueueStay};
pub use agent::{Agent, AgentActivityCounts, NewAgent};
pub(crate) use attempt::check_backend_and_model;
pub use attempt::{TaskAttempt, Usage};
pub use changes::{
    AttemptChanges, ChangeReport, FileChange, MAX_CHANGED_FILES, MAX_CHANGED_PATH_CHARS,
    MAX_PATCH_BYTES,
};
pub use enums::{
    AgentStatus, AttemptOutcome, ExceptionSeverity, ExceptionStatus, ExceptionType, FailureKind,
    FileChangeStatus, FileLockStatus, LockMode, LogType, RiskLevel, RunnerSessionStatus,
    TaskComplexity, TaskStatus, VerificationStatus,
};
pub use event::{Event, EventKind, NewEvent};
pub use exception::{Exception, NewException};
pub(crate) use exception::{MAX_RESOLUTION_NOTES_CHARS, MAX_RESOLVED_BY_CHARS};
pub use id_prefix::IdPrefix;
pub use lock::FileLock;
pub use log::{AgentLog, LogCursor, MAX_LOG_CONTENT_CHARS, NewAgentLog};
pub use query::{
    AgentQuery, AgentSort, ExceptionQuery, LOG_COUNT_LIMIT, LogPage, LogQuery, Page, SortOrder,
    TaskQuery, TaskSort,
};
pub use runner::{
    MAX_HOST_CHARS, MAX_RUNNER_BACKENDS, MAX_VERSION_CHARS, NewRunnerSession, RunnerIdentity,
    RunnerSession,
};
pub use stats::{COMPLETION_SAMPLE, SystemStats};
pub use task::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, MAX_BATCH_SIZE, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS,
    NewTask, Task, TaskActivityCounts, TaskEdit, WaitedFor, Waiting,
};
pub use task_cursor::{SortKey, TaskCursor};
pub use usage::{
    DayUsage, MAX_USAGE_DAYS, MAX_USAGE_TASKS, ModelUsage, RunnerUsage, TaskUsage, UsageQuery,
    UsageSummary,
};
pub use verification::{NewVerificationResult, VerificationFailure, VerificationResult};

use crate::error::{Error, Result};

/// Longest name of an agent backend (`claude-code`), in characters.
pub const MAX_BACKEND_CHARS: usize = 64;
/// Longest name of a model, in characters.
pub const MAX_MODEL_CHARS: usize = 128;

/// Rejects `value` if it is longer than `max` characters, naming `field`.
pub(crate) fn check_max_chars(field: &str, value: &str, max: usize) -> Result<()> {
    let count = value.chars().count();
    if count > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters (got {count})"),
        ));
    }
    Ok(())
}

/// The characters a required text may not consist of alone. API documents state the rule
/// as the pattern `[^ \t\r\n]` (some other character somewhere).
const BLANK: [char; 4] = [' ', '\t', '\r', '\n'];

/// Rejects an empty `value`, or one of spaces, tabs and line breaks only, naming `field`.
pub(crate) fn check_not_blank(field: &str, value: &str) -> Result<()> {
    if !value.chars().any(|c| !BLANK.contains(&c)) {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Rejects a `value` that is blank or longer than `max` characters, naming `field`: the
/// rule for the names runners report (host, version, backend, model).
pub fn check_name(field: &str, value: &str, max: usize) -> Result<()> {
    check_not_blank(field, value)?;
    check_max_chars(field, value, max)
}

/// Declares a string type that exists only in API documents: text that is not blank and
/// at most `$max` characters long.
#[cfg(feature = "openapi")]
macro_rules! name_schema {
    ($(#[$meta:meta])* $name:ident, $max:expr, $example:literal) => {
        $(#[$meta])*
        pub(crate) struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some("[^ \t\r\n]"))
                    .examples([serde_json::json!($example)])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

#[cfg(feature = "openapi")]
name_schema!(
    /// In API documents: the name of an agent backend.
    BackendName,
    MAX_BACKEND_CHARS,
    "claude-code"
);

#[cfg(feature = "openapi")]
name_schema!(
    /// In API documents: the name of a model.
    ModelName,
    MAX_MODEL_CHARS,
    "claude-sonnet-4-5"
);
