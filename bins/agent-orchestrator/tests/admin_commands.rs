//! The admin commands against a real server: queue, list, show and cancel tasks, and the
//! errors that say what to pass.

mod support;

use support::{ADMIN_TOKEN, Cli, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_queued_listed_shown_and_cancelled() {
    let server = Server::start().await;
    let cli = Cli::new();
    let admin = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--server", &server.url, "--admin-token", ADMIN_TOKEN]);
        cli.run(&full)
    };
    let said = admin(&[
        "task",
        "add",
        "Add login",
        "-m",
        "JWT login",
        "-f",
        "src/auth/,src/login.rs",
        "-p",
        "1",
    ]);
    assert!(said.starts_with("queued "), "{said}");
    let id = said.split_whitespace().nth(1).unwrap().to_owned();
    admin(&["task", "add", "Write docs"]);

    let queue = admin(&["queue"]);
    let lines: Vec<&str> = queue.lines().collect();
    assert_eq!(lines.len(), 2, "{queue}");
    assert!(
        lines[0].contains("Add login") && lines[0].contains("p1"),
        "{queue}"
    );

    let shown = admin(&["task", "show", &id]);
    assert!(
        shown.contains("QUEUED") && shown.contains("src/auth/") && shown.contains("JWT login"),
        "{shown}"
    );

    let cancelled = admin(&["task", "cancel", &id]);
    assert!(cancelled.contains("CANCELLED"), "{cancelled}");
    let listed = admin(&["task", "list", "--status", "cancelled"]);
    assert!(
        listed.contains("Add login") && !listed.contains("Write docs"),
        "{listed}"
    );

    // Without the token, the error names the flag.
    let output = cli
        .command()
        .args(["queue", "--server", &server.url])
        .env_remove("ORCHESTRATOR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--admin-token"), "{said}");
    // A wrong token is refused with the server's words.
    let output = cli
        .command()
        .args([
            "queue",
            "--server",
            &server.url,
            "--admin-token",
            "wrong-token-of-some-length",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused"));
}

#[test]
fn start_without_a_connection_says_how_to_connect() {
    let cli = Cli::new();
    let output = cli.command().arg("start").output().unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("agent-orchestrator connect <token>"),
        "{said}"
    );

    let output = cli
        .command()
        .args(["connect", "not-a-token"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a connection token"));
}

/// What `agent-orchestrator <args>` with the admin flags printed and whether it
/// succeeded.
fn as_admin(cli: &Cli, server: &Server, args: &[&str]) -> (bool, String) {
    let output = cli
        .command()
        .args(args)
        .args(["--server", &server.url, "--admin-token", ADMIN_TOKEN])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_listed_newest_first_and_named_by_any_unique_beginning() {
    let server = Server::start().await;
    let cli = Cli::new();
    let admin = |args: &[&str]| {
        let (ok, said) = as_admin(&cli, &server, args);
        assert!(ok, "{args:?}: {said}");
        said
    };
    // Priorities are the API's, 0 to 3.
    admin(&["task", "add", "First", "-p", "0"]);
    let (ok, said) = as_admin(&cli, &server, &["task", "add", "Too low", "-p", "4"]);
    assert!(!ok && said.contains("0..=3"), "{said}");
    // Seventeen ids: two of them begin with the same character.
    let mut ids = Vec::new();
    for n in 1..=16 {
        let said = admin(&["task", "add", &format!("Task {n}"), "-p", "3"]);
        ids.push(said.split_whitespace().nth(1).unwrap().to_owned());
    }
    let listed = admin(&["task", "list", "--limit", "2"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].contains("Task 16") && lines[1].contains("Task 15"),
        "{listed}"
    );
    assert!(lines[2].contains("--offset 2 for more"), "{listed}");
    let next = admin(&["task", "list", "--limit", "2", "--offset", "2"]);
    assert!(next.lines().next().unwrap().contains("Task 14"), "{next}");
    let queued = admin(&["task", "list", "--status", "queued", "--limit", "100"]);
    assert_eq!(queued.lines().count(), 17, "{queued}");

    // A short id, as the list prints it, names its task.
    let short = &ids[4][..8];
    let shown = admin(&["task", "show", short]);
    assert!(
        shown.contains("Task 5") && shown.contains(&ids[4]),
        "{shown}"
    );
    let cancelled = admin(&["task", "cancel", &ids[4][..5]]);
    assert!(cancelled.contains("CANCELLED"), "{cancelled}");

    // A beginning two ids share is refused, naming them; one no id has says so.
    let mut firsts: Vec<char> = ids.iter().map(|id| id.chars().next().unwrap()).collect();
    firsts.sort_unstable();
    let shared = firsts.windows(2).find(|w| w[0] == w[1]).unwrap()[0].to_string();
    let (ok, said) = as_admin(&cli, &server, &["task", "show", &shared]);
    assert!(!ok && said.contains("more than one task id"), "{said}");
    let unused = "0123456789abcdef"
        .chars()
        .find(|c| !firsts.contains(c))
        .map(|c| format!("{c}{c}{c}"));
    if let Some(unused) = unused {
        let (ok, said) = as_admin(&cli, &server, &["task", "show", &unused]);
        assert!(!ok && said.contains("no task id begins with"), "{said}");
    }
    let (ok, said) = as_admin(&cli, &server, &["task", "show", "not-an-id"]);
    assert!(!ok && said.contains("not a task id"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_and_agents_are_listed_and_status_tells_of_a_revocation() {
    let server = Server::start().await;
    let cli = Cli::new();
    let repo = support::repository(&[("README.md", "# app\n")]);
    let (ok, said) = as_admin(&cli, &server, &["runners"]);
    assert!(ok && said.contains("no runners"), "{said}");
    cli.connect(&server, repo.path()).await;
    let (ok, runners) = as_admin(&cli, &server, &["runners"]);
    assert!(ok && runners.contains("ACTIVE"), "{runners}");
    let (ok, agents) = as_admin(&cli, &server, &["agents"]);
    assert!(ok && agents.contains("no agents"), "{agents}");

    let runner_id = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(runners.contains(&runner_id[..8]), "{runners}");
    server
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/runners/{runner_id}"),
            None,
        )
        .await;
    let output = cli.command().arg("status").output().unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("revoked") && said.contains("agent-orchestrator connect"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_says_what_a_task_waits_for_and_release_frees_it() {
    let server = Server::start().await;
    let cli = Cli::new();
    let first = server.create_task("First", &[]).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let later = server
        .admin(
            reqwest::Method::POST,
            "/api/tasks",
            Some(serde_json::json!({
                "title": "Later",
                "description": "after First",
                "dependsOn": [first_id],
                "notBefore": "2999-01-01T00:00:00.000Z",
            })),
        )
        .await;
    let later_id = later["id"].as_str().unwrap().to_owned();
    let (ok, queue) = as_admin(&cli, &server, &["queue"]);
    assert!(ok, "{queue}");
    let line = queue.lines().find(|l| l.contains("Later")).unwrap();
    assert!(
        line.contains(&format!(
            "waits for {} (QUEUED), 2999-01-01",
            &first_id[..8]
        )),
        "{queue}"
    );
    let (ok, said) = as_admin(&cli, &server, &["task", "release", &later_id[..8]]);
    assert!(ok && said.contains("waits for nothing"), "{said}");
    let (_, queue) = as_admin(&cli, &server, &["queue"]);
    assert!(!queue.contains("waits for"), "{queue}");
}
