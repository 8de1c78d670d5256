//! The openai backend end to end against a scripted OpenAI-compatible server: Chat
//! Completions with tool calls, the same confined tools as the anthropic backend.

mod support;

use std::time::Duration;

use serde_json::json;
use support::model_server::{ModelServer, Step};
use support::{Cli, Server, repository};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completions_model_writes_and_edits_through_tool_calls() {
    let model = ModelServer::start(vec![
        Step::Tool {
            name: "write_file",
            input: json!({"path": "src/local.py", "content": "VALUE = 1\n"}),
        },
        Step::Tool {
            name: "edit_file",
            input: json!({"path": "src/local.py", "old_string": "1", "new_string": "3"}),
        },
        Step::Text {
            text: "Set VALUE to 3.",
            delay: Duration::ZERO,
        },
    ])
    .await;
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    cli.connect(&server, repo.path()).await;

    // Without a model name, the error names the flag.
    let output = cli
        .command()
        .args(["start", "--backend", "openai"])
        .env("OPENAI_BASE_URL", format!("{}/v1", model.url))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("--model"));
    // Prices that are not prices say how to write them.
    let output = cli
        .command()
        .args([
            "start",
            "--backend",
            "openai",
            "--model",
            "m",
            "--prices",
            "3",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(said.contains("INPUT,OUTPUT"), "{said}");
    // …and are refused by a backend that does not price tokens.
    let output = cli
        .command()
        .args(["start", "--backend", "command", "--prices", "1,2"])
        .args(["--", "true", "{prompt}"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        said.contains("--prices is for the anthropic and openai backends"),
        "{said}"
    );

    let _runner = cli.start_with_env(
        &[("OPENAI_BASE_URL", &format!("{}/v1", model.url))],
        &[
            "--backend",
            "openai",
            "--model",
            "local-coder",
            "--prices",
            "1,2",
        ],
    );
    let task = server.create_task("Set value", &["src/"]).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let (_, agent_id) = server.wait_running(&id).await;
    let done = server.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(
        (
            &done["attempts"][0]["backend"],
            &done["attempts"][0]["model"]
        ),
        (&json!("openai"), &json!("local-coder")),
        "{done}"
    );
    let short: String = id.chars().take(8).collect();
    assert_eq!(
        std::fs::read_to_string(cli.worktrees().join(&short).join("src/local.py")).unwrap(),
        "VALUE = 3\n"
    );
    let requests = model.requests();
    assert_eq!(requests[0]["model"], "local-coder");
    assert_eq!(requests[0]["tools"][0]["type"], "function");
    let last = requests.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(last.last().unwrap()["role"], "tool", "{last:?}");

    // Three answers of 12 prompt and 6 completion tokens at 1 and 2 US dollars per million.
    let usage = server.completed_usage(&agent_id).await;
    assert_eq!(usage["inputTokens"], 36, "{usage}");
    let cost = usage["costUsd"].as_f64().unwrap();
    assert!((cost - 0.000_072).abs() < 1e-9, "{usage}");
}
