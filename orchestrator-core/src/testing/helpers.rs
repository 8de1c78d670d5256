//! Small builders shared by the conformance cases.

use std::sync::Arc;
use std::time::Duration;

use crate::change::{LeaseRef, TaskAction};
use crate::error::Error;
use crate::ids::{AgentId, RunnerSessionId, TaskId};
use crate::lock::LockPath;
use crate::model::{Agent, FileLock, LockMode, NewAgent, NewTask, Task, Usage};
use crate::store::Store;
use crate::time::Timestamp;

/// A fixed instant the cases count from (2025-01-01T00:00:00Z).
pub(crate) fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(1_735_689_600_000 + offset_ms).expect("valid instant")
}

/// How long an attempt's lease lasts in the cases.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// The first two of `live` that break the lock invariant, described: locks of different
/// holders over overlapping paths, unless both are shared.
pub(crate) fn overlapping_locks(live: &[FileLock]) -> Option<String> {
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            let both_shared = a.mode == LockMode::Shared && b.mode == LockMode::Shared;
            let overlap = LockPath::parse(&a.file_path)
                .expect("a held path is valid")
                .overlaps(&LockPath::parse(&b.file_path).expect("a held path is valid"));
            if a.agent_id != b.agent_id && !both_shared && overlap {
                return Some(format!(
                    "{} ({}) and {} ({}) overlap",
                    a.file_path, a.agent_id, b.file_path, b.agent_id
                ));
            }
        }
    }
    None
}

pub(crate) async fn new_task(store: &Arc<dyn Store>, title: &str, now: Timestamp) -> Task {
    store
        .create_task(NewTask::new(title, format!("Do {title}")), now)
        .await
        .expect("create task")
        .value
}

pub(crate) async fn new_agent(store: &Arc<dyn Store>, now: Timestamp) -> Agent {
    store
        .create_agent(
            NewAgent {
                name: Some("slot".into()),
                ..NewAgent::default()
            },
            now,
        )
        .await
        .expect("create agent")
}

/// Assigns `task` to `agent` and returns the task with the lease that proves it.
pub(crate) async fn assign(
    store: &Arc<dyn Store>,
    task: &Task,
    agent: AgentId,
    now: Timestamp,
) -> (Task, LeaseRef) {
    assign_for(store, task, agent, None, now).await
}

/// [`assign`] for a slot of runner session `runner`.
pub(crate) async fn assign_for(
    store: &Arc<dyn Store>,
    task: &Task,
    agent: AgentId,
    runner: Option<RunnerSessionId>,
    now: Timestamp,
) -> (Task, LeaseRef) {
    let assigned = store
        .apply_task_action(
            task.id,
            TaskAction::Assign {
                agent_id: agent,
                runner_session_id: runner,
                lease_ttl: LEASE,
            },
            None,
            now,
        )
        .await
        .expect("assign");
    let lease = lease_of(
        &store.list_attempts(task.id).await.expect("attempts"),
        &assigned,
    );
    (assigned, lease)
}

fn lease_of(attempts: &[crate::model::TaskAttempt], task: &Task) -> LeaseRef {
    // The task row does not serialize its token, but stores return it to the caller.
    let token = task
        .lease_token
        .or_else(|| attempts.last().and_then(|a| a.lease_token))
        .expect("an assigned task carries its lease token");
    LeaseRef {
        task_id: task.id,
        attempt: task.attempt,
        lease_token: token,
    }
}

/// Queues the failed `task` again, as a person does.
pub(crate) async fn retry(store: &Arc<dyn Store>, task: TaskId, now: Timestamp) {
    store
        .apply_task_action(
            task,
            TaskAction::Retry {
                not_before: None,
                note: None,
            },
            None,
            now,
        )
        .await
        .expect("retry");
}

pub(crate) fn complete() -> TaskAction {
    TaskAction::Complete {
        commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        usage: Usage {
            input_tokens: 1_000,
            output_tokens: 250,
            cost_usd: 0.0125,
            ..Usage::default()
        },
    }
}

pub(crate) fn fail(reason: &str) -> TaskAction {
    TaskAction::Fail {
        reason: reason.into(),
        usage: Usage::default(),
    }
}

pub(crate) fn assert_invalid_input<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::InvalidInput { field: actual, .. }) => {
            assert_eq!(actual, field, "wrong field named")
        }
        other => panic!("expected invalid input on {field}, got {other:?}"),
    }
}

pub(crate) fn assert_conflict<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
}

/// A conflict whose message begins with `start` (the field it is about, by convention).
pub(crate) fn assert_conflict_naming<T: std::fmt::Debug>(result: Result<T, Error>, start: &str) {
    match result {
        Err(Error::Conflict(message)) => assert!(message.starts_with(start), "{message}"),
        other => panic!("expected a conflict beginning {start:?}, got {other:?}"),
    }
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::NotFound { .. })),
        "expected not found, got {result:?}"
    );
}

pub(crate) fn assert_invalid_transition<T: std::fmt::Debug>(
    result: Result<T, Error>,
    from: &str,
    event: &str,
) {
    match result {
        Err(Error::InvalidTransition(rejection)) => {
            assert_eq!(rejection.from, from);
            assert_eq!(rejection.event, event);
        }
        other => panic!("expected an invalid transition {from} --{event}-->, got {other:?}"),
    }
}

/// The sequence number of the newest event (0 when there is none).
pub(crate) async fn last_seq(store: &Arc<dyn Store>) -> i64 {
    let mut after = 0;
    loop {
        let page = store.events_since(after, 1_000).await.expect("events");
        match page.last() {
            Some(event) => after = event.seq,
            None => return after,
        }
    }
}
