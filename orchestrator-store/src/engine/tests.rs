//! Transactions of the SQL stores, on SQLite and PostgreSQL.

use std::time::Duration;

use orchestrator_core::Timestamp;
use orchestrator_core::change;
use orchestrator_core::coordination::ClaimRequest;
use orchestrator_core::error::Error;
use orchestrator_core::model::{Agent, NewAgent, NewTask};

use orchestrator_core::store::{
    AgentStore, EventStore, QueueStore, RunnerStore, StoreExt, TaskStore,
};

use super::{Dialect, SqlStore, retry_on_race};
use crate::sql::read::{self, Lock};
use crate::sql::write;

/// Writes batched in front of a guarded update whose row changed meanwhile are not
/// committed, the transaction fails with a conflict, and the writer keeps working.
async fn failed_guard_writes_nothing<D: Dialect>(store: &SqlStore<D>) {
    let now = Timestamp::from_millis(1_000).expect("an instant");
    let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
    let events_before = store.last_event_seq().await.unwrap();

    let (tx, now) = store.begin_at(now).await.unwrap();
    stale_batch_keeps_nothing(store, tx, &agent, events_before, now).await;
    store.create_agent(NewAgent::default(), now).await.unwrap();
    assert!(store.last_event_seq().await.unwrap() > events_before);
}

/// The same without an explicit transaction (PostgreSQL's unlocked task actions): the
/// guard fails the batch's one statement, so the writes ahead of it are not kept.
async fn failed_guard_outside_a_transaction_writes_nothing<D: Dialect>(store: &SqlStore<D>) {
    let now = Timestamp::from_millis(3_000).expect("an instant");
    let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
    let events_before = store.last_event_seq().await.unwrap();

    let tx = super::Tx::implicit(store.writer.acquire().await.unwrap());
    stale_batch_keeps_nothing(store, tx, &agent, events_before, now).await;
}

/// Batches an event and an update of `agent` from a stale read into `tx` and commits:
/// the commit fails with a conflict and keeps neither.
async fn stale_batch_keeps_nothing<D: Dialect>(
    store: &SqlStore<D>,
    mut tx: super::Tx<D>,
    agent: &Agent,
    events_before: i64,
    now: Timestamp,
) {
    write::append_events(tx.batch(), &[change::agent_created_event(agent)], now);
    let mut stale = agent.clone();
    stale.name = Some("from a stale read".into());
    stale.revision += 5;
    write::update_agent(tx.batch(), &stale);
    let failed = store.commit(tx).await;
    assert!(matches!(failed, Err(Error::Conflict(_))), "{failed:?}");

    assert_eq!(store.last_event_seq().await.unwrap(), events_before);
    assert_eq!(&store.get_agent(agent.id).await.unwrap(), agent);
}

/// The combined read of a task action gives the rows the single-row lookups give.
async fn task_context_matches_lookups<D: Dialect>(store: &SqlStore<D>) {
    let now = Timestamp::from_millis(2_000).expect("an instant");
    let mut new = NewTask::new("read together", "d");
    new.files_hint = vec!["src/".into()];
    store.create_task(new, now).await.unwrap();
    let named = NewAgent {
        name: Some("slot".into()),
        ..NewAgent::default()
    };
    let agent = store.create_agent(named, now).await.unwrap();
    let request = ClaimRequest {
        agents: vec![agent.id],
        runner_session_id: None,
        task_id: None,
        lease_ttl: Duration::from_secs(60),
    };
    let claim = store.claim(request, now).await.unwrap().remove(0);
    let id = claim.task.id;

    let (mut tx, _) = store.begin_at(now).await.unwrap();
    let locked = read::task_with_agent_and_attempt::<D>(&mut tx, id, None, Lock::ForUpdate)
        .await
        .unwrap();
    drop(tx);
    let mut conn = store.read().await.unwrap();
    let unlocked = read::task_with_agent_and_attempt::<D>(&mut conn, id, None, Lock::None)
        .await
        .unwrap();
    let attempts = store.list_attempts(id).await.unwrap();
    let expected = (
        Some(store.get_task(id).await.unwrap()),
        Some(store.get_agent(agent.id).await.unwrap()),
        attempts.last().cloned(),
    );
    for rows in [locked, unlocked] {
        assert_eq!((rows.task, rows.agent, rows.attempt), expected);
        // Read along where the dialect reads rows in one statement.
        assert_eq!(rows.clock.is_some(), !D::SCRIPTS);
    }
    assert!(expected.2.is_some());
}

/// Whether SQLite's writer is free at this moment: nothing holds it, not even a
/// rollback waiting in the background (which, on this test's one-thread runtime,
/// cannot run before the test awaits).
fn writer_is_free(store: &crate::SqliteStore) -> bool {
    match &store.writer {
        super::Writer::Own { conn, .. } => conn.try_lock().is_ok(),
        super::Writer::Shared(_) => panic!("a file database has a writer of its own"),
    }
}

/// A SQLite store in a file of a new directory, which lives as long as it is kept.
async fn sqlite_store() -> (tempfile::TempDir, crate::SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqliteStore::open(dir.path().join("store.db"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn sqlite_transactions() {
    let (_dir, store) = sqlite_store().await;
    failed_guard_writes_nothing(&store).await;
    task_context_matches_lookups(&store).await;
}

/// A refusal found inside a write transaction ends the transaction before the caller
/// hears of it: a claim whose second slot does not exist finds out after it read (on
/// PostgreSQL, locked) the head of the queue, and a delete of a running task after it
/// locked the task.
#[tokio::test]
async fn refusals_end_their_transaction_before_answering() {
    let (_dir, store) = sqlite_store().await;
    let now = Timestamp::from_millis(1_000).expect("an instant");
    store
        .create_task(NewTask::new("queued", "d"), now)
        .await
        .unwrap();
    let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
    let mut request = ClaimRequest {
        agents: vec![agent.id, orchestrator_core::ids::AgentId::new()],
        runner_session_id: None,
        task_id: None,
        lease_ttl: Duration::from_secs(60),
    };

    let refused = store.claim(request.clone(), now).await;
    assert!(
        matches!(refused, Err(Error::NotFound { .. })),
        "{refused:?}"
    );
    assert!(
        writer_is_free(&store),
        "the refused claim still holds the writer"
    );

    request.agents.truncate(1);
    let claimed = store.claim(request, now).await.unwrap().remove(0);
    let refused = store.delete_task(claimed.task.id, now).await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert!(
        writer_is_free(&store),
        "the refused delete still holds the writer"
    );
}

/// An operation that lost a race on a unique key runs once more; one refused for any
/// other conflict (a stale lease, a row changed meanwhile) does not.
#[tokio::test]
async fn only_a_broken_unique_key_is_run_again() {
    let (_dir, store) = sqlite_store().await;
    let now = Timestamp::from_millis(1_000).expect("an instant");
    let expires = Timestamp::from_millis(60_000).expect("an instant");
    store
        .create_setup_token("taken-token-hash", expires, now)
        .await
        .unwrap();
    let runs = std::sync::atomic::AtomicU32::new(0);
    let count = || runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;

    let duplicate = retry_on_race(|| async {
        count();
        store
            .create_setup_token("taken-token-hash", expires, now)
            .await
    })
    .await;
    assert!(
        matches!(duplicate, Err(Error::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(runs.swap(0, std::sync::atomic::Ordering::Relaxed), 2);

    let stale = retry_on_race(|| async {
        count();
        Err::<(), _>(Error::conflict("the lease is stale"))
    })
    .await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A queued task without path rows (queued before the database kept them) gets them when
/// the store opens.
#[tokio::test]
async fn queued_tasks_get_their_path_rows_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.db");
    let now = Timestamp::from_millis(1_000).expect("an instant");
    let mut new = NewTask::new("old", "d");
    new.files_hint = vec!["src/lib.rs".into()];
    let task = {
        let store = crate::SqliteStore::open(&file).await.unwrap();
        let task = store.create_task(new, now).await.unwrap().value;
        for delete in ["DELETE FROM task_path_keys", "DELETE FROM task_path_ranges"] {
            sqlx::query(delete).execute(store.pool()).await.unwrap();
        }
        store.pool().close().await;
        task
    };
    let store = crate::SqliteStore::open(&file).await.unwrap();
    let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM task_path_keys WHERE task_id = ?")
        .bind(task.id.as_uuid().to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
    let (ranges,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM task_path_ranges WHERE task_id = ?")
            .bind(task.id.as_uuid().to_string())
            .fetch_one(store.pool())
            .await
            .unwrap();
    // The root, `src/` and `src`, the path with and without a slash; the range below it.
    assert_eq!((keys, ranges), (5, 1));
}

/// A task's log page reads its rows in order through their index, without sorting the
/// task's whole log.
#[tokio::test]
async fn a_task_log_page_reads_through_its_index() {
    let (_dir, store) = sqlite_store().await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT * FROM agent_logs WHERE task_id = ? \
         ORDER BY attempt DESC, sequence DESC LIMIT 51",
    )
    .bind("00000000-0000-4000-8000-000000000000")
    .fetch_all(store.pool())
    .await
    .unwrap();
    let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
    assert!(
        steps.iter().any(|s| s.contains("agent_logs_task_sequence")),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:?}"
    );
}

#[tokio::test]
async fn postgres_transactions() {
    let Some(schema) = crate::scratch::ScratchSchema::from_env("transaction tests").await else {
        return;
    };
    let store = schema.open(super::ClockSource::Caller).await;
    failed_guard_writes_nothing(&store).await;
    task_context_matches_lookups(&store).await;
    failed_guard_outside_a_transaction_writes_nothing(&store).await;
    drop(store);
    schema.drop_schema().await;
}
