//! Per-request context: the request id (the client's `X-Request-Id`, or a fresh one), the
//! access log line, and the error envelope on every error response, whoever produced it.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures::future::{Ready, ready};

use crate::error::{ApiError, ErrorCode};

/// The header that carries request ids both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The id of the request being handled; an extractor for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id when it is usable (visible ASCII, at most 128 characters), else a
    /// new one.
    fn for_request(req: &ServiceRequest) -> Self {
        let given = req
            .headers()
            .get(&REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= MAX_REQUEST_ID_CHARS
                    && id.bytes().all(|b| b.is_ascii_graphic())
            });
        match given {
            Some(id) => Self(id.into()),
            None => Self(uuid::Uuid::new_v4().to_string().into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<RequestId>()
                .cloned()
                .ok_or_else(|| ApiError::internal("the request-id middleware is not installed")),
        )
    }
}

/// Middleware: assigns the request id, logs the request, and renders every error
/// response as the envelope.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = RequestId::for_request(&req);
    req.extensions_mut().insert(id.clone());
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(err) => {
            let error = api_error_of(&err, err.as_response_error().status_code());
            log_internal(&error, &id);
            return Err(IdentifiedError { error, id }.into());
        }
    };
    let mut response = envelope_errors(response, &id);
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    log_request(&response, &id, started.elapsed());
    Ok(response)
}

/// Answers slower than this are logged as warnings (except long polls and streams, which
/// wait by design).
const SLOW: std::time::Duration = std::time::Duration::from_secs(1);

/// The access log: a request that failed or was slow is a warning; the others are debug
/// lines (`RUST_LOG=orchestrator_http=debug` shows them), so a busy server does not fill
/// its log with them.
fn log_request(response: &ServiceResponse<BoxBody>, id: &RequestId, elapsed: std::time::Duration) {
    let request = response.request();
    let status = response.status();
    let waits_by_design = matches!(request.path(), "/api/runner/claim" | "/api/events");
    let noteworthy = status.is_client_error()
        || status.is_server_error()
        || (elapsed > SLOW && !waits_by_design);
    macro_rules! at {
        ($level:ident) => {
            tracing::$level!(
                request_id = id.as_str(),
                method = %request.method(),
                path = request.path(),
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            )
        };
    }
    if noteworthy {
        at!(warn);
    } else {
        at!(debug);
    }
}

/// Replaces the body of an error response with the envelope: an [`ApiError`] keeps its
/// code and message; anything else (no route, wrong method, a framework error) gets the
/// code of its status and a message that does not leak internals.
fn envelope_errors(response: ServiceResponse<BoxBody>, id: &RequestId) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    let api_error = match response.response().error() {
        Some(err) => api_error_of(err, status),
        None if is_json(&response) => return response,
        None => fallback_error(&response),
    };
    log_internal(&api_error, id);
    let (request, old) = response.into_parts();
    let mut rendered = api_error.to_response(Some(id.as_str()));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *rendered.status_mut() = status;
    ServiceResponse::new(request, rendered)
}

/// The client-facing form of an error that ended a request with `status`.
fn api_error_of(err: &actix_web::Error, status: StatusCode) -> ApiError {
    match err.as_error::<ApiError>() {
        Some(api_error) => api_error.clone(),
        None if status.is_server_error() => ApiError::internal(err),
        None => ApiError::new(ErrorCode::for_status(status), err.to_string()),
    }
}

fn log_internal(error: &ApiError, id: &RequestId) {
    if let Some(detail) = &error.internal {
        tracing::error!(request_id = id.as_str(), error = %detail, "request failed");
    }
}

/// An error that escaped the handlers, rendered with the request's id.
#[derive(Debug)]
struct IdentifiedError {
    error: ApiError,
    id: RequestId,
}

impl std::fmt::Display for IdentifiedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for IdentifiedError {
    fn status_code(&self) -> StatusCode {
        self.error.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.to_response(Some(self.id.as_str()));
        if let Ok(value) = HeaderValue::from_str(self.id.as_str()) {
            response
                .headers_mut()
                .insert(REQUEST_ID_HEADER.clone(), value);
        }
        response
    }
}

fn is_json(response: &ServiceResponse<BoxBody>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

fn fallback_error(response: &ServiceResponse<BoxBody>) -> ApiError {
    let status = response.status();
    let request = response.request();
    let code = ErrorCode::for_status(status);
    match code {
        ErrorCode::NotFound | ErrorCode::MethodNotAllowed => ApiError::new(
            code,
            format!("Cannot {} {}", request.method(), request.path()),
        ),
        ErrorCode::InternalError => ApiError::internal(format!("status {status} without an error")),
        _ => ApiError::new(
            code,
            status
                .canonical_reason()
                .unwrap_or("Request failed")
                .to_owned(),
        ),
    }
}
