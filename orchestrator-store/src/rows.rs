//! Decoding rows into domain types, once for both backends.
//!
//! Each backend implements [`RowReader`] for its row type: how it stores identifiers,
//! instants, flags and JSON. The `*_from_row` functions then read columns by name, so the
//! column list of every entity is spelled out here and nowhere else.

use std::str::FromStr;

use chrono::NaiveDate;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::LeaseToken;
use orchestrator_core::model::{
    Agent, AgentActivityCounts, AgentLog, AttemptChanges, ChangeReport, DayUsage, Event, Exception,
    ModelUsage, RunnerSession, RunnerUsage, Task, TaskActivityCounts, TaskAttempt, TaskUsage,
    Usage, VerificationResult,
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Typed access to a row's columns by name, in the backend's own storage format.
pub trait RowReader {
    /// A text column.
    fn text(&self, column: &str) -> Result<Option<String>>;
    /// An integer column of any width.
    fn integer(&self, column: &str) -> Result<Option<i64>>;
    /// A floating-point column.
    fn real(&self, column: &str) -> Result<Option<f64>>;
    /// A boolean column.
    fn flag(&self, column: &str) -> Result<Option<bool>>;
    /// An identifier column.
    fn uuid(&self, column: &str) -> Result<Option<Uuid>>;
    /// An instant column.
    fn instant(&self, column: &str) -> Result<Option<Timestamp>>;
    /// A JSON column.
    fn json(&self, column: &str) -> Result<Option<serde_json::Value>>;
}

/// A row nested in another row as a JSON object (PostgreSQL's `to_jsonb(row)`): the
/// columns as JSON values, instants as RFC 3339 text.
pub(crate) struct JsonRow(serde_json::Map<String, serde_json::Value>);

impl JsonRow {
    /// The row `value` holds; a non-object is a backend error.
    pub(crate) fn new(value: serde_json::Value) -> Result<Self> {
        match value {
            serde_json::Value::Object(columns) => Ok(Self(columns)),
            other => Err(Error::backend(format!(
                "a nested row is not an object: {other}"
            ))),
        }
    }

    fn get<T>(
        &self,
        column: &str,
        convert: impl FnOnce(&serde_json::Value) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.0.get(column) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => convert(value)
                .map(Some)
                .ok_or_else(|| Error::backend(format!("column {column} holds {value}"))),
        }
    }
}

impl RowReader for JsonRow {
    fn text(&self, column: &str) -> Result<Option<String>> {
        self.get(column, |v| v.as_str().map(str::to_owned))
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        self.get(column, serde_json::Value::as_i64)
    }

    fn real(&self, column: &str) -> Result<Option<f64>> {
        self.get(column, serde_json::Value::as_f64)
    }

    fn flag(&self, column: &str) -> Result<Option<bool>> {
        self.get(column, serde_json::Value::as_bool)
    }

    fn uuid(&self, column: &str) -> Result<Option<Uuid>> {
        self.get(column, |v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
    }

    fn instant(&self, column: &str) -> Result<Option<Timestamp>> {
        self.get(column, |v| {
            let text = v.as_str()?;
            let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
            Some(Timestamp::from(at.with_timezone(&chrono::Utc)))
        })
    }

    fn json(&self, column: &str) -> Result<Option<serde_json::Value>> {
        self.get(column, |v| Some(v.clone()))
    }
}

fn required<T>(value: Option<T>, column: &str) -> Result<T> {
    value.ok_or_else(|| Error::backend(format!("column {column} is unexpectedly NULL")))
}

fn counter<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T> {
    T::try_from(value).map_err(|_| Error::backend(format!("column {column} is out of range")))
}

/// Shorthands over [`RowReader`] for required and converted columns.
pub(crate) trait RowExt: RowReader {
    fn req_text(&self, column: &str) -> Result<String> {
        required(self.text(column)?, column)
    }

    fn parsed<T: FromStr<Err = Error>>(&self, column: &str) -> Result<T> {
        self.req_text(column)?
            .parse()
            .map_err(|err: Error| Error::backend(format!("column {column}: {err}")))
    }

    fn opt_parsed<T: FromStr<Err = Error>>(&self, column: &str) -> Result<Option<T>> {
        self.text(column)?
            .map(|text| text.parse())
            .transpose()
            .map_err(|err: Error| Error::backend(format!("column {column}: {err}")))
    }

    fn count<T: TryFrom<i64>>(&self, column: &str) -> Result<T> {
        counter(required(self.integer(column)?, column)?, column)
    }

    fn opt_count<T: TryFrom<i64>>(&self, column: &str) -> Result<Option<T>> {
        self.integer(column)?
            .map(|v| counter(v, column))
            .transpose()
    }

    fn id<T: From<Uuid>>(&self, column: &str) -> Result<T> {
        required(self.uuid(column)?, column).map(T::from)
    }

    fn opt_id<T: From<Uuid>>(&self, column: &str) -> Result<Option<T>> {
        Ok(self.uuid(column)?.map(T::from))
    }

    fn at(&self, column: &str) -> Result<Timestamp> {
        required(self.instant(column)?, column)
    }

    fn req_flag(&self, column: &str) -> Result<bool> {
        required(self.flag(column)?, column)
    }

    fn decoded<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        self.opt_decoded(column)?
            .ok_or_else(|| Error::backend(format!("column {column} is unexpectedly NULL")))
    }

    fn opt_decoded<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        self.json(column)?
            .map(serde_json::from_value)
            .transpose()
            .map_err(|err| Error::backend(format!("column {column}: {err}")))
    }
}

impl<R: RowReader + ?Sized> RowExt for R {}

pub(crate) fn task_from_row(row: &impl RowReader) -> Result<Task> {
    Ok(Task {
        id: row.id("id")?,
        title: row.req_text("title")?,
        description: row.req_text("description")?,
        priority: row.count("priority")?,
        risk_level: row.parsed("risk_level")?,
        status: row.parsed("status")?,
        assigned_agent_id: row.opt_id("assigned_agent_id")?,
        assigned_at: row.instant("assigned_at")?,
        branch_name: row.text("branch_name")?,
        commit_sha: row.text("commit_sha")?,
        pr_url: row.text("pr_url")?,
        verification_status: row.parsed("verification_status")?,
        verification_attempts: row.count("verification_attempts")?,
        estimated_complexity: row.opt_parsed("estimated_complexity")?,
        files_hint: row.decoded("files_hint")?,
        depends_on: dependency_list(row.text("depends_on")?)?,
        idempotency_key: row.text("idempotency_key")?,
        attempt: row.count("attempt")?,
        attempts_used: row.count("attempts_used")?,
        max_attempts: row.count("max_attempts")?,
        retry_count: row.count("retry_count")?,
        not_before: row.instant("not_before")?,
        lease_token: row.opt_id::<LeaseToken>("lease_token")?,
        lease_expires_at: row.instant("lease_expires_at")?,
        cancel_requested: row.req_flag("cancel_requested")?,
        last_error: row.text("last_error")?,
        retry_note: row.text("retry_note")?,
        revision: row.count("revision")?,
        created_at: row.at("created_at")?,
        updated_at: row.at("updated_at")?,
        completed_at: row.instant("completed_at")?,
    })
}

/// Dependencies arrive as one comma-separated column, in no particular order.
fn dependency_list(list: Option<String>) -> Result<Vec<orchestrator_core::ids::TaskId>> {
    let mut ids = list
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .map(|id| id.parse())
        .collect::<Result<Vec<_>>>()?;
    ids.sort();
    Ok(ids)
}

pub(crate) fn task_activity_from_row(row: &impl RowReader) -> Result<TaskActivityCounts> {
    Ok(TaskActivityCounts {
        task_id: row.id("id")?,
        verification_results: row.count("verifications")?,
        logs: row.count("logs")?,
        exceptions: row.count("exceptions")?,
    })
}

pub(crate) fn agent_activity_from_row(row: &impl RowReader) -> Result<AgentActivityCounts> {
    Ok(AgentActivityCounts {
        agent_id: row.id("id")?,
        logs: row.count("logs")?,
        file_locks: row.count("file_locks")?,
        exceptions: row.count("exceptions")?,
    })
}

pub(crate) fn agent_from_row(row: &impl RowReader) -> Result<Agent> {
    Ok(Agent {
        id: row.id("id")?,
        name: row.text("name")?,
        status: row.parsed("status")?,
        current_task_id: row.opt_id("current_task_id")?,
        branch_name: row.text("branch_name")?,
        conversation_id: row.text("conversation_id")?,
        total_tokens_used: row.count("total_tokens_used")?,
        last_activity_at: row.instant("last_activity_at")?,
        started_at: row.instant("started_at")?,
        completed_at: row.instant("completed_at")?,
        tasks_completed: row.count("tasks_completed")?,
        tasks_failed: row.count("tasks_failed")?,
        is_local_runner: row.req_flag("is_local_runner")?,
        runner_session_id: row.opt_id("runner_session_id")?,
        slot: row.opt_count("slot")?,
        revision: row.count("revision")?,
        created_at: row.at("created_at")?,
        updated_at: row.at("updated_at")?,
    })
}

pub(crate) fn attempt_from_row(row: &impl RowReader) -> Result<TaskAttempt> {
    Ok(TaskAttempt {
        id: row.id("id")?,
        task_id: row.id("task_id")?,
        attempt_number: row.count("attempt_number")?,
        agent_id: row.id("agent_id")?,
        runner_session_id: row.opt_id("runner_session_id")?,
        lease_token: row.opt_id("lease_token")?,
        lease_expires_at: row.at("lease_expires_at")?,
        started_at: row.at("started_at")?,
        ended_at: row.instant("ended_at")?,
        outcome: row.parsed("outcome")?,
        failure_reason: row.text("failure_reason")?,
        commit_sha: row.text("commit_sha")?,
        usage: Usage {
            input_tokens: row.count("input_tokens")?,
            output_tokens: row.count("output_tokens")?,
            cache_read_tokens: row.count("cache_read_tokens")?,
            cache_write_tokens: row.count("cache_write_tokens")?,
            cost_usd: required(row.real("cost_usd")?, "cost_usd")?,
        },
        backend: row.text("backend")?,
        model: row.text("model")?,
    })
}

/// How many attempts a usage row sums, and their usage.
fn usage_sums(row: &impl RowReader) -> Result<(u64, Usage)> {
    Ok((
        row.count("attempts")?,
        Usage {
            input_tokens: row.count("total_input_tokens")?,
            output_tokens: row.count("total_output_tokens")?,
            cache_read_tokens: row.count("total_cache_read_tokens")?,
            cache_write_tokens: row.count("total_cache_write_tokens")?,
            cost_usd: required(row.real("total_cost_usd")?, "total_cost_usd")?,
        },
    ))
}

pub(crate) fn day_usage_from_row(row: &impl RowReader) -> Result<DayUsage> {
    let day = row.req_text("day")?;
    let (attempts, usage) = usage_sums(row)?;
    Ok(DayUsage {
        day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|err| Error::backend(format!("column day: {day:?}: {err}")))?,
        attempts,
        usage,
    })
}

pub(crate) fn runner_usage_from_row(row: &impl RowReader) -> Result<RunnerUsage> {
    let (attempts, usage) = usage_sums(row)?;
    Ok(RunnerUsage {
        runner_session_id: row.opt_id("runner_session_id")?,
        name: row.text("name")?,
        attempts,
        usage,
    })
}

pub(crate) fn model_usage_from_row(row: &impl RowReader) -> Result<ModelUsage> {
    let (attempts, usage) = usage_sums(row)?;
    Ok(ModelUsage {
        backend: row.text("backend")?,
        model: row.text("model")?,
        attempts,
        usage,
    })
}

pub(crate) fn task_usage_from_row(row: &impl RowReader) -> Result<TaskUsage> {
    let (attempts, usage) = usage_sums(row)?;
    Ok(TaskUsage {
        task_id: row.id("task_id")?,
        title: row.req_text("title")?,
        attempts,
        usage,
    })
}

pub(crate) fn runner_session_from_row(row: &impl RowReader) -> Result<RunnerSession> {
    Ok(RunnerSession {
        id: row.id("id")?,
        name: row.req_text("name")?,
        working_dir: row.req_text("working_dir")?,
        status: row.parsed("status")?,
        token_hash: row.req_text("token_hash")?,
        host: row.text("host")?,
        version: row.text("version")?,
        backends: row.opt_decoded("backends")?.unwrap_or_default(),
        last_seen_at: row.at("last_seen_at")?,
        created_at: row.at("created_at")?,
        updated_at: row.at("updated_at")?,
    })
}

pub(crate) fn log_from_row(row: &impl RowReader) -> Result<AgentLog> {
    Ok(AgentLog {
        id: row.id("id")?,
        agent_id: row.id("agent_id")?,
        task_id: row.opt_id("task_id")?,
        log_type: row.parsed("log_type")?,
        content: row.req_text("content")?,
        metadata: row.json("metadata")?,
        created_at: row.at("created_at")?,
        attempt: row.opt_count("attempt")?,
        sequence: row.count("sequence")?,
    })
}

pub(crate) fn verification_from_row(row: &impl RowReader) -> Result<VerificationResult> {
    Ok(VerificationResult {
        id: row.id("id")?,
        task_id: row.id("task_id")?,
        attempt_number: row.count("attempt_number")?,
        passed: row.req_flag("passed")?,
        confidence_score: required(row.real("confidence_score")?, "confidence_score")?,
        syntax_passed: row.flag("syntax_passed")?,
        types_passed: row.flag("types_passed")?,
        lint_passed: row.flag("lint_passed")?,
        tests_passed: row.flag("tests_passed")?,
        tests_total: row.opt_count("tests_total")?,
        tests_failed: row.opt_count("tests_failed")?,
        semantic_score: row.real("semantic_score")?,
        semantic_explanation: row.text("semantic_explanation")?,
        failures: row.decoded("failures")?,
        recommendations: row.decoded("recommendations")?,
        unverified: row.req_flag("unverified")?,
        stages: row.decoded("stages")?,
        created_at: row.at("created_at")?,
    })
}

pub(crate) fn attempt_changes_from_row(row: &impl RowReader) -> Result<AttemptChanges> {
    Ok(AttemptChanges {
        task_id: row.id("task_id")?,
        attempt_number: row.count("attempt_number")?,
        created_at: row.at("created_at")?,
        changes: ChangeReport {
            files: row.decoded("files")?,
            omitted_files: row.count("omitted_files")?,
            patch: row.req_text("patch")?,
            truncated: row.req_flag("truncated")?,
            max_patch_bytes: row.count("max_patch_bytes")?,
        },
    })
}

pub(crate) fn exception_from_row(row: &impl RowReader) -> Result<Exception> {
    Ok(Exception {
        id: row.id("id")?,
        exception_type: row.parsed("exception_type")?,
        agent_id: row.opt_id("agent_id")?,
        task_id: row.opt_id("task_id")?,
        severity: row.parsed("severity")?,
        title: row.req_text("title")?,
        description: row.text("description")?,
        suggested_action: row.text("suggested_action")?,
        status: row.parsed("status")?,
        resolved_by: row.text("resolved_by")?,
        resolved_at: row.instant("resolved_at")?,
        resolution_notes: row.text("resolution_notes")?,
        occurrences: row.count("occurrences")?,
        last_occurred_at: row.at("last_occurred_at")?,
        created_at: row.at("created_at")?,
        updated_at: row.at("updated_at")?,
    })
}

/// A lock row; rows in the table are the locks still held (or expired, not yet swept).
pub(crate) fn file_lock_from_row(
    row: &impl RowReader,
    status: orchestrator_core::model::FileLockStatus,
) -> Result<orchestrator_core::model::FileLock> {
    Ok(orchestrator_core::model::FileLock {
        id: row.id("id")?,
        file_path: row.req_text("file_path")?,
        agent_id: row.id("agent_id")?,
        task_id: row.opt_id("task_id")?,
        mode: row.parsed("mode")?,
        status,
        fencing_token: row.count("fencing_token")?,
        acquired_at: row.at("acquired_at")?,
        expires_at: row.at("expires_at")?,
    })
}

pub(crate) fn event_from_row(row: &impl RowReader) -> Result<Event> {
    Ok(Event {
        seq: required(row.integer("seq")?, "seq")?,
        kind: row.parsed("kind")?,
        task_id: row.opt_id("task_id")?,
        agent_id: row.opt_id("agent_id")?,
        runner_session_id: row.opt_id("runner_session_id")?,
        exception_id: row.opt_id("exception_id")?,
        payload: required(row.json("payload")?, "payload")?,
        created_at: row.at("created_at")?,
    })
}
