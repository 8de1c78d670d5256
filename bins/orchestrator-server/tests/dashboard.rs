//! The dashboard in a real headless Chromium against a real server: logging in through
//! the form, the board's columns, a task's page, the keyboard, no console error or CSP
//! violation, and screenshots at 1400 and 390 px wide under `target/screenshots` for
//! people to look at.
//!
//! Skipped with a printed reason where Chromium or chromedriver is missing, unless
//! `ORCHESTRATOR_REQUIRE_BROWSER=1`.

mod common;

use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::browser::{self, Browser};
use common::{ServerProcess, call, server_command};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "dashboard-admin-token";

/// A server on the data directory `data` with the tests' admin token and no rate
/// limits, and `extra` arguments after those.
fn dashboard_server(data: &std::path::Path, extra: &[&str]) -> ServerProcess {
    let mut command = server_command();
    command
        .args(["--data-dir", &data.to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--rate-limit-enabled", "false"])
        .args(extra)
        .stderr(Stdio::null());
    ServerProcess::start(command)
}

/// A server with a runner in its process on the git repository `repo`, whose agent is
/// the shell `script` (given the prompt file as `$1`).
fn runner_server(repo: &std::path::Path, data: &std::path::Path, script: &str) -> ServerProcess {
    let agent = data.join("agent.sh");
    std::fs::write(&agent, script).unwrap();
    dashboard_server(
        &data.join("state"),
        &[
            "--local-runner",
            &repo.to_string_lossy(),
            "--local-agent",
            "sh",
            "-e",
            &agent.to_string_lossy(),
            "{prompt_file}",
        ],
    )
}

/// A server with a small queue: a task a runner works on, one waiting for it, and one
/// that failed.
async fn server_with_a_queue() -> (ServerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let server = dashboard_server(data.path(), &[]);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let url = &server.url;
    let create = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            call(
                http.post(format!("{url}/api/tasks")).json(&body),
                ADMIN_TOKEN,
            )
            .await["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let parser =
        create(json!({"title": "Build the parser", "description": "d", "priority": 0})).await;
    create(json!({"title": "Document the parser", "description": "d", "dependsOn": [parser]}))
        .await;

    // A runner claims the parser.
    let (runner, claimed) = connect_and_claim(&http, url).await;
    let runner = runner.as_str();
    assert_eq!(claimed["data"]["task"]["id"], parser.as_str());
    let lease = &claimed["data"];
    call(
        http.post(format!("{url}/api/runner/locks")).json(&json!({
            "agentId": lease["agent"]["id"],
            "taskId": lease["task"]["id"],
            "attempt": lease["lease"]["attempt"],
            "leaseToken": lease["lease"]["leaseToken"],
            "paths": ["src/parser/"],
        })),
        runner,
    )
    .await;
    (server, data)
}

/// Connects a runner named "laptop" with a setup token minted by the admin, and claims
/// the next task with it: its token and the claim's answer.
async fn connect_and_claim(http: &reqwest::Client, url: &str) -> (String, Value) {
    let minted = call(http.get(format!("{url}/api/connect")), ADMIN_TOKEN).await;
    let connection = STANDARD
        .decode(minted["data"]["connectionToken"].as_str().unwrap())
        .unwrap();
    let connection = String::from_utf8(connection).unwrap();
    let setup_token = connection.split_once('|').unwrap().1;
    let connected: Value = http
        .post(format!("{url}/api/connect"))
        .json(&json!({ "setupToken": setup_token, "name": "laptop" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runner = connected["data"]["runnerToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let claimed = call(
        http.post(format!("{url}/api/runner/claim"))
            .json(&json!({})),
        &runner,
    )
    .await;
    (runner, claimed)
}

/// Opens the login page, where the token field has the focus, and logs in by typing the
/// token and Enter; returns once the board is there.
async fn log_in_with_the_keyboard(browser: &Browser, url: &str) {
    browser.open(&format!("{url}/login")).await;
    let focused = browser.run("return document.activeElement.id;").await;
    assert_eq!(focused, "token");
    let token = browser.find("#token").await;
    browser
        .type_into(&token, &format!("{ADMIN_TOKEN}\u{E007}"))
        .await;
    browser.find("section.working").await;
}

/// Asserts that the console holds no error or warning (a failed load, a CSP violation,
/// a script error) since it was last read.
async fn assert_quiet_console(browser: &Browser) {
    let problems: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .collect();
    assert!(problems.is_empty(), "console errors: {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_a_browser() {
    let Some((chromedriver, chromium)) = browser::installed("the_board_in_a_browser") else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let http = reqwest::Client::new();
    call(
        http.post(format!("{}/api/tasks", server.url)).json(
            &json!({"title": "Tidy the lexer", "description": "d", "filesHint": ["src/parser/lexer.rs"]}),
        ),
        ADMIN_TOKEN,
    )
    .await;
    let screenshots = browser::screenshot_dir();
    for width in [1400, 390] {
        let browser = Browser::start(&chromedriver, &chromium, width).await;
        browser.open(&format!("{}/", server.url)).await;
        assert!(
            browser.current_url().await.ends_with("/login"),
            "the board asks to log in first"
        );
        browser
            .screenshot(&screenshots.join(format!("login-{width}.png")))
            .await;
        let token = browser.find("#token").await;
        browser.type_into(&token, ADMIN_TOKEN).await;
        browser.click_on("form.login button").await;
        // The board's own parts appear once the login has gone through.
        browser.find("section.stats").await;
        assert_eq!(browser.text_of("main h1").await, "Board");

        let working = browser.text_of("section.working").await;
        assert!(working.contains("Build the parser"), "{working}");
        assert!(
            working.contains("laptop"),
            "the card names its agent: {working}"
        );
        let queued = browser.text_of("section.queued").await;
        assert!(
            queued.contains("Waiting for “Build the parser” (ASSIGNED)"),
            "{queued}"
        );
        assert!(
            queued.contains(
                "Blocked by the lock on src/parser/ held by laptop #0 on “Build the parser”"
            ),
            "{queued}"
        );
        // Times are shown in the browser's own time zone, not as ISO text.
        let shown = browser.text_of("section.working time").await;
        assert!(!shown.contains('T') || !shown.ends_with('Z'), "{shown}");

        browser
            .screenshot(&screenshots.join(format!("board-{width}.png")))
            .await;
        // A filtered view lives in the address.
        browser.fill("#board-search", "lexer").await;
        browser
            .click_on("form.board-filters button[type=submit]")
            .await;
        browser.find("#board-search[value='lexer']").await;
        assert!(
            browser
                .current_url()
                .await
                .ends_with("/?search=lexer&priority=")
        );
        let queued = browser.text_of("section.queued").await;
        assert!(
            queued.contains("Tidy the lexer") && !queued.contains("Document"),
            "{queued}"
        );
        assert_eq!(
            browser.text_of("section.working p.empty").await,
            "No agent is working."
        );
        browser.open(&format!("{}/", server.url)).await;
        browser.find("section.stats").await;

        // A card opens its task's page.
        browser.click_on("section.queued h3 a").await;
        browser.find("h2#attempts").await;
        let heading = browser.text_of("main h1").await;
        assert_eq!(heading, "Document the parser");
        let scope = browser.text_of("section[aria-labelledby=scope]").await;
        assert!(scope.contains("Build the parser"), "{scope}");
        // Its dependency's page names it among the tasks waiting.
        browser.click_on("section[aria-labelledby=scope] a").await;
        wait_for_text(&browser, "section[aria-labelledby=scope]", "Waited for by:").await;
        let waited = browser.text_of("section[aria-labelledby=scope]").await;
        assert!(waited.contains("Document the parser"), "{waited}");
        browser.run("history.back(); return null;").await;
        browser.find("h2#attempts").await;
        browser
            .screenshot(&screenshots.join(format!("task-{width}.png")))
            .await;

        assert_quiet_console(&browser).await;
        browser.close().await;
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_is_used_with_the_keyboard_alone() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_board_is_used_with_the_keyboard_alone")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, &server.url).await;

    // Tab goes first to the skip link, then through the navigation to logging out, each
    // stop with a visible focus ring.
    let mut stops = Vec::new();
    while stops.len() < 12 {
        browser.press_tab().await;
        let stop = browser
            .run(
                "const e = document.activeElement; \
                 const style = getComputedStyle(e); \
                 return [e.textContent.trim(), style.outlineStyle !== 'none' && style.outlineWidth !== '0px'];",
            )
            .await;
        let last = stop[0] == "Log out";
        stops.push(stop);
        if last {
            break;
        }
    }
    let names: Vec<&str> = stops.iter().map(|stop| stop[0].as_str().unwrap()).collect();
    let names: Vec<&str> = names
        .into_iter()
        .filter(|name| *name != "Notify me")
        .collect();
    assert_eq!(
        names,
        [
            "Skip to content",
            "orchestrator",
            "Board",
            "Queue",
            "Inbox",
            "Fleet",
            "Locks",
            "Usage",
            "Connect",
            "Log out"
        ],
        "{stops:?}"
    );
    assert!(
        stops.iter().all(|stop| stop[1] == true),
        "every stop shows its focus: {stops:?}"
    );
    // A task is queued from the board with the keyboard: Tab to "New task", Enter opens
    // the dialog with the focus in its first field, Enter in a field sends the form.
    browser.open(&format!("{}/", server.url)).await;
    browser.find("section.stats").await;
    browser.tab_to("New task").await;
    browser.keys("\u{E007}").await;
    browser.find("dialog#new-task[open]").await;
    let focused = browser.run("return document.activeElement.id;").await;
    assert_eq!(focused, "task-title");
    browser.keys("Typed, not clicked").await;
    browser.press_tab().await;
    browser.keys("Queued with the keyboard alone").await;
    browser.tab_to("Queue task").await;
    browser.keys("\u{E007}").await;
    assert_notice(&browser, "Queued “Typed, not clicked”.").await;
    // Its card opens with Tab and Enter.
    browser.tab_to("Typed, not clicked").await;
    browser.keys("\u{E007}").await;
    browser.find("h2#attempts").await;
    assert_eq!(browser.text_of("main h1").await, "Typed, not clicked");
    // Enter on "Log out" ends the session.
    browser.tab_to("Log out").await;
    browser.keys("\u{E007}").await;
    browser.find("#token").await;
    assert!(browser.current_url().await.ends_with("/login"));
    browser.close().await;
    server.stop();
}

/// Waits up to 10 s for the text of `selector` to contain `expected`.
async fn wait_for_text(browser: &Browser, selector: &str, expected: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = browser
            .run(&format!(
                "const e = document.querySelector({selector:?}); return e ? e.innerText : '';"
            ))
            .await;
        if text.as_str().unwrap_or_default().contains(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{selector} never showed {expected:?}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_the_queue_without_a_reload() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_board_follows_the_queue_without_a_reload")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let http = reqwest::Client::new();
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, &server.url).await;
    wait_for_text(&browser, "#live", "Live").await;
    // A mark that a reload would wipe out.
    browser
        .run("window.stillTheSamePage = true; return null;")
        .await;

    let created = call(
        http.post(format!("{}/api/tasks", server.url))
            .json(&json!({"title": "Appears by itself", "description": "d", "priority": 3})),
        ADMIN_TOKEN,
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    wait_for_text(&browser, "section.queued", "Appears by itself").await;

    call(
        http.patch(format!("{}/api/tasks/{id}", server.url))
            .json(&json!({"status": "CANCELLED"})),
        ADMIN_TOKEN,
    )
    .await;
    wait_for_text(&browser, "section.failed", "Appears by itself").await;
    let queued = browser.text_of("section.queued").await;
    assert!(
        !queued.contains("Appears by itself"),
        "a task never shows in a state it has left: {queued}"
    );
    assert_eq!(
        browser
            .run("return window.stillTheSamePage === true;")
            .await,
        true,
        "the board changed without a reload"
    );
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

/// The queue's rows, as (title, status) in the order shown.
async fn queue_rows(browser: &Browser) -> Vec<(String, String)> {
    let rows = browser
        .run(
            "return [...document.querySelectorAll('table.queue tbody tr')].map(r => \
             [r.querySelector('td a').innerText, r.querySelector('.status').innerText]);",
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Reads the console, where a refused form's answer (422) is logged as a failed load,
/// and asserts that nothing else is there.
async fn assert_only_refusals_in_console(browser: &Browser) {
    let entries: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .collect();
    assert!(
        entries.iter().all(|entry| entry["message"]
            .as_str()
            .is_some_and(|m| m.contains("status of 422"))),
        "console: {entries:?}"
    );
}

/// Waits for the page's notice and returns its text.
async fn notice(browser: &Browser) -> String {
    browser.text_of("p.notice").await
}

/// Waits for the page's notice to read `expected`: a click that sends a form may return
/// before the page it leads to has replaced the one that showed the previous notice.
async fn assert_notice(browser: &Browser, expected: &str) {
    wait_for_text(browser, "p.notice", expected).await;
    assert_eq!(notice(browser).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_creates_finds_and_changes_tasks() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_queue_creates_finds_and_changes_tasks")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let url = &server.url;
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    browser.click_on("nav a[href='/tasks']").await;
    browser.find("form.filters").await;
    let titles: Vec<String> = queue_rows(&browser)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(titles, ["Build the parser", "Document the parser"]);
    let parser_id = browser
        .run("return document.querySelector('table.queue tbody tr').dataset.task;")
        .await;
    let parser_id = parser_id.as_str().unwrap().to_owned();

    // The dialog refuses a task without a title and keeps what was typed.
    browser.click_on("a[data-dialog='new-task']").await;
    browser.find("dialog#new-task[open]").await;
    browser
        .fill(
            "#new-task #task-description",
            "Keep me: the refused form loses nothing",
        )
        .await;
    browser.click_on("#new-task button.primary").await;
    let problem = browser.text_of("form.task-form p.problem").await;
    assert!(problem.starts_with("title:"), "{problem}");
    let kept = browser
        .run("return document.querySelector('#task-description').value;")
        .await;
    assert_eq!(kept, "Keep me: the refused form loses nothing");
    assert_eq!(
        browser
            .run("return document.querySelector('#task-title').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    assert_only_refusals_in_console(&browser).await;

    // Every field of a new task, from the dialog.
    browser.open(&format!("{url}/tasks")).await;
    browser.click_on("a[data-dialog='new-task']").await;
    browser
        .fill("#new-task #task-title", "Ship the release")
        .await;
    browser
        .fill("#new-task #task-description", "Tag and publish")
        .await;
    browser
        .run(
            "document.querySelector('#new-task #task-priority').value = '1'; \
             document.querySelector('#new-task #task-risk').value = 'HIGH'; \
             document.querySelector('#new-task #task-complexity').value = 'SIMPLE'; \
             return null;",
        )
        .await;
    browser.fill("#new-task #task-attempts", "5").await;
    browser
        .fill("#new-task #task-files", "CHANGELOG.md\nrelease/")
        .await;
    browser.fill("#new-task #task-depends", &parser_id).await;
    browser.fill("#new-task #task-key", "release-1.0").await;
    browser.click_on("#new-task button.primary").await;
    assert_notice(&browser, "Queued “Ship the release”.").await;
    assert!(browser.current_url().await.ends_with("/tasks"));
    let http = reqwest::Client::new();
    let listed = call(
        http.get(format!("{url}/api/tasks?search=Ship%20the%20release")),
        ADMIN_TOKEN,
    )
    .await;
    let release = &listed["data"]["tasks"][0];
    assert_eq!(
        (
            &release["priority"],
            &release["riskLevel"],
            &release["maxAttempts"],
            &release["estimatedComplexity"],
            &release["idempotencyKey"],
        ),
        (
            &json!(1),
            &json!("HIGH"),
            &json!(5),
            &json!("SIMPLE"),
            &json!("release-1.0")
        )
    );
    assert_eq!(release["filesHint"], json!(["CHANGELOG.md", "release/"]));
    assert_eq!(release["dependsOn"], json!([parser_id]));

    // Batch creation names the line that is wrong, keeps the text, then queues them all.
    browser.click_on("a[data-dialog='batch']").await;
    browser.find("dialog#batch[open]").await;
    browser
        .fill(
            "#batch-lines",
            "{\"title\": \"Batch one\", \"description\": \"d\"}\n{\"title\": \"Batch two\"}",
        )
        .await;
    browser.click_on("#batch button.primary").await;
    let problem = browser.text_of("form.batch-form p.problem").await;
    assert!(problem.starts_with("Line 2"), "{problem}");
    assert_only_refusals_in_console(&browser).await;
    browser
        .fill(
            "#batch-lines",
            "{\"title\": \"Batch one\", \"description\": \"d\"}\n\n{\"title\": \"Batch two\", \"description\": \"d\", \"priority\": 3}",
        )
        .await;
    browser.click_on("form.batch-form button.primary").await;
    assert_notice(&browser, "Queued 2 tasks.").await;

    // Search and filters live in the address.
    browser.fill("#filter-search", "batch").await;
    browser.click_on("form.filters button[type=submit]").await;
    browser.find("#filter-search[value='batch']").await;
    let found: Vec<String> = queue_rows(&browser)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(found, ["Batch one", "Batch two"]);
    assert!(browser.current_url().await.contains("search=batch"));

    // A row's commands: cancel (asked first), requeue, edit, delete.
    browser
        .click_on("tr:first-child form[action$='/cancel'] button")
        .await;
    assert_eq!(browser.accept_question().await, "Cancel this task?");
    assert_notice(&browser, "Task cancelled.").await;
    assert!(
        browser.current_url().await.contains("search=batch"),
        "back to the same view"
    );
    assert_eq!(
        queue_rows(&browser).await[0],
        ("Batch one".into(), "CANCELLED".into())
    );
    browser
        .click_on("tr:first-child form[action$='/requeue'] button")
        .await;
    assert_notice(&browser, "Task back in the queue.").await;
    assert_eq!(queue_rows(&browser).await[0].1, "QUEUED");
    browser.click_on("tr:first-child a[href$='/edit']").await;
    browser.fill("#task-title", "Batch one, edited").await;
    browser.click_on("form.task-form button.primary").await;
    assert_notice(&browser, "Changes saved.").await;
    assert_eq!(browser.text_of("main h1").await, "Batch one, edited");
    browser
        .click_on(".task-head form[action$='/delete'] button")
        .await;
    browser.accept_question().await;
    assert_notice(&browser, "Task deleted.").await;
    assert!(browser.current_url().await.ends_with("/tasks"));
    let titles: Vec<String> = queue_rows(&browser)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert!(
        !titles.iter().any(|t| t.starts_with("Batch one")),
        "{titles:?}"
    );

    // A command the task's state no longer allows is refused with the reason.
    let form_for_running = format!(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/tasks/{parser_id}/delete'; \
         f.innerHTML = '<input name=csrf value=\"' + \
         document.querySelector('input[name=csrf]').value + '\">'; \
         document.body.append(f); f.submit(); return null;"
    );
    browser.run(&form_for_running).await;
    wait_for_text(&browser, "p.notice", "Could not delete").await;
    let refused = notice(&browser).await;
    assert!(
        refused.starts_with("Could not delete the task: cannot delete task with status ASSIGNED"),
        "{refused}"
    );
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_pages_by_keyset_through_a_long_list() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_queue_pages_by_keyset_through_a_long_list")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let url = &server.url;
    let http = reqwest::Client::new();
    for batch in 0..3 {
        let tasks: Vec<Value> = (0..40)
            .map(|i| json!({"title": format!("Bulk {:03}", batch * 40 + i), "description": "d"}))
            .collect();
        call(
            http.post(format!("{url}/api/tasks/batch"))
                .json(&json!({ "tasks": tasks })),
            ADMIN_TOKEN,
        )
        .await;
    }
    let screenshots = browser::screenshot_dir();
    for width in [1400, 390] {
        let browser = Browser::start(&chromedriver, &chromium, width).await;
        log_in_with_the_keyboard(&browser, url).await;
        browser
            .open(&format!(
                "{url}/tasks?search=Bulk&sortBy=title&sortOrder=desc"
            ))
            .await;
        let summary = browser.text_of("p.summary").await;
        assert_eq!(summary, "120 tasks match.");
        let mut seen = Vec::new();
        loop {
            let rows = queue_rows(&browser).await;
            assert!(rows.len() <= 50);
            seen.extend(rows.into_iter().map(|r| r.0));
            if seen.len() == 50 {
                browser
                    .screenshot(&screenshots.join(format!("queue-{width}.png")))
                    .await;
            }
            let next = browser
                .run("const a = document.querySelector('a[rel=next]'); return a ? a.href : null;")
                .await;
            let Some(next) = next.as_str() else { break };
            browser.open(next).await;
            browser.find("a.button[href^='/tasks?']").await;
        }
        let expected: Vec<String> = (0..120).rev().map(|i| format!("Bulk {i:03}")).collect();
        assert_eq!(seen, expected, "every task once, in order");
        browser.click_on("nav.pages a.button").await;
        assert_eq!(queue_rows(&browser).await[0].0, "Bulk 119");
        browser.click_on("a[data-dialog='new-task']").await;
        browser.find("dialog#new-task[open]").await;
        browser
            .screenshot(&screenshots.join(format!("new-task-{width}.png")))
            .await;
        assert_quiet_console(&browser).await;
        browser.close().await;
    }
    server.stop();
}

/// A server with a runner in its process, on a real git repository, whose agent waits
/// for the gate file its task names (`gate-…` in the description) in `gates`, then says
/// so and writes a file named after it.
fn server_with_a_runner(
    repo: &std::path::Path,
    data: &std::path::Path,
    gates: &std::path::Path,
) -> ServerProcess {
    let script = format!(
        "gate=\"$(grep -o 'gate-[a-z]*' \"$1\" | head -n 1)\"\n\
             echo \"waiting for $gate\"\n\
             while [ ! -f \"{gates}/$gate\" ]; do sleep 0.1; done\n\
             printf 'done behind %s\\n' \"$gate\" > \"notes-$gate.txt\"\n\
             printf 'GATE = \"%s\"  # opened\\n' \"$gate\" > \"gate_$(echo \"$gate\" | tr - _).py\"\n\
             echo \"wrote notes-$gate.txt\"\n",
        gates = gates.display()
    );
    runner_server(repo, data, &script)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_from_the_dialog_crosses_the_board_as_the_runner_works() {
    let Some((chromedriver, chromium)) =
        browser::installed("a_task_from_the_dialog_crosses_the_board_as_the_runner_works")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let repo = common::git_repository();
    let data = tempfile::tempdir().unwrap();
    let gates = tempfile::tempdir().unwrap();
    let server = server_with_a_runner(repo.path(), data.path(), gates.path());
    let url = &server.url;
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    // The runner's one slot is taken by a task that waits for its gate.
    call(
        http.post(format!("{url}/api/tasks"))
            .json(&json!({"title": "First in line", "description": "Behind gate-first"})),
        ADMIN_TOKEN,
    )
    .await;
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    wait_for_text(&browser, "section.working", "waiting for gate-first").await;

    browser.click_on("a[data-dialog='new-task']").await;
    browser.fill("#task-title", "Made in the dialog").await;
    browser
        .fill("#task-description", "Write the notes behind gate-second")
        .await;
    browser.click_on("#new-task button.primary").await;
    assert_notice(&browser, "Queued “Made in the dialog”.").await;
    assert!(
        browser.current_url().await.ends_with('/'),
        "back on the board"
    );
    wait_for_text(&browser, "section.queued", "Made in the dialog").await;
    let queued = browser.text_of("section.queued").await;
    assert!(
        queued.contains("Waiting for a free runner slot (all 1 busy)"),
        "{queued}"
    );
    wait_for_text(&browser, "#live", "Live").await;
    browser
        .run("window.stillTheSamePage = true; return null;")
        .await;

    std::fs::write(gates.path().join("gate-first"), "").unwrap();
    wait_for_text(&browser, "section.working", "waiting for gate-second").await;
    let working = browser.text_of("section.working").await;
    assert!(working.contains("Made in the dialog"), "{working}");
    assert!(
        !browser
            .text_of("section.queued")
            .await
            .contains("Made in the dialog"),
        "the card left Queued"
    );
    browser
        .screenshot(&browser::screenshot_dir().join("board-working-1400.png"))
        .await;

    std::fs::write(gates.path().join("gate-second"), "").unwrap();
    wait_for_text(&browser, "section.done", "Made in the dialog").await;
    assert!(
        !browser
            .text_of("section.working")
            .await
            .contains("Made in the dialog"),
        "the card left Working"
    );
    assert_eq!(
        browser
            .run("return window.stillTheSamePage === true;")
            .await,
        true,
        "the card crossed the board without a reload"
    );

    // Its page has the transcript of the attempt.
    browser.click_on("section.done h3 a").await;
    browser.find("h2#transcript").await;
    let transcript = browser.text_of("section[aria-labelledby=transcript]").await;
    assert!(
        transcript.contains("wrote notes-gate-second.txt"),
        "{transcript}"
    );
    // And the change, file by file, with the patch coloured.
    let changes = browser.text_of("section[aria-labelledby=changes]").await;
    for expected in [
        "notes-gate-second.txt",
        "gate_gate_second.py",
        "ADDED",
        "+1",
    ] {
        assert!(changes.contains(expected), "{expected} in {changes}");
    }
    let string = browser
        .text_of("section[aria-labelledby=changes] .tok-string")
        .await;
    assert_eq!(string, "\"gate-second\"");
    browser
        .screenshot(&browser::screenshot_dir().join("task-done-1400.png"))
        .await;
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_is_retried_from_the_inbox_with_a_note() {
    let Some((chromedriver, chromium)) =
        browser::installed("a_failed_verification_is_retried_from_the_inbox_with_a_note")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let repo = common::git_repository();
    let data = tempfile::tempdir().unwrap();
    // The agent shows its prompt in the transcript, and writes Python that does not
    // parse unless the prompt asks for four spaces.
    let server = runner_server(
        repo.path(),
        data.path(),
        "sed 's/^/prompt: /' \"$1\"\n\
         if grep -q 'four spaces' \"$1\"; then printf 'def f():\\n    return 1\\n' > fix.py; \
         else printf 'def f(:\\n' > fix.py; fi\n\
         echo wrote fix.py\n",
    );
    let url = &server.url;
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let created = call(
        http.post(format!("{url}/api/tasks")).json(&json!({
            "title": "Fix the function",
            "description": "Write fix.py",
            "maxAttempts": 1,
        })),
        ADMIN_TOKEN,
    )
    .await;
    let task_id = created["data"]["id"].as_str().unwrap().to_owned();

    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    wait_for_text(&browser, "section.needs-you", "Fix the function").await;
    // The failed task's page offers what its state allows.
    browser.open(&format!("{url}/tasks/{task_id}")).await;
    let commands = browser.text_of(".task-head .commands").await;
    for expected in ["Edit", "Retry", "Retry by policy"] {
        assert!(commands.contains(expected), "{expected} in {commands}");
    }
    // Only a queued or cancelled task can be deleted; a failed one is not running.
    assert!(
        !commands.contains("Delete") && !commands.contains("Cancel"),
        "{commands}"
    );
    browser.open(&format!("{url}/")).await;
    browser.click_on("section.needs-you h3 a").await;
    browser.find("h2#decide").await;
    let about = browser.text_of("section[aria-labelledby=about]").await;
    assert!(about.contains("Fix the function"), "{about}");
    browser
        .fill(
            "#retry-note",
            "Indent with four spaces and close the parenthesis.",
        )
        .await;
    browser.click_on("form.remedy button.primary").await;
    assert_notice(&browser, "Task queued again; the exception is resolved.").await;
    wait_for_text(&browser, ".task-head .status", "RESOLVED").await;
    let notes = browser.text_of("section[aria-labelledby=what]").await;
    assert!(notes.contains("four spaces"), "{notes}");

    // The next attempt's prompt carries the note, and the attempt succeeds.
    browser.open(&format!("{url}/tasks/{task_id}")).await;
    wait_for_text(&browser, ".task-head .status", "COMPLETED").await;
    let transcript = browser.text_of("section[aria-labelledby=transcript]").await;
    assert!(
        transcript.contains("prompt: Indent with four spaces and close the parenthesis."),
        "{transcript}"
    );
    browser
        .screenshot(&browser::screenshot_dir().join("task-retried-1400.png"))
        .await;
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_force_released_with_a_reason() {
    let Some((chromedriver, chromium)) =
        browser::installed("a_lock_is_force_released_with_a_reason")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let url = &server.url;
    call(
        reqwest::Client::new().post(format!("{url}/api/tasks")).json(
            &json!({"title": "Tidy the lexer", "description": "d", "filesHint": ["src/parser/lexer.rs"]}),
        ),
        ADMIN_TOKEN,
    )
    .await;
    let screenshots = browser::screenshot_dir();
    let phone = Browser::start(&chromedriver, &chromium, 390).await;
    log_in_with_the_keyboard(&phone, url).await;
    phone.open(&format!("{url}/locks")).await;
    phone.find("tr[data-path='src/parser/']").await;
    phone.screenshot(&screenshots.join("locks-390.png")).await;

    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    browser.click_on("nav a[href='/locks']").await;
    let row = browser.text_of("tr[data-path='src/parser/']").await;
    assert!(row.contains("laptop"), "the holder: {row}");
    assert!(row.contains("Build the parser"), "the task: {row}");
    assert!(
        row.contains("Tidy the lexer"),
        "the queued task it holds back: {row}"
    );
    let countdown = browser.text_of("time[data-countdown]").await;
    assert!(countdown.starts_with("in "), "{countdown}");
    browser
        .screenshot(&screenshots.join("locks-1400.png"))
        .await;
    browser
        .fill(
            "tr[data-path='src/parser/'] input[name=reason]",
            "The runner is gone",
        )
        .await;
    browser.click_on("tr[data-path='src/parser/'] button").await;
    let asked = browser.accept_question().await;
    assert!(asked.contains("src/parser/"), "{asked}");
    assert_notice(
        &browser,
        "Released 1 lock on src/parser/; the inbox records it.",
    )
    .await;
    assert_eq!(browser.text_of("p.empty").await, "No agent holds a lock.");

    // The release waits in the inbox, where a person acknowledges it with a note.
    browser.click_on("nav a[href='/exceptions']").await;
    let inbox = browser.text_of("div.inbox").await;
    assert!(inbox.contains("CONFLICT_DETECTED"), "{inbox}");
    browser
        .screenshot(&screenshots.join("inbox-1400.png"))
        .await;
    browser.click_on("div.inbox h2 a").await;
    let what = browser.text_of("section[aria-labelledby=what]").await;
    assert!(what.contains("The runner is gone"), "{what}");
    browser
        .screenshot(&screenshots.join("exception-1400.png"))
        .await;
    browser
        .fill("#decision-notes", "Seen; the runner was retired.")
        .await;
    browser
        .click_on("form.decision button[value=ACKNOWLEDGED]")
        .await;
    assert_notice(&browser, "Exception acknowledged.").await;
    let decided = browser.text_of("section[aria-labelledby=what]").await;
    assert!(
        decided.contains("Seen; the runner was retired."),
        "{decided}"
    );
    assert!(decided.contains("Decided by dashboard"), "{decided}");
    assert_quiet_console(&browser).await;
    browser.close().await;

    phone.open(&format!("{url}/exceptions?status=ALL")).await;
    phone.click_on("div.inbox h2 a").await;
    phone.find("h2#decide").await;
    phone
        .screenshot(&screenshots.join("exception-390.png"))
        .await;
    phone.open(&format!("{url}/exceptions?status=ALL")).await;
    phone.find("div.inbox article").await;
    phone.screenshot(&screenshots.join("inbox-390.png")).await;
    assert_quiet_console(&phone).await;
    phone.close().await;
    server.stop();
}

/// Sends `count` log entries as the runner of the claimed task `claim` (the answer of
/// `POST /api/runner/claim`), numbered from 1.
async fn send_logs(http: &reqwest::Client, url: &str, runner: &str, claim: &Value, count: usize) {
    let lease = &claim["data"];
    for chunk in (1..=count).collect::<Vec<_>>().chunks(50) {
        let logs: Vec<Value> = chunk
            .iter()
            .map(|n| {
                json!({
                    "logType": "INFO",
                    "content": format!("step {n}"),
                    "metadata": { "tool": "edit", "path": format!("src/step_{n}.rs") },
                })
            })
            .collect();
        call(
            http.post(format!("{url}/api/runner/logs")).json(&json!({
                "agentId": lease["agent"]["id"],
                "taskId": lease["task"]["id"],
                "attempt": lease["lease"]["attempt"],
                "leaseToken": lease["lease"]["leaseToken"],
                "logs": logs,
            })),
            runner,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_shows_agents_and_runners_and_reaches_them() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_fleet_shows_agents_and_runners_and_reaches_them")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let url = &server.url;
    let screenshots = browser::screenshot_dir();
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;

    browser.click_on("nav a[href='/agents']").await;
    let row = browser.text_of("table.agents tbody tr").await;
    assert!(row.contains("laptop #0"), "{row}");
    assert!(row.contains("Build the parser"), "its task: {row}");
    assert!(row.contains("$0.00"), "its cost so far: {row}");
    let elapsed = browser.text_of("time[data-elapsed]").await;
    assert!(
        elapsed.ends_with(" s") || elapsed.contains("min"),
        "{elapsed}"
    );
    browser
        .screenshot(&screenshots.join("agents-1400.png"))
        .await;

    // Search (name, id or task) and sort live in the address.
    browser.fill("#filter-search", "nobody").await;
    browser.click_on("form.filters button[type=submit]").await;
    assert_eq!(
        browser.text_of("p.empty").await,
        "No agent matches: show every agent."
    );
    browser.fill("#filter-search", "PARSER").await;
    // Names sort A to Z unless asked otherwise: choosing the column selects its order.
    let order = "return document.querySelector('#filter-order').value;";
    assert_eq!(browser.run(order).await, "desc");
    browser.click_on("#filter-sort option[value=name]").await;
    assert_eq!(browser.run(order).await, "asc");
    browser.click_on("form.filters button[type=submit]").await;
    browser.find("#filter-search[value='PARSER']").await;
    assert!(
        browser
            .text_of("table.agents tbody tr")
            .await
            .contains("laptop #0")
    );
    let address = browser.current_url().await;
    assert!(
        address.contains("search=PARSER")
            && address.contains("sortBy=name")
            && address.contains("sortOrder=asc"),
        "{address}"
    );
    browser
        .find("#filter-sort option[value=name][selected]")
        .await;
    browser.click_on("form.filters a[href='/agents']").await;

    // Pause and resume reach the runner through its heartbeat.
    browser
        .click_on("table.agents form[action$='/pause'] button")
        .await;
    assert_notice(
        &browser,
        "Pause asked; the runner pauses the agent at its next heartbeat.",
    )
    .await;
    wait_for_text(&browser, "table.agents tbody tr", "PAUSED").await;
    browser
        .click_on("table.agents form[action$='/resume'] button")
        .await;
    wait_for_text(&browser, "table.agents tbody tr", "WORKING").await;

    // The agent's page has its log, newest first, and loads older entries.
    browser
        .click_on("table.agents tbody tr a[href^='/agents/']")
        .await;
    browser.find("h2#transcript").await;
    let held = browser.text_of("section[aria-labelledby=held]").await;
    assert!(held.contains("src/parser/"), "{held}");
    browser
        .screenshot(&screenshots.join("agent-1400.png"))
        .await;

    browser.click_on("a.tabs, nav a[href='/agents']").await;
    browser.click_on("nav.tabs a[href='/runners']").await;
    let runner = browser.text_of("table.runners tbody tr").await;
    assert!(runner.contains("laptop"), "{runner}");
    assert!(runner.contains("online"), "{runner}");
    assert!(runner.contains("1 of 1"), "{runner}");
    assert!(runner.contains(" ago"), "{runner}");
    browser
        .screenshot(&screenshots.join("runners-1400.png"))
        .await;
    browser.click_on("table.runners form button").await;
    browser.accept_question().await;
    wait_for_text(&browser, "p.notice", "Runner session revoked").await;
    assert!(notice(&browser).await.starts_with("Runner session revoked"));
    wait_for_text(&browser, "table.runners tbody tr", "revoked").await;
    assert_quiet_console(&browser).await;
    browser.close().await;

    let phone = Browser::start(&chromedriver, &chromium, 390).await;
    log_in_with_the_keyboard(&phone, url).await;
    for page in ["agents", "runners"] {
        phone.open(&format!("{url}/{page}")).await;
        phone.find("table.stacked").await;
        phone
            .screenshot(&screenshots.join(format!("{page}-390.png")))
            .await;
    }
    phone.click_on("nav.tabs a[href='/agents']").await;
    phone
        .click_on("table.agents tbody tr a[href^='/agents/']")
        .await;
    phone.find("h2#transcript").await;
    phone.screenshot(&screenshots.join("agent-390.png")).await;
    assert_quiet_console(&phone).await;
    phone.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_pages_back_by_cursor_and_filters_by_kind() {
    let Some((chromedriver, chromium)) =
        browser::installed("a_transcript_pages_back_by_cursor_and_filters_by_kind")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let server = dashboard_server(data.path(), &[]);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let url = &server.url;
    call(
        http.post(format!("{url}/api/tasks"))
            .json(&json!({"title": "Long story", "description": "d"})),
        ADMIN_TOKEN,
    )
    .await;
    let (runner, claim) = connect_and_claim(&http, url).await;
    send_logs(&http, url, &runner, &claim, 120).await;
    let task_id = claim["data"]["task"]["id"].as_str().unwrap().to_owned();
    let agent_id = claim["data"]["agent"]["id"].as_str().unwrap().to_owned();

    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    for page in [format!("/tasks/{task_id}"), format!("/agents/{agent_id}")] {
        browser.open(&format!("{url}{page}")).await;
        let mut seen = Vec::new();
        loop {
            let entries = browser
                .run(
                    "return [...document.querySelectorAll('ol.transcript pre')]\
                     .map(e => e.innerText).filter(t => t.startsWith('step '));",
                )
                .await;
            seen.extend(
                entries
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_owned()),
            );
            let older = browser
                .run("const a = document.querySelector('a[rel=next]'); return a ? a.href : null;")
                .await;
            let Some(older) = older.as_str() else { break };
            browser.open(older).await;
            browser.find("h2#transcript").await;
        }
        let expected: Vec<String> = (1..=120).rev().map(|n| format!("step {n}")).collect();
        assert_eq!(seen, expected, "{page}: every entry once, newest first");
        assert!(
            browser
                .text_of("nav[aria-label='Transcript pages']")
                .await
                .contains("Newest entries")
        );
    }
    // What came with an entry (a tool's input) opens under it.
    browser.open(&format!("{url}/tasks/{task_id}")).await;
    browser
        .click_on("ol.transcript li:first-child details.entry-details summary")
        .await;
    let details = browser
        .text_of("ol.transcript li:first-child details.entry-details pre")
        .await;
    assert!(
        details.contains("\"path\": \"src/step_120.rs\""),
        "{details}"
    );
    // Only one kind.
    browser
        .open(&format!("{url}/tasks/{task_id}?type=ERROR"))
        .await;
    assert_eq!(
        browser
            .text_of("section[aria-labelledby=transcript] p.empty")
            .await,
        "No entry that matches yet."
    );
    // Text in the entries, with the kind filter and the paging.
    browser
        .open(&format!("{url}/tasks/{task_id}?search=STEP%2011"))
        .await;
    let found = browser
        .run("return [...document.querySelectorAll('ol.transcript > li > pre')].map(e => e.innerText);")
        .await;
    let expected: Vec<String> = (110..=119)
        .rev()
        .map(|n| format!("step {n}"))
        .collect::<Vec<_>>();
    let mut expected = expected;
    expected.push("step 11".to_owned());
    assert_eq!(
        found,
        json!(expected),
        "entries holding \"step 11\", newest first"
    );
    assert!(
        browser
            .text_of("h2#transcript")
            .await
            .contains("11 entries")
    );
    browser
        .open(&format!("{url}/tasks/{task_id}?type=NOISE"))
        .await;
    let problem = browser
        .text_of("section[aria-labelledby=transcript] p.problem")
        .await;
    assert!(
        problem.starts_with("logType:") || problem.contains("NOISE"),
        "{problem}"
    );
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_connects_a_real_runner() {
    let Some((chromedriver, chromium)) =
        browser::installed("a_minted_token_connects_a_real_runner")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let server = dashboard_server(data.path(), &[]);
    server.wait_ready(&reqwest::Client::new()).await;
    let url = &server.url;
    let screenshots = browser::screenshot_dir();

    let phone = Browser::start(&chromedriver, &chromium, 390).await;
    log_in_with_the_keyboard(&phone, url).await;
    phone.open(&format!("{url}/connect")).await;
    phone.find("h2#steps").await;
    phone.screenshot(&screenshots.join("connect-390.png")).await;
    phone.close().await;

    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, url).await;
    browser.click_on("nav a[href='/connect']").await;
    assert!(
        browser
            .text_of("section[aria-labelledby=sessions]")
            .await
            .contains("No runner has connected yet."),
    );
    browser
        .click_on("section[aria-labelledby=token] button[type=submit]")
        .await;
    let shown = browser.text_of("#connect-command").await;
    let token = shown
        .strip_prefix("agent-orchestrator connect ")
        .unwrap_or_else(|| panic!("{shown}"))
        .to_owned();
    let countdown = browser.text_of("section[aria-labelledby=token] time").await;
    assert!(
        countdown.starts_with("in 9 min") || countdown.starts_with("in 10 min"),
        "{countdown}"
    );
    assert_eq!(
        browser
            .run("return document.querySelector('button[data-copy]').hidden;")
            .await,
        false,
        "the copy button shows where the clipboard can be written"
    );
    browser
        .screenshot(&screenshots.join("connect-1400.png"))
        .await;

    // The shown command connects a real runner, and the page sees it arrive.
    let repo = common::git_repository();
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::workspace_binary("agent-orchestrator"))
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .args(["connect", &token, "--name", "from-the-dashboard", "-d"])
        .arg(repo.path())
        .output()
        .expect("run agent-orchestrator connect");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for_text(
        &browser,
        "section[aria-labelledby=sessions]",
        "from-the-dashboard",
    )
    .await;
    // The token worked once.
    let again = std::process::Command::new(common::workspace_binary("agent-orchestrator"))
        .env("HOME", home.path())
        .args(["connect", &token, "-d"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_quiet_console(&browser).await;
    browser.close().await;
    server.stop();
}

/// A TCP relay from a port of its own to `target`, in a process group of its own so that
/// stopping it cuts every connection it carries.
struct Relay {
    child: std::process::Child,
    port: u16,
}

impl Relay {
    fn start(port: u16, target: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
            .arg(format!("TCP:{}", target.trim_start_matches("http://")))
            .process_group(0)
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (Debian package socat) starts");
        Self { child, port }
    }

    /// Waits until the relay accepts connections.
    async fn ready(&self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the relay never listened on {}", self.port);
    }

    /// Stops the relay and every connection through it.
    fn cut(mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_catches_up_after_the_stream_reconnects() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_board_catches_up_after_the_stream_reconnects")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let (server, _data) = server_with_a_queue().await;
    let http = reqwest::Client::new();
    let port = common::free_port();
    let relay = Relay::start(port, &server.url);
    relay.ready().await;
    let through_relay = format!("http://127.0.0.1:{port}");
    let browser = Browser::start(&chromedriver, &chromium, 1400).await;
    log_in_with_the_keyboard(&browser, &through_relay).await;
    wait_for_text(&browser, "#live", "Live").await;
    browser
        .run("window.stillTheSamePage = true; return null;")
        .await;

    // The connection drops; meanwhile the queue changes.
    relay.cut();
    wait_for_text(&browser, "#live", "Reconnecting").await;
    let created = call(
        http.post(format!("{}/api/tasks", server.url))
            .json(&json!({"title": "Queued while away", "description": "d"})),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(created["data"]["status"], "QUEUED");
    let queued = browser.text_of("section.queued").await;
    assert!(!queued.contains("Queued while away"), "{queued}");

    // Back online, the board catches up by itself.
    let relay = Relay::start(port, &server.url);
    relay.ready().await;
    wait_for_text(&browser, "section.queued", "Queued while away").await;
    wait_for_text(&browser, "#live", "Live").await;
    assert_eq!(
        browser
            .run("return window.stillTheSamePage === true;")
            .await,
        true,
        "caught up without a reload"
    );
    browser.close().await;
    relay.cut();
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_sums_what_the_agents_used() {
    let Some((chromedriver, chromium)) =
        browser::installed("the_usage_page_sums_what_the_agents_used")
    else {
        return;
    };
    let _turn = browser::ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().unwrap();
    let server = dashboard_server(data.path(), &[]);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let url = &server.url;
    call(
        http.post(format!("{url}/api/tasks"))
            .json(&json!({"title": "Spend some tokens", "description": "d"})),
        ADMIN_TOKEN,
    )
    .await;
    let (runner, claim) = connect_and_claim(&http, url).await;
    let lease = &claim["data"];
    call(
        http.post(format!("{url}/api/runner/complete"))
            .json(&json!({
                "agentId": lease["agent"]["id"],
                "taskId": lease["task"]["id"],
                "attempt": lease["lease"]["attempt"],
                "leaseToken": lease["lease"]["leaseToken"],
                "success": true,
                "usage": { "inputTokens": 12000, "outputTokens": 3400, "costUsd": 0.21 },
                "backend": "claude-code",
                "model": "claude-sonnet-4-5",
            })),
        &runner,
    )
    .await;

    let screenshots = browser::screenshot_dir();
    for width in [1400, 390] {
        let browser = Browser::start(&chromedriver, &chromium, width).await;
        log_in_with_the_keyboard(&browser, url).await;
        browser.click_on("nav a[href='/usage']").await;
        let totals = browser.text_of("section.stats").await;
        for expected in ["12000", "3400", "$0.21", "from list prices"] {
            assert!(totals.contains(expected), "{expected} in {totals}");
        }
        let page = browser.text_of("main").await;
        for expected in [
            "laptop",
            "claude-code · claude-sonnet-4-5",
            "Spend some tokens",
        ] {
            assert!(page.contains(expected), "{expected} in {page}");
        }
        browser
            .screenshot(&screenshots.join(format!("usage-{width}.png")))
            .await;
        if width == 1400 {
            browser.open(&format!("{url}/usage?days=2")).await;
            let problem = browser.text_of("p.problem").await;
            assert!(
                problem.starts_with("days: \"2\" is not one of"),
                "{problem}"
            );
            browser.open(&format!("{url}/usage?days=7")).await;
            assert!(browser.text_of("section.stats").await.contains("$0.21"));
            // The attempt's backend and model show on its task's page, the runner's
            // identity on the runners page.
            browser.click_on("a[href^='/tasks/']").await;
            let attempts = browser.text_of("section[aria-labelledby=attempts]").await;
            assert!(
                attempts.contains("claude-code · claude-sonnet-4-5"),
                "{attempts}"
            );
            assert!(
                attempts.contains("laptop #0"),
                "the agent by name: {attempts}"
            );
            // The agent's cost is its attempts' cost.
            browser.open(&format!("{url}/agents")).await;
            let agent = browser.text_of("table.agents tbody tr").await;
            assert!(agent.contains("$0.21"), "{agent}");
            browser.open(&format!("{url}/runners")).await;
            let runner_row = browser.text_of("table.runners tbody tr").await;
            assert!(runner_row.contains("unknown host"), "{runner_row}");
        }
        assert_quiet_console(&browser).await;
        browser.close().await;
    }
    server.stop();
}
