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
    assert_eq!(
        store.last_event_seq().await.unwrap(),
        all.last().unwrap().seq,
        "the newest event's number"
    );
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

/// A reader following the log while eight writers commit concurrently never skips an
/// event: what it collects, page after page, is every event, in increasing order.
pub async fn a_reader_following_the_log_never_skips_an_event(store: Arc<dyn Store>) {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    let start = last_seq(&store).await;
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = start;
            loop {
                let done = !writing.load(Ordering::SeqCst);
                let page = store.events_since(after, 50).await.expect("read the log");
                if let Some(last) = page.last() {
                    after = last.seq;
                }
                let empty = page.is_empty();
                seen.extend(page.into_iter().map(|e| e.seq));
                if done && empty {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..15 {
                new_task(&store, &format!("writer {writer} task {i}"), at(i)).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not increasing");
    let all: HashSet<i64> = store
        .events_since(start, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len(), 120);
    let collected: HashSet<i64> = seen.into_iter().collect();
    assert_eq!(collected, all, "the reader skipped events");
}
