//! Creating, reading, listing, editing and validating tasks.

use std::sync::Arc;

use super::helpers::*;
use crate::change::TaskAction;
use crate::error::Error;
use crate::ids::{AgentId, ExceptionId, RunnerSessionId, TaskId};
use crate::model::{
    EventKind, LogQuery, NewTask, RiskLevel, SortOrder, TaskCursor, TaskEdit, TaskQuery, TaskSort,
    TaskStatus, VerificationStatus,
};
use crate::store::Store;
use crate::store::StoreExt;

/// A new task is QUEUED with the default priority, risk and attempts, and an event
/// records it.
pub async fn task_is_created_queued_with_defaults(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    let before = last_seq(&store).await;
    let created = store
        .create_task(NewTask::new("Add login", "JWT login and logout"), at(0))
        .await
        .unwrap();
    assert!(created.created);
    let task = created.value;
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.priority, 2);
    assert_eq!(task.risk_level, RiskLevel::Medium);
    assert_eq!(task.verification_status, VerificationStatus::Pending);
    assert_eq!(
        (task.attempt, task.retry_count, task.max_attempts),
        (0, 0, 3)
    );
    assert_eq!(task.created_at, at(0));
    assert_eq!(store.get_task(task.id).await.unwrap(), task);
    let events = store.events_since(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TaskCreated);
    assert_eq!(events[0].task_id, Some(task.id));
}

/// Empty or over-long titles, priorities outside 0..3 and unknown enum strings are
/// rejected with a typed error naming the field, and nothing is written.
pub async fn bad_task_input_is_a_typed_error(store: Arc<dyn Store>) {
    let before = last_seq(&store).await;
    let mut task = NewTask::new("", "d");
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "title");
    task.title = "   ".into();
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "title");
    task.title = "x".repeat(501);
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "title");
    task.title = "ok".into();
    task.description = String::new();
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "description");
    task.description = "d".into();
    task.priority = 4;
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "priority");
    task.priority = 0;
    task.max_attempts = 0;
    assert_invalid_input(store.create_task(task.clone(), at(0)).await, "maxAttempts");
    task.max_attempts = 3;
    task.files_hint = vec!["src/".into(), String::new()];
    assert_invalid_input(store.create_task(task, at(0)).await, "filesHint[1]");
    assert_invalid_input("URGENT".parse::<TaskStatus>(), "status");
    assert_invalid_input("EXTREME".parse::<RiskLevel>(), "riskLevel");
    assert_invalid_input("not-a-uuid".parse::<TaskId>(), "taskId");
    assert!(
        serde_json::from_str::<NewTask>(r#"{"title":"t","description":"d","riskLevel":"EXTREME"}"#)
            .is_err()
    );
    let page = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 0, "a rejected task was stored");
    assert_eq!(
        last_seq(&store).await,
        before,
        "a rejected task wrote an event"
    );
}

/// Creating with an idempotency key twice returns the first task and writes nothing new.
pub async fn idempotency_key_returns_the_existing_task(store: Arc<dyn Store>) {
    let mut new = NewTask::new("Once", "only once");
    new.idempotency_key = Some("client-42".into());
    new.files_hint = vec!["src\\lib.rs".into()];
    let first = store.create_task(new.clone(), at(0)).await.unwrap();
    let seq = last_seq(&store).await;
    // The same body again (as the store keeps it, too) is the same task.
    let second = store.create_task(new.clone(), at(5)).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(second.value, first.value);
    let mut normalized = new.clone();
    normalized.files_hint = vec!["src/lib.rs".into()];
    assert!(!store.create_task(normalized, at(5)).await.unwrap().created);
    assert_eq!(last_seq(&store).await, seq);
    // The key with a different body is refused, and writes nothing.
    let mut different = new.clone();
    different.title = "A different title".into();
    let refused = store.create_task(different.clone(), at(5)).await;
    assert_conflict(refused);
    let page = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 1);

    let mut fresh = NewTask::new("Fresh", "new in the batch");
    fresh.idempotency_key = Some("client-43".into());
    assert_conflict(
        store
            .create_tasks(vec![fresh.clone(), different], at(6))
            .await,
    );
    assert_eq!(
        store
            .list_tasks(&TaskQuery::default())
            .await
            .unwrap()
            .total_count,
        1,
        "a batch with one refused repeat writes nothing"
    );
    let batch = store.create_tasks(vec![new, fresh], at(6)).await.unwrap();
    assert_eq!(
        batch[0], first.value,
        "a batch returns the task its key names"
    );
    assert_eq!(batch[1].title, "Fresh");
    let page = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 2, "only the new key made a task");
}

/// Dependencies are recorded sorted and deduplicated; an unknown one is rejected.
pub async fn dependencies_must_exist(store: Arc<dyn Store>) {
    let a = new_task(&store, "a", at(0)).await;
    let b = new_task(&store, "b", at(1)).await;
    let mut new = NewTask::new("c", "after a and b");
    new.depends_on = vec![b.id, a.id, b.id];
    let c = store.create_task(new.clone(), at(2)).await.unwrap().value;
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(c.depends_on, expected);
    assert_eq!(store.get_task(c.id).await.unwrap().depends_on, expected);
    new.depends_on = vec![TaskId::new()];
    assert_conflict_naming(store.create_task(new, at(3)).await, "dependsOn: task ");
}

/// A batch is written whole or not at all, and its errors name the failing index.
pub async fn batch_creation_is_all_or_nothing(store: Arc<dyn Store>) {
    let batch: Vec<NewTask> = (0..3)
        .map(|i| NewTask::new(format!("batch {i}"), "d"))
        .collect();
    let created = store.create_tasks(batch.clone(), at(0)).await.unwrap();
    assert_eq!(created.len(), 3);
    assert_eq!(created[2].title, "batch 2");

    let mut broken = batch.clone();
    broken[2].title = String::new();
    assert_invalid_input(store.create_tasks(broken, at(1)).await, "tasks[2].title");
    let mut unknown_dependency = batch.clone();
    unknown_dependency[1].depends_on = vec![TaskId::new()];
    assert_conflict_naming(
        store.create_tasks(unknown_dependency, at(1)).await,
        "tasks[1].dependsOn: task ",
    );
    let too_many: Vec<NewTask> = (0..51).map(|i| NewTask::new(format!("{i}"), "d")).collect();
    assert_invalid_input(store.create_tasks(too_many, at(1)).await, "tasks");
    assert_invalid_input(store.create_tasks(Vec::new(), at(1)).await, "tasks");
    let mut keyed = batch;
    keyed[0].idempotency_key = Some("k".into());
    keyed[1].idempotency_key = Some("k".into());
    assert_conflict_naming(
        store.create_tasks(keyed, at(1)).await,
        "tasks[1].idempotencyKey: ",
    );

    let page = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 3, "a rejected batch left rows behind");
}

/// Every lookup of an unknown id is `NotFound`.
pub async fn unknown_ids_are_not_found(store: Arc<dyn Store>) {
    let task = TaskId::new();
    assert_not_found(store.get_task(task).await);
    assert_not_found(store.edit_task(task, TaskEdit::default(), at(0)).await);
    assert_not_found(
        store
            .apply_task_action(task, TaskAction::Cancel, None, at(0))
            .await,
    );
    assert_not_found(store.delete_task(task, at(0)).await);
    assert_not_found(store.list_attempts(task).await);
    assert_not_found(store.list_verification_results(task, 10).await);
    assert_not_found(store.get_agent(AgentId::new()).await);
    assert_not_found(store.list_logs(&LogQuery::new(AgentId::new(), 10)).await);
    assert_not_found(store.get_exception(ExceptionId::new()).await);
    assert_not_found(store.get_runner_session(RunnerSessionId::new()).await);
    let real = new_task(&store, "real", at(0)).await;
    let assign_unknown_agent = store
        .apply_task_action(
            real.id,
            TaskAction::Assign {
                agent_id: AgentId::new(),
                runner_session_id: None,
                lease_ttl: LEASE,
            },
            None,
            at(1),
        )
        .await;
    assert_not_found(assign_unknown_agent);
}

/// Keyset pages, walked from each page's last task, list every task once and in the
/// order of one whole page, for every sort in both directions, through ties in the sort
/// column and in creation time; a filter holds on every page and the total counts the
/// whole filtered list.
pub async fn task_list_keyset_pages_cover_every_order(store: Arc<dyn Store>) {
    let specs = [
        ("Same title", 1, 0),
        ("Same title", 1, 0),
        ("b", 0, 1),
        ("a", 2, 1),
        ("Same title", 2, 2),
        ("c", 1, 3),
        ("d", 1, 3),
    ];
    let mut ids = Vec::new();
    for (title, priority, created) in specs {
        let mut new = NewTask::new(title, "keyset");
        new.priority = priority;
        ids.push(store.create_task(new, at(created)).await.unwrap().value.id);
    }
    store
        .apply_task_action(ids[3], TaskAction::Cancel, None, at(9))
        .await
        .unwrap();
    for sort in TaskSort::ALL.iter().copied() {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let query = TaskQuery {
                sort_by: sort,
                sort_order: order,
                limit: 100,
                ..TaskQuery::default()
            };
            let whole: Vec<TaskId> = store
                .list_tasks(&query)
                .await
                .unwrap()
                .items
                .iter()
                .map(|t| t.id)
                .collect();
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_tasks(&TaskQuery {
                        limit: 2,
                        after: after.clone(),
                        ..query.clone()
                    })
                    .await
                    .unwrap();
                assert_eq!(page.total_count, 7, "{sort:?} {order:?}");
                let Some(last) = page.items.last() else { break };
                after = Some(TaskCursor::after(last, sort));
                walked.extend(page.items.iter().map(|t| t.id));
                assert!(walked.len() <= 7, "{sort:?} {order:?} repeats: {walked:?}");
            }
            assert_eq!(walked, whole, "{sort:?} {order:?}");
        }
    }
    // A filter holds past the cursor.
    let queued = TaskQuery {
        status: Some(TaskStatus::Queued),
        limit: 3,
        ..TaskQuery::default()
    };
    let first = store.list_tasks(&queued).await.unwrap();
    let rest = store
        .list_tasks(&TaskQuery {
            after: Some(TaskCursor::after(
                first.items.last().unwrap(),
                TaskSort::Priority,
            )),
            ..queued.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (first.items.len(), rest.items.len(), rest.total_count),
        (3, 3, 6)
    );
    assert!(rest.items.iter().all(|t| t.status == TaskStatus::Queued));
}

/// A person's retry note is kept with the task for its next attempts: a later automatic
/// retry keeps it, a new note replaces it, and a retry without one leaves it.
pub async fn a_retry_note_stays_with_the_task(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "Flaky", at(0)).await;
    let fail_once = |store: Arc<dyn Store>, task: crate::model::Task, started: i64| async move {
        let (_, lease) = assign(&store, &task, agent.id, at(started)).await;
        store
            .apply_task_action(task.id, fail("broken"), Some(lease), at(started + 1))
            .await
            .unwrap()
    };
    let failed = fail_once(store.clone(), task, 10).await;
    let retry = crate::change::retry_request(&failed, Some("  Use the new API.  ")).unwrap();
    store
        .apply_task_action(failed.id, retry, None, at(20))
        .await
        .unwrap();
    let queued = store.get_task(failed.id).await.unwrap();
    assert_eq!(queued.retry_note.as_deref(), Some("Use the new API."));

    let failed = fail_once(store.clone(), queued, 30).await;
    let automatic = TaskAction::Retry {
        not_before: Some(at(45)),
        note: None,
    };
    store
        .apply_task_action(failed.id, automatic, None, at(40))
        .await
        .unwrap();
    let kept = store.get_task(failed.id).await.unwrap();
    assert_eq!(kept.retry_note.as_deref(), Some("Use the new API."));

    let failed = fail_once(store.clone(), kept, 100).await;
    let blank = crate::change::retry_request(&failed, Some("   ")).unwrap();
    assert_eq!(
        blank,
        TaskAction::Retry {
            not_before: None,
            note: None
        }
    );
    assert_invalid_input(
        crate::change::retry_request(&failed, Some(&"x".repeat(5_001))),
        "note",
    );
    let replaced = crate::change::retry_request(&failed, Some("Start over.")).unwrap();
    store
        .apply_task_action(failed.id, replaced, None, at(200))
        .await
        .unwrap();
    let listed = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(listed.items[0].retry_note.as_deref(), Some("Start over."));
}

/// Activity by hour: arrivals, attempt starts and ends, the wait before a first attempt
/// and the queue at each hour's end, the same on every backend; the window is checked.
pub async fn activity_is_tallied_by_hour(store: Arc<dyn Store>) {
    const HOUR: i64 = 3_600_000;
    let hour = |n: i64, minutes: i64| at(n * HOUR + minutes * 60_000);
    let soon_after = |n: i64, minutes: i64| at(n * HOUR + minutes * 60_000 + 30_000);
    let agent = new_agent(&store, hour(0, 0)).await;
    let done = new_task(&store, "done", hour(0, 10)).await;
    let (_, lease) = assign(&store, &done, agent.id, hour(0, 40)).await;
    store
        .apply_task_action(done.id, complete(), Some(lease), soon_after(0, 40))
        .await
        .unwrap();
    let broken = new_task(&store, "broken", hour(1, 0)).await;
    let (_, lease) = assign(&store, &broken, agent.id, hour(1, 30)).await;
    store
        .apply_task_action(broken.id, fail("no"), Some(lease), soon_after(1, 30))
        .await
        .unwrap();
    let dropped = new_task(&store, "dropped", hour(1, 10)).await;
    store
        .apply_task_action(dropped.id, TaskAction::Cancel, None, hour(2, 20))
        .await
        .unwrap();
    new_task(&store, "waiting", hour(2, 30)).await;

    let activity = store.activity(hour(2, 45), 3).await.unwrap();
    let hours = &activity.hours;
    assert_eq!(hours.len(), 3);
    assert_eq!(hours[0].hour, hour(0, 0));
    let column =
        |f: fn(&crate::model::HourActivity) -> u64| hours.iter().map(f).collect::<Vec<_>>();
    assert_eq!(column(|h| h.arrived), [1, 2, 1]);
    assert_eq!(column(|h| h.started), [1, 1, 0]);
    assert_eq!(column(|h| h.completed), [1, 0, 0]);
    assert_eq!(column(|h| h.failed), [0, 1, 0]);
    // The end of hour 0: "done" had started; hour 1: "dropped" waits; now: "waiting".
    assert_eq!(column(|h| h.queued_at_end), [0, 1, 1]);
    assert_eq!(hours[0].mean_wait_ms, Some(30.0 * 60_000.0));
    assert_eq!(hours[1].mean_wait_ms, Some(30.0 * 60_000.0));
    assert_eq!(hours[2].mean_wait_ms, None);

    assert_invalid_input(store.activity(hour(2, 45), 0).await, "hours");
    assert_invalid_input(store.activity(hour(2, 45), 169).await, "hours");
}

/// Filters, every sort column in both directions, search, and pagination edges.
pub async fn task_list_filters_sorts_and_pages(store: Arc<dyn Store>) {
    let specs = [
        ("Refactor parser", 2),
        ("fix LOGIN bug", 0),
        ("Write docs", 3),
        ("Add login page", 1),
        ("Bump deps", 2),
    ];
    let mut ids = Vec::new();
    for (i, (title, priority)) in specs.iter().enumerate() {
        let mut new = NewTask::new(*title, format!("Task number {i}"));
        new.priority = *priority;
        ids.push(store.create_task(new, at(i as i64)).await.unwrap().value.id);
    }
    store
        .apply_task_action(ids[2], TaskAction::Cancel, None, at(10))
        .await
        .unwrap();

    let titles = |page: &crate::model::Page<crate::model::Task>| {
        page.items
            .iter()
            .map(|t| t.title.clone())
            .collect::<Vec<_>>()
    };
    let queue = store.list_tasks(&TaskQuery::default()).await.unwrap();
    assert_eq!(
        titles(&queue),
        [
            "fix LOGIN bug",
            "Add login page",
            "Refactor parser",
            "Bump deps",
            "Write docs"
        ]
    );
    let by_title = store
        .list_tasks(&TaskQuery {
            sort_by: TaskSort::Title,
            sort_order: SortOrder::Desc,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        titles(&by_title),
        [
            "fix LOGIN bug",
            "Write docs",
            "Refactor parser",
            "Bump deps",
            "Add login page"
        ]
    );
    let newest = store
        .list_tasks(&TaskQuery {
            sort_by: TaskSort::CreatedAt,
            sort_order: SortOrder::Desc,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(newest.items[0].id, ids[4]);
    let recently_updated = store
        .list_tasks(&TaskQuery {
            sort_by: TaskSort::UpdatedAt,
            sort_order: SortOrder::Desc,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(recently_updated.items[0].id, ids[2]);
    let by_status = store
        .list_tasks(&TaskQuery {
            sort_by: TaskSort::Status,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_status.items[0].status, TaskStatus::Cancelled);

    let cancelled = store
        .list_tasks(&TaskQuery {
            status: Some(TaskStatus::Cancelled),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((cancelled.total_count, cancelled.items[0].id), (1, ids[2]));
    let urgent = store
        .list_tasks(&TaskQuery {
            priority: Some(0),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(titles(&urgent), ["fix LOGIN bug"]);
    // A task is found by the first characters of its id, in either case.
    for length in [1, 8, 9, 36] {
        let prefix: String = ids[3].to_string().chars().take(length).collect();
        let found = store
            .list_tasks(&TaskQuery {
                id_prefix: Some(prefix.to_uppercase().parse().unwrap()),
                ..TaskQuery::default()
            })
            .await
            .unwrap();
        assert!(found.items.iter().any(|t| t.id == ids[3]), "{prefix}");
        assert!(
            found
                .items
                .iter()
                .all(|t| t.id.to_string().starts_with(&prefix)),
            "{prefix}"
        );
        if length >= 8 {
            assert_eq!(found.total_count, 1, "{prefix}");
        }
    }
    let search = store
        .list_tasks(&TaskQuery {
            search: Some("  Login ".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(titles(&search), ["fix LOGIN bug", "Add login page"]);
    let by_description = store
        .list_tasks(&TaskQuery {
            search: Some("number 4".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(titles(&by_description), ["Bump deps"]);
    let wildcard = store
        .list_tasks(&TaskQuery {
            search: Some("%".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(wildcard.total_count, 0, "search text is not a pattern");

    let mut seen = Vec::new();
    for offset in 0..5 {
        let page = store
            .list_tasks(&TaskQuery {
                limit: 2,
                offset,
                ..TaskQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total_count, 5);
        assert_eq!(page.has_more(), offset + 2 < 5, "offset {offset}");
        seen.push(page.items[0].id);
    }
    assert_eq!(seen, queue.items.iter().map(|t| t.id).collect::<Vec<_>>());
    let last = store
        .list_tasks(&TaskQuery {
            limit: 2,
            offset: 4,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((last.items.len(), last.has_more()), (1, false));
    let beyond = store
        .list_tasks(&TaskQuery {
            offset: 50,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert!(beyond.items.is_empty() && !beyond.has_more());
    assert_eq!(beyond.total_count, 5);
    for limit in [0, 101] {
        assert_invalid_input(
            store
                .list_tasks(&TaskQuery {
                    limit,
                    ..TaskQuery::default()
                })
                .await,
            "limit",
        );
    }
}

/// Edits change fields and the revision, are validated, and are refused while running.
pub async fn task_edits_are_validated_and_refused_while_running(store: Arc<dyn Store>) {
    let task = new_task(&store, "edit me", at(0)).await;
    let before = last_seq(&store).await;
    let edited = store
        .edit_task(
            task.id,
            TaskEdit {
                title: Some("edited".into()),
                priority: Some(0),
                files_hint: Some(vec!["src/lib.rs".into()]),
                ..TaskEdit::default()
            },
            at(10),
        )
        .await
        .unwrap();
    assert_eq!((edited.title.as_str(), edited.priority), ("edited", 0));
    assert_eq!(edited.files_hint, ["src/lib.rs"]);
    assert_eq!(edited.revision, task.revision + 1);
    assert_eq!(edited.updated_at, at(10));
    assert_eq!(store.get_task(task.id).await.unwrap(), edited);
    let events = store.events_since(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TaskUpdated);

    let unchanged = store
        .edit_task(task.id, TaskEdit::default(), at(11))
        .await
        .unwrap();
    assert_eq!(unchanged, edited, "an empty edit must not write");
    assert_invalid_input(
        store
            .edit_task(
                task.id,
                TaskEdit {
                    priority: Some(9),
                    ..TaskEdit::default()
                },
                at(12),
            )
            .await,
        "priority",
    );

    let agent = new_agent(&store, at(0)).await;
    assign(&store, &edited, agent.id, at(20)).await;
    let refused = store
        .edit_task(
            task.id,
            TaskEdit {
                title: Some("too late".into()),
                ..TaskEdit::default()
            },
            at(21),
        )
        .await;
    assert_conflict(refused);
    assert_eq!(store.get_task(task.id).await.unwrap().title, "edited");
}

/// A queued task's dependencies and not-before time can be changed, or dropped to release
/// it; a dependency must exist, must not lead back to the task, and only a queued task
/// waits.
pub async fn waiting_tasks_can_be_edited_and_released(store: Arc<dyn Store>) {
    let first = new_task(&store, "first", at(0)).await;
    let other = new_task(&store, "other", at(0)).await;
    let mut later = NewTask::new("later", "after first, not before noon");
    later.depends_on = vec![first.id];
    later.not_before = Some(at(1_000_000));
    let later = store.create_task(later, at(1)).await.unwrap().value;
    let waits_for = |dependencies: Vec<TaskId>| TaskEdit {
        depends_on: Some(dependencies),
        ..TaskEdit::default()
    };

    let moved = store
        .edit_task(later.id, waits_for(vec![other.id, other.id]), at(2))
        .await
        .unwrap();
    assert_eq!(moved.depends_on, [other.id]);
    assert_eq!(
        store.get_task(later.id).await.unwrap().depends_on,
        [other.id]
    );
    assert_eq!(
        store.get_task(later.id).await.unwrap().not_before,
        Some(at(1_000_000))
    );

    // Waiting for a task that waits for it, or for itself, or for nothing that exists.
    store
        .edit_task(other.id, waits_for(vec![first.id]), at(3))
        .await
        .unwrap();
    // A task naming itself is a wrong request; the others clash with the queue.
    assert_invalid_input(
        store
            .edit_task(first.id, waits_for(vec![first.id]), at(4))
            .await,
        "dependsOn",
    );
    for dependencies in [vec![later.id], vec![TaskId::new()]] {
        assert_conflict_naming(
            store
                .edit_task(first.id, waits_for(dependencies), at(4))
                .await,
            "dependsOn: task ",
        );
    }
    assert!(
        store
            .get_task(first.id)
            .await
            .unwrap()
            .depends_on
            .is_empty()
    );

    let released = store
        .edit_task(
            later.id,
            TaskEdit {
                depends_on: Some(Vec::new()),
                not_before: Some(None),
                ..TaskEdit::default()
            },
            at(5),
        )
        .await
        .unwrap();
    assert!(released.depends_on.is_empty() && released.not_before.is_none());
    let mut slots = Vec::new();
    for _ in 0..3 {
        slots.push(new_agent(&store, at(0)).await.id);
    }
    let claimed = store
        .claim(super::claims::request(&slots), at(6))
        .await
        .unwrap();
    let mut taken: Vec<TaskId> = claimed.iter().map(|c| c.task.id).collect();
    taken.sort();
    let mut free = vec![first.id, later.id];
    free.sort();
    assert_eq!(
        taken, free,
        "the released task is claimed; the one still waiting is not"
    );

    // Only a queued task waits.
    assert_conflict(
        store
            .edit_task(
                first.id,
                TaskEdit {
                    not_before: Some(Some(at(9))),
                    ..TaskEdit::default()
                },
                at(8),
            )
            .await,
    );
}

/// Unicode of every plane and texts at their maximum length come back byte for byte.
pub async fn unicode_and_very_long_text_round_trip(store: Arc<dyn Store>) {
    let title: String = "修正🦀ü\u{0301}".chars().cycle().take(500).collect();
    let description = "Ünïcødé ✓ — 数据库 🚀\n\t\"quotes\" 'single' \\back\\slash\0nul? "
        .replace('\0', "")
        .repeat(2_500);
    assert!(description.chars().count() > 100_000);
    let mut new = NewTask::new(title.clone(), description.clone());
    new.files_hint = vec!["src/ünï/🦀.rs".into(), "docs/数据库/".into()];
    let task = store.create_task(new, at(0)).await.unwrap().value;
    let stored = store.get_task(task.id).await.unwrap();
    assert_eq!(stored.title, title);
    assert_eq!(stored.description, description);
    assert_eq!(stored.files_hint, ["src/ünï/🦀.rs", "docs/数据库/"]);
    let found = store
        .list_tasks(&TaskQuery {
            search: Some("数据库 🚀".into()),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.total_count, 1);
    let too_long: String = "🦀".repeat(501);
    let result = store.create_task(NewTask::new(too_long, "d"), at(1)).await;
    assert!(matches!(result, Err(Error::InvalidInput { .. })));
}

/// Deleting removes the task's logs, attempts, verification results and exceptions in one
/// go; running tasks and tasks others depend on cannot be deleted.
pub async fn deletion_cascades_and_is_guarded(store: Arc<dyn Store>) {
    use crate::model::{
        ExceptionQuery, ExceptionSeverity, ExceptionType, LogType, NewAgentLog, NewException,
        NewVerificationResult,
    };
    let task = new_task(&store, "doomed", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    store
        .append_logs(
            vec![NewAgentLog {
                agent_id: agent.id,
                task_id: Some(task.id),
                log_type: LogType::Info,
                content: "working".into(),
                metadata: None,
            }],
            at(2),
        )
        .await
        .unwrap();
    store
        .record_verification(
            task.id,
            None,
            NewVerificationResult {
                passed: false,
                confidence_score: 0.2,
                syntax_passed: Some(false),
                types_passed: None,
                lint_passed: None,
                tests_passed: None,
                tests_total: None,
                tests_failed: None,
                semantic_score: None,
                semantic_explanation: None,
                failures: Vec::new(),
                recommendations: Vec::new(),
                unverified: false,
                stages: Vec::new(),
            },
            at(3),
        )
        .await
        .unwrap();
    let mut exception = NewException::new(
        ExceptionType::VerificationFailed,
        ExceptionSeverity::Error,
        "Task failed",
    );
    exception.task_id = Some(task.id);
    store.raise_exception(exception, at(4)).await.unwrap();
    assert_conflict(store.delete_task(task.id, at(5)).await);
    store
        .apply_task_action(task.id, fail("broken"), Some(lease), at(6))
        .await
        .unwrap();
    assert_conflict(store.delete_task(task.id, at(7)).await);
    store
        .apply_task_action(
            task.id,
            TaskAction::Retry {
                not_before: None,
                note: None,
            },
            None,
            at(8),
        )
        .await
        .unwrap();
    store
        .apply_task_action(task.id, TaskAction::Cancel, None, at(9))
        .await
        .unwrap();

    let mut dependent = NewTask::new("dependent", "d");
    dependent.depends_on = vec![task.id];
    let dependent = store.create_task(dependent, at(10)).await.unwrap().value;
    assert_eq!(store.dependents(task.id).await.unwrap(), [dependent.id]);
    assert_conflict(store.delete_task(task.id, at(11)).await);
    store.delete_task(dependent.id, at(12)).await.unwrap();
    assert!(store.dependents(task.id).await.unwrap().is_empty());

    let seq = last_seq(&store).await;
    store.delete_task(task.id, at(13)).await.unwrap();
    assert_not_found(store.get_task(task.id).await);
    assert_not_found(store.list_attempts(task.id).await);
    let logs = store.list_logs(&LogQuery::new(agent.id, 10)).await.unwrap();
    assert_eq!(logs.total_count, 0);
    let exceptions = store
        .list_exceptions(&ExceptionQuery {
            status: None,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(exceptions.total_count, 0);
    let events = store.events_since(seq, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TaskDeleted);
    assert_not_found(store.delete_task(task.id, at(14)).await);
}

/// The dashboard's counts follow tasks, agents and exceptions through their states.
pub async fn system_stats_count_every_state(store: Arc<dyn Store>) {
    use crate::model::{
        AgentStatus, ExceptionSeverity, ExceptionStatus, ExceptionType, NewException,
    };

    let empty = store.stats(at(0)).await.unwrap();
    assert_eq!(empty.tasks(TaskStatus::Queued), 0);
    assert_eq!(empty.mean_completion_ms, None);

    let done = new_task(&store, "done", at(0)).await;
    let broken = new_task(&store, "broken", at(0)).await;
    new_task(&store, "waiting", at(0)).await;
    let first = new_agent(&store, at(0)).await;
    let second = new_agent(&store, at(0)).await;
    new_agent(&store, at(0)).await;
    let (_, lease) = assign(&store, &done, first.id, at(1_000)).await;
    store
        .apply_task_action(done.id, complete(), Some(lease), at(4_000))
        .await
        .unwrap();
    let (_, lease) = assign(&store, &broken, second.id, at(1_000)).await;
    store
        .apply_task_action(broken.id, fail("tests failed"), Some(lease), at(2_000))
        .await
        .unwrap();
    let critical = NewException::new(
        ExceptionType::HighRiskCode,
        ExceptionSeverity::Critical,
        "a",
    );
    store.raise_exception(critical, at(5_000)).await.unwrap();
    let info = NewException::new(ExceptionType::UnknownError, ExceptionSeverity::Info, "b");
    let info = store.raise_exception(info, at(5_000)).await.unwrap();
    let dismiss = crate::change::ExceptionDecision {
        status: ExceptionStatus::Dismissed,
        resolved_by: None,
        resolution_notes: None,
    };
    store
        .decide_exception(info.id, dismiss, at(6_000))
        .await
        .unwrap();

    let stats = store.stats(at(0)).await.unwrap();
    assert_eq!(stats.tasks(TaskStatus::Queued), 1);
    assert_eq!(stats.tasks(TaskStatus::Completed), 1);
    assert_eq!(stats.tasks(TaskStatus::Failed), 1);
    assert_eq!(stats.tasks_by_status.values().sum::<u64>(), 3);
    assert_eq!(stats.agents(AgentStatus::Idle), 3);
    assert_eq!(stats.open_exceptions(ExceptionSeverity::Critical), 1);
    assert_eq!(stats.open_exceptions(ExceptionSeverity::Info), 0);
    assert_eq!(stats.exceptions_total, 2);
    assert_eq!((stats.completed_since, stats.failed_since), (1, 1));
    let mean = stats.mean_completion_ms.expect("one completed task");
    assert!(mean >= 0.0, "{mean}");

    // A century on: nothing finished since then.
    let century = 100 * 365 * 24 * 3_600_000;
    let later = store.stats(at(century)).await.unwrap();
    assert_eq!((later.completed_since, later.failed_since), (0, 0));
    assert_eq!(later.tasks(TaskStatus::Completed), 1);
}
