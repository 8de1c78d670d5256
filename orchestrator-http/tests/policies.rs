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
        trusted_proxies: 0,
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
    // The refusal is the error envelope, with its request id, like any other error.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = actix_web::test::read_body_json(response).await;
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
    assert!(body["error"]["requestId"].is_string(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Origin is not allowed"),
        "{body}"
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

/// A made-up token never buys a budget of its own: 200 requests with 200 random tokens
/// from one address cost one lookup (the first, a 401); the rest are refused before any.
/// The admin token still gets through, and so does the login page's limit.
#[actix_web::test]
async fn invalid_tokens_are_limited_by_address_with_one_lookup_per_window() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state.with_rate_limits(budget(100, 1000))).await;
    for (route, runner) in [("/api/tasks", false), ("/api/runner/status", true)] {
        let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
        for _ in 0..200 {
            let token = orchestrator_http::auth::new_secret();
            let request = bearer(TestRequest::get().uri(route), &token);
            let response = call_service(&app, request.to_request()).await;
            *statuses.entry(response.status().as_u16()).or_default() += 1;
        }
        // The runner route saw the address refused already by the admin route's round.
        let lookups = if runner { 0 } else { 1 };
        assert_eq!(
            statuses,
            [(401, lookups), (429, 200 - lookups)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            "{route}"
        );
    }
    let (status, body) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin token is its own client: {body}"
    );
    let response = call_service(
        &app,
        TestRequest::get().uri("/login?token=guess").to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Behind a proxy, the client is the entry its proxy added at the right end of
/// `X-Forwarded-For`: what a client writes to the left of it does not make it another.
#[actix_web::test]
async fn behind_trusted_proxies_the_client_is_read_from_the_right() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| {
        state.with_rate_limits(Some(RateLimitConfig {
            trusted_proxies: 1,
            ..budget(2, 50).unwrap()
        }))
    })
    .await;
    let from = |spoofed: &str, client: &str| {
        TestRequest::get()
            .uri("/api/dashboard/stats")
            .peer_addr("10.9.9.9:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", format!("{spoofed}, {client}")))
    };
    let mut statuses = Vec::new();
    for spoofed in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let response = call_service(&app, from(spoofed, "192.0.2.7").to_request()).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let other = call_service(&app, from("1.1.1.1", "192.0.2.8").to_request()).await;
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// The login page is limited too: a wrong token marks the address, and guessing on is
/// refused before any comparison.
#[actix_web::test]
async fn guessing_the_login_token_is_limited() {
    let backing = backing().await;
    let (app, _) = build(&backing, |state| state.with_rate_limits(budget(100, 1000))).await;
    let mut statuses = Vec::new();
    for guess in ["a", "b", "c"] {
        let request = TestRequest::get().uri(&format!("/login?token={guess}"));
        statuses.push(
            call_service(&app, request.to_request())
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 429, 429]);
}

/// A simple cross-origin POST (no preflight: a form's content type, no custom header) is
/// not a way in: from an origin that is not allowed it is answered without the CORS
/// header that would let the page read the answer, and with the browser session it
/// creates nothing, whether or not other origins are allowed.
#[actix_web::test]
async fn a_simple_cross_origin_post_changes_nothing() {
    let backing = backing().await;
    let cookie = format!(
        "{}={}",
        orchestrator_http::auth::ADMIN_COOKIE,
        common::ADMIN_TOKEN
    );
    for allowed in [vec![], vec!["https://app.example.com".to_owned()]] {
        let (app, _) = build(&backing, |mut state| {
            state.cors_origins = allowed.clone();
            state
        })
        .await;
        for (origin, with_cookie) in [
            ("https://evil.example", true),
            ("https://evil.example", false),
            ("https://app.example.com", true),
        ] {
            let mut request = TestRequest::post()
                .uri("/api/tasks")
                .insert_header(("Origin", origin))
                .insert_header(("Content-Type", "text/plain"))
                .set_payload(r#"{"title":"planted","description":"by a simple request"}"#);
            if with_cookie {
                request = request.insert_header(("Cookie", cookie.clone()));
            }
            let response = call_service(&app, request.to_request()).await;
            assert!(
                response.status().is_client_error(),
                "{origin} (cookie: {with_cookie}, allowed: {allowed:?}): {}",
                response.status()
            );
            let reflected = response
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if origin == "https://evil.example" {
                assert_eq!(reflected, None, "allowed: {allowed:?}");
            }
        }
        let (_, listed) = send(&app, admin(TestRequest::get().uri("/api/tasks"))).await;
        assert_eq!(listed["data"]["pagination"]["totalCount"], 0, "{listed}");
    }
}
