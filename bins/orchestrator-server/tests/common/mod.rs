//! What the tests of the server process share: a server on a free loopback port, stopped
//! by SIGTERM or killed if a test ends without stopping it.

// Every test file compiles this module and uses its own share of it.
#![allow(dead_code)]

pub(crate) mod browser;

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `orchestrator-server`.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) url: String,
}

/// The server binary with the environment a test must not inherit cleared, quiet logs,
/// and standard output dropped; the caller adds its arguments (the address comes from
/// [`ServerProcess::start`]).
pub(crate) fn server_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator-server"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("ORCHESTRATOR_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    command
}

/// A loopback port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl ServerProcess {
    /// Starts `command` (see [`server_command`]) listening on a free port.
    pub(crate) fn start(mut command: Command) -> Self {
        let port = free_port();
        // By the environment: the local runner's agent takes every argument after it.
        let child = command
            .env("ORCHESTRATOR_BIND", format!("127.0.0.1:{port}"))
            .spawn()
            .expect("start orchestrator-server");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until the health route answers.
    pub(crate) async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http
            .get(format!("{}/api/health", self.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "{} did not come up", self.url);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(mut self) -> ExitStatus {
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` with `token`; the JSON body of a successful answer.
pub(crate) async fn call(request: reqwest::RequestBuilder, token: &str) -> Value {
    let response = request.bearer_auth(token).send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Calls `request()` with `token` every 100 ms until `done` picks a value out of the body,
/// for up to `within`.
pub(crate) async fn poll(
    request: impl Fn() -> reqwest::RequestBuilder,
    token: &str,
    within: Duration,
    done: impl Fn(&Value) -> Option<Value>,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let body = call(request(), token).await;
        if let Some(value) = done(&body) {
            return value;
        }
        assert!(Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A git repository in a new directory with one commit (a README).
pub(crate) fn git_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("README.md"), "# app\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(std::path::Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
        .unwrap();
    dir
}

/// A binary of the workspace beside the test's own (`cargo test --workspace` builds
/// them all).
pub(crate) fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the target directory")
        .join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p {name}; cargo test --workspace does)",
        binary.display()
    );
    binary
}
