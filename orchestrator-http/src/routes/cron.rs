//! `GET /api/cron/cleanup`: one supervisor pass on demand, for deployments that drive
//! housekeeping from an external scheduler. Needs `Authorization: Bearer <CRON_SECRET>`.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::supervisor::SupervisorReport;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{bearer_token, token_matches};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/cron/cleanup").route(web::get().to(cleanup)));
}

/// A bare body (no `data` envelope), with what the pass did.
#[derive(Debug, Serialize, ToSchema)]
struct Cleaned {
    success: bool,
    message: &'static str,
    /// Milliseconds the pass took.
    duration: u64,
    timestamp: Timestamp,
    report: SupervisorReport,
}

#[utoipa::path(
    get,
    path = "/api/cron/cleanup",
    tag = "housekeeping",
    summary = "Run one supervisor pass",
    responses(
        (status = 200, description = "What the pass did", body = Cleaned),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 403, description = "A token of the other scope", body = ErrorEnvelope),
    ),
    security(("cron" = [])),
)]
async fn cleanup(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let Some(expected) = &state.cron_secret_hash else {
        return Err(ApiError::forbidden(
            "The cleanup route is off: start the server with --cron-secret (or CRON_SECRET) \
             to call it; the supervisor runs on its own either way",
        ));
    };
    match bearer_token(&req) {
        Some(token) if token_matches(token, expected) => {}
        _ => {
            return Err(ApiError::unauthorized(
                "Send `Authorization: Bearer <CRON_SECRET>`",
            ));
        }
    }
    let started = Instant::now();
    let report = state.supervisor.run_once().await?;
    Ok(HttpResponse::Ok().json(Cleaned {
        success: true,
        message: if report.ran {
            "Cleanup completed"
        } else {
            "A cleanup is running now (here or on another server)"
        },
        duration: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        timestamp: state.now(),
        report,
    }))
}
