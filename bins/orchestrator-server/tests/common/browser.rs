//! A headless Chromium driven through chromedriver's WebDriver protocol (plain JSON over
//! HTTP, spoken with reqwest), for the dashboard's browser tests.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::free_port;

/// With this variable set to `1`, a missing browser fails the test instead of skipping it.
pub(crate) const REQUIRE_BROWSER_VAR: &str = "ORCHESTRATOR_REQUIRE_BROWSER";

/// The key WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Browser tests take turns: each starts a server and chromedriver on ports found free a
/// moment before, and two starting at once could be handed the same one.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver and the Chromium it drives, or `None` after a printed skip (a failure when
/// the browser is required).
pub(crate) fn installed(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found =
        on_path("chromedriver").zip(on_path("chromium").or_else(|| on_path("chromium-browser")));
    if found.is_none() {
        let reason = "chromium and chromedriver are not installed (Debian: apt install chromium chromium-driver)";
        assert!(
            std::env::var(REQUIRE_BROWSER_VAR).as_deref() != Ok("1"),
            "{test}: {reason}"
        );
        eprintln!("skipped {test}: {reason}");
    }
    found
}

/// A chromedriver process and one browser session in it; both end when this is dropped.
pub(crate) struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    width: u32,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub(crate) struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` pixels wide, its console kept.
    pub(crate) async fn start(chromedriver: &Path, chromium: &Path, width: u32) -> Self {
        let port = free_port();
        // A process group of its own, so that a test that panics takes Chromium down
        // with chromedriver (see `Drop`).
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},900")],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
            // A page that does not load in 20 s fails the test rather than slowing it (a
            // page kept for going back that held on to its event stream would take one of
            // the few connections the browser opens to the server, and a few such pages
            // would leave the next one waiting).
            "timeouts": { "pageLoad": 20_000 },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("create a browser session")
            .json()
            .await
            .expect("a session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            width,
        }
    }

    /// The command's value, or its WebDriver error and message.
    async fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("a WebDriver command")
            .json()
            .await
            .expect("a WebDriver answer");
        match answer["value"]["error"].as_str() {
            Some(error) => Err((error.to_owned(), answer["value"]["message"].to_string())),
            None => Ok(answer["value"].clone()),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|(error, message)| panic!("WebDriver {path}: {error}: {message}"))
    }

    pub(crate) async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub(crate) async fn current_url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first element matching the CSS `selector`, waiting up to 10 s for it.
    pub(crate) async fn find(&self, selector: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer: Value = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({ "using": "css selector", "value": selector }))
                .send()
                .await
                .expect("find an element")
                .json()
                .await
                .expect("an answer");
            if let Some(id) = answer["value"][ELEMENT_KEY].as_str() {
                return Element(id.to_owned());
            }
            assert!(Instant::now() < deadline, "no element {selector}: {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The rendered text of the first element matching `selector`, waiting for it. Read
    /// in one script, so a live update of the page cannot come in between.
    pub(crate) async fn text_of(&self, selector: &str) -> String {
        self.find(selector).await;
        let text = self
            .run(&format!(
                "const e = document.querySelector({selector:?}); return e ? e.innerText : '';"
            ))
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn type_into(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.0);
        self.command(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    /// Replaces the value of the first field matching `selector` with `text`, typed.
    pub(crate) async fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        let path = format!("/element/{}/clear", element.0);
        self.command(reqwest::Method::POST, &path, Some(json!({})))
            .await;
        self.type_into(&element, text).await;
    }

    /// Accepts the page's `confirm` question, waiting up to 10 s for it; returns its text.
    pub(crate) async fn accept_question(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = self
                .try_command(reqwest::Method::GET, "/alert/text", None)
                .await
            {
                self.command(reqwest::Method::POST, "/alert/accept", Some(json!({})))
                    .await;
                return text.as_str().unwrap_or_default().to_owned();
            }
            assert!(Instant::now() < deadline, "no question was asked");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `selector`, finding it again if a live update
    /// replaced it in between.
    pub(crate) async fn click_on(&self, selector: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.find(selector).await;
            let path = format!("/element/{}/click", element.0);
            match self
                .try_command(reqwest::Method::POST, &path, Some(json!({})))
                .await
            {
                Ok(_) => return,
                Err((error, _))
                    if error == "stale element reference" && Instant::now() < deadline => {}
                Err((error, message)) => panic!("click on {selector}: {error}: {message}"),
            }
        }
    }

    /// Presses Tab once, as a person moving through the page with the keyboard does.
    pub(crate) async fn press_tab(&self) {
        self.keys("\u{E004}").await;
    }

    /// Types `text` into whatever has the focus, key by key (WebDriver's codes for the
    /// special keys: Enter is `\u{E007}`, Tab `\u{E004}`).
    pub(crate) async fn keys(&self, text: &str) {
        let strokes: Vec<Value> = text
            .chars()
            .flat_map(|key| {
                [
                    json!({ "type": "keyDown", "value": key.to_string() }),
                    json!({ "type": "keyUp", "value": key.to_string() }),
                ]
            })
            .collect();
        let actions =
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": strokes }]});
        self.command(reqwest::Method::POST, "/actions", Some(actions))
            .await;
    }

    /// Presses Tab until the focus is on an element whose text is `text`, at most 60
    /// times; panics if it never gets there.
    pub(crate) async fn tab_to(&self, text: &str) {
        for _ in 0..60 {
            self.press_tab().await;
            let focused = self
                .run("return document.activeElement.textContent.trim();")
                .await;
            if focused == text {
                return;
            }
        }
        panic!("Tab never reached {text:?}");
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub(crate) async fn run(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The browser console's entries since the last call (errors, CSP violations).
    pub(crate) async fn console(&self) -> Vec<Value> {
        let entries = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({ "type": "browser" })),
            )
            .await;
        entries.as_array().cloned().unwrap_or_default()
    }

    /// Saves a screenshot of the whole page at `path`.
    pub(crate) async fn screenshot(&self, path: &Path) {
        let height = self
            .run("return Math.max(document.documentElement.scrollHeight, 400);")
            .await
            .as_u64()
            .unwrap_or(900);
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": self.width, "height": height.min(4000) })),
        )
        .await;
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = STANDARD.decode(png.as_str().unwrap()).expect("a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Browser {
    /// Ends the browser session (and with it Chromium) and chromedriver.
    pub(crate) async fn close(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    /// Kills chromedriver's process group: chromedriver and the Chromium it started,
    /// which killing chromedriver alone would leave running when a test fails before
    /// `close`.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !killed.is_ok_and(|status| status.success()) {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}

/// Where screenshots go for people to look at: `target/screenshots`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}
