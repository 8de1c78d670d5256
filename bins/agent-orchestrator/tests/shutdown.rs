//! Stopping a runner: SIGTERM and a second Ctrl-C give its tasks back to the queue
//! without using an attempt or asking anyone; SIGKILL takes its agents' process groups
//! with it.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cli, Server, agent_script, repository};

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Waits for `file` to hold a pid, and returns it.
async fn pid_in(file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} was not written",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A runner at work on one task, with an agent whose process group has two processes:
/// the agent's shell and a `sleep` it started.
struct AtWork {
    server: Server,
    _repo: tempfile::TempDir,
    _cli: Cli,
    scripts: tempfile::TempDir,
    runner: support::Runner,
    task_id: String,
    agent: i32,
    helper: i32,
}

impl AtWork {
    async fn begin(title: &str) -> Self {
        let server = Server::start().await;
        let repo = repository(&[("README.md", "# app\n")]);
        let cli = Cli::new();
        let scripts = tempfile::tempdir().unwrap();
        let pid_file = |name: &str| -> PathBuf { scripts.path().join(name) };
        let busy = agent_script(
            scripts.path(),
            "busy.sh",
            &format!(
                "echo $$ > {}\nsleep 120 &\necho $! > {}\nwait",
                pid_file("agent.pid").display(),
                pid_file("helper.pid").display()
            ),
        );
        cli.connect(&server, repo.path()).await;
        let task = server.create_task(title, &["src/"]).await;
        let task_id = task["id"].as_str().unwrap().to_owned();
        let runner = cli.start_agent(&busy, &["--lease-secs", "60"]);
        server.wait_running(&task_id).await;
        let agent = pid_in(&pid_file("agent.pid")).await;
        let helper = pid_in(&pid_file("helper.pid")).await;
        Self {
            server,
            _repo: repo,
            _cli: cli,
            scripts,
            runner,
            task_id,
            agent,
            helper,
        }
    }

    /// The runner exited cleanly, its agent is gone, and the task is back in the queue
    /// with no attempt used and no exception raised.
    async fn assert_given_back(self) {
        let (status, said) = self.runner.wait(Duration::from_secs(30));
        assert!(status.success(), "a clean exit: {said}");
        assert!(said.contains("returned"), "{said}");
        wait_gone(self.agent, "the agent").await;
        wait_gone(self.helper, "the agent's helper").await;
        let task = self.server.task(&self.task_id).await;
        assert_eq!(task["status"], "QUEUED", "{task}");
        assert_eq!(task["attemptsUsed"], 0, "{task}");
        assert_eq!(task["assignedAgentId"], Value::Null, "{task}");
        let exceptions = self
            .server
            .admin(
                reqwest::Method::GET,
                &format!("/api/exceptions?taskId={}&status=OPEN", self.task_id),
                None,
            )
            .await;
        assert_eq!(
            exceptions["exceptions"].as_array().map(Vec::len),
            Some(0),
            "nobody is asked: {exceptions}"
        );
        drop(self.scripts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_the_task_back_without_using_an_attempt() {
    let at_work = AtWork::begin("Be stopped by a service manager").await;
    at_work.runner.signal("TERM");
    at_work.assert_given_back().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_gives_the_task_back_without_using_an_attempt() {
    let at_work = AtWork::begin("Be interrupted twice").await;
    at_work.runner.signal("INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    at_work.runner.signal("INT");
    at_work.assert_given_back().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_takes_its_agents_process_group_with_it() {
    let at_work = AtWork::begin("Be killed").await;
    at_work.runner.signal("KILL");
    wait_gone(at_work.agent, "the agent").await;
    wait_gone(at_work.helper, "the agent's helper").await;
    let task = at_work.server.task(&at_work.task_id).await;
    assert_eq!(
        task["status"], "IN_PROGRESS",
        "only the lease's expiry gives a killed runner's task back: {task}"
    );
}
