//! A runner against a server that fails: a fault-injecting proxy between the real runner
//! and the real server answers the completion route with errors or drops it for a while,
//! and an admin revokes a runner at work. Finished work is never lost.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::fault_proxy::{Answer, FaultProxy};
use support::{Cli, Server, agent_script, branch_head, repository};

const COMPLETE: &str = "/api/runner/complete";

/// Every kind of failure in turn: the server's 503, a rate limit, a gateway's page, a
/// dropped connection.
const EVERY_FAULT: [Answer; 4] = [
    Answer::Unavailable,
    Answer::RateLimited,
    Answer::BadGateway,
    Answer::Drop,
];

const OUTAGE: Duration = Duration::from_secs(15);

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

/// A runner connected through a fault proxy to a real server, with one queued task for
/// an agent that adds a file and finishes at once, and an outage of the completion route
/// waiting for its first request.
struct Outage {
    server: Server,
    proxy: FaultProxy,
    repo: tempfile::TempDir,
    cli: Cli,
    scripts: tempfile::TempDir,
    task_id: String,
}

impl Outage {
    async fn begin(title: &str) -> Self {
        let server = Server::start().await;
        let proxy = FaultProxy::start(&server.url).await;
        let repo = repository(&[("README.md", "# app\n")]);
        let cli = Cli::new();
        cli.connect_through(&server, &proxy.url, repo.path()).await;
        let task_id = id(&server.create_task(title, &["src/"]).await);
        proxy.outage(COMPLETE, &EVERY_FAULT, OUTAGE);
        Self {
            server,
            proxy,
            repo,
            cli,
            scripts: tempfile::tempdir().unwrap(),
            task_id,
        }
    }

    /// `start` with the quick agent and `args`.
    fn start(&self, args: &[&str]) -> support::Runner {
        let agent = agent_script(
            self.scripts.path(),
            "quick.sh",
            "mkdir -p src\nprintf 'def done():\\n    return True\\n' > src/done.py",
        );
        self.cli.start_agent(&agent, args)
    }

    /// The task completed in its first attempt with the commit on its branch, and
    /// nothing is left in the spool.
    async fn assert_completed_with_its_commit(&self) {
        let done = self
            .server
            .wait_finished(&self.task_id, Duration::from_secs(60))
            .await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(done["attempt"], 1, "no second attempt was needed: {done}");
        let short: String = self.task_id.chars().take(8).collect();
        let head =
            branch_head(self.repo.path(), &format!("agent/{short}")).expect("the task's branch");
        assert_eq!(done["commitSha"], head.as_str(), "{done}");
        assert!(self.cli.spooled().is_empty(), "{:?}", self.cli.spooled());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_gets_through_after_a_fifteen_second_outage() {
    let outage = Outage::begin("Outlast an outage").await;
    // The outage is longer than the lease: only heartbeats meanwhile keep it.
    let runner = outage.start(&["--once", "--lease-secs", "6"]);
    let (status, said) = runner.wait(Duration::from_secs(90));
    assert!(status.success(), "{said}");
    assert!(
        outage.proxy.outage_over(COMPLETE),
        "the runner outlasted the outage"
    );
    assert!(
        outage.proxy.faulted(COMPLETE) >= 4,
        "every fault was tried: {said}"
    );
    assert!(said.contains("did not get through"), "{said}");
    assert!(said.contains("done"), "{said}");
    assert!(!said.contains("not done"), "{said}");
    outage.assert_completed_with_its_commit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_kept_by_a_killed_runner_is_sent_by_the_next_start() {
    let outage = Outage::begin("Outlast a crash").await;
    let killed = outage.start(&["--lease-secs", "30"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while outage.proxy.faulted(COMPLETE) == 0 {
        assert!(Instant::now() < deadline, "no completion was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outage.cli.spooled().len(), 1, "kept before it was sent");
    killed.signal("KILL");
    let _ = killed.wait(Duration::from_secs(10));
    assert!(
        !outage.proxy.outage_over(COMPLETE),
        "killed during the outage"
    );
    let task = outage.server.task(&outage.task_id).await;
    assert_eq!(task["status"], "VERIFYING", "{task}");

    let restarted = outage.start(&["--once", "--lease-secs", "30"]);
    let (status, said) = restarted.wait(Duration::from_secs(90));
    assert!(status.success(), "{said}");
    assert!(said.contains("resend"), "{said}");
    outage.assert_completed_with_its_commit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_stops_its_agents() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let pid_file = scripts.path().join("agent.pid");
    let slow = agent_script(
        scripts.path(),
        "slow.sh",
        &format!("echo $$ > {}\nexec sleep 120", pid_file.display()),
    );
    cli.connect(&server, repo.path()).await;
    let task_id = id(&server.create_task("Be revoked", &["src/"]).await);
    let runner = cli.start_agent(&slow, &[]);
    server.wait_running(&task_id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the agent did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let runners = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await;
    let runner_id = runners.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/runners/{runner_id}"),
            None,
        )
        .await;

    let (status, said) = runner.wait(Duration::from_secs(20));
    assert!(!status.success(), "{said}");
    assert!(said.contains("revoked"), "{said}");
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    assert!(!alive, "the agent (pid {pid}) was stopped: {said}");
}
