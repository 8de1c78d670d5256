//! The store conformance suite against PostgreSQL, each test in a schema of its own that
//! is dropped afterwards, plus what only PostgreSQL does: the database clock and commit
//! notifications across processes.
//!
//! Reads `ORCHESTRATOR_TEST_DATABASE_URL`. Without it the tests say they were skipped,
//! unless `ORCHESTRATOR_REQUIRE_POSTGRES=1`, which turns the skip into a failure.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::coordination::ClaimRequest;
use orchestrator_core::model::{NewAgent, NewTask};
use orchestrator_core::store::{AgentStore, EventStore, HousekeepingStore, QueueStore, TaskStore};
use orchestrator_core::testing::StoreFixture;
use orchestrator_core::{Clock, Store, SystemClock, Timestamp};
use orchestrator_store::scratch::ScratchSchema;
use orchestrator_store::{ClockSource, PostgresStore};

struct PostgresFixture {
    store: Arc<PostgresStore>,
    schema: ScratchSchema,
}

#[async_trait]
impl StoreFixture for PostgresFixture {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn teardown(self: Box<Self>) {
        self.store.pool().close().await;
        self.schema.drop_schema().await;
    }
}

async fn postgres_store() -> Option<Box<dyn StoreFixture>> {
    let schema = ScratchSchema::from_env("store tests").await?;
    // The cases drive time themselves; production stores use the database clock.
    let store = schema.open(ClockSource::Caller).await;
    Some(Box::new(PostgresFixture {
        store: Arc::new(store),
        schema,
    }))
}

orchestrator_core::store_conformance_tests!(postgres_store);

/// Runs `body` with a scratch schema, dropping the schema even when `body` fails.
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(ScratchSchema) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = ScratchSchema::from_env("store tests").await else {
        return;
    };
    let outcome = tokio::spawn(body(schema.clone())).await;
    schema.drop_schema().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Lease expiry follows the database's clock, not the caller's: a server whose clock
/// runs ahead cannot expire a live lease, and one that runs behind cannot keep a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_follow_the_database_clock() {
    with_schema(|schema| async move {
        let store = schema.open(ClockSource::Database).await;
        let far_future = Timestamp::from_millis(4_102_444_800_000).unwrap(); // 2100
        let real_now = Timestamp::from(chrono::Utc::now());
        store
            .create_task(NewTask::new("t", "d"), far_future)
            .await
            .unwrap();
        let agent = store
            .create_agent(NewAgent::default(), far_future)
            .await
            .unwrap();
        let claim = store
            .claim(
                ClaimRequest {
                    agents: vec![agent.id],
                    runner_session_id: None,
                    task_id: None,
                    lease_ttl: Duration::from_secs(60),
                },
                far_future,
            )
            .await
            .unwrap()
            .remove(0);
        let expiry = claim.task.lease_expires_at.unwrap();
        assert!(
            expiry < real_now.add(Duration::from_secs(120)),
            "the caller's 2100 was used"
        );
        assert!(
            expiry > real_now,
            "{expiry} is not after the database's now"
        );
        assert!(
            store
                .expire_leases(far_future, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let long_ago = Timestamp::from_millis(0).unwrap();
        store
            .heartbeat(claim.lease, Duration::from_secs(60), long_ago)
            .await
            .unwrap();
        store.pool().close().await;
    })
    .await;
}

/// A process whose listener lost its connection wakes every subscriber once it listens
/// again, as commits may have been announced meanwhile; no commit is needed for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_reconnects_wakes_every_subscriber() {
    with_schema(|schema| async move {
        let store = schema.open(ClockSource::Database).await;
        let mut watcher = store.subscribe();
        watcher.borrow_and_update();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let channel: String =
            sqlx::query_scalar("SELECT 'orchestrator_events_' || md5(current_schema())")
                .fetch_one(store.pool())
                .await
                .unwrap();
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query = 'LISTEN \"' || $1 || '\"'",
        )
        .bind(&channel)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(cut, 1, "the store's listener was found and cut off");
        tokio::time::timeout(Duration::from_secs(10), watcher.changed())
            .await
            .expect("woken within 10 s of the listener reconnecting")
            .unwrap();
        assert_eq!(
            store.last_event_seq().await.unwrap(),
            0,
            "nothing was committed"
        );
        store.pool().close().await;
    })
    .await;
}

/// A commit in one server process wakes the subscribers of another (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_in_one_process_wake_subscribers_in_another() {
    with_schema(|schema| async move {
        let writer = schema.open(ClockSource::Database).await;
        let reader = schema.open(ClockSource::Database).await;
        let mut watcher = reader.subscribe();
        let before = *watcher.borrow_and_update();
        // Give the listener a moment to subscribe before the commit it must hear about.
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer
            .create_task(
                NewTask::new("from the other process", "d"),
                SystemClock.now(),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), watcher.changed())
            .await
            .expect("woken within 10 s")
            .unwrap();
        assert!(*watcher.borrow() > before);
        assert_eq!(reader.events_since(before, 10).await.unwrap().len(), 1);
        writer.pool().close().await;
        reader.pool().close().await;
    })
    .await;
}
