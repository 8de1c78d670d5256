//! What a runner reports on its attempts, as operations over a [`Store`]: progress, the
//! locks a change needs beyond its files hint, and the completion with its evidence.
//! The HTTP runner protocol and in-process runners both go through these.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::change::{self, AttemptEnd, LateEvidence, LeaseRef, TaskAction};
use crate::error::{Error, Result};
use crate::ids::AgentId;
use crate::lock::{LockConflict, LockOutcome, LockRequest};
use crate::model::{
    ChangeReport, ExceptionSeverity, ExceptionType, FileLock, LockMode, LogType, NewAgentLog,
    NewException, NewVerificationResult, Task, TaskStatus, Usage,
};
use crate::retry::RetryPolicy;
use crate::store::Store;
use crate::store::StoreExt;
use crate::time::Timestamp;

/// Lines an attempt's change added and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiffStats {
    pub files_changed: u32,
    pub insertions: u32,
    pub deletions: u32,
}

/// How an attempt ended, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptCompletion {
    pub success: bool,
    /// The runner stopped because the task was cancelled (its heartbeat said stop).
    #[serde(default)]
    pub cancelled: bool,
    /// The runner stopped before the attempt finished and gives the task back: it is
    /// queued again and the attempt does not count against its attempts.
    #[serde(default)]
    pub returned: bool,
    /// The attempt failed because its change touches paths other agents hold (the
    /// CONFLICT_DETECTED exception raised when its locks were refused says so).
    #[serde(default)]
    pub lock_conflict: bool,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub commit_sha: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    /// The agent backend that ran the attempt (`claude-code`).
    pub backend: Option<String>,
    /// The model the agent ran on, when known.
    pub model: Option<String>,
    pub diff_stats: Option<DiffStats>,
    /// The changed files and the patch, kept with the attempt's end.
    pub changes: Option<ChangeReport>,
    pub verification: Option<NewVerificationResult>,
}

/// The answer to a request for more locks: all granted, or the locks in the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockAnswer {
    /// All the paths were granted; otherwise none was.
    pub granted: bool,
    #[serde(default)]
    pub locks: Vec<FileLock>,
    /// The locks of other agents in the way.
    #[serde(default)]
    pub conflicts: Vec<LockConflict>,
}

impl From<LockOutcome> for LockAnswer {
    fn from(outcome: LockOutcome) -> Self {
        match outcome {
            LockOutcome::Granted(locks) => Self {
                granted: true,
                locks,
                conflicts: Vec::new(),
            },
            LockOutcome::Denied(conflicts) => Self {
                granted: false,
                locks: Vec::new(),
                conflicts,
            },
        }
    }
}

/// Reports that the attempt works (IN_PROGRESS) or verifies its change (VERIFYING); a
/// report of the status the task already has changes nothing.
pub async fn report_progress(
    store: &dyn Store,
    lease: LeaseRef,
    status: TaskStatus,
    now: Timestamp,
) -> Result<()> {
    let action = match status {
        TaskStatus::InProgress => TaskAction::Start,
        TaskStatus::Verifying => TaskAction::BeginVerification,
        other => {
            return Err(Error::invalid(
                "status",
                format!("{other} is not reported by runners; send IN_PROGRESS or VERIFYING"),
            ));
        }
    };
    let task = store.get_task(lease.task_id).await?;
    if task.status != status {
        store
            .apply_task_action(lease.task_id, action, Some(lease), now)
            .await?;
    }
    Ok(())
}

/// Locks `paths` for the attempt until its lease ends, all or none. When other agents
/// hold some of them, a CONFLICT_DETECTED exception names the holders for a human, and
/// the outcome lists them.
pub async fn lock_changed_paths(
    store: &dyn Store,
    agent: AgentId,
    lease: LeaseRef,
    paths: Vec<String>,
    now: Timestamp,
) -> Result<LockAnswer> {
    let task = store.get_task(lease.task_id).await?;
    change::check_lease(&task, &lease, now)?;
    let ttl = task
        .lease_expires_at
        .map_or(std::time::Duration::from_secs(300), |expires| {
            expires.since(now)
        });
    let request = LockRequest {
        holder: agent,
        task_id: Some(task.id),
        paths,
        mode: LockMode::Exclusive,
        ttl,
    };
    let outcome = store.acquire(request, now).await?;
    if let LockOutcome::Denied(conflicts) = &outcome {
        let holders: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "{} (held on {} by agent {}{})",
                    c.requested_path,
                    c.held.file_path,
                    c.held.agent_id,
                    c.held
                        .task_id
                        .map(|t| format!(" for task {t}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let mut exception = NewException::new(
            ExceptionType::ConflictDetected,
            ExceptionSeverity::Warning,
            "Changed files are locked by another agent",
        );
        exception.description = Some(format!(
            "The attempt changed files that another agent holds: {}",
            holders.join("; ")
        ));
        exception.suggested_action =
            Some("Let the other task finish, then retry this one (or widen its files hint)".into());
        exception.task_id = Some(task.id);
        exception.agent_id = Some(agent);
        store.raise_exception(exception, now).await?;
    }
    Ok(outcome.into())
}

/// Ends the attempt in one transaction (see [`TaskStore::end_attempt`](crate::store::TaskStore::end_attempt)): completes, fails or
/// acknowledges the cancellation, records its verification result and a closing log
/// entry while the lease is live, and follows a failure up by the retry policy (a failed
/// verification) or with an exception for a human (anything else). The same completion
/// sent again finds the attempt ended and changes nothing.
///
/// A completion whose lease was lost (run out, or the task given to another attempt)
/// changes nothing in the task: it is refused as a conflict, but its commit, usage,
/// backend, model and evidence are kept on its own attempt (see
/// [`crate::change::plan_late_evidence`]), so the work stays visible and usable.
pub async fn complete_attempt(
    store: &dyn Store,
    policy: &RetryPolicy,
    agent: AgentId,
    lease: LeaseRef,
    completion: AttemptCompletion,
    now: Timestamp,
) -> Result<Task> {
    let outcome = match (completion.success, &completion.summary, &completion.error) {
        _ if completion.returned => {
            "Task given back: the runner stopped before the attempt finished".to_owned()
        }
        (true, summary, _) => format!(
            "Task completed: {}",
            summary.as_deref().unwrap_or("No summary provided")
        ),
        (false, _, error) => format!(
            "Task failed: {}",
            error.as_deref().unwrap_or("Unknown error")
        ),
    };
    let closing = NewAgentLog {
        agent_id: agent,
        task_id: Some(lease.task_id),
        log_type: LogType::StatusChange,
        content: outcome.clone(),
        metadata: Some(json!({
            "commitSha": completion.commit_sha,
            "diffStats": completion.diff_stats,
            "usage": completion.usage,
        })),
    };
    let late = LateEvidence {
        commit_sha: completion.commit_sha.clone(),
        usage: completion.usage,
        backend: completion.backend.clone(),
        model: completion.model.clone(),
        content: format!(
            "Completion of attempt {} arrived after its lease was lost; the task is not changed. {outcome}",
            lease.attempt
        ),
        metadata: json!({
            "late": true,
            "commitSha": completion.commit_sha,
            "diffStats": completion.diff_stats,
            "usage": completion.usage,
            "verification": completion.verification,
        }),
    };
    let action = if completion.returned {
        TaskAction::GiveBack {
            usage: completion.usage,
        }
    } else if completion.cancelled {
        TaskAction::AcknowledgeCancel
    } else if completion.success {
        TaskAction::Complete {
            commit_sha: completion.commit_sha.clone(),
            usage: completion.usage,
        }
    } else {
        TaskAction::Fail {
            reason: completion
                .error
                .clone()
                .unwrap_or_else(|| "Unknown error".into()),
            usage: completion.usage,
        }
    };
    let end = AttemptEnd {
        action,
        verification: completion.verification,
        changes: completion.changes,
        backend: completion.backend,
        model: completion.model,
        logs: vec![closing],
        retry_policy: policy.clone(),
        lock_conflict: completion.lock_conflict,
    };
    match store.end_attempt(lease, end, now).await {
        Err(Error::Conflict(reason)) => match store.keep_late_evidence(lease, late, now).await {
            Ok(kept) if kept.commit_sha.is_some() || kept.usage != Usage::default() => {
                Err(Error::conflict(format!(
                    "{reason}: the task is not changed, and the commit and evidence are kept on attempt {}",
                    kept.attempt_number
                )))
            }
            _ => Err(Error::Conflict(reason)),
        },
        ended => ended,
    }
}
