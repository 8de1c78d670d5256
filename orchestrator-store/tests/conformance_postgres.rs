//! The store conformance suite against PostgreSQL, each test in a schema of its own that
//! is dropped afterwards.
//!
//! Reads `ORCHESTRATOR_TEST_DATABASE_URL`. Without it the tests say they were skipped,
//! unless `ORCHESTRATOR_REQUIRE_POSTGRES=1`, which turns the skip into a failure.

#![cfg(feature = "postgres")]

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::Store;
use orchestrator_core::testing::StoreFixture;
use orchestrator_store::{ClockSource, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

struct PostgresFixture {
    store: Arc<PostgresStore>,
    admin: PgConnectOptions,
    schema: String,
}

#[async_trait]
impl StoreFixture for PostgresFixture {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn teardown(self: Box<Self>) {
        self.store.pool().close().await;
        let mut admin = PgConnection::connect_with(&self.admin)
            .await
            .expect("connect to drop the test schema");
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&mut admin)
        .await
        .expect("drop the test schema");
    }
}

async fn postgres_store() -> Option<Box<dyn StoreFixture>> {
    let Ok(url) = std::env::var("ORCHESTRATOR_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("ORCHESTRATOR_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "ORCHESTRATOR_REQUIRE_POSTGRES=1 but ORCHESTRATOR_TEST_DATABASE_URL is not set"
        );
        println!("skipped: set ORCHESTRATOR_TEST_DATABASE_URL to run the PostgreSQL store tests");
        return None;
    };
    let admin = PgConnectOptions::from_str(&url).expect("ORCHESTRATOR_TEST_DATABASE_URL");
    let schema = format!("orchestrator_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = PgConnection::connect_with(&admin)
        .await
        .expect("connect to ORCHESTRATOR_TEST_DATABASE_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut connection)
        .await
        .expect("create the test schema");
    connection.close().await.ok();
    // The cases drive time themselves; production stores use the database clock.
    let store = PostgresStore::connect_with(admin.clone().options([("search_path", &schema)]))
        .await
        .expect("open the PostgreSQL store")
        .with_clock(ClockSource::Caller);
    Some(Box::new(PostgresFixture {
        store: Arc::new(store),
        admin,
        schema,
    }))
}

orchestrator_core::store_conformance_tests!(postgres_store);

async fn schema_store(clock: ClockSource) -> Option<(PostgresStore, PgConnectOptions, String)> {
    let Ok(url) = std::env::var("ORCHESTRATOR_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("ORCHESTRATOR_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "ORCHESTRATOR_REQUIRE_POSTGRES=1 but ORCHESTRATOR_TEST_DATABASE_URL is not set"
        );
        println!("skipped: set ORCHESTRATOR_TEST_DATABASE_URL to run the PostgreSQL store tests");
        return None;
    };
    let admin = PgConnectOptions::from_str(&url).expect("ORCHESTRATOR_TEST_DATABASE_URL");
    let schema = format!("orchestrator_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = PgConnection::connect_with(&admin).await.expect("connect");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut connection)
        .await
        .expect("create schema");
    let store = PostgresStore::connect_with(admin.clone().options([("search_path", &schema)]))
        .await
        .expect("open store")
        .with_clock(clock);
    Some((store, admin, schema))
}

async fn drop_schema(admin: &PgConnectOptions, schema: &str) {
    let mut connection = PgConnection::connect_with(admin).await.expect("connect");
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut connection)
        .await
        .expect("drop schema");
}

/// Lease expiry follows the database's clock, not the caller's: a server whose clock
/// runs ahead cannot expire a live lease, and one that runs behind cannot keep a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_follow_the_database_clock() {
    use std::time::Duration;

    use orchestrator_core::Timestamp;
    use orchestrator_core::coordination::ClaimRequest;
    use orchestrator_core::model::{NewAgent, NewTask};

    let Some((store, admin, schema)) = schema_store(ClockSource::Database).await else {
        return;
    };
    let outcome = tokio::spawn(async move {
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
    drop_schema(&admin, &schema).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// A commit in one server process wakes the subscribers of another (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_in_one_process_wake_subscribers_in_another() {
    use std::time::Duration;

    use orchestrator_core::model::NewTask;
    use orchestrator_core::{Clock, SystemClock};

    let Some((writer, admin, schema)) = schema_store(ClockSource::Database).await else {
        return;
    };
    let reader = PostgresStore::connect_with(admin.clone().options([("search_path", &schema)]))
        .await
        .expect("second process");
    let outcome = tokio::spawn(async move {
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
        let seen = reader.events_since(before, 10).await.unwrap();
        assert_eq!(seen.len(), 1);
        writer.pool().close().await;
        reader.pool().close().await;
    })
    .await;
    drop_schema(&admin, &schema).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}
