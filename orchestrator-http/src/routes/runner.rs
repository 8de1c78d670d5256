//! `/api/runner/*`: the runner protocol. A runner authenticates with its runner token
//! (`Authorization: Bearer`, or the original's `runnerToken` in the body or query), claims
//! work by long poll into its agent slots, and reports on each attempt with the attempt's
//! lease: heartbeats (answered with a control signal), log batches, and completion.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::attempts::{self, AttemptCompletion, DiffStats, LockAnswer};
use orchestrator_core::change::{self, LeaseRef};
use orchestrator_core::coordination::{self, Claim, ClaimRequest, ControlSignal, MAX_BATCH_CLAIM};
use orchestrator_core::ids::{AgentId, LeaseToken, RunnerSessionId, TaskId};
use orchestrator_core::model::{
    Agent, AgentStatus, FileLock, LogType, NewAgentLog, NewVerificationResult, RiskLevel,
    RunnerSession, RunnerSessionStatus, Task, TaskQuery, TaskStatus, Usage,
};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::{Timestamp, store::MAX_LOG_BATCH};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Data, ok, tasks_by_id};
use crate::auth::{authenticate_runner, bearer_token};
use crate::error::{ApiError, ApiResult, Denied, ErrorEnvelope, WriteErrors};
use crate::extract::{Json, Params};
use crate::state::AppState;
use orchestrator_core::store::StoreExt;

/// Longest a claim may wait for work.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Lease length when the runner does not ask for one.
const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// Paths one lock request may name.
const MAX_LOCK_PATHS: usize = 1_000;
/// Most agent slots one runner session keeps.
const MAX_SLOTS: usize = MAX_BATCH_CLAIM;
/// A session's last-seen time is written at most this often.
const SEEN_EVERY: Duration = Duration::from_secs(30);
/// Body limit of log batches (500 entries of up to 50,000 characters need room).
pub(crate) const LOG_BATCH_BODY_LIMIT: usize = 5 * 1024 * 1024;

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
            .app_data(web::PayloadConfig::new(LOG_BATCH_BODY_LIMIT))
            .route(web::post().to(logs)),
    )
    .service(web::resource("/runner/locks").route(web::post().to(acquire_locks)))
    .service(web::resource("/runner/complete").route(web::post().to(complete)));
}

/// Authenticates the runner and records that it called in.
async fn runner_session(
    state: &AppState,
    req: &HttpRequest,
    body_token: Option<&str>,
) -> ApiResult<RunnerSession> {
    let session = authenticate_runner(state, bearer_token(req).or(body_token)).await?;
    let now = state.now();
    let quiet_for = now.since(session.last_seen_at);
    if session.status == RunnerSessionStatus::Inactive || quiet_for >= SEEN_EVERY {
        return Ok(state
            .store
            .apply_runner_session_event(session.id, RunnerSessionEvent::Seen, now)
            .await?);
    }
    Ok(session)
}

/// The agent `id`, which must be a slot of `session`.
async fn own_agent(state: &AppState, session: &RunnerSession, id: AgentId) -> ApiResult<Agent> {
    let agent = state.store.get_agent(id).await?;
    if agent.runner_session_id != Some(session.id) {
        return Err(ApiError::forbidden(
            "Agent does not belong to this runner session",
        ));
    }
    Ok(agent)
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
        Denied,
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

/// Every live (not retired) slot of the session.
/// The original's `POST /api/runner/status`: registration without a token (refused: runners
/// connect with a setup token), or a runner setting one of its agents' status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusUpdate {
    runner_token: Option<String>,
    name: Option<String>,
    #[serde(rename = "workingDir")]
    _working_dir: Option<String>,
    agent_id: Option<AgentId>,
    status: Option<AgentStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusUpdated {
    success: bool,
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
        (status = 200, description = "Updated", body = Data<StatusUpdated>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn update_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<StatusUpdate>,
) -> ApiResult<HttpResponse> {
    if body.name.is_some() && body.runner_token.is_none() && bearer_token(&req).is_none() {
        return Err(ApiError::forbidden(
            "Runners register with a setup token: an admin mints one with GET /api/connect, \
             then `agent-orchestrator connect <token>` exchanges it",
        ));
    }
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    let (Some(agent_id), Some(status)) = (body.agent_id, body.status) else {
        return Err(ApiError::invalid(
            "agentId",
            "agentId and status are required",
        ));
    };
    let agent = own_agent(&state, &session, agent_id).await?;
    let action = change::slot_status_request(agent.status, status)?;
    let agent = match action {
        Some(action) => {
            state
                .store
                .apply_agent_action(agent_id, action, state.now())
                .await?
        }
        None => agent,
    };
    Ok(ok(StatusUpdated {
        success: true,
        agent_id,
        status: agent.status,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimBody {
    runner_token: Option<String>,
    /// Claim this task instead of the next in the queue.
    task_id: Option<TaskId>,
    working_dir: Option<String>,
    /// How long to wait for work when none is claimable now (at most 30,000).
    wait_ms: Option<u64>,
    /// How many tasks to claim at once, one per agent slot (1 to 32).
    max: Option<usize>,
    /// Lease length in milliseconds (5 s to 1 h; default 5 min).
    lease_ttl_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClaimedAgent {
    id: AgentId,
    branch_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClaimView {
    task: Task,
    agent: ClaimedAgent,
    lease: LeaseRef,
    lease_expires_at: Option<Timestamp>,
    locks: Vec<FileLock>,
}

impl From<Claim> for ClaimView {
    fn from(claim: Claim) -> Self {
        Self {
            agent: ClaimedAgent {
                id: claim.agent_id,
                branch_name: claim.task.branch_name.clone(),
            },
            lease: claim.lease,
            lease_expires_at: claim.task.lease_expires_at,
            locks: claim.locks,
            task: claim.task,
        }
    }
}

/// The first claim's task and agent at the top level keep the original's shape; `claims`
/// holds every claim of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Claimed {
    task: Option<Task>,
    agent: Option<ClaimedAgent>,
    lease: Option<LeaseRef>,
    working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    claims: Vec<ClaimView>,
}

#[utoipa::path(
    post,
    path = "/api/runner/claim",
    tag = "runner protocol",
    summary = "Claim tasks into the runner's agent slots, waiting up to waitMs",
    request_body = ClaimBody,
    responses(
        (status = 200, description = "Claims (empty when no work came)", body = Data<Claimed>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn claim(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<ClaimBody>,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    let wait = Duration::from_millis(body.wait_ms.unwrap_or(0));
    if wait > MAX_WAIT {
        return Err(ApiError::invalid("waitMs", "at most 30000 (30 s)"));
    }
    let max = body.max.unwrap_or(1);
    if !(1..=MAX_SLOTS).contains(&max) || (body.task_id.is_some() && max != 1) {
        return Err(ApiError::invalid(
            "max",
            format!("1 to {MAX_SLOTS}, and 1 when taskId is given"),
        ));
    }
    let lease_ttl = body
        .lease_ttl_ms
        .map_or(DEFAULT_LEASE, Duration::from_millis);
    coordination::check_lease_ttl(lease_ttl).map_err(|err| match err {
        orchestrator_core::Error::InvalidInput { message, .. } => {
            ApiError::invalid("leaseTtlMs", message)
        }
        other => other.into(),
    })?;
    let agents = coordination::idle_slots(state.store.as_ref(), &session, max, state.now()).await?;
    if agents.is_empty() {
        return Err(ApiError::conflict(format!(
            "Every one of this runner's {MAX_SLOTS} agent slots is busy; finish or stop work first"
        )));
    }
    let request = ClaimRequest {
        agents,
        runner_session_id: Some(session.id),
        task_id: body.task_id,
        lease_ttl,
    };
    let claims =
        coordination::claim_waiting(state.store.as_ref(), state.clock.as_ref(), request, wait)
            .await?;
    let claims: Vec<ClaimView> = claims.into_iter().map(ClaimView::from).collect();
    let first = claims.first();
    Ok(ok(Claimed {
        task: first.map(|c| c.task.clone()),
        agent: first.map(|c| ClaimedAgent {
            id: c.agent.id,
            branch_name: c.agent.branch_name.clone(),
        }),
        lease: first.map(|c| c.lease),
        working_dir: body.working_dir,
        message: claims.is_empty().then_some("No tasks available"),
        claims,
    }))
}

/// Every report on an attempt carries the agent and the attempt's lease: `agentId`,
/// `taskId`, `attempt` and `leaseToken`.
macro_rules! attempt_report {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct $name {
            runner_token: Option<String>,
            agent_id: AgentId,
            task_id: TaskId,
            attempt: u32,
            lease_token: LeaseToken,
            $($(#[$fmeta])* $field: $ty,)*
        }

        impl $name {
            fn lease(&self) -> LeaseRef {
                LeaseRef {
                    task_id: self.task_id,
                    attempt: self.attempt,
                    lease_token: self.lease_token,
                }
            }
        }
    };
}

attempt_report! {
    struct HeartbeatBody {
        /// Lease length to extend to, in milliseconds (default 5 min).
        lease_ttl_ms: Option<u64>,
        /// Where the attempt has got to: IN_PROGRESS once the agent works, VERIFYING once
        /// it has finished and its change is being checked.
        status: Option<TaskStatus>,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HeartbeatView {
    success: bool,
    timestamp: Timestamp,
    /// What the runner must do: continue, stop (the task was cancelled) or pause.
    signal: ControlSignal,
    lease_expires_at: Timestamp,
}

#[utoipa::path(
    post,
    path = "/api/runner/heartbeat",
    tag = "runner protocol",
    summary = "Extend an attempt's lease (and report IN_PROGRESS or VERIFYING); answers continue, stop or pause",
    request_body = HeartbeatBody,
    responses(
        (status = 200, description = "Acknowledged", body = Data<HeartbeatView>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn heartbeat(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<HeartbeatBody>,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    own_agent(&state, &session, body.agent_id).await?;
    let ttl = body
        .lease_ttl_ms
        .map_or(DEFAULT_LEASE, Duration::from_millis);
    let now = state.now();
    if let Some(status) = body.status {
        attempts::report_progress(state.store.as_ref(), body.lease(), status, now).await?;
    }
    let ack = state.store.heartbeat(body.lease(), ttl, now).await?;
    Ok(ok(HeartbeatView {
        success: true,
        timestamp: now,
        signal: ack.signal,
        lease_expires_at: ack.lease_expires_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LogEntry {
    log_type: LogType,
    content: String,
    metadata: Option<serde_json::Value>,
    /// The runner's clock; kept in the metadata, never used as the entry's time.
    timestamp: Option<String>,
}

attempt_report! {
    struct LogsBody {
        logs: Vec<LogEntry>,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LogsReceived {
    success: bool,
    logs_received: u64,
}

#[utoipa::path(
    post,
    path = "/api/runner/logs",
    tag = "runner protocol",
    summary = "Append 1-500 log entries to an attempt",
    request_body = LogsBody,
    responses(
        (status = 200, description = "Stored", body = Data<LogsReceived>),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 403, description = "A token of the other scope", body = ErrorEnvelope),
        (status = 404, description = "No such resource", body = ErrorEnvelope),
        (status = 409, description = "Conflicts with the current state (a stale lease, an illegal transition)", body = ErrorEnvelope),
        (status = 413, description = "Body over the route's limit", body = ErrorEnvelope),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorEnvelope),
    ),
    security(("runner" = [])),
)]
async fn logs(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<LogsBody>,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    own_agent(&state, &session, body.agent_id).await?;
    if body.logs.is_empty() || body.logs.len() > MAX_LOG_BATCH {
        return Err(ApiError::invalid(
            "logs",
            format!("send 1 to {MAX_LOG_BATCH} entries per batch"),
        ));
    }
    let lease = body.lease();
    let entries = body
        .logs
        .into_iter()
        .map(|entry| NewAgentLog {
            agent_id: body.agent_id,
            task_id: Some(body.task_id),
            log_type: entry.log_type,
            content: entry.content,
            metadata: with_runner_time(entry.metadata, entry.timestamp),
        })
        .collect();
    let received = state
        .store
        .append_attempt_logs(lease, entries, state.now())
        .await?;
    Ok(ok(LogsReceived {
        success: true,
        logs_received: received,
    }))
}

/// Metadata with the runner's own timestamp kept under `runnerTimestamp`.
fn with_runner_time(
    metadata: Option<serde_json::Value>,
    timestamp: Option<String>,
) -> Option<serde_json::Value> {
    let Some(timestamp) = timestamp else {
        return metadata;
    };
    match metadata {
        Some(serde_json::Value::Object(mut map)) => {
            map.insert("runnerTimestamp".into(), timestamp.into());
            Some(serde_json::Value::Object(map))
        }
        Some(other) => Some(json!({ "value": other, "runnerTimestamp": timestamp })),
        None => Some(json!({ "runnerTimestamp": timestamp })),
    }
}

attempt_report! {
    struct LocksBody {
        /// Repository-relative paths the attempt changed outside the locks it holds.
        paths: Vec<String>,
    }
}

/// Locks paths an attempt changed beyond its files hint, all or none, until its lease
/// ends. Paths held by another agent are answered as conflicts (not an error), and a
/// CONFLICT_DETECTED exception names the holders for a human.
#[utoipa::path(
    post,
    path = "/api/runner/locks",
    tag = "runner protocol",
    summary = "Lock the paths an attempt changed outside its locks (all or none)",
    request_body = LocksBody,
    responses(
        (status = 200, description = "Granted, or the conflicts", body = Data<LockAnswer>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn acquire_locks(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<LocksBody>,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    own_agent(&state, &session, body.agent_id).await?;
    if body.paths.is_empty() || body.paths.len() > MAX_LOCK_PATHS {
        return Err(ApiError::invalid(
            "paths",
            format!("send 1 to {MAX_LOCK_PATHS} paths"),
        ));
    }
    let answer = attempts::lock_changed_paths(
        state.store.as_ref(),
        body.agent_id,
        body.lease(),
        body.paths,
        state.now(),
    )
    .await?;
    Ok(ok(answer))
}

attempt_report! {
    struct CompleteBody {
        success: bool,
        /// The runner stopped because the task was cancelled (its heartbeat said stop).
        #[serde(default)]
        cancelled: bool,
        summary: Option<String>,
        error: Option<String>,
        commit_sha: Option<String>,
        #[serde(default)]
        usage: Usage,
        diff_stats: Option<DiffStats>,
        verification: Option<NewVerificationResult>,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Completed {
    success: bool,
    task_status: TaskStatus,
    agent_status: AgentStatus,
}

/// Ends the attempt while its lease is live, in one transaction with its evidence (the
/// verification result, a closing log entry with the summary, commit and diff stats) and,
/// for a failure, its follow-up: the retry policy queues it again, or an exception asks a
/// human. The same completion sent again finds the attempt ended and answers as the
/// first time.
#[utoipa::path(
    post,
    path = "/api/runner/complete",
    tag = "runner protocol",
    summary = "End an attempt with its evidence (idempotent)",
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Ended", body = Data<Completed>),
        WriteErrors,
    ),
    security(("runner" = [])),
)]
async fn complete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<CompleteBody>,
) -> ApiResult<HttpResponse> {
    let session = runner_session(&state, &req, body.runner_token.as_deref()).await?;
    let agent_id = body.agent_id;
    own_agent(&state, &session, agent_id).await?;
    let lease = body.lease();
    let completion = AttemptCompletion {
        success: body.success,
        cancelled: body.cancelled,
        summary: body.summary,
        error: body.error,
        commit_sha: body.commit_sha,
        usage: body.usage,
        diff_stats: body.diff_stats,
        verification: body.verification,
    };
    let task = attempts::complete_attempt(
        state.store.as_ref(),
        &state.retry_policy,
        agent_id,
        lease,
        completion,
        state.now(),
    )
    .await?;
    let agent = state.store.get_agent(agent_id).await?;
    Ok(ok(Completed {
        success: true,
        task_status: task.status,
        agent_status: agent.status,
    }))
}
