//! The worst inputs the limits allow, against a real server: the deepest, longest paths a
//! request may name cost bounded work and storage, the server answers other requests
//! meanwhile, and past the limit the request is refused naming it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{ServerProcess, server_command};
use orchestrator_core::lock::{LockPath, MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_PATH_KEY_BYTES};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "input-bounds-admin-token";

/// `count` distinct paths at the length and depth limits.
fn deepest_paths(count: usize) -> Vec<String> {
    // 64 components of 63 bytes and the slashes between them: 4,095 bytes.
    let segment_length = (MAX_PATH_BYTES + 1) / MAX_PATH_DEPTH - 1;
    (0..count)
        .map(|n| {
            let first = format!("{n:0segment_length$}");
            let rest = vec!["s".repeat(segment_length); MAX_PATH_DEPTH - 1];
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = http
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_longest_paths_cost_bounded_work_while_others_are_served() {
    let data = tempfile::tempdir().unwrap();
    let mut command = server_command();
    command
        .args(["--data-dir", &data.path().to_string_lossy()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--rate-limit-enabled", "false"]);
    let server = ServerProcess::start(command);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;

    let each = LockPath::parse(&deepest_paths(1)[0]).unwrap().key_bytes();
    let allowed = MAX_PATH_KEY_BYTES / each;
    let worst = deepest_paths(allowed);
    let past = deepest_paths(allowed + 1);

    // Health checks go on beside the heavy requests; each must be answered.
    let heavy = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (http, url, heavy) = (http.clone(), server.url.clone(), heavy.clone());
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut answered = 0;
            while heavy.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let health = http.get(format!("{url}/api/health")).send().await;
                assert!(health.is_ok_and(|r| r.status().is_success()));
                slowest = slowest.max(sent.elapsed());
                answered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (answered, slowest)
        })
    };
    for _ in 0..3 {
        let (status, body) = post(
            &http,
            format!("{}/api/tasks", server.url),
            json!({"title": "deep", "description": "d", "filesHint": worst}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(
            &http,
            format!("{}/api/locks/check", server.url),
            json!({ "filePaths": worst }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    heavy.store(false, Ordering::SeqCst);
    let (answered, slowest) = watcher.await.unwrap();
    assert!(answered > 0);
    assert!(
        slowest < Duration::from_secs(5),
        "health waited {slowest:?} behind the heavy requests"
    );

    // One path more is refused, naming the limit, and writes nothing.
    let stored = || {
        std::fs::read_dir(data.path())
            .unwrap()
            .flatten()
            .map(|f| f.metadata().unwrap().len())
            .sum::<u64>()
    };
    let before = stored();
    let refused = [
        (
            "/api/tasks",
            "filesHint",
            json!({"title": "deep", "description": "d", "filesHint": past}),
        ),
        (
            "/api/locks/check",
            "filePaths",
            json!({ "filePaths": past }),
        ),
    ];
    for (route, field, body) in refused {
        let (status, body) = post(&http, format!("{}{route}", server.url), body).await;
        assert_eq!(status, 400, "{route}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&MAX_PATH_KEY_BYTES.to_string()),
            "{message}"
        );
        assert!(message.starts_with(field), "{message}");
    }
    assert!(stored() <= before + 64 * 1024, "nothing was written");
    // Three of the worst tasks take a few times the limit each on disk (keys and their
    // index), not the hundreds of megabytes unbounded keys took.
    assert!(
        before < 4 * MAX_PATH_KEY_BYTES as u64 * 3,
        "{before} bytes stored"
    );
    server.stop();
}
