//! Success shapes and errors of the routes the other files do not walk through: health,
//! runner sessions, a runner's status updates and progress reports, verification
//! evidence, and automatic retries.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, read_body};
use common::{admin, app, assert_error, backing, bearer, connect_runner, send};
use serde_json::{Value, json};

#[actix_web::test]
async fn health_is_public_and_its_details_are_for_admins() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (status, body) = send(&app, TestRequest::get().uri("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert!(body.get("stats").is_none());
    let (status, body) = send(&app, TestRequest::get().uri("/api/health?detailed=true")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "UNAUTHORIZED");
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/health?detailed=true")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["stats"]["uptime"].is_u64());
    let (status, _) = send(&app, TestRequest::get().uri("/api/health?detailed=maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let response = call_service(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/api/health")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("cache-control").unwrap(),
        "no-store, no-cache, must-revalidate"
    );
    assert!(read_body(response).await.is_empty());
}

#[actix_web::test]
async fn admins_list_and_revoke_runner_sessions() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "ci-box").await;
    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/runners"))).await;
    assert_eq!(status, StatusCode::OK);
    let session = &body["data"][0];
    assert_eq!(session["name"], "ci-box");
    assert_eq!(session["status"], "ACTIVE");
    assert!(
        session.get("tokenHash").is_none(),
        "token hashes stay on the server"
    );
    let id = session["id"].as_str().unwrap().to_owned();

    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri(&format!("/api/runners/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked"], true);
    let (status, _) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), &runner),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &app,
        admin(TestRequest::delete().uri(&format!("/api/runners/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "revoking twice is harmless");
    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri("/api/runners/8d3c2f36-5b7e-4a43-9f7c-2b8a7d6e5f41")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "NOT_FOUND");
}

async fn claim_one<S, B>(app: &S, runner: &str, title: &str) -> Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, _) = send(
        app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({ "title": title, "description": "d" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(
        app,
        bearer(TestRequest::post().uri("/api/runner/claim"), runner).set_json(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claim = &body["data"];
    json!({
        "agentId": claim["agent"]["id"],
        "taskId": claim["task"]["id"],
        "attempt": claim["lease"]["attempt"],
        "leaseToken": claim["lease"]["leaseToken"],
    })
}

#[actix_web::test]
async fn runners_report_progress_and_agent_status() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "one").await;
    let other = connect_runner(&app, "two").await;
    let lease = claim_one(&app, &runner, "progress").await;
    let task = lease["taskId"].as_str().unwrap().to_owned();

    let mut working = lease.clone();
    working["status"] = json!("IN_PROGRESS");
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(working.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{task}"))),
    )
    .await;
    assert_eq!(body["data"]["status"], "IN_PROGRESS");
    let (status, _) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(working),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reporting the same status again is harmless"
    );
    let mut wrong = lease.clone();
    wrong["status"] = json!("COMPLETED");
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(wrong),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "status");

    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &other).set_json(lease.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another runner's agent: {body}"
    );

    let pause = json!({ "agentId": lease["agentId"], "status": "PAUSED" });
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/status"), &runner).set_json(pause.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({ "success": true, "agentId": lease["agentId"], "status": "PAUSED" })
    );
    let (_, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(lease.clone()),
    )
    .await;
    assert_eq!(body["data"]["signal"], "pause");
    let (status, _) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/status"), &other).set_json(pause),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resume = json!({ "runnerToken": runner, "agentId": lease["agentId"], "status": "WORKING" });
    let (status, body) = send(
        &app,
        TestRequest::post()
            .uri("/api/runner/status")
            .set_json(resume),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the runner token in the body: {body}"
    );
    assert_eq!(body["data"]["status"], "WORKING");

    let (_, body) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), &runner),
    )
    .await;
    assert_eq!(
        body["data"]["activeAgents"][0]["currentTask"]["title"],
        "progress"
    );
}

#[actix_web::test]
async fn evidence_is_recorded_and_failed_tasks_retry_by_policy() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "v").await;
    let lease = claim_one(&app, &runner, "tested").await;
    let task = lease["taskId"].as_str().unwrap().to_owned();
    let evidence = json!({
        "taskId": task,
        "verification": {
            "passed": false, "confidenceScore": 0.3, "testsPassed": false, "testsTotal": 10, "testsFailed": 2,
            "failures": [{ "type": "test", "message": "login_works failed", "file": "tests/login.rs", "line": 12 }]
        }
    });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify")).set_json(evidence.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ASSIGNED task is not verified yet: {body}"
    );
    let mut working = lease.clone();
    working["status"] = json!("IN_PROGRESS");
    send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/heartbeat"), &runner).set_json(working),
    )
    .await;
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify")).set_json(evidence),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["verificationResult"]["attemptNumber"], 1);
    assert_eq!(body["data"]["task"]["verificationStatus"], "FAILED");
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify"))
            .set_json(json!({ "taskId": task, "workingDir": "/srv" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no verify roots: {body}");
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify")).set_json(json!({ "taskId": task })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "verification");

    let mut failed = lease.clone();
    failed["success"] = json!(false);
    failed["error"] = json!("2 tests failed");
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner).set_json(failed),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["taskStatus"], "FAILED");
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/exceptions?taskId={task}"))),
    )
    .await;
    assert_eq!(body["data"]["exceptions"][0]["title"], "Task failed");

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri(&format!("/api/tasks/{task}/auto-retry"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let retry = &body["data"];
    assert_eq!(retry["status"], "retrying");
    assert_eq!(retry["retryInfo"]["failureType"], "TEST_FAILURE");
    assert_eq!(retry["retryInfo"]["maxAttempts"], 2);
    assert_eq!(retry["retryInfo"]["requiresHumanReview"], true);
    assert_eq!(retry["task"]["status"], "QUEUED");
    assert!(
        retry["task"]["notBefore"].is_string(),
        "the retry waits 30 s"
    );
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/verify/{task}?limit=51"))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
