//! `GET /api/usage`: what the attempts of a window used, for the dashboard's usage page.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::model::{MAX_USAGE_TASKS, UsageQuery, UsageSummary};

use super::{Data, ok};
use crate::auth::Admin;
use crate::error::{ApiResult, InputErrors};
use crate::extract::Params;
use crate::state::AppState;

/// The window summed when the request names no start: the 30 days before its end.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Tasks listed unless the request says otherwise.
const DEFAULT_TOP_TASKS: u32 = 20;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/usage").route(web::get().to(usage)));
}

/// Costs are what the runners reported: estimates from list prices.
#[utoipa::path(
    get,
    path = "/api/usage",
    tag = "dashboard",
    summary = "Tokens and cost of the attempts started in a window: in all, per day (UTC), runner, backend and model, and the costliest tasks",
    params(
        ("since" = Option<Timestamp>, Query, description = "Attempts started at or after this instant; before until, at most 366 days (default: 30 days before until)"),
        ("until" = Option<Timestamp>, Query, description = "Attempts started before this instant (default: now)"),
        ("topTasks" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Tasks listed, costliest first (default 20)"),
    ),
    responses(
        (status = 200, description = "The summary", body = Data<UsageSummary>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn usage(_: Admin, state: web::Data<AppState>, params: Params) -> ApiResult<HttpResponse> {
    let until = params
        .parse::<Timestamp>("until")?
        .unwrap_or_else(|| state.now());
    let since = params
        .parse::<Timestamp>("since")?
        .unwrap_or_else(|| until.sub(DEFAULT_WINDOW));
    let top_tasks = params.int("topTasks", 1..=MAX_USAGE_TASKS, DEFAULT_TOP_TASKS)?;
    let query = UsageQuery {
        since,
        until,
        top_tasks,
    };
    Ok(ok(state.store.usage_summary(&query).await?))
}
