//! The client conformance suite against the in-process client, on an in-memory store.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::ids::RunnerSessionId;
use orchestrator_core::{InMemoryStore, Store, SystemClock};
use orchestrator_runner::testing::ClientFixture;
use orchestrator_runner::{LocalClient, OrchestratorClient};

struct InProcess {
    client: Arc<LocalClient>,
    store: Arc<dyn Store>,
}

#[async_trait]
impl ClientFixture for InProcess {
    fn client(&self) -> Arc<dyn OrchestratorClient> {
        self.client.clone()
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn session(&self) -> RunnerSessionId {
        self.client.session().id
    }

    async fn teardown(self: Box<Self>) {}
}

async fn in_process() -> Box<dyn ClientFixture> {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let client = LocalClient::register(
        store.clone(),
        Arc::new(SystemClock),
        "conformance",
        std::path::Path::new("/repository"),
    )
    .await
    .expect("register an in-process runner");
    Box::new(InProcess {
        client: Arc::new(client),
        store,
    })
}

orchestrator_runner::client_conformance_tests!(in_process);
