//! Verification results.

use std::sync::Arc;

use super::helpers::*;
use crate::model::{FailureKind, NewVerificationResult, VerificationFailure, VerificationStatus};
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
        .record_verification(task.id, result(false), at(1))
        .await
        .unwrap();
    assert_eq!(first.attempt_number, 1);
    let after_first = store.get_task(task.id).await.unwrap();
    assert_eq!(after_first.verification_status, VerificationStatus::Failed);
    assert_eq!(after_first.verification_attempts, 1);
    let second = store
        .record_verification(task.id, result(true), at(2))
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
        store.record_verification(task.id, bad, at(3)).await,
        "confidenceScore",
    );
    let mut inconsistent = result(true);
    inconsistent.tests_failed = Some(13);
    assert_invalid_input(
        store
            .record_verification(task.id, inconsistent, at(3))
            .await,
        "testsFailed",
    );
    assert_eq!(
        store.get_task(task.id).await.unwrap().verification_attempts,
        2
    );
}
