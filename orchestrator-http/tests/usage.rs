//! Runners say who they are, completions say which backend and model ran the attempt, and
//! `GET /api/usage` sums what the attempts used.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{
    admin, app, assert_error, backing, bearer, connect_runner, queue_and_claim, send, setup_token,
};
use serde_json::{Value, json};

/// Asserts a 400 naming `field`, with a message that begins with it.
fn assert_refused(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
    assert_eq!(body["error"]["details"]["field"], field, "{body}");
    let message = assert_error(body, "VALIDATION_ERROR");
    assert!(message.starts_with(&format!("{field}: ")), "{message}");
}

#[actix_web::test]
async fn runners_say_who_they_are_when_they_connect_and_when_they_claim() {
    let backing = backing().await;
    let app = app(&backing).await;
    let setup = setup_token(&app).await;
    let stated =
        json!({ "host": "build-01.example.com", "version": "0.1.0", "backends": ["claude-code"] });
    for (runner, field) in [
        (json!({ "host": "h".repeat(256) }), "runner.host"),
        (json!({ "version": "v".repeat(65) }), "runner.version"),
        (
            json!({ "backends": vec!["command"; 17] }),
            "runner.backends",
        ),
        (
            json!({ "backends": ["claude-code", "b".repeat(65)] }),
            "runner.backends[1]",
        ),
        (json!({ "host": " " }), "runner.host"),
    ] {
        let exchange = json!({ "setupToken": setup, "name": "build-01", "runner": runner });
        let (status, body) = send(
            &app,
            TestRequest::post().uri("/api/connect").set_json(exchange),
        )
        .await;
        assert_refused(status, &body, field);
    }
    let exchange = json!({ "setupToken": setup, "name": "build-01", "runner": stated });
    let (status, body) = send(
        &app,
        TestRequest::post().uri("/api/connect").set_json(exchange),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "refusals leave the setup token: {body}"
    );
    let token = body["data"]["runnerToken"].as_str().unwrap().to_owned();
    let silent = connect_runner(&app, "old-runner").await;

    let runners = || async {
        let (status, body) = send(&app, admin(TestRequest::get().uri("/api/runners"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    };
    let listed = runners().await;
    assert_eq!(listed[0]["name"], "old-runner");
    assert_eq!(
        (
            &listed[0]["host"],
            &listed[0]["version"],
            &listed[0]["backends"]
        ),
        (&Value::Null, &Value::Null, &json!([])),
        "a runner that says nothing"
    );
    assert_eq!(listed[1]["host"], "build-01.example.com");
    assert_eq!(listed[1]["version"], "0.1.0");
    assert_eq!(listed[1]["backends"], json!(["claude-code"]));

    // A claim states it again; the latest statement is kept.
    let restarted = json!({ "host": "build-01.example.com", "version": "0.2.0", "backends": ["anthropic", "openai"] });
    let claim = |runner: Value| json!({ "waitMs": 0, "runner": runner });
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/claim"), &token)
            .set_json(claim(restarted.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (runner, field) in [
        (json!({ "version": "" }), "runner.version"),
        (json!({ "host": 5 }), "runner.host"),
        (json!({ "hostname": "build-01" }), "runner.hostname"),
        (json!([null, null]), "runner"),
    ] {
        let (status, body) = send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/claim"), &token).set_json(claim(runner)),
        )
        .await;
        assert_refused(status, &body, field);
    }
    for nothing in [json!({}), json!({ "runner": null })] {
        let (status, body) = send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/claim"), &silent).set_json(nothing),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a claim that states nothing: {body}"
        );
    }
    let listed = runners().await;
    assert_eq!(listed[1]["version"], "0.2.0");
    assert_eq!(listed[1]["backends"], json!(["anthropic", "openai"]));
    assert_eq!(listed[0]["host"], Value::Null);
}

#[actix_web::test]
async fn completions_say_which_backend_and_model_ran_and_usage_sums_them() {
    let backing = backing().await;
    let app = app(&backing).await;
    let runner = connect_runner(&app, "build-02").await;
    let (task_id, lease) = queue_and_claim(&app, &runner, "add login").await;
    let completion = |backend: Value, model: Value| {
        let mut body = lease.clone();
        body["success"] = json!(true);
        body["usage"] = json!({
            "inputTokens": 1_000, "outputTokens": 200, "cacheReadTokens": 4_000,
            "cacheWriteTokens": 500, "costUsd": 0.375
        });
        body["backend"] = backend;
        body["model"] = model;
        body
    };
    for (backend, model, field) in [
        (json!("b".repeat(65)), json!("claude-sonnet-4-5"), "backend"),
        (json!("claude-code"), json!("m".repeat(129)), "model"),
        (json!("claude-code"), json!("\t"), "model"),
    ] {
        let (status, body) = send(
            &app,
            bearer(TestRequest::post().uri("/api/runner/complete"), &runner)
                .set_json(completion(backend, model)),
        )
        .await;
        assert_refused(status, &body, field);
    }
    let (status, body) = send(
        &app,
        bearer(TestRequest::post().uri("/api/runner/complete"), &runner)
            .set_json(completion(json!("claude-code"), json!("claude-sonnet-4-5"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{task_id}"))),
    )
    .await;
    let attempt = &body["data"]["attempts"][0];
    assert_eq!(attempt["backend"], "claude-code", "{attempt}");
    assert_eq!(attempt["model"], "claude-sonnet-4-5");

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/usage"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let summary = &body["data"];
    let usage = json!({
        "inputTokens": 1_000, "outputTokens": 200, "cacheReadTokens": 4_000,
        "cacheWriteTokens": 500, "costUsd": 0.375
    });
    assert_eq!(summary["attempts"], 1, "{summary}");
    assert_eq!(summary["usage"], usage);
    assert_eq!(summary["days"].as_array().unwrap().len(), 1);
    assert_eq!(summary["days"][0]["attempts"], 1);
    assert_eq!(summary["runners"][0]["name"], "build-02");
    assert_eq!(
        summary["models"],
        json!([{ "backend": "claude-code", "model": "claude-sonnet-4-5", "attempts": 1, "usage": usage }])
    );
    assert_eq!(
        summary["tasks"],
        json!([{ "taskId": task_id, "title": "add login", "attempts": 1, "usage": usage }])
    );
    let since = summary["since"].as_str().unwrap();
    let until = summary["until"].as_str().unwrap();
    let window = until
        .parse::<orchestrator_core::Timestamp>()
        .unwrap()
        .as_millis()
        - since
            .parse::<orchestrator_core::Timestamp>()
            .unwrap()
            .as_millis();
    assert_eq!(window, 30 * 24 * 60 * 60 * 1000, "the last 30 days");

    let (status, body) = send(
        &app,
        admin(
            TestRequest::get()
                .uri("/api/usage?since=2025-01-01T00:00:00Z&until=2025-01-02T00:00:00Z&topTasks=1"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["attempts"], 0, "another window");
    assert_eq!(body["data"]["since"], "2025-01-01T00:00:00.000Z");
    for (query, field) in [
        (
            "since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z",
            "since",
        ),
        (
            "since=2025-01-01T00:00:00Z&until=2025-01-01T00:00:00Z",
            "since",
        ),
        (
            "since=2024-01-01T00:00:00Z&until=2025-01-02T00:00:00Z",
            "since",
        ),
        ("since=yesterday", "since"),
        ("until=2025-13-01T00:00:00Z", "until"),
        ("topTasks=0", "topTasks"),
        ("topTasks=101", "topTasks"),
    ] {
        let (status, body) = send(
            &app,
            admin(TestRequest::get().uri(&format!("/api/usage?{query}"))),
        )
        .await;
        assert_refused(status, &body, field);
    }
    let (status, body) = send(&app, TestRequest::get().uri("/api/usage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(&app, bearer(TestRequest::get().uri("/api/usage"), &runner)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
