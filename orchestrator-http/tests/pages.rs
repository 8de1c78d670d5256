//! Dashboard pages: logging in by the printed link or the form (CSRF-checked), the board,
//! logging out, and the page security policy.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, call_service, read_body};
use common::{ADMIN_TOKEN, admin, app, backing, send};
use orchestrator_core::model::NewAgent;
use orchestrator_core::{Clock, SystemClock};
use serde_json::json;

/// The `name=value` of the cookie `name` that `response` sets, if any.
fn set_cookie(response: &ServiceResponse<impl MessageBody>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(ToOwned::to_owned)
}

async fn body_text(response: ServiceResponse<impl MessageBody>) -> String {
    String::from_utf8(read_body(response).await.to_vec()).unwrap()
}

/// The value of the hidden `csrf` field in `page`.
fn csrf_field(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..].split('"').next().unwrap().to_owned()
}

async fn get(
    app: &impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
    uri: &str,
    cookie: Option<&str>,
) -> ServiceResponse<impl MessageBody> {
    let mut request = TestRequest::get().uri(uri);
    if let Some(cookie) = cookie {
        request = request.insert_header(("Cookie", cookie.to_owned()));
    }
    call_service(app, request.to_request()).await
}

#[actix_web::test]
async fn the_login_link_opens_a_browser_session() {
    let backing = backing().await;
    let app = app(&backing).await;
    let link = format!("/login?token={ADMIN_TOKEN}");
    let response = get(&app, &link, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers().get("location").unwrap(), "/");
    let cookie = set_cookie(&response, "orchestrator_admin").expect("a session cookie");
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
    let board = get(&app, "/", Some(&session)).await;
    assert_eq!(board.status(), StatusCode::OK);
    let policy = board
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("default-src 'self'")
            && policy.contains("script-src 'self'")
            && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let page = body_text(board).await;
    assert!(page.contains("<h1>Board</h1>"), "{page}");
    assert!(!page.contains("style="), "no inline style: {page}");

    // Logging out takes the session's own CSRF token.
    let forged = call_service(
        &app,
        TestRequest::post()
            .uri("/logout")
            .insert_header(("Cookie", session.clone()))
            .set_form([("csrf", "forged")])
            .to_request(),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&forged, "orchestrator_admin").is_none());
    let logout = call_service(
        &app,
        TestRequest::post()
            .uri("/logout")
            .insert_header(("Cookie", session))
            .set_form([("csrf", csrf_field(&page))])
            .to_request(),
    )
    .await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(logout.headers().get("location").unwrap(), "/login");
    let cleared = set_cookie(&logout, "orchestrator_admin").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let wrong = get(&app, "/login?token=guess", None).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "orchestrator_admin").is_none());
    let (status, _) = send(
        &app,
        TestRequest::get()
            .uri("/api/tasks")
            .insert_header(("Cookie", "orchestrator_admin=guess")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn the_login_form_takes_the_token_with_its_own_csrf_token() {
    let backing = backing().await;
    let app = app(&backing).await;
    let board = get(&app, "/", None).await;
    assert_eq!(
        board.status(),
        StatusCode::SEE_OTHER,
        "the board asks to log in"
    );
    assert_eq!(board.headers().get("location").unwrap(), "/login");

    let form = get(&app, "/login", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    let form_cookie = set_cookie(&form, "orchestrator_login_csrf").expect("a form cookie");
    let form_cookie = form_cookie.split(';').next().unwrap().to_owned();
    let csrf = csrf_field(&body_text(form).await);
    let post = |token: &str, csrf: &str, cookie: Option<&str>| {
        let mut request = TestRequest::post()
            .uri("/login")
            .set_form([("token", token), ("csrf", csrf)]);
        if let Some(cookie) = cookie {
            request = request.insert_header(("Cookie", cookie.to_owned()));
        }
        request.to_request()
    };

    let without_cookie = call_service(&app, post(ADMIN_TOKEN, &csrf, None)).await;
    assert_eq!(without_cookie.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&without_cookie, "orchestrator_admin").is_none());
    assert!(
        body_text(without_cookie)
            .await
            .contains("The form had expired")
    );

    let wrong_token = call_service(&app, post("guess", &csrf, Some(&form_cookie))).await;
    assert_eq!(wrong_token.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong_token, "orchestrator_admin").is_none());
    assert!(body_text(wrong_token).await.contains("is not this server"));

    let logged_in = call_service(&app, post(ADMIN_TOKEN, &csrf, Some(&form_cookie))).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(logged_in.headers().get("location").unwrap(), "/");
    let session = set_cookie(&logged_in, "orchestrator_admin").expect("a session");
    let session = session.split(';').next().unwrap().to_owned();
    assert_eq!(
        get(&app, "/", Some(&session)).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn the_board_sorts_tasks_into_what_a_person_should_do() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, first) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({"title": "Build the parser", "description": "d", "priority": 0})),
    )
    .await;
    let first_id = first["data"]["id"].as_str().unwrap().to_owned();
    send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(json!({
            "title": "Document the parser <b>",
            "description": "d",
            "dependsOn": [first_id],
        })),
    )
    .await;
    let session = format!("orchestrator_admin={ADMIN_TOKEN}");
    let page = body_text(get(&app, "/", Some(&session)).await).await;
    let queued = &page[page.find("id=\"queued\"").expect("a Queued column")..];
    let queued = &queued[..queued.find("</section>").unwrap()];
    assert!(queued.contains("Build the parser"), "{queued}");
    assert!(
        queued.contains("Waiting for “Build the parser” (QUEUED)"),
        "{queued}"
    );
    assert!(
        queued.contains("Document the parser &#60;b&#62;")
            || queued.contains("Document the parser &lt;b&gt;"),
        "titles are escaped: {queued}"
    );
    assert!(page.contains("Nothing needs you."), "{page}");
}

#[actix_web::test]
async fn the_agents_list_pages_and_says_what_it_left_out() {
    let backing = backing().await;
    let app = app(&backing).await;
    for index in 0..101 {
        backing
            .store
            .create_agent(
                NewAgent {
                    name: Some(format!("slot {index:03}")),
                    ..NewAgent::default()
                },
                SystemClock.now(),
            )
            .await
            .unwrap();
    }
    let session = format!("orchestrator_admin={ADMIN_TOKEN}");
    let first = body_text(get(&app, "/agents?sortBy=name", Some(&session)).await).await;
    assert!(first.contains("101 agent slots."), "{first}");
    assert!(first.contains("slot 000") && first.contains("slot 099"));
    assert!(!first.contains("slot 100"), "a hundred rows a page");
    assert!(
        first.contains("href=\"/agents?sortBy=name&#38;page=2\"")
            || first.contains("href=\"/agents?sortBy=name&amp;page=2\""),
        "{first}"
    );
    assert!(!first.contains("Previous page"));

    let second = body_text(get(&app, "/agents?sortBy=name&page=2", Some(&session)).await).await;
    assert!(
        second.contains("slot 100") && !second.contains("slot 099"),
        "{second}"
    );
    assert!(second.contains("Previous page") && !second.contains("Next page"));

    let beyond = body_text(get(&app, "/agents?page=9", Some(&session)).await).await;
    assert!(beyond.contains("No agent on this page"), "{beyond}");
    let refused = body_text(
        get(
            &app,
            "/agents?page=0&sortBy=height&search=zzz",
            Some(&session),
        )
        .await,
    )
    .await;
    assert!(
        refused.contains("page: \"0\" is not a page number")
            || refused.contains("page: &#34;0&#34; is not a page number")
            || refused.contains("page: &quot;0&quot; is not a page number"),
        "{refused}"
    );
    assert!(refused.contains("sortBy"), "{refused}");
    assert!(refused.contains("No agent matches"), "{refused}");
}

#[actix_web::test]
async fn a_task_page_shows_the_task_and_what_it_waits_for() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, first) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({"title": "Build the parser", "description": "d"})),
    )
    .await;
    let first_id = first["data"]["id"].as_str().unwrap().to_owned();
    let (_, second) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks")).set_json(json!({
            "title": "Document the parser",
            "description": "Line one\n<script>alert(1)</script>",
            "filesHint": ["docs/parser.md"],
            "dependsOn": [first_id],
        })),
    )
    .await;
    let second_id = second["data"]["id"].as_str().unwrap().to_owned();
    let session = format!("orchestrator_admin={ADMIN_TOKEN}");

    let path = format!("/tasks/{second_id}");
    let response = get(&app, &path, Some(&session)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = body_text(response).await;
    assert!(page.contains("<h1>Document the parser</h1>"), "{page}");
    assert!(
        page.contains(&format!(
            "<a href=\"/tasks/{first_id}\">Build the parser</a>"
        )),
        "the dependency links to its page: {page}"
    );
    assert!(page.contains("<code>docs/parser.md</code>"), "{page}");
    assert!(page.contains("No attempt yet."), "{page}");
    assert!(
        !page.contains("<script>alert"),
        "the description is escaped"
    );

    let board = body_text(get(&app, "/", Some(&session)).await).await;
    assert!(
        board.contains(&format!("href=\"/tasks/{second_id}\"")),
        "cards link to their page"
    );

    for missing in [
        "/tasks/not-an-id",
        "/tasks/5a0c3b57-0d4f-4c1e-9a43-0f2b8c1d7e90",
    ] {
        let response = get(&app, missing, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        assert!(body_text(response).await.contains("No task has this id"));
    }
    let anonymous = get(&app, &path, None).await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn live_parts_are_rendered_alone_for_the_script() {
    let backing = backing().await;
    let app = app(&backing).await;
    let (_, created) = send(
        &app,
        admin(TestRequest::post().uri("/api/tasks"))
            .set_json(json!({"title": "Followed live", "description": "d"})),
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let session = format!("orchestrator_admin={ADMIN_TOKEN}");

    let board = body_text(get(&app, "/", Some(&session)).await).await;
    assert!(
        board.contains("data-fragment=\"/fragments/board\"")
            && board.contains("task.status_changed")
            && !board.contains("attempt.lease_renewed"),
        "the board says where its live part comes from and after which events: {board}"
    );
    let part = body_text(get(&app, "/fragments/board", Some(&session)).await).await;
    assert!(part.contains("Followed live"), "{part}");
    assert!(part.contains("class=\"columns\""), "{part}");
    assert!(
        !part.contains("<html") && !part.contains("<h1>"),
        "the part alone: {part}"
    );

    let path = format!("/fragments/tasks/{id}");
    let part = body_text(get(&app, &path, Some(&session)).await).await;
    assert!(
        part.contains("<h1>Followed live</h1>") && !part.contains("<html"),
        "{part}"
    );

    let agent = backing
        .store
        .create_agent(NewAgent::default(), SystemClock.now())
        .await
        .unwrap()
        .id;
    let parts = [
        "/fragments/board".to_owned(),
        path,
        "/fragments/queue".to_owned(),
        "/fragments/exceptions".to_owned(),
        "/fragments/agents".to_owned(),
        format!("/fragments/agents/{agent}"),
        "/fragments/runners".to_owned(),
        "/fragments/locks".to_owned(),
        "/fragments/usage".to_owned(),
    ];
    for path in &parts {
        let live = get(&app, path, Some(&session)).await;
        assert_eq!(live.status(), StatusCode::OK, "{path}");
        let ended = get(&app, path, None).await;
        assert_eq!(ended.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let pages = [
        "/".to_owned(),
        "/tasks".to_owned(),
        format!("/tasks/{id}"),
        format!("/tasks/{id}/edit"),
        "/tasks/new".to_owned(),
        "/tasks/batch".to_owned(),
        "/exceptions".to_owned(),
        "/agents".to_owned(),
        format!("/agents/{agent}"),
        "/runners".to_owned(),
        "/locks".to_owned(),
        "/usage".to_owned(),
        "/connect".to_owned(),
    ];
    for path in &pages {
        let open = get(&app, path, Some(&session)).await;
        assert_eq!(open.status(), StatusCode::OK, "{path}");
        let anonymous = get(&app, path, None).await;
        assert_eq!(anonymous.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(anonymous.headers().get("location").unwrap(), "/login");
        assert!(
            anonymous.headers().contains_key("content-security-policy"),
            "{path}: the page's headers on the way to log in too"
        );
    }
}

#[actix_web::test]
async fn assets_are_served_from_this_server() {
    let backing = backing().await;
    let app = app(&backing).await;
    for (path, kind) in [
        ("/assets/app.css", "text/css"),
        ("/assets/live.js", "text/javascript"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
}
