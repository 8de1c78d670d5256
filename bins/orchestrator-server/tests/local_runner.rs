//! `orchestrator-server --local-runner DIR`: server and runner in one process on the
//! embedded SQLite database, a task going from the API to a commit without any other
//! program.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{ServerProcess, call, git_repository, poll, server_command};
use orchestrator_store::scratch::ScratchSchema;
use serde_json::json;

const ADMIN_TOKEN: &str = "local-runner-admin-token";

/// Task `id` once it is COMPLETED or FAILED (within a minute).
async fn finished(http: &reqwest::Client, url: &str, id: &str) -> serde_json::Value {
    poll(
        || http.get(format!("{url}/api/tasks/{id}")),
        ADMIN_TOKEN,
        Duration::from_secs(60),
        |body| {
            let task = &body["data"];
            matches!(task["status"].as_str(), Some("COMPLETED" | "FAILED")).then(|| task.clone())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_and_runs_tasks() {
    let repo = git_repository();
    let data = tempfile::tempdir().unwrap();
    let agent = data.path().join("agent.sh");
    std::fs::write(
        &agent,
        "grep -q 'Add answer' \"$1\"\nmkdir -p lib\nprintf 'def answer():\\n    return 42\\n' > lib/answer.py\necho wrote lib/answer.py\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = data.path().join("server.log");
    let mut command = server_command();
    command
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--local-runner", &repo.path().to_string_lossy()])
        // Arguments that begin with a dash are the agent's too.
        .arg("--local-agent")
        .args([
            "sh",
            "-e",
            agent.to_string_lossy().as_ref(),
            "{prompt_file}",
        ]);
    let server = ServerProcess::start(command);
    let url = server.url.clone();
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let created = call(
        http.post(format!("{url}/api/tasks")).json(
            &json!({"title": "Answer", "description": "Add answer()", "filesHint": ["lib/"]}),
        ),
        ADMIN_TOKEN,
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let task = finished(&http, &url, &id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    let short: String = id.chars().take(8).collect();
    let repo_handle = git2::Repository::open(repo.path()).unwrap();
    let branch = repo_handle
        .find_branch(&format!("agent/{short}"), git2::BranchType::Local)
        .unwrap();
    assert_eq!(
        task["commitSha"].as_str().unwrap(),
        branch.get().peel_to_commit().unwrap().id().to_string()
    );
    // The runner sent the commit's files and patch with its completion.
    let changes = call(
        http.get(format!("{url}/api/tasks/{id}/changes")),
        ADMIN_TOKEN,
    )
    .await;
    let kept = &changes["data"][0];
    assert_eq!(kept["attemptNumber"], 1, "{changes}");
    assert_eq!(
        kept["changes"]["files"],
        json!([{
            "path": "lib/answer.py", "status": "ADDED",
            "insertions": 2, "deletions": 0, "binary": false
        }])
    );
    let patch = kept["changes"]["patch"].as_str().unwrap();
    assert!(
        patch.starts_with("diff --git a/lib/answer.py b/lib/answer.py\n")
            && patch.ends_with("@@ -0,0 +1,2 @@\n+def answer():\n+    return 42\n"),
        "{patch}"
    );
    assert_eq!(
        (
            &kept["changes"]["truncated"],
            &kept["changes"]["maxPatchBytes"]
        ),
        (&json!(false), &json!(256 * 1024))
    );
    // The runner said who it is with its claims, and which backend ran the attempt.
    let runners = call(http.get(format!("{url}/api/runners")), ADMIN_TOKEN).await;
    let local = &runners["data"][0];
    assert_eq!(local["name"], "local runner", "{runners}");
    assert_eq!(local["backends"], json!(["command"]));
    assert_eq!(local["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        local["host"].as_str().is_some_and(|host| !host.is_empty()),
        "{local}"
    );
    assert_eq!(task["attempts"][0]["backend"], "command", "{task}");
    assert_eq!(task["attempts"][0]["model"], json!(null));
    // Worktrees are kept as a connected runner keeps them: a folder per repository.
    let folder = orchestrator_runner::repository_folder(&repo.path().canonicalize().unwrap());
    let worktree = data
        .path()
        .join("state/worktrees")
        .join(folder)
        .join(&short);
    assert!(
        worktree.join("lib/answer.py").is_file(),
        "{}",
        worktree.display()
    );

    let status = server.stop();
    assert!(status.success(), "{status}");
    // The runner's events are logged for people to read.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("local runner: done     {short} commit")),
        "{logged}"
    );
    assert!(
        !logged.contains("TaskId(") && !logged.contains("Some(\""),
        "{logged}"
    );
}

/// The server's secrets never reach an agent (it sees the basics and what was passed to
/// it by name), and the database password is in no line the server logs, even when the
/// database cannot be opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_never_see_the_servers_secrets_and_logs_never_show_the_password() {
    let Some(schema) = ScratchSchema::from_env("local runner secrets test").await else {
        return;
    };
    const PASSWORD: &str = "Sup3rSecretDbPassw0rd";
    const CRON_SECRET: &str = "cron-secret-never-for-agents";
    let url = schema.url().replacen('@', &format!(":{PASSWORD}@"), 1);
    let repo = git_repository();
    let data = tempfile::tempdir().unwrap();
    let dump = data.path().join("agent-env.txt");
    let agent = data.path().join("agent.sh");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\nset -e\nenv > {}\nprintf 'x = 1\\n' > x.py\n",
            dump.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = data.path().join("server.log");
    let mut command = server_command();
    command
        .env("DATABASE_URL", &url)
        .env("CRON_SECRET", CRON_SECRET)
        .env("SOME_OTHER_SECRET", "not-for-agents-either")
        .env("PASSED_TO_AGENTS", "passed-by-name")
        .env("RUST_LOG", "debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--local-runner", &repo.path().to_string_lossy()])
        .args(["--local-agent-env", "PASSED_TO_AGENTS"])
        .arg("--local-agent")
        .args([agent.to_string_lossy().as_ref(), "{prompt}"]);
    let server = ServerProcess::start(command);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let created = call(
        http.post(format!("{}/api/tasks", server.url))
            .json(&json!({"title": "Dump", "description": "Show the environment"})),
        ADMIN_TOKEN,
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let task = finished(&http, &server.url, &id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert!(server.stop().success());

    let seen = std::fs::read_to_string(&dump).unwrap();
    for secret in [
        PASSWORD,
        CRON_SECRET,
        "not-for-agents-either",
        "DATABASE_URL",
    ] {
        assert!(!seen.contains(secret), "the agent saw {secret}:\n{seen}");
    }
    assert!(seen.contains("PASSED_TO_AGENTS=passed-by-name"), "{seen}");
    assert!(seen.lines().any(|line| line.starts_with("PATH=")), "{seen}");

    // A database that cannot be opened: the error names it, without the password.
    let missing = url.replacen("/test?", "/no_such_database?", 1);
    let mut command = server_command();
    let refused = command
        .env("DATABASE_URL", &missing)
        .args(["--bind", "127.0.0.1:0"])
        .args(["--admin-token", ADMIN_TOKEN])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no_such_database"), "{said}");
    let logged = std::fs::read_to_string(&log).unwrap();
    for text in [said.as_ref(), logged.as_str()] {
        assert!(!text.contains(PASSWORD), "the password was logged:\n{text}");
    }
    assert!(logged.contains("***"), "the URL is logged redacted");
    schema.drop_schema().await;
}
