//! Pages for browsers: the login link the server prints (`/login?token=…`, as Jupyter
//! does), which keeps the admin token in an HttpOnly, SameSite=Strict cookie so that the
//! browser can use the API and its event stream, a logout, and the landing page.
//! Every page carries a Content-Security-Policy that allows nothing but the server itself.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::ADMIN_COOKIE;
use crate::extract::Params;
use crate::state::AppState;

/// How long a browser stays logged in.
const SESSION_DAYS: i64 = 30;

/// The policy of every page: scripts, styles, images and connections from this server
/// only, no framing, no plugins, forms post back here only.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers on every page.
fn page_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", PAGE_POLICY))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add(("Cache-Control", "no-store"))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(page_headers())
            .route(web::get().to(landing)),
    )
    .service(
        web::resource("/login")
            .wrap(actix_web::middleware::from_fn(
                crate::rate_limit::rate_limit,
            ))
            .wrap(page_headers())
            .route(web::get().to(login)),
    )
    .service(
        web::resource("/logout")
            .wrap(page_headers())
            .route(web::post().to(logout)),
    );
}

fn session_cookie(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'static> {
    Cookie::build(ADMIN_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.public_url.starts_with("https://"))
        .max_age(max_age)
        .finish()
}

fn html(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · orchestrator</title></head><body><main>\
             <h1>{title}</h1>{body}</main></body></html>"
        ))
}

/// `GET /login?token=…`: a valid admin token becomes the browser's session cookie, and
/// the browser goes on to the landing page (the token leaves the address bar).
async fn login(state: web::Data<AppState>, params: Params) -> HttpResponse {
    match params.text("token") {
        Some(token) if state.is_admin_token(token) => HttpResponse::SeeOther()
            .cookie(session_cookie(
                &state,
                token.to_owned(),
                CookieDuration::days(SESSION_DAYS),
            ))
            .insert_header((header::LOCATION, "/"))
            .finish(),
        _ => html(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "Not logged in",
            "<p>The link's token is not this server's admin token. Use the link the server \
             printed at its first start, or start it with <code>ORCHESTRATOR_ADMIN_TOKEN</code> \
             set to a token of your choice and open <code>/login?token=&lt;token&gt;</code>.</p>",
        ),
    }
}

/// `POST /logout`: forgets the session cookie.
async fn logout(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session_cookie(&state, String::new(), CookieDuration::ZERO))
        .insert_header((header::LOCATION, "/"))
        .finish()
}

/// `GET /`: what this server is, whether the browser is logged in, and where the API is.
async fn landing(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let logged_in = req
        .cookie(ADMIN_COOKIE)
        .is_some_and(|cookie| state.is_admin_token(cookie.value()));
    let session = if logged_in {
        "<p>You are logged in as the administrator.</p>\
         <form method=\"post\" action=\"/logout\"><button>Log out</button></form>"
    } else {
        "<p>You are not logged in: open the login link the server printed at its first \
         start.</p>"
    };
    html(
        actix_web::http::StatusCode::OK,
        "orchestrator",
        &format!(
            "<p>Version {version}.</p>{session}<ul>\
             <li><a href=\"/api/openapi.json\">API reference (OpenAPI 3)</a></li>\
             <li><a href=\"/api/health\">Health</a></li>\
             <li><a href=\"/api/dashboard/stats\">Queue statistics</a></li></ul>",
            version = state.version
        ),
    )
}
