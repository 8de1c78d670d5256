//! `GET /api/dashboard/stats`: the numbers at the top of the dashboard.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::model::{AgentStatus, ExceptionSeverity, TaskStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Data, data_bytes};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Denied};
use crate::state::AppState;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/dashboard/stats").route(web::get().to(stats)));
}

#[derive(Debug, Serialize, ToSchema)]
struct AgentCounts {
    total: u64,
    working: u64,
    idle: u64,
    paused: u64,
    failed: u64,
    stuck: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskCounts {
    total: u64,
    queued: u64,
    assigned: u64,
    in_progress: u64,
    completed: u64,
    failed: u64,
    verifying: u64,
    cancelled: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct SeverityCounts {
    critical: u64,
    error: u64,
    warning: u64,
    info: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ExceptionCounts {
    total: u64,
    /// OPEN exceptions.
    unresolved: u64,
    /// OPEN exceptions per severity.
    by_severity: SeverityCounts,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Performance {
    /// Mean milliseconds from assignment to completion over the latest completed tasks.
    avg_completion_time: Option<f64>,
    /// Completed as a percentage of finished tasks, one decimal.
    success_rate: Option<f64>,
    today_completed: u64,
    today_failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct Stats {
    agents: AgentCounts,
    tasks: TaskCounts,
    exceptions: ExceptionCounts,
    performance: Performance,
}

#[utoipa::path(
    get,
    path = "/api/dashboard/stats",
    tag = "dashboard",
    summary = "Counts of agents, tasks and exceptions; today's throughput",
    responses(
        (status = 200, description = "The numbers", body = Data<Stats>),
        Denied,
    ),
    security(("admin" = [])),
)]
async fn stats(_: Admin, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let midnight = start_of_today(&state)?;
    let key = format!("dashboard/stats@{}", midnight.as_millis());
    state
        .cache
        .json(state.store.as_ref(), key, || dashboard(&state, midnight))
        .await
}

/// Midnight (UTC) at the start of the server's today, from which "today" counts.
pub(crate) fn start_of_today(state: &AppState) -> ApiResult<Timestamp> {
    let now = state.now().as_millis();
    Timestamp::from_millis(now - now.rem_euclid(DAY_MS))
        .ok_or_else(|| ApiError::internal("the start of today is out of range"))
}

/// The dashboard's numbers with today starting at `midnight`.
async fn dashboard(state: &AppState, midnight: Timestamp) -> ApiResult<Bytes> {
    let stats = state.store.stats(midnight).await?;
    let completed = stats.tasks(TaskStatus::Completed);
    let failed = stats.tasks(TaskStatus::Failed);
    let success_rate = (completed + failed > 0)
        .then(|| (completed as f64 * 1000.0 / (completed + failed) as f64).round() / 10.0);
    let by_severity = SeverityCounts {
        critical: stats.open_exceptions(ExceptionSeverity::Critical),
        error: stats.open_exceptions(ExceptionSeverity::Error),
        warning: stats.open_exceptions(ExceptionSeverity::Warning),
        info: stats.open_exceptions(ExceptionSeverity::Info),
    };
    data_bytes(Stats {
        agents: AgentCounts {
            total: stats.agents_by_status.values().sum(),
            working: stats.agents(AgentStatus::Working),
            idle: stats.agents(AgentStatus::Idle),
            paused: stats.agents(AgentStatus::Paused),
            failed: stats.agents(AgentStatus::Failed),
            stuck: stats.agents(AgentStatus::Stuck),
        },
        tasks: TaskCounts {
            total: stats.tasks_by_status.values().sum(),
            queued: stats.tasks(TaskStatus::Queued),
            assigned: stats.tasks(TaskStatus::Assigned),
            in_progress: stats.tasks(TaskStatus::InProgress),
            completed,
            failed,
            verifying: stats.tasks(TaskStatus::Verifying),
            cancelled: stats.tasks(TaskStatus::Cancelled),
        },
        exceptions: ExceptionCounts {
            total: stats.exceptions_total,
            unresolved: stats.open_exceptions_by_severity.values().sum(),
            by_severity,
        },
        performance: Performance {
            avg_completion_time: stats.mean_completion_ms,
            success_rate,
            today_completed: stats.completed_since,
            today_failed: stats.failed_since,
        },
    })
}
