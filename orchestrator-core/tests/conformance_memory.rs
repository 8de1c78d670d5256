//! The store conformance suite against the in-memory reference store.

use std::sync::Arc;

use orchestrator_core::InMemoryStore;
use orchestrator_core::testing::{PlainFixture, StoreFixture};

async fn memory_store() -> Option<Box<dyn StoreFixture>> {
    Some(Box::new(PlainFixture(Arc::new(InMemoryStore::new()))))
}

orchestrator_core::store_conformance_tests!(memory_store);
