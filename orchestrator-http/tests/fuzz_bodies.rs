//! Property: whatever body a client sends to a route that reads one, the answer is never
//! a server error, and every error is the envelope with a code, a message and the
//! request id.

mod common;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use common::{admin, assert_error, backing, bearer, build, connect_runner, send};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

/// Field names the routes know, so that generated objects reach past the first check.
const KEYS: &[&str] = &[
    "title",
    "description",
    "priority",
    "riskLevel",
    "filesHint",
    "dependsOn",
    "maxAttempts",
    "status",
    "tasks",
    "filePaths",
    "filePath",
    "reason",
    "excludeAgentId",
    "resolvedBy",
    "resolutionNotes",
    "setupToken",
    "action",
    "taskId",
    "workingDir",
    "idempotencyKey",
    "notBefore",
    "verification",
    "name",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("QUEUED"),
            Just("CANCELLED"),
            Just("RESOLVED"),
            Just("HIGH"),
            Just("src/a.rs"),
            Just("../../etc"),
            Just("00000000-0000-4000-8000-000000000000"),
            Just("stop")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

/// A body: JSON from the strategy, or raw bytes that are rarely JSON.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[actix_web::test]
async fn no_body_makes_a_server_error() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state.with_rate_limits(None)).await;
    let (_, created) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({ "title": "t", "description": "d" })),
    )
    .await;
    let task = created["data"]["id"].as_str().unwrap().to_owned();
    let routes: Vec<(Method, String)> = vec![
        (Method::POST, "/api/tasks".into()),
        (Method::POST, "/api/tasks/batch".into()),
        (Method::PATCH, format!("/api/tasks/{task}")),
        (Method::POST, format!("/api/tasks/{task}/run")),
        (Method::POST, "/api/agents".into()),
        (
            Method::PATCH,
            "/api/exceptions/00000000-0000-4000-8000-000000000000".into(),
        ),
        (Method::POST, "/api/locks/check".into()),
        (Method::DELETE, "/api/locks".into()),
        (Method::POST, "/api/verify".into()),
        (Method::POST, "/api/connect".into()),
        (Method::POST, "/api/runner/claim".into()),
        (Method::POST, "/api/runner/heartbeat".into()),
        (Method::POST, "/api/runner/logs".into()),
        (Method::POST, "/api/runner/locks".into()),
        (Method::POST, "/api/runner/complete".into()),
    ];
    // The runner routes take a runner's token: with the admin's, every body would stop
    // at the 403 and none would reach the route.
    let runner_token = connect_runner(&app, "fuzz").await;
    let mut past_auth = 0;
    let mut runner = TestRunner::new(Config::with_cases(64));
    let strategy = body();
    for case in 0..600 {
        let bytes = strategy.new_tree(&mut runner).unwrap().current();
        let (method, uri) = &routes[case % routes.len()];
        let request = TestRequest::default().method(method.clone()).uri(uri);
        let request = if uri.starts_with("/api/runner/") {
            bearer(request, &runner_token)
        } else {
            admin(request)
        }
        .insert_header(("Content-Type", "application/json"))
        .set_payload(bytes.clone());
        let (status, body) = send(&app, request).await;
        if uri.starts_with("/api/runner/")
            && status != StatusCode::UNAUTHORIZED
            && status != StatusCode::FORBIDDEN
        {
            past_auth += 1;
        }
        assert!(
            !status.is_server_error(),
            "{method} {uri} with {:?} gave {status}: {body}",
            String::from_utf8_lossy(&bytes)
        );
        if status.is_client_error() {
            let message = assert_error(&body, body["error"]["code"].as_str().unwrap_or("?"));
            assert!(!message.is_empty());
        }
    }
    assert!(
        past_auth > 100,
        "runner bodies reached their routes {past_auth} times"
    );
}
