//! The domain model: tasks with attempts under leases, dependencies, delayed retries and
//! idempotent creation; agents as reusable worker slots of runner sessions; their logs,
//! file locks, exceptions for a human, verification results, usage and changes per
//! attempt, and an append-only event log.
//!
//! Field names serialize in camelCase and enum values in upper case, so the JSON of these
//! types is the API's wire format.

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
mod verification;

pub use agent::{Agent, AgentActivityCounts, NewAgent};
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
    AgentQuery, ExceptionQuery, LOG_COUNT_LIMIT, LogPage, LogQuery, Page, SortOrder, TaskQuery,
    TaskSort,
};
pub use runner::{NewRunnerSession, RunnerSession};
pub use stats::{COMPLETION_SAMPLE, SystemStats};
pub use task::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, MAX_BATCH_SIZE, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS,
    NewTask, Task, TaskActivityCounts, TaskEdit, WaitedFor, Waiting,
};
pub use task_cursor::{SortKey, TaskCursor};
pub use verification::{NewVerificationResult, VerificationFailure, VerificationResult};

use crate::error::{Error, Result};

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
