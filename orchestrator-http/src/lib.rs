//! The orchestrator's HTTP face: the REST API compatible with the original, the runner
//! protocol, and Server-Sent Events, built on the services of `orchestrator-core`.
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
pub mod error;
pub mod extract;
pub mod request;
mod routes;
mod state;

pub use orchestrator_core as core;
pub use state::AppState;

use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web;

use crate::extract::DEFAULT_BODY_LIMIT;

/// Headers on every API response, as the original sets them.
fn api_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("Cache-Control", "no-store, max-age=0"))
}

/// Mounts the API under `/api` with its state, body limits, security headers, request
/// ids and error envelope.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(web::PayloadConfig::new(DEFAULT_BODY_LIMIT))
            .service(
                web::scope("/api")
                    .wrap(from_fn(request::request_context))
                    .wrap(api_headers())
                    .configure(routes::configure)
                    .default_service(web::to(routes::not_found)),
            );
    }
}
