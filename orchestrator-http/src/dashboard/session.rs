//! Logging in and out. The session cookie holds the admin token (HttpOnly,
//! SameSite=Strict), set either by the login link the server prints (`/login?token=…`)
//! or by the login form. Every form carries a CSRF token: for a session, a digest of its
//! cookie that only its holder can compute; for the login form, a random value also kept
//! in a cookie of its own (double submit).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::{Ready, ready};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{render, see_other};
use crate::auth::{ADMIN_COOKIE, hash_token, new_secret};
use crate::extract::Params;
use crate::state::AppState;

/// How long a browser stays logged in.
const SESSION_DAYS: i64 = 30;

/// The cookie holding the login form's CSRF token.
const LOGIN_CSRF_COOKIE: &str = "orchestrator_login_csrf";

pub(super) fn configure(cfg: &mut web::ServiceConfig, headers: fn() -> DefaultHeaders) {
    cfg.service(
        web::resource("/login")
            .wrap(actix_web::middleware::from_fn(
                crate::rate_limit::rate_limit,
            ))
            .wrap(headers())
            .route(web::get().to(login_page))
            .route(web::post().to(log_in)),
    )
    .service(
        web::resource("/logout")
            .wrap(headers())
            .route(web::post().to(log_out)),
    );
}

/// A person logged in to the dashboard, with the CSRF token their forms carry and the
/// notice the action before left for them.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) csrf: String,
    pub(crate) notice: Option<Notice>,
}

/// What an action says on the page it leads back to: that it was done, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) problem: bool,
    pub(crate) text: String,
}

impl Notice {
    pub(crate) fn done(text: impl Into<String>) -> Self {
        Self {
            problem: false,
            text: text.into(),
        }
    }

    pub(crate) fn problem(text: impl Into<String>) -> Self {
        Self {
            problem: true,
            text: text.into(),
        }
    }

    /// The cookie form: a kind letter and the text, in URL-safe base64.
    fn encode(&self) -> String {
        let kind = if self.problem { 'p' } else { 'd' };
        URL_SAFE_NO_PAD.encode(format!("{kind}{}", self.text))
    }

    fn decode(value: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let mut chars = text.chars();
        let problem = match chars.next()? {
            'p' => true,
            'd' => false,
            _ => return None,
        };
        Some(Self {
            problem,
            text: chars.as_str().chars().take(MAX_NOTICE_CHARS).collect(),
        })
    }
}

/// The longest notice shown; a cookie holds a few kilobytes.
const MAX_NOTICE_CHARS: usize = 1_000;

/// The cookie carrying a notice to the next page.
const NOTICE_COOKIE: &str = "orchestrator_notice";

impl Viewer {
    /// The viewer of `req`, if its session cookie holds the admin token.
    pub(crate) fn of(req: &HttpRequest, state: &AppState) -> Option<Self> {
        let cookie = req.cookie(ADMIN_COOKIE)?;
        state.is_admin_token(cookie.value()).then(|| Self {
            csrf: session_csrf(cookie.value()),
            notice: req
                .cookie(NOTICE_COOKIE)
                .and_then(|notice| Notice::decode(notice.value())),
        })
    }

    /// The viewer of a form post, or why the form is refused.
    pub(crate) fn of_form(
        req: &HttpRequest,
        state: &AppState,
        csrf: &str,
    ) -> Result<Self, FormRefusal> {
        let viewer = Self::of(req, state).ok_or(FormRefusal::NoSession)?;
        if !same(&viewer.csrf, csrf) {
            return Err(FormRefusal::ForeignForm);
        }
        Ok(viewer)
    }

    /// Whether `submitted` is this session's CSRF token.
    pub(crate) fn accepts(&self, submitted: &str) -> bool {
        same(&self.csrf, submitted)
    }
}

/// No one is logged in: a page sends the browser to log in; a live part answers 401, on
/// which the page's script does the same.
#[derive(Debug)]
pub(crate) struct NoSession {
    page: bool,
}

impl std::fmt::Display for NoSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no one is logged in")
    }
}

impl ResponseError for NoSession {
    fn error_response(&self) -> HttpResponse {
        if self.page {
            see_other("/login")
        } else {
            HttpResponse::Unauthorized().finish()
        }
    }
}

/// The viewer of a request's session, or [`NoSession`] for a page (`page`) or a live part.
fn viewer_of(req: &HttpRequest, page: bool) -> Result<Viewer, NoSession> {
    req.app_data::<web::Data<AppState>>()
        .and_then(|state| Viewer::of(req, state))
        .ok_or(NoSession { page })
}

/// A page's viewer: without a session the browser is sent to log in.
impl FromRequest for Viewer {
    type Error = NoSession;
    type Future = Ready<Result<Self, NoSession>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(viewer_of(req, true))
    }
}

/// The viewer of a page's live part: without a session, 401.
pub(crate) struct PartViewer(pub(crate) Viewer);

impl FromRequest for PartViewer {
    type Error = NoSession;
    type Future = Ready<Result<Self, NoSession>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(viewer_of(req, false).map(Self))
    }
}

/// Why a form post is not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormRefusal {
    /// No one is logged in: to the login page.
    NoSession,
    /// The form's CSRF token is not this session's (403).
    ForeignForm,
}

impl FormRefusal {
    pub(crate) fn response(self) -> HttpResponse {
        match self {
            Self::NoSession => see_other("/login"),
            Self::ForeignForm => HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body(
                    "This form does not belong to your session (it may be from before you \
                     logged in again). Go back, reload the page and send it again.",
                ),
        }
    }
}

/// `response` with the notice it leaves for the next page.
pub(crate) fn leave_notice(
    state: &AppState,
    mut response: HttpResponse,
    notice: &Notice,
) -> HttpResponse {
    let _ = response.add_cookie(&cookie(
        state,
        NOTICE_COOKIE,
        notice.encode(),
        CookieDuration::minutes(5),
    ));
    response
}

/// `response` (a page that showed the viewer's notice) with the notice's cookie removed.
pub(crate) fn notice_shown(state: &AppState, mut response: HttpResponse) -> HttpResponse {
    let _ = response.add_removal_cookie(&cookie(
        state,
        NOTICE_COOKIE,
        String::new(),
        CookieDuration::ZERO,
    ));
    response
}

/// The CSRF token of the session whose cookie holds `token`.
fn session_csrf(token: &str) -> String {
    hash_token(&format!("dashboard-form:{token}"))
}

fn same(expected: &str, submitted: &str) -> bool {
    expected.as_bytes().ct_eq(submitted.as_bytes()).into()
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    max_age: CookieDuration,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.public_url.starts_with("https://"))
        .max_age(max_age)
        .finish()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    problem: Option<&'a str>,
}

/// The login form with a new CSRF token in it and in its cookie.
fn login_form(state: &AppState, status: StatusCode, problem: Option<&str>) -> HttpResponse {
    let csrf = new_secret();
    let mut response = render(
        status,
        &LoginPage {
            csrf: &csrf,
            problem,
        },
    );
    let _ = response.add_cookie(&cookie(
        state,
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        CookieDuration::hours(1),
    ));
    response
}

/// The response that starts a session for `token` and goes on to the board.
fn start_session(state: &AppState, token: &str) -> HttpResponse {
    let mut response = see_other("/");
    let _ = response.add_cookie(&cookie(
        state,
        ADMIN_COOKIE,
        token.to_owned(),
        CookieDuration::days(SESSION_DAYS),
    ));
    let _ = response.add_removal_cookie(&cookie(
        state,
        LOGIN_CSRF_COOKIE,
        String::new(),
        CookieDuration::ZERO,
    ));
    response
}

/// `GET /login`: the printed link (`?token=…`) starts a session and leaves the address
/// bar; without one, the form.
async fn login_page(state: web::Data<AppState>, params: Params) -> HttpResponse {
    match params.text("token") {
        Some(token) if state.is_admin_token(token) => start_session(&state, token),
        Some(_) => login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(
                "The link's token is not this server's admin token. Use the link the server printed at its first start, or paste the token below.",
            ),
        ),
        None => login_form(&state, StatusCode::OK, None),
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
}

/// `POST /login`: the form's token starts a session.
async fn log_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let expected = req.cookie(LOGIN_CSRF_COOKIE);
    if !expected.is_some_and(|cookie| same(cookie.value(), &form.csrf)) {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("The form had expired; it has been renewed. Paste the token again."),
        );
    }
    let token = form.token.trim();
    if state.is_admin_token(token) {
        start_session(&state, token)
    } else {
        login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(
                "That is not this server's admin token. It was printed at the server's first start (or set with ORCHESTRATOR_ADMIN_TOKEN).",
            ),
        )
    }
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: ends the session (a form of this session only).
async fn log_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LogoutForm>,
) -> HttpResponse {
    if let Some(viewer) = Viewer::of(&req, &state)
        && !viewer.accepts(&form.csrf)
    {
        return see_other("/");
    }
    let mut response = see_other("/login");
    let _ = response.add_removal_cookie(&cookie(
        &state,
        ADMIN_COOKIE,
        String::new(),
        CookieDuration::ZERO,
    ));
    response
}
