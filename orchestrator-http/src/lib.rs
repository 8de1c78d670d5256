//! The orchestrator's HTTP face: the REST API, the runner protocol, and Server-Sent Events,
//! built on the services of `orchestrator-core`.
//!
//! The REST API keeps the wire contract of the earlier Agent Orchestrator API it replaces —
//! its paths, parameters, `{"data": ...}` bodies, enum spellings, error codes, limits and
//! defaults — so that API's clients work unchanged. The limits, defaults and body forms
//! documented in this crate are part of that contract.
//!
//! The crate's handlers depend only on the core's `Store` and `LockManager` seams, so any
//! backend `orchestrator-store` provides (or an embedder's own) can serve the API.
//!
//! ```no_run
//! # async fn serve(state: orchestrator_http::AppState) -> std::io::Result<()> {
//! use actix_web::{App, HttpServer, web};
//!
//! let state = web::Data::new(state);
//! HttpServer::new(move || App::new().configure(orchestrator_http::configure(state.clone())))
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await
//! # }
//! ```

pub mod auth;
mod cache;
mod dashboard;
pub mod error;
pub mod extract;
mod fanout;
pub mod rate_limit;
pub mod request;
mod routes;
mod state;

pub use orchestrator_core as core;
pub use state::AppState;

use actix_cors::Cors;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web;

use crate::extract::DEFAULT_BODY_LIMIT;

/// The security headers of every response the server makes, with its content `policy`.
fn security_headers(policy: &'static str) -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", policy))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

/// Headers on every API response: nothing may be loaded from it, nothing kept.
fn api_headers() -> DefaultHeaders {
    security_headers("default-src 'none'; frame-ancestors 'none'")
        .add(("Cache-Control", "no-store, max-age=0"))
}

/// Cross-origin access: none by default (the browser keeps other sites' pages out); the
/// allowlisted origins may call the API with any method and the headers it uses.
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .block_on_origin_mismatch(false)
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "last-event-id",
            "x-request-id",
        ])
        .expose_headers([
            "x-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Checks a CORS origin: `scheme://host[:port]`, nothing after it.
pub fn check_cors_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} must start with http:// or https://"))?;
    let valid = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin: give scheme, host and port only, e.g. https://app.example.com"
        ))
    }
}

/// Mounts the API under `/api` with its state, body limits, security headers, request
/// ids and error envelope, and the dashboard (`/`, `/login`, `/logout`, `/assets`).
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let cors = cors(&state.cors_origins);
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(DEFAULT_BODY_LIMIT))
            .service(
                // The request context is outside the CORS check, so that a refused origin
                // gets the error envelope and a request id like any other error.
                web::scope("/api")
                    .wrap(from_fn(rate_limit::rate_limit))
                    .wrap(cors)
                    .wrap(from_fn(request::request_context))
                    .wrap(api_headers())
                    .configure(routes::configure)
                    .default_service(web::to(routes::not_found)),
            )
            .configure(dashboard::configure);
    }
}
