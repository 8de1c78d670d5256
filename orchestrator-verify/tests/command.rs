//! Running checks' commands: exit codes, missing tools, time limits that kill the whole
//! process group, output caps, a scrubbed environment, and cancellation.

use std::path::Path;
use std::time::{Duration, Instant};

use orchestrator_verify::command::{CommandError, CommandSpec, run};

fn spec(program: &str, args: &[&str], dir: &Path) -> CommandSpec {
    CommandSpec {
        time_limit: Duration::from_secs(30),
        ..CommandSpec::new(program, args, dir)
    }
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.split_whitespace().nth(2) == Some("Z"),
    }
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn assert_gone(pid: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} outlived its command"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn output_and_exit_codes_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&spec("printf", &["hello %s", "world"], dir.path()))
        .await
        .unwrap();
    assert_eq!(out.stdout, "hello world");
    assert!(out.succeeded() && !out.truncated && !out.timed_out);
    let out = run(&spec("sh", &["-c", "echo oops >&2; exit 3"], dir.path()))
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stderr, "oops\n");
    let err = run(&spec("no-such-tool-for-orchestrator", &[], dir.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::NotInstalled(ref tool) if tool == "no-such-tool-for-orchestrator")
    );
    assert_eq!(
        err.to_string(),
        "`no-such-tool-for-orchestrator` is not installed"
    );
}

#[tokio::test]
async fn the_time_limit_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut hanging = spec("sh", &["-c", "sleep 300 & echo $! > pid; wait"], dir.path());
    hanging.time_limit = Duration::from_millis(500);
    let started = Instant::now();
    let out = run(&hanging).await.unwrap();
    assert!(out.timed_out && out.exit_code.is_none(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let grandchild = wait_for_file(&dir.path().join("pid")).await;
    assert_gone(&grandchild).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = spec("sh", &["-c", "sleep 300 & echo $! > pid; wait"], dir.path());
    let task = tokio::spawn(async move { run(&hanging).await });
    let grandchild = wait_for_file(&dir.path().join("pid")).await;
    task.abort();
    let _ = task.await;
    assert_gone(&grandchild).await;
}

#[tokio::test]
async fn output_is_capped_and_the_environment_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let mut chatty = spec("sh", &["-c", "yes | head -c 100000"], dir.path());
    chatty.output_cap = 1000;
    let out = run(&chatty).await.unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.truncated);

    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo sets it for tests"
    );
    let mut env = spec("env", &[], dir.path());
    env.env.push(("CHECK_MODE".into(), "strict".into()));
    let out = run(&env).await.unwrap();
    assert!(out.stdout.lines().any(|l| l.starts_with("PATH=")));
    assert!(out.stdout.lines().any(|l| l == "CHECK_MODE=strict"));
    assert!(
        !out.stdout.contains("CARGO_MANIFEST_DIR"),
        "the runner's own environment stays behind: {}",
        out.stdout
    );
}
