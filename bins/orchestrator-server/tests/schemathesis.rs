//! Schemathesis (from PyPI) generates requests from the served OpenAPI document, good and
//! bad, sends them to a real server with every check on, and finds no failure: the
//! document and the server agree on what is accepted, what is refused, and every answer.
//!
//! Skipped with a printed reason where `st` is not installed, unless
//! `ORCHESTRATOR_REQUIRE_TOOLS=1`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{ServerProcess, call, server_command};
use serde_json::json;

const ADMIN_TOKEN: &str = "schemathesis-admin-token";
const CRON_SECRET: &str = "schemathesis-cron-secret";
/// Test cases per operation and phase; the seed makes a run repeatable.
const EXAMPLES: &str = "40";
const SEED: &str = "20261207";

/// The schemathesis CLI on `PATH`, or `None` after a printed skip.
fn schemathesis() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("st"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let reason = "schemathesis is not installed (pip install -r .ci/requirements.txt)";
        assert!(
            std::env::var("ORCHESTRATOR_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{reason}"
        );
        eprintln!("skipped: {reason}");
    }
    found
}

/// A runner token named `name`, from a connection token the admin mints.
async fn runner_token(http: &reqwest::Client, url: &str, name: &str) -> String {
    let minted = call(http.get(format!("{url}/api/connect")), ADMIN_TOKEN).await;
    let connection = STANDARD
        .decode(minted["data"]["connectionToken"].as_str().unwrap())
        .unwrap();
    let connection = String::from_utf8(connection).unwrap();
    let (_, setup_token) = connection.split_once('|').unwrap();
    let response = http
        .post(format!("{url}/api/connect"))
        .json(&json!({ "setupToken": setup_token, "name": name }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    body["data"]["runnerToken"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_find_the_server_as_documented() {
    let Some(st) = schemathesis() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut command = server_command();
    command
        .args(["--data-dir", &data.path().to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--cron-secret", CRON_SECRET])
        .args(["--rate-limit-enabled", "false"])
        // Every refused request is a warning; the report says what matters.
        .stderr(Stdio::null());
    let server = ServerProcess::start(command);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let url = server.url.clone();
    // The runner routes get a runner token; ending a session takes a second one, so the
    // first stays usable.
    let working = runner_token(&http, &url, "schemathesis").await;
    let ending = runner_token(&http, &url, "schemathesis-disconnects").await;
    // Every check is on. Schemathesis reuses values from earlier answers in later
    // requests' path ids, and among them whole lists and nulls (`/api/tasks/['…']`,
    // `/api/agents/null`), which the server refuses as the document says (400, "Invalid
    // task ID format"). So requests that the stateful phase chains are not held to "valid
    // data is accepted", nor are agent ids taken from answers; every other check still
    // applies to them, and all checks to every other request. A document cannot say that
    // the usage window's `until` follows its `since` by at most 366 days: the 400 that
    // refuses another window is an answer valid data may get there.
    let config = format!(
        r#"[[operations]]
include-path-regex = "^/api/runner/"
headers = {{ Authorization = "Bearer {working}" }}

[[operations]]
include-name = "DELETE /api/connect"
headers = {{ Authorization = "Bearer {ending}" }}

[[operations]]
include-path = "/api/cron/cleanup"
headers = {{ Authorization = "Bearer {CRON_SECRET}" }}

[[operations]]
include-path = "/api/usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
include-path = "/api/agents/{{id}}"
phases.coverage.extra-data-sources.responses = false
phases.fuzzing.extra-data-sources.responses = false

[checks]
enabled = true

[phases.stateful.checks.positive_data_acceptance]
enabled = false
"#
    );
    let config_file = data.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let output = Command::new(st)
        .current_dir(data.path())
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(format!("{url}/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        // The event stream never ends; the contract test reads it.
        .args(["--exclude-path", "/api/events"])
        .args(["--max-examples", EXAMPLES, "--seed", SEED])
        // A claim is a long poll of up to 30 s.
        .args([
            "--request-timeout",
            "40",
            "--max-response-time",
            "35",
            "--no-color",
        ])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("Tested: 42"),
        "every operation but the event stream is tested:\n{report}"
    );
    server.stop();
}
