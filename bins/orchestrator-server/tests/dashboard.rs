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

/// A server with a small queue: a task a runner works on, one waiting for it, and one
/// that failed.
async fn server_with_a_queue() -> (ServerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut command = server_command();
    command
        .args(["--data-dir", &data.path().to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--rate-limit-enabled", "false"])
        .stderr(Stdio::null());
    let server = ServerProcess::start(command);
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
    let runner = connected["data"]["runnerToken"].as_str().unwrap();
    let claimed = call(
        http.post(format!("{url}/api/runner/claim"))
            .json(&json!({})),
        runner,
    )
    .await;
    assert_eq!(claimed["data"]["task"]["id"], parser.as_str());
    (server, data)
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
        // Times are shown in the browser's own time zone, not as ISO text.
        let shown = browser.text_of("section.working time").await;
        assert!(!shown.contains('T') || !shown.ends_with('Z'), "{shown}");

        browser
            .screenshot(&screenshots.join(format!("board-{width}.png")))
            .await;

        // A card opens its task's page.
        browser.click_on("section.queued h3 a").await;
        browser.find("h2#attempts").await;
        let heading = browser.text_of("main h1").await;
        assert_eq!(heading, "Document the parser");
        let scope = browser.text_of("section[aria-labelledby=scope]").await;
        assert!(scope.contains("Build the parser"), "{scope}");
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
    for _ in 0..4 {
        browser.press_tab().await;
        let stop = browser
            .run(
                "const e = document.activeElement; \
                 const style = getComputedStyle(e); \
                 return [e.textContent.trim(), style.outlineStyle !== 'none' && style.outlineWidth !== '0px'];",
            )
            .await;
        stops.push(stop);
    }
    let names: Vec<&str> = stops.iter().map(|stop| stop[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Skip to content", "orchestrator", "Board", "Log out"],
        "{stops:?}"
    );
    assert!(
        stops.iter().all(|stop| stop[1] == true),
        "every stop shows its focus: {stops:?}"
    );
    // Enter on "Log out" ends the session.
    let active = browser.run("return document.activeElement.tagName;").await;
    assert_eq!(active, "BUTTON");
    browser
        .run("document.activeElement.click(); return null;")
        .await;
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
