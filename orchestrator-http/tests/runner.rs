//! The runner protocol through HTTP: connecting, claiming, reporting on an attempt under
//! its lease, and revocation.

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{
    CRON_SECRET, admin, app, assert_error, backing, bearer, connect_runner, lease_fields,
    queue_and_claim, send,
};
use serde_json::{Value, json};

fn with(mut base: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

#[actix_web::test]
async fn setup_tokens_are_single_use_and_scopes_are_kept_apart() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (status, body) = send(&app, TestRequest::get().uri("/api/connect")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "minting needs the admin token"
    );
    assert_error(&body, "UNAUTHORIZED");

    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/connect"))).await;
    assert_eq!(body["data"]["expiresIn"], 600);
    assert!(
        body["data"]["command"]
            .as_str()
            .unwrap()
            .starts_with("agent-orchestrator connect ")
    );

    let runner = connect_runner(&app, "laptop").await;
    let (status, body) = send(
        &app,
        TestRequest::post()
            .uri("/api/connect")
            .set_json(json!({ "setupToken": "forged:99999999999999" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(
        &app,
        TestRequest::post()
            .uri("/api/connect")
            .set_json(json!({ "setupToken": "no-colon" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "setupToken");

    let (status, body) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), &runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["session"]["name"], "laptop");
    assert_eq!(body["data"]["session"]["isActive"], true);
    let (status, _) = send(
        &app,
        TestRequest::get().uri(&format!("/api/runner/status?runnerToken={runner}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the runner token in the query");

    let (status, body) = send(&app, bearer(TestRequest::get().uri("/api/tasks"), &runner)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(assert_error(&body, "FORBIDDEN").contains("runner token"));
    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/runner/status"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(assert_error(&body, "FORBIDDEN").contains("admin token"));
    let (status, _) = send(&app, TestRequest::get().uri("/api/runner/status")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), "wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let register = json!({ "name": "sneaky", "workingDir": "/tmp" });
    let (status, _) = send(
        &app,
        TestRequest::post()
            .uri("/api/runner/status")
            .set_json(register),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no registration without a setup token"
    );

    let (status, body) = send(
        &app,
        bearer(TestRequest::delete().uri("/api/connect"), &runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), &runner),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(assert_error(&body, "UNAUTHORIZED").contains("revoked"));
}

#[actix_web::test]
async fn an_attempt_runs_from_claim_to_completion_under_its_lease() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "builder").await;
    let task = json!({ "title": "add login", "description": "JWT", "filesHint": ["src/auth/"] });
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(task),
    )
    .await;
    let task_id = body["data"]["id"].as_str().unwrap().to_owned();

    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/claim"), &runner)
            .set_json(json!({ "workingDir": "/srv" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claim = &body["data"];
    assert_eq!(claim["task"]["id"], task_id.as_str());
    assert_eq!(claim["task"]["status"], "ASSIGNED");
    assert_eq!(claim["workingDir"], "/srv");
    assert!(
        claim["agent"]["branchName"]
            .as_str()
            .unwrap()
            .starts_with("agent/")
    );
    assert_eq!(claim["claims"][0]["locks"][0]["filePath"], "src/auth/");
    let lease = lease_fields(claim);

    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(lease.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["signal"], "continue");

    let logs = with(
        lease.clone(),
        json!({ "logs": [
        { "logType": "INFO", "content": "reading", "timestamp": "2020-01-01T00:00:00Z" },
        { "logType": "TOOL_CALL", "content": "edit src/auth/mod.rs", "metadata": { "tool": "edit" } }
    ] }),
    );
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/logs"), &runner).set_json(logs),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["logsReceived"], 2);

    let forged = with(
        lease.clone(),
        json!({ "leaseToken": "00000000-0000-4000-8000-000000000000", "logs": [{ "logType": "INFO", "content": "x" }] }),
    );
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/logs"), &runner).set_json(forged),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let done = with(
        lease.clone(),
        json!({
            "success": true,
            "summary": "login added",
            "commitSha": "0123456789abcdef0123456789abcdef01234567",
            "usage": { "inputTokens": 1200, "outputTokens": 300, "costUsd": 0.02 },
            "diffStats": { "filesChanged": 2, "insertions": 40, "deletions": 3 },
            "verification": { "passed": true, "confidenceScore": 0.9, "syntaxPassed": true, "testsPassed": true, "testsTotal": 12, "testsFailed": 0 }
        }),
    );
    let (status, first) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner).set_json(done.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first["data"],
        json!({ "success": true, "taskStatus": "COMPLETED", "agentStatus": "IDLE" })
    );
    let (status, again) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner).set_json(done),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first, "completion is idempotent");

    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(lease.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a late heartbeat on the ended attempt: {body}"
    );

    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/verify/{task_id}"))),
    )
    .await;
    assert_eq!(body["data"]["summary"]["totalAttempts"], 1, "{body}");
    assert_eq!(body["data"]["summary"]["latestPassed"], true);
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{task_id}/changes"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([]),
        "a completion without changes leaves none"
    );
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{task_id}"))),
    )
    .await;
    let detail = &body["data"];
    assert_eq!(
        detail["commitSha"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(
        detail["logs"].as_array().unwrap().len(),
        3,
        "two reported, one closing entry"
    );
    assert_eq!(
        detail["fileLocks"],
        json!([]),
        "locks released on completion"
    );
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/dashboard/stats"))).await;
    let stats = &body["data"];
    assert_eq!(stats["tasks"]["completed"], 1, "{stats}");
    assert_eq!(stats["performance"]["todayCompleted"], 1);
    assert_eq!(stats["performance"]["successRate"], 100.0);
    assert_eq!(stats["agents"]["idle"], 1);
}

#[actix_web::test]
async fn cancellation_reaches_the_runner_through_its_heartbeat() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "r").await;
    let (task_id, lease) = queue_and_claim(&app, &runner, "t").await;

    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{task_id}")))
            .set_json(json!({ "status": "CANCELLED" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(lease.clone()),
    )
    .await;
    assert_eq!(body["data"]["signal"], "stop");
    let stopped = with(lease, json!({ "success": false, "cancelled": true }));
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner).set_json(stopped),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["taskStatus"], "CANCELLED");
}

#[actix_web::test]
async fn a_waiting_claim_picks_up_a_new_task_at_once() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "poller").await;
    let (_, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/claim"), &runner)
            .set_json(json!({ "waitMs": 50 })),
    )
    .await;
    assert_eq!(body["data"]["task"], Value::Null);
    assert_eq!(body["data"]["message"], "No tasks available");

    let started = Instant::now();
    let claim = async {
        send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/claim"), &runner)
                .set_json(json!({ "waitMs": 20000, "max": 2 })),
        )
        .await
    };
    let create = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(
            &app,
            admin(TestRequest::post().uri("/api/tasks"))
                .set_json(json!({ "title": "late", "description": "d" })),
        )
        .await
    };
    let ((status, body), _) = tokio::join!(claim, create);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task"]["title"], "late");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the new task, not the timeout"
    );

    for (field, value) in [
        ("waitMs", json!(30001)),
        ("max", json!(0)),
        ("max", json!(33)),
        ("leaseTtlMs", json!(10)),
    ] {
        let (status, body) = send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/claim"), &runner)
                .set_json(json!({ field: value })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["error"]["details"]["field"], field);
    }
}

#[actix_web::test]
async fn the_cleanup_route_needs_the_cron_secret() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (status, body) = send(&app, TestRequest::get().uri("/api/cron/cleanup")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "UNAUTHORIZED");
    let (status, _) = send(&app, admin(TestRequest::get().uri("/api/cron/cleanup"))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the admin token is not the cron secret"
    );
    let (status, body) = send(
        &app,
        bearer(TestRequest::get().uri("/api/cron/cleanup"), CRON_SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["report"]["ran"], true);
}

#[actix_web::test]
async fn log_batches_have_their_own_limits() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "big").await;
    let (_, lease) = queue_and_claim(&app, &runner, "t").await;

    let two_mib: Vec<Value> = (0..40)
        .map(|_| json!({ "logType": "TOOL_RESULT", "content": "x".repeat(50_000) }))
        .collect();
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/logs"), &runner)
            .set_json(with(lease.clone(), json!({ "logs": two_mib }))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "2 MB fits the 5 MiB log limit: {body}"
    );
    let too_many: Vec<Value> = (0..501)
        .map(|_| json!({ "logType": "INFO", "content": "x" }))
        .collect();
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/logs"), &runner)
            .set_json(with(lease.clone(), json!({ "logs": too_many }))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "logs");
    let six_mib: Vec<Value> = (0..120)
        .map(|_| json!({ "logType": "TOOL_RESULT", "content": "x".repeat(50_000) }))
        .collect();
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/logs"), &runner)
            .set_json(with(lease, json!({ "logs": six_mib }))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn a_completion_carries_its_changes_and_the_task_serves_them() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "patcher").await;
    let (task_id, lease) = queue_and_claim(&app, &runner, "patch").await;
    let changes_uri = format!("/api/tasks/{task_id}/changes");

    let (status, body) = send(&app, admin(TestRequest::get().uri(&changes_uri))).await;
    assert_eq!((status, &body["data"]), (StatusCode::OK, &json!([])));
    let (status, body) = send(&app, TestRequest::get().uri(&changes_uri)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks/nope/changes")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "VALIDATION_ERROR");
    let unknown = "/api/tasks/5a0c3b57-0d4f-4c1e-9a43-0f2b8c1d7e90/changes";
    let (status, body) = send(&app, admin(TestRequest::get().uri(unknown))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "NOT_FOUND");

    // A patch at the server's limit whose every line JSON escapes: the body is several
    // times the default limit.
    let line = "+\"quoted\" \\ ü\n";
    let patch = format!(
        "diff --git a/src/lib.rs b/src/lib.rs\n{}",
        line.repeat((1024 * 1024 - 37) / line.len())
    );
    assert!(patch.len() <= 1024 * 1024);
    let changes = json!({
        "files": [
            { "path": "src/lib.rs", "status": "MODIFIED", "insertions": 3, "deletions": 1, "binary": false },
            { "path": "src/new.rs", "oldPath": "src/old.rs", "status": "RENAMED", "insertions": 0, "deletions": 0, "binary": false },
            { "path": "logo.png", "status": "ADDED", "insertions": 0, "deletions": 0, "binary": true }
        ],
        "omittedFiles": 0,
        "patch": patch,
        "truncated": true,
        "maxPatchBytes": 1024 * 1024
    });
    let completion = |changes: Value| {
        with(
            lease.clone(),
            json!({ "success": true, "commitSha": "0123456789abcdef0123456789abcdef01234567", "changes": changes }),
        )
    };
    let file = |path: &str, status: &str| json!({ "path": path, "status": status, "insertions": 1, "deletions": 0, "binary": false });
    let too_long = format!(
        "changes.patch: {} bytes is more than maxPatchBytes (1024)",
        patch.len()
    );
    for (refused, field, expected) in [
        (
            json!({ "maxPatchBytes": 2 * 1024 * 1024 }),
            "changes.maxPatchBytes",
            "changes.maxPatchBytes: must be 1 to 1048576 bytes (got 2097152)",
        ),
        (
            json!({ "maxPatchBytes": 1024 }),
            "changes.patch",
            too_long.as_str(),
        ),
        (
            json!({ "files": vec![file("a", "ADDED"); 2_001] }),
            "changes.files",
            "changes.files: at most 2000 files (got 2001); count the others in omittedFiles",
        ),
        (
            json!({ "files": [file("", "ADDED")] }),
            "changes.files[0].path",
            "changes.files[0].path: must not be empty",
        ),
        (
            json!({ "files": [file("a", "COPIED")] }),
            "changes.files[0].status",
            "",
        ),
    ] {
        let (status, body) = send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/complete"), &runner)
                .set_json(completion(with(changes.clone(), refused))),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
        let message = assert_error(&body, "VALIDATION_ERROR");
        assert!(
            message.starts_with(field) && message.ends_with(expected),
            "{message}"
        );
    }
    let (status, body) = send(&app, admin(TestRequest::get().uri(&changes_uri))).await;
    assert_eq!(
        (status, &body["data"]),
        (StatusCode::OK, &json!([])),
        "refused completions keep nothing"
    );

    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner)
            .set_json(completion(changes.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["taskStatus"], "COMPLETED");
    let (status, body) = send(&app, admin(TestRequest::get().uri(&changes_uri))).await;
    assert_eq!(status, StatusCode::OK);
    let kept = body["data"].as_array().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["taskId"], task_id.as_str());
    assert_eq!(kept[0]["attemptNumber"], 1);
    assert!(kept[0]["createdAt"].is_string());
    assert!(kept[0]["changes"] == changes, "kept as sent");

    let beyond = "x".repeat(8 * 1024 * 1024);
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner)
            .set_json(completion(with(changes, json!({ "patch": beyond })))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "PAYLOAD_TOO_LARGE");
}
