//! `orchestrator-server --local-runner DIR`: server and runner in one process on the
//! embedded SQLite database, a task going from the API to a commit without any other
//! program.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{ServerProcess, call, poll, server_command};
use serde_json::json;

const ADMIN_TOKEN: &str = "local-runner-admin-token";

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("README.md"), "# app\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
        .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_and_runs_tasks() {
    let repo = repository();
    let data = tempfile::tempdir().unwrap();
    let agent = data.path().join("agent.sh");
    std::fs::write(
        &agent,
        "#!/bin/sh\nset -e\nmkdir -p lib\nprintf 'def answer():\\n    return 42\\n' > lib/answer.py\necho wrote lib/answer.py\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = server_command();
    command
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--local-runner", &repo.path().to_string_lossy()])
        .arg("--local-agent")
        .args([agent.to_string_lossy().as_ref(), "{prompt}"]);
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
    let task = poll(
        || http.get(format!("{url}/api/tasks/{id}")),
        ADMIN_TOKEN,
        Duration::from_secs(60),
        |body| {
            let task = &body["data"];
            matches!(task["status"].as_str(), Some("COMPLETED" | "FAILED")).then(|| task.clone())
        },
    )
    .await;
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
    let runners = call(http.get(format!("{url}/api/runners")), ADMIN_TOKEN).await;
    assert!(runners.to_string().contains("local runner"), "{runners}");

    let status = server.stop();
    assert!(status.success(), "{status}");
}
