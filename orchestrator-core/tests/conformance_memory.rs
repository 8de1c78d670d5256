//! The store conformance suite against the in-memory reference store.

use std::sync::Arc;

use orchestrator_core::InMemoryStore;
use orchestrator_core::testing::{PlainFixture, StoreFixture};

async fn memory_store() -> Option<Box<dyn StoreFixture>> {
    Some(Box::new(PlainFixture(Arc::new(InMemoryStore::new()))))
}

orchestrator_core::store_conformance_tests!(memory_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_claimers_drain_the_queue() {
    // The reference store scans its whole queue per claim; a smaller queue keeps this quick.
    let store: Arc<dyn orchestrator_core::Store> = Arc::new(InMemoryStore::new());
    let report = orchestrator_core::testing::drain_queue(store.clone(), 500, 64).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (
            report.claims,
            report.double_claims,
            report.overlapping_grants
        ),
        (500, 0, 0)
    );
    orchestrator_core::testing::check_drained(&store, 500)
        .await
        .unwrap();
}
