//! Attempts, leases and every task transition, through the store.

use std::sync::Arc;

use super::helpers::*;
use crate::change::{AgentAction, LeaseRef, TaskAction};
use crate::ids::LeaseToken;
use crate::model::{AgentStatus, AttemptOutcome, EventKind, NewTask, TaskQuery, TaskStatus};
use crate::store::Store;
use crate::store::StoreExt;

/// Claim → start → verify → complete, with the attempt, the slot and the events.
pub async fn attempt_runs_from_claim_to_completion(store: Arc<dyn Store>) {
    let task = new_task(&store, "happy path", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let before = last_seq(&store).await;
    let (assigned, lease) = assign(&store, &task, agent.id, at(100)).await;
    assert_eq!(assigned.status, TaskStatus::Assigned);
    assert_eq!((assigned.attempt, assigned.attempts_used), (1, 1));
    assert_eq!(assigned.assigned_agent_id, Some(agent.id));
    assert_eq!(assigned.assigned_at, Some(at(100)));
    assert_eq!(assigned.lease_expires_at, Some(at(100).add(LEASE)));
    let id8: String = task.id.to_string().chars().take(8).collect();
    assert_eq!(assigned.branch_name, Some(format!("agent/{id8}")));
    let slot = store.get_agent(agent.id).await.unwrap();
    assert_eq!(slot.status, AgentStatus::Working);
    assert_eq!(slot.current_task_id, Some(task.id));

    let started = store
        .apply_task_action(task.id, TaskAction::Start, Some(lease), at(200))
        .await
        .unwrap();
    assert_eq!(started.status, TaskStatus::InProgress);
    let verifying = store
        .apply_task_action(task.id, TaskAction::BeginVerification, Some(lease), at(300))
        .await
        .unwrap();
    assert_eq!(verifying.status, TaskStatus::Verifying);
    let done = store
        .apply_task_action(task.id, complete(), Some(lease), at(400))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.completed_at, Some(at(400)));
    assert_eq!(
        done.commit_sha.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(store.get_task(task.id).await.unwrap(), done);

    let slot = store.get_agent(agent.id).await.unwrap();
    assert_eq!(slot.status, AgentStatus::Idle);
    assert_eq!(slot.current_task_id, None);
    assert_eq!((slot.tasks_completed, slot.tasks_failed), (1, 0));
    assert_eq!(slot.total_tokens_used, 1_250);

    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt_number, 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Completed);
    assert_eq!(attempts[0].ended_at, Some(at(400)));
    assert_eq!(attempts[0].usage.output_tokens, 250);
    assert!((attempts[0].usage.cost_usd - 0.0125).abs() < 1e-12);

    let events = store.events_since(before, 100).await.unwrap();
    let statuses: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::TaskStatusChanged)
        .map(|e| e.payload["to"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["ASSIGNED", "IN_PROGRESS", "VERIFYING", "COMPLETED"]
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::AgentStatusChanged)
    );

    // The same completion again is answered with the same result and writes nothing.
    let seq = last_seq(&store).await;
    let again = store
        .apply_task_action(task.id, complete(), Some(lease), at(500))
        .await
        .unwrap();
    assert_eq!(again, done);
    assert_eq!(last_seq(&store).await, seq);
    // The slot is reused for the next task.
    let next = new_task(&store, "next", at(600)).await;
    let (reassigned, _) = assign(&store, &next, agent.id, at(700)).await;
    assert_eq!(reassigned.assigned_agent_id, Some(agent.id));
}

/// A wrong token, a wrong attempt number or no lease at all is a conflict, and changes
/// nothing: not the task, not the slot, not the event log.
pub async fn stale_or_missing_lease_is_a_conflict_without_side_effects(store: Arc<dyn Store>) {
    let task = new_task(&store, "fenced", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (assigned, lease) = assign(&store, &task, agent.id, at(10)).await;
    let slot = store.get_agent(agent.id).await.unwrap();
    let seq = last_seq(&store).await;
    let forged = [
        LeaseRef {
            lease_token: LeaseToken::new(),
            ..lease
        },
        LeaseRef {
            attempt: lease.attempt + 1,
            ..lease
        },
        LeaseRef {
            attempt: 0,
            ..lease
        },
    ];
    for bad in forged {
        for action in [TaskAction::Start, complete(), fail("x")] {
            assert_conflict(
                store
                    .apply_task_action(task.id, action, Some(bad), at(20))
                    .await,
            );
        }
    }
    assert_conflict(
        store
            .apply_task_action(task.id, complete(), None, at(20))
            .await,
    );
    assert_eq!(store.get_task(task.id).await.unwrap(), assigned);
    assert_eq!(store.get_agent(agent.id).await.unwrap(), slot);
    assert_eq!(last_seq(&store).await, seq);
}

/// A lease that runs out sends the task back to the queue and the slot to STUCK; a late
/// report with the old lease is a conflict; the last allowed attempt fails the task.
pub async fn expired_lease_requeues_then_fails(store: Arc<dyn Store>) {
    let mut new = NewTask::new("flaky runner", "d");
    new.max_attempts = 2;
    let task = store.create_task(new, at(0)).await.unwrap().value;
    let agent = new_agent(&store, at(0)).await;
    let (_, first) = assign(&store, &task, agent.id, at(0)).await;
    let live = store
        .apply_task_action(task.id, TaskAction::ExpireLease, None, at(59_999))
        .await;
    assert_conflict(live);

    let requeued = store
        .apply_task_action(task.id, TaskAction::ExpireLease, None, at(60_000))
        .await
        .unwrap();
    assert_eq!(requeued.status, TaskStatus::Queued);
    assert_eq!(requeued.assigned_agent_id, None);
    assert_eq!(requeued.lease_expires_at, None);
    assert_eq!(requeued.attempts_used, 1);
    let slot = store.get_agent(agent.id).await.unwrap();
    assert_eq!(slot.status, AgentStatus::Stuck);
    assert_eq!(
        slot.current_task_id, None,
        "a stuck slot must not keep its task"
    );
    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Expired);

    let seq = last_seq(&store).await;
    assert_conflict(
        store
            .apply_task_action(task.id, TaskAction::Start, Some(first), at(61_000))
            .await,
    );
    assert_conflict(
        store
            .apply_task_action(task.id, complete(), Some(first), at(61_000))
            .await,
    );
    assert_eq!(store.get_task(task.id).await.unwrap(), requeued);
    assert_eq!(last_seq(&store).await, seq);

    store
        .apply_agent_action(agent.id, AgentAction::Recover, at(62_000))
        .await
        .unwrap();
    let (second_attempt, second) = assign(&store, &requeued, agent.id, at(63_000)).await;
    assert_eq!(second_attempt.attempt, 2);
    assert_ne!(second.lease_token, first.lease_token);
    let failed = store
        .apply_task_action(task.id, TaskAction::ExpireLease, None, at(200_000))
        .await
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(failed.last_error.unwrap_or_default().contains("2 attempts"));
    assert_eq!(store.list_attempts(task.id).await.unwrap().len(), 2);
}

/// A queued task is cancelled at once; a running one is flagged, and becomes CANCELLED
/// when its runner acknowledges; a cancelled task can be reopened.
pub async fn cancellation_of_queued_and_running_tasks(store: Arc<dyn Store>) {
    let queued = new_task(&store, "never mind", at(0)).await;
    let cancelled = store
        .apply_task_action(queued.id, TaskAction::Cancel, None, at(1))
        .await
        .unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let reopened = store
        .apply_task_action(queued.id, TaskAction::Reopen, None, at(2))
        .await
        .unwrap();
    assert_eq!(reopened.status, TaskStatus::Queued);

    let running = new_task(&store, "stop it", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &running, agent.id, at(10)).await;
    store
        .apply_task_action(running.id, TaskAction::Start, Some(lease), at(11))
        .await
        .unwrap();
    assert_conflict(
        store
            .apply_task_action(
                running.id,
                TaskAction::AcknowledgeCancel,
                Some(lease),
                at(12),
            )
            .await,
    );
    let requested = store
        .apply_task_action(running.id, TaskAction::Cancel, None, at(13))
        .await
        .unwrap();
    assert_eq!(requested.status, TaskStatus::InProgress);
    assert!(requested.cancel_requested);
    let seq = last_seq(&store).await;
    let twice = store
        .apply_task_action(running.id, TaskAction::Cancel, None, at(14))
        .await
        .unwrap();
    assert_eq!(twice, requested);
    assert_eq!(last_seq(&store).await, seq, "asking twice must not write");
    let stopped = store
        .apply_task_action(
            running.id,
            TaskAction::AcknowledgeCancel,
            Some(lease),
            at(15),
        )
        .await
        .unwrap();
    assert_eq!(stopped.status, TaskStatus::Cancelled);
    assert!(!stopped.cancel_requested);
    assert_eq!(
        store.get_agent(agent.id).await.unwrap().status,
        AgentStatus::Idle
    );
    let attempts = store.list_attempts(running.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Cancelled);

    // A runner that vanishes after being told to stop: the cancellation completes when
    // its lease runs out, instead of requeueing the task.
    let abandoned = new_task(&store, "abandoned", at(0)).await;
    let (_, _lease) = assign(&store, &abandoned, agent.id, at(20)).await;
    store
        .apply_task_action(abandoned.id, TaskAction::Cancel, None, at(21))
        .await
        .unwrap();
    let expired = store
        .apply_task_action(
            abandoned.id,
            TaskAction::ExpireLease,
            None,
            at(20).add(LEASE),
        )
        .await
        .unwrap();
    assert_eq!(expired.status, TaskStatus::Cancelled);
    assert_eq!(
        store.get_agent(agent.id).await.unwrap().status,
        AgentStatus::Stuck
    );
}

/// A failed task records why; a retry resets it and is not claimable before its delay.
pub async fn failed_task_is_retried_after_its_delay(store: Arc<dyn Store>) {
    let task = new_task(&store, "retry me", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(10)).await;
    let failed = store
        .apply_task_action(task.id, fail("tests failed: 3 of 10"), Some(lease), at(20))
        .await
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("tests failed: 3 of 10"));
    assert_eq!(store.get_agent(agent.id).await.unwrap().tasks_failed, 1);
    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(
        attempts[0].failure_reason.as_deref(),
        Some("tests failed: 3 of 10")
    );

    let retried = store
        .apply_task_action(
            task.id,
            TaskAction::Retry {
                not_before: Some(at(30_000)),
                note: None,
            },
            None,
            at(30),
        )
        .await
        .unwrap();
    assert_eq!(retried.status, TaskStatus::Queued);
    assert_eq!(
        (retried.retry_count, retried.attempts_used),
        (1, 1),
        "a retry keeps the count of attempts had"
    );
    assert_eq!(retried.attempt, 1, "attempt numbers never go back");
    assert_eq!(retried.assigned_agent_id, None);
    assert_eq!(retried.not_before, Some(at(30_000)));
    let early = store
        .apply_task_action(
            task.id,
            TaskAction::Assign {
                agent_id: agent.id,
                runner_session_id: None,
                lease_ttl: LEASE,
            },
            None,
            at(29_999),
        )
        .await;
    assert_conflict(early);
    let (again, _) = assign(&store, &retried, agent.id, at(30_000)).await;
    assert_eq!(again.attempt, 2);
}

/// Events a state does not accept are `InvalidTransition` naming state and event.
pub async fn illegal_transitions_are_typed_errors(store: Arc<dyn Store>) {
    let task = new_task(&store, "strict", at(0)).await;
    assert_invalid_transition(
        store
            .apply_task_action(
                task.id,
                TaskAction::Retry {
                    not_before: None,
                    note: None,
                },
                None,
                at(1),
            )
            .await,
        "QUEUED",
        "retry",
    );
    assert_invalid_transition(
        store
            .apply_task_action(task.id, TaskAction::Reopen, None, at(1))
            .await,
        "QUEUED",
        "reopen",
    );
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(2)).await;
    store
        .apply_task_action(task.id, complete(), Some(lease), at(3))
        .await
        .unwrap();
    for action in [
        TaskAction::Cancel,
        TaskAction::Reopen,
        TaskAction::Retry {
            not_before: None,
            note: None,
        },
    ] {
        let event = match &action {
            TaskAction::Cancel => "cancel",
            TaskAction::Reopen => "reopen",
            _ => "retry",
        };
        assert_invalid_transition(
            store.apply_task_action(task.id, action, None, at(4)).await,
            "COMPLETED",
            event,
        );
    }
    let second = new_agent(&store, at(0)).await;
    assert_invalid_transition(
        store
            .apply_task_action(
                task.id,
                TaskAction::Assign {
                    agent_id: second.id,
                    runner_session_id: None,
                    lease_ttl: LEASE,
                },
                None,
                at(5),
            )
            .await,
        "COMPLETED",
        "assign",
    );
    // A busy slot cannot take a second task.
    let other = new_task(&store, "other", at(0)).await;
    let busy = new_task(&store, "busy", at(0)).await;
    assign(&store, &busy, second.id, at(6)).await;
    assert_invalid_transition(
        store
            .apply_task_action(
                other.id,
                TaskAction::Assign {
                    agent_id: second.id,
                    runner_session_id: None,
                    lease_ttl: LEASE,
                },
                None,
                at(7),
            )
            .await,
        "WORKING",
        "assign",
    );
    assert_eq!(
        store.get_task(other.id).await.unwrap().status,
        TaskStatus::Queued
    );
}

/// A task waits for its dependencies to complete.
pub async fn dependencies_gate_assignment(store: Arc<dyn Store>) {
    let first = new_task(&store, "first", at(0)).await;
    let mut new = NewTask::new("second", "after first");
    new.depends_on = vec![first.id];
    let second = store.create_task(new, at(1)).await.unwrap().value;
    let agent = new_agent(&store, at(0)).await;
    let early = store
        .apply_task_action(
            second.id,
            TaskAction::Assign {
                agent_id: agent.id,
                runner_session_id: None,
                lease_ttl: LEASE,
            },
            None,
            at(2),
        )
        .await;
    assert_conflict(early);
    let (_, lease) = assign(&store, &first, agent.id, at(3)).await;
    store
        .apply_task_action(first.id, complete(), Some(lease), at(4))
        .await
        .unwrap();
    let (assigned, _) = assign(&store, &second, agent.id, at(5)).await;
    assert_eq!(assigned.status, TaskStatus::Assigned);
    let page = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 2);
}
