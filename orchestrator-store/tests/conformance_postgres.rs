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
