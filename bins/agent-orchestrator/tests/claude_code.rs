//! The real `claude` CLI as the runner's agent, offline against a scripted Messages API
//! server: the model writes, edits and runs a command; the test follows the task from
//! creation over HTTP to a verified commit, watching the logs arrive while it runs.

mod support;

use std::time::Duration;

use serde_json::json;
use support::model_server::{ModelServer, Step};
use support::{Cli, Server, branch_head, claude_binary, repository};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_writes_edits_and_runs_commands_and_the_task_completes() {
    let test = "claude_code_writes_edits_and_runs_commands_and_the_task_completes";
    let Some(claude) = claude_binary(test) else {
        return;
    };
    let model = ModelServer::start(vec![
        Step::Tool {
            name: "Write",
            input: json!({"file_path": "{cwd}/src/greeting.py", "content": "def greet(name):\n    return 'Hello ' + name\n"}),
        },
        Step::Tool {
            name: "Edit",
            input: json!({"file_path": "{cwd}/src/greeting.py", "old_string": "'Hello '", "new_string": "'Hello, '"}),
        },
        Step::Tool {
            name: "Bash",
            input: json!({"command": "printf 'VERSION = 1\\n' > src/version.py", "description": "Write the version"}),
        },
        Step::Text {
            text: "Added greet() and the version.",
            delay: Duration::from_secs(2),
        },
    ])
    .await;
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n"), ("src/__init__.py", "")]);
    let cli = Cli::new();
    let token = server.connection_token().await;
    cli.run(&[
        "connect",
        &token,
        "-d",
        &repo.path().to_string_lossy(),
        "--backend",
        "claude-code",
    ]);

    let runner = cli.start_with_env(
        &[
            ("ANTHROPIC_BASE_URL", &model.url),
            ("ANTHROPIC_API_KEY", "scripted-test-key"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
        &["--claude-bin", &claude.to_string_lossy()],
    );

    // A description of 150 KB: more than one argument may hold, so the prompt must
    // reach claude another way (its standard input).
    let description = format!(
        "Add greet().\n\n{}\nEND OF THE DESCRIPTION",
        "Background the agent may read. ".repeat(5_000)
    );
    let task = server
        .admin(
            reqwest::Method::POST,
            "/api/tasks",
            Some(
                json!({"title": "Add greeting", "description": description, "filesHint": ["src/"]}),
            ),
        )
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    let (_, agent_id) = server.wait_running(&task_id).await;

    // The tool calls reach the server while the agent still works.
    let mut seen_while_running = false;
    for _ in 0..600 {
        let logs = server.agent_log(&agent_id).await;
        let wrote = logs.iter().any(|l| {
            l["logType"] == "TOOL_CALL"
                && l["content"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Write ")
        });
        if wrote {
            seen_while_running = server.task(&task_id).await["status"] == "IN_PROGRESS";
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_while_running,
        "no tool call was visible while the agent ran"
    );

    let done = server
        .wait_finished(&task_id, Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(model.played(), 4, "every scripted step was asked for");

    let short: String = task_id.chars().take(8).collect();
    let worktree = cli.worktrees().join(&short);
    let greeting = std::fs::read_to_string(worktree.join("src/greeting.py")).unwrap();
    assert_eq!(greeting, "def greet(name):\n    return 'Hello, ' + name\n");
    assert_eq!(
        std::fs::read_to_string(worktree.join("src/version.py")).unwrap(),
        "VERSION = 1\n"
    );
    let head = branch_head(repo.path(), &format!("agent/{short}")).unwrap();
    assert_eq!(done["commitSha"], head.as_str());
    assert_eq!(done["verificationStatus"], "PASSED");
    // The attempt names the backend and the model Claude Code said it ran on.
    let attempt = &done["attempts"][0];
    assert_eq!(attempt["backend"], "claude-code", "{attempt}");
    let ran_on = attempt["model"].as_str().unwrap_or_default();
    assert!(ran_on.starts_with("claude-"), "{attempt}");
    let logs = server.agent_log(&agent_id).await;
    assert!(
        logs.iter()
            .any(|l| l["content"] == format!("claude init ({ran_on})")),
        "{logs:?}"
    );

    // The prompt named the task and its paths; usage and the summary were reported.
    let first = model.requests()[0].to_string();
    assert!(first.contains("# Task: Add greeting"), "{first:.2000}");
    assert!(
        first.contains("END OF THE DESCRIPTION"),
        "the whole description reached the model"
    );
    let logs = server.agent_log(&agent_id).await;
    assert!(
        logs.iter()
            .any(|l| l["content"] == "Task completed: Added greet() and the version."),
        "{logs:?}"
    );
    let usage = server.completed_usage(&agent_id).await;
    assert!(usage["inputTokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["costUsd"].as_f64().unwrap() > 0.0, "{usage}");

    runner.signal("TERM");
    let (status, said) = runner.wait(Duration::from_secs(30));
    assert!(status.success(), "{said}");
}
