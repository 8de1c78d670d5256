//! The runner CLI end to end with a scripted command-line agent: a real
//! `orchestrator-server` on SQLite, `agent-orchestrator connect` and `start`, worktrees,
//! streamed logs, verification, commits and retries.

mod support;

use std::time::Duration;

use orchestrator_core::Timestamp;
use serde_json::{Value, json};
use support::{Cli, Server, agent_script, branch_head, repository};

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_claimed_at_once_worked_verified_committed_and_completed() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n"), ("src/__init__.py", "")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    // Says what it does, takes a moment (so its log can be watched), then writes a file.
    let agent = agent_script(
        scripts.path(),
        "agent.sh",
        "echo \"starting: $(echo \"$1\" | head -n 1)\"\nsleep 2\nmkdir -p src\nprintf 'def hello():\\n    return \"hi\"\\n' > src/hello.py\necho finished",
    );

    let token = server.connection_token().await;
    let said = cli.run(&[
        "connect",
        &token,
        "-d",
        &repo.path().to_string_lossy(),
        "--name",
        "e2e-runner",
    ]);
    assert!(said.contains("connected to"), "{said}");
    let status = cli.run(&["status"]);
    assert!(status.contains("e2e-runner"), "{status}");
    // It said where it runs and what it is; no backend was chosen yet.
    let runners = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await;
    let connected = &runners[0];
    assert!(
        connected["host"]
            .as_str()
            .is_some_and(|host| !host.is_empty()),
        "{connected}"
    );
    assert_eq!(connected["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(connected["backends"], json!([]));

    let runner = cli.start_agent(&agent, &[]);
    // Let the runner reach its long poll before the task exists.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let task = server.create_task("Add hello", &["src/"]).await;
    let task_id = id(&task);

    let (working, agent_id) = server.wait_running(&task_id).await;
    let created = millis(&task["createdAt"]);
    let assigned = millis(&working["assignedAt"]);
    assert!(
        assigned - created < 100,
        "claimed {} ms after creation",
        assigned - created
    );
    // The agent's first line reaches the server while it still works.
    let mut seen_while_running = false;
    for _ in 0..40 {
        let logs = server.agent_log(&agent_id).await;
        let lines: Vec<String> = logs
            .iter()
            .map(|l| l["content"].as_str().unwrap_or_default().to_owned())
            .collect();
        if lines
            .iter()
            .any(|l| l.starts_with("starting: # Task: Add hello"))
        {
            let current = server.task(&task_id).await;
            seen_while_running = current["status"] == "IN_PROGRESS";
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_while_running,
        "the agent's output was not visible while it ran"
    );

    let done = server
        .wait_finished(&task_id, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let short: String = task_id.chars().take(8).collect();
    let branch = format!("agent/{short}");
    let head = branch_head(repo.path(), &branch).expect("the task's branch");
    assert_eq!(done["commitSha"], head.as_str());
    assert_eq!(done["verificationStatus"], "PASSED");
    assert_eq!(done["attempts"][0]["backend"], "command", "{done}");
    let runners = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await;
    assert_eq!(
        runners[0]["backends"],
        json!(["command"]),
        "stated at start"
    );
    assert!(cli.worktrees().join(&short).join("src/hello.py").is_file());
    // The repository's own checkout is untouched.
    assert!(!repo.path().join("src/hello.py").exists());
    // `task show` names the agent's attempt, by the short id the lists print.
    let shown = cli.run(&[
        "task",
        "show",
        &short,
        "--server",
        &server.url,
        "--admin-token",
        support::ADMIN_TOKEN,
    ]);
    let latest = shown
        .lines()
        .find(|line| line.starts_with("latest attempt"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        latest.contains("#1 by") && latest.contains("COMPLETED") && latest.contains(&head[..12]),
        "{shown}"
    );
    let results = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/verify/{task_id}"),
            None,
        )
        .await;
    assert_eq!(results["results"][0]["syntaxPassed"], true, "{results}");

    runner.signal("INT");
    let (status, said) = runner.wait(Duration::from_secs(40));
    assert!(status.success(), "{said}");
    assert!(said.contains(&format!("done     {short}")), "{said}");

    let said = cli.run(&["disconnect"]);
    assert!(said.contains("revoked"), "{said}");
    let runners = server
        .admin(reqwest::Method::GET, "/api/runners", None)
        .await;
    assert!(runners.to_string().contains("e2e-runner"));
}

/// Milliseconds since the epoch of an ISO timestamp.
fn millis(value: &Value) -> i64 {
    let text = value.as_str().expect("a timestamp");
    text.parse::<Timestamp>()
        .expect("an ISO timestamp")
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_is_retried_with_its_failure_in_the_prompt_then_escalated() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let prompts = scripts.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let agent = agent_script(
        scripts.path(),
        "broken.sh",
        &format!(
            "printf '%s' \"$1\" > {}/prompt-$(date +%s%N).txt\nmkdir -p src\nprintf 'def broken(:\\n    return 1\\n' > src/broken.py",
            prompts.display()
        ),
    );
    cli.connect(&server, repo.path()).await;
    let _runner = cli.start_agent(&agent, &[]);
    let task = server.create_task("Add broken", &["src/"]).await;
    let task_id = id(&task);

    // SYNTAX_ERROR: retried 5 s apart until the task's 3 attempts are used, then a human
    // is asked.
    let failed = server
        .wait_task(&task_id, Duration::from_secs(90), |t| {
            t["status"] == "FAILED" && t["attemptsUsed"] == 3
        })
        .await;
    assert_eq!(
        (&failed["attempt"], &failed["retryCount"]),
        (&serde_json::json!(3), &serde_json::json!(2)),
        "{failed}"
    );
    let exceptions = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/exceptions?taskId={task_id}&status=OPEN"),
            None,
        )
        .await;
    let exceptions = exceptions["exceptions"].as_array().unwrap().clone();
    assert!(
        exceptions
            .iter()
            .any(|e| e["exceptionType"] == "VERIFICATION_FAILED"
                && e["description"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("all 3 attempts of the task are used")),
        "{exceptions:?}"
    );

    let mut seen: Vec<String> = std::fs::read_dir(&prompts)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let first = std::fs::read_to_string(&seen[0]).unwrap();
    assert!(!first.contains("Previous attempt"), "{first}");
    let second = std::fs::read_to_string(&seen[1]).unwrap();
    assert!(second.contains("## Previous attempt"), "{second}");
    assert!(second.contains("[syntax] src/broken.py:1:"), "{second}");
    assert!(
        second.contains("- src/"),
        "the locked paths are in the prompt: {second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_task_comes_back_after_its_lease_and_nothing_is_lost() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let slow = agent_script(
        scripts.path(),
        "slow.sh",
        "mkdir -p src\nprintf 'x = 1\\n' > src/partial.py\nexec sleep 60",
    );
    let quick = agent_script(
        scripts.path(),
        "quick.sh",
        "mkdir -p src\nprintf 'def done():\\n    return True\\n' > src/done.py",
    );
    cli.connect(&server, repo.path()).await;
    let task = server.create_task("Survive a crash", &["src/"]).await;
    let task_id = id(&task);

    let killed = cli.start_agent(&slow, &["--lease-secs", "5"]);
    let (running, _) = server.wait_running(&task_id).await;
    assert_eq!(running["attempt"], 1);
    killed.signal("KILL");
    let _ = killed.wait(Duration::from_secs(10));
    // Not before the lease runs out…
    server.cleanup().await;
    assert_eq!(server.task(&task_id).await["status"], "IN_PROGRESS");
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.cleanup().await;
    let requeued = server.task(&task_id).await;
    assert_eq!(requeued["status"], "QUEUED", "{requeued}");

    // …then another runner finishes it, in the same worktree.
    let _second = cli.start_agent(&quick, &[]);
    let done = server
        .wait_finished(&task_id, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["attempt"], 2);
    let short: String = task_id.chars().take(8).collect();
    let worktree = cli.worktrees().join(&short);
    assert!(
        worktree.join("src/partial.py").is_file(),
        "the first attempt's work is kept"
    );
    assert!(worktree.join("src/done.py").is_file());
    let exceptions = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/exceptions?taskId={task_id}&status=RESOLVED"),
            None,
        )
        .await;
    assert_eq!(
        exceptions["exceptions"][0]["exceptionType"], "AGENT_STUCK",
        "the lost attempt is on record, resolved by the completion: {exceptions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_slots_run_disjoint_tasks_at_once_and_overlapping_ones_in_turn() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let journal = scripts.path().join("journal.txt");
    // Works in the first path it may change, and notes when it starts and ends.
    let agent = agent_script(
        scripts.path(),
        "worker.sh",
        &format!(
            "dir=$(printf '%s\\n' \"$1\" | sed -n 's/^- \\(src\\/[a-z]*\\/\\)$/\\1/p' | head -n 1)\n\
             echo \"start $dir $(date +%s%N)\" >> {journal}\n\
             sleep 2\n\
             mkdir -p \"$dir\"\n\
             printf 'value = %s\\n' $$ > \"${{dir}}w$$.py\"\n\
             echo \"end $dir $(date +%s%N)\" >> {journal}",
            journal = journal.display()
        ),
    );
    cli.connect(&server, repo.path()).await;
    let mut ids = Vec::new();
    for (title, path) in [
        ("shared one", "src/shared/"),
        ("alpha", "src/alpha/"),
        ("beta", "src/beta/"),
        ("shared two", "src/shared/"),
        ("gamma", "src/gamma/"),
    ] {
        ids.push(id(&server.create_task(title, &[path]).await));
    }
    let _runner = cli.start_agent(&agent, &["--parallel", "4"]);
    for task_id in &ids {
        let done = server.wait_finished(task_id, Duration::from_secs(90)).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }

    // (dir, start, end) of every run.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut runs: Vec<(String, u128, u128)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let at: u128 = parts[2].parse().unwrap();
        match parts[0] {
            "start" => runs.push((parts[1].to_owned(), at, 0)),
            _ => {
                let run = runs
                    .iter_mut()
                    .find(|(dir, _, end)| dir == parts[1] && *end == 0)
                    .unwrap();
                run.2 = at;
            }
        }
    }
    assert_eq!(runs.len(), 5, "{text}");
    let overlap = |a: &(String, u128, u128), b: &(String, u128, u128)| a.1 < b.2 && b.1 < a.2;
    let shared: Vec<_> = runs.iter().filter(|r| r.0 == "src/shared/").collect();
    assert_eq!(shared.len(), 2);
    assert!(
        !overlap(shared[0], shared[1]),
        "overlapping tasks ran at once: {text}"
    );
    // The first four claimed (one per slot) ran at the same time.
    let mut first_four: Vec<_> = runs.iter().collect();
    first_four.sort_by_key(|r| r.1);
    let first_four = &first_four[..4];
    for (i, a) in first_four.iter().enumerate() {
        for b in &first_four[i + 1..] {
            assert!(overlap(a, b), "{a:?} and {b:?} did not run at once: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_beyond_the_files_hint_are_locked_or_fail_as_a_conflict() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent_script(
        scripts.path(),
        "spill.sh",
        "dir=$(printf '%s\\n' \"$1\" | sed -n 's/^- \\(src\\/[a-z]*\\/\\)$/\\1/p' | head -n 1)\n\
         case \"$dir\" in\n\
           src/a/) sleep 4; mkdir -p src/a; printf 'a = 1\\n' > src/a/own.py;;\n\
           src/b/) mkdir -p src/a; printf 'b = 1\\n' > src/a/intruder.py;;\n\
           src/c/) mkdir -p src/c docs; printf 'c = 1\\n' > src/c/x.py; printf '# notes\\n' > docs/notes.md;;\n\
         esac",
    );
    cli.connect(&server, repo.path()).await;
    let owner = id(&server.create_task("owner", &["src/a/"]).await);
    let intruder = id(&server.create_task("intruder", &["src/b/"]).await);
    let spiller = id(&server.create_task("spiller", &["src/c/"]).await);
    let _runner = cli.start_agent(&agent, &["--parallel", "3"]);

    let blocked = server
        .wait_finished(&intruder, Duration::from_secs(60))
        .await;
    assert_eq!(blocked["status"], "FAILED", "{blocked}");
    assert!(
        blocked["lastError"]
            .as_str()
            .unwrap()
            .contains("src/a/intruder.py (held by agent"),
        "{blocked}"
    );
    let exceptions = server
        .admin(
            reqwest::Method::GET,
            &format!("/api/exceptions?taskId={intruder}"),
            None,
        )
        .await;
    let raised: Vec<&Value> = exceptions["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["exceptionType"])
        .collect();
    assert_eq!(
        raised,
        ["CONFLICT_DETECTED"],
        "one exception says what happened: {exceptions}"
    );
    let spilled = server
        .wait_finished(&spiller, Duration::from_secs(60))
        .await;
    assert_eq!(
        spilled["status"], "COMPLETED",
        "a free path is locked and kept: {spilled}"
    );
    let owned = server.wait_finished(&owner, Duration::from_secs(60)).await;
    assert_eq!(owned["status"], "COMPLETED", "{owned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_touching_more_paths_than_one_lock_request_takes_still_gets_its_locks() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent_script(
        scripts.path(),
        "many.sh",
        "sleep 1; for d in $(seq 0 11); do mkdir -p gen/d$d; \
         for f in $(seq 0 99); do printf 'x = 1\\n' > gen/d$d/f$f.py; done; done",
    );
    cli.connect(&server, repo.path()).await;
    let task = id(&server.create_task("generate", &["src/"]).await);
    let _runner = cli.start_agent(&agent, &["--once"]);
    let (_, agent_id) = server.wait_running(&task).await;
    let done = server.wait_finished(&task, Duration::from_secs(120)).await;
    assert_eq!(
        done["status"], "COMPLETED",
        "1,200 files outside the hint: {done}"
    );
    let logs = server.agent_log(&agent_id).await;
    assert!(
        logs.iter().any(|entry| entry["content"]
            .as_str()
            .is_some_and(|text| text.contains("locking the 12 directories that cover them"))),
        "{logs:?}"
    );
}

/// Lines in `path` (0 when it does not exist yet).
fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_agent_holds_still_keeps_its_lease_and_goes_on_when_resumed() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let ticks = scripts.path().join("ticks");
    // Ticks ten times a second for a while, then writes its file.
    let agent = agent_script(
        scripts.path(),
        "ticking.sh",
        &format!(
            "i=0\nwhile [ $i -lt 80 ]; do echo tick >> {}; sleep 0.1; i=$((i+1)); done\nmkdir -p src\nprintf 'DONE = True\\n' > src/done.py",
            ticks.display()
        ),
    );
    cli.connect(&server, repo.path()).await;
    let _runner = cli.start_agent(&agent, &["--lease-secs", "5"]);
    let task = server.create_task("Tick, pause, tick", &["src/"]).await;
    let task_id = id(&task);
    let (_, agent_id) = server.wait_running(&task_id).await;
    let started = std::time::Instant::now();
    while lines_in(&ticks) < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the agent did not tick"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let control = |action: &'static str| {
        let server = &server;
        let agent_id = agent_id.clone();
        async move {
            server
                .admin(
                    reqwest::Method::PATCH,
                    &format!("/api/agents/{agent_id}"),
                    Some(serde_json::json!({ "action": action })),
                )
                .await
        }
    };
    let noted = |logs: &[Value], prefix: &str| {
        logs.iter()
            .any(|l| l["content"].as_str().is_some_and(|c| c.starts_with(prefix)))
    };
    control("pause").await;
    // The runner hears it on its next heartbeat (every second here) and says so.
    let mut waited = Duration::ZERO;
    while !noted(&server.agent_log(&agent_id).await, "paused:") {
        assert!(
            waited < Duration::from_secs(10),
            "the pause was not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = lines_in(&ticks);
    // Longer than the lease: heartbeats keep it while the agent holds still.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(lines_in(&ticks), held, "the agent ticked while paused");
    server.cleanup().await;
    let paused = server.task(&task_id).await;
    assert_eq!(paused["status"], "IN_PROGRESS", "{paused}");
    assert_eq!(paused["attempt"], 1);

    control("resume").await;
    let done = server
        .wait_finished(&task_id, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["attempt"], 1);
    assert_eq!(
        lines_in(&ticks),
        80,
        "the agent finished its work after resuming"
    );
    assert!(noted(&server.agent_log(&agent_id).await, "resumed:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_no_longer_than_a_heartbeat_is_refused() {
    let cli = Cli::new();
    let output = cli
        .command()
        .args(["start", "--heartbeat-secs", "10", "--lease-secs", "10"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("--lease-secs 10 must be longer than --heartbeat-secs 10"),
        "{said}"
    );
}

#[tokio::test]
async fn skipping_claudes_permissions_is_refused_as_root() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    cli.connect(&server, repo.path()).await;
    let output = cli
        .command()
        .args([
            "start",
            "--once",
            "--backend",
            "claude-code",
            "--claude-bin",
            "/bin/true",
            "--dangerously-skip-permissions",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    if nix::unistd::geteuid().is_root() {
        assert!(!output.status.success());
        assert!(
            said.contains("refused when running as root") && said.contains("ordinary user"),
            "{said}"
        );
    } else {
        assert!(output.status.success(), "{said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_draws_spinners_on_a_terminal_and_plain_lines_elsewhere() {
    if !support::on_path("script") {
        support::skip_without_tool(
            "start_draws_spinners_on_a_terminal_and_plain_lines_elsewhere",
            "util-linux `script` gives the runner a pseudo-terminal (apt install util-linux)",
        );
        return;
    }
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    // Slow enough for the spinner to turn a few times.
    let agent = agent_script(
        scripts.path(),
        "agent.sh",
        "sleep 1\nmkdir -p src\necho \"STAMP = $(date +%N)\" > src/spun.py",
    );
    cli.connect(&server, repo.path()).await;
    let run_once = |on_terminal: bool| {
        let plain = cli.command();
        let mut argv = vec![plain.get_program().to_string_lossy().into_owned()];
        argv.extend(["start", "--once", "--worktree-dir"].map(String::from));
        argv.push(cli.worktrees().to_string_lossy().into_owned());
        argv.extend(["--backend", "command", "--"].map(String::from));
        argv.extend([agent.to_string_lossy().into_owned(), "{prompt}".into()]);
        let mut command = if on_terminal {
            // util-linux `script` gives the command a pseudo-terminal and copies what it
            // draws to its own standard output.
            let mut on_pty = std::process::Command::new("script");
            on_pty
                .args(["-qfec", &shell_words(&argv), "/dev/null"])
                .env("TERM", "xterm-256color");
            for (name, value) in plain.get_envs() {
                match value {
                    Some(value) => on_pty.env(name, value),
                    None => on_pty.env_remove(name),
                };
            }
            on_pty
        } else {
            let mut plain = plain;
            plain.args(&argv[1..]);
            plain
        };
        let output = command.output().expect("run start --once");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let spun = server.create_task("Spin on a terminal", &["src/"]).await;
    let drawn = run_once(true);
    let short = &id(&spun)[..8];
    // The spinner's line is cleared and drawn again as it turns.
    let claimed = format!("claimed  {short} Spin on a terminal (attempt 1)");
    assert!(
        drawn.matches("\u{1b}[2K").count() >= 3 && drawn.matches(&claimed).count() >= 3,
        "a spinner turns on a terminal: {drawn:?}"
    );
    assert!(drawn.contains(&format!("done     {short}")), "{drawn:?}");

    let listed = server.create_task("Plain in a pipe", &["src/"]).await;
    let plain = run_once(false);
    assert!(!plain.contains('\u{1b}'), "no drawing in a pipe: {plain:?}");
    let short = &id(&listed)[..8];
    assert!(
        plain.contains(&format!("claimed  {short} Plain in a pipe (attempt 1)"))
            && plain.contains(&format!("done     {short}")),
        "{plain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worktrees_are_listed_and_only_merged_ones_pruned() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent_script(
        scripts.path(),
        "agent.sh",
        "mkdir -p src\nprintf 'VALUE = 1\\n' > src/value.py",
    );
    cli.connect(&server, repo.path()).await;
    let task = server.create_task("Add value", &["src/"]).await;
    let short = id(&task)[..8].to_owned();
    let _ = cli
        .start_agent(&agent, &["--once"])
        .wait(Duration::from_secs(60));
    let done = server.task(&id(&task)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    let worktree_dir = cli.worktrees().to_string_lossy().into_owned();
    let listed = cli.run(&["worktrees", "--worktree-dir", &worktree_dir]);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("agent/{short}")))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("1 commit(s) not merged") && line.contains("COMPLETED   Add value"),
        "each worktree says where its task stands: {listed}"
    );
    let kept = cli.run(&["worktrees", "--worktree-dir", &worktree_dir, "--prune"]);
    assert!(kept.contains("0 worktree(s) removed, 1 kept"), "{kept}");
    assert!(cli.worktrees().join(&short).is_dir());

    // With --all-finished, failed tasks' worktrees go too (a branch with commits stays),
    // unless work in one is not committed.
    let failing = agent_script(
        scripts.path(),
        "failing.sh",
        "case \"$1\" in *Leave*) mkdir -p src; printf 'HALF = 1\\n' > src/half.py;; esac\nexit 3",
    );
    let mut failed_shorts = Vec::new();
    for title in ["Give up", "Leave work behind"] {
        let task = server
            .admin(
                reqwest::Method::POST,
                "/api/tasks",
                Some(serde_json::json!({
                    "title": title, "description": title, "filesHint": ["src/"], "maxAttempts": 1,
                })),
            )
            .await;
        let _ = cli
            .start_agent(&failing, &["--once"])
            .wait(Duration::from_secs(60));
        let failed = server.task(&id(&task)).await;
        assert_eq!(failed["status"], "FAILED", "{failed:.300}");
        failed_shorts.push(id(&task)[..8].to_owned());
    }
    let unsaved = cli.worktrees().join(&failed_shorts[0]).join("notes.txt");
    std::fs::write(&unsaved, "not committed\n").unwrap();
    let pruned = cli.run(&[
        "worktrees",
        "--worktree-dir",
        &worktree_dir,
        "--prune",
        "--all-finished",
    ]);
    assert!(pruned.contains("1 worktree(s) removed, 2 kept"), "{pruned}");
    assert!(
        unsaved.is_file(),
        "uncommitted work is never removed: {pruned}"
    );
    assert!(
        !cli.worktrees().join(&failed_shorts[1]).exists(),
        "{pruned}"
    );
    assert!(
        branch_head(repo.path(), &format!("agent/{}", failed_shorts[1])).is_some(),
        "the failed attempt's commit stays on its branch"
    );
    assert!(
        cli.worktrees().join(&short).is_dir(),
        "a completed task's work is kept"
    );

    // The repository takes the branch (a fast-forward); now it can go.
    let main = git2::Repository::open(repo.path()).unwrap();
    let tip = git2::Oid::from_str(done["commitSha"].as_str().unwrap()).unwrap();
    main.head().unwrap().set_target(tip, "merge").unwrap();
    let listed = cli.run(&["worktrees", "--worktree-dir", &worktree_dir]);
    assert!(
        listed.contains(&format!("agent/{short}  merged")),
        "{listed}"
    );
    let pruned = cli.run(&["worktrees", "--worktree-dir", &worktree_dir, "--prune"]);
    assert!(pruned.contains("1 worktree(s) removed, 1 kept"), "{pruned}");
    assert!(!cli.worktrees().join(&short).exists());
    assert!(
        main.find_branch(&format!("agent/{short}"), git2::BranchType::Local)
            .is_err()
    );
}

/// `argv` as one shell command line, each argument single-quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_see_the_basics_and_what_is_passed_to_them_only() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    let dump = scripts.path().join("env.txt");
    let agent = agent_script(
        scripts.path(),
        "dump.sh",
        &format!("env > {}\nprintf 'x = 1\\n' > x.py", dump.display()),
    );
    cli.connect(&server, repo.path()).await;
    let task = server.create_task("Show the environment", &[]).await;
    let agent = agent.to_string_lossy().into_owned();
    let runner = cli.start_with_env(
        &[
            ("RUNNER_HOST_SECRET", "kept-from-agents"),
            ("PASSED_ON", "to-the-agent"),
        ],
        &[
            "--once",
            "--backend",
            "command",
            "--pass-env",
            "PASSED_ON",
            "--",
            &agent,
            "{prompt}",
        ],
    );
    let (status, said) = runner.wait(Duration::from_secs(60));
    assert!(status.success(), "{said}");
    let done = server
        .wait_finished(&id(&task), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let seen = std::fs::read_to_string(&dump).unwrap();
    assert!(!seen.contains("kept-from-agents"), "{seen}");
    assert!(!seen.contains("AGENT_ORCHESTRATOR_CONFIG"), "{seen}");
    assert!(seen.contains("PASSED_ON=to-the-agent"), "{seen}");

    let refused = cli
        .command()
        .args([
            "start",
            "--pass-env",
            "NOT_SET_ANYWHERE",
            "--backend",
            "command",
            "--",
            &agent,
            "{prompt}",
        ])
        .env_remove("NOT_SET_ANYWHERE")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--pass-env: NOT_SET_ANYWHERE is not set"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_an_agents_log_shows_every_entry_in_order() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    let scripts = tempfile::tempdir().unwrap();
    // Waits to be followed, then writes far more lines at once than a page holds.
    let agent = agent_script(
        scripts.path(),
        "chatty.sh",
        "sleep 3\nfor i in $(seq 1 300); do echo \"line $i\"; done\nsleep 30",
    );
    cli.connect(&server, repo.path()).await;
    let task_id = id(&server.create_task("Talk a lot", &["src/"]).await);
    let _runner = cli.start_agent(&agent, &[]);
    let (_, agent_id) = server.wait_running(&task_id).await;
    let mut follower = cli
        .command()
        .args(["logs", &agent_id, "--follow", "--limit", "1"])
        .args([
            "--server",
            &server.url,
            "--admin-token",
            support::ADMIN_TOKEN,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs = server.agent_log(&agent_id).await;
        if logs.iter().any(|l| l["content"] == "line 300") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not talk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One more round of following after the last line was stored.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    follower.kill().unwrap();
    let output = follower.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<u32> = printed
        .lines()
        .filter_map(|line| line.split("line ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert_eq!(lines, (1..=300).collect::<Vec<u32>>(), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_reaches_the_agent_in_a_file() {
    let server = Server::start().await;
    let repo = repository(&[("README.md", "# app\n")]);
    let cli = Cli::new();
    cli.connect(&server, repo.path()).await;
    let description = format!("{}END", "Context for the agent. ".repeat(7_000));
    let task = server
        .admin(
            reqwest::Method::POST,
            "/api/tasks",
            Some(serde_json::json!({
                "title": "Read a long prompt",
                "description": description,
                "filesHint": ["notes/"],
            })),
        )
        .await;
    let task_id = id(&task);
    // Keeps the prompt's size, the description's last words, and the prompt file's mode.
    let _runner = cli.start(&[
        "--backend",
        "command",
        "--",
        "sh",
        "-c",
        "mkdir -p notes && wc -c < \"$1\" > notes/size && grep -o 'agent. END' \"$1\" > notes/end \
         && stat -c %a \"$1\" > notes/mode",
        "agent",
        "{prompt_file}",
    ]);
    let done = server
        .wait_finished(&task_id, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done:.500}");
    // Notes are nothing a check applies to: not failed, but not verified either.
    assert_eq!(done["verificationStatus"], "UNVERIFIED", "{done:.500}");
    let short: String = task_id.chars().take(8).collect();
    let notes = cli.worktrees().join(&short).join("notes");
    let size: usize = std::fs::read_to_string(notes.join("size"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(size > description.len(), "the whole prompt: {size} bytes");
    assert_eq!(
        std::fs::read_to_string(notes.join("end")).unwrap(),
        "agent. END\n",
        "the description's last words"
    );
    assert_eq!(
        std::fs::read_to_string(notes.join("mode")).unwrap().trim(),
        "600"
    );
}
