//! Request policies through HTTP: rate limits and cross-origin access.

mod common;

use std::num::NonZeroU32;

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service};
use common::{admin, assert_error, backing, bearer, build, connect_runner, send};
use orchestrator_http::rate_limit::RateLimitConfig;

fn budget(per_minute: u32, runner_per_minute: u32) -> Option<RateLimitConfig> {
    Some(RateLimitConfig {
        per_minute: NonZeroU32::new(per_minute).unwrap(),
        runner_per_minute: NonZeroU32::new(runner_per_minute).unwrap(),
        trust_proxy: false,
    })
}

#[actix_web::test]
async fn a_spent_budget_is_a_429_with_the_headers() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state.with_rate_limits(budget(4, 50))).await;
    // Connecting a runner spends two admin-side requests of the budget of 4... from
    // different clients: minting uses the admin token, the exchange has no token.
    let runner = connect_runner(&app, "r").await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = call_service(
            &app,
            admin(TestRequest::get().uri("/api/tasks")).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get("x-ratelimit-limit").unwrap(), "4");
        let reset: u64 = response
            .headers()
            .get("x-ratelimit-reset")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset > 1_700_000_000, "an epoch second: {reset}");
        remaining.push(
            response
                .headers()
                .get("x-ratelimit-remaining")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);

    let response = call_service(
        &app,
        admin(TestRequest::get().uri("/api/tasks")).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers().get("x-ratelimit-remaining").unwrap(),
        "0"
    );
    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(assert_error(&body, "RATE_LIMITED").contains("try again"));

    let (status, _) = send(&app, TestRequest::get().uri("/api/health")).await;
    assert_eq!(status, StatusCode::OK, "health probes are not limited");
    let (status, body) = send(
        &app,
        bearer(TestRequest::get().uri("/api/runner/status"), &runner),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the runner has its own budget: {body}"
    );
}

#[actix_web::test]
async fn rate_limiting_can_be_turned_off() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state.with_rate_limits(None)).await;
    for _ in 0..150 {
        let response = call_service(
            &app,
            admin(TestRequest::get().uri("/api/health?detailed=true")).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("x-ratelimit-limit").is_none());
    }
}

#[actix_web::test]
async fn other_origins_are_kept_out_unless_allowed() {
    let backing = backing().await;
    let preflight = |origin: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/tasks")
            .insert_header(("Origin", origin.to_owned()))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header((
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ))
    };
    let (app, _) = build(&backing, |state| state).await;
    let response = call_service(&app, preflight("https://elsewhere.example").to_request()).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let (app, _) = build(&backing, |mut state| {
        state.cors_origins = vec!["https://app.example.com".into()];
        state
    })
    .await;
    let response = call_service(&app, preflight("https://app.example.com").to_request()).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    let response = call_service(&app, preflight("https://elsewhere.example").to_request()).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let get = admin(TestRequest::get().uri("/api/tasks"))
        .insert_header(("Origin", "https://app.example.com"));
    let response = call_service(&app, get.to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    assert!(orchestrator_http::check_cors_origin("https://app.example.com:8443").is_ok());
    assert!(orchestrator_http::check_cors_origin("https://app.example.com/path").is_err());
    assert!(orchestrator_http::check_cors_origin("app.example.com").is_err());
}

#[actix_web::test]
async fn the_browser_session_cannot_be_used_from_another_origin() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state).await;
    let cookie = format!(
        "{}={}",
        orchestrator_http::auth::ADMIN_COOKIE,
        common::ADMIN_TOKEN
    );
    let body = r#"{"title":"planted","description":"from another origin"}"#;
    for (origin, site) in [
        ("http://localhost:8080", "same-site"),
        ("https://evil.example", "cross-site"),
    ] {
        let request = TestRequest::post()
            .uri("/api/tasks")
            .insert_header(("Host", "localhost:3000"))
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("Origin", origin))
            .insert_header(("Sec-Fetch-Site", site))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload(body);
        let response = call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    let (_, listed) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(
        listed["data"]["pagination"]["totalCount"], 0,
        "nothing was created: {listed}"
    );

    // The server's own pages may: same origin, a JSON body.
    let request = TestRequest::post()
        .uri("/api/tasks")
        .insert_header(("Host", "localhost:3000"))
        .insert_header(("Cookie", cookie))
        .insert_header(("Origin", "http://localhost:3000"))
        .insert_header(("Sec-Fetch-Site", "same-origin"))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(body);
    let response = call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
