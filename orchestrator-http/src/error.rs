//! The one error envelope of the API: `{"error":{"code","message","details","requestId"}}`.
//!
//! Handlers return [`ApiError`]; the request-id middleware renders it with the request's
//! id and logs what clients must not see (the text of internal failures).

use std::collections::BTreeMap;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use orchestrator_core::Error as CoreError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

/// The machine-readable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadRequest,
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status the code travels with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code that best describes a bare status (responses produced outside handlers).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            429 => Self::RateLimited,
            503 => Self::ServiceUnavailable,
            400..=499 => Self::BadRequest,
            _ => Self::InternalError,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Specifics, such as `field` for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The request's id (the client's `X-Request-Id`, or one the server made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error as clients see it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds until a rate-limited client may try again.
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the server's log only.
    pub internal: Option<String>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A validation failure of one field, named in `details.field`.
    pub fn invalid(field: &str, message: impl fmt::Display) -> Self {
        Self::new(ErrorCode::ValidationError, format!("{field}: {message}"))
            .with_details(json!({ "field": field }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// A failure whose text stays in the server's log.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self {
            internal: Some(detail.to_string()),
            ..Self::new(ErrorCode::InternalError, "An unexpected error occurred")
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The envelope, carrying `request_id` when the request has one.
    pub fn to_response(&self, request_id: Option<&str>) -> HttpResponse {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
                request_id: request_id.map(str::to_owned),
            },
        };
        let mut response = HttpResponse::build(self.code.status());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(body)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response(None)
    }
}

/// The errors routes document, by status: the envelope with what each status means.
fn documented_errors(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|status| {
            let description = match status {
                400 => "Invalid input: the message and details.field name what is wrong",
                401 => "Missing, unknown or revoked token",
                403 => "A token of the other scope",
                404 => "No such resource",
                409 => "Conflicts with the current state (a stale lease, an illegal transition)",
                413 => "Body over the route's limit",
                _ => "Rate limited; see Retry-After",
            };
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Sets of documented errors, named after the routes that answer them.
macro_rules! error_set {
    ($($(#[$meta:meta])* $name:ident = [$($status:literal),+];)+) => {
        $(
            $(#[$meta])*
            pub(crate) struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    documented_errors(&[$($status),+])
                }
            }
        )+
    };
}

error_set! {
    /// Any authenticated route: no or a wrong token, the wrong scope, rate limited.
    Denied = [401, 403, 429];
    /// Routes whose input (query or body) may be refused, with no one resource to find.
    InputErrors = [400, 401, 403, 429];
    /// Routes that read one resource.
    ReadErrors = [400, 401, 403, 404, 429];
    /// Routes that change one resource under the rules of its state.
    WriteErrors = [400, 401, 403, 404, 409, 429];
    /// [`WriteErrors`] of routes whose large bodies have a limit of their own.
    LargeWriteErrors = [400, 401, 403, 404, 409, 413, 429];
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::NotFound { entity, .. } => Self::not_found(format!(
                "{}{} not found",
                entity[..1].to_uppercase(),
                &entity[1..]
            )),
            CoreError::Conflict(message) => Self::conflict(message),
            CoreError::Forbidden(message) => Self::forbidden(message),
            CoreError::InvalidInput { field, message } => Self::invalid(&field, message),
            CoreError::InvalidTransition(transition) => Self::conflict(transition.to_string())
                .with_details(json!({
                    "entity": transition.entity,
                    "from": transition.from,
                    "to": transition.to,
                    "event": transition.event,
                    "allowed": transition.allowed,
                })),
            CoreError::Unavailable(detail) => Self {
                internal: Some(detail),
                ..Self::new(
                    ErrorCode::ServiceUnavailable,
                    "The database is unavailable; try again shortly",
                )
            },
            CoreError::Backend(detail) => Self::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_text_is_kept_out_of_the_message() {
        let err = ApiError::from(CoreError::backend("relation \"tasks\" does not exist"));
        assert_eq!(err.code, ErrorCode::InternalError);
        assert!(!err.message.contains("tasks"));
        assert!(err.internal.as_deref().unwrap().contains("tasks"));
    }

    #[test]
    fn not_found_names_the_entity() {
        let err = ApiError::from(CoreError::not_found("task", "x"));
        assert_eq!(err.message, "Task not found");
        assert_eq!(err.code.status(), StatusCode::NOT_FOUND);
    }
}
