use serde::{Deserialize, Serialize};

use super::{check_max_chars, check_not_blank};
use crate::error::{Error, Result};
use crate::ids::{AgentId, LeaseToken, TaskId};
use crate::lock::LockPath;
use crate::model::{RiskLevel, TaskComplexity, TaskStatus, VerificationStatus};
use crate::time::Timestamp;

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200_000;
/// Priority when none is given (0 urgent … 3 low).
pub const DEFAULT_PRIORITY: u8 = 2;
/// Attempts a task gets before a lost lease fails it, when none is given.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Most tasks created in one batch.
pub const MAX_BATCH_SIZE: usize = 50;

const MAX_PRIORITY: u8 = 3;
const MAX_FILES_HINT: usize = 200;
const MAX_DEPENDENCIES: usize = 50;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;
const MAX_ATTEMPTS_LIMIT: u32 = 20;

/// A unit of coding work in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: TaskId,
    pub title: String,
    pub description: String,
    /// 0 urgent … 3 low.
    pub priority: u8,
    pub risk_level: RiskLevel,
    pub status: TaskStatus,
    pub assigned_agent_id: Option<AgentId>,
    pub assigned_at: Option<Timestamp>,
    pub branch_name: Option<String>,
    pub commit_sha: Option<String>,
    pub pr_url: Option<String>,
    pub verification_status: VerificationStatus,
    /// Verification runs recorded for this task.
    pub verification_attempts: u32,
    pub estimated_complexity: Option<TaskComplexity>,
    /// Repository-relative paths the task expects to touch, normalized; a claim locks them.
    pub files_hint: Vec<String>,
    /// Tasks that must be COMPLETED before this one can be claimed.
    pub depends_on: Vec<TaskId>,
    /// Client-chosen key that makes creation idempotent.
    pub idempotency_key: Option<String>,
    /// Number of the latest attempt (0: never claimed). Never decreases, so
    /// `(id, attempt)` names one attempt for ever.
    pub attempt: u32,
    /// Attempts started since creation, across retries, lease expiries and follow-ups;
    /// no automatic retry or requeue goes past `max_attempts` (a person's retry of a task
    /// that used them all raises `max_attempts` by one).
    pub attempts_used: u32,
    pub max_attempts: u32,
    /// Times the task went from FAILED back to the queue.
    pub retry_count: u32,
    /// Not claimable before this instant (delayed retries).
    pub not_before: Option<Timestamp>,
    /// The live attempt's lease secret; never serialized.
    #[serde(skip)]
    pub lease_token: Option<LeaseToken>,
    pub lease_expires_at: Option<Timestamp>,
    /// A person asked to cancel while an attempt runs; the runner is told to stop.
    pub cancel_requested: bool,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
    /// What a person asked of the next attempts when they retried the task; the agent's
    /// prompt carries it.
    pub retry_note: Option<String>,
    /// Bumped on every write; guards concurrent updates.
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// What a client supplies to create a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTask {
    /// Not blank; at most 500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 500, pattern = "[^ \t\r\n]")
    )]
    pub title: String,
    /// Not blank; at most 200,000 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200_000, pattern = "[^ \t\r\n]")
    )]
    pub description: String,
    /// 0 (first) to 3 (last); default 2.
    #[serde(default = "default_priority")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 3, default = 2))]
    pub priority: u8,
    #[serde(default = "default_risk_level")]
    pub risk_level: RiskLevel,
    /// Files and directories (ending in `/`) the task works on: at most 200, each at most
    /// 4,096 bytes and 64 components.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_items = 200, value_type = Vec<LockPath>)
    )]
    pub files_hint: Vec<String>,
    /// Tasks that must complete first: at most 50, all existing.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub depends_on: Vec<TaskId>,
    /// Makes the creation safe to repeat: not blank, at most 200 characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")
    )]
    pub idempotency_key: Option<String>,
    /// 1 to 20; default 3.
    #[serde(default = "default_max_attempts")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 20, default = 3))]
    pub max_attempts: u32,
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    #[serde(default)]
    pub estimated_complexity: Option<TaskComplexity>,
}

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

fn default_risk_level() -> RiskLevel {
    RiskLevel::Medium
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

impl NewTask {
    /// A task with the given title and description and every other field at its default.
    pub fn new(title: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            description: description.into(),
            priority: DEFAULT_PRIORITY,
            risk_level: RiskLevel::Medium,
            files_hint: Vec::new(),
            depends_on: Vec::new(),
            idempotency_key: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            not_before: None,
            estimated_complexity: None,
        }
    }

    /// A fingerprint of what this asks for (its fields as stored, the idempotency key
    /// aside), to tell a repeated creation from a different one under the same key.
    pub fn fingerprint(&self) -> String {
        let mut asked = self.clone();
        asked.idempotency_key = None;
        asked.files_hint = normalize_files_hint(asked.files_hint);
        asked.depends_on.sort();
        asked.depends_on.dedup();
        let text = serde_json::to_string(&asked).unwrap_or_default();
        format!("{:016x}", crate::fingerprint::fnv1a(text.as_bytes()))
    }

    /// Checks that this, created again under the idempotency key of a task created with
    /// `fingerprint` (`None`: a task that has none, which is not checked), asks for the
    /// same task.
    pub fn check_repeat(&self, fingerprint: Option<&str>) -> Result<()> {
        match fingerprint {
            Some(kept) if kept != self.fingerprint() => Err(Error::conflict(format!(
                "idempotencyKey {:?} was used for a task with a different body: repeat the same \
                 body to get that task, or use a new key for a new one",
                self.idempotency_key.as_deref().unwrap_or_default()
            ))),
            _ => Ok(()),
        }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        validate_title(&self.title)?;
        validate_description(&self.description)?;
        validate_priority(self.priority)?;
        validate_files_hint(&self.files_hint)?;
        validate_max_attempts(self.max_attempts)?;
        validate_dependency_count(&self.depends_on)?;
        if let Some(key) = &self.idempotency_key {
            check_not_blank("idempotencyKey", key)?;
            check_max_chars("idempotencyKey", key, MAX_IDEMPOTENCY_KEY_CHARS)?;
        }
        Ok(())
    }

    /// The task this creates, QUEUED, with the given identity and time.
    pub fn into_task(self, id: TaskId, now: Timestamp) -> Task {
        let mut depends_on = self.depends_on;
        depends_on.sort();
        depends_on.dedup();
        Task {
            id,
            title: self.title,
            description: self.description,
            priority: self.priority,
            risk_level: self.risk_level,
            status: TaskStatus::Queued,
            assigned_agent_id: None,
            assigned_at: None,
            branch_name: None,
            commit_sha: None,
            pr_url: None,
            verification_status: VerificationStatus::Pending,
            verification_attempts: 0,
            estimated_complexity: self.estimated_complexity,
            files_hint: normalize_files_hint(self.files_hint),
            depends_on,
            idempotency_key: self.idempotency_key,
            attempt: 0,
            attempts_used: 0,
            max_attempts: self.max_attempts,
            retry_count: 0,
            not_before: self.not_before,
            lease_token: None,
            lease_expires_at: None,
            cancel_requested: false,
            last_error: None,
            retry_note: None,
            revision: 0,
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }
}

/// A change to a task's editable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<u8>,
    pub risk_level: Option<RiskLevel>,
    pub files_hint: Option<Vec<String>>,
    pub max_attempts: Option<u32>,
    pub estimated_complexity: Option<TaskComplexity>,
    /// Replaces the tasks this one waits for (a queued task only; empty releases it).
    pub depends_on: Option<Vec<TaskId>>,
    /// Sets the earliest time it may be claimed, or with `Some(None)` lets it be claimed
    /// at once (a queued task only).
    pub not_before: Option<Option<Timestamp>>,
}

impl TaskEdit {
    /// Checks every field that is present.
    pub fn validate(&self) -> Result<()> {
        if let Some(title) = &self.title {
            validate_title(title)?;
        }
        if let Some(description) = &self.description {
            validate_description(description)?;
        }
        if let Some(priority) = self.priority {
            validate_priority(priority)?;
        }
        if let Some(files) = &self.files_hint {
            validate_files_hint(files)?;
        }
        if let Some(max) = self.max_attempts {
            validate_max_attempts(max)?;
        }
        if let Some(dependencies) = &self.depends_on {
            validate_dependency_count(dependencies)?;
        }
        Ok(())
    }

    /// Whether the edit changes what the task waits for.
    pub fn changes_waiting(&self) -> bool {
        self.depends_on.is_some() || self.not_before.is_some()
    }

    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Writes the present fields into `task`.
    pub fn apply_to(self, task: &mut Task) {
        if let Some(title) = self.title {
            task.title = title;
        }
        if let Some(description) = self.description {
            task.description = description;
        }
        if let Some(priority) = self.priority {
            task.priority = priority;
        }
        if let Some(risk_level) = self.risk_level {
            task.risk_level = risk_level;
        }
        if let Some(files_hint) = self.files_hint {
            task.files_hint = normalize_files_hint(files_hint);
        }
        if let Some(max_attempts) = self.max_attempts {
            task.max_attempts = max_attempts;
        }
        if let Some(complexity) = self.estimated_complexity {
            task.estimated_complexity = Some(complexity);
        }
        if let Some(mut dependencies) = self.depends_on {
            dependencies.sort();
            dependencies.dedup();
            task.depends_on = dependencies;
        }
        if let Some(not_before) = self.not_before {
            task.not_before = not_before;
        }
    }
}

/// Why a queued task is not claimed yet, as far as the task itself says (the locks in
/// its way are another matter, see the lock check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// Its dependencies that have not COMPLETED, with their status: a FAILED or
    /// CANCELLED one keeps it waiting until retried or reopened.
    pub dependencies: Vec<WaitedFor>,
    /// The earliest time it may be claimed, while that is still ahead.
    pub not_before: Option<Timestamp>,
}

/// A dependency a task waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WaitedFor {
    pub id: TaskId,
    pub title: String,
    pub status: TaskStatus,
}

impl Waiting {
    /// What `task` waits for at `now`, given its dependencies by id (`None` if it is not
    /// queued, or waits for nothing).
    pub fn of(
        task: &Task,
        dependencies: &std::collections::HashMap<TaskId, Task>,
        now: Timestamp,
    ) -> Option<Self> {
        if task.status != TaskStatus::Queued {
            return None;
        }
        let waiting = Self {
            dependencies: task
                .depends_on
                .iter()
                .filter_map(|id| dependencies.get(id))
                .filter(|d| d.status != TaskStatus::Completed)
                .map(|d| WaitedFor {
                    id: d.id,
                    title: d.title.clone(),
                    status: d.status,
                })
                .collect(),
            not_before: task.not_before.filter(|at| *at > now),
        };
        (!waiting.dependencies.is_empty() || waiting.not_before.is_some()).then_some(waiting)
    }
}

fn validate_dependency_count(dependencies: &[TaskId]) -> Result<()> {
    if dependencies.len() > MAX_DEPENDENCIES {
        return Err(Error::invalid(
            "dependsOn",
            format!("at most {MAX_DEPENDENCIES} dependencies"),
        ));
    }
    Ok(())
}

fn validate_title(title: &str) -> Result<()> {
    check_not_blank("title", title)?;
    check_max_chars("title", title, MAX_TITLE_CHARS)
}

fn validate_description(description: &str) -> Result<()> {
    check_not_blank("description", description)?;
    check_max_chars("description", description, MAX_DESCRIPTION_CHARS)
}

fn validate_priority(priority: u8) -> Result<()> {
    if priority > MAX_PRIORITY {
        return Err(Error::invalid(
            "priority",
            format!("must be 0 (urgent) to {MAX_PRIORITY} (low), got {priority}"),
        ));
    }
    Ok(())
}

fn validate_max_attempts(max_attempts: u32) -> Result<()> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
        return Err(Error::invalid(
            "maxAttempts",
            format!("must be 1 to {MAX_ATTEMPTS_LIMIT}, got {max_attempts}"),
        ));
    }
    Ok(())
}

fn validate_files_hint(files: &[String]) -> Result<()> {
    if files.len() > MAX_FILES_HINT {
        return Err(Error::invalid(
            "filesHint",
            format!("at most {MAX_FILES_HINT} paths (got {})", files.len()),
        ));
    }
    for (index, path) in files.iter().enumerate() {
        let field = format!("filesHint[{index}]");
        check_not_blank(&field, path)?;
        LockPath::parse_field(path, &field)?;
    }
    crate::lock::parse_paths(files, "filesHint").map(|_| ())
}

/// The files hint in normalized form (`src\a.rs` → `src/a.rs`), without duplicates.
/// Only called on validated input.
fn normalize_files_hint(files: Vec<String>) -> Vec<String> {
    match crate::lock::parse_paths(&files, "filesHint") {
        Ok(paths) => paths.iter().map(|p| p.key()).collect(),
        Err(_) => files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let task: NewTask = serde_json::from_str(r#"{"title":"t","description":"d"}"#).unwrap();
        assert_eq!(task.priority, 2);
        assert_eq!(task.risk_level, RiskLevel::Medium);
        assert!(task.files_hint.is_empty());
        task.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_enum_values_are_rejected() {
        assert!(
            serde_json::from_str::<NewTask>(r#"{"title":"t","description":"d","x":1}"#).is_err()
        );
        assert!(
            serde_json::from_str::<NewTask>(
                r#"{"title":"t","description":"d","riskLevel":"HUGE"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut task = NewTask::new("", "d");
        assert!(task.validate().unwrap_err().to_string().contains("title"));
        task.title = "x".repeat(501);
        assert!(
            task.validate()
                .unwrap_err()
                .to_string()
                .contains("at most 500")
        );
        task.title = "é".repeat(500);
        task.validate().unwrap();
        task.priority = 4;
        assert!(
            task.validate()
                .unwrap_err()
                .to_string()
                .contains("priority")
        );
    }

    #[test]
    fn lease_token_never_serializes() {
        let mut task =
            NewTask::new("t", "d").into_task(TaskId::new(), Timestamp::from_millis(0).unwrap());
        task.lease_token = Some(LeaseToken::new());
        let json = serde_json::to_value(&task).unwrap();
        assert!(json.get("leaseToken").is_none());
        assert_eq!(json["status"], "QUEUED");
        assert_eq!(json["createdAt"], "1970-01-01T00:00:00.000Z");
    }
}

/// How much has been recorded about a task: what a task list shows next to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskActivityCounts {
    #[serde(skip)]
    pub task_id: TaskId,
    pub verification_results: u64,
    pub logs: u64,
    pub exceptions: u64,
}

impl TaskActivityCounts {
    /// Nothing recorded yet.
    pub fn none(task_id: TaskId) -> Self {
        Self {
            task_id,
            verification_results: 0,
            logs: 0,
            exceptions: 0,
        }
    }
}
