//! The changes of attempts, kept with their ends.

use std::sync::Arc;

use super::helpers::*;
use crate::change::{AttemptEnd, LeaseRef, TaskAction};
use crate::ids::TaskId;
use crate::model::{
    AttemptChanges, ChangeReport, FileChange, FileChangeStatus, MAX_PATCH_BYTES, TaskStatus,
};
use crate::retry::RetryPolicy;
use crate::store::{Store, StoreExt};

/// A report of one modified file, renamed and binary ones beside it, with `patch`.
fn report(patch: &str) -> ChangeReport {
    ChangeReport {
        files: vec![
            FileChange {
                path: "docs/数据库/🦀.md".into(),
                old_path: Some("docs/old.md".into()),
                status: FileChangeStatus::Renamed,
                insertions: 0,
                deletions: 0,
                binary: false,
            },
            FileChange {
                path: "logo.png".into(),
                old_path: None,
                status: FileChangeStatus::Added,
                insertions: 0,
                deletions: 0,
                binary: true,
            },
            FileChange {
                path: "src/lib.rs".into(),
                old_path: None,
                status: FileChangeStatus::Modified,
                insertions: 2,
                deletions: 1,
                binary: false,
            },
        ],
        omitted_files: 3,
        patch: patch.into(),
        truncated: false,
        max_patch_bytes: 256 * 1024,
    }
}

/// An attempt's end by `action`, with `changes`.
fn end(action: TaskAction, changes: Option<ChangeReport>) -> AttemptEnd {
    AttemptEnd {
        action,
        verification: None,
        changes,
        backend: None,
        model: None,
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    }
}

/// A runner's changes are kept with the end of its attempt, per attempt, byte for byte;
/// an attempt whose runner sent none has none; changes that break the bounds refuse the
/// whole end; and they go with their task.
pub async fn attempt_changes_are_kept_with_the_end_of_their_attempt(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "changes", at(0)).await;
    assert!(store.attempt_changes(task.id).await.unwrap().is_empty());

    let first_patch = "diff --git a/src/lib.rs b/src/lib.rs\n-fn a() {}\n+fn ä() {}\n+// 🦀\n";
    let (_, first) = assign(&store, &task, agent.id, at(1)).await;
    store
        .end_attempt(first, end(fail("tests"), Some(report(first_patch))), at(2))
        .await
        .unwrap();
    retry(&store, task.id, at(3)).await;

    let (_, second) = assign(&store, &task, agent.id, at(4)).await;
    let mut unbounded = report("too long for its cap");
    unbounded.max_patch_bytes = 4;
    assert_invalid_input(
        store
            .end_attempt(second, end(complete(), Some(unbounded)), at(5))
            .await,
        "changes.patch",
    );
    assert_eq!(
        store.get_task(task.id).await.unwrap().status,
        TaskStatus::Assigned,
        "a refused end changes nothing"
    );
    let largest = "é".repeat(MAX_PATCH_BYTES as usize / 2);
    let mut at_the_limit = report(&largest);
    at_the_limit.max_patch_bytes = MAX_PATCH_BYTES;
    at_the_limit.truncated = true;
    let second_end = end(complete(), Some(at_the_limit.clone()));
    store
        .end_attempt(second, second_end.clone(), at(6))
        .await
        .unwrap();
    store.end_attempt(second, second_end, at(7)).await.unwrap();

    let kept = store.attempt_changes(task.id).await.unwrap();
    assert_eq!(kept.len(), 2, "kept once per attempt");
    assert_eq!(
        kept[0],
        AttemptChanges {
            task_id: task.id,
            attempt_number: 1,
            created_at: at(2),
            changes: report(first_patch),
        }
    );
    let (second_kept, largest_kept) = (&kept[1], &kept[1].changes.patch);
    assert_eq!(
        (second_kept.attempt_number, second_kept.created_at),
        (2, at(6))
    );
    // Compared without printing a megabyte on failure.
    assert!(
        *largest_kept == largest,
        "the largest patch comes back byte for byte ({} bytes)",
        largest_kept.len()
    );
    assert!(second_kept.changes == at_the_limit, "as sent");

    // Another task's attempts: the first sends no changes, the second does.
    let other = new_task(&store, "other changes", at(10)).await;
    let (_, without) = assign(&store, &other, agent.id, at(11)).await;
    store
        .end_attempt(without, end(fail("crashed"), None), at(12))
        .await
        .unwrap();
    assert!(store.attempt_changes(other.id).await.unwrap().is_empty());
    retry(&store, other.id, at(13)).await;
    let (_, with) = assign(&store, &other, agent.id, at(14)).await;
    store
        .end_attempt(with, end(fail("tests"), Some(report(""))), at(15))
        .await
        .unwrap();
    let numbers: Vec<u32> = store
        .attempt_changes(other.id)
        .await
        .unwrap()
        .iter()
        .map(|kept| kept.attempt_number)
        .collect();
    assert_eq!(numbers, [2]);
    assert_eq!(store.attempt_changes(task.id).await.unwrap().len(), 2);

    retry(&store, other.id, at(16)).await;
    store.delete_task(other.id, at(17)).await.unwrap();
    assert_not_found(store.attempt_changes(other.id).await);
    assert_not_found(store.attempt_changes(TaskId::new()).await);
    assert_eq!(
        store.attempt_changes(task.id).await.unwrap().len(),
        2,
        "another task's deletion leaves these"
    );
}

/// A stale lease ends nothing, and keeps none of the changes it carried.
pub async fn changes_under_a_stale_lease_are_not_kept(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "stale changes", at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let stale = LeaseRef {
        lease_token: crate::ids::LeaseToken::new(),
        ..lease
    };
    assert_conflict(
        store
            .end_attempt(stale, end(complete(), Some(report("x"))), at(2))
            .await,
    );
    assert!(store.attempt_changes(task.id).await.unwrap().is_empty());
}
