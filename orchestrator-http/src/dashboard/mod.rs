//! The dashboard: server-rendered pages for the people who run the fleet. Templates
//! (askama, checked at compile time) and assets (our own CSS and script) live beside this
//! module; every page works without the script, and carries a Content-Security-Policy
//! that allows nothing but this server (no inline script or style).

mod assets;
mod board;
mod charts;
mod connect;
mod diff;
mod fleet;
mod inbox;
mod locks;
mod queue;
mod session;
mod task;
mod task_actions;
mod task_form;
mod transcript;
mod usage;

use std::collections::HashMap;
use std::future::Future;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, Resource, web};
use askama::Template;
use orchestrator_core::ids::AgentId;
use orchestrator_core::model::{Agent, EventKind, SortOrder};

use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::state::AppState;

pub(crate) use charts::ActivityCache;
pub(crate) use session::{Notice, PartViewer, Viewer};

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
    cfg.service(page_at("/").route(web::get().to(board::board)))
        .service(page_at("/tasks").route(web::get().to(queue::queue)));
    // Before `/tasks/{id}`, which would take these names for ids.
    task_form::configure(cfg);
    cfg.service(page_at("/tasks/{id}").route(web::get().to(task::task)));
    task_actions::configure(cfg);
    inbox::configure(cfg);
    locks::configure(cfg);
    fleet::configure(cfg);
    connect::configure(cfg);
    usage::configure(cfg);
    cfg.service(page_at("/fragments/board").route(web::get().to(board::board_fragment)))
        .service(page_at("/fragments/queue").route(web::get().to(queue::queue_fragment)))
        .service(page_at("/fragments/tasks/{id}").route(web::get().to(task::task_fragment)));
    session::configure(cfg, page_headers);
}

/// A resource of the dashboard at `path`, with the pages' headers.
fn page_at(
    path: &str,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path.to_owned()).wrap(page_headers())
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
    Queue,
    Inbox,
    Fleet,
    Locks,
    Usage,
    Connect,
}

impl Section {
    fn is(self, name: &str) -> bool {
        name == match self {
            Self::Board => "board",
            Self::Queue => "queue",
            Self::Inbox => "inbox",
            Self::Fleet => "fleet",
            Self::Locks => "locks",
            Self::Usage => "usage",
            Self::Connect => "connect",
        }
    }
}

/// `template` rendered as an HTML page with `status`.
fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
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

/// The part of a page that `build` renders, kept under `key` until the next commit, so
/// that every viewer of the same page between two commits gets the same rendering.
async fn cached_part<T, F, Fut>(state: &AppState, key: String, build: F) -> ApiResult<String>
where
    T: Template,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let bytes = state
        .cache
        .bytes(state.store.as_ref(), key, || async {
            let part = build().await?;
            part.render()
                .map(web::Bytes::from)
                .map_err(ApiError::internal)
        })
        .await?;
    String::from_utf8(bytes.to_vec()).map_err(ApiError::internal)
}

/// A page's live part on its own, for the page's script to put in place.
fn fragment_response(part: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(part)
}

/// A whole page for `viewer`: once it has shown the viewer's notice, the notice is gone.
fn page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    template: &impl Template,
) -> HttpResponse {
    let response = render(status, template);
    if viewer.notice.is_some() {
        session::notice_shown(state, response)
    } else {
        response
    }
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage<'a> {
    section: Section,
    viewer: Viewer,
    message: &'a str,
}

/// The 404 page, saying what was not found.
fn not_found(state: &AppState, viewer: Viewer, message: &str) -> HttpResponse {
    page(
        state,
        &viewer,
        StatusCode::NOT_FOUND,
        &NotFoundPage {
            section: Section::Board,
            viewer: viewer.clone(),
            message,
        },
    )
}

/// The record `raw_id` names, read by `get`; a malformed or unknown id answers the
/// not-found page saying `missing`, another failure the error's own answer.
async fn found_or_404<I, T, F>(
    state: &AppState,
    viewer: &Viewer,
    raw_id: &str,
    missing: &str,
    get: impl FnOnce(I) -> F,
) -> Result<T, HttpResponse>
where
    I: std::str::FromStr,
    F: Future<Output = orchestrator_core::Result<T>>,
{
    let not_found = || not_found(state, viewer.clone(), missing);
    let id = raw_id.parse::<I>().map_err(|_| not_found())?;
    match get(id).await {
        Ok(found) => Ok(found),
        Err(orchestrator_core::Error::NotFound { .. }) => Err(not_found()),
        Err(err) => Err(actix_web::ResponseError::error_response(&ApiError::from(
            err,
        ))),
    }
}

/// A redirect after a form post, or to the login page.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// A redirect to `location` that leaves `notice` for the page there.
fn see_other_with(state: &AppState, location: &str, notice: &Notice) -> HttpResponse {
    session::leave_notice(state, see_other(location), notice)
}

/// Where a form sends the browser afterwards: the page it names (a path on this server
/// only, never another site), else `fallback`.
fn back_to(back: &str, fallback: &str) -> String {
    let local = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && !back.chars().any(char::is_control);
    if local {
        back.to_owned()
    } else {
        fallback.to_owned()
    }
}

/// How an agent is named on a page: its name, else the start of its id.
fn agent_label(agent: &Agent) -> String {
    agent
        .name
        .clone()
        .unwrap_or_else(|| agent.id.to_string()[..8].to_owned())
}

/// The labels of the agents among `ids`, in one lookup.
async fn agent_labels(
    state: &AppState,
    ids: impl Iterator<Item = AgentId>,
) -> ApiResult<HashMap<AgentId, String>> {
    Ok(crate::routes::agents_by_id(state, ids)
        .await?
        .into_iter()
        .map(|(id, agent)| (id, agent_label(&agent)))
        .collect())
}

/// The error's message for a person, and the form field it names, if any.
fn explain(err: orchestrator_core::Error) -> (String, Option<String>) {
    let field = match &err {
        orchestrator_core::Error::InvalidInput { field, .. } => Some(field.clone()),
        _ => None,
    };
    (ApiError::from(err).message, field)
}

/// The value of `result`, or nothing with its error noted in `problems`.
fn keep<T>(result: orchestrator_core::Result<T>, problems: &mut Vec<String>) -> Option<T> {
    result.map_err(|err| problems.push(explain(err).0)).ok()
}

/// The sort column and order an address asks for (`sortBy`, `sortOrder`): `default` and
/// its `usual_order` where absent; a value that does not parse is left out and said in
/// `problems`.
fn sorting<S>(
    params: &Params,
    default: S,
    usual_order: fn(S) -> SortOrder,
    problems: &mut Vec<String>,
) -> (S, SortOrder)
where
    S: std::str::FromStr<Err = orchestrator_core::Error> + Copy,
{
    let sort = params
        .text("sortBy")
        .and_then(|sort| keep(sort.parse(), problems))
        .unwrap_or(default);
    let order = params
        .text("sortOrder")
        .and_then(|order| keep(order.parse(), problems))
        .unwrap_or_else(|| usual_order(sort));
    (sort, order)
}

/// An address's query (with its `?`) of `pairs`, each value percent-encoded; empty
/// without pairs.
fn query_string(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_component(value)))
        .collect::<Vec<_>>()
        .join("&");
    format!("?{joined}")
}

/// `text` percent-encoded for a query value.
fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char);
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}
