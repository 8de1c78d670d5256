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
