//! `GET /api/events` through HTTP: live delivery, resumption, filters, slow clients and
//! shutdown.

mod common;

use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service};
use common::{admin, app, app_with_state, assert_error, backing, send};
use orchestrator_core::Clock;
use serde_json::json;

/// Reads the event stream until `done` says the text so far is enough, or it ends.
async fn read_until<B: MessageBody>(
    body: &mut Pin<Box<B>>,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    let mut text = String::new();
    loop {
        let next = tokio::time::timeout(
            Duration::from_secs(10),
            futures::future::poll_fn(|cx| body.as_mut().poll_next(cx)),
        )
        .await
        .expect("the stream went quiet");
        match next {
            Some(Ok(chunk)) => {
                text.push_str(&String::from_utf8_lossy(&chunk));
                if done(&text) {
                    return (text, false);
                }
            }
            Some(Err(_)) => panic!("stream error"),
            None => return (text, true),
        }
    }
}

#[actix_web::test]
async fn new_events_arrive_live_and_streams_resume() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({ "title": "before", "description": "d" })),
    )
    .await;
    let before = body["data"]["id"].as_str().unwrap().to_owned();

    let response = call_service(
        &app,
        admin(TestRequest::get().uri("/api/events")).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut stream = Box::pin(response.into_body());
    let (text, _) = read_until(&mut stream, |t| t.contains(": connected")).await;
    assert!(!text.contains(&before), "only what happens from now on");

    let (_, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({ "title": "live", "description": "d" })),
    )
    .await;
    let live = body["data"]["id"].as_str().unwrap().to_owned();
    let (text, _) = read_until(&mut stream, |t| t.contains("event: task.created")).await;
    assert!(text.contains(&live), "{text}");
    let id_line = text
        .lines()
        .find(|l| l.starts_with("id: "))
        .expect("an id line");
    let seq: i64 = id_line[4..].trim().parse().unwrap();

    let resumed =
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "0"));
    let response = call_service(&app, resumed.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    let (text, _) = read_until(&mut stream, |t| t.contains(&live)).await;
    assert!(
        text.contains(&before),
        "resuming from 0 replays the log: {text}"
    );

    let after = admin(TestRequest::get().uri(&format!("/api/events?after={seq}&taskId={before}")));
    let response = call_service(&app, after.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{before}")))
            .set_json(json!({ "title": "renamed" })),
    )
    .await;
    send(
        &app,
        admin(TestRequest::patch().uri(&format!("/api/tasks/{live}")))
            .set_json(json!({ "title": "renamed too" })),
    )
    .await;
    let (text, _) = read_until(&mut stream, |t| t.contains("event: task.")).await;
    assert!(
        text.contains(&before) && !text.contains(&live),
        "filtered to one task: {text}"
    );

    let (status, body) = send(
        &app,
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "abc")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "VALIDATION_ERROR");
    let (status, _) = send(&app, TestRequest::get().uri("/api/events")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_slow_client_is_told_to_resync_and_dropped() {
    let backing = backing().await;
    let app = app(&backing).await;
    for chunk in 0..7 {
        let tasks: Vec<_> = (0..50)
            .map(|i| json!({ "title": format!("t{chunk}-{i}"), "description": "d" }))
            .collect();
        let (status, _) = send(
            &app,
            admin(TestRequest::post().uri("/api/tasks/batch")).set_json(json!({ "tasks": tasks })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let resumed =
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "0"));
    let response = call_service(&app, resumed.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    // Not reading lets the 350 events overflow the client's buffer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (text, ended) = read_until(&mut stream, |_| false).await;
    assert!(ended, "the slow client is disconnected");
    assert!(
        text.contains("event: resync"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.matches("event: task.created").count() < 350);
}

#[actix_web::test]
async fn streams_end_with_a_shutdown_event() {
    let backing = backing().await;
    let (app, state) = app_with_state(&backing).await;
    let response = call_service(
        &app,
        admin(TestRequest::get().uri("/api/events")).to_request(),
    )
    .await;
    let mut stream = Box::pin(response.into_body());
    read_until(&mut stream, |t| t.contains(": connected")).await;
    state.begin_shutdown();
    let (text, ended) = read_until(&mut stream, |_| false).await;
    assert!(ended);
    assert!(text.contains("event: shutdown"), "{text}");
}

/// Creates `count` tasks (one event each); returns the ids.
async fn create_tasks<S, B>(app: &S, count: usize) -> Vec<String>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: MessageBody,
{
    let mut ids = Vec::new();
    for i in 0..count {
        let (_, body) = send(
            app,
            admin(TestRequest::post().uri("/api/tasks"))
                .set_json(json!({ "title": format!("t{i}"), "description": "d" })),
        )
        .await;
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[actix_web::test]
async fn many_streams_are_fed_from_one_reading_of_each_commit() {
    let backing = backing().await;
    let (app, state) = app_with_state(&backing).await;
    let mut streams = Vec::new();
    for _ in 0..40 {
        let response = call_service(
            &app,
            admin(TestRequest::get().uri("/api/events")).to_request(),
        )
        .await;
        let mut stream = Box::pin(response.into_body());
        read_until(&mut stream, |t| t.contains(": connected")).await;
        streams.push(stream);
    }
    let ids = create_tasks(&app, 3).await;
    for stream in &mut streams {
        let (text, _) = read_until(stream, |t| t.contains(&ids[2])).await;
        let order: Vec<_> = ids.iter().map(|id| text.find(id.as_str())).collect();
        assert!(
            order.windows(2).all(|w| w[0].is_some() && w[0] < w[1]),
            "every event once and in order: {text}"
        );
    }
    assert_eq!(state.events.streams(), 40);
    let (_, health) = send(
        &app,
        admin(TestRequest::get().uri("/api/health?detailed=true")),
    )
    .await;
    assert_eq!(health["stats"]["eventStreams"], 40);
    drop(streams);
    // A dropped body ends its stream at once, not at the next keep-alive.
    for _ in 0..100 {
        if state.events.streams() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.events.streams(), 0);
}

#[actix_web::test]
async fn a_client_resuming_past_the_retention_window_is_told_to_resync() {
    let backing = backing().await;
    let app = app(&backing).await;
    let ids = create_tasks(&app, 5).await;
    let policy = orchestrator_core::coordination::RetentionPolicy {
        event_max_count: 2,
        ..Default::default()
    };
    let pruned = backing
        .store
        .prune(&policy, orchestrator_core::SystemClock.now())
        .await
        .unwrap();
    assert_eq!(pruned.events_deleted, 3);
    let resumed =
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "1"));
    let response = call_service(&app, resumed.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    let (text, _) = read_until(&mut stream, |t| t.contains(&ids[4])).await;
    let resync = text.find("event: resync").expect("a resync event");
    assert!(text.contains("id: 3\nevent: resync"), "{text}");
    assert!(text.contains("retention"), "{text}");
    assert!(resync < text.find(&ids[3]).unwrap(), "{text}");
    assert!(!text.contains(&ids[2]), "{text}");

    // A client that saw every event but the newest gets no resync.
    let resumed =
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "4"));
    let response = call_service(&app, resumed.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    let (text, _) = read_until(&mut stream, |t| t.contains(&ids[4])).await;
    assert!(!text.contains("resync"), "{text}");
}

#[actix_web::test]
async fn a_client_ahead_of_the_log_is_told_to_resync() {
    let backing = backing().await;
    let app = app(&backing).await;
    create_tasks(&app, 2).await;
    let resumed =
        admin(TestRequest::get().uri("/api/events")).insert_header(("Last-Event-ID", "900"));
    let response = call_service(&app, resumed.to_request()).await;
    let mut stream = Box::pin(response.into_body());
    let (text, _) = read_until(&mut stream, |t| t.contains("event: resync")).await;
    assert!(text.contains("id: 2\nevent: resync"), "{text}");
    assert!(text.contains("newer than the newest"), "{text}");
    let ids = create_tasks(&app, 1).await;
    let (text, _) = read_until(&mut stream, |t| t.contains(&ids[0])).await;
    assert!(
        text.contains("id: 3\n"),
        "goes on from the newest event: {text}"
    );
}
