//! How an attempt ends: reported by its runner with its evidence
//! ([`plan_attempt_end`]), or by its lease running out ([`plan_lease_expiry`]).

use super::activity::count_verification;
use super::*;
use crate::model::{
    AttemptChanges, ChangeReport, ExceptionSeverity, ExceptionType, LogType, NewException,
    check_backend_and_model,
};
use crate::retry::{self, RetryPolicy};

/// A runner's last report on its attempt: the outcome, with the evidence that goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// [`TaskAction::Complete`], [`TaskAction::Fail`] or [`TaskAction::AcknowledgeCancel`].
    pub action: TaskAction,
    /// The verification run of the attempt's change, if there was one.
    pub verification: Option<NewVerificationResult>,
    /// The files the attempt changed and its patch, if the runner reported them.
    pub changes: Option<ChangeReport>,
    /// The agent backend that ran the attempt, if the runner reported it.
    pub backend: Option<String>,
    /// The model the agent ran on, if the runner reported it.
    pub model: Option<String>,
    /// Entries closing the attempt's log, from its agent and about its task.
    pub logs: Vec<NewAgentLog>,
    /// How a failure is followed up: a failed verification is retried as this policy
    /// says, with an exception for a human where it asks for review or allows no retry;
    /// any other failure raises an exception for a human.
    pub retry_policy: RetryPolicy,
    /// The attempt failed because its change touches paths other agents hold: the
    /// CONFLICT_DETECTED exception raised when its locks were refused says so, and no
    /// other is raised.
    pub lock_conflict: bool,
}

impl AttemptEnd {
    /// Checks what can be checked without the task: the action ends an attempt, and the
    /// backend, the model, the verification result and the changes are well formed.
    pub fn validate(&self) -> Result<()> {
        if self.action.idempotent_outcome().is_none() {
            return Err(Error::invalid(
                "action",
                "an attempt ends in a completion, a failure or an acknowledged cancellation",
            ));
        }
        check_backend_and_model(self.backend.as_deref(), self.model.as_deref())?;
        if let Some(result) = &self.verification {
            result.validate()?;
        }
        match &self.changes {
            Some(changes) => changes.validate(),
            None => Ok(()),
        }
    }

    /// The type of the exception this end concerns, if any: the store loads the task's
    /// unresolved exception of that type. A failure counts it again instead of raising a
    /// second; a completion resolves the AGENT_STUCK exception an earlier attempt raised.
    pub fn follow_up_exception(&self) -> Option<ExceptionType> {
        match (&self.action, &self.verification) {
            (TaskAction::Complete { .. }, _) => Some(ExceptionType::AgentStuck),
            (TaskAction::Fail { .. }, _) if self.lock_conflict => None,
            (TaskAction::Fail { .. }, Some(_)) => Some(ExceptionType::VerificationFailed),
            (TaskAction::Fail { .. }, None) => Some(ExceptionType::UnknownError),
            _ => None,
        }
    }
}

/// Decides what ending an attempt writes, all in one change: the outcome as
/// [`plan_task_action`] decides it with the backend and model that ran the attempt, the
/// verification result, the changes, the closing log entries, for a failure its follow-up
/// (see [`AttemptEnd::retry_policy`]; none when the task was asked to stop), and for a
/// completion the resolution of the task's AGENT_STUCK exception. `unresolved` is the
/// task's unresolved exception of the type [`AttemptEnd::follow_up_exception`] names. The
/// same end reported again under the same lease finds the outcome recorded, and is a
/// no-op that records nothing a second time.
pub fn plan_attempt_end(
    context: TaskContext,
    end: AttemptEnd,
    unresolved: Option<Exception>,
    lease: &LeaseRef,
    now: Timestamp,
) -> Result<Change> {
    end.validate()?;
    let AttemptEnd {
        action,
        verification,
        changes,
        backend,
        model,
        logs,
        retry_policy,
        lock_conflict,
    } = end;
    let running = context.task.clone();
    let mut change = plan_task_action(context, action, Some(lease), now)?;
    if change.noop {
        return Ok(change);
    }
    if let Some(attempt) = change.attempt.as_mut() {
        attempt.backend = backend;
        attempt.model = model;
    }
    let mut ended = change
        .task
        .take()
        .ok_or_else(|| Error::backend("an attempt's end planned no task"))?;
    let mut events = Vec::new();
    if let Some(result) = verification {
        let (recorded, event) = count_verification(&mut ended, result, now);
        change.verification = Some(recorded);
        events.push(event);
    }
    change.attempt_changes = changes.map(|changes| AttemptChanges {
        task_id: lease.task_id,
        attempt_number: lease.attempt,
        created_at: now,
        changes,
    });
    if !logs.is_empty() {
        let (stored, log_events) = plan_attempt_logs(&running, lease, logs, now)?;
        change.logs = stored;
        events.extend(log_events);
    }
    events.append(&mut change.events);
    // A failure reported while a cancellation was pending is not followed up: nobody
    // wants the task run again, nor asked about it.
    if ended.status == TaskStatus::Failed && !running.cancel_requested && !lock_conflict {
        let (task, follow_up) = follow_up_failure(
            ended,
            change.verification.as_ref(),
            &retry_policy,
            unresolved,
            now,
        )?;
        ended = task;
        change.exception = follow_up.exception;
        events.extend(follow_up.events);
    } else if ended.status == TaskStatus::Completed
        && let Some(stuck) = unresolved
    {
        let resolved = plan_exception_decision(
            stuck,
            ExceptionDecision {
                status: ExceptionStatus::Resolved,
                resolved_by: Some("orchestrator".to_owned()),
                resolution_notes: Some(format!("Attempt {} completed the task.", lease.attempt)),
            },
            now,
        )?;
        change.exception = resolved.exception;
        events.extend(resolved.events);
    }
    change.task = Some(ended);
    change.events = events;
    Ok(change)
}

/// What follows a failed attempt: with a failed verification, a retry as `policy` says
/// (the task queued again in the same write, so it keeps the revision of that write) and
/// an exception where the policy asks for review or allows no retry; without one, an
/// exception for a human. Returns the task and the exception's change.
fn follow_up_failure(
    failed: Task,
    verification: Option<&VerificationResult>,
    policy: &RetryPolicy,
    unresolved: Option<Exception>,
    now: Timestamp,
) -> Result<(Task, Change)> {
    let Some(verification) = verification else {
        let mut exception = NewException::new(
            ExceptionType::UnknownError,
            ExceptionSeverity::Error,
            "Task failed",
        );
        exception.description = failed.last_error.clone();
        exception.suggested_action = Some("Review the agent logs and retry the task".into());
        exception.task_id = Some(failed.id);
        exception.agent_id = failed.assigned_agent_id;
        return Ok((failed, plan_exception(exception, unresolved, now)?));
    };
    match retry::decide(&failed, Some(verification), policy, now) {
        Ok(info) => {
            let context = TaskContext {
                task: failed.clone(),
                agent: None,
                attempt: None,
                unfinished_dependencies: Vec::new(),
                lock_conflicts: Vec::new(),
            };
            let retry = TaskAction::Retry {
                not_before: Some(info.not_before),
                note: None,
            };
            let requeue = plan_task_action(context, retry, None, now)?;
            let mut requeued = requeue
                .task
                .ok_or_else(|| Error::backend("a retry planned no task"))?;
            requeued.revision = failed.revision;
            let mut follow_up = Change {
                events: requeue.events,
                ..Change::default()
            };
            if info.requires_human_review {
                let note = info.review_note();
                let exception = retry::review_exception(&failed, ExceptionSeverity::Warning, note);
                let raised = plan_exception(exception, unresolved, now)?;
                follow_up.exception = raised.exception;
                follow_up.events.extend(raised.events);
            }
            Ok((requeued, follow_up))
        }
        Err(Error::Conflict(reason)) => {
            let exception = retry::review_exception(&failed, ExceptionSeverity::Error, reason);
            Ok((failed, plan_exception(exception, unresolved, now)?))
        }
        Err(other) => Err(other),
    }
}

/// Ends an attempt whose lease ran out ([`TaskAction::ExpireLease`]) and raises (or
/// counts again) the AGENT_STUCK exception for it, in one change. `unresolved` is the
/// task's unresolved AGENT_STUCK exception, if any.
pub fn plan_lease_expiry(
    context: TaskContext,
    unresolved: Option<Exception>,
    now: Timestamp,
) -> Result<Change> {
    let agent = context.agent.clone();
    let expired_at = context.task.lease_expires_at;
    let attempt = context.task.attempt;
    let mut change = plan_task_action(context, TaskAction::ExpireLease, None, now)?;
    let task = change
        .task
        .as_ref()
        .ok_or_else(|| Error::backend("lease expiry planned no task"))?;
    let agent_name = agent
        .as_ref()
        .map(|a| a.name.clone().unwrap_or_else(|| a.id.to_string()))
        .unwrap_or_else(|| "unknown agent".to_owned());
    let outcome = match task.status {
        TaskStatus::Queued => "the task went back to the queue",
        TaskStatus::Failed => "the task failed: all its attempts are used",
        _ => "the task was cancelled as requested",
    };
    let mut stuck = NewException::new(
        ExceptionType::AgentStuck,
        ExceptionSeverity::Error,
        format!("Agent stuck: {agent_name}"),
    );
    stuck.description = Some(format!(
        "Attempt {attempt} of task \"{}\" sent no heartbeat before its lease ran out{}; {outcome}.",
        task.title,
        expired_at.map(|at| format!(" at {at}")).unwrap_or_default()
    ));
    stuck.suggested_action =
        Some("Check the runner machine; the slot recovers when its runner calls in again".into());
    stuck.agent_id = agent.map(|a| a.id);
    stuck.task_id = Some(task.id);
    let raised = plan_exception(stuck, unresolved, now)?;
    change.exception = raised.exception;
    change.events.extend(raised.events);
    Ok(change)
}

/// What a completion that arrived after its attempt's lease was lost leaves on record:
/// the commit, the usage, the backend and the model go on the attempt itself, the rest
/// into a log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvidence {
    pub commit_sha: Option<String>,
    pub usage: Usage,
    pub backend: Option<String>,
    pub model: Option<String>,
    /// The log entry's text and metadata (summary or error, diff stats, verification).
    pub content: String,
    pub metadata: serde_json::Value,
}

impl LateEvidence {
    /// Whether there is anything to keep: a commit, or model usage that was paid for.
    fn is_empty(&self) -> bool {
        self.commit_sha.is_none() && self.usage == Usage::default()
    }
}

/// Keeps the evidence of a completion that arrived after its attempt's lease was lost
/// (run out, or the task given to another attempt): the commit, the usage, the backend
/// and the model on `attempt`,
/// the attempt `lease` names, and a log entry, changing nothing in the task. Refused as
/// a conflict when `lease` is live (the attempt ends as usual then) or does not name
/// `attempt` with its token. Kept once: sent again, or with nothing worth keeping, it is
/// a no-op.
pub fn plan_late_evidence(
    task: &Task,
    attempt: TaskAttempt,
    evidence: LateEvidence,
    lease: &LeaseRef,
    now: Timestamp,
) -> Result<Change> {
    check_backend_and_model(evidence.backend.as_deref(), evidence.model.as_deref())?;
    if check_lease(task, lease, now).is_ok() {
        return Err(Error::conflict(format!(
            "the lease of attempt {} of task {} is live: end the attempt with it",
            lease.attempt, task.id
        )));
    }
    if attempt.task_id != lease.task_id
        || attempt.attempt_number != lease.attempt
        || attempt.lease_token != Some(lease.lease_token)
    {
        return Err(Error::conflict(format!(
            "attempt {} of task {} was not held with this lease",
            lease.attempt, lease.task_id
        )));
    }
    let kept_already = attempt.commit_sha.is_some() || attempt.usage != Usage::default();
    if kept_already || evidence.is_empty() {
        return Ok(Change {
            attempt: Some(attempt),
            noop: true,
            ..Change::default()
        });
    }
    let log = NewAgentLog {
        agent_id: attempt.agent_id,
        task_id: Some(task.id),
        log_type: LogType::StatusChange,
        content: evidence.content,
        metadata: Some(evidence.metadata),
    };
    let (mut logs, events) = plan_logs(vec![log], now)?;
    for log in &mut logs {
        log.attempt = Some(attempt.attempt_number);
    }
    let mut kept = attempt;
    kept.commit_sha = evidence.commit_sha;
    kept.usage = evidence.usage;
    kept.backend = evidence.backend;
    kept.model = evidence.model;
    Ok(Change {
        attempt: Some(kept),
        logs,
        events,
        ..Change::default()
    })
}
