//! The exception inbox: raising (or counting again), a person's decisions, and the
//! exceptions the supervisor raises.

use super::*;

/// A person's decision on an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionDecision {
    pub status: ExceptionStatus,
    pub resolved_by: Option<String>,
    pub resolution_notes: Option<String>,
}

impl ExceptionDecision {
    /// Checks the free-text fields against their length limits.
    pub fn validate(&self) -> Result<()> {
        use crate::model::check_max_chars;
        if let Some(by) = &self.resolved_by {
            check_max_chars("resolvedBy", by, crate::model::MAX_RESOLVED_BY_CHARS)?;
        }
        if let Some(notes) = &self.resolution_notes {
            check_max_chars(
                "resolutionNotes",
                notes,
                crate::model::MAX_RESOLUTION_NOTES_CHARS,
            )?;
        }
        Ok(())
    }
}

/// Decides what `decision` writes for `exception`.
pub fn plan_exception_decision(
    exception: Exception,
    decision: ExceptionDecision,
    now: Timestamp,
) -> Result<Change> {
    decision.validate()?;
    let event = ExceptionEvent::toward(decision.status);
    let mut next = exception.clone();
    next.status = exception_state::transition(exception.status, event)?;
    if let Some(by) = decision.resolved_by.filter(|s| !s.is_empty()) {
        next.resolved_by = Some(by);
    }
    if let Some(notes) = decision.resolution_notes.filter(|s| !s.is_empty()) {
        next.resolution_notes = Some(notes);
    }
    next.resolved_at = match next.status {
        ExceptionStatus::Resolved => Some(now),
        ExceptionStatus::Open => None,
        _ => next.resolved_at,
    };
    next.updated_at = now;
    let event = NewEvent::new(EventKind::ExceptionStatusChanged)
        .exception(next.id)
        .agent(next.agent_id)
        .payload(json!({"from": exception.status, "to": next.status, "event": event}));
    let event = match next.task_id {
        Some(task) => event.task(task),
        None => event,
    };
    Ok(Change {
        exception: Some(next),
        events: vec![event],
        ..Change::default()
    })
}

/// Raises `new`, or — when `unresolved` is an unresolved exception of the same type for
/// the same task — counts one more occurrence of it instead.
pub fn plan_exception(
    new: crate::model::NewException,
    unresolved: Option<Exception>,
    now: Timestamp,
) -> Result<Change> {
    new.validate()?;
    let exception = match unresolved {
        Some(mut existing) => {
            existing.occurrences = existing.occurrences.saturating_add(1);
            existing.last_occurred_at = now;
            existing.updated_at = now;
            existing
        }
        None => new.into_exception(crate::ids::ExceptionId::new(), now),
    };
    let event = NewEvent::new(EventKind::ExceptionOpened)
        .exception(exception.id)
        .agent(exception.agent_id)
        .payload(json!({
            "type": exception.exception_type,
            "severity": exception.severity,
            "occurrences": exception.occurrences,
        }));
    let event = match exception.task_id {
        Some(task) => event.task(task),
        None => event,
    };
    Ok(Change {
        exception: Some(exception),
        events: vec![event],
        ..Change::default()
    })
}

/// The exception for a running task whose agent went quiet although its lease is kept
/// alive (heartbeats, but no agent activity).
pub fn stalled_exception(task: &Task, quiet_since: Timestamp) -> crate::model::NewException {
    let mut stalled = crate::model::NewException::new(
        crate::model::ExceptionType::AgentStuck,
        crate::model::ExceptionSeverity::Warning,
        format!("Agent stalled on \"{}\"", truncate_title(&task.title)),
    );
    stalled.description = Some(format!(
        "The runner keeps the lease alive, but the agent has reported nothing since {quiet_since}."
    ));
    stalled.suggested_action =
        Some("Look at the agent's logs; cancel the task if it is not making progress".into());
    stalled.agent_id = task.assigned_agent_id;
    stalled.task_id = Some(task.id);
    stalled
}

/// The type of the exception that reports a blocked task: the catch-all, as no other type
/// fits. At most one exception of a type is open per task, so a task with another open
/// UNKNOWN_ERROR (its own failure, say) already has an open item for a human, which a
/// blocked report would only count once more.
pub const BLOCKED_TASK_EXCEPTION: crate::model::ExceptionType =
    crate::model::ExceptionType::DependencyFailed;

/// The exception for a queued task that waits, directly or through other queued tasks,
/// for a dependency that will never complete: `dependency`, `status` and, if known,
/// its `title`.
pub fn blocked_exception(
    task: &Task,
    dependency: TaskId,
    status: TaskStatus,
    title: Option<&str>,
) -> crate::model::NewException {
    let mut blocked = crate::model::NewException::new(
        BLOCKED_TASK_EXCEPTION,
        crate::model::ExceptionSeverity::Warning,
        format!("Task blocked: \"{}\"", truncate_title(&task.title)),
    );
    let how = if task.depends_on.contains(&dependency) {
        ""
    } else {
        " (through the queued tasks it waits for)"
    };
    let named = title
        .map(|title| format!(" (\"{}\")", truncate_title(title)))
        .unwrap_or_default();
    blocked.description = Some(format!(
        "It depends on task {dependency}{named}{how}, which is {status}; it cannot be claimed \
         until that task is retried and completes."
    ));
    blocked.suggested_action = Some(
        "Retry or reopen the dependency, release this task from it (PATCH dependsOn), or \
         cancel this task"
            .into(),
    );
    blocked.task_id = Some(task.id);
    blocked
}

fn truncate_title(title: &str) -> String {
    const MAX: usize = 200;
    if title.chars().count() <= MAX {
        title.to_owned()
    } else {
        format!("{}…", title.chars().take(MAX).collect::<String>())
    }
}
