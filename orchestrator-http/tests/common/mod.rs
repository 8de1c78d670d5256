//! A test server: the API over a SQLite file in a temporary directory, called through
//! actix-web's in-process HTTP stack.

#![allow(dead_code, unreachable_pub)]

pub mod schema;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, Error, web};
use orchestrator_core::{Store, SystemClock};
use orchestrator_http::AppState;
use orchestrator_http::auth::hash_token;
use orchestrator_store::SqliteStore;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const CRON_SECRET: &str = "test-cron-secret";

/// The store behind a test app, and the directory its file lives in.
pub struct Backing {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

pub async fn backing() -> Backing {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("api.db"))
        .await
        .expect("SQLite store");
    Backing {
        store: Arc::new(store),
        _dir: dir,
    }
}

/// A backing on `store` (one the caller set up and tears down).
pub fn backing_on(store: Arc<dyn Store>) -> Backing {
    Backing {
        store,
        _dir: tempfile::tempdir().expect("temporary directory"),
    }
}

pub async fn app(
    backing: &Backing,
) -> impl Service<actix_http::Request, Response = ServiceResponse<impl MessageBody>, Error = Error>
{
    build(backing, |state| state).await.0
}

/// The app and its state (to drive shutdown).
pub async fn app_with_state(
    backing: &Backing,
) -> (
    impl Service<actix_http::Request, Response = ServiceResponse<impl MessageBody>, Error = Error>,
    web::Data<AppState>,
) {
    build(backing, |state| state).await
}

/// The app with its state adjusted by `adjust`, and the state.
pub async fn build(
    backing: &Backing,
    adjust: impl FnOnce(AppState) -> AppState,
) -> (
    impl Service<actix_http::Request, Response = ServiceResponse<impl MessageBody>, Error = Error>,
    web::Data<AppState>,
) {
    let state = AppState::new(
        backing.store.clone(),
        Arc::new(SystemClock),
        hash_token(ADMIN_TOKEN),
        "http://127.0.0.1:3000",
    )
    .with_cron_secret(CRON_SECRET);
    let state = web::Data::new(adjust(state));
    let service =
        init_service(App::new().configure(orchestrator_http::configure(state.clone()))).await;
    (service, state)
}

/// A request with the admin token.
pub fn admin(request: TestRequest) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
}

/// Sends `request` and returns the status and the JSON body (Null when empty).
pub async fn send<S, B>(service: &S, request: TestRequest) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let response = call_service(service, request.to_request()).await;
    let status = response.status();
    let body = read_body(response).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("body is not JSON: {}", String::from_utf8_lossy(&body)))
    };
    (status, json)
}

/// Checks that `body` is the error envelope with `code`, and returns its message.
pub fn assert_error(body: &Value, code: &str) -> String {
    let error = &body["error"];
    assert_eq!(error["code"], code, "unexpected error body: {body}");
    assert!(error["requestId"].is_string(), "no request id in {body}");
    error["message"].as_str().expect("message").to_owned()
}

/// A task with `files` in its hint, claimed by a new agent slot through the store: the
/// agent is WORKING and holds locks on the files.
pub async fn claimed_task(
    store: &Arc<dyn Store>,
    title: &str,
    files: &[&str],
) -> orchestrator_core::coordination::Claim {
    use orchestrator_core::Clock;
    use orchestrator_core::coordination::ClaimRequest;
    use orchestrator_core::model::{NewAgent, NewTask};

    let now = SystemClock.now();
    let mut new = NewTask::new(title, "work");
    new.files_hint = files.iter().map(|f| (*f).to_owned()).collect();
    let task = store.create_task(new, now).await.expect("task").value;
    let agent = NewAgent {
        name: Some(format!("agent for {title}")),
        ..NewAgent::default()
    };
    let agent = store.create_agent(agent, now).await.expect("agent");
    let request = ClaimRequest {
        agents: vec![agent.id],
        runner_session_id: None,
        task_id: Some(task.id),
        lease_ttl: std::time::Duration::from_secs(300),
    };
    store
        .claim(request, now)
        .await
        .expect("claim")
        .pop()
        .expect("one claim")
}

/// A request with `token` as its bearer token.
pub fn bearer(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {token}")))
}

/// The setup token in a connection token an admin mints, as a runner decodes it.
pub async fn setup_token<S, B>(service: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    use base64::Engine as _;

    let (status, body) = send(service, admin(TestRequest::get().uri("/api/connect"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let connection = body["data"]["connectionToken"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(connection)
        .expect("base64 connection token");
    let decoded = String::from_utf8(decoded).unwrap();
    let (url, setup_token) = decoded.split_once('|').expect("<url>|<setup token>");
    assert_eq!(url, "http://127.0.0.1:3000");
    setup_token.to_owned()
}

/// The fields of a claim's answer that name its attempt in every report on it.
pub fn lease_fields(claim: &Value) -> Value {
    serde_json::json!({
        "agentId": claim["agent"]["id"],
        "taskId": claim["task"]["id"],
        "attempt": claim["lease"]["attempt"],
        "leaseToken": claim["lease"]["leaseToken"],
    })
}

/// Connects a runner the way the CLI does: an admin mints a connection token, the runner
/// decodes it and exchanges the setup token. Returns the runner token.
pub async fn connect_runner<S, B>(service: &S, name: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let setup_token = setup_token(service).await;
    let exchange = serde_json::json!({ "setupToken": setup_token, "name": name });
    let (status, body) = send(
        service,
        TestRequest::post().uri("/api/connect").set_json(exchange),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["runnerName"], name);
    body["data"]["runnerToken"].as_str().unwrap().to_owned()
}

/// Queues a task titled `title` and has the runner with token `runner` claim it: the
/// task's id and the fields of its lease.
pub async fn queue_and_claim<S, B>(service: &S, runner: &str, title: &str) -> (String, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    let task = serde_json::json!({ "title": title, "description": "d" });
    let (status, body) = send(
        service,
        admin(TestRequest::post().uri("/api/tasks")).set_json(task),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task_id = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        service,
        bearer(TestRequest::post().uri("/api/runner/claim"), runner)
            .set_json(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task"]["id"], task_id.as_str(), "{body}");
    (task_id, lease_fields(&body["data"]))
}
