//! What a person (or a runner, for its own slots) may ask of a task or an agent slot by
//! naming where it should go, translated into the action that gets it there, or refused
//! with what is allowed instead.

use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{Agent, AgentStatus, Task, TaskStatus};

use super::{AgentAction, TaskAction};

/// The action that moves a task from `from` to the status a person asks for: a queued or
/// running task is cancelled, a failed one goes back to the queue, a cancelled one is
/// reopened. Anything else is a `Conflict` that lists the allowed statuses.
pub fn task_status_request(from: TaskStatus, to: TaskStatus) -> Result<TaskAction> {
    match (from, to) {
        (TaskStatus::Queued, TaskStatus::Cancelled) => Ok(TaskAction::Cancel),
        (_, TaskStatus::Cancelled) if from.is_running() => Ok(TaskAction::Cancel),
        (TaskStatus::Failed, TaskStatus::Queued) => Ok(TaskAction::Retry {
            not_before: None,
            note: None,
        }),
        (TaskStatus::Cancelled, TaskStatus::Queued) => Ok(TaskAction::Reopen),
        _ => Err(Error::conflict(format!(
            "Invalid status transition from {from} to {to}. Allowed transitions: {}",
            allowed_status_requests(from)
        ))),
    }
}

/// The statuses a person may ask for from `from`, for messages.
fn allowed_status_requests(from: TaskStatus) -> &'static str {
    match from {
        TaskStatus::Failed | TaskStatus::Cancelled => "QUEUED",
        TaskStatus::Completed => "none",
        _ => "CANCELLED",
    }
}

/// What queuing a task for runners takes: nothing for a task that is QUEUED already, a
/// retry for a FAILED one; any other status is a `Conflict`.
pub fn run_request(task: &Task) -> Result<Option<TaskAction>> {
    match task.status {
        TaskStatus::Queued => Ok(None),
        TaskStatus::Failed => Ok(Some(TaskAction::Retry {
            not_before: None,
            note: None,
        })),
        other => Err(Error::conflict(format!(
            "Task cannot be run with status {other}. Only QUEUED or FAILED tasks can be run."
        ))),
    }
}

/// Longest note a person gives a retry.
pub const MAX_RETRY_NOTE_CHARS: usize = 5_000;

/// The retry a person asks for, with their `note` for the next attempts (a blank one is
/// none): only a FAILED task goes back to the queue.
pub fn retry_request(task: &Task, note: Option<&str>) -> Result<TaskAction> {
    if task.status != TaskStatus::Failed {
        return Err(Error::conflict(format!(
            "Task cannot be retried with status {}. Only FAILED tasks can be retried.",
            task.status
        )));
    }
    let note = note.map(str::trim).filter(|note| !note.is_empty());
    if let Some(note) = note {
        crate::model::check_max_chars("note", note, MAX_RETRY_NOTE_CHARS)?;
    }
    Ok(TaskAction::Retry {
        not_before: None,
        note: note.map(str::to_owned),
    })
}

/// The task to cancel when a person stops an agent: the one it works on (paused or not).
pub fn task_to_stop(agent: &Agent) -> Result<TaskId> {
    let working = matches!(agent.status, AgentStatus::Working | AgentStatus::Paused);
    agent
        .current_task_id
        .filter(|_| working)
        .ok_or_else(|| Error::conflict("Agent is not currently working"))
}

/// A person's pause of an agent: only a working one.
pub fn pause_request(agent: &Agent) -> Result<AgentAction> {
    if agent.status != AgentStatus::Working {
        return Err(Error::conflict("Agent is not currently working"));
    }
    Ok(AgentAction::Pause)
}

/// A person's resume of an agent: only a paused one.
pub fn resume_request(agent: &Agent) -> Result<AgentAction> {
    if agent.status != AgentStatus::Paused {
        return Err(Error::conflict("Agent is not paused"));
    }
    Ok(AgentAction::Resume)
}

/// A person's retirement of a slot: refused while it works on a task, so that the task is
/// not left behind.
pub fn retire_request(agent: &Agent) -> Result<AgentAction> {
    if let Some(task) = agent.current_task_id {
        return Err(Error::conflict(format!(
            "Agent is working on task {task}; stop it first (PATCH with {{\"action\":\"stop\"}})"
        )));
    }
    Ok(AgentAction::Retire)
}

/// The action that sets a runner's own slot from `from` to the status it reports; `None`
/// when the slot is there already. Statuses that task work sets (IDLE, WORKING from
/// anything but PAUSED) are a `Conflict`.
pub fn slot_status_request(from: AgentStatus, to: AgentStatus) -> Result<Option<AgentAction>> {
    match (from, to) {
        (from, to) if from == to => Ok(None),
        (_, AgentStatus::Paused) => Ok(Some(AgentAction::Pause)),
        (AgentStatus::Paused, AgentStatus::Working) => Ok(Some(AgentAction::Resume)),
        (AgentStatus::Stuck, _) => Ok(Some(AgentAction::Recover)),
        (_, AgentStatus::Completed) => Ok(Some(AgentAction::Retire)),
        (_, AgentStatus::Failed) => Ok(Some(AgentAction::Fail)),
        (from, to) => Err(Error::conflict(format!(
            "An agent cannot be set from {from} to {to} here; task work changes it"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_cancels_requeues_or_reopens_and_is_told_what_else_is_allowed() {
        use TaskStatus::*;
        assert_eq!(
            task_status_request(Queued, Cancelled).unwrap(),
            TaskAction::Cancel
        );
        assert_eq!(
            task_status_request(InProgress, Cancelled).unwrap(),
            TaskAction::Cancel
        );
        assert_eq!(
            task_status_request(Failed, Queued).unwrap(),
            TaskAction::Retry {
                not_before: None,
                note: None
            }
        );
        assert_eq!(
            task_status_request(Cancelled, Queued).unwrap(),
            TaskAction::Reopen
        );
        for (from, to, allowed) in [
            (Completed, Queued, "none"),
            (Failed, Completed, "QUEUED"),
            (Queued, Completed, "CANCELLED"),
        ] {
            let refusal = task_status_request(from, to).unwrap_err().to_string();
            assert!(refusal.ends_with(allowed), "{from} -> {to}: {refusal}");
        }
    }

    #[test]
    fn a_runner_sets_its_own_slot_only_where_task_work_does_not() {
        use AgentStatus::*;
        assert_eq!(slot_status_request(Idle, Idle).unwrap(), None);
        assert_eq!(
            slot_status_request(Working, Paused).unwrap(),
            Some(AgentAction::Pause)
        );
        assert_eq!(
            slot_status_request(Paused, Working).unwrap(),
            Some(AgentAction::Resume)
        );
        assert_eq!(
            slot_status_request(Stuck, Idle).unwrap(),
            Some(AgentAction::Recover)
        );
        assert!(slot_status_request(Idle, Working).is_err());
    }
}
