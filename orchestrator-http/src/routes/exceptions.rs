//! `/api/exceptions`: the inbox of everything that needs a person.

use actix_web::{HttpResponse, web};
use orchestrator_core::change::ExceptionDecision;
use orchestrator_core::ids::{AgentId, ExceptionId, TaskId};
use orchestrator_core::model::{
    AgentStatus, Exception, ExceptionQuery, ExceptionSeverity, ExceptionStatus, ExceptionType,
    TaskStatus,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;

use super::{AgentRef, Data, Pagination, TaskRef, agents_by_id, ok, tasks_by_id};
use crate::auth::Admin;
use crate::error::{ApiResult, InputErrors, ReadErrors, WriteErrors};
use crate::extract::{Json, Params, parse_id};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/exceptions").route(web::get().to(list_exceptions)))
        .service(
            web::resource("/exceptions/{id}")
                .route(web::get().to(get_exception))
                .route(web::patch().to(decide_exception)),
        );
}

#[derive(Debug, Serialize, ToSchema)]
struct ExceptionItem {
    #[serde(flatten)]
    exception: Exception,
    agent: Option<AgentRef>,
    task: Option<TaskRef>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ExceptionList {
    exceptions: Vec<ExceptionItem>,
    pagination: Pagination,
}

/// The inbox's `status` filter: one status, or `ALL` of them.
#[derive(Debug, Clone, Copy)]
pub(super) enum StatusFilter {
    Only(ExceptionStatus),
    All,
}

impl FromStr for StatusFilter {
    type Err = orchestrator_core::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ALL" {
            return Ok(Self::All);
        }
        s.parse().map(Self::Only).map_err(|_| {
            let statuses: Vec<&str> = ExceptionStatus::ALL.iter().map(|s| s.as_str()).collect();
            orchestrator_core::Error::invalid(
                "status",
                format!("{s:?} is not one of {}, or ALL", statuses.join(", ")),
            )
        })
    }
}

impl utoipa::PartialSchema for StatusFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::Ref;
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(Ref::from_schema_name(ExceptionStatus::name()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["ALL"])),
            )
            .into()
    }
}

impl ToSchema for StatusFilter {}

/// `status` defaults to OPEN; `ALL` lists every status.
fn status_filter(params: &Params) -> ApiResult<Option<ExceptionStatus>> {
    Ok(match params.parse::<StatusFilter>("status")? {
        None => Some(ExceptionStatus::Open),
        Some(StatusFilter::All) => None,
        Some(StatusFilter::Only(status)) => Some(status),
    })
}

#[utoipa::path(
    get,
    path = "/api/exceptions",
    tag = "exceptions",
    summary = "The inbox: most urgent first, then newest",
    params(
        ("status" = Option<StatusFilter>, Query, description = "Default OPEN"),
        ("severity" = Option<ExceptionSeverity>, Query, description = "Only this severity"),
        ("type" = Option<ExceptionType>, Query, description = "Only this type"),
        ("taskId" = Option<Uuid>, Query, description = "Only about this task"),
        ("agentId" = Option<Uuid>, Query, description = "Only about this agent"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 50"),
        ("offset" = Option<u64>, Query, maximum = 4294967295_u64, description = "Rows to skip"),
    ),
    responses(
        (status = 200, description = "Exceptions", body = Data<ExceptionList>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn list_exceptions(
    _: Admin,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let query = ExceptionQuery {
        status: status_filter(&params)?,
        severity: params.parse::<ExceptionSeverity>("severity")?,
        exception_type: params.parse::<ExceptionType>("type")?,
        task_id: params.parse::<TaskId>("taskId")?,
        agent_id: params.parse::<AgentId>("agentId")?,
        limit: params.int("limit", 1..=100, 50)?,
        offset: params.int("offset", 0..=u64::from(u32::MAX), 0)?,
    };
    query.validate()?;
    let page = state.store.list_exceptions(&query).await?;
    let pagination = Pagination::of(&page);
    let agents = agents_by_id(&state, page.items.iter().filter_map(|e| e.agent_id)).await?;
    let tasks = tasks_by_id(&state, page.items.iter().filter_map(|e| e.task_id)).await?;
    let exceptions = page
        .items
        .into_iter()
        .map(|exception| ExceptionItem {
            agent: exception
                .agent_id
                .and_then(|id| agents.get(&id))
                .map(AgentRef::from),
            task: exception
                .task_id
                .and_then(|id| tasks.get(&id))
                .map(TaskRef::from),
            exception,
        })
        .collect();
    Ok(ok(ExceptionList {
        exceptions,
        pagination,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExceptionAgent {
    id: AgentId,
    name: Option<String>,
    status: AgentStatus,
    branch_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExceptionTask {
    id: TaskId,
    title: String,
    description: String,
    status: TaskStatus,
    branch_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ExceptionDetail {
    #[serde(flatten)]
    exception: Exception,
    agent: Option<ExceptionAgent>,
    task: Option<ExceptionTask>,
}

async fn exception_detail(state: &AppState, exception: Exception) -> ApiResult<ExceptionDetail> {
    let agents = agents_by_id(state, exception.agent_id.into_iter()).await?;
    let tasks = tasks_by_id(state, exception.task_id.into_iter()).await?;
    Ok(ExceptionDetail {
        agent: exception
            .agent_id
            .and_then(|id| agents.get(&id))
            .map(|agent| ExceptionAgent {
                id: agent.id,
                name: agent.name.clone(),
                status: agent.status,
                branch_name: agent.branch_name.clone(),
            }),
        task: exception
            .task_id
            .and_then(|id| tasks.get(&id))
            .map(|task| ExceptionTask {
                id: task.id,
                title: task.title.clone(),
                description: task.description.clone(),
                status: task.status,
                branch_name: task.branch_name.clone(),
            }),
        exception,
    })
}

#[utoipa::path(
    get,
    path = "/api/exceptions/{id}",
    tag = "exceptions",
    summary = "One exception with its agent and task",
    params(
        ("id" = Uuid, Path, description = "The exception id"),
    ),
    responses(
        (status = 200, description = "The exception", body = Data<ExceptionDetail>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn get_exception(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: ExceptionId = parse_id(&id, "exception")?;
    let exception = state.store.get_exception(id).await?;
    Ok(ok(exception_detail(&state, exception).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DecisionBody {
    status: Decision,
    #[schema(max_length = 5_000)]
    resolution_notes: Option<String>,
    #[schema(max_length = 255)]
    resolved_by: Option<String>,
}

/// The statuses a person moves an exception to.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Decision {
    Acknowledged,
    Resolved,
    Dismissed,
}

impl From<Decision> for ExceptionStatus {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Acknowledged => Self::Acknowledged,
            Decision::Resolved => Self::Resolved,
            Decision::Dismissed => Self::Dismissed,
        }
    }
}

#[utoipa::path(
    patch,
    path = "/api/exceptions/{id}",
    tag = "exceptions",
    summary = "Acknowledge, resolve or dismiss an exception",
    params(
        ("id" = Uuid, Path, description = "The exception id"),
    ),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The exception", body = Data<ExceptionDetail>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn decide_exception(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<DecisionBody>,
) -> ApiResult<HttpResponse> {
    let id: ExceptionId = parse_id(&id, "exception")?;
    let decision = ExceptionDecision {
        status: body.status.into(),
        resolution_notes: body.resolution_notes.filter(|s| !s.trim().is_empty()),
        resolved_by: body.resolved_by.filter(|s| !s.trim().is_empty()),
    };
    decision.validate()?;
    let exception = state
        .store
        .decide_exception(id, decision, state.now())
        .await?;
    Ok(ok(exception_detail(&state, exception).await?))
}
