//! The task lifecycle: claims, runner reports, leases, cancellation, retries, edits,
//! creation and deletion (an attempt's end is in `attempt_end`).

use super::*;

/// Longest failure reason kept on a task or attempt, in characters.
const MAX_REASON_CHARS: usize = 10_000;

/// The rows a task operation needs, as loaded by the store.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task: Task,
    /// The agent bound to the task, or for [`TaskAction::Assign`] the agent to bind.
    pub agent: Option<Agent>,
    /// The task's latest attempt (number `task.attempt`), if it ever had one.
    pub attempt: Option<TaskAttempt>,
    /// For [`TaskAction::Assign`]: the dependencies that are not COMPLETED, with their status.
    pub unfinished_dependencies: Vec<(TaskId, TaskStatus)>,
    /// For [`TaskAction::Assign`]: live locks of others on the task's files hint.
    pub lock_conflicts: Vec<LockConflict>,
}

/// Something that happens to a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    /// Bind the task to an idle agent and start a new attempt under a lease.
    Assign {
        agent_id: AgentId,
        runner_session_id: Option<RunnerSessionId>,
        lease_ttl: Duration,
    },
    /// The agent reports progress (needs the lease).
    Start,
    /// The agent finished; verification starts (needs the lease).
    BeginVerification,
    /// The attempt succeeded (needs the lease; repeating it is harmless).
    Complete {
        commit_sha: Option<String>,
        usage: Usage,
    },
    /// The attempt failed (needs the lease; repeating it is harmless).
    Fail { reason: String, usage: Usage },
    /// The runner stopped after a cancellation request (needs the lease).
    AcknowledgeCancel,
    /// The runner is stopping before the attempt finished and gives the task back: it is
    /// queued again (or cancelled, if that was asked), and the attempt does not count
    /// against its attempts (needs the lease; repeating it is harmless).
    GiveBack { usage: Usage },
    /// The lease ran out: requeue, or fail once the attempts are used up.
    ExpireLease,
    /// Cancel a queued task, or ask the runner of a running one to stop.
    Cancel,
    /// Put a failed task back in the queue, optionally not before a given time (with one
    /// more attempt if all are used), with a person's note for the next attempts.
    Retry {
        not_before: Option<Timestamp>,
        note: Option<String>,
    },
    /// Put a cancelled task back in the queue (with one more attempt if all are used).
    Reopen,
}

impl TaskAction {
    /// Whether only the holder of the live attempt may do this.
    pub fn needs_lease(&self) -> bool {
        matches!(
            self,
            Self::Start
                | Self::BeginVerification
                | Self::Complete { .. }
                | Self::Fail { .. }
                | Self::AcknowledgeCancel
                | Self::GiveBack { .. }
        )
    }

    /// The outcome a repeat of this action finds already recorded on the attempt.
    pub(super) fn idempotent_outcome(&self) -> Option<AttemptOutcome> {
        match self {
            Self::Complete { .. } => Some(AttemptOutcome::Completed),
            Self::Fail { .. } => Some(AttemptOutcome::Failed),
            Self::AcknowledgeCancel => Some(AttemptOutcome::Cancelled),
            Self::GiveBack { .. } => Some(AttemptOutcome::Returned),
            _ => None,
        }
    }
}

/// Decides what `action` writes. `lease` must be given for actions that
/// [need it](TaskAction::needs_lease); a stale, unknown or expired lease is a
/// [`Error::Conflict`] and writes nothing.
pub fn plan_task_action(
    context: TaskContext,
    action: TaskAction,
    lease: Option<&LeaseRef>,
    now: Timestamp,
) -> Result<Change> {
    let TaskContext {
        task,
        agent,
        attempt,
        unfinished_dependencies,
        lock_conflicts,
    } = context;
    if action.needs_lease() {
        let lease = lease.ok_or_else(|| {
            Error::conflict(
                "this runner action needs the attempt's lease (taskId, attempt, leaseToken)",
            )
        })?;
        if let Some(unchanged) = repeated_report(&task, attempt.as_ref(), &action, lease) {
            return Ok(unchanged);
        }
        check_lease(&task, lease, now)?;
    }

    let from = task.status;
    let mut next = task.clone();
    let mut agent_next = agent.clone();
    let mut attempt_next = attempt.clone();
    let mut lock_grants = Vec::new();
    let mut events = Vec::new();
    let event = match &action {
        TaskAction::Assign {
            agent_id,
            runner_session_id,
            lease_ttl,
        } => {
            task_state::transition(task.status, TaskEvent::Assign)?;
            check_claimable(&task, &unfinished_dependencies, now)?;
            check_lock_conflicts(&task, &lock_conflicts)?;
            let slot = agent
                .as_ref()
                .filter(|a| a.id == *agent_id)
                .ok_or_else(|| Error::not_found("agent", agent_id))?;
            let lease_token = LeaseToken::new();
            let expires = now.add(*lease_ttl);
            let paths = crate::lock::parse_paths(&task.files_hint, "filesHint")?;
            lock_grants = crate::lock::grants_for(
                &paths,
                *agent_id,
                Some(task.id),
                LockMode::Exclusive,
                expires,
                now,
            );
            if !lock_grants.is_empty() {
                events.push(
                    NewEvent::new(EventKind::LockAcquired)
                        .task(task.id)
                        .agent(Some(*agent_id))
                        .payload(
                            json!({"paths": paths.iter().map(|p| p.key()).collect::<Vec<_>>()}),
                        ),
                );
            }
            next.attempt += 1;
            next.attempts_used += 1;
            next.assigned_agent_id = Some(*agent_id);
            next.assigned_at = Some(now);
            next.branch_name = Some(branch_name(task.id));
            next.lease_token = Some(lease_token);
            next.lease_expires_at = Some(expires);
            next.cancel_requested = false;
            let mut bound = slot.clone();
            bound.status = agent_state::transition(slot.status, AgentEvent::Assign)?;
            bound.current_task_id = Some(task.id);
            bound.branch_name = next.branch_name.clone();
            bound.started_at = Some(now);
            bound.completed_at = None;
            bound.last_activity_at = Some(now);
            agent_next = Some(bound);
            attempt_next = Some(TaskAttempt {
                id: AttemptId::new(),
                task_id: task.id,
                attempt_number: next.attempt,
                agent_id: *agent_id,
                runner_session_id: *runner_session_id,
                lease_token: Some(lease_token),
                lease_expires_at: expires,
                started_at: now,
                ended_at: None,
                outcome: AttemptOutcome::Running,
                failure_reason: None,
                commit_sha: None,
                usage: Usage::default(),
                backend: None,
                model: None,
            });
            TaskEvent::Assign
        }
        TaskAction::Start => {
            touch(&mut agent_next, now);
            TaskEvent::Start
        }
        TaskAction::BeginVerification => {
            touch(&mut agent_next, now);
            TaskEvent::BeginVerification
        }
        TaskAction::Complete { commit_sha, usage } => {
            usage.validate()?;
            next.completed_at = Some(now);
            next.commit_sha = commit_sha.clone().or(next.commit_sha);
            end_attempt(
                &mut next,
                &mut attempt_next,
                AttemptOutcome::Completed,
                None,
                *usage,
                now,
            );
            if let Some(sha) = commit_sha
                && let Some(a) = attempt_next.as_mut()
            {
                a.commit_sha = Some(sha.clone());
            }
            release_agent(&mut agent_next, Some(true), usage.total_tokens(), now)?;
            TaskEvent::Complete
        }
        TaskAction::Fail { reason, usage } => {
            usage.validate()?;
            let reason = cap_reason(reason);
            next.last_error = Some(reason.clone());
            end_attempt(
                &mut next,
                &mut attempt_next,
                AttemptOutcome::Failed,
                Some(reason),
                *usage,
                now,
            );
            release_agent(&mut agent_next, Some(false), usage.total_tokens(), now)?;
            TaskEvent::Fail
        }
        TaskAction::AcknowledgeCancel => {
            if !task.cancel_requested {
                return Err(Error::conflict(format!(
                    "task {} has no pending cancellation to acknowledge",
                    task.id
                )));
            }
            end_attempt(
                &mut next,
                &mut attempt_next,
                AttemptOutcome::Cancelled,
                None,
                Usage::default(),
                now,
            );
            next.cancel_requested = false;
            release_agent(&mut agent_next, None, 0, now)?;
            TaskEvent::Cancel
        }
        TaskAction::GiveBack { usage } => {
            usage.validate()?;
            end_attempt(
                &mut next,
                &mut attempt_next,
                AttemptOutcome::Returned,
                Some("the runner stopped and gave the task back".to_owned()),
                *usage,
                now,
            );
            next.attempts_used = next.attempts_used.saturating_sub(1);
            release_agent(&mut agent_next, None, usage.total_tokens(), now)?;
            if task.cancel_requested {
                TaskEvent::Cancel
            } else {
                unassign(&mut next);
                TaskEvent::Requeue
            }
        }
        TaskAction::ExpireLease => {
            match task.lease_expires_at {
                Some(expiry) if task.status.is_running() && expiry <= now => {}
                Some(expiry) if task.status.is_running() => {
                    return Err(Error::conflict(format!(
                        "the lease of task {} runs until {expiry}",
                        task.id
                    )));
                }
                _ => {
                    return Err(Error::conflict(format!(
                        "task {} has no running attempt (it is {})",
                        task.id, task.status
                    )));
                }
            }
            let reason = format!(
                "lease of attempt {} expired without a heartbeat",
                task.attempt
            );
            // Usage a late completion already put on the attempt stays.
            let usage = attempt_next.as_ref().map(|a| a.usage).unwrap_or_default();
            end_attempt(
                &mut next,
                &mut attempt_next,
                AttemptOutcome::Expired,
                Some(reason.clone()),
                usage,
                now,
            );
            if let Some(slot) = agent_next.as_mut() {
                slot.status = agent_state::transition(slot.status, AgentEvent::MarkStuck)?;
                slot.current_task_id = None;
                slot.completed_at = Some(now);
            }
            if task.cancel_requested {
                TaskEvent::Cancel
            } else if task.attempts_used >= task.max_attempts {
                next.last_error = Some(format!(
                    "{reason}; all {} attempts are used",
                    task.max_attempts
                ));
                TaskEvent::Fail
            } else {
                unassign(&mut next);
                TaskEvent::Requeue
            }
        }
        TaskAction::Cancel => {
            if task.status.is_running() {
                next.cancel_requested = true;
                TaskEvent::RequestCancel
            } else {
                TaskEvent::Cancel
            }
        }
        TaskAction::Retry { not_before, note } => {
            next.retry_count += 1;
            // A new note replaces the last; an automatic retry keeps the person's.
            if let Some(note) = note {
                next.retry_note = Some(note.clone());
            }
            grant_an_attempt(&mut next);
            next.not_before = *not_before;
            next.verification_status = VerificationStatus::Pending;
            next.completed_at = None;
            next.commit_sha = None;
            next.pr_url = None;
            unassign(&mut next);
            TaskEvent::Retry
        }
        TaskAction::Reopen => {
            grant_an_attempt(&mut next);
            next.cancel_requested = false;
            next.completed_at = None;
            unassign(&mut next);
            TaskEvent::Reopen
        }
    };
    next.status = task_state::transition(from, event)?;
    if event == TaskEvent::RequestCancel && task.cancel_requested {
        // Asking twice changes nothing.
        return Ok(Change::default_with_task(task));
    }
    next.revision += 1;
    next.updated_at = now;

    let ends_attempt = from.is_running() && !next.status.is_running();
    events.insert(0, task_status_event(&next, from, event));
    if ends_attempt {
        events.push(
            NewEvent::new(EventKind::LockReleased)
                .task(task.id)
                .agent(task.assigned_agent_id)
                .payload(json!({"reason": event})),
        );
    }
    let agent_changed = agent_next != agent;
    if let Some(slot) = agent_next.as_mut().filter(|_| agent_changed) {
        let previous = agent.as_ref().map_or(slot.status, |a| a.status);
        slot.revision += 1;
        slot.updated_at = now;
        if previous != slot.status {
            events.push(agent_status_event(slot, previous));
        }
    }
    Ok(Change {
        task: Some(next),
        agent: agent_next.filter(|_| agent_changed),
        attempt: attempt_next.filter(|a| Some(a) != attempt.as_ref()),
        lock_grants,
        release_task_locks: ends_attempt.then_some(task.id),
        events,
        ..Change::default()
    })
}

/// Extends the live attempt's lease (and its locks) to `now + ttl`, and says what the
/// runner should do next. A stale, unknown or expired lease is a `Conflict`.
pub fn plan_heartbeat(
    context: TaskContext,
    lease: &LeaseRef,
    ttl: Duration,
    now: Timestamp,
) -> Result<(Change, crate::coordination::HeartbeatAck)> {
    use crate::coordination::{ControlSignal, HeartbeatAck, check_lease_ttl};
    check_lease_ttl(ttl)?;
    let TaskContext {
        task,
        agent,
        attempt,
        ..
    } = context;
    check_lease(&task, lease, now)?;
    let expires = now.add(ttl);
    let mut next = task.clone();
    next.lease_expires_at = Some(expires);
    next.revision += 1;
    next.updated_at = now;
    let attempt = attempt.map(|mut current| {
        current.lease_expires_at = expires;
        current
    });
    let signal = if task.cancel_requested {
        ControlSignal::Stop
    } else if agent
        .as_ref()
        .is_some_and(|a| a.status == AgentStatus::Paused)
    {
        ControlSignal::Pause
    } else {
        ControlSignal::Continue
    };
    // Recorded like every other change, so that readers caching by commit see the new
    // expiry and event streams show the attempt alive.
    let renewed = NewEvent::new(EventKind::LeaseRenewed)
        .task(task.id)
        .agent(task.assigned_agent_id)
        .payload(json!({"attempt": task.attempt, "leaseExpiresAt": expires}));
    let change = Change {
        task: Some(next),
        attempt,
        renew_task_locks: Some((task.id, expires)),
        events: vec![renewed],
        ..Change::default()
    };
    Ok((
        change,
        HeartbeatAck {
            lease_expires_at: expires,
            signal,
        },
    ))
}

/// Applies an edit of a task's fields, allowed while no attempt runs.
pub fn plan_task_edit(task: Task, edit: TaskEdit, now: Timestamp) -> Result<Change> {
    edit.validate()?;
    if task.status.is_running() {
        return Err(Error::conflict(format!(
            "task {} is {}; its fields cannot change while an agent works on it",
            task.id, task.status
        )));
    }
    if edit.changes_waiting() && task.status != TaskStatus::Queued {
        return Err(Error::conflict(format!(
            "task {} is {}: only a queued task waits, so only its dependsOn and notBefore \
             can change",
            task.id, task.status
        )));
    }
    if edit
        .depends_on
        .as_ref()
        .is_some_and(|dependencies| dependencies.contains(&task.id))
    {
        return Err(Error::invalid("dependsOn", "a task cannot wait for itself"));
    }
    let mut next = task.clone();
    edit.apply_to(&mut next);
    if next == task {
        return Ok(Change::default_with_task(task));
    }
    next.revision += 1;
    next.updated_at = now;
    let event = NewEvent::new(EventKind::TaskUpdated).task(next.id);
    Ok(Change {
        task: Some(next),
        events: vec![event],
        ..Change::default()
    })
}

/// The refusal of dependencies of `task` that lead back to it.
pub fn circular_wait(task: TaskId) -> Error {
    Error::conflict(format!(
        "dependsOn: task {task} would wait for itself: one of these tasks waits for it, \
         directly or through others"
    ))
}

/// The refusal of a dependency on a task that does not exist, `field` naming it. Like a
/// circular wait, it is the queue's state, not the request's form, that refuses it.
pub fn missing_dependency(field: &str, dependency: TaskId) -> Error {
    Error::conflict(format!("{field}: task {dependency} does not exist"))
}

/// The git branch an agent works on for `task`: `agent/` and the id's first 8 characters.
pub fn branch_name(task: TaskId) -> String {
    let id = task.to_string();
    format!("agent/{}", &id[..8])
}

/// Checks that `lease` is the live, unexpired lease of `task`'s current attempt.
pub fn check_lease(task: &Task, lease: &LeaseRef, now: Timestamp) -> Result<()> {
    if lease.task_id != task.id {
        return Err(Error::conflict(format!(
            "the lease names task {}, not {}",
            lease.task_id, task.id
        )));
    }
    if !task.status.is_running() {
        return Err(Error::conflict(format!(
            "attempt {} of task {} is no longer live (the task is {})",
            lease.attempt, task.id, task.status
        )));
    }
    if lease.attempt != task.attempt || task.lease_token != Some(lease.lease_token) {
        return Err(Error::conflict(format!(
            "stale lease: the live attempt of task {} is {}, and the token must be that attempt's",
            task.id, task.attempt
        )));
    }
    match task.lease_expires_at {
        Some(expiry) if expiry > now => Ok(()),
        Some(expiry) => Err(Error::conflict(format!(
            "the lease of attempt {} expired at {expiry}",
            lease.attempt
        ))),
        None => Err(Error::conflict("the attempt holds no lease")),
    }
}

/// A repeat of a final report that was already recorded with the same lease.
fn repeated_report(
    task: &Task,
    attempt: Option<&TaskAttempt>,
    action: &TaskAction,
    lease: &LeaseRef,
) -> Option<Change> {
    let outcome = action.idempotent_outcome()?;
    let attempt = attempt?;
    let same_attempt = lease.task_id == task.id
        && attempt.attempt_number == lease.attempt
        && attempt.lease_token == Some(lease.lease_token);
    (same_attempt && attempt.outcome == outcome && !task.status.is_running())
        .then(|| Change::default_with_task(task.clone()))
}

fn check_lock_conflicts(task: &Task, conflicts: &[LockConflict]) -> Result<()> {
    match conflicts.first() {
        None => Ok(()),
        Some(conflict) => Err(Error::conflict(format!(
            "task {} needs {}, which agent {} holds{}",
            task.id,
            conflict.requested_path,
            conflict.held.agent_id,
            conflict
                .held
                .task_id
                .map(|t| format!(" for task {t}"))
                .unwrap_or_default()
        ))),
    }
}

fn check_claimable(
    task: &Task,
    unfinished_dependencies: &[(TaskId, TaskStatus)],
    now: Timestamp,
) -> Result<()> {
    if let Some(not_before) = task.not_before
        && not_before > now
    {
        return Err(Error::conflict(format!(
            "task {} is not claimable before {not_before}",
            task.id
        )));
    }
    if let Some((dependency, status)) = unfinished_dependencies.first() {
        return Err(Error::conflict(format!(
            "task {} waits for dependency {dependency}, which is {status}",
            task.id
        )));
    }
    Ok(())
}

fn end_attempt(
    task: &mut Task,
    attempt: &mut Option<TaskAttempt>,
    outcome: AttemptOutcome,
    reason: Option<String>,
    usage: Usage,
    now: Timestamp,
) {
    task.lease_token = None;
    task.lease_expires_at = None;
    // Whatever ended the attempt, there is nothing left to stop.
    task.cancel_requested = false;
    if let Some(current) = attempt.as_mut() {
        current.ended_at = Some(now);
        current.outcome = outcome;
        current.failure_reason = reason;
        current.usage = usage;
    }
}

/// Makes room for one more attempt when every attempt the task allows is used: a person
/// asked for it (automatic retries stop at `max_attempts`, see [`crate::retry::decide`]).
/// `attempts_used` keeps counting every attempt the task had.
fn grant_an_attempt(task: &mut Task) {
    if task.attempts_used >= task.max_attempts {
        task.max_attempts = task.attempts_used + 1;
    }
}

fn unassign(task: &mut Task) {
    task.assigned_agent_id = None;
    task.assigned_at = None;
    task.lease_token = None;
    task.lease_expires_at = None;
}

fn touch(agent: &mut Option<Agent>, now: Timestamp) {
    if let Some(slot) = agent.as_mut() {
        slot.last_activity_at = Some(now);
    }
}

/// Frees the slot after its attempt; `succeeded` counts the outcome (None: not counted).
fn release_agent(
    agent: &mut Option<Agent>,
    succeeded: Option<bool>,
    tokens: u64,
    now: Timestamp,
) -> Result<()> {
    let Some(slot) = agent.as_mut() else {
        return Ok(());
    };
    slot.status = agent_state::transition(slot.status, AgentEvent::Release)?;
    slot.current_task_id = None;
    slot.completed_at = Some(now);
    slot.last_activity_at = Some(now);
    slot.total_tokens_used = slot.total_tokens_used.saturating_add(tokens);
    match succeeded {
        Some(true) => slot.tasks_completed += 1,
        Some(false) => slot.tasks_failed += 1,
        None => {}
    }
    Ok(())
}

fn cap_reason(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

fn task_status_event(task: &Task, from: TaskStatus, event: TaskEvent) -> NewEvent {
    let kind = if event == TaskEvent::RequestCancel {
        EventKind::TaskCancelRequested
    } else {
        EventKind::TaskStatusChanged
    };
    NewEvent::new(kind)
        .task(task.id)
        .agent(task.assigned_agent_id)
        .payload(json!({
            "from": from,
            "to": task.status,
            "event": event,
            "attempt": task.attempt,
        }))
}

pub(super) fn agent_status_event(agent: &Agent, from: AgentStatus) -> NewEvent {
    let event = NewEvent::new(EventKind::AgentStatusChanged)
        .agent(Some(agent.id))
        .runner_session(agent.runner_session_id)
        .payload(json!({"from": from, "to": agent.status}));
    match agent.current_task_id {
        Some(task) => event.task(task),
        None => event,
    }
}

/// Ids for a batch of `count` new tasks, random but ascending: the tasks of a batch share
/// their creation instant, and the queue orders such tasks by id, so the batch is claimed
/// in the order it was given.
pub fn batch_task_ids(count: usize) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = (0..count).map(|_| TaskId::new()).collect();
    ids.sort_unstable();
    ids
}

/// Validates a batch of new tasks: size 1 to [`MAX_BATCH_SIZE`](crate::model::MAX_BATCH_SIZE), each task valid (the
/// error names `tasks[i].field`), no idempotency key twice.
pub fn validate_task_batch(batch: &[crate::model::NewTask]) -> Result<()> {
    use crate::model::MAX_BATCH_SIZE;
    if batch.is_empty() {
        return Err(Error::invalid("tasks", "at least one task is required"));
    }
    if batch.len() > MAX_BATCH_SIZE {
        return Err(Error::invalid(
            "tasks",
            format!(
                "at most {MAX_BATCH_SIZE} tasks per batch (got {})",
                batch.len()
            ),
        ));
    }
    let mut keys = std::collections::HashSet::new();
    for (index, task) in batch.iter().enumerate() {
        task.validate().map_err(|err| match err {
            Error::InvalidInput { field, message } => {
                Error::invalid(format!("tasks[{index}].{field}"), message)
            }
            other => other,
        })?;
        if let Some(key) = &task.idempotency_key
            && !keys.insert(key.as_str())
        {
            // Two tasks claiming one key clash as a used key does: a conflict.
            return Err(Error::conflict(format!(
                "tasks[{index}].idempotencyKey: {key:?} appears twice in the batch"
            )));
        }
    }
    Ok(())
}

/// The event recording a new task.
pub fn task_created_event(task: &Task) -> NewEvent {
    NewEvent::new(EventKind::TaskCreated)
        .task(task.id)
        .payload(json!({"status": task.status, "priority": task.priority}))
}

/// Refuses to delete a task that is not QUEUED or CANCELLED, or that others depend on;
/// otherwise returns the event recording the deletion.
pub fn check_deletable(task: &Task, dependents: &[TaskId]) -> Result<NewEvent> {
    if !matches!(task.status, TaskStatus::Queued | TaskStatus::Cancelled) {
        return Err(Error::conflict(format!(
            "cannot delete task with status {}; only QUEUED or CANCELLED tasks can be deleted",
            task.status
        )));
    }
    if let Some(dependent) = dependents.first() {
        return Err(Error::conflict(format!(
            "cannot delete task {}: task {dependent} depends on it",
            task.id
        )));
    }
    Ok(NewEvent::new(EventKind::TaskDeleted).task(task.id))
}
