//! `orchestrator-server --local-runner DIR`: server and runner in one process on the
//! embedded SQLite database, a task going from the API to a commit without any other
//! program.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_orchestrator-server"))
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--local-runner", &repo.path().to_string_lossy()])
        .arg("--local-agent")
        .args([agent.to_string_lossy().as_ref(), "{prompt}"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{url}/api/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created: Value = http
        .post(format!("{url}/api/tasks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"title": "Answer", "description": "Add answer()", "filesHint": ["lib/"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let body: Value = http
            .get(format!("{url}/api/tasks/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task = body["data"].clone();
        if matches!(task["status"].as_str(), Some("COMPLETED" | "FAILED")) {
            break task;
        }
        assert!(Instant::now() < deadline, "still {task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
    let runners: Value = http
        .get(format!("{url}/api/runners"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(runners.to_string().contains("local runner"), "{runners}");

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
