//! A claim says whether it left claimable work for others (the claim room hands the turn
//! on only then), on SQLite and PostgreSQL: tasks its own grants now block do not count.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::time::Duration;

use orchestrator_core::coordination::ClaimRequest;
use orchestrator_core::model::{NewAgent, NewTask};
use orchestrator_core::store::{AgentStore, QueueStore, TaskStore};
use orchestrator_core::{Clock, SystemClock};
use orchestrator_store::scratch::ScratchSchema;
use orchestrator_store::{ClockSource, Dialect, SqlStore, SqliteStore};

async fn claim<D: Dialect>(store: &SqlStore<D>, slots: usize) -> (usize, bool) {
    let mut agents = Vec::new();
    for _ in 0..slots {
        agents.push(
            store
                .create_agent(NewAgent::default(), SystemClock.now())
                .await
                .unwrap()
                .id,
        );
    }
    let request = ClaimRequest {
        agents,
        runner_session_id: None,
        task_id: None,
        lease_ttl: Duration::from_secs(600),
    };
    let (claims, maybe_more) = store
        .claim_looking_ahead(request, SystemClock.now())
        .await
        .unwrap();
    (claims.len(), maybe_more)
}

async fn queue<D: Dialect>(store: &SqlStore<D>, hints: &[&[&str]]) {
    for (n, hint) in hints.iter().enumerate() {
        let mut task = NewTask::new(format!("task {n}"), "d");
        task.files_hint = hint.iter().map(|path| (*path).to_owned()).collect();
        store.create_task(task, SystemClock.now()).await.unwrap();
    }
}

async fn claims_say_whether_they_left_work<D: Dialect>(store: SqlStore<D>) {
    queue(
        &store,
        &[
            &["README.md", "a/"],
            &["README.md", "b/"],
            &["README.md", "c/"],
        ],
    )
    .await;
    assert_eq!(
        claim(&store, 1).await,
        (1, false),
        "the others now wait for the README this claim holds"
    );
    queue(&store, &[&["d/"], &["e/"]]).await;
    assert_eq!(claim(&store, 1).await, (1, true), "one free task is left");
    assert_eq!(
        claim(&store, 1).await,
        (1, false),
        "the last free one taken"
    );
    queue(&store, &[&["f/"], &["g/"]]).await;
    assert_eq!(claim(&store, 2).await, (2, false), "both taken at once");
    assert_eq!(claim(&store, 1).await, (0, false), "nothing claimable");
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ahead.db"))
        .await
        .unwrap();
    claims_say_whether_they_left_work(store).await;
}

#[tokio::test]
async fn on_postgres() {
    let Some(schema) = ScratchSchema::from_env("look-ahead tests").await else {
        return;
    };
    let store = schema.open(ClockSource::Database).await;
    claims_say_whether_they_left_work(store).await;
    schema.drop_schema().await;
}
