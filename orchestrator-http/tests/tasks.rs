//! `/api/tasks` through HTTP: shapes, status codes, validation and auth.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{admin, app, assert_error, backing, send};
use serde_json::{Value, json};

fn new_task(title: &str) -> Value {
    json!({ "title": title, "description": "do it", "filesHint": ["src\\lib.rs"] })
}

#[actix_web::test]
async fn a_task_is_created_listed_shown_edited_and_deleted() {
    let backing = backing().await;
    let app = app(&backing).await;

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(new_task("first")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = &body["data"];
    assert_eq!(task["status"], "QUEUED");
    assert_eq!(task["priority"], 2);
    assert_eq!(task["riskLevel"], "MEDIUM");
    assert_eq!(task["filesHint"], json!(["src/lib.rs"]));
    assert!(task.get("leaseToken").is_none());
    let id = task["id"].as_str().unwrap().to_owned();

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/tasks?limit=10"))).await;
    assert_eq!(status, StatusCode::OK);
    let list = &body["data"];
    assert_eq!(list["tasks"][0]["id"], id.as_str());
    assert_eq!(list["tasks"][0]["assignedAgent"], Value::Null);
    assert_eq!(
        list["tasks"][0]["counts"],
        json!({ "verificationResults": 0, "logs": 0, "exceptions": 0 })
    );
    assert_eq!(
        list["pagination"],
        json!({ "limit": 10, "offset": 0, "totalCount": 1, "hasMore": false })
    );

    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let detail = &body["data"];
    assert_eq!(detail["title"], "first");
    for list in [
        "verificationResults",
        "logs",
        "exceptions",
        "fileLocks",
        "lockedFilesHint",
    ] {
        assert_eq!(detail[list], json!([]), "{list}");
    }
    assert_eq!(detail["hasFileConflicts"], false);

    let patch = json!({ "title": "renamed", "priority": 0 });
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{id}"))).set_json(patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["title"], "renamed");
    assert_eq!(body["data"]["priority"], 0);

    let cancel = json!({ "status": "CANCELLED" });
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{id}"))).set_json(cancel),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "CANCELLED");

    let complete = json!({ "status": "COMPLETED" });
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{id}"))).set_json(complete),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = assert_error(&body, "CONFLICT");
    assert!(message.contains("from CANCELLED to COMPLETED"), "{message}");

    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri(&format!("/api/tasks/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({ "message": "Task deleted successfully", "id": id })
    );
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{id}"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(assert_error(&body, "NOT_FOUND"), "Task not found");
}

#[actix_web::test]
async fn lists_honour_sorting_search_and_filters() {
    let backing = backing().await;
    let app = app(&backing).await;
    for (title, priority) in [("alpha", 3), ("beta", 1), ("gamma", 2)] {
        let body = json!({ "title": title, "description": "d", "priority": priority });
        let (status, _) = send(
            &app,
            admin(TestRequest::post().uri("/api/tasks")).set_json(body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let titles = |body: &Value| -> Vec<String> {
        body["data"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(titles(&body), ["beta", "gamma", "alpha"]);
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?sortBy=title&sortOrder=desc")),
    )
    .await;
    assert_eq!(titles(&body), ["gamma", "beta", "alpha"]);
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks?search=AMM"))).await;
    assert_eq!(titles(&body), ["gamma"]);
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?priority=3&limit=1")),
    )
    .await;
    assert_eq!(titles(&body), ["alpha"]);
    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?limit=1&offset=1")),
    )
    .await;
    assert_eq!(body["data"]["pagination"]["hasMore"], true);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("priority=9", "priority"),
        ("status=DONE", "status"),
        ("sortBy=colour", "sortBy"),
        ("sortOrder=up", "sortOrder"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = send(
            &app,
            admin(TestRequest::get().uri(&format!("/api/tasks?{query}"))),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_error(&body, "VALIDATION_ERROR");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
}

#[actix_web::test]
async fn batches_are_all_or_nothing_within_limits() {
    let backing = backing().await;
    let app = app(&backing).await;
    let three = json!({ "tasks": [new_task("a"), new_task("b"), new_task("c")] });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks/batch")).set_json(three),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["count"], 3);
    assert_eq!(body["data"]["message"], "Successfully created 3 tasks");

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks/batch")).set_json(json!({ "tasks": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "VALIDATION_ERROR").contains("At least one task is required"));
    let many: Vec<Value> = (0..51).map(|i| new_task(&format!("t{i}"))).collect();
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks/batch")).set_json(json!({ "tasks": many })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "VALIDATION_ERROR").contains("Maximum 50 tasks per batch"));

    let one_bad = json!({ "tasks": [new_task("ok"), { "title": "", "description": "d" }] });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks/batch")).set_json(one_bad),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "VALIDATION_ERROR");
    assert_eq!(body["error"]["details"]["field"], "tasks[1].title");
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(
        body["data"]["pagination"]["totalCount"], 3,
        "the bad batch wrote nothing"
    );
}

#[actix_web::test]
async fn bad_input_is_a_clear_error_in_the_envelope() {
    let backing = backing().await;
    let app = app(&backing).await;

    let malformed = admin(TestRequest::post().uri("/api/tasks"))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{\"title\": ");
    let (status, body) = send(&app, malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "BAD_REQUEST").contains("Malformed JSON"));

    let wrong_type = json!({ "title": "t", "description": "d", "priority": "high" });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(wrong_type),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "VALIDATION_ERROR").starts_with("priority:"));

    let missing = json!({ "description": "d" });
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(missing),
    )
    .await;
    assert_eq!(
        assert_error(&body, "VALIDATION_ERROR"),
        "title: is required"
    );

    let out_of_range = json!({ "title": "t", "description": "d", "priority": 7 });
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(out_of_range),
    )
    .await;
    assert_error(&body, "VALIDATION_ERROR");
    assert_eq!(body["error"]["details"]["field"], "priority");

    let escaping = json!({ "title": "t", "description": "d", "filesHint": ["../etc/passwd"] });
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(escaping),
    )
    .await;
    assert_error(&body, "VALIDATION_ERROR");

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/tasks/not-a-uuid"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        assert_error(&body, "VALIDATION_ERROR"),
        "Invalid task ID format"
    );

    let huge = json!({ "title": "t", "description": "x".repeat(1024 * 1024 + 1) });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "PAYLOAD_TOO_LARGE");

    let (status, body) = send(&app, admin(TestRequest::put().uri("/api/tasks"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "METHOD_NOT_ALLOWED");

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/nothing/here"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        assert_error(&body, "NOT_FOUND"),
        "Cannot GET /api/nothing/here"
    );
    assert!(body["error"]["details"]["availableEndpoints"].is_array());
}

#[actix_web::test]
async fn the_admin_token_is_required_and_request_ids_travel() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (status, body) = send(&app, TestRequest::get().uri("/api/tasks")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(assert_error(&body, "UNAUTHORIZED").contains("admin token"));

    let wrong = TestRequest::get()
        .uri("/api/tasks")
        .insert_header(("Authorization", "Bearer nope"))
        .insert_header(("X-Request-Id", "trace-42"));
    let (status, body) = send(&app, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["requestId"], "trace-42");

    let response = actix_web::test::call_service(
        &app,
        admin(TestRequest::get().uri("/api/tasks"))
            .insert_header(("X-Request-Id", "abc-1"))
            .to_request(),
    )
    .await;
    assert_eq!(response.headers().get("x-request-id").unwrap(), "abc-1");
    assert_eq!(
        response.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(
        response.headers().get("content-security-policy").unwrap(),
        "default-src 'none'; frame-ancestors 'none'"
    );
}

#[actix_web::test]
async fn run_and_retry_requeue_for_runners() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(new_task("t")),
    )
    .await;
    let id = body["data"]["id"].as_str().unwrap().to_owned();

    let run = admin(TestRequest::post().uri(&format!("/api/tasks/{id}/run")))
        .set_json(json!({ "workingDir": "/srv/repo" }));
    let (status, body) = send(&app, run).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "queued");
    assert_eq!(body["data"]["agentId"], Value::Null);
    assert_eq!(body["data"]["task"]["status"], "QUEUED");

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri(&format!("/api/tasks/{id}/retry"))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(assert_error(&body, "CONFLICT").contains("Only FAILED tasks can be retried"));

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri(&format!("/api/tasks/{id}/auto-retry"))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "CONFLICT");

    let typo = admin(TestRequest::post().uri(&format!("/api/tasks/{id}/run")))
        .set_json(json!({ "workdir": "x" }));
    let (status, body) = send(&app, typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn repeated_lists_follow_every_commit() {
    use orchestrator_core::model::{LogType, NewAgentLog};
    use orchestrator_core::{Clock, SystemClock};

    let backing = backing().await;
    let app = app(&backing).await;
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(body["data"]["pagination"]["totalCount"], 0);
    let (_, again) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(again, body, "nothing committed: the same answer");

    let claim = common::claimed_task(&backing.store, "busy", &[]).await;
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(body["data"]["pagination"]["totalCount"], 1);
    assert_eq!(body["data"]["tasks"][0]["counts"]["logs"], 0);
    let log = NewAgentLog {
        agent_id: claim.agent_id,
        task_id: Some(claim.task.id),
        log_type: LogType::Info,
        content: "working".into(),
        metadata: None,
    };
    backing
        .store
        .append_logs(vec![log], SystemClock.now())
        .await
        .unwrap();
    let (_, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(
        body["data"]["tasks"][0]["counts"]["logs"], 1,
        "a log append is a commit too"
    );
    let (_, stats) = send(&app, admin(TestRequest::get().uri("/api/dashboard/stats"))).await;
    assert_eq!(stats["data"]["tasks"]["assigned"], 1);
}

#[actix_web::test]
async fn a_waiting_task_says_why_and_can_be_edited_or_released() {
    let backing = backing().await;
    let app = app(&backing).await;
    let create = |body: Value| admin(TestRequest::post().uri("/api/tasks")).set_json(body);
    let (_, first) = send(&app, create(new_task("first"))).await;
    let first = first["data"]["id"].as_str().unwrap().to_owned();
    let (status, later) = send(
        &app,
        create(json!({
            "title": "later",
            "description": "after first",
            "dependsOn": [first],
            "notBefore": "2999-01-01T00:00:00.000Z",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    let later = later["data"]["id"].as_str().unwrap().to_owned();

    let (_, detail) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{later}"))),
    )
    .await;
    let waiting = &detail["data"]["waiting"];
    assert_eq!(waiting["dependencies"][0]["id"], first.as_str(), "{detail}");
    assert_eq!(waiting["dependencies"][0]["title"], "first");
    assert_eq!(waiting["dependencies"][0]["status"], "QUEUED");
    assert_eq!(waiting["notBefore"], "2999-01-01T00:00:00.000Z");
    let (_, list) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?status=QUEUED")),
    )
    .await;
    let listed = list["data"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == later.as_str())
        .unwrap();
    assert_eq!(listed["waiting"], *waiting, "{list}");
    let first_listed = list["data"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == first.as_str())
        .unwrap();
    assert_eq!(first_listed["waiting"], Value::Null);

    // Released: it waits for nothing.
    let patch = |body: Value| {
        admin(TestRequest::patch().uri(&format!("/api/tasks/{later}"))).set_json(body)
    };
    let (status, released) = send(&app, patch(json!({"dependsOn": [], "notBefore": null}))).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["data"]["dependsOn"], json!([]));
    assert_eq!(released["data"]["notBefore"], Value::Null);
    let (_, detail) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/tasks/{later}"))),
    )
    .await;
    assert_eq!(detail["data"]["waiting"], Value::Null, "{detail}");

    // Waiting on itself through another is refused, naming the field.
    let (status, _) = send(&app, patch(json!({"dependsOn": [first]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{first}")))
            .set_json(json!({"dependsOn": [later]})),
    )
    .await;
    assert_error(&body, "CONFLICT");
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wait for itself"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_used_idempotency_key_with_another_body_and_a_repeated_parameter_are_refused() {
    let backing = backing().await;
    let app = app(&backing).await;
    let create = |body: Value| admin(TestRequest::post().uri("/api/tasks")).set_json(body);
    let mut body = new_task("once");
    body["idempotencyKey"] = json!("client-7");
    let (status, first) = send(&app, create(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = send(&app, create(body.clone())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same body returns the task it made: {again}"
    );
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    body["title"] = json!("twice");
    let (status, refused) = send(&app, create(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = assert_error(&refused, "CONFLICT");
    assert!(message.contains("different body"), "{message}");

    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?status=QUEUED&status=FAILED")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "VALIDATION_ERROR");
    assert!(
        message.contains("status") && message.contains("more than once"),
        "{message}"
    );

    // A refused value is named once, in the core's words.
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?status=NOPE")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "VALIDATION_ERROR");
    assert_eq!(
        message,
        "status: \"NOPE\" is not one of QUEUED, ASSIGNED, IN_PROGRESS, VERIFYING, COMPLETED, \
         FAILED, CANCELLED"
    );
}

#[actix_web::test]
async fn lists_carry_the_start_of_long_descriptions_unless_asked() {
    let backing = backing().await;
    let app = app(&backing).await;
    let long = "ü".repeat(2_000);
    let (status, _) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({"title": "long", "description": long})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    let listed = &list["data"]["tasks"][0];
    assert_eq!(listed["description"].as_str().unwrap().chars().count(), 500);
    assert_eq!(listed["descriptionTruncated"], true);
    let (_, whole) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?fields=description")),
    )
    .await;
    assert_eq!(whole["data"]["tasks"][0]["description"], long.as_str());
    assert_eq!(whole["data"]["tasks"][0]["descriptionTruncated"], false);
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/tasks?fields=title")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn a_retry_carries_a_note_for_the_next_attempts() {
    use orchestrator_core::change::{LeaseRef, TaskAction};
    use orchestrator_core::model::{NewAgent, Usage};
    use orchestrator_core::{Clock, SystemClock};

    let backing = backing().await;
    let app = app(&backing).await;
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(new_task("flaky")),
    )
    .await;
    let id: orchestrator_core::ids::TaskId = body["data"]["id"].as_str().unwrap().parse().unwrap();
    let store = &backing.store;
    let now = SystemClock.now();
    let agent = store
        .create_agent(
            NewAgent {
                name: Some("a".into()),
                runner_session_id: None,
                slot: None,
                is_local_runner: false,
            },
            now,
        )
        .await
        .unwrap();
    let assigned = store
        .apply_task_action(
            id,
            TaskAction::Assign {
                agent_id: agent.id,
                runner_session_id: None,
                lease_ttl: std::time::Duration::from_secs(60),
            },
            None,
            now,
        )
        .await
        .unwrap();
    let lease = LeaseRef {
        task_id: id,
        attempt: assigned.attempt,
        lease_token: assigned.lease_token.unwrap(),
    };
    store
        .apply_task_action(
            id,
            TaskAction::Fail {
                reason: "broken".into(),
                usage: Usage::default(),
            },
            Some(lease),
            now,
        )
        .await
        .unwrap();

    let too_long = admin(TestRequest::post().uri(&format!("/api/tasks/{id}/retry")))
        .set_json(json!({ "note": "x".repeat(5_001) }));
    let (status, body) = send(&app, too_long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "VALIDATION_ERROR").starts_with("note:"));

    let retry = admin(TestRequest::post().uri(&format!("/api/tasks/{id}/retry")))
        .set_json(json!({ "note": "Run the migrations first." }));
    let (status, body) = send(&app, retry).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["task"]["status"], "QUEUED");
    assert_eq!(
        body["data"]["task"]["retryNote"],
        "Run the migrations first."
    );
}
