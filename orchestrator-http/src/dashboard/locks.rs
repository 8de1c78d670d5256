//! `GET /locks`: every lock with its path, holder, task, fencing token and the time it
//! runs out (counted down in the browser); a person force-releases a path with a reason,
//! which the inbox records.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use orchestrator_core::lock::{LockPath, LockQuery};
use orchestrator_core::model::{Task, TaskQuery, TaskStatus};
use serde::Deserialize;

use super::{
    Notice, PartViewer, Section, Viewer, agent_labels, explain, page, page_at, render,
    see_other_with,
};
use crate::error::ApiResult;
use crate::routes::locks::MAX_REASON_CHARS;
use crate::routes::tasks_by_id;
use crate::state::AppState;

/// Most locks the page lists.
const MAX_LOCKS: u32 = 200;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page_at("/locks").route(web::get().to(locks)))
        .service(page_at("/fragments/locks").route(web::get().to(locks_fragment)))
        .service(page_at("/locks/release").route(web::post().to(release)));
}

/// A lock in the list.
struct Row {
    path: String,
    mode: &'static str,
    holder: String,
    holder_id: String,
    /// The task as (id, title).
    task: Option<(String, String)>,
    fencing_token: u64,
    acquired: String,
    expires: String,
    expired: bool,
    /// Queued tasks (of the first [`QUEUE_LOOKED_AT`]) whose files hint it covers, as
    /// (id, title).
    waiting: Vec<(String, String)>,
}

/// How far into the queue the page looks for tasks a lock holds back.
const QUEUE_LOOKED_AT: u32 = 100;

#[derive(Template)]
#[template(path = "locks.html")]
struct LocksPage {
    section: Section,
    viewer: Viewer,
    rows: Vec<Row>,
    max: u32,
    max_reason: usize,
}

#[derive(Template)]
#[template(path = "locks.html", block = "live")]
struct LocksLive(LocksPage);

impl std::ops::Deref for LocksLive {
    type Target = LocksPage;

    fn deref(&self) -> &LocksPage {
        &self.0
    }
}

async fn locks(viewer: Viewer, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let template = locks_page(&state, viewer.clone()).await?;
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

/// `GET /fragments/locks`: the list alone.
async fn locks_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let template = locks_page(&state, viewer).await?;
    Ok(render(StatusCode::OK, &LocksLive(template)))
}

async fn locks_page(state: &AppState, viewer: Viewer) -> ApiResult<LocksPage> {
    let now = state.now();
    let locks = state
        .store
        .list_locks(
            &LockQuery {
                limit: MAX_LOCKS,
                ..LockQuery::default()
            },
            now,
        )
        .await?;
    let agents = agent_labels(state, locks.iter().map(|lock| lock.agent_id)).await?;
    let tasks = tasks_by_id(state, locks.iter().filter_map(|lock| lock.task_id)).await?;
    let queued: Vec<(Task, Vec<LockPath>)> = state
        .store
        .list_tasks(&TaskQuery {
            status: Some(TaskStatus::Queued),
            limit: QUEUE_LOOKED_AT,
            ..TaskQuery::default()
        })
        .await?
        .items
        .into_iter()
        .map(|task| {
            let paths = task
                .files_hint
                .iter()
                .filter_map(|hint| LockPath::parse(hint).ok())
                .collect();
            (task, paths)
        })
        .collect();
    let rows = locks
        .iter()
        .map(|lock| Row {
            waiting: LockPath::parse(&lock.file_path)
                .map(|held| {
                    queued
                        .iter()
                        .filter(|(_, paths)| paths.iter().any(|path| path.overlaps(&held)))
                        .map(|(task, _)| (task.id.to_string(), task.title.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            path: lock.file_path.clone(),
            mode: lock.mode.as_str(),
            holder: agents
                .get(&lock.agent_id)
                .cloned()
                .unwrap_or_else(|| lock.agent_id.to_string()[..8].to_owned()),
            holder_id: lock.agent_id.to_string(),
            task: lock.task_id.and_then(|id| {
                tasks
                    .get(&id)
                    .map(|task| (id.to_string(), task.title.clone()))
            }),
            fencing_token: lock.fencing_token,
            acquired: lock.acquired_at.to_string(),
            expires: lock.expires_at.to_string(),
            expired: !lock.is_live(now),
        })
        .collect();
    Ok(LocksPage {
        section: Section::Locks,
        viewer,
        rows,
        max: MAX_LOCKS,
        max_reason: MAX_REASON_CHARS,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReleaseForm {
    csrf: String,
    path: String,
    reason: String,
}

/// `POST /locks/release`: takes away every lock on the path.
async fn release(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ReleaseForm>,
) -> HttpResponse {
    if let Err(refusal) = Viewer::of_form(&req, &state, &form.csrf) {
        return refusal.response();
    }
    let reason = form.reason.trim();
    let released = if reason.chars().count() > MAX_REASON_CHARS {
        Err(orchestrator_core::Error::invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ))
    } else {
        match LockPath::parse_field(&form.path, "path") {
            Ok(_) => {
                state
                    .store
                    .force_release(
                        &form.path,
                        (!reason.is_empty()).then(|| reason.to_owned()),
                        state.now(),
                    )
                    .await
            }
            Err(err) => Err(err),
        }
    };
    let notice = match released {
        Ok(released) => Notice::done(format!(
            "Released {} on {}; the inbox records it.",
            match released.released.len() {
                1 => "1 lock".to_owned(),
                count => format!("{count} locks"),
            },
            form.path
        )),
        Err(err) => Notice::problem(format!("Could not release: {}", explain(err).0)),
    };
    see_other_with(&state, "/locks", &notice)
}
