//! `/api/exceptions` and `/api/locks` through HTTP.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{admin, app, assert_error, backing, claimed_task, send};
use orchestrator_core::model::{ExceptionSeverity, ExceptionType, NewException};
use orchestrator_core::{Clock, SystemClock};
use serde_json::json;

#[actix_web::test]
async fn exceptions_are_listed_shown_and_decided() {
    let backing = backing().await;
    let app = app(&backing).await;
    let claim = claimed_task(&backing.store, "risky", &[]).await;
    let mut new = NewException::new(
        ExceptionType::HighRiskCode,
        ExceptionSeverity::Critical,
        "look",
    );
    new.task_id = Some(claim.task.id);
    new.agent_id = Some(claim.agent_id);
    let raised = backing
        .store
        .raise_exception(new, SystemClock.now())
        .await
        .unwrap();
    let info = NewException::new(ExceptionType::UnknownError, ExceptionSeverity::Info, "fyi");
    backing
        .store
        .raise_exception(info, SystemClock.now())
        .await
        .unwrap();

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/exceptions"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = &body["data"];
    assert_eq!(list["pagination"]["totalCount"], 2);
    assert_eq!(
        list["exceptions"][0]["severity"], "CRITICAL",
        "most urgent first"
    );
    assert_eq!(list["exceptions"][0]["task"]["title"], "risky");
    assert_eq!(list["exceptions"][0]["agent"]["status"], "WORKING");
    assert_eq!(list["exceptions"][1]["task"], serde_json::Value::Null);

    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/exceptions?type=UNKNOWN_ERROR")),
    )
    .await;
    assert_eq!(body["data"]["pagination"]["totalCount"], 1);

    let id = raised.id;
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/exceptions/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["task"]["description"], "work");

    let resolve = json!({ "status": "RESOLVED", "resolutionNotes": "fine", "resolvedBy": "ana" });
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/exceptions/{id}"))).set_json(resolve.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "RESOLVED");
    assert_eq!(body["data"]["resolvedBy"], "ana");
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/exceptions/{id}"))).set_json(resolve),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "CONFLICT");

    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/exceptions"))).await;
    assert_eq!(
        body["data"]["pagination"]["totalCount"], 1,
        "OPEN by default"
    );
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/exceptions?status=ALL")),
    )
    .await;
    assert_eq!(body["data"]["pagination"]["totalCount"], 2);

    let reopen = json!({ "status": "OPEN" });
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/exceptions/{id}"))).set_json(reopen),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "status");
    let long = json!({ "status": "DISMISSED", "resolvedBy": "x".repeat(256) });
    let (_, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/exceptions/{id}"))).set_json(long),
    )
    .await;
    assert_eq!(body["error"]["details"]["field"], "resolvedBy");
    let (status, _) = send(
        &app,
        admin(TestRequest::get().uri("/api/exceptions?severity=LOUD")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/exceptions/8d3c2f36-5b7e-4a43-9f7c-2b8a7d6e5f41")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(assert_error(&body, "NOT_FOUND"), "Exception not found");
}

#[actix_web::test]
async fn locks_are_listed_checked_and_force_released() {
    let backing = backing().await;
    let app = app(&backing).await;
    let claim = claimed_task(&backing.store, "owner", &["src/core/"]).await;

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/locks"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let locks = &body["data"];
    assert_eq!(locks["totalCount"], 1);
    assert_eq!(locks["locks"][0]["filePath"], "src/core/");
    assert_eq!(locks["locks"][0]["isExpired"], false);
    assert_eq!(locks["locks"][0]["task"]["title"], "owner");

    let check = json!({ "filePaths": ["src\\core\\lib.rs", "docs/readme.md"] });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/locks/check")).set_json(check),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["data"];
    assert_eq!(result["hasConflicts"], true);
    assert_eq!(
        result["summary"],
        json!({ "total": 2, "locked": 1, "available": 1 })
    );
    assert_eq!(result["lockedFiles"][0]["filePath"], "src/core/lib.rs");
    assert_eq!(result["lockedFiles"][0]["lockedPath"], "src/core/");
    assert_eq!(result["lockedFiles"][0]["agentStatus"], "WORKING");
    assert_eq!(result["availableFiles"], json!(["docs/readme.md"]));

    let mine = json!({ "filePaths": ["src/core/lib.rs"], "excludeAgentId": claim.agent_id });
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/locks/check")).set_json(mine),
    )
    .await;
    assert_eq!(body["data"]["hasConflicts"], false);

    for bad in [
        json!({ "filePaths": [] }),
        json!({ "filePaths": ["../outside"] }),
    ] {
        let (status, body) = send(
            &app,
            admin(TestRequest::post().uri("/api/locks/check")).set_json(bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let field = body["error"]["details"]["field"].as_str().unwrap();
        assert!(field.starts_with("filePaths"), "{body}");
    }

    let release = json!({ "filePath": "src/core/", "reason": "stuck runner" });
    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri("/api/locks")).set_json(release.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["message"], "Lock forcibly released");
    assert_eq!(body["data"]["previousHolder"]["taskTitle"], "owner");
    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri("/api/locks")).set_json(release),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(assert_error(&body, "NOT_FOUND"), "Lock not found");

    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/exceptions?type=CONFLICT_DETECTED")),
    )
    .await;
    let recorded = &body["data"]["exceptions"][0];
    assert_eq!(recorded["severity"], "INFO");
    assert!(
        recorded["description"]
            .as_str()
            .unwrap()
            .contains("stuck runner")
    );
}

#[actix_web::test]
async fn paths_past_the_length_or_depth_limit_are_refused_naming_the_limit() {
    let backing = backing().await;
    let app = app(&backing).await;
    let long = format!("src/{}", "a".repeat(4_100));
    let deep = vec!["d"; 65].join("/");
    for (path, limit) in [(&long, "4096 bytes"), (&deep, "64 components")] {
        let (status, body) = send(
            &app,
            admin(TestRequest::post().uri("/api/locks/check"))
                .set_json(json!({ "filePaths": ["ok.rs", path] })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&body, "VALIDATION_ERROR");
        assert!(body.to_string().contains(limit), "{body}");
        let (status, body) = send(
            &app,
            admin(TestRequest::post().uri("/api/tasks"))
                .set_json(json!({ "title": "t", "description": "d", "filesHint": [path] })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.to_string().contains(limit) && body.to_string().contains("filesHint[0]"),
            "{body}"
        );
    }
}
