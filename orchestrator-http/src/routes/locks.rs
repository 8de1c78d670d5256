//! `/api/locks`: who holds which paths, an administrator's force release, and conflict
//! checks before work starts.

use actix_web::{HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::{LockPath, LockQuery};
use orchestrator_core::model::FileLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AgentRef, Data, TaskRef, agents_by_id, ok, tasks_by_id};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, InputErrors, ReadErrors};
use crate::extract::{Json, Params};
use crate::state::AppState;

/// Most paths one check accepts.
const MAX_CHECK_PATHS: usize = 100;
/// Longest force-release reason.
pub(crate) const MAX_REASON_CHARS: usize = 500;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/locks")
            .route(web::get().to(list_locks))
            .route(web::delete().to(force_release)),
    )
    .service(web::resource("/locks/check").route(web::post().to(check_locks)));
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LockItem {
    #[serde(flatten)]
    lock: FileLock,
    agent: Option<AgentRef>,
    task: Option<TaskRef>,
    is_expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LockList {
    locks: Vec<LockItem>,
    total_count: usize,
}

/// Lists locks newest first, including expired locks the supervisor has not swept yet
/// (`includeExpired=false` leaves them out), each marked `isExpired`.
#[utoipa::path(
    get,
    path = "/api/locks",
    tag = "locks",
    summary = "Path locks, newest first",
    params(
        ("agentId" = Option<Uuid>, Query, description = "Only this holder"),
        ("taskId" = Option<Uuid>, Query, description = "Only for this task"),
        ("includeExpired" = Option<bool>, Query, description = "Also expired locks not yet swept (default true)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Default 100"),
    ),
    responses(
        (status = 200, description = "Locks", body = Data<LockList>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn list_locks(
    _: Admin,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let query = LockQuery {
        agent_id: params.parse::<AgentId>("agentId")?,
        task_id: params.parse::<TaskId>("taskId")?,
        include_expired: params.flag("includeExpired", true)?,
        limit: params.int("limit", 1..=200, 100)?,
    };
    query.validate()?;
    let now = state.now();
    let locks = state.store.list_locks(&query, now).await?;
    let agents = agents_by_id(&state, locks.iter().map(|l| l.agent_id)).await?;
    let tasks = tasks_by_id(&state, locks.iter().filter_map(|l| l.task_id)).await?;
    let locks: Vec<LockItem> = locks
        .into_iter()
        .map(|lock| LockItem {
            agent: agents.get(&lock.agent_id).map(AgentRef::from),
            task: lock
                .task_id
                .and_then(|id| tasks.get(&id))
                .map(TaskRef::from),
            is_expired: !lock.is_live(now),
            lock,
        })
        .collect();
    Ok(ok(LockList {
        total_count: locks.len(),
        locks,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ForceReleaseBody {
    #[schema(value_type = LockPath)]
    file_path: String,
    reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PreviousHolder {
    agent_id: AgentId,
    agent_name: Option<String>,
    task_id: Option<TaskId>,
    task_title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Released {
    message: &'static str,
    file_path: String,
    /// The first holder.
    previous_holder: Option<PreviousHolder>,
    /// Every holder (a shared lock may have several).
    previous_holders: Vec<PreviousHolder>,
    exception_id: orchestrator_core::ids::ExceptionId,
}

#[utoipa::path(
    delete,
    path = "/api/locks",
    tag = "locks",
    summary = "Force-release every lock on a path (recorded as an exception)",
    request_body = ForceReleaseBody,
    responses(
        (status = 200, description = "Released", body = Data<Released>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn force_release(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<ForceReleaseBody>,
) -> ApiResult<HttpResponse> {
    LockPath::parse_field(&body.file_path, "filePath")?;
    if let Some(reason) = &body.reason
        && reason.chars().count() > MAX_REASON_CHARS
    {
        return Err(ApiError::invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let released = state
        .store
        .force_release(&body.file_path, body.reason, state.now())
        .await
        .map_err(|err| match err {
            orchestrator_core::Error::NotFound { .. } => ApiError::not_found("Lock not found"),
            other => other.into(),
        })?;
    let agents = agents_by_id(&state, released.released.iter().map(|l| l.agent_id)).await?;
    let tasks = tasks_by_id(&state, released.released.iter().filter_map(|l| l.task_id)).await?;
    let holders: Vec<PreviousHolder> = released
        .released
        .iter()
        .map(|lock| PreviousHolder {
            agent_id: lock.agent_id,
            agent_name: agents.get(&lock.agent_id).and_then(|a| a.name.clone()),
            task_id: lock.task_id,
            task_title: lock
                .task_id
                .and_then(|id| tasks.get(&id))
                .map(|t| t.title.clone()),
        })
        .collect();
    let file_path = released
        .released
        .first()
        .map_or(body.file_path, |lock| lock.file_path.clone());
    Ok(ok(Released {
        message: "Lock forcibly released",
        file_path,
        previous_holder: holders.first().cloned(),
        previous_holders: holders,
        exception_id: released.exception.id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckBody {
    #[schema(min_items = 1, max_items = 100, value_type = Vec<LockPath>)]
    file_paths: Vec<String>,
    exclude_agent_id: Option<AgentId>,
}

#[derive(Debug, Serialize, ToSchema)]
struct LockCheckSummary {
    total: usize,
    locked: usize,
    available: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LockedFile {
    /// The requested path, normalized.
    file_path: String,
    /// The held path that covers or overlaps it.
    locked_path: String,
    agent_id: AgentId,
    agent_name: Option<String>,
    agent_status: String,
    task_id: Option<TaskId>,
    task_title: Option<String>,
    acquired_at: Timestamp,
    expires_at: Timestamp,
    is_expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CheckResult {
    has_conflicts: bool,
    summary: LockCheckSummary,
    locked_files: Vec<LockedFile>,
    available_files: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/locks/check",
    tag = "locks",
    summary = "Which of these paths are held by someone else",
    request_body = CheckBody,
    responses(
        (status = 200, description = "The check", body = Data<CheckResult>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn check_locks(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<CheckBody>,
) -> ApiResult<HttpResponse> {
    if body.file_paths.is_empty() || body.file_paths.len() > MAX_CHECK_PATHS {
        return Err(ApiError::invalid(
            "filePaths",
            format!("give 1 to {MAX_CHECK_PATHS} paths"),
        ));
    }
    let requested = orchestrator_core::lock::parse_paths(&body.file_paths, "filePaths")?;
    let conflicts = state
        .store
        .check(&body.file_paths, body.exclude_agent_id, state.now())
        .await?;
    let agents = agents_by_id(&state, conflicts.iter().map(|c| c.held.agent_id)).await?;
    let tasks = tasks_by_id(&state, conflicts.iter().filter_map(|c| c.held.task_id)).await?;
    let locked_files: Vec<LockedFile> = conflicts
        .iter()
        .map(|conflict| {
            let held = &conflict.held;
            let agent = agents.get(&held.agent_id);
            LockedFile {
                file_path: conflict.requested_path.clone(),
                locked_path: held.file_path.clone(),
                agent_id: held.agent_id,
                agent_name: agent.and_then(|a| a.name.clone()),
                agent_status: agent.map_or_else(|| "UNKNOWN".to_owned(), |a| a.status.to_string()),
                task_id: held.task_id,
                task_title: held
                    .task_id
                    .and_then(|id| tasks.get(&id))
                    .map(|t| t.title.clone()),
                acquired_at: held.acquired_at,
                expires_at: held.expires_at,
                is_expired: false,
            }
        })
        .collect();
    let mut available_files: Vec<String> = requested
        .iter()
        .map(ToString::to_string)
        .filter(|path| !locked_files.iter().any(|locked| locked.file_path == *path))
        .collect();
    available_files.dedup();
    let locked = requested.len() - available_files.len();
    Ok(ok(CheckResult {
        has_conflicts: !locked_files.is_empty(),
        summary: LockCheckSummary {
            total: requested.len(),
            locked,
            available: available_files.len(),
        },
        locked_files,
        available_files,
    }))
}
