//! `/api/agents` through HTTP.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{admin, app, assert_error, backing, claimed_task, send};
use orchestrator_core::Clock;
use orchestrator_core::SystemClock;
use orchestrator_core::model::{LogType, NewAgent, NewAgentLog};
use orchestrator_core::store::StoreExt;
use serde_json::{Value, json};

#[actix_web::test]
async fn agents_are_listed_shown_and_controlled() {
    let backing = backing().await;
    let app = app(&backing).await;
    let claim = claimed_task(&backing.store, "refactor", &["src/a.rs"]).await;
    let agent = claim.agent_id;
    let logs = (0..3)
        .map(|i| NewAgentLog {
            agent_id: agent,
            task_id: Some(claim.task.id),
            log_type: LogType::Info,
            content: format!("step {i}"),
            metadata: None,
        })
        .collect();
    backing
        .store
        .append_logs(logs, SystemClock.now())
        .await
        .unwrap();

    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/agents"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["id"], agent.to_string());
    assert_eq!(item["status"], "WORKING");
    assert_eq!(item["currentTask"]["title"], "refactor");
    assert_eq!(item["logCount"], 3);
    assert_eq!(item["fileLockCount"], 1);

    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/agents/{agent}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let detail = &body["data"];
    assert_eq!(detail["currentTask"]["id"], claim.task.id.to_string());
    assert_eq!(detail["logs"].as_array().unwrap().len(), 3);
    assert_eq!(detail["fileLocks"][0]["filePath"], "src/a.rs");
    assert_eq!(detail["_count"], json!({ "logs": 3, "exceptions": 0 }));
    assert_eq!(detail["statistics"]["isRunning"], true);

    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/agents/{agent}")))
            .set_json(json!({ "action": "resume" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(assert_error(&body, "CONFLICT"), "Agent is not paused");

    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/agents/{agent}")))
            .set_json(json!({ "action": "pause" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "PAUSED");
    let (_, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/agents/{agent}")))
            .set_json(json!({ "action": "resume" })),
    )
    .await;
    assert_eq!(body["data"]["status"], "WORKING");

    let (status, body) = send(
        &app,
        admin(TestRequest::delete().uri(&format!("/api/agents/{agent}"))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(assert_error(&body, "CONFLICT").contains("stop it first"));

    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/agents/{agent}")))
            .set_json(json!({ "action": "stop" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = backing.store.get_task(claim.task.id).await.unwrap();
    assert!(
        task.cancel_requested,
        "the runner is told to stop at its next heartbeat"
    );

    let (status, body) = send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/agents/{agent}")))
            .set_json(json!({ "action": "dance" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "VALIDATION_ERROR").starts_with("action:"));
}

#[actix_web::test]
async fn agents_are_searched_and_sorted_through_the_query() {
    let backing = backing().await;
    let app = app(&backing).await;
    let claim = claimed_task(&backing.store, "Port the parser", &["src/a.rs"]).await;
    let idle = backing
        .store
        .create_agent(
            NewAgent {
                name: Some("Zed reviewer".into()),
                ..NewAgent::default()
            },
            SystemClock.now(),
        )
        .await
        .unwrap();
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|agent| agent["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let (status, body) = send(app, admin(TestRequest::get().uri(query))).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };

    let found = list("/api/agents?search=PARSER").await;
    assert_eq!(
        ids(&found),
        [claim.agent_id.to_string()],
        "by the task's title"
    );
    let found = list("/api/agents?search=zed").await;
    assert_eq!(ids(&found), [idle.id.to_string()]);

    let newest_first = ids(&list("/api/agents").await);
    assert_eq!(
        newest_first,
        [idle.id.to_string(), claim.agent_id.to_string()]
    );
    let by_status = ids(&list("/api/agents?sortBy=status").await);
    assert_eq!(
        by_status,
        [idle.id.to_string(), claim.agent_id.to_string()],
        "IDLE before WORKING: ascending unless asked otherwise"
    );
    let by_status_desc = ids(&list("/api/agents?sortBy=status&sortOrder=desc").await);
    assert_eq!(
        by_status_desc,
        [claim.agent_id.to_string(), idle.id.to_string()]
    );

    for (query, field) in [
        ("/api/agents?sortBy=height", "sortBy"),
        ("/api/agents?sortOrder=up", "sortOrder"),
    ] {
        let (status, body) = send(&app, admin(TestRequest::get().uri(query))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            assert_error(&body, "VALIDATION_ERROR").starts_with(field),
            "{body}"
        );
    }
    let long = format!("/api/agents?search={}", "x".repeat(201));
    let (status, body) = send(&app, admin(TestRequest::get().uri(&long))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        assert_error(&body, "VALIDATION_ERROR").starts_with("search"),
        "{body}"
    );
}

#[actix_web::test]
async fn agent_logs_page_with_cursors_and_filters() {
    let backing = backing().await;
    let app = app(&backing).await;
    let claim = claimed_task(&backing.store, "chatty", &[]).await;
    let agent = claim.agent_id;
    let now = SystemClock.now();
    let logs = (0..5)
        .map(|i| NewAgentLog {
            agent_id: agent,
            task_id: Some(claim.task.id),
            log_type: if i == 0 {
                LogType::Error
            } else {
                LogType::Info
            },
            content: format!("line {i}"),
            metadata: None,
        })
        .collect();
    backing.store.append_logs(logs, now).await.unwrap();

    let mut seen = Vec::new();
    let mut uri = format!("/api/agents/{agent}/logs?limit=2");
    loop {
        let (status, body) = send(&app, admin(TestRequest::get().uri(&uri))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = &body["data"];
        assert_eq!(page["pagination"]["totalCount"], 5);
        for log in page["logs"].as_array().unwrap() {
            assert_eq!(log["task"]["title"], "chatty");
            seen.push(log["id"].as_str().unwrap().to_owned());
        }
        match &page["pagination"]["nextCursor"] {
            Value::String(cursor) => {
                assert_eq!(page["pagination"]["hasMore"], true);
                uri = format!("/api/agents/{agent}/logs?limit=2&before={cursor}");
            }
            _ => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        5,
        "every entry once, though all share one timestamp"
    );

    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/agents/{agent}/logs?type=ERROR"))),
    )
    .await;
    assert_eq!(body["data"]["logs"].as_array().unwrap().len(), 1);

    for (query, field) in [
        ("limit=501", "limit"),
        ("type=LOUD", "type"),
        ("before=yesterday", "before"),
    ] {
        let (status, body) = send(
            &app,
            admin(TestRequest::get().uri(&format!("/api/agents/{agent}/logs?{query}"))),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_error(&body, "VALIDATION_ERROR");
        assert_eq!(body["error"]["details"]["field"], field);
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/agents/{unknown}/logs"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(assert_error(&body, "NOT_FOUND"), "Agent not found");
}

#[actix_web::test]
async fn spawning_an_agent_queues_the_task_for_runners() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({ "title": "t", "description": "d" })),
    )
    .await;
    let task = body["data"]["id"].as_str().unwrap().to_owned();
    let spawn = json!({ "taskId": task, "workingDir": "/srv/repo" });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/agents")).set_json(spawn),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["status"], "queued");
    let bad = json!({ "taskId": "nope" });
    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/agents")).set_json(bad),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "VALIDATION_ERROR").starts_with("taskId:"));
}
