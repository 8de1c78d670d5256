//! The dashboard: server-rendered pages for the people who run the fleet. Templates
//! (askama, checked at compile time) and assets (our own CSS and script) live beside this
//! module; every page works without the script, and carries a Content-Security-Policy
//! that allows nothing but this server (no inline script or style).

mod assets;
mod board;
mod session;
mod task;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use askama::Template;
use orchestrator_core::model::EventKind;

use crate::error::ApiError;

pub(crate) use session::Viewer;

/// The policy of every page: scripts, styles, images and connections from this server
/// only, no framing, no plugins, forms post back here only.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers on every page.
fn page_headers() -> DefaultHeaders {
    crate::security_headers(PAGE_POLICY).add(("Cache-Control", "no-store"))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    assets::configure(cfg);
    cfg.service(
        web::resource("/")
            .wrap(page_headers())
            .route(web::get().to(board::board)),
    )
    .service(
        web::resource("/tasks/{id}")
            .wrap(page_headers())
            .route(web::get().to(task::task)),
    )
    .service(
        web::resource("/fragments/board")
            .wrap(page_headers())
            .route(web::get().to(board::board_fragment)),
    )
    .service(
        web::resource("/fragments/tasks/{id}")
            .wrap(page_headers())
            .route(web::get().to(task::task_fragment)),
    );
    session::configure(cfg, page_headers);
}

/// The kinds of event after which a page's live part is rendered again: every kind but
/// the renewals of leases and locks, which change nothing a page shows.
pub(crate) fn live_events() -> String {
    EventKind::ALL
        .iter()
        .filter(|kind| !matches!(kind, EventKind::LeaseRenewed | EventKind::LockRenewed))
        .map(EventKind::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The places the navigation leads to, with the one a page belongs to marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Board,
}

impl Section {
    fn is(self, name: &str) -> bool {
        match self {
            Self::Board => name == "board",
        }
    }
}

/// `template` rendered as an HTML page with `status`.
fn render(status: actix_web::http::StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(body),
        Err(err) => actix_web::ResponseError::error_response(&ApiError::internal(err)),
    }
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage<'a> {
    section: Section,
    csrf: String,
    message: &'a str,
}

/// The 404 page, saying what was not found.
fn not_found(viewer: Viewer, message: &str) -> HttpResponse {
    render(
        actix_web::http::StatusCode::NOT_FOUND,
        &NotFoundPage {
            section: Section::Board,
            csrf: viewer.csrf,
            message,
        },
    )
}

/// A redirect after a form post, or to the login page.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}
