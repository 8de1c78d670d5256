//! The anthropic backend end to end: the runner's own Messages API tool loop against a
//! scripted model server, with the semantic review scored by the same server.

mod support;

use std::time::Duration;

use serde_json::json;
use support::model_server::{ModelServer, Step};
use support::{Cli, Server, branch_head, repository};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_api_agent_edits_runs_and_is_reviewed() {
    let model = ModelServer::start_answering(
        vec![
            Step::Tool {
                name: "write_file",
                input: json!({"path": "src/tool.py", "content": "def tool():\n    return 1\n"}),
            },
            Step::Tool {
                name: "edit_file",
                input: json!({"path": "src/tool.py", "old_string": "return 1", "new_string": "return 2"}),
            },
            Step::Tool {
                name: "run_command",
                input: json!({"argv": ["ls", "src"]}),
            },
            Step::Tool {
                name: "write_file",
                input: json!({"path": "../escape.txt", "content": "no"}),
            },
            Step::Text {
                text: "Added tool() returning 2.",
                delay: Duration::ZERO,
            },
        ],
        r#"{"score": 0.9, "explanation": "The change adds tool() as asked."}"#,
    )
    .await;
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    cli.connect(&server, repo.path()).await;
    let _runner = cli.start_with_env(
        &[
            ("ANTHROPIC_BASE_URL", &model.url),
            ("ANTHROPIC_API_KEY", "scripted-test-key"),
        ],
        &["--backend", "anthropic", "--semantic-review"],
    );

    let task = server.create_task("Add tool", &["src/"]).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let (_, agent_id) = server.wait_running(&id).await;
    let done = server.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let short: String = id.chars().take(8).collect();
    let worktree = cli.worktrees().join(&short);
    assert_eq!(
        std::fs::read_to_string(worktree.join("src/tool.py")).unwrap(),
        "def tool():\n    return 2\n"
    );
    assert!(
        !cli.worktrees().join("escape.txt").exists(),
        "the escape was refused"
    );
    assert_eq!(
        done["commitSha"].as_str(),
        branch_head(repo.path(), &format!("agent/{short}")).as_deref()
    );

    // The model saw the command's output and the refusal as tool results.
    let results: Vec<String> = model
        .requests()
        .iter()
        .filter_map(|r| r["messages"].as_array().and_then(|m| m.last()).cloned())
        .map(|m| m.to_string())
        .collect();
    assert!(
        results
            .iter()
            .any(|m| m.contains("tool.py") && m.contains("exit 0")),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|m| m.contains("outside the repository") && m.contains("\"is_error\":true")),
        "{results:?}"
    );

    // Five turns of 12 input and 6 output tokens at the default model's list price
    // (3 and 15 US dollars per million).
    let usage = server.completed_usage(&agent_id).await;
    assert_eq!(usage["inputTokens"], 60, "{usage}");
    assert_eq!(usage["outputTokens"], 30, "{usage}");
    let cost = usage["costUsd"].as_f64().unwrap();
    assert!((cost - 0.000_63).abs() < 1e-9, "{usage}");

    let verified = server
        .admin(reqwest::Method::GET, &format!("/api/verify/{id}"), None)
        .await;
    let latest = &verified["results"][0];
    assert_eq!(latest["semanticScore"], 0.9, "{verified}");
    assert_eq!(
        latest["semanticExplanation"],
        "The change adds tool() as asked."
    );
    assert_eq!(latest["syntaxPassed"], true);
}
