//! Connecting runners: an admin mints a single-use setup token (`GET /api/connect`), the
//! runner exchanges it for a runner token (`POST /api/connect`), and a runner session can
//! be revoked by the runner itself (`DELETE /api/connect`) or by an admin
//! (`DELETE /api/runners/:id`).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use orchestrator_core::Timestamp;
use orchestrator_core::ids::RunnerSessionId;
use orchestrator_core::model::{NewRunnerSession, RunnerSession, RunnerSessionStatus};
use orchestrator_core::protocol::{RunnerConnected, SetupExchange};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::store::MAX_RUNNER_SESSION_PAGE;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Data, ok};
use crate::auth::{
    Admin, authenticate_runner, bearer_token, hash_token, new_secret, token_in_body,
};
use crate::error::{ApiError, ApiResult, Denied, ErrorEnvelope, InputErrors, ReadErrors};
use crate::extract::{Json, Params, parse_id, parse_json};
use crate::state::AppState;

/// How long a setup token can be exchanged.
const SETUP_TOKEN_TTL: Duration = Duration::from_secs(600);

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/connect")
            .route(web::get().to(mint_setup_token))
            .route(web::post().to(exchange_setup_token))
            .route(web::delete().to(disconnect)),
    )
    .service(web::resource("/runners").route(web::get().to(list_runners)))
    .service(web::resource("/runners/{id}").route(web::delete().to(revoke_runner)));
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Minted {
    connection_token: String,
    /// Seconds the token stays valid.
    expires_in: u64,
    command: String,
}

/// The connection token is base64 of `<apiUrl>|<secret>:<expiresAtMs>`, where
/// `<secret>:<expiresAtMs>` is the setup token.
#[utoipa::path(
    get,
    path = "/api/connect",
    tag = "runners",
    summary = "Mint a single-use connection token for a runner (10 minutes)",
    responses(
        (status = 200, description = "The connection token", body = Data<Minted>),
        Denied,
    ),
    security(("admin" = [])),
)]
async fn mint_setup_token(_: Admin, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let minted = mint(&state).await?;
    Ok(ok(Minted {
        command: minted.command,
        connection_token: minted.connection_token,
        expires_in: SETUP_TOKEN_TTL.as_secs(),
    }))
}

/// A single-use connection token for a runner, with the command that uses it.
pub(crate) struct ConnectionToken {
    pub(crate) connection_token: String,
    pub(crate) command: String,
    pub(crate) expires_at: Timestamp,
}

/// Mints a connection token valid for [`SETUP_TOKEN_TTL`].
pub(crate) async fn mint(state: &AppState) -> orchestrator_core::Result<ConnectionToken> {
    let now = state.now();
    let expires_at = now.add(SETUP_TOKEN_TTL);
    let secret = new_secret();
    state
        .store
        .create_setup_token(&hash_token(&secret), expires_at, now)
        .await?;
    let setup_token = format!("{secret}:{}", expires_at.as_millis());
    let connection_token = STANDARD.encode(format!("{}|{setup_token}", state.public_url));
    Ok(ConnectionToken {
        command: format!("agent-orchestrator connect {connection_token}"),
        connection_token,
        expires_at,
    })
}

#[utoipa::path(
    post,
    path = "/api/connect",
    tag = "runners",
    summary = "Exchange a setup token for a runner token",
    request_body = SetupExchange,
    responses(
        (status = 200, description = "The runner token", body = Data<RunnerConnected>),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorEnvelope),
    ),
)]
async fn exchange_setup_token(
    state: web::Data<AppState>,
    Json(body): Json<SetupExchange>,
) -> ApiResult<HttpResponse> {
    let secret = match body.setup_token.split_once(':') {
        Some((secret, expiry))
            if !secret.is_empty()
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !expiry.is_empty()
                && expiry.bytes().all(|b| b.is_ascii_digit()) =>
        {
            secret.to_owned()
        }
        _ => {
            return Err(ApiError::invalid(
                "setupToken",
                "Invalid token format: expected <secret>:<expiresAtMs> from the connection token",
            ));
        }
    };
    let now = state.now();
    let runner_token = new_secret();
    let new = NewRunnerSession {
        name: body
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_runner_name(now)),
        working_dir: body.working_dir.unwrap_or_default(),
        token_hash: hash_token(&runner_token),
        runner: body.runner.unwrap_or_default(),
    };
    // Refused input leaves the setup token unspent.
    new.validate()?;
    if !state
        .store
        .redeem_setup_token(&hash_token(&secret), now)
        .await?
    {
        return Err(ApiError::unauthorized(
            "The setup token is unknown, already used or expired; ask an admin for a new \
             connection token (GET /api/connect)",
        ));
    }
    let session = state.store.create_runner_session(new, now).await?;
    Ok(ok(RunnerConnected {
        runner_token,
        runner_name: session.name,
        runner_id: session.id,
    }))
}

/// `runner-` and the time in milliseconds in base 36.
fn default_runner_name(now: Timestamp) -> String {
    let mut millis = u64::try_from(now.as_millis()).unwrap_or(0);
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((millis % 36) as u32, 36).unwrap_or('0'));
        millis /= 36;
        if millis == 0 {
            break;
        }
    }
    format!("runner-{}", digits.iter().rev().collect::<String>())
}

/// The token in the body: `{"runnerToken": "..."}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenBody {
    #[serde(rename = "runnerToken")]
    _runner_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Revoked {
    revoked: bool,
    runner_id: RunnerSessionId,
}

/// A runner ends its own session: its token stops working at once.
#[utoipa::path(
    delete,
    path = "/api/connect",
    tag = "runners",
    summary = "A runner ends its own session",
    request_body = Option<TokenBody>,
    responses(
        (status = 200, description = "Revoked", body = Data<Revoked>),
        InputErrors,
    ),
    security(("runner" = [])),
)]
async fn disconnect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body_token = token_in_body(&body);
    let token = bearer_token(&req).or(body_token.as_deref());
    let session = authenticate_runner(&state, token).await?;
    // The body, when there is one, carries the token alone.
    if !matches!(body.trim_ascii(), b"" | b"null") {
        parse_json::<TokenBody>(&body)?;
    }
    revoke(&state, session.id).await
}

#[utoipa::path(
    delete,
    path = "/api/runners/{id}",
    tag = "runners",
    summary = "Revoke a runner session",
    params(
        ("id" = Uuid, Path, description = "The runner session id"),
    ),
    responses(
        (status = 200, description = "Revoked", body = Data<Revoked>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn revoke_runner(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: RunnerSessionId = parse_id(&id, "runner")?;
    revoke(&state, id).await
}

async fn revoke(state: &AppState, id: RunnerSessionId) -> ApiResult<HttpResponse> {
    revoke_session(state, id).await?;
    Ok(ok(Revoked {
        revoked: true,
        runner_id: id,
    }))
}

/// Revokes runner session `id`, unless it is revoked already: its token stops working.
pub(crate) async fn revoke_session(
    state: &AppState,
    id: RunnerSessionId,
) -> orchestrator_core::Result<()> {
    let session = state.store.get_runner_session(id).await?;
    if session.status != RunnerSessionStatus::Revoked {
        state
            .store
            .apply_runner_session_event(id, RunnerSessionEvent::Revoke, state.now())
            .await?;
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/runners",
    tag = "runners",
    summary = "Runner sessions, newest first",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Default 100"),
        ("status" = Option<RunnerSessionStatus>, Query, description = "Only sessions in this status"),
    ),
    responses(
        (status = 200, description = "Sessions", body = Data<Vec<RunnerSession>>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn list_runners(
    _: Admin,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let limit = params.int("limit", 1..=MAX_RUNNER_SESSION_PAGE, 100)?;
    let status = params.parse::<RunnerSessionStatus>("status")?;
    let sessions: Vec<RunnerSession> = state.store.list_runner_sessions(status, limit).await?;
    Ok(ok(sessions))
}
