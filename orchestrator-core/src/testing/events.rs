//! The event log.

use std::sync::Arc;

use super::helpers::*;
use crate::change::TaskAction;
use crate::model::EventKind;
use crate::store::Store;

/// Sequence numbers strictly increase, pages resume where they stopped, and every change
/// is there.
pub async fn events_are_ordered_and_resumable(store: Arc<dyn Store>) {
    let start = last_seq(&store).await;
    let task = new_task(&store, "observed", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    store
        .apply_task_action(task.id, TaskAction::Start, Some(lease), at(2))
        .await
        .unwrap();
    store
        .apply_task_action(task.id, complete(), Some(lease), at(3))
        .await
        .unwrap();

    let all = store.events_since(start, 1_000).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "not increasing"
    );
    assert!(all.iter().all(|e| e.seq > start));
    let kinds: Vec<_> = all.iter().map(|e| e.kind).collect();
    assert_eq!(kinds[0], EventKind::TaskCreated);
    assert_eq!(kinds[1], EventKind::AgentCreated);
    assert!(kinds.contains(&EventKind::TaskStatusChanged));
    let assigned = all
        .iter()
        .find(|e| e.kind == EventKind::TaskStatusChanged)
        .unwrap();
    assert_eq!(assigned.task_id, Some(task.id));
    assert_eq!(assigned.agent_id, Some(agent.id));
    assert_eq!(assigned.payload["to"], "ASSIGNED");
    assert_eq!(assigned.created_at, at(1));

    let mut resumed = Vec::new();
    let mut after = start;
    loop {
        let page = store.events_since(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        match page.last() {
            Some(last) => after = last.seq,
            None => break,
        }
        resumed.extend(page);
    }
    assert_eq!(resumed, all);
    assert!(store.events_since(after, 10).await.unwrap().is_empty());
    assert_invalid_input(store.events_since(0, 0).await, "limit");
    assert_invalid_input(store.events_since(0, 1_001).await, "limit");
}
