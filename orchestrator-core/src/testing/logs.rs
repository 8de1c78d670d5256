//! Agent logs.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::helpers::*;
use crate::ids::{AgentId, TaskId};
use crate::model::{LogQuery, LogType, MAX_LOG_CONTENT_CHARS, NewAgentLog};
use crate::store::Store;

fn entry(agent: AgentId, task: Option<TaskId>, log_type: LogType, content: &str) -> NewAgentLog {
    NewAgentLog {
        agent_id: agent,
        task_id: task,
        log_type,
        content: content.into(),
        metadata: None,
    }
}

/// Paging newest first through entries that share a timestamp returns each exactly once.
pub async fn logs_page_without_skipping_ties(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "t", at(0)).await;
    let first: Vec<_> = (0..5)
        .map(|i| {
            let kind = if i % 2 == 0 {
                LogType::Thinking
            } else {
                LogType::ToolCall
            };
            entry(agent.id, Some(task.id), kind, &format!("batch one #{i}"))
        })
        .collect();
    assert_eq!(store.append_logs(first, at(100)).await.unwrap(), 5);
    let second: Vec<_> = (0..4)
        .map(|i| entry(agent.id, None, LogType::Info, &format!("batch two #{i}")))
        .collect();
    store.append_logs(second, at(200)).await.unwrap();
    assert_eq!(
        store.get_agent(agent.id).await.unwrap().last_activity_at,
        Some(at(200))
    );

    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut query = LogQuery::new(agent.id, 2);
    loop {
        let page = store.list_logs(&query).await.unwrap();
        assert_eq!(page.total_count, 9);
        for log in &page.logs {
            assert!(seen.insert(log.id), "entry returned twice");
            order.push((log.created_at, log.id));
        }
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9, "entries were skipped");
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "not newest first");

    let thinking = store
        .list_logs(&LogQuery {
            log_type: Some(LogType::Thinking),
            ..LogQuery::new(agent.id, 10)
        })
        .await
        .unwrap();
    assert_eq!((thinking.logs.len(), thinking.total_count), (3, 3));
    assert!(thinking.next_cursor.is_none());
    let of_task = store
        .list_logs(&LogQuery {
            task_id: Some(task.id),
            ..LogQuery::new(agent.id, 10)
        })
        .await
        .unwrap();
    assert_eq!(of_task.total_count, 5);
    let exact = store.list_logs(&LogQuery::new(agent.id, 9)).await.unwrap();
    assert_eq!((exact.logs.len(), exact.next_cursor), (9, None));
}

/// Batches are validated whole, long content is cut with a marker, metadata and
/// unicode survive.
pub async fn logs_are_validated_and_capped(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    assert_invalid_input(store.append_logs(Vec::new(), at(1)).await, "logs");
    let too_many = vec![entry(agent.id, None, LogType::Info, "x"); 1_001];
    assert_invalid_input(store.append_logs(too_many, at(1)).await, "logs");
    let mixed = vec![
        entry(agent.id, None, LogType::Info, "fine"),
        entry(AgentId::new(), None, LogType::Info, "unknown agent"),
    ];
    assert_not_found(store.append_logs(mixed, at(1)).await);
    let unknown_task = vec![entry(agent.id, Some(TaskId::new()), LogType::Info, "x")];
    assert_not_found(store.append_logs(unknown_task, at(1)).await);
    assert_eq!(
        store
            .list_logs(&LogQuery::new(agent.id, 10))
            .await
            .unwrap()
            .total_count,
        0,
        "a rejected batch left entries behind"
    );
    assert_invalid_input(
        store.list_logs(&LogQuery::new(agent.id, 501)).await,
        "limit",
    );

    let huge = "日本語🦀".repeat(MAX_LOG_CONTENT_CHARS / 2);
    let mut with_metadata = entry(agent.id, None, LogType::ToolCall, "Calling write_file");
    with_metadata.metadata = Some(json!({"tool": "write_file", "input": {"path": "src/ü.rs"}}));
    store
        .append_logs(
            vec![
                entry(agent.id, None, LogType::ToolResult, &huge),
                with_metadata,
            ],
            at(2),
        )
        .await
        .unwrap();
    let page = store.list_logs(&LogQuery::new(agent.id, 10)).await.unwrap();
    let capped = page
        .logs
        .iter()
        .find(|l| l.log_type == LogType::ToolResult)
        .unwrap();
    assert!(capped.content.starts_with("日本語🦀日本語🦀"));
    assert!(capped.content.ends_with(&format!(
        "[{} more characters not kept]",
        huge.chars().count() - MAX_LOG_CONTENT_CHARS
    )));
    let call = page
        .logs
        .iter()
        .find(|l| l.log_type == LogType::ToolCall)
        .unwrap();
    assert_eq!(call.metadata.as_ref().unwrap()["input"]["path"], "src/ü.rs");
    assert_eq!(call.created_at, at(2), "entries carry the server's time");
}
