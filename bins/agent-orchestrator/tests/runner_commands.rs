//! The runner CLI end to end with a scripted command-line agent: a real
//! `orchestrator-server` on SQLite, `agent-orchestrator connect` and `start`, worktrees,
//! streamed logs, verification, commits and retries.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Cli, Server, agent_script, branch_head, repository};

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_claimed_at_once_worked_verified_committed_and_completed() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n"), ("src/__init__.py", "")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    // Says what it does, takes a moment (so its log can be watched), then writes a file.
    let agent = agent_script(
        scripts.path(),
        "agent.sh",
        "echo \"starting: $(echo \"$1\" | head -n 1)\"\nsleep 2\nmkdir -p src\nprintf 'def hello():\\n    return \"hi\"\\n' > src/hello.py\necho finished",
    );

    let token = server.connection_token().await;
    let said = cli.run(&[
        "connect",
        &token,
        "-d",
        &repo.path().to_string_lossy(),
        "--name",
        "e2e-runner",
    ]);
    assert!(said.contains("connected to"), "{said}");
    let status = cli.run(&["status"]);
    assert!(status.contains("e2e-runner"), "{status}");

    let runner = cli.start(&[
        "--backend",
        "command",
        "--heartbeat-secs",
        "1",
        "--",
        &agent.to_string_lossy(),
        "{prompt}",
    ]);
    // Let the runner reach its long poll before the task exists.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let task = server.create_task("Add hello", &["src/"]).await;
    let task_id = id(&task);

    let working = server
        .wait_task(&task_id, Duration::from_secs(20), |t| {
            t["status"] == "IN_PROGRESS"
        })
        .await;
    let created = chrono_millis(&task["createdAt"]);
    let assigned = chrono_millis(&working["assignedAt"]);
    assert!(
        assigned - created < 100,
        "claimed {} ms after creation",
        assigned - created
    );
    // The agent's first line reaches the server while it still works.
    let agent_id = working["assignedAgentId"].as_str().unwrap().to_owned();
    let mut seen_while_running = false;
    for _ in 0..40 {
        let logs = server
            .admin(
                reqwest::Method::GET,
                &format!("/api/agents/{agent_id}/logs"),
                None,
            )
            .await;
        let lines: Vec<String> = logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["content"].as_str().unwrap_or_default().to_owned())
            .collect();
        if lines
            .iter()
            .any(|l| l.starts_with("starting: # Task: Add hello"))
        {
            let current = server.task(&task_id).await;
            seen_while_running = current["status"] == "IN_PROGRESS";
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_while_running,
        "the agent's output was not visible while it ran"
    );

    let done = server
        .wait_task(&task_id, Duration::from_secs(60), |t| {
            matches!(t["status"].as_str(), Some("COMPLETED" | "FAILED"))
        })
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let short: String = task_id.chars().take(8).collect();
    let branch = format!("agent/{short}");
    let head = branch_head(repo.path(), &branch).expect("the task's branch");
    assert_eq!(done["commitSha"], head.as_str());
    assert_eq!(done["verificationStatus"], "PASSED");
    assert!(cli.worktrees().join(&short).join("src/hello.py").is_file());
    // The repository's own checkout is untouched.
    assert!(!repo.path().join("src/hello.py").exists());
    let results = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/verify/{task_id}"),
            None,
        )
        .await;
    assert_eq!(results["results"][0]["syntaxPassed"], true, "{results}");

    runner.signal("INT");
    let (status, said) = runner.wait(Duration::from_secs(40));
    assert!(status.success(), "{said}");
    assert!(said.contains(&format!("done     {short}")), "{said}");

    let said = cli.run(&["disconnect"]);
    assert!(said.contains("revoked"), "{said}");
    let runners = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await;
    assert!(runners.to_string().contains("e2e-runner"));
}

/// Milliseconds since the epoch of an ISO timestamp `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn chrono_millis(value: &Value) -> i64 {
    let text = value.as_str().expect("a timestamp");
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let day: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let clock: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Only differences within a day are compared; the day number need not be exact.
    let days = day[0] * 372 + day[1] * 31 + day[2];
    ((days * 24 + clock[0]) * 60 + clock[1]) * 60_000
        + clock[2] * 1000
        + millis.parse::<i64>().unwrap()
}
