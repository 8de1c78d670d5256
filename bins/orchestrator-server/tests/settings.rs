//! The supervisor's timing, retention and retry table come from the command line: bad
//! values stop the start with the reason, good ones reach the supervisor.

mod common;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProcess, call, free_port, poll, server_command};
use serde_json::json;

const ADMIN_TOKEN: &str = "settings-test-admin-token";
const CRON_SECRET: &str = "settings-test-cron-secret";

/// Waits for a server that must refuse to start; kills it if it starts after all.
fn refused(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll the server").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill the server");
            panic!("the server started despite a bad setting");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("the server's output")
}

#[test]
fn bad_settings_stop_the_start_and_say_why() {
    let data = tempfile::tempdir().unwrap();
    let policy = data.path().join("retry.json");
    std::fs::write(
        &policy,
        r#"{"TYPO_ERROR": {"shouldRetry": true, "delay": 1000, "maxAttempts": 2, "requiresHumanReview": false}}"#,
    )
    .unwrap();
    let policy = policy.to_string_lossy().into_owned();
    let missing = data
        .path()
        .join("missing.json")
        .to_string_lossy()
        .into_owned();
    for (args, says) in [
        (vec!["--retry-policy", policy.as_str()], "TYPO_ERROR"),
        (vec!["--retry-policy", missing.as_str()], "cannot read"),
        (vec!["--supervisor-interval", "0"], "--supervisor-interval"),
        (vec!["--keep-events", "0"], "--keep-events"),
        (vec!["--stall-after", "soon"], "--stall-after"),
    ] {
        let child = server_command()
            .args(["--bind", &format!("127.0.0.1:{}", free_port())])
            .args(["--data-dir", &data.path().join("state").to_string_lossy()])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(&args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orchestrator-server");
        let output = refused(child);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_settings_reach_the_supervisor() {
    let data = tempfile::tempdir().unwrap();
    let mut command = server_command();
    command
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--cron-secret", CRON_SECRET])
        .args(["--keep-events", "1"])
        .args(["--supervisor-interval", "3600"]);
    let server = ServerProcess::start(command);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    for title in ["first", "second", "third"] {
        call(
            http.post(format!("{}/api/tasks", server.url))
                .json(&json!({"title": title, "description": "d"})),
            ADMIN_TOKEN,
        )
        .await;
    }
    // The pass at start may still be running; the cleanup then waits for its turn.
    let report = poll(
        || http.get(format!("{}/api/cron/cleanup", server.url)),
        CRON_SECRET,
        Duration::from_secs(30),
        |cleaned| (cleaned["report"]["ran"] == json!(true)).then(|| cleaned["report"].clone()),
    )
    .await;
    assert!(report["prunedEvents"].as_u64().is_some(), "{report}");
    // The pass at start may have pruned some of the events, this one the rest: the log
    // holds the newest only, so a reader resuming from the start is told to resync and
    // then gets that one.
    let mut stream = http
        .get(format!("{}/api/events?after=0", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("event: task.created") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("id: 2\nevent: resync") && text.contains("id: 3\nevent: task.created"),
        "--keep-events 1 keeps only the newest event: {text}"
    );
}

/// A first start on an address another program holds writes nothing (no database, no
/// admin token whose one showing would be lost) and says how to choose another; the
/// next start prints a new token.
#[test]
fn a_taken_address_writes_nothing_and_the_next_start_prints_the_token() {
    let data = tempfile::tempdir().unwrap();
    let state = data.path().join("state");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut command = server_command();
    command
        .args(["--data-dir", &state.to_string_lossy()])
        .args(["--bind", &address])
        .env_remove("CRON_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = refused(command.spawn().unwrap());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&address) && said.contains("--bind"), "{said}");
    assert!(!state.exists(), "nothing was written: {said}");
    drop(taken);

    let mut command = server_command();
    command
        .args(["--data-dir", &state.to_string_lossy()])
        .args(["--bind", &address])
        .env_remove("CRON_SECRET")
        .stdout(Stdio::piped());
    let mut server = command.spawn().unwrap();
    let mut printed = String::new();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed.contains("Admin token") {
        assert!(Instant::now() < deadline, "no token was printed: {printed}");
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap() == 0 {
            break;
        }
        printed.push_str(&line);
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(printed.contains("Admin token (shown once"), "{printed}");
}

/// With the default log level a busy server does not write a line per successful
/// request: failures are warnings, and a log that is not a terminal has no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_log_keeps_failures_not_every_request() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let mut command = server_command();
    command
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log).unwrap())
        .args(["--data-dir", &data.path().join("state").to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--rate-limit-enabled", "false"]);
    let server = ServerProcess::start(command);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    for _ in 0..20 {
        call(http.get(format!("{}/api/tasks", server.url)), ADMIN_TOKEN).await;
    }
    let missing = http
        .get(format!("{}/api/tasks/not-a-task", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(missing.status().is_client_error());
    assert!(server.stop().success());
    let logged = std::fs::read_to_string(&log).unwrap();
    let requests: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("request_id="))
        .collect();
    assert!(
        requests
            .iter()
            .all(|line| line.contains("WARN") && line.contains("not-a-task")),
        "{logged}"
    );
    assert_eq!(requests.len(), 1, "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "no colour codes in a file: {logged}"
    );
}

/// A PostgreSQL server that cannot be reached stops the start at once, naming its host
/// and port, never the password.
#[test]
fn an_unreachable_database_stops_the_start_at_once_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut command = server_command();
    command
        .env(
            "DATABASE_URL",
            format!("postgres://app:Secr3tPassw0rd@127.0.0.1:{port}/db"),
        )
        .args(["--bind", "127.0.0.1:0"])
        .args(["--admin-token", ADMIN_TOKEN])
        .stderr(Stdio::piped());
    let started = Instant::now();
    let output = refused(command.spawn().unwrap());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
    assert!(!said.contains("Secr3tPassw0rd"), "{said}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}: {said}",
        started.elapsed()
    );
}
