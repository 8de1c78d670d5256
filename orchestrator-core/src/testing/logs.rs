//! Agent logs.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::helpers::*;
use crate::ids::{AgentId, TaskId};
use crate::model::{
    LOG_COUNT_LIMIT, LogCursor, LogQuery, LogType, MAX_LOG_CONTENT_CHARS, NewAgentLog,
};
use crate::store::StoreExt;
use crate::store::{MAX_LOG_BATCH, Store};

fn entry(agent: AgentId, task: Option<TaskId>, log_type: LogType, content: &str) -> NewAgentLog {
    NewAgentLog {
        agent_id: agent,
        task_id: task,
        log_type,
        content: content.into(),
        metadata: None,
    }
}

/// An agent's log keeps the order its entries were written in, whatever their arrival
/// instants (a batch shares one; a replica's clock may lag): pages newest first and a
/// reader following with `after` each see every entry once, in that order.
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
            entry(agent.id, Some(task.id), kind, &format!("#{i}"))
        })
        .collect();
    assert_eq!(store.append_logs(first, at(100)).await.unwrap(), 5);
    let second: Vec<_> = (5..7)
        .map(|i| entry(agent.id, None, LogType::Info, &format!("#{i}")))
        .collect();
    store.append_logs(second, at(100)).await.unwrap();
    let third: Vec<_> = (7..9)
        .map(|i| entry(agent.id, None, LogType::Info, &format!("#{i}")))
        .collect();
    store.append_logs(third, at(50)).await.unwrap();
    assert_eq!(
        store.get_agent(agent.id).await.unwrap().last_activity_at,
        Some(at(50))
    );
    let written: Vec<String> = (0..9).map(|i| format!("#{i}")).collect();

    let mut seen = HashSet::new();
    let mut newest_first = Vec::new();
    let mut query = LogQuery::new(agent.id, 2);
    loop {
        let page = store.list_logs(&query).await.unwrap();
        assert_eq!(page.total_count, 9);
        for log in &page.logs {
            assert!(seen.insert(log.id), "entry returned twice");
            newest_first.push(log.content.clone());
        }
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    let mut expected = written.clone();
    expected.reverse();
    assert_eq!(
        newest_first, expected,
        "pages newest first in written order"
    );

    // Following from the start, three at a time.
    let mut followed = Vec::new();
    let mut query = LogQuery {
        after: Some(LogCursor::Entry {
            attempt: 0,
            sequence: 0,
        }),
        ..LogQuery::new(agent.id, 3)
    };
    loop {
        let page = store.list_logs(&query).await.unwrap();
        let Some(last) = page.logs.last() else { break };
        query.after = Some(LogCursor::after(last));
        followed.extend(page.logs.iter().map(|log| log.content.clone()));
    }
    assert_eq!(followed, written, "followed oldest first, every entry once");
    let sequences: Vec<u64> = store
        .list_logs(&LogQuery::new(agent.id, 10))
        .await
        .unwrap()
        .logs
        .iter()
        .map(|log| log.sequence)
        .collect();
    assert_eq!(sequences, [9, 8, 7, 6, 5, 4, 3, 2, 1]);
    // Both cursors: the entries strictly between them, none between a cursor and itself.
    let between = store
        .list_logs(&LogQuery {
            before: query.after,
            ..query.clone()
        })
        .await
        .unwrap();
    assert!(between.logs.is_empty(), "{between:?}");

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
    assert!(
        of_task.logs.iter().all(|log| log.attempt == Some(0)),
        "written before the task's first attempt: {:?}",
        of_task.logs
    );
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

/// A task's activity is counted and its log listed across agents; agents are looked up in
/// bulk; locks are listed by task.
pub async fn task_activity_is_counted_and_listed_by_task(store: Arc<dyn Store>) {
    use crate::lock::{LockOutcome, LockQuery, LockRequest};
    use crate::model::{ExceptionSeverity, ExceptionType, LockMode, NewException};

    let first = new_agent(&store, at(0)).await;
    let second = new_agent(&store, at(0)).await;
    let busy = new_task(&store, "busy", at(0)).await;
    let quiet = new_task(&store, "quiet", at(0)).await;
    let logs = vec![
        entry(first.id, Some(busy.id), LogType::Info, "one"),
        entry(second.id, Some(busy.id), LogType::Info, "two"),
        entry(second.id, Some(busy.id), LogType::Error, "three"),
        entry(second.id, None, LogType::Info, "not about a task"),
    ];
    store.append_logs(logs, at(10)).await.unwrap();
    let mut raised =
        NewException::new(ExceptionType::HighRiskCode, ExceptionSeverity::Warning, "x");
    raised.task_id = Some(busy.id);
    store.raise_exception(raised, at(20)).await.unwrap();

    let counts = store
        .task_activity_counts(&[busy.id, quiet.id, TaskId::new()])
        .await
        .unwrap();
    let busy_counts = counts.iter().find(|c| c.task_id == busy.id).unwrap();
    assert_eq!(
        (
            busy_counts.logs,
            busy_counts.exceptions,
            busy_counts.verification_results
        ),
        (3, 1, 0)
    );
    assert!(
        counts
            .iter()
            .filter(|c| c.task_id != busy.id)
            .all(|c| c.task_id == quiet.id && c.logs == 0 && c.exceptions == 0)
    );
    assert!(store.task_activity_counts(&[]).await.unwrap().is_empty());

    let page = store
        .list_logs(&LogQuery::for_task(busy.id, 10))
        .await
        .unwrap();
    assert_eq!(page.total_count, 3);
    assert_eq!(page.logs.len(), 3);
    assert!(page.logs.iter().all(|l| l.task_id == Some(busy.id)));
    let mine = LogQuery {
        task_id: Some(busy.id),
        ..LogQuery::new(second.id, 10)
    };
    assert_eq!(store.list_logs(&mine).await.unwrap().total_count, 2);
    assert_not_found(
        store
            .list_logs(&LogQuery::for_task(TaskId::new(), 10))
            .await,
    );
    let neither = LogQuery {
        agent_id: None,
        task_id: None,
        ..LogQuery::for_task(busy.id, 10)
    };
    assert_invalid_input(store.list_logs(&neither).await, "agentId");

    let mut found = store
        .get_agents(&[second.id, first.id, second.id, AgentId::new()])
        .await
        .unwrap();
    found.sort_by_key(|a| a.id);
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(found.iter().map(|a| a.id).collect::<Vec<_>>(), expected);
    assert_invalid_input(
        store
            .get_agents(&vec![first.id; crate::store::MAX_LOOKUP_IDS + 1])
            .await,
        "ids",
    );
    let mut tasks = store
        .get_tasks(&[quiet.id, busy.id, busy.id, TaskId::new()])
        .await
        .unwrap();
    tasks.sort_by_key(|t| t.title.clone());
    let titles: Vec<&str> = tasks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, ["busy", "quiet"]);
    assert!(store.get_tasks(&[]).await.unwrap().is_empty());

    let request = LockRequest {
        holder: first.id,
        task_id: Some(busy.id),
        paths: vec!["src/busy.rs".into()],
        mode: LockMode::Exclusive,
        ttl: LEASE,
    };
    assert!(matches!(
        store.acquire(request, at(30)).await.unwrap(),
        LockOutcome::Granted(_)
    ));
    let other = LockRequest {
        holder: second.id,
        task_id: None,
        paths: vec!["src/other.rs".into()],
        mode: LockMode::Exclusive,
        ttl: LEASE,
    };
    store.acquire(other, at(30)).await.unwrap();
    let by_task = LockQuery {
        task_id: Some(busy.id),
        ..LockQuery::default()
    };
    let locks = store.list_locks(&by_task, at(40)).await.unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].file_path, "src/busy.rs");

    let counts = store
        .agent_activity_counts(&[first.id, second.id, AgentId::new()])
        .await
        .unwrap();
    let of = |agent: AgentId| counts.iter().find(|c| c.agent_id == agent).copied();
    let first_counts = of(first.id).unwrap();
    assert_eq!((first_counts.logs, first_counts.file_locks), (1, 1));
    let second_counts = of(second.id).unwrap();
    assert_eq!((second_counts.logs, second_counts.file_locks), (3, 1));
    assert_eq!(counts.len(), 2, "unknown agents are left out");
}

/// Entries reported on an attempt need its live lease, its agent and its task; anything
/// else writes nothing.
pub async fn attempt_logs_need_the_live_lease(store: Arc<dyn Store>) {
    use crate::ids::LeaseToken;

    let agent = new_agent(&store, at(0)).await;
    let other = new_agent(&store, at(0)).await;
    let task = new_task(&store, "t", at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(10)).await;
    let line = |agent: AgentId, task: Option<TaskId>| vec![entry(agent, task, LogType::Info, "x")];

    let written = store
        .append_attempt_logs(lease, line(agent.id, Some(task.id)), at(20))
        .await
        .unwrap();
    assert_eq!(written, 1);
    let forged = crate::change::LeaseRef {
        lease_token: LeaseToken::new(),
        ..lease
    };
    assert_conflict(
        store
            .append_attempt_logs(forged, line(agent.id, Some(task.id)), at(30))
            .await,
    );
    assert_conflict(
        store
            .append_attempt_logs(lease, line(other.id, Some(task.id)), at(30))
            .await,
    );
    assert_invalid_input(
        store
            .append_attempt_logs(lease, line(agent.id, None), at(30))
            .await,
        "taskId",
    );
    store
        .apply_task_action(task.id, complete(), Some(lease), at(40))
        .await
        .unwrap();
    assert_conflict(
        store
            .append_attempt_logs(lease, line(agent.id, Some(task.id)), at(50))
            .await,
    );
    let page = store
        .list_logs(&LogQuery::for_task(task.id, 10))
        .await
        .unwrap();
    assert_eq!(page.total_count, 1, "refused entries were not written");
}

/// A page of a long history counts it only up to [`LOG_COUNT_LIMIT`], and says so.
pub async fn log_counts_stop_at_the_limit(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "chatty", at(0)).await;
    let batch = |n: usize| -> Vec<NewAgentLog> {
        (0..n)
            .map(|i| entry(agent.id, Some(task.id), LogType::Info, &format!("#{i}")))
            .collect()
    };
    let limit = usize::try_from(LOG_COUNT_LIMIT).unwrap();
    let mut written = 0;
    while written < limit {
        let n = (limit - written).min(MAX_LOG_BATCH);
        store.append_logs(batch(n), at(1)).await.unwrap();
        written += n;
    }
    let page = store
        .list_logs(&LogQuery::for_task(task.id, 5))
        .await
        .unwrap();
    assert_eq!(
        (page.total_count, page.total_count_capped),
        (LOG_COUNT_LIMIT, false)
    );
    store.append_logs(batch(2), at(2)).await.unwrap();
    for query in [LogQuery::for_task(task.id, 5), LogQuery::new(agent.id, 5)] {
        let page = store.list_logs(&query).await.unwrap();
        assert_eq!(page.logs.len(), 5);
        assert_eq!(
            (page.total_count, page.total_count_capped),
            (LOG_COUNT_LIMIT, true)
        );
    }
}

/// A log is searched by its entries' text, ignoring the case of ASCII letters, with the
/// other filters and the paging; the search text is bounded.
pub async fn logs_are_searched_by_their_text(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "searched", at(0)).await;
    let written = [
        (LogType::Info, "Reading SRC/Parser.rs"),
        (LogType::ToolCall, "edit src/parser.rs"),
        (LogType::Info, "running the tests"),
        (LogType::Error, "parser.rs:3: expected `;`"),
        (LogType::Info, "Ünïcode PARSER stays as written"),
    ];
    store
        .append_logs(
            written
                .iter()
                .map(|(kind, text)| entry(agent.id, Some(task.id), *kind, text))
                .collect(),
            at(1),
        )
        .await
        .unwrap();
    let texts = |page: &crate::model::LogPage| -> Vec<String> {
        page.logs.iter().map(|log| log.content.clone()).collect()
    };
    let search = |text: &str| LogQuery {
        search: Some(text.to_owned()),
        ..LogQuery::for_task(task.id, 10)
    };
    let found = store.list_logs(&search("  PARSER.rs ")).await.unwrap();
    assert_eq!(
        texts(&found),
        [
            "parser.rs:3: expected `;`",
            "edit src/parser.rs",
            "Reading SRC/Parser.rs"
        ]
    );
    assert_eq!(found.total_count, 3);
    let errors = store
        .list_logs(&LogQuery {
            log_type: Some(LogType::Error),
            ..search("parser")
        })
        .await
        .unwrap();
    assert_eq!(texts(&errors), ["parser.rs:3: expected `;`"]);
    let first = store
        .list_logs(&LogQuery {
            limit: 1,
            ..search("parser")
        })
        .await
        .unwrap();
    let rest = store
        .list_logs(&LogQuery {
            before: first.next_cursor,
            limit: 10,
            ..search("parser")
        })
        .await
        .unwrap();
    assert_eq!(rest.logs.len(), 3, "the search holds past the cursor");
    assert_eq!(
        texts(&store.list_logs(&search("ünïcode")).await.unwrap()),
        Vec::<String>::new(),
        "letters other than ASCII match exactly"
    );
    assert_eq!(
        store.list_logs(&search("   ")).await.unwrap().logs.len(),
        5,
        "a blank search is none"
    );
    assert_invalid_input(store.list_logs(&search(&"x".repeat(201))).await, "search");
}
