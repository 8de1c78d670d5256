//! Browser pages: the printed login link, the session cookie, logout, and the page
//! security policy.

mod common;

use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, read_body};
use common::{ADMIN_TOKEN, app, backing, send};

#[actix_web::test]
async fn the_login_link_opens_a_browser_session() {
    let backing = backing().await;
    let app = app(&backing).await;
    let response = call_service(
        &app,
        TestRequest::get()
            .uri(&format!("/login?token={ADMIN_TOKEN}"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers().get("location").unwrap(), "/");
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("orchestrator_admin="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let (status, _) = send(
        &app,
        TestRequest::get()
            .uri("/api/tasks")
            .insert_header(("Cookie", session.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the cookie opens the API");
    let landing = call_service(
        &app,
        TestRequest::get()
            .uri("/")
            .insert_header(("Cookie", session.clone()))
            .to_request(),
    )
    .await;
    assert_eq!(landing.status(), StatusCode::OK);
    let policy = landing
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let page = String::from_utf8(read_body(landing).await.to_vec()).unwrap();
    assert!(page.contains("logged in as the administrator"), "{page}");

    let logout = call_service(
        &app,
        TestRequest::post()
            .uri("/logout")
            .insert_header(("Cookie", session))
            .to_request(),
    )
    .await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let cleared = logout
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let wrong = call_service(
        &app,
        TestRequest::get().uri("/login?token=guess").to_request(),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let (status, _) = send(
        &app,
        TestRequest::get()
            .uri("/api/tasks")
            .insert_header(("Cookie", "orchestrator_admin=guess")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
