//! Agent slots, runner sessions, logs, verification results and event pages.

use super::task::agent_status_event;
use super::*;

/// Something that happens to an agent slot outside of a task's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAction {
    /// Pause the work; the runner is told at its next heartbeat.
    Pause,
    /// Resume paused work.
    Resume,
    /// A stuck slot's runner called in again.
    Recover,
    /// Retire a slot that runs nothing.
    Retire,
    /// Mark a slot that runs nothing as broken.
    Fail,
}

impl AgentAction {
    fn event(self) -> AgentEvent {
        match self {
            Self::Pause => AgentEvent::Pause,
            Self::Resume => AgentEvent::Resume,
            Self::Recover => AgentEvent::Recover,
            Self::Retire => AgentEvent::Retire,
            Self::Fail => AgentEvent::Fail,
        }
    }
}

/// Decides what `action` writes for `agent`.
pub fn plan_agent_action(agent: Agent, action: AgentAction, now: Timestamp) -> Result<Change> {
    let mut next = agent.clone();
    next.status = agent_state::transition(agent.status, action.event())?;
    if matches!(action, AgentAction::Retire | AgentAction::Fail) {
        next.completed_at = Some(now);
    }
    if matches!(action, AgentAction::Pause | AgentAction::Resume) {
        // A human's pause or resume counts as activity: the quiet that follows a long
        // pause is not a stall.
        next.last_activity_at = Some(now);
    }
    next.revision += 1;
    next.updated_at = now;
    Ok(Change {
        events: vec![agent_status_event(&next, agent.status)],
        agent: Some(next),
        ..Change::default()
    })
}

/// Records a verification run of `task`: numbers it, and sets the task's verification
/// status. The task's lifecycle status is not touched; the runner reports the outcome.
/// A runner's report carries its `lease`, which must be live.
pub fn plan_verification(
    task: Task,
    result: NewVerificationResult,
    lease: Option<&LeaseRef>,
    now: Timestamp,
) -> Result<Change> {
    result.validate()?;
    if let Some(lease) = lease {
        check_lease(&task, lease, now)?;
    }
    let mut next = task;
    let (recorded, event) = count_verification(&mut next, result, now);
    next.revision += 1;
    next.updated_at = now;
    Ok(Change {
        task: Some(next),
        verification: Some(recorded),
        events: vec![event],
        ..Change::default()
    })
}

/// Counts a (validated) verification run on `task` and sets its verification status;
/// returns the numbered result and its event. The caller bumps the task's revision.
pub(super) fn count_verification(
    task: &mut Task,
    result: NewVerificationResult,
    now: Timestamp,
) -> (VerificationResult, NewEvent) {
    task.verification_attempts += 1;
    task.verification_status = if result.passed {
        VerificationStatus::Passed
    } else if result.unverified {
        VerificationStatus::Unverified
    } else {
        VerificationStatus::Failed
    };
    let recorded = result.into_result(
        VerificationResultId::new(),
        task.id,
        task.verification_attempts,
        now,
    );
    let event = NewEvent::new(EventKind::VerificationRecorded)
        .task(task.id)
        .agent(task.assigned_agent_id)
        .payload(json!({
            "passed": recorded.passed,
            "unverified": recorded.unverified,
            "attemptNumber": recorded.attempt_number,
            "confidenceScore": recorded.confidence_score,
        }));
    (recorded, event)
}

/// Decides what `event` writes for a runner session.
pub fn plan_runner_session_event(
    session: RunnerSession,
    event: RunnerSessionEvent,
    now: Timestamp,
) -> Result<Change> {
    let mut next = session.clone();
    next.status = runner_state::transition(session.status, event)?;
    next.updated_at = now;
    if event == RunnerSessionEvent::Seen {
        next.last_seen_at = now;
    }
    let events = if next.status == session.status {
        Vec::new()
    } else {
        vec![
            NewEvent::new(EventKind::RunnerStatusChanged)
                .runner_session(Some(next.id))
                .payload(json!({"from": session.status, "to": next.status, "event": event})),
        ]
    };
    Ok(Change {
        runner_session: Some(next),
        events,
        ..Change::default()
    })
}

/// Decides what keeping `identity` as what the runner of `session` states about itself
/// writes: the session with it, and a `runner.updated` event; nothing when the session
/// holds it already. A revoked session states nothing any more (`Conflict`).
pub fn plan_runner_identity(
    session: RunnerSession,
    identity: RunnerIdentity,
    now: Timestamp,
) -> Result<Change> {
    identity.validate()?;
    if session.status == RunnerSessionStatus::Revoked {
        return Err(Error::conflict(format!(
            "runner session {} is revoked",
            session.id
        )));
    }
    if session.identity() == identity {
        return Ok(Change {
            runner_session: Some(session),
            noop: true,
            ..Change::default()
        });
    }
    let payload = json!(identity);
    let mut next = session;
    next.set_identity(identity);
    next.updated_at = now;
    Ok(Change {
        events: vec![
            NewEvent::new(EventKind::RunnerUpdated)
                .runner_session(Some(next.id))
                .payload(payload),
        ],
        runner_session: Some(next),
        ..Change::default()
    })
}

/// Stamps a batch of log entries and makes one event per agent (and task) concerned.
pub fn plan_logs(logs: Vec<NewAgentLog>, now: Timestamp) -> Result<(Vec<AgentLog>, Vec<NewEvent>)> {
    use crate::store::MAX_LOG_BATCH;
    if logs.is_empty() {
        return Err(Error::invalid("logs", "at least one entry is required"));
    }
    if logs.len() > MAX_LOG_BATCH {
        return Err(Error::invalid(
            "logs",
            format!(
                "at most {MAX_LOG_BATCH} entries per batch (got {})",
                logs.len()
            ),
        ));
    }
    let stored: Vec<_> = logs
        .into_iter()
        .map(|log| log.into_log(crate::ids::AgentLogId::new(), now))
        .collect();
    let mut counts: Vec<((AgentId, Option<TaskId>), u64)> = Vec::new();
    for log in &stored {
        let key = (log.agent_id, log.task_id);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) => *count += 1,
            None => counts.push((key, 1)),
        }
    }
    let events = counts
        .into_iter()
        .map(|((agent, task), count)| {
            let event = NewEvent::new(EventKind::LogsAppended)
                .agent(Some(agent))
                .payload(json!({"count": count}));
            match task {
                Some(task) => event.task(task),
                None => event,
            }
        })
        .collect();
    Ok((stored, events))
}

/// Plans the log entries a runner reports on the live attempt of `task`: the lease must be
/// live, and every entry must come from the task's agent and be about the task.
pub fn plan_attempt_logs(
    task: &Task,
    lease: &LeaseRef,
    logs: Vec<NewAgentLog>,
    now: Timestamp,
) -> Result<(Vec<AgentLog>, Vec<NewEvent>)> {
    check_lease(task, lease, now)?;
    for log in &logs {
        if Some(log.agent_id) != task.assigned_agent_id {
            return Err(Error::conflict(format!(
                "agent {} does not hold task {}",
                log.agent_id, task.id
            )));
        }
        if log.task_id != Some(task.id) {
            return Err(Error::invalid(
                "taskId",
                format!("every entry must be about task {}", task.id),
            ));
        }
    }
    let (mut stored, events) = plan_logs(logs, now)?;
    for log in &mut stored {
        log.attempt = Some(lease.attempt);
    }
    Ok((stored, events))
}

/// The events recording a new agent slot and a new runner session.
pub fn agent_created_event(agent: &Agent) -> NewEvent {
    NewEvent::new(EventKind::AgentCreated)
        .agent(Some(agent.id))
        .runner_session(agent.runner_session_id)
}

/// The event recording a new runner session.
pub fn runner_connected_event(session: &RunnerSession) -> NewEvent {
    NewEvent::new(EventKind::RunnerConnected)
        .runner_session(Some(session.id))
        .payload(json!({"name": session.name}))
}

/// Checks the page size of an `events_since` call.
pub fn check_events_limit(limit: u32) -> Result<()> {
    use crate::store::MAX_EVENTS_PAGE;
    if limit == 0 || limit > MAX_EVENTS_PAGE {
        return Err(Error::invalid(
            "limit",
            format!("must be 1 to {MAX_EVENTS_PAGE}, got {limit}"),
        ));
    }
    Ok(())
}

/// Checks the page size of a verification history call.
pub fn check_verification_limit(limit: u32) -> Result<()> {
    use crate::store::MAX_VERIFICATION_PAGE;
    if limit == 0 || limit > MAX_VERIFICATION_PAGE {
        return Err(Error::invalid(
            "limit",
            format!("must be 1 to {MAX_VERIFICATION_PAGE}, got {limit}"),
        ));
    }
    Ok(())
}
