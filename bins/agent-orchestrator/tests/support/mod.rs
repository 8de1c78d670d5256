//! End-to-end support: a real `orchestrator-server` on SQLite, the real
//! `agent-orchestrator` CLI, fixture repositories and scripted agents.

#![allow(dead_code, unreachable_pub)]

pub mod fault_proxy;
pub mod model_server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "end-to-end-admin-token";
pub const CRON_SECRET: &str = "end-to-end-cron-secret";

/// A binary of this workspace next to the test executable (`cargo test --workspace`
/// builds every binary before the tests run).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p {name}; cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// A server process on a fresh SQLite file; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    _data: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(workspace_binary("orchestrator-server"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &data.path().to_string_lossy()])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(["--cron-secret", CRON_SECRET])
            .args(["--public-url", &url])
            .args(["--rate-limit-enabled", "false"])
            .env_remove("DATABASE_URL")
            .env_remove("ORCHESTRATOR_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start orchestrator-server");
        let server = Self {
            child,
            url,
            _data: data,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = server
                .http
                .get(format!("{}/api/health", server.url))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not come up", server.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// An admin call; the `data` of a successful answer.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert!(status.is_success(), "{path}: {status}: {body}");
        body["data"].clone()
    }

    pub async fn create_task(&self, title: &str, files: &[&str]) -> Value {
        self.admin(
            reqwest::Method::POST,
            "/api/tasks",
            Some(json!({ "title": title, "description": format!("Do: {title}"), "filesHint": files })),
        )
        .await
    }

    pub async fn task(&self, id: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("/api/tasks/{id}"), None)
            .await
    }

    /// Polls the task until `done` holds for it (or panics after `limit`).
    pub async fn wait_task(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let task = self.task(id).await;
            let task = if task.get("task").is_some() {
                task["task"].clone()
            } else {
                task
            };
            if done(&task) {
                return task;
            }
            assert!(Instant::now() < deadline, "task {id} is still {task}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the task until it is COMPLETED or FAILED (or panics after `limit`).
    pub async fn wait_finished(&self, id: &str, limit: Duration) -> Value {
        self.wait_task(id, limit, |t| {
            matches!(t["status"].as_str(), Some("COMPLETED" | "FAILED"))
        })
        .await
    }

    /// The agent's log entries, newest first.
    pub async fn agent_log(&self, agent_id: &str) -> Vec<Value> {
        let page = self
            .admin(
                reqwest::Method::GET,
                &format!("/api/agents/{agent_id}/logs"),
                None,
            )
            .await;
        page["logs"].as_array().cloned().unwrap_or_default()
    }

    /// The task once it is IN_PROGRESS, and the id of the agent working on it.
    pub async fn wait_running(&self, id: &str) -> (Value, String) {
        let task = self
            .wait_task(id, Duration::from_secs(20), |t| {
                t["status"] == "IN_PROGRESS"
            })
            .await;
        let agent_id = task["assignedAgentId"].as_str().unwrap().to_owned();
        (task, agent_id)
    }

    /// The usage reported with the agent's completed attempt (the "Task completed" entry).
    pub async fn completed_usage(&self, agent_id: &str) -> Value {
        let logs = self.agent_log(agent_id).await;
        let closing = logs
            .iter()
            .find(|l| {
                l["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("Task completed"))
            })
            .unwrap_or_else(|| panic!("no completion in the agent's log: {logs:?}"));
        closing["metadata"]["usage"].clone()
    }

    /// A connection token minted by the admin.
    pub async fn connection_token(&self) -> String {
        self.admin(reqwest::Method::GET, "/api/connect", None).await["connectionToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs the supervisor now (lease expiry and the rest).
    pub async fn cleanup(&self) {
        let response = self
            .http
            .get(format!("{}/api/cron/cleanup", self.url))
            .bearer_auth(CRON_SECRET)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git repository with a first commit holding `files`.
pub fn repository(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut index = repo.index().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        index.add_path(Path::new(path)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
        .unwrap();
    dir
}

/// Writes an executable shell script: a scripted command-line agent.
pub fn agent_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The CLI with its config file and worktrees in `home`.
pub struct Cli {
    pub home: tempfile::TempDir,
}

impl Cli {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(workspace_binary("agent-orchestrator"));
        command
            .env(
                "AGENT_ORCHESTRATOR_CONFIG",
                self.home.path().join("config.json"),
            )
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME");
        command
    }

    /// Runs `args` to the end; its standard output, or a panic with everything it said.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self
            .command()
            .args(args)
            .output()
            .expect("run agent-orchestrator");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "agent-orchestrator {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `connect` to `server` with a fresh token, working on `repo`.
    pub async fn connect(&self, server: &Server, repo: &Path) {
        let token = server.connection_token().await;
        self.run(&["connect", &token, "-d", &repo.to_string_lossy()]);
    }

    /// `connect` to `server` through `url` (a proxy in front of it), working on `repo`.
    pub async fn connect_through(&self, server: &Server, url: &str, repo: &Path) {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let token = engine.decode(server.connection_token().await).unwrap();
        let token = String::from_utf8(token).unwrap();
        let (_, secret) = token.split_once('|').unwrap();
        let token = engine.encode(format!("{url}|{secret}"));
        self.run(&["connect", &token, "-d", &repo.to_string_lossy()]);
    }

    /// Where the runner keeps completions the server has not accepted yet.
    pub fn spool(&self) -> PathBuf {
        self.home.path().join("spool")
    }

    /// The files waiting in the spool.
    pub fn spooled(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.spool())
            .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default()
    }

    pub fn worktrees(&self) -> PathBuf {
        self.home.path().join("worktrees")
    }

    /// Starts `start` with `args` in the background, heartbeating every second.
    pub fn start(&self, args: &[&str]) -> Runner {
        self.start_with_env(&[], args)
    }

    /// [`Cli::start`] with variables added to the runner's environment.
    pub fn start_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Runner {
        let worktrees = self.worktrees();
        let child = self
            .command()
            .envs(env.iter().copied())
            .arg("start")
            .args(["--worktree-dir", &worktrees.to_string_lossy()])
            .args(["--heartbeat-secs", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator");
        Runner { child }
    }

    /// Starts the command backend with the scripted `agent` (and `args` before it).
    pub fn start_agent(&self, agent: &Path, args: &[&str]) -> Runner {
        let agent = agent.to_string_lossy();
        let mut all = vec!["--backend", "command"];
        all.extend_from_slice(args);
        all.extend(["--", &agent, "{prompt}"]);
        self.start(&all)
    }
}

/// A running `agent-orchestrator start`; killed when dropped.
pub struct Runner {
    pub child: Child,
}

impl Runner {
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; its status and everything it printed.
    pub fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut said = String::new();
                use std::io::Read;
                if let Some(mut out) = self.child.stdout.take() {
                    out.read_to_string(&mut said).unwrap();
                }
                if let Some(mut err) = self.child.stderr.take() {
                    err.read_to_string(&mut said).unwrap();
                }
                return (status, said);
            }
            assert!(Instant::now() < deadline, "the runner did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The commit a branch of the repository at `repo` points at.
pub fn branch_head(repo: &Path, branch: &str) -> Option<String> {
    let repo = git2::Repository::open(repo).ok()?;
    let branch = repo.find_branch(branch, git2::BranchType::Local).ok()?;
    Some(branch.get().peel_to_commit().ok()?.id().to_string())
}

/// With this variable set to `1`, a missing tool fails the test instead of skipping it.
pub const REQUIRE_TOOLS_VAR: &str = "ORCHESTRATOR_REQUIRE_TOOLS";

/// The real `claude` binary: `CLAUDE_BIN`, else `claude` on `PATH`. `None` (after a
/// printed skip) where it is not installed, unless tools are required.
pub fn claude_binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("CLAUDE_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("claude"))
                    .find(|candidate| candidate.is_file())
            })
        });
    if found.is_none() {
        skip_without_tool(
            test,
            "the claude CLI is not installed (npm install @anthropic-ai/claude-code; CLAUDE_BIN names it)",
        );
    }
    found
}

/// Says why `test` skips, or fails it when the environment requires every tool.
pub fn skip_without_tool(test: &str, reason: &str) {
    assert!(
        std::env::var(REQUIRE_TOOLS_VAR).map_or(true, |v| v != "1"),
        "{test}: {reason}, and {REQUIRE_TOOLS_VAR}=1 requires it"
    );
    eprintln!("skipping {test}: {reason}");
}

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
