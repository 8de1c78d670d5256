//! Concurrent writers of one row.

use std::sync::Arc;

use super::helpers::*;
use crate::change::TaskAction;
use crate::error::Error;
use crate::model::{AgentStatus, TaskEdit, TaskStatus};
use crate::store::Store;
use crate::store::StoreExt;

/// Concurrent edits of different fields of one task all land; none is lost.
pub async fn concurrent_edits_of_one_task_are_not_lost(store: Arc<dyn Store>) {
    let task = new_task(&store, "contended", at(0)).await;
    let writers = 16;
    let mut handles = Vec::new();
    for i in 0..writers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let edit = if i % 2 == 0 {
                TaskEdit {
                    files_hint: Some(vec![format!("src/file_{i}.rs")]),
                    ..TaskEdit::default()
                }
            } else {
                TaskEdit {
                    title: Some(format!("title {i}")),
                    ..TaskEdit::default()
                }
            };
            store.edit_task(task.id, edit, at(i)).await
        }));
    }
    let mut landed = 0;
    for handle in handles {
        match handle.await.expect("writer panicked") {
            Ok(_) => landed += 1,
            Err(Error::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    let stored = store.get_task(task.id).await.unwrap();
    assert_eq!(
        stored.revision,
        task.revision + landed,
        "an update was lost"
    );
    assert!(landed >= 1);
    assert!(stored.title.starts_with("title ") && stored.files_hint.len() == 1);
}

/// Eight agents assigning the same task at once: exactly one wins, the others get a typed
/// refusal, and no slot is left bound to a task it does not hold.
pub async fn concurrent_assignment_of_one_task_has_one_winner(store: Arc<dyn Store>) {
    let task = new_task(&store, "prize", at(0)).await;
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(new_agent(&store, at(0)).await);
    }
    let mut handles = Vec::new();
    for agent in &agents {
        let store = store.clone();
        let agent_id = agent.id;
        handles.push(tokio::spawn(async move {
            store
                .apply_task_action(
                    task.id,
                    TaskAction::Assign {
                        agent_id,
                        runner_session_id: None,
                        lease_ttl: LEASE,
                    },
                    None,
                    at(1),
                )
                .await
        }));
    }
    let mut winners = 0;
    for handle in handles {
        match handle.await.expect("claimer panicked") {
            Ok(_) => winners += 1,
            Err(Error::InvalidTransition(_) | Error::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    let stored = store.get_task(task.id).await.unwrap();
    assert_eq!((stored.status, stored.attempt), (TaskStatus::Assigned, 1));
    assert_eq!(store.list_attempts(task.id).await.unwrap().len(), 1);
    let mut working = 0;
    for agent in &agents {
        let slot = store.get_agent(agent.id).await.unwrap();
        if slot.status == AgentStatus::Working {
            working += 1;
            assert_eq!(stored.assigned_agent_id, Some(slot.id));
        } else {
            assert_eq!(slot.current_task_id, None);
        }
    }
    assert_eq!(working, 1);
}
