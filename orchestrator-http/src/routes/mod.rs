//! The routes under `/api`, one module per area of the original API.

mod health;
mod tasks;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::ids::AgentId;
use orchestrator_core::model::{Agent, AgentStatus};
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// Registers every route under the `/api` scope being configured.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    tasks::configure(cfg);
}

/// The success envelope `{"data": ...}`.
#[derive(Debug, Serialize)]
struct Data<T> {
    data: T,
}

/// 200 with `value` in the success envelope.
fn ok<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(Data { data: value })
}

/// 201 with `value` in the success envelope.
fn created<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::build(StatusCode::CREATED).json(Data { data: value })
}

/// The short form of an agent that lists embed.
#[derive(Debug, Clone, Serialize)]
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
    "GET /api/events",
    "GET /api/openapi.json",
];

/// Any method on a path under `/api` that no route serves: 404 with the endpoints that
/// exist, as the original's catch-all does.
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
