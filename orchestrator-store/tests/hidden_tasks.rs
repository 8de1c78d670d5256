//! Queued tasks set aside behind a long-held lock, on SQLite and PostgreSQL: claims pass
//! over them without reading them, and get them back whenever they may be claimable —
//! the lock released or expired, the claimer holding it, the files hint edited, the task
//! off the queue and back.
//!
//! The PostgreSQL half reads `ORCHESTRATOR_TEST_DATABASE_URL` (see conformance_postgres.rs).

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::time::Duration;

use orchestrator_core::change::TaskAction;
use orchestrator_core::coordination::ClaimRequest;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::LockRequest;
use orchestrator_core::model::{LockMode, NewAgent, NewTask, Task, TaskEdit, TaskStatus};
use orchestrator_core::store::{AgentStore, QueueStore, StoreExt, TaskStore};
use orchestrator_core::{LockManager, Timestamp};
use orchestrator_store::Dialect;
use orchestrator_store::scratch::ScratchSchema;
use orchestrator_store::{ClockSource, SqlStore, SqliteStore};

const LEASE: Duration = Duration::from_secs(600);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + seconds * 1000).unwrap()
}

async fn agent<D: Dialect>(store: &SqlStore<D>) -> AgentId {
    store
        .create_agent(NewAgent::default(), at(0))
        .await
        .unwrap()
        .id
}

async fn claim<D: Dialect>(store: &SqlStore<D>, agent: AgentId, now: Timestamp) -> Option<Task> {
    let request = ClaimRequest {
        agents: vec![agent],
        runner_session_id: None,
        task_id: None,
        lease_ttl: LEASE,
    };
    let mut claims = store.claim(request, now).await.unwrap();
    claims.pop().map(|claim| claim.task)
}

/// The first of `tasks` in queue order.
fn head(tasks: &[Task]) -> TaskId {
    tasks.iter().map(|task| task.id).min().unwrap()
}

/// 40 tasks under `blocked/`, queued ahead of one free task.
async fn queue_behind<D: Dialect>(store: &SqlStore<D>) -> (Vec<Task>, Task) {
    let tasks = (0..40)
        .map(|n| NewTask {
            files_hint: vec![format!("blocked/m{n}/"), format!("src/m{n}.rs")],
            ..NewTask::new(format!("blocked {n}"), "d")
        })
        .collect();
    let blocked = store.create_tasks(tasks, at(1)).await.unwrap();
    let free = NewTask {
        priority: 3,
        files_hint: vec!["docs/".to_owned()],
        ..NewTask::new("free", "d")
    };
    (blocked, store.create_task(free, at(2)).await.unwrap().value)
}

async fn hold<D: Dialect>(store: &SqlStore<D>, holder: AgentId, ttl: Duration) {
    let request = LockRequest {
        holder,
        task_id: None,
        paths: vec!["blocked/".to_owned()],
        mode: LockMode::Exclusive,
        ttl,
    };
    store.acquire(request, at(0)).await.unwrap();
}

async fn set_aside<D: Dialect>(store: &SqlStore<D>) {
    assert_eq!(
        store.hide_tasks_behind_held_locks(at(5)).await.unwrap(),
        40,
        "every task behind the lock, none other"
    );
    assert_eq!(store.hide_tasks_behind_held_locks(at(5)).await.unwrap(), 0);
}

async fn released_lock_gives_the_tasks_back<D: Dialect>(store: SqlStore<D>) {
    let holder = agent(&store).await;
    let worker = agent(&store).await;
    let (blocked, free) = queue_behind(&store).await;
    hold(&store, holder, LEASE).await;
    // A lock held under a second sets nothing aside.
    assert_eq!(
        store
            .hide_tasks_behind_held_locks(Timestamp::from_millis(at(0).as_millis() + 500).unwrap())
            .await
            .unwrap(),
        0
    );
    set_aside(&store).await;
    let task = store.get_task(blocked[3].id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Queued, "set aside, still queued");
    assert_eq!(
        claim(&store, worker, at(6)).await.map(|t| t.id),
        Some(free.id)
    );
    let other = agent(&store).await;
    assert_eq!(claim(&store, other, at(6)).await, None);

    store.release(holder, None, at(7)).await.unwrap();
    let next = claim(&store, other, at(8)).await.map(|t| t.id);
    assert_eq!(
        next,
        Some(head(&blocked)),
        "released: the head of the queue again"
    );
}

async fn expired_lock_gives_the_tasks_back<D: Dialect>(store: SqlStore<D>) {
    let holder = agent(&store).await;
    let worker = agent(&store).await;
    let (blocked, free) = queue_behind(&store).await;
    hold(&store, holder, Duration::from_secs(30)).await;
    set_aside(&store).await;
    assert_eq!(
        claim(&store, worker, at(6)).await.map(|t| t.id),
        Some(free.id)
    );
    let other = agent(&store).await;
    assert_eq!(claim(&store, other, at(29)).await, None);
    let next = claim(&store, other, at(31)).await.map(|t| t.id);
    assert_eq!(next, Some(head(&blocked)), "the lock ran out");
}

async fn the_holder_sees_the_tasks_behind_its_lock<D: Dialect>(store: SqlStore<D>) {
    let holder = agent(&store).await;
    let (blocked, _) = queue_behind(&store).await;
    hold(&store, holder, LEASE).await;
    set_aside(&store).await;
    let next = claim(&store, holder, at(6)).await.map(|t| t.id);
    assert_eq!(next, Some(head(&blocked)), "its own lock is not in its way");
}

async fn edited_or_requeued_tasks_come_back<D: Dialect>(store: SqlStore<D>) {
    let holder = agent(&store).await;
    let (blocked, free) = queue_behind(&store).await;
    hold(&store, holder, LEASE).await;
    set_aside(&store).await;
    let moved = store
        .edit_task(
            blocked[5].id,
            TaskEdit {
                files_hint: Some(vec!["elsewhere/".to_owned()]),
                ..TaskEdit::default()
            },
            at(6),
        )
        .await
        .unwrap();
    let first = agent(&store).await;
    let got = claim(&store, first, at(7)).await.unwrap();
    assert_eq!(got.id, moved.id, "{} {:?}", got.title, got.files_hint);

    let cancelled: TaskId = blocked[6].id;
    store
        .apply_task_action(cancelled, TaskAction::Cancel, None, at(8))
        .await
        .unwrap();
    store
        .apply_task_action(cancelled, TaskAction::Reopen, None, at(9))
        .await
        .unwrap();
    let requeued = store
        .edit_task(
            cancelled,
            TaskEdit {
                files_hint: Some(vec!["blocked/m6/".to_owned(), "src/m6.rs".to_owned()]),
                ..TaskEdit::default()
            },
            at(10),
        )
        .await
        .unwrap();
    let second = agent(&store).await;
    assert_eq!(
        claim(&store, second, at(11)).await.map(|t| t.id),
        Some(free.id),
        "the reopened task is behind the lock again"
    );
    store.release(holder, None, at(12)).await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..39 {
        let worker = agent(&store).await;
        rest.push(claim(&store, worker, at(13)).await.expect("a task").id);
    }
    let mut expected: Vec<TaskId> = blocked
        .iter()
        .map(|task| task.id)
        .filter(|id| *id != moved.id)
        .collect();
    expected.sort();
    rest.sort();
    assert_eq!(
        rest, expected,
        "every task behind the lock, the reopened one too"
    );
    assert_eq!(requeued.id, cancelled);
}

async fn tasks_queued_behind_a_lock_are_set_aside_from_the_start<D: Dialect>(store: SqlStore<D>) {
    let holder = agent(&store).await;
    hold(&store, holder, LEASE).await;
    let (blocked, free) = queue_behind(&store).await;
    assert_eq!(
        store.hide_tasks_behind_held_locks(at(5)).await.unwrap(),
        0,
        "set aside as they were queued"
    );
    let worker = agent(&store).await;
    assert_eq!(
        claim(&store, worker, at(6)).await.map(|t| t.id),
        Some(free.id)
    );
    store.release(holder, None, at(7)).await.unwrap();
    let other = agent(&store).await;
    let next = claim(&store, other, at(8)).await.map(|t| t.id);
    assert_eq!(next, Some(head(&blocked)));
}

async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("hidden.db"))
        .await
        .unwrap();
    (store.with_clock(ClockSource::Caller), dir)
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(schema) = super::ScratchSchema::from_env("hidden-task tests").await
                    else {
                        return;
                    };
                    let store = schema.open(super::ClockSource::Caller).await;
                    super::$case(store).await;
                    schema.drop_schema().await;
                }
            )*
        }
    };
}

on_both_stores!(
    released_lock_gives_the_tasks_back,
    expired_lock_gives_the_tasks_back,
    the_holder_sees_the_tasks_behind_its_lock,
    edited_or_requeued_tasks_come_back,
    tasks_queued_behind_a_lock_are_set_aside_from_the_start,
);
