//! The store conformance suite against SQLite, on a fresh database file per test.

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::Store;
use orchestrator_core::testing::StoreFixture;
use orchestrator_store::SqliteStore;
use tempfile::TempDir;

struct SqliteFixture {
    store: Arc<SqliteStore>,
    _dir: TempDir,
}

#[async_trait]
impl StoreFixture for SqliteFixture {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn teardown(self: Box<Self>) {
        self.store.pool().close().await;
    }
}

async fn sqlite_store() -> Option<Box<dyn StoreFixture>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("orchestrator.db"))
        .await
        .expect("open SQLite store");
    Some(Box::new(SqliteFixture {
        store: Arc::new(store),
        _dir: dir,
    }))
}

orchestrator_core::store_conformance_tests!(sqlite_store);
