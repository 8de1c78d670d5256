//! The client conformance suite against the HTTP client, talking to the real API served
//! on a loopback port, over an in-memory store.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use async_trait::async_trait;
use orchestrator_core::ids::RunnerSessionId;
use orchestrator_core::model::{NewRunnerSession, RunnerIdentity};
use orchestrator_core::{Clock, InMemoryStore, Store, SystemClock};
use orchestrator_http::AppState;
use orchestrator_http::auth::{hash_token, new_secret};
use orchestrator_runner::testing::ClientFixture;
use orchestrator_runner::{HttpClient, OrchestratorClient};

struct OverHttp {
    client: Arc<HttpClient>,
    store: Arc<dyn Store>,
    session: RunnerSessionId,
    server: ServerHandle,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[async_trait]
impl ClientFixture for OverHttp {
    fn client(&self) -> Arc<dyn OrchestratorClient> {
        self.client.clone()
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn session(&self) -> RunnerSessionId {
        self.session
    }

    async fn teardown(self: Box<Self>) {
        self.server.stop(false).await;
        let _ = self.serving.await;
    }
}

async fn over_http() -> Box<dyn ClientFixture> {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let token = new_secret();
    let session = store
        .create_runner_session(
            NewRunnerSession {
                name: "conformance".into(),
                working_dir: "/repository".into(),
                token_hash: hash_token(&token),
                runner: RunnerIdentity::default(),
            },
            clock.now(),
        )
        .await
        .expect("a runner session");
    let state = web::Data::new(AppState::new(
        store.clone(),
        clock,
        hash_token(&new_secret()),
        "http://127.0.0.1",
    ));
    let server =
        HttpServer::new(move || App::new().configure(orchestrator_http::configure(state.clone())))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("a loopback port");
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let serving = tokio::spawn(server);
    let client = HttpClient::new(&format!("http://{address}"), &token).expect("an HTTP client");
    Box::new(OverHttp {
        client: Arc::new(client),
        store,
        session: session.id,
        server: handle,
        serving,
    })
}

orchestrator_runner::client_conformance_tests!(over_http);
