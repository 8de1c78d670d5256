//! The inbox: `GET /exceptions` lists what needs a person, filtered as the API filters;
//! `GET /exceptions/:id` shows one with its task and agent. A person acknowledges,
//! resolves or dismisses it with notes, or acts on its task: retries it (with a note the
//! next attempt's prompt carries), cancels it, or releases the locks it holds.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use orchestrator_core::change::{self, ExceptionDecision};
use orchestrator_core::ids::ExceptionId;
use orchestrator_core::lock::LockQuery;
use orchestrator_core::model::{
    Exception, ExceptionQuery, ExceptionSeverity, ExceptionStatus, ExceptionType, Task, TaskStatus,
};
use orchestrator_core::state::exception::{ExceptionEvent, transition};
use orchestrator_core::store::StoreExt;
use serde::Deserialize;

use super::{
    Notice, PartViewer, Section, Viewer, agent_labels, encode_component, explain, found_or_404,
    keep, page, page_at, render, see_other_with,
};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::routes::tasks_by_id;
use crate::state::AppState;

/// Exceptions on one page of the inbox.
const PAGE_ROWS: u32 = 50;

/// Who the dashboard records as deciding.
const DECIDED_BY: &str = "dashboard";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page_at("/exceptions").route(web::get().to(inbox)))
        .service(page_at("/fragments/exceptions").route(web::get().to(inbox_fragment)))
        .service(page_at("/exceptions/{id}").route(web::get().to(exception)))
        .service(page_at("/fragments/exceptions/{id}").route(web::get().to(exception_fragment)))
        .service(page_at("/exceptions/{id}/decide").route(web::post().to(decide)))
        .service(page_at("/exceptions/{id}/act").route(web::post().to(act)));
}

/// The inbox view the address asks for. `status` is OPEN unless it says otherwise, and
/// `ALL` lists every status, as in the API.
#[derive(Debug, Clone)]
struct Filters {
    status: Option<ExceptionStatus>,
    severity: Option<ExceptionSeverity>,
    exception_type: Option<ExceptionType>,
    offset: u64,
}

impl Filters {
    fn of(params: &Params) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let status = match params.text("status") {
            None => Some(ExceptionStatus::Open),
            Some("ALL") => None,
            Some(status) => keep(status.parse(), &mut problems),
        };
        let severity = params
            .text("severity")
            .and_then(|severity| keep(severity.parse(), &mut problems));
        let exception_type = params
            .text("type")
            .and_then(|kind| keep(kind.parse(), &mut problems));
        let offset = params
            .text("offset")
            .and_then(|offset| offset.parse().ok())
            .unwrap_or(0);
        (
            Self {
                status,
                severity,
                exception_type,
                offset,
            },
            problems,
        )
    }

    fn href(&self, offset: u64) -> String {
        let mut pairs = vec![(
            "status",
            self.status
                .map_or("ALL", |status| status.as_str())
                .to_owned(),
        )];
        if let Some(severity) = self.severity {
            pairs.push(("severity", severity.as_str().to_owned()));
        }
        if let Some(kind) = self.exception_type {
            pairs.push(("type", kind.as_str().to_owned()));
        }
        if offset > 0 {
            pairs.push(("offset", offset.to_string()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", encode_component(value)))
            .collect();
        format!("?{}", query.join("&"))
    }

    fn status_is(&self, status: &str) -> bool {
        self.status.map_or("ALL", |s| s.as_str()) == status
    }
}

/// An exception in the inbox list.
struct Item {
    id: String,
    title: String,
    severity: &'static str,
    kind: &'static str,
    status: &'static str,
    description: Option<String>,
    task: Option<(String, String)>,
    agent: Option<String>,
    occurrences: u32,
    at: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    section: Section,
    viewer: Viewer,
    filters: Filters,
    problems: Vec<String>,
    items: Vec<Item>,
    total: u64,
    previous_page: Option<String>,
    next_page: Option<String>,
}

impl InboxPage {
    fn statuses(&self) -> &'static [ExceptionStatus] {
        ExceptionStatus::ALL
    }

    fn severities(&self) -> &'static [ExceptionSeverity] {
        ExceptionSeverity::ALL
    }

    fn kinds(&self) -> &'static [ExceptionType] {
        ExceptionType::ALL
    }

    fn fragment(&self) -> String {
        format!(
            "/fragments/exceptions{}",
            self.filters.href(self.filters.offset)
        )
    }
}

#[derive(Template)]
#[template(path = "inbox.html", block = "live")]
struct InboxLive(InboxPage);

impl std::ops::Deref for InboxLive {
    type Target = InboxPage;

    fn deref(&self) -> &InboxPage {
        &self.0
    }
}

async fn inbox(
    viewer: Viewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let template = inbox_page(&state, viewer.clone(), &params).await?;
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

/// `GET /fragments/exceptions?…`: the list of an inbox view.
async fn inbox_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let template = inbox_page(&state, viewer, &params).await?;
    Ok(render(StatusCode::OK, &InboxLive(template)))
}

async fn inbox_page(state: &AppState, viewer: Viewer, params: &Params) -> ApiResult<InboxPage> {
    let (filters, problems) = Filters::of(params);
    let page = state
        .store
        .list_exceptions(&ExceptionQuery {
            status: filters.status,
            severity: filters.severity,
            exception_type: filters.exception_type,
            limit: PAGE_ROWS,
            offset: filters.offset,
            ..ExceptionQuery::default()
        })
        .await?;
    let tasks = tasks_by_id(state, page.items.iter().filter_map(|e| e.task_id)).await?;
    let agents = agent_labels(state, page.items.iter().filter_map(|e| e.agent_id)).await?;
    let items = page
        .items
        .iter()
        .map(|exception| Item {
            id: exception.id.to_string(),
            title: exception.title.clone(),
            severity: exception.severity.as_str(),
            kind: exception.exception_type.as_str(),
            status: exception.status.as_str(),
            description: exception.description.clone(),
            task: exception.task_id.and_then(|id| {
                tasks
                    .get(&id)
                    .map(|task| (id.to_string(), task.title.clone()))
            }),
            agent: exception.agent_id.and_then(|id| agents.get(&id).cloned()),
            occurrences: exception.occurrences,
            at: exception.last_occurred_at.to_string(),
        })
        .collect();
    Ok(InboxPage {
        section: Section::Inbox,
        viewer,
        previous_page: (filters.offset > 0).then(|| {
            format!(
                "/exceptions{}",
                filters.href(filters.offset.saturating_sub(u64::from(PAGE_ROWS)))
            )
        }),
        next_page: page.has_more().then(|| {
            format!(
                "/exceptions{}",
                filters.href(filters.offset + u64::from(PAGE_ROWS))
            )
        }),
        total: page.total_count,
        items,
        problems,
        filters,
    })
}

/// What a person may do about an exception's task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskRemedy {
    /// Retry the failed task, with a note for its next attempt.
    Retry,
    /// Cancel the task.
    Cancel,
    /// Force release the locks the task holds.
    ReleaseLocks,
}

impl TaskRemedy {
    fn slug(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::ReleaseLocks => "release",
        }
    }

    fn from_slug(slug: &str) -> Option<Self> {
        [Self::Retry, Self::Cancel, Self::ReleaseLocks]
            .into_iter()
            .find(|remedy| remedy.slug() == slug)
    }
}

#[derive(Template)]
#[template(path = "exception.html")]
struct ExceptionPage {
    section: Section,
    viewer: Viewer,
    id: String,
    title: String,
    severity: &'static str,
    kind: &'static str,
    status: &'static str,
    description: Option<String>,
    suggested_action: Option<String>,
    occurrences: u32,
    first: String,
    last: String,
    resolved_by: Option<String>,
    resolved_at: Option<String>,
    resolution_notes: Option<String>,
    /// The task as (id, title, status).
    task: Option<(String, String, &'static str)>,
    agent: Option<String>,
    /// The decisions its status allows, as (status, button label).
    decisions: Vec<(&'static str, &'static str)>,
    remedies: Vec<TaskRemedy>,
    /// The paths its task holds.
    locks: Vec<String>,
}

impl ExceptionPage {
    fn can(&self, remedy: &str) -> bool {
        self.remedies.iter().any(|r| r.slug() == remedy)
    }
}

#[derive(Template)]
#[template(path = "exception.html", block = "live")]
struct ExceptionLive(ExceptionPage);

impl std::ops::Deref for ExceptionLive {
    type Target = ExceptionPage;

    fn deref(&self) -> &ExceptionPage {
        &self.0
    }
}

/// The decisions a person may take on an exception in `status`.
fn decisions(status: ExceptionStatus) -> Vec<(&'static str, &'static str)> {
    [
        (ExceptionStatus::Acknowledged, "Acknowledge"),
        (ExceptionStatus::Resolved, "Resolve"),
        (ExceptionStatus::Dismissed, "Dismiss"),
        (ExceptionStatus::Open, "Reopen"),
    ]
    .into_iter()
    .filter(|(to, _)| transition(status, ExceptionEvent::toward(*to)).is_ok())
    .map(|(to, label)| (to.as_str(), label))
    .collect()
}

/// What may be done about `task` now, holding `locks`.
fn remedies(task: &Task, locks: &[String]) -> Vec<TaskRemedy> {
    let mut remedies = Vec::new();
    if change::retry_request(task, None).is_ok() {
        remedies.push(TaskRemedy::Retry);
    }
    if change::task_status_request(task.status, TaskStatus::Cancelled).is_ok() {
        remedies.push(TaskRemedy::Cancel);
    }
    if !locks.is_empty() {
        remedies.push(TaskRemedy::ReleaseLocks);
    }
    remedies
}

/// The live paths `task` holds.
async fn task_locks(state: &AppState, task: &Task) -> orchestrator_core::Result<Vec<String>> {
    let locks = state
        .store
        .list_locks(
            &LockQuery {
                task_id: Some(task.id),
                ..LockQuery::default()
            },
            state.now(),
        )
        .await?;
    Ok(locks.into_iter().map(|lock| lock.file_path).collect())
}

async fn find_exception(
    state: &AppState,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Exception, HttpResponse> {
    found_or_404(
        state,
        viewer,
        raw_id,
        "No exception has this id.",
        |id: ExceptionId| state.store.get_exception(id),
    )
    .await
}

async fn exception_page(
    state: &AppState,
    viewer: Viewer,
    exception: Exception,
) -> ApiResult<ExceptionPage> {
    let task = match exception.task_id {
        Some(id) => state.store.get_tasks(&[id]).await?.into_iter().next(),
        None => None,
    };
    let locks = match &task {
        Some(task) => task_locks(state, task).await?,
        None => Vec::new(),
    };
    let agent = agent_labels(state, exception.agent_id.into_iter())
        .await?
        .into_values()
        .next();
    Ok(ExceptionPage {
        section: Section::Inbox,
        viewer,
        id: exception.id.to_string(),
        title: exception.title.clone(),
        severity: exception.severity.as_str(),
        kind: exception.exception_type.as_str(),
        status: exception.status.as_str(),
        description: exception.description.clone(),
        suggested_action: exception.suggested_action.clone(),
        occurrences: exception.occurrences,
        first: exception.created_at.to_string(),
        last: exception.last_occurred_at.to_string(),
        resolved_by: exception.resolved_by.clone(),
        resolved_at: exception.resolved_at.map(|at| at.to_string()),
        resolution_notes: exception.resolution_notes.clone(),
        decisions: decisions(exception.status),
        remedies: task
            .as_ref()
            .map(|task| remedies(task, &locks))
            .unwrap_or_default(),
        task: task.as_ref().map(|task| {
            (
                task.id.to_string(),
                task.title.clone(),
                task.status.as_str(),
            )
        }),
        agent,
        locks,
    })
}

async fn exception(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let exception = match find_exception(&state, &viewer, &id).await {
        Ok(exception) => exception,
        Err(missing) => return Ok(missing),
    };
    let template = exception_page(&state, viewer.clone(), exception).await?;
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

/// `GET /fragments/exceptions/:id`: the live part of an exception's page.
async fn exception_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let exception = match find_exception(&state, &viewer, &id).await {
        Ok(exception) => exception,
        Err(missing) => return Ok(missing),
    };
    let template = exception_page(&state, viewer, exception).await?;
    Ok(render(StatusCode::OK, &ExceptionLive(template)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DecisionForm {
    csrf: String,
    /// The status to move to.
    decision: String,
    notes: String,
}

/// `POST /exceptions/:id/decide`: acknowledge, resolve, dismiss or reopen, with notes.
async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<DecisionForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let exception = match find_exception(&state, &viewer, &id).await {
        Ok(exception) => exception,
        Err(response) => return response,
    };
    let here = format!("/exceptions/{}", exception.id);
    let decided = match form.decision.parse::<ExceptionStatus>() {
        Ok(status) => decide_with(&state, &exception, status, &form.notes).await,
        Err(err) => Err(err),
    };
    let notice = match decided {
        Ok(decided) => Notice::done(format!(
            "Exception {}.",
            decided.status.as_str().to_lowercase()
        )),
        Err(err) => Notice::problem(format!("Could not decide: {}", explain(err).0)),
    };
    see_other_with(&state, &here, &notice)
}

/// Moves `exception` to `status` with `notes` (none when blank).
async fn decide_with(
    state: &AppState,
    exception: &Exception,
    status: ExceptionStatus,
    notes: &str,
) -> orchestrator_core::Result<Exception> {
    let notes = notes.trim();
    state
        .store
        .decide_exception(
            exception.id,
            ExceptionDecision {
                status,
                resolved_by: Some(DECIDED_BY.to_owned()),
                resolution_notes: (!notes.is_empty()).then(|| notes.to_owned()),
            },
            state.now(),
        )
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RemedyForm {
    csrf: String,
    remedy: String,
    note: String,
}

/// `POST /exceptions/:id/act`: retries, cancels or releases the locks of the
/// exception's task; a retry or a cancel resolves the exception with what was done.
async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<RemedyForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let exception = match find_exception(&state, &viewer, &id).await {
        Ok(exception) => exception,
        Err(response) => return response,
    };
    let here = format!("/exceptions/{}", exception.id);
    let (Some(remedy), Some(task_id)) = (TaskRemedy::from_slug(&form.remedy), exception.task_id)
    else {
        return see_other_with(
            &state,
            &here,
            &Notice::problem("This exception has no task to act on."),
        );
    };
    let notice = match remedy_for(&state, &exception, task_id, remedy, form.note.trim()).await {
        Ok(done) => Notice::done(done),
        Err(err) => Notice::problem(format!("Could not do it: {}", explain(err).0)),
    };
    see_other_with(&state, &here, &notice)
}

/// Carries out `remedy` on the task; what was done, for the notice.
async fn remedy_for(
    state: &AppState,
    exception: &Exception,
    task_id: orchestrator_core::ids::TaskId,
    remedy: TaskRemedy,
    note: &str,
) -> orchestrator_core::Result<String> {
    let task = state.store.get_task(task_id).await?;
    let now = state.now();
    match remedy {
        TaskRemedy::Retry => {
            let action = change::retry_request(&task, Some(note))?;
            state
                .store
                .apply_task_action(task.id, action, None, now)
                .await?;
            let notes = if note.is_empty() {
                "Retried from the inbox.".to_owned()
            } else {
                format!("Retried from the inbox with a note: {note}")
            };
            resolve_after(state, exception, &notes).await?;
            Ok("Task queued again; the exception is resolved.".to_owned())
        }
        TaskRemedy::Cancel => {
            let action = change::task_status_request(task.status, TaskStatus::Cancelled)?;
            state
                .store
                .apply_task_action(task.id, action, None, now)
                .await?;
            resolve_after(state, exception, "Task cancelled from the inbox.").await?;
            Ok("Task cancelled; the exception is resolved.".to_owned())
        }
        TaskRemedy::ReleaseLocks => {
            let reason = if note.is_empty() {
                format!("Released from the inbox ({})", exception.title)
            } else {
                note.to_owned()
            };
            let mut released = 0;
            for path in task_locks(state, &task).await? {
                released += state
                    .store
                    .force_release(&path, Some(reason.clone()), now)
                    .await?
                    .released
                    .len();
            }
            Ok(match released {
                1 => "Released 1 lock.".to_owned(),
                count => format!("Released {count} locks."),
            })
        }
    }
}

/// Resolves `exception` after its task was dealt with, unless it is resolved already.
async fn resolve_after(
    state: &AppState,
    exception: &Exception,
    notes: &str,
) -> orchestrator_core::Result<()> {
    if exception.status == ExceptionStatus::Resolved {
        return Ok(());
    }
    decide_with(state, exception, ExceptionStatus::Resolved, notes)
        .await
        .map(|_| ())
}
