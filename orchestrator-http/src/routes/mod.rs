//! The routes under `/api`, one module per area of the API. They keep the wire contract of
//! the earlier Agent Orchestrator API (see the crate documentation).

pub(crate) mod agents;
pub(crate) mod connect;
mod cron;
pub(crate) mod dashboard;
mod events;
mod exceptions;
mod health;
pub(crate) mod locks;
mod openapi;
mod runner;
pub(crate) mod tasks;
mod usage;
mod verify;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;

use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::{Agent, AgentStatus, Page, Task, TaskStatus};
use orchestrator_core::store::MAX_LOOKUP_IDS;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Registers every route under the `/api` scope being configured.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    agents::configure(cfg);
    connect::configure(cfg);
    cron::configure(cfg);
    dashboard::configure(cfg);
    events::configure(cfg);
    exceptions::configure(cfg);
    health::configure(cfg);
    locks::configure(cfg);
    openapi::configure(cfg);
    runner::configure(cfg);
    tasks::configure(cfg);
    usage::configure(cfg);
    verify::configure(cfg);
}

/// The success envelope `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
struct Data<T> {
    data: T,
}

/// 200 with `value` in the success envelope.
fn ok<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(Data { data: value })
}

/// `value` in the success envelope, as JSON bytes (for the response cache).
fn data_bytes<T: Serialize>(value: T) -> ApiResult<Bytes> {
    serde_json::to_vec(&Data { data: value })
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// 201 with `value` in the success envelope.
fn created<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::build(StatusCode::CREATED).json(Data { data: value })
}

/// The short form of a task that other resources embed.
#[derive(Debug, Clone, Serialize, ToSchema)]
struct TaskRef {
    id: TaskId,
    title: String,
    status: TaskStatus,
}

impl From<&Task> for TaskRef {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id,
            title: task.title.clone(),
            status: task.status,
        }
    }
}

/// Offset pagination of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    limit: u32,
    offset: u64,
    total_count: u64,
    has_more: bool,
}

impl Pagination {
    fn of<T>(page: &Page<T>) -> Self {
        Self {
            limit: page.limit,
            offset: page.offset,
            total_count: page.total_count,
            has_more: page.has_more(),
        }
    }
}

/// The short form of an agent that lists embed.
#[derive(Debug, Clone, Serialize, ToSchema)]
struct AgentRef {
    id: AgentId,
    name: Option<String>,
    status: AgentStatus,
}

impl From<&Agent> for AgentRef {
    fn from(agent: &Agent) -> Self {
        Self {
            id: agent.id,
            name: agent.name.clone(),
            status: agent.status,
        }
    }
}

/// Sorted, distinct ids.
fn distinct<T: Ord>(ids: impl Iterator<Item = T>) -> Vec<T> {
    let mut ids: Vec<T> = ids.collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The agents among `ids`, by id, in one lookup.
pub(crate) async fn agents_by_id(
    state: &AppState,
    ids: impl Iterator<Item = AgentId>,
) -> ApiResult<HashMap<AgentId, Agent>> {
    let ids = distinct(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let agents = state.store.get_agents(&ids).await?;
    Ok(agents.into_iter().map(|agent| (agent.id, agent)).collect())
}

/// The tasks among `ids`, by id, in as few lookups as the store allows.
pub(crate) async fn tasks_by_id(
    state: &AppState,
    ids: impl Iterator<Item = TaskId>,
) -> ApiResult<HashMap<TaskId, Task>> {
    let mut found = HashMap::new();
    for chunk in distinct(ids).chunks(MAX_LOOKUP_IDS) {
        let tasks = state.store.get_tasks(chunk).await?;
        found.extend(tasks.into_iter().map(|task| (task.id, task)));
    }
    Ok(found)
}

/// The routes a client is pointed to when it asks for one that does not exist.
const AVAILABLE_ENDPOINTS: &[&str] = &[
    "GET /api/health",
    "GET /api/tasks",
    "POST /api/tasks",
    "POST /api/tasks/batch",
    "GET /api/tasks/:id",
    "PATCH /api/tasks/:id",
    "DELETE /api/tasks/:id",
    "GET /api/agents",
    "GET /api/agents/:id",
    "GET /api/exceptions",
    "GET /api/exceptions/:id",
    "PATCH /api/exceptions/:id",
    "GET /api/locks",
    "POST /api/locks/check",
    "GET /api/dashboard/stats",
    "GET /api/usage",
    "GET /api/events",
    "GET /api/openapi.json",
];

/// Any method on a path under `/api` that no route serves: 404 with the endpoints that
/// exist.
pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("Cannot {} {}", req.method(), req.path()),
    )
    .with_details(json!({
        "availableEndpoints": AVAILABLE_ENDPOINTS,
        "documentation": "See /api/openapi.json for every route, and /api/health for API status",
    })))
}
