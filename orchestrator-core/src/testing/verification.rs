//! Verification results.

use std::sync::Arc;

use super::helpers::*;
use crate::attempts::{AttemptCompletion, complete_attempt};
use crate::change::LeaseRef;
use crate::ids::LeaseToken;
use crate::model::{
    FailureKind, NewVerificationResult, TaskStatus, Usage, VerificationFailure, VerificationStatus,
};
use crate::retry::RetryPolicy;
use crate::store::Store;

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
        summary: None,
        error: Some("types".into()),
        commit_sha: None,
        usage: Usage::default(),
        diff_stats: None,
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
