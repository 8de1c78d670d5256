//! `GET|HEAD /api/health`: is the server up and its database reachable. Public; the
//! `?detailed=true` form (uptime, memory) needs the admin token.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use orchestrator_core::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Params;
use crate::state::AppState;

/// How long the database probe may take before the database counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .route(web::get().to(health))
            .route(web::head().to(health_head)),
    );
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DatabaseCheck {
    status: &'static str,
    latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Checks {
    database: DatabaseCheck,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProcessStats {
    /// Seconds since the server started.
    uptime: u64,
    memory_usage: MemoryUsage,
    /// Clients following `GET /api/events` now.
    event_streams: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MemoryUsage {
    /// Resident set size in bytes, where the platform reports it.
    rss: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Health {
    status: &'static str,
    timestamp: Timestamp,
    version: &'static str,
    environment: &'static str,
    checks: Checks,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<ProcessStats>,
}

async fn probe(state: &AppState) -> DatabaseCheck {
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let message = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check: database probe failed");
            Some("The database did not answer the probe".to_owned())
        }
        Err(_) => Some(format!(
            "The database did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    };
    DatabaseCheck {
        status: if message.is_none() { "ok" } else { "error" },
        latency_ms,
        message,
    }
}

fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response.insert_header((
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    ));
    response
}

#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    summary = "Server and database health",
    params(
        ("detailed" = Option<bool>, Query, description = "Add uptime, memory and event streams (admin token required)"),
    ),
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
    ),
)]
async fn health(
    state: web::Data<AppState>,
    params: Params,
    admin: Result<Admin, ApiError>,
) -> ApiResult<HttpResponse> {
    let detailed = params.flag("detailed", false)?;
    if detailed {
        admin?;
    }
    let database = probe(&state).await;
    let healthy = database.message.is_none();
    let body = Health {
        status: if healthy { "ok" } else { "error" },
        timestamp: state.now(),
        version: state.version,
        environment: "production",
        checks: Checks { database },
        stats: detailed.then(|| ProcessStats {
            uptime: state.started.elapsed().as_secs(),
            memory_usage: MemoryUsage {
                rss: resident_set_bytes(),
            },
            event_streams: state.events.streams(),
        }),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(no_store(status).json(body))
}

#[utoipa::path(
    head,
    path = "/api/health",
    tag = "health",
    summary = "Health as a status code only",
    responses(
        (status = 200, description = "Healthy"),
        (status = 503, description = "The database does not answer"),
    ),
)]
async fn health_head(state: web::Data<AppState>) -> HttpResponse {
    let status = if probe(&state).await.message.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store(status).finish()
}

/// The process's resident memory from `/proc/self/statm` (Linux), in bytes.
fn resident_set_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
