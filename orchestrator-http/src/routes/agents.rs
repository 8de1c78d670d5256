//! `/api/agents`: the agent slots of connected runners, their logs, and the controls a
//! person has over them (stop, pause, resume, retire).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use orchestrator_core::change::{self, TaskAction};
use orchestrator_core::ids::{AgentId, RunnerSessionId, TaskId};
use orchestrator_core::lock::LockQuery;
use orchestrator_core::model::{
    Agent, AgentActivityCounts, AgentLog, AgentQuery, AgentSort, AgentStatus, ExceptionQuery,
    FileLock, IdPrefix, LogCursor, LogQuery, LogType, SortOrder, Task,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tasks::requeue_for_runners;
use super::{Data, TaskRef, ok, tasks_by_id};
use crate::auth::Admin;
use crate::error::{ApiResult, InputErrors, ReadErrors, WriteErrors};
use crate::extract::{Json, Params, parse_id};
use crate::state::AppState;
use orchestrator_core::store::StoreExt;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/agents")
            .route(web::get().to(list_agents))
            .route(web::post().to(spawn_agent)),
    )
    .service(
        web::resource("/agents/{id}")
            .route(web::get().to(get_agent))
            .route(web::patch().to(control_agent))
            .route(web::delete().to(retire_agent)),
    )
    .service(web::resource("/agents/{id}/logs").route(web::get().to(agent_logs)));
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AgentListItem {
    #[serde(flatten)]
    agent: Agent,
    current_task: Option<TaskRef>,
    log_count: u64,
    file_lock_count: u64,
}

#[utoipa::path(
    get,
    path = "/api/agents",
    tag = "agents",
    summary = "Agent slots, newest first unless sorted otherwise",
    params(
        ("status" = Option<AgentStatus>, Query, description = "Only this status"),
        ("search" = Option<String>, Query, max_length = 200, description = "Case-insensitive piece of the name, the id or the current task's title"),
        ("sortBy" = Option<AgentSort>, Query, description = "Sort column (default createdAt)"),
        ("sortOrder" = Option<SortOrder>, Query, description = "Default desc for createdAt, asc for name and status"),
        ("runnerSessionId" = Option<Uuid>, Query, description = "Only this runner's slots"),
        ("idPrefix" = Option<IdPrefix>, Query, description = "Only agents whose id begins with this (1-36 characters of one)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 50"),
        ("offset" = Option<u64>, Query, maximum = 4294967295_u64, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "Agents", body = Data<Vec<AgentListItem>>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn list_agents(
    _: Admin,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let sort_by = params
        .parse::<AgentSort>("sortBy")?
        .unwrap_or(AgentSort::CreatedAt);
    let query = AgentQuery {
        status: params.parse::<AgentStatus>("status")?,
        runner_session_id: params.parse::<RunnerSessionId>("runnerSessionId")?,
        id_prefix: params.parse::<IdPrefix>("idPrefix")?,
        search: params.text("search").map(str::to_owned),
        sort_by,
        sort_order: params
            .parse::<SortOrder>("sortOrder")?
            .unwrap_or_else(|| sort_by.default_order()),
        limit: params.int("limit", 1..=100, 50)?,
        offset: params.int("offset", 0..=u64::from(u32::MAX), 0)?,
    };
    query.validate()?;
    let page = state.store.list_agents(&query).await?;
    let ids: Vec<AgentId> = page.items.iter().map(|agent| agent.id).collect();
    let counts: HashMap<AgentId, AgentActivityCounts> = state
        .store
        .agent_activity_counts(&ids)
        .await?
        .into_iter()
        .map(|counts| (counts.agent_id, counts))
        .collect();
    let tasks = tasks_by_id(&state, page.items.iter().filter_map(|a| a.current_task_id)).await?;
    let items: Vec<AgentListItem> = page
        .items
        .into_iter()
        .map(|agent| {
            let counts = counts
                .get(&agent.id)
                .copied()
                .unwrap_or_else(|| AgentActivityCounts::none(agent.id));
            AgentListItem {
                current_task: agent
                    .current_task_id
                    .and_then(|id| tasks.get(&id))
                    .map(TaskRef::from),
                log_count: counts.logs,
                file_lock_count: counts.file_locks,
                agent,
            }
        })
        .collect();
    Ok(ok(items))
}

/// The task to start an agent on. Agents run on runners, so the task is queued for the
/// next free runner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpawnBody {
    task_id: TaskId,
    #[serde(rename = "workingDir")]
    _working_dir: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Queued {
    agent_id: Option<AgentId>,
    task_id: TaskId,
    status: &'static str,
    message: &'static str,
}

#[utoipa::path(
    post,
    path = "/api/agents",
    tag = "agents",
    summary = "Queue a task for the next runner (agents run on runners)",
    request_body = SpawnBody,
    responses(
        (status = 202, description = "Queued", body = Data<Queued>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn spawn_agent(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<SpawnBody>,
) -> ApiResult<HttpResponse> {
    let task = requeue_for_runners(&state, body.task_id).await?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(Data {
        data: Queued {
            agent_id: None,
            task_id: task.id,
            status: "queued",
            message: "Task queued: the next free runner starts an agent on it",
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HeldLock {
    id: orchestrator_core::ids::FileLockId,
    file_path: String,
    acquired_at: orchestrator_core::Timestamp,
    expires_at: orchestrator_core::Timestamp,
}

impl From<FileLock> for HeldLock {
    fn from(lock: FileLock) -> Self {
        Self {
            id: lock.id,
            file_path: lock.file_path,
            acquired_at: lock.acquired_at,
            expires_at: lock.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct Counts {
    logs: u64,
    exceptions: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Statistics {
    total_logs: u64,
    total_exceptions: u64,
    /// Whether the slot runs a task now (its runner holds a live lease).
    is_running: bool,
    /// Completed tasks as a percentage of finished ones; 0 before any finished.
    success_rate: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AgentDetail {
    #[serde(flatten)]
    agent: Agent,
    current_task: Option<Task>,
    logs: Vec<AgentLog>,
    file_locks: Vec<HeldLock>,
    #[serde(rename = "_count")]
    count: Counts,
    statistics: Statistics,
}

#[utoipa::path(
    get,
    path = "/api/agents/{id}",
    tag = "agents",
    summary = "An agent with its task, recent logs, locks and statistics",
    params(
        ("id" = Uuid, Path, description = "The agent id"),
    ),
    responses(
        (status = 200, description = "The agent", body = Data<AgentDetail>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn get_agent(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: AgentId = parse_id(&id, "agent")?;
    Ok(ok(
        agent_detail(&state, state.store.get_agent(id).await?).await?
    ))
}

async fn agent_detail(state: &AppState, agent: Agent) -> ApiResult<AgentDetail> {
    let store = &state.store;
    let current_task = match agent.current_task_id {
        Some(task) => Some(store.get_task(task).await?),
        None => None,
    };
    let logs = store.list_logs(&LogQuery::new(agent.id, 50)).await?;
    let locks = store
        .list_locks(
            &LockQuery {
                agent_id: Some(agent.id),
                ..LockQuery::default()
            },
            state.now(),
        )
        .await?;
    let exceptions = store
        .list_exceptions(&ExceptionQuery {
            status: None,
            agent_id: Some(agent.id),
            limit: 1,
            ..ExceptionQuery::default()
        })
        .await?
        .total_count;
    let finished = agent.tasks_completed + agent.tasks_failed;
    let success_rate = if finished == 0 {
        0.0
    } else {
        f64::from(agent.tasks_completed) * 100.0 / f64::from(finished)
    };
    Ok(AgentDetail {
        count: Counts {
            logs: logs.total_count,
            exceptions,
        },
        statistics: Statistics {
            total_logs: logs.total_count,
            total_exceptions: exceptions,
            is_running: current_task
                .as_ref()
                .is_some_and(|task| task.status.is_running()),
            success_rate,
        },
        current_task,
        logs: logs.logs,
        file_locks: locks.into_iter().map(HeldLock::from).collect(),
        agent,
    })
}

/// What a person asks of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Control {
    Stop,
    Pause,
    Resume,
}

impl Control {
    pub(crate) const ALL: [Self; 3] = [Self::Pause, Self::Resume, Self::Stop];

    /// Whether `agent`'s state allows it now.
    pub(crate) fn allows(self, agent: &Agent) -> bool {
        match self {
            Self::Stop => change::task_to_stop(agent).is_ok(),
            Self::Pause => change::pause_request(agent).is_ok(),
            Self::Resume => change::resume_request(agent).is_ok(),
        }
    }
}

/// Carries out `control` on agent `id`: `stop` cancels its task (its runner is told at
/// the next heartbeat and stops the agent); `pause` and `resume` reach the runner the
/// same way. The agent as it is afterwards.
pub(crate) async fn control(
    state: &AppState,
    id: AgentId,
    control: Control,
) -> orchestrator_core::Result<Agent> {
    let now = state.now();
    let agent = state.store.get_agent(id).await?;
    match control {
        Control::Stop => {
            let task = change::task_to_stop(&agent)?;
            state
                .store
                .apply_task_action(task, TaskAction::Cancel, None, now)
                .await?;
            state.store.get_agent(id).await
        }
        Control::Pause => {
            let pause = change::pause_request(&agent)?;
            state.store.apply_agent_action(id, pause, now).await
        }
        Control::Resume => {
            let resume = change::resume_request(&agent)?;
            state.store.apply_agent_action(id, resume, now).await
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    action: Control,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AgentWithTask {
    #[serde(flatten)]
    agent: Agent,
    current_task: Option<TaskRef>,
}

/// See [`control`].
#[utoipa::path(
    patch,
    path = "/api/agents/{id}",
    tag = "agents",
    summary = "Stop, pause or resume an agent (reaches its runner at the next heartbeat)",
    params(
        ("id" = Uuid, Path, description = "The agent id"),
    ),
    request_body = ControlBody,
    responses(
        (status = 200, description = "The agent", body = Data<AgentWithTask>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn control_agent(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<ControlBody>,
) -> ApiResult<HttpResponse> {
    let id: AgentId = parse_id(&id, "agent")?;
    let agent = control(&state, id, body.action).await?;
    let current_task = match agent.current_task_id {
        Some(task) => Some(TaskRef::from(&state.store.get_task(task).await?)),
        None => None,
    };
    Ok(ok(AgentWithTask {
        agent,
        current_task,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Retired {
    message: &'static str,
    id: AgentId,
}

/// Retires a slot that runs nothing; the slot is kept, marked retired. A slot at work must
/// be stopped first, so that its task is not left behind.
#[utoipa::path(
    delete,
    path = "/api/agents/{id}",
    tag = "agents",
    summary = "Retire an agent slot that runs nothing",
    params(
        ("id" = Uuid, Path, description = "The agent id"),
    ),
    responses(
        (status = 200, description = "Retired", body = Data<Retired>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn retire_agent(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: AgentId = parse_id(&id, "agent")?;
    let agent = state.store.get_agent(id).await?;
    let retire = change::retire_request(&agent)?;
    state
        .store
        .apply_agent_action(id, retire, state.now())
        .await?;
    Ok(ok(Retired {
        message: "Agent terminated successfully",
        id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LogItem {
    #[serde(flatten)]
    log: AgentLog,
    task: Option<TaskTitle>,
}

#[derive(Debug, Serialize, ToSchema)]
struct TaskTitle {
    id: TaskId,
    title: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LogPagination {
    limit: u32,
    has_more: bool,
    /// Pass as `before` for the next (older) page, or with `after` as `after` for the next newer one.
    next_cursor: Option<String>,
    /// Matching entries over all pages, counted up to 10,000.
    total_count: u64,
    /// More entries match than `totalCount` says.
    total_count_capped: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct LogList {
    logs: Vec<LogItem>,
    pagination: LogPagination,
}

#[utoipa::path(
    get,
    path = "/api/agents/{id}/logs",
    tag = "agents",
    summary = "An agent's log in the order it was written, newest first, paged by cursor",
    description = "Entries are ordered by their sequence, the agent's own numbering. Page back \
        with `before` (newest first); follow new entries with `after` (oldest first): pass the \
        cursor `<attempt>.<sequence>` of the last entry seen, or `nextCursor`. With both, the \
        entries between them, oldest first.",
    params(
        ("id" = Uuid, Path, description = "The agent id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 100"),
        ("before" = Option<LogCursor>, Query, description = "Entries older than this: nextCursor of the previous page, an entry's `<attempt>.<sequence>`, or an ISO instant"),
        ("after" = Option<LogCursor>, Query, description = "Entries newer than this, oldest first: an entry's `<attempt>.<sequence>`, or an ISO instant"),
        ("type" = Option<LogType>, Query, description = "Only this type"),
        ("taskId" = Option<Uuid>, Query, description = "Only entries about this task"),
    ),
    responses(
        (status = 200, description = "Log entries", body = Data<LogList>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn agent_logs(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let id: AgentId = parse_id(&id, "agent")?;
    let query = LogQuery {
        task_id: params.parse::<TaskId>("taskId")?,
        log_type: params.parse::<LogType>("type")?,
        before: params.parse::<LogCursor>("before")?,
        after: params.parse::<LogCursor>("after")?,
        ..LogQuery::new(id, params.int("limit", 1..=500, 100)?)
    };
    let page = state.store.list_logs(&query).await?;
    let tasks = tasks_by_id(&state, page.logs.iter().filter_map(|log| log.task_id)).await?;
    let logs = page
        .logs
        .into_iter()
        .map(|log| LogItem {
            task: log
                .task_id
                .and_then(|id| tasks.get(&id))
                .map(|task| TaskTitle {
                    id: task.id,
                    title: task.title.clone(),
                }),
            log,
        })
        .collect();
    Ok(ok(LogList {
        logs,
        pagination: LogPagination {
            limit: query.limit,
            has_more: page.next_cursor.is_some(),
            next_cursor: page.next_cursor.map(|cursor| cursor.to_string()),
            total_count: page.total_count,
            total_count_capped: page.total_count_capped,
        },
    }))
}
