//! Verification results.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::helpers::*;
use crate::attempts::{AttemptCompletion, complete_attempt};
use crate::change::{AttemptEnd, LeaseRef, TaskAction};
use crate::ids::{AgentId, LeaseToken, TaskId};
use crate::model::{
    AttemptOutcome, EventKind, ExceptionQuery, ExceptionStatus, ExceptionType, FailureKind,
    LogQuery, LogType, NewAgentLog, NewTask, NewVerificationResult, TaskStatus, Usage,
    VerificationFailure, VerificationStatus,
};
use crate::retry::{FailureClass, RetryPolicy, RetryStrategy};
use crate::store::Store;
use crate::store::StoreExt;

fn result(passed: bool) -> NewVerificationResult {
    NewVerificationResult {
        passed,
        confidence_score: if passed { 0.9 } else { 0.35 },
        syntax_passed: Some(true),
        types_passed: Some(passed),
        lint_passed: None,
        tests_passed: Some(passed),
        tests_total: Some(12),
        tests_failed: Some(if passed { 0 } else { 2 }),
        semantic_score: None,
        semantic_explanation: None,
        failures: if passed {
            Vec::new()
        } else {
            vec![VerificationFailure {
                kind: FailureKind::Type,
                message: "expected `u32`, found `&str`".into(),
                file: Some("src/lib.rs".into()),
                line: Some(42),
                column: Some(7),
            }]
        },
        recommendations: vec!["Resolve type errors".into()],
        unverified: false,
        stages: Vec::new(),
    }
}

/// Results are numbered per task, set its verification status, and list newest first.
pub async fn verification_results_are_numbered_per_task(store: Arc<dyn Store>) {
    let task = new_task(&store, "verify", at(0)).await;
    let first = store
        .record_verification(task.id, None, result(false), at(1))
        .await
        .unwrap();
    assert_eq!(first.attempt_number, 1);
    let after_first = store.get_task(task.id).await.unwrap();
    assert_eq!(after_first.verification_status, VerificationStatus::Failed);
    assert_eq!(after_first.verification_attempts, 1);
    let second = store
        .record_verification(task.id, None, result(true), at(2))
        .await
        .unwrap();
    assert_eq!(second.attempt_number, 2);
    let after_second = store.get_task(task.id).await.unwrap();
    assert_eq!(after_second.verification_status, VerificationStatus::Passed);
    assert_eq!(
        after_second.status, task.status,
        "the lifecycle is the runner's call"
    );

    let listed = store.list_verification_results(task.id, 10).await.unwrap();
    assert_eq!(listed, vec![second.clone(), first.clone()]);
    assert_eq!(listed[1].failures[0].line, Some(42));
    assert_eq!(
        store.list_verification_results(task.id, 1).await.unwrap(),
        vec![second]
    );
    assert_invalid_input(store.list_verification_results(task.id, 0).await, "limit");
    assert_invalid_input(store.list_verification_results(task.id, 51).await, "limit");
    let mut bad = result(true);
    bad.confidence_score = 1.5;
    assert_invalid_input(
        store.record_verification(task.id, None, bad, at(3)).await,
        "confidenceScore",
    );
    let mut inconsistent = result(true);
    inconsistent.tests_failed = Some(13);
    assert_invalid_input(
        store
            .record_verification(task.id, None, inconsistent, at(3))
            .await,
        "testsFailed",
    );
    assert_eq!(
        store.get_task(task.id).await.unwrap().verification_attempts,
        2
    );
}

/// A runner reports evidence with its attempt's lease: a stale token or an expired lease is
/// a Conflict that records nothing, also when the evidence comes with the completion.
pub async fn runner_evidence_needs_the_live_lease(store: Arc<dyn Store>) {
    let task = new_task(&store, "verify under lease", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let stale = LeaseRef {
        lease_token: LeaseToken::new(),
        ..lease
    };
    let expired = at(1).add(LEASE);
    assert_conflict(
        store
            .record_verification(task.id, Some(stale), result(false), at(2))
            .await,
    );
    assert_conflict(
        store
            .record_verification(task.id, Some(lease), result(false), expired)
            .await,
    );
    let completion = AttemptCompletion {
        success: false,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: None,
        error: Some("types".into()),
        commit_sha: None,
        usage: Usage::default(),
        diff_stats: None,
        changes: None,
        backend: None,
        model: None,
        verification: Some(result(false)),
    };
    let policy = RetryPolicy::default();
    assert_conflict(
        complete_attempt(
            &*store,
            &policy,
            agent.id,
            lease,
            completion.clone(),
            expired,
        )
        .await,
    );
    let untouched = store.get_task(task.id).await.unwrap();
    assert_eq!(untouched.verification_attempts, 0);
    assert_eq!(untouched.status, TaskStatus::Assigned);
    assert!(
        store
            .list_verification_results(task.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let recorded = store
        .record_verification(task.id, Some(lease), result(false), at(2))
        .await
        .unwrap();
    assert_eq!(recorded.attempt_number, 1);
    let failed = complete_attempt(&*store, &policy, agent.id, lease, completion, at(3))
        .await
        .unwrap();
    assert_ne!(
        failed.status,
        TaskStatus::Assigned,
        "the live lease ends the attempt"
    );
    assert_eq!(
        store
            .list_verification_results(task.id, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A task's `maxAttempts` caps its attempts across automatic retries and lease expiries,
/// and `attemptsUsed` counts every one; a person's retry of a task that used them all
/// gives it one more.
pub async fn max_attempts_caps_attempts_across_retries_and_expiries(store: Arc<dyn Store>) {
    let generous = RetryPolicy::default().with(
        FailureClass::Type,
        RetryStrategy {
            should_retry: true,
            delay: Duration::ZERO,
            max_attempts: 10,
            requires_human_review: false,
        },
    );
    let agent = new_agent(&store, at(0)).await;
    let failing = || AttemptEnd {
        action: fail("types"),
        verification: Some(result(false)),
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: generous.clone(),
        lock_conflict: false,
    };
    for max_attempts in [1, 3] {
        let mut new = NewTask::new(format!("at most {max_attempts}"), "d");
        new.max_attempts = max_attempts;
        let mut task = store.create_task(new, at(0)).await.unwrap().value;
        let mut ran = 0;
        let mut now = 1;
        while task.status == TaskStatus::Queued {
            assert!(ran < max_attempts, "attempt {} of {max_attempts}", ran + 1);
            let (_, lease) = assign(&store, &task, agent.id, at(now)).await;
            task = store
                .end_attempt(lease, failing(), at(now + 1))
                .await
                .unwrap();
            ran += 1;
            now += 2;
        }
        assert_eq!(task.status, TaskStatus::Failed, "{task:?}");
        assert_eq!((ran, task.attempts_used), (max_attempts, max_attempts));
        assert_eq!(
            store.list_attempts(task.id).await.unwrap().len() as u32,
            max_attempts
        );
        let asked = store
            .list_exceptions(&ExceptionQuery {
                task_id: Some(task.id),
                ..ExceptionQuery::default()
            })
            .await
            .unwrap();
        assert!(
            asked.items.iter().any(|e| e
                .description
                .as_deref()
                .unwrap_or_default()
                .contains("attempts of the task are used")),
            "a person is told: {asked:?}"
        );

        // A person's retry gives it one more attempt; the count goes on.
        let retried = store
            .apply_task_action(
                task.id,
                TaskAction::Retry {
                    not_before: None,
                    note: None,
                },
                None,
                at(100),
            )
            .await
            .unwrap();
        assert_eq!(retried.status, TaskStatus::Queued);
        assert_eq!(
            (retried.attempts_used, retried.max_attempts),
            (max_attempts, max_attempts + 1)
        );
    }

    // Lease expiries count too.
    let mut new = NewTask::new("expires twice", "d");
    new.max_attempts = 2;
    let task = store.create_task(new, at(0)).await.unwrap().value;
    let mut now = 10;
    for expected in [TaskStatus::Queued, TaskStatus::Failed] {
        let slot = new_agent(&store, at(now)).await;
        let current = store.get_task(task.id).await.unwrap();
        assign(&store, &current, slot.id, at(now)).await;
        now += LEASE.as_millis() as i64;
        let expired = store
            .apply_task_action(task.id, TaskAction::ExpireLease, None, at(now))
            .await
            .unwrap();
        assert_eq!(expired.status, expected, "{expired:?}");
        now += 1;
    }
    assert_eq!(store.get_task(task.id).await.unwrap().attempts_used, 2);
}

/// A completion that arrives after its lease was lost changes nothing in the task, but
/// its commit, usage, backend and model are kept on its own attempt, once, whether the
/// lease has only run out or the task has moved on to another attempt; a lease that never
/// held the attempt keeps nothing.
pub async fn a_completion_after_its_lease_was_lost_is_kept_on_its_attempt(store: Arc<dyn Store>) {
    let task = new_task(&store, "finish late", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let assigned = store.get_task(task.id).await.unwrap();
    let usage = Usage {
        input_tokens: 1200,
        output_tokens: 300,
        cost_usd: 0.25,
        ..Usage::default()
    };
    let completion = AttemptCompletion {
        success: true,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: Some("done at last".into()),
        error: None,
        commit_sha: Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904".into()),
        usage,
        diff_stats: None,
        changes: None,
        backend: Some("anthropic".into()),
        model: Some("claude-opus-4-1".into()),
        verification: Some(result(true)),
    };
    let policy = RetryPolicy::default();
    let late = at(1).add(LEASE);
    let forged = LeaseRef {
        lease_token: LeaseToken::new(),
        ..lease
    };
    let refused =
        complete_attempt(&*store, &policy, agent.id, forged, completion.clone(), late).await;
    assert_conflict(refused);
    assert_eq!(
        store.list_attempts(task.id).await.unwrap()[0].commit_sha,
        None
    );

    let late_logs = || async {
        store
            .list_logs(&LogQuery::new(agent.id, 50))
            .await
            .unwrap()
            .logs
            .into_iter()
            .filter(|log| log.content.contains("after its lease was lost"))
            .count()
    };
    for _ in 0..2 {
        let err = complete_attempt(&*store, &policy, agent.id, lease, completion.clone(), late)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("kept on attempt 1"), "{err}");
        assert_eq!(
            store.get_task(task.id).await.unwrap(),
            assigned,
            "the task is not changed"
        );
        assert_eq!(late_logs().await, 1, "kept once");
    }
    let kept = &store.list_attempts(task.id).await.unwrap()[0];
    assert_eq!(kept.commit_sha, completion.commit_sha);
    assert_eq!(kept.usage, usage);
    assert_eq!(
        (kept.backend.as_deref(), kept.model.as_deref()),
        (Some("anthropic"), Some("claude-opus-4-1"))
    );

    // The lease's expiry, found afterwards, keeps what came.
    store
        .apply_task_action(task.id, TaskAction::ExpireLease, None, late)
        .await
        .unwrap();
    let expired = &store.list_attempts(task.id).await.unwrap()[0];
    assert_eq!(expired.outcome, AttemptOutcome::Expired);
    assert_eq!(expired.usage, usage);
    assert_eq!(expired.commit_sha, completion.commit_sha);

    // Another attempt holds the task now: a late completion of the first leaves it alone.
    let other = new_agent(&store, late).await;
    let (_, second) = assign(&store, &task, other.id, late).await;
    let running = store.get_task(task.id).await.unwrap();
    assert_conflict(complete_attempt(&*store, &policy, agent.id, lease, completion, late).await);
    assert_eq!(store.get_task(task.id).await.unwrap(), running);
    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts[1].attempt_number, second.attempt);
    assert_eq!(attempts[1].commit_sha, None);
    assert_eq!(attempts[1].usage, Usage::default());
    assert_eq!(late_logs().await, 1);
}

/// An attempt's end writes its outcome, verification result, closing log and a failure's
/// follow-up together: a refused end writes none of them, and the same end sent again
/// writes nothing more.
pub async fn an_attempt_ends_with_its_evidence_at_once(store: Arc<dyn Store>) {
    let task = new_task(&store, "end with evidence", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let other = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let closing = |from: AgentId| NewAgentLog {
        agent_id: from,
        task_id: Some(task.id),
        log_type: LogType::StatusChange,
        content: "Task failed: types".into(),
        metadata: None,
    };
    let end = |from: AgentId| AttemptEnd {
        action: fail("types"),
        verification: Some(result(false)),
        changes: None,
        backend: None,
        model: None,
        logs: vec![closing(from)],
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    };
    let stale = LeaseRef {
        lease_token: LeaseToken::new(),
        ..lease
    };
    let before = last_seq(&store).await;
    assert_conflict(store.end_attempt(stale, end(agent.id), at(2)).await);
    // The outcome and the evidence are acceptable, the log entry is not: nothing is kept.
    assert_conflict(store.end_attempt(lease, end(other.id), at(2)).await);
    assert_invalid_input(
        store
            .end_attempt(
                lease,
                AttemptEnd {
                    action: TaskAction::Start,
                    ..end(agent.id)
                },
                at(2),
            )
            .await,
        "action",
    );
    // Bad evidence is refused as such, before the task is looked for.
    let mut bad = result(false);
    bad.confidence_score = 1.5;
    let unknown = LeaseRef {
        task_id: TaskId::new(),
        ..lease
    };
    assert_invalid_input(
        store
            .end_attempt(
                unknown,
                AttemptEnd {
                    verification: Some(bad),
                    ..end(agent.id)
                },
                at(2),
            )
            .await,
        "confidenceScore",
    );
    let untouched = store.get_task(task.id).await.unwrap();
    assert_eq!(untouched.status, TaskStatus::Assigned);
    assert_eq!(untouched.verification_attempts, 0);
    assert_eq!(
        last_seq(&store).await,
        before,
        "refused ends append no event"
    );

    // A type error is retried after 10 s by the default policy, in the same write.
    let ended = store
        .end_attempt(lease, end(agent.id), at(3))
        .await
        .unwrap();
    assert_eq!(ended.status, TaskStatus::Queued);
    assert_eq!(ended.retry_count, 1);
    assert_eq!(ended.not_before, Some(at(3).add(Duration::from_secs(10))));
    assert_eq!(ended.verification_attempts, 1);
    assert_eq!(
        ended.verification_status,
        VerificationStatus::Pending,
        "the retry awaits a new verification"
    );
    assert_eq!(ended, store.get_task(task.id).await.unwrap());
    let changes: Vec<(EventKind, serde_json::Value)> = store
        .events_since(before, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.kind, event.payload["to"].clone()))
        .filter(|(kind, _)| *kind != EventKind::AgentStatusChanged)
        .collect();
    assert_eq!(
        changes,
        [
            (EventKind::VerificationRecorded, json!(null)),
            (EventKind::LogsAppended, json!(null)),
            (EventKind::TaskStatusChanged, json!("FAILED")),
            (EventKind::LockReleased, json!(null)),
            (EventKind::TaskStatusChanged, json!("QUEUED")),
        ]
    );

    let after = last_seq(&store).await;
    let repeated = store
        .end_attempt(lease, end(agent.id), at(4))
        .await
        .unwrap();
    assert_eq!(repeated, ended);
    assert_eq!(last_seq(&store).await, after, "a repeat appends no event");
    let results = store.list_verification_results(task.id, 10).await.unwrap();
    assert_eq!(results.len(), 1);
    let logs = store
        .list_logs(&LogQuery::for_task(task.id, 10))
        .await
        .unwrap();
    assert_eq!(logs.total_count, 1);
    assert_eq!(logs.logs[0].content, "Task failed: types");
}

/// A failure asks a human when it is not retried: in the same transaction that ends the
/// attempt, once however often the end is reported, and a later failure of the task
/// counts the unresolved exception again. A failure while the task was asked to stop is
/// left as it is.
pub async fn a_failure_that_is_not_retried_asks_a_human(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let exceptions = |task: TaskId| {
        let store = store.clone();
        async move {
            store
                .list_exceptions(&ExceptionQuery {
                    task_id: Some(task),
                    ..ExceptionQuery::default()
                })
                .await
                .unwrap()
                .items
        }
    };
    // Without evidence.
    let task = new_task(&store, "fails", at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let crash = AttemptEnd {
        action: fail("crashed"),
        verification: None,
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    };
    for now in [at(2), at(3)] {
        let failed = store.end_attempt(lease, crash.clone(), now).await.unwrap();
        assert_eq!(failed.status, TaskStatus::Failed);
        let asked = exceptions(task.id).await;
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].exception_type, ExceptionType::UnknownError);
        assert_eq!(asked[0].description.as_deref(), Some("crashed"));
        assert_eq!(asked[0].agent_id, Some(agent.id));
        assert_eq!(asked[0].occurrences, 1, "a repeat counts nothing");
    }
    store
        .apply_task_action(
            task.id,
            TaskAction::Retry {
                not_before: None,
                note: None,
            },
            None,
            at(4),
        )
        .await
        .unwrap();
    let (_, lease) = assign(&store, &task, agent.id, at(5)).await;
    store.end_attempt(lease, crash, at(6)).await.unwrap();
    let asked = exceptions(task.id).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].occurrences, 2,
        "the unresolved exception counts again"
    );

    // With failed verification that the policy does not retry.
    let no_retry = RetryStrategy {
        should_retry: false,
        delay: Duration::ZERO,
        max_attempts: 0,
        requires_human_review: true,
    };
    let task = new_task(&store, "fails verification", at(10)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(11)).await;
    let rejected = AttemptEnd {
        action: fail("types"),
        verification: Some(result(false)),
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default().with(FailureClass::Type, no_retry),
        lock_conflict: false,
    };
    let failed = store.end_attempt(lease, rejected, at(12)).await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let asked = exceptions(task.id).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].exception_type, ExceptionType::VerificationFailed);

    // Failing while asked to stop: neither retried nor asked about.
    let task = new_task(&store, "cancelled while failing", at(20)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(21)).await;
    store
        .apply_task_action(task.id, TaskAction::Cancel, None, at(22))
        .await
        .unwrap();
    let retried_otherwise = AttemptEnd {
        action: fail("types"),
        verification: Some(result(false)),
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    };
    let failed = store
        .end_attempt(lease, retried_otherwise, at(23))
        .await
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(exceptions(task.id).await.is_empty());
}

fn given_back(input_tokens: u64) -> AttemptCompletion {
    AttemptCompletion {
        success: false,
        cancelled: false,
        returned: true,
        lock_conflict: false,
        summary: None,
        error: Some("the runner was stopped while running".into()),
        commit_sha: None,
        usage: Usage {
            input_tokens,
            ..Usage::default()
        },
        diff_stats: None,
        changes: None,
        backend: None,
        model: None,
        verification: None,
    }
}

/// A stopping runner gives its task back: the task is queued again (or cancelled when
/// that was asked), its attempt ends RETURNED with its usage and does not count against
/// the task's attempts, and nobody is asked about it.
pub async fn a_stopping_runner_gives_its_task_back_without_using_an_attempt(store: Arc<dyn Store>) {
    let policy = RetryPolicy::default();
    let agent = new_agent(&store, at(0)).await;
    let mut new = NewTask::new("given back", "d");
    new.max_attempts = 1;
    let task = store.create_task(new, at(0)).await.unwrap().value;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    store
        .apply_task_action(task.id, TaskAction::Start, Some(lease), at(2))
        .await
        .unwrap();
    let back = complete_attempt(&*store, &policy, agent.id, lease, given_back(10), at(3))
        .await
        .unwrap();
    assert_eq!(back.status, TaskStatus::Queued);
    assert_eq!((back.attempt, back.attempts_used), (1, 0));
    assert_eq!(
        (back.assigned_agent_id, back.lease_expires_at),
        (None, None)
    );
    let seq = last_seq(&store).await;
    let again = complete_attempt(&*store, &policy, agent.id, lease, given_back(10), at(4))
        .await
        .unwrap();
    assert_eq!(again.status, TaskStatus::Queued);
    assert_eq!(
        last_seq(&store).await,
        seq,
        "the same report again writes nothing"
    );
    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Returned);
    assert_eq!(attempts[0].usage.input_tokens, 10);
    let slot = store.get_agent(agent.id).await.unwrap();
    assert_eq!(slot.status, crate::model::AgentStatus::Idle);
    assert_eq!((slot.tasks_completed, slot.tasks_failed), (0, 0));
    let asked = store
        .list_exceptions(&ExceptionQuery {
            task_id: Some(task.id),
            status: None,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(asked.total_count, 0, "nobody is asked: {asked:?}");

    // Its one attempt is still there to use.
    let (second, lease) = assign(&store, &back, agent.id, at(5)).await;
    assert_eq!((second.attempt, second.attempts_used), (2, 1));
    let done = store
        .apply_task_action(task.id, complete(), Some(lease), at(6))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Completed);

    // A task whose cancellation was asked is cancelled, not queued again.
    let cancelled = new_task(&store, "cancel while stopping", at(0)).await;
    let (_, lease) = assign(&store, &cancelled, agent.id, at(10)).await;
    store
        .apply_task_action(cancelled.id, TaskAction::Cancel, None, at(11))
        .await
        .unwrap();
    let ended = complete_attempt(&*store, &policy, agent.id, lease, given_back(0), at(12))
        .await
        .unwrap();
    assert_eq!(ended.status, TaskStatus::Cancelled);
}

/// A task whose earlier attempt was reported stuck (its lease ran out) resolves that
/// exception itself when a later attempt completes it.
pub async fn a_completion_resolves_the_stuck_exception_of_its_task(store: Arc<dyn Store>) {
    let task = new_task(&store, "stuck once", at(0)).await;
    let first = new_agent(&store, at(0)).await;
    assign(&store, &task, first.id, at(1)).await;
    let requeued = store
        .expire_leases(at(1).add(LEASE), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(requeued.status, TaskStatus::Queued);
    let stuck = || async {
        store
            .list_exceptions(&ExceptionQuery {
                task_id: Some(task.id),
                exception_type: Some(ExceptionType::AgentStuck),
                status: None,
                ..ExceptionQuery::default()
            })
            .await
            .unwrap()
            .items
    };
    assert_eq!(stuck().await[0].status, ExceptionStatus::Open);

    let second = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &requeued, second.id, at(100_000)).await;
    let end = AttemptEnd {
        action: complete(),
        verification: None,
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    };
    let done = store.end_attempt(lease, end, at(100_001)).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    let closed = stuck().await.remove(0);
    assert_eq!(closed.status, ExceptionStatus::Resolved);
    assert_eq!(closed.resolved_at, Some(at(100_001)));
    assert!(
        closed
            .resolution_notes
            .as_deref()
            .unwrap_or_default()
            .contains("Attempt 2 completed the task"),
        "{closed:?}"
    );
}

/// A change no check applies to completes its task, which says it is unverified; the
/// result keeps every stage's report.
pub async fn an_unverified_change_completes_and_says_so(store: Arc<dyn Store>) {
    use crate::verify::{StageReport, StageStatus};
    let task = new_task(&store, "docs only", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let stage = StageReport::new(
        "syntax",
        FailureKind::Syntax,
        StageStatus::NotApplicable {
            reason: "no changed file in a language the syntax stage parses".into(),
        },
        Vec::new(),
        Duration::from_millis(3),
    );
    let unverified = NewVerificationResult {
        passed: false,
        confidence_score: 0.0,
        syntax_passed: None,
        types_passed: None,
        tests_passed: None,
        tests_total: None,
        tests_failed: None,
        failures: Vec::new(),
        recommendations: Vec::new(),
        unverified: true,
        stages: vec![stage.clone()],
        ..result(true)
    };
    let end = AttemptEnd {
        action: complete(),
        verification: Some(unverified),
        changes: None,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    };
    let done = store.end_attempt(lease, end, at(2)).await.unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.verification_status, VerificationStatus::Unverified);
    let recorded = store.list_verification_results(task.id, 10).await.unwrap();
    assert!(recorded[0].unverified && !recorded[0].passed);
    assert_eq!(recorded[0].stages, [stage]);
}
