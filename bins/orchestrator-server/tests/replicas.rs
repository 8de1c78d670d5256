//! Two `orchestrator-server` processes on one PostgreSQL database behave as one system:
//! a task created through one is claimed through the other, and an event stream on the
//! first sees the claim. Both stop gracefully on SIGTERM, saying goodbye to the stream.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orchestrator_store::scratch::ScratchSchema;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "replica-test-admin-token";

/// A server process, killed if the test ends without stopping it.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(database_url: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_orchestrator-server"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(["--admin-token", ADMIN_TOKEN])
            .env_remove("DATABASE_URL")
            .env_remove("ORCHESTRATOR_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start orchestrator-server");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = client.get(format!("{}/api/health", self.url)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not come up", self.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` with `token`; the JSON body of a successful answer.
async fn call(request: reqwest::RequestBuilder, token: &str) -> Value {
    let response = request.bearer_auth(token).send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_act_as_one() {
    let Some(schema) = ScratchSchema::from_env("two-server test").await else {
        return;
    };
    // Migrate once up front, so the two processes do not race to create the schema.
    drop(schema.open(orchestrator_store::ClockSource::Database).await);
    let first = Server::start(&schema.url());
    let second = Server::start(&schema.url());
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
