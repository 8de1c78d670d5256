//! `/api/runner/*`: the runner protocol. A runner authenticates with its runner token
//! (`Authorization: Bearer`, or `runnerToken` in the body or query), claims work by long
//! poll into its agent slots, and reports on each attempt with the attempt's lease:
//! heartbeats (answered with a control signal), log batches, and completion.

use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::attempts::LockAnswer;
use orchestrator_core::coordination;
use orchestrator_core::ids::{AgentId, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentStatus, RiskLevel, RunnerSessionStatus, TaskQuery, TaskStatus,
};
use orchestrator_core::protocol::{
    ChangedPaths, ClaimWork, Claimed, Completed, CompletionReport, HeartbeatAnswer,
    HeartbeatReport, LogBatch, LogsReceived, MAX_COMPLETION_BYTES, MAX_LOG_BATCH_BYTES,
    SlotStatusSet,
};
use orchestrator_core::store::MAX_LOOKUP_IDS;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Data, ok, tasks_by_id};
use crate::auth::{RunnerCall, runner_session};
use crate::error::{ApiError, ApiResult, InputErrors, LargeWriteErrors, WriteErrors};
use crate::extract::Params;
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/runner/status")
            .route(web::get().to(status))
            .route(web::post().to(update_status)),
    )
    .service(web::resource("/runner/claim").route(web::post().to(claim)))
    .service(web::resource("/runner/heartbeat").route(web::post().to(heartbeat)))
    .service(
        web::resource("/runner/logs")
            .app_data(web::PayloadConfig::new(MAX_LOG_BATCH_BYTES))
            .route(web::post().to(logs)),
    )
    .service(web::resource("/runner/tasks").route(web::post().to(task_states)))
    .service(web::resource("/runner/locks").route(web::post().to(acquire_locks)))
    .service(
        web::resource("/runner/complete")
            .app_data(web::PayloadConfig::new(MAX_COMPLETION_BYTES))
            .route(web::post().to(complete)),
    );
}

/// Tasks a runner asks about, by id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TaskStatesRequest {
    /// 1 to 1,000 task ids.
    #[schema(min_items = 1, max_items = 1_000)]
    ids: Vec<TaskId>,
}

/// Where a task stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskState {
    id: TaskId,
    title: String,
    status: TaskStatus,
}

#[utoipa::path(
    post,
    path = "/api/runner/tasks",
    tag = "runner protocol",
    summary = "Where tasks stand, for a runner's worktrees",
    request_body = TaskStatesRequest,
    responses(
        (status = 200, description = "The tasks that exist, in no particular order", body = Data<Vec<TaskState>>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn task_states(
    state: web::Data<AppState>,
    RunnerCall { body, .. }: RunnerCall<TaskStatesRequest>,
) -> ApiResult<HttpResponse> {
    if body.ids.is_empty() || body.ids.len() > MAX_LOOKUP_IDS {
        return Err(ApiError::invalid(
            "ids",
            format!(
                "give 1 to {MAX_LOOKUP_IDS} task ids, not {}",
                body.ids.len()
            ),
        ));
    }
    let tasks = tasks_by_id(&state, body.ids.into_iter()).await?;
    Ok(ok(tasks
        .into_values()
        .map(|task| TaskState {
            id: task.id,
            title: task.title,
            status: task.status,
        })
        .collect::<Vec<_>>()))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionView {
    id: RunnerSessionId,
    name: String,
    working_dir: String,
    is_active: bool,
    last_seen_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
struct TaskTitle {
    id: TaskId,
    title: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ActiveAgent {
    id: AgentId,
    status: AgentStatus,
    current_task: Option<TaskTitle>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NextTask {
    id: TaskId,
    title: String,
    priority: u8,
    risk_level: RiskLevel,
}

#[derive(Debug, Serialize, ToSchema)]
struct Available {
    count: u64,
    next: Option<NextTask>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    session: SessionView,
    active_agents: Vec<ActiveAgent>,
    available_tasks: Available,
}

#[utoipa::path(
    get,
    path = "/api/runner/status",
    tag = "runner protocol",
    summary = "The runner's session, busy agents and the queue",
    params(
        ("runnerToken" = Option<String>, Query, description = "The runner token, when not sent as a bearer token"),
    ),
    responses(
        (status = 200, description = "Status", body = Data<StatusView>),
        InputErrors,
    ),
    security(("runner" = [])),
)]
async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, params.text("runnerToken")).await?;
    let slots = coordination::session_slots(state.store.as_ref(), session.id).await?;
    let busy: Vec<Agent> = slots
        .into_iter()
        .filter(|a| a.current_task_id.is_some())
        .collect();
    let tasks = tasks_by_id(&state, busy.iter().filter_map(|a| a.current_task_id)).await?;
    let active_agents = busy
        .into_iter()
        .map(|agent| ActiveAgent {
            id: agent.id,
            status: agent.status,
            current_task: agent
                .current_task_id
                .and_then(|id| tasks.get(&id))
                .map(|task| TaskTitle {
                    id: task.id,
                    title: task.title.clone(),
                }),
        })
        .collect();
    let queued = state
        .store
        .list_tasks(&TaskQuery {
            status: Some(TaskStatus::Queued),
            limit: 1,
            ..TaskQuery::default()
        })
        .await?;
    Ok(ok(StatusView {
        session: SessionView {
            id: session.id,
            name: session.name,
            working_dir: session.working_dir,
            is_active: session.status == RunnerSessionStatus::Active,
            last_seen_at: session.last_seen_at,
        },
        active_agents,
        available_tasks: Available {
            count: queued.total_count,
            next: queued.items.into_iter().next().map(|task| NextTask {
                id: task.id,
                title: task.title,
                priority: task.priority,
                risk_level: task.risk_level,
            }),
        },
    }))
}

/// The body of `POST /api/runner/status`: a runner setting one of its agents' status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusUpdate {
    /// The runner token, for runners that send it here rather than as a bearer token.
    #[serde(rename = "runnerToken")]
    _runner_token: Option<String>,
    agent_id: AgentId,
    status: AgentStatus,
}

#[utoipa::path(
    post,
    path = "/api/runner/status",
    tag = "runner protocol",
    summary = "Set one of the runner's agents' status",
    request_body = StatusUpdate,
    responses(
        (status = 200, description = "Updated", body = Data<SlotStatusSet>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn update_status(
    state: web::Data<AppState>,
    RunnerCall { session, body }: RunnerCall<StatusUpdate>,
) -> ApiResult<HttpResponse> {
    let updated = state
        .protocol()
        .set_slot_status(&session, body.agent_id, body.status)
        .await?;
    Ok(ok(updated))
}

#[utoipa::path(
    post,
    path = "/api/runner/claim",
    tag = "runner protocol",
    summary = "Claim tasks into the runner's agent slots, waiting up to waitMs",
    request_body = ClaimWork,
    responses(
        (status = 200, description = "Claims (empty when no work came)", body = Data<Claimed>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn claim(
    state: web::Data<AppState>,
    RunnerCall {
        session,
        body: request,
    }: RunnerCall<ClaimWork>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.protocol().claim(&session, request).await?))
}

#[utoipa::path(
    post,
    path = "/api/runner/heartbeat",
    tag = "runner protocol",
    summary = "Extend an attempt's lease (and report IN_PROGRESS or VERIFYING); answers continue, stop or pause",
    request_body = HeartbeatReport,
    responses(
        (status = 200, description = "Acknowledged", body = Data<HeartbeatAnswer>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn heartbeat(
    state: web::Data<AppState>,
    RunnerCall {
        session,
        body: report,
    }: RunnerCall<HeartbeatReport>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.protocol().heartbeat(&session, report).await?))
}

#[utoipa::path(
    post,
    path = "/api/runner/logs",
    tag = "runner protocol",
    summary = "Append 1-500 log entries to an attempt",
    request_body = LogBatch,
    responses(
        (status = 200, description = "Stored", body = Data<LogsReceived>),
        LargeWriteErrors,
    ),
    security(("runner" = [])),
)]
async fn logs(
    state: web::Data<AppState>,
    RunnerCall {
        session,
        body: batch,
    }: RunnerCall<LogBatch>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.protocol().append_logs(&session, batch).await?))
}

/// Locks paths an attempt changed beyond its files hint, all or none, until its lease
/// ends. Paths held by another agent are answered as conflicts (not an error), and a
/// CONFLICT_DETECTED exception names the holders for a human.
#[utoipa::path(
    post,
    path = "/api/runner/locks",
    tag = "runner protocol",
    summary = "Lock the paths an attempt changed outside its locks (all or none)",
    request_body = ChangedPaths,
    responses(
        (status = 200, description = "Granted, or the conflicts", body = Data<LockAnswer>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn acquire_locks(
    state: web::Data<AppState>,
    RunnerCall {
        session,
        body: request,
    }: RunnerCall<ChangedPaths>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.protocol().lock_paths(&session, request).await?))
}

/// Ends the attempt while its lease is live, in one transaction with its evidence (the
/// verification result, the changed files and the patch, a closing log entry with the
/// summary, commit and diff stats) and, for a failure, its follow-up: the retry policy
/// queues it again, or an exception asks a human. The same completion sent again finds
/// the attempt ended and answers as the first time.
#[utoipa::path(
    post,
    path = "/api/runner/complete",
    tag = "runner protocol",
    summary = "End an attempt with its evidence (idempotent)",
    request_body = CompletionReport,
    responses(
        (status = 200, description = "Ended", body = Data<Completed>),
        LargeWriteErrors,
    ),
    security(("runner" = [])),
)]
async fn complete(
    state: web::Data<AppState>,
    RunnerCall {
        session,
        body: report,
    }: RunnerCall<CompletionReport>,
) -> ApiResult<HttpResponse> {
    Ok(ok(state.protocol().complete(&session, report).await?))
}
