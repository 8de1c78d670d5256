//! `GET /api/openapi.json` documents every route and every error, and its references
//! all resolve.

mod common;

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{app, backing, send};
use serde_json::{Value, json};

/// Every route the API serves, as `METHOD path` in OpenAPI's path syntax.
const ROUTES: &[&str] = &[
    "GET /api/health",
    "HEAD /api/health",
    "GET /api/openapi.json",
    "GET /api/tasks",
    "POST /api/tasks",
    "POST /api/tasks/batch",
    "GET /api/tasks/{id}",
    "GET /api/tasks/{id}/changes",
    "PATCH /api/tasks/{id}",
    "DELETE /api/tasks/{id}",
    "POST /api/tasks/{id}/run",
    "POST /api/tasks/{id}/retry",
    "POST /api/tasks/{id}/auto-retry",
    "GET /api/agents",
    "POST /api/agents",
    "GET /api/agents/{id}",
    "PATCH /api/agents/{id}",
    "DELETE /api/agents/{id}",
    "GET /api/agents/{id}/logs",
    "GET /api/exceptions",
    "GET /api/exceptions/{id}",
    "PATCH /api/exceptions/{id}",
    "GET /api/locks",
    "DELETE /api/locks",
    "POST /api/locks/check",
    "GET /api/dashboard/stats",
    "GET /api/usage",
    "POST /api/verify",
    "GET /api/verify/{taskId}",
    "GET /api/connect",
    "POST /api/connect",
    "DELETE /api/connect",
    "GET /api/runners",
    "DELETE /api/runners/{id}",
    "GET /api/runner/status",
    "POST /api/runner/status",
    "POST /api/runner/claim",
    "POST /api/runner/heartbeat",
    "POST /api/runner/logs",
    "POST /api/runner/locks",
    "POST /api/runner/tasks",
    "POST /api/runner/complete",
    "GET /api/cron/cleanup",
    "GET /api/events",
];

fn references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.insert(target.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_document_covers_every_route_and_error() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (status, doc) = send(&app, TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented = BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let responses = operation["responses"].as_object().unwrap();
            let secured = operation.get("security").is_some();
            if secured {
                let unauthorized =
                    &responses["401"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    unauthorized, "#/components/schemas/ErrorEnvelope",
                    "{method} {path}"
                );
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(documented, expected);

    let mut refs = BTreeSet::new();
    references(&doc, &mut refs);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for target in &refs {
        let name = target
            .strip_prefix("#/components/schemas/")
            .expect("a schema reference");
        assert!(schemas.contains_key(name), "unresolved {target}");
    }
    for name in [
        "Task",
        "NewTask",
        "ErrorEnvelope",
        "ErrorCode",
        "FileLock",
        "Exception",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    let task = &schemas["Task"]["properties"];
    assert!(
        task.get("leaseToken").is_none(),
        "lease tokens are never serialized"
    );
    assert_eq!(task["createdAt"]["$ref"], "#/components/schemas/Timestamp");
    assert_eq!(schemas["Timestamp"]["format"], "date-time");
    for scheme in ["admin", "runner", "cron"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
}

#[actix_web::test]
async fn every_documented_route_is_served() {
    let backing = backing().await;
    let app = app(&backing).await;
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let uri = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{taskId}", "00000000-0000-4000-8000-000000000000");
        let request = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&uri);
        let (status, body) = send(&app, request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{route}: {body}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                !body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Cannot "),
                "{route} is documented but not routed"
            );
        }
    }
}

/// Enums are documented with the spellings the server accepts, a new task with the limits
/// it enforces, and no two types share a schema name (each route is documented with its
/// own).
#[actix_web::test]
async fn enums_are_spelled_as_on_the_wire_limits_stated_and_schemas_the_routes_own() {
    use orchestrator_core::model::{
        AttemptOutcome, ExceptionType, LogType, RiskLevel, TaskSort, TaskStatus, VerificationStatus,
    };
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, doc) = send(&app, TestRequest::get().uri("/api/openapi.json")).await;
    let schemas = &doc["components"]["schemas"];
    let spelled = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", schemas[name]))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    fn wire<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }
    assert_eq!(spelled("TaskStatus"), wire(TaskStatus::ALL));
    assert!(spelled("TaskStatus").contains(&"QUEUED".to_owned()));
    assert_eq!(spelled("RiskLevel"), wire(RiskLevel::ALL));
    assert_eq!(spelled("LogType"), wire(LogType::ALL));
    assert_eq!(spelled("TaskSort"), wire(TaskSort::ALL));
    assert_eq!(spelled("ExceptionType"), wire(ExceptionType::ALL));
    assert_eq!(spelled("VerificationStatus"), wire(VerificationStatus::ALL));
    assert_eq!(spelled("AttemptOutcome"), wire(AttemptOutcome::ALL));

    let new_task = &schemas["NewTask"]["properties"];
    assert_eq!(
        (
            &new_task["priority"]["minimum"],
            &new_task["priority"]["maximum"]
        ),
        (&json!(0), &json!(3))
    );
    assert_eq!(
        (
            &new_task["maxAttempts"]["minimum"],
            &new_task["maxAttempts"]["maximum"]
        ),
        (&json!(1), &json!(20))
    );
    assert_eq!(new_task["title"]["maxLength"], 500);
    assert_eq!(new_task["filesHint"]["maxItems"], 200);

    let check = &schemas["LockCheckSummary"]["properties"];
    for field in ["total", "locked", "available"] {
        assert!(check.get(field).is_some(), "{check}");
    }
    let verification = &schemas["VerificationSummary"]["properties"];
    assert!(
        verification.get("totalAttempts").is_some(),
        "{verification}"
    );
}
