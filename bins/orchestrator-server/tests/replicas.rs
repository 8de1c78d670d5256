//! Two `orchestrator-server` processes on one PostgreSQL database behave as one system:
//! a task created through one is claimed through the other, and an event stream on the
//! first sees the claim. Both stop gracefully on SIGTERM, saying goodbye to the stream.

mod common;

use std::time::{Duration, Instant};

use common::{ServerProcess, call, server_command};
use orchestrator_store::scratch::ScratchSchema;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "replica-test-admin-token";

/// A server on the database at `database_url`.
fn start(database_url: &str) -> ServerProcess {
    let mut command = server_command();
    command
        .args(["--database-url", database_url])
        .args(["--admin-token", ADMIN_TOKEN]);
    ServerProcess::start(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_act_as_one() {
    let Some(schema) = ScratchSchema::from_env("two-server test").await else {
        return;
    };
    // Migrate once up front, so the two processes do not race to create the schema.
    drop(schema.open(orchestrator_store::ClockSource::Database).await);
    let first = start(&schema.url());
    let second = start(&schema.url());
    let client = reqwest::Client::new();
    first.wait_ready(&client).await;
    second.wait_ready(&client).await;

    let minted = call(
        client.get(format!("{}/api/connect", first.url)),
        ADMIN_TOKEN,
    )
    .await;
    let connection = minted["data"]["connectionToken"].as_str().unwrap();
    let setup_token = decode_setup_token(connection);
    let exchanged = client
        .post(format!("{}/api/connect", second.url))
        .json(&json!({ "setupToken": setup_token, "name": "replica-runner" }))
        .send()
        .await
        .unwrap();
    assert!(
        exchanged.status().is_success(),
        "a token minted on one server works on the other"
    );
    let exchanged: Value = exchanged.json().await.unwrap();
    let runner_token = exchanged["data"]["runnerToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut stream = client
        .get(format!("{}/api/events", first.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("open the event stream");
    assert!(stream.status().is_success());
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, ": connected").await;

    let created = call(
        client
            .post(format!("{}/api/tasks", first.url))
            .json(&json!({ "title": "shared", "description": "one queue, two servers" })),
        ADMIN_TOKEN,
    )
    .await;
    let task_id = created["data"]["id"].as_str().unwrap().to_owned();
    let claimed = call(
        client
            .post(format!("{}/api/runner/claim", second.url))
            .json(&json!({ "waitMs": 5000 })),
        &runner_token,
    )
    .await;
    assert_eq!(claimed["data"]["task"]["id"], task_id.as_str(), "{claimed}");

    read_until(&mut stream, &mut seen, "\"to\":\"ASSIGNED\"").await;
    assert!(
        seen.contains(&task_id),
        "the claim on the second server reached the first's stream"
    );

    assert!(second.stop().success());
    assert!(first.stop().success(), "a clean exit on SIGTERM");
    read_until(&mut stream, &mut seen, "event: shutdown").await;
    schema.drop_schema().await;
}

/// The setup token inside a connection token (`base64("<url>|<setup token>")`).
fn decode_setup_token(connection: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(connection)
        .expect("base64");
    let text = String::from_utf8(bytes).expect("UTF-8");
    text.split_once('|')
        .expect("<url>|<setup token>")
        .1
        .to_owned()
}

/// Reads the stream into `seen` until it contains `needle`.
async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 20 s; got {seen}"))
            .expect("read the stream");
        match chunk {
            Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            None => panic!("the stream ended before {needle:?}; got {seen}"),
        }
    }
}
