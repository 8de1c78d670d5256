//! `GET /api/openapi.json`: the OpenAPI 3 document of every route, generated from the
//! handlers' own types.

use std::sync::OnceLock;

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use utoipa::openapi::Required;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    agents, connect, cron, dashboard, events, exceptions, health, locks, runner, tasks, usage,
    verify,
};
use crate::error::ErrorEnvelope;
use orchestrator_core::model::{
    AgentSort, AgentStatus, ExceptionSeverity, ExceptionStatus, ExceptionType, IdPrefix, LogCursor,
    LogType, RunnerSessionStatus, SortOrder, TaskSort, TaskStatus,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(document)));
}

/// Optional query parameters may be sent empty (`?status=`), as HTML forms send fields
/// left blank, and then count as absent. utoipa has no field for `allowEmptyValue`; its
/// extensions are written into the parameter as they are.
struct EmptyQueryValues;

impl Modify for EmptyQueryValues {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ]
            .into_iter()
            .flatten()
        });
        let optional_query = operations
            .flat_map(|operation| operation.parameters.iter_mut().flatten())
            .filter(|parameter| {
                parameter.parameter_in == ParameterIn::Query
                    && parameter.required == Required::False
            });
        for parameter in optional_query {
            parameter
                .extensions
                .get_or_insert_with(Default::default)
                .insert("allowEmptyValue".to_owned(), true.into());
        }
    }
}

/// The bearer tokens routes take: the admin token, runner tokens, and `CRON_SECRET`.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "admin",
                "The admin token (printed at first start, or ORCHESTRATOR_ADMIN_TOKEN)",
            ),
            ("runner", "A runner token from POST /api/connect"),
            ("cron", "CRON_SECRET"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orchestrator",
        description = "Task queue, runner protocol, locks, verification evidence and the \
                       exception inbox of the orchestrator. Every error is the ErrorEnvelope."
    ),
    paths(
        health::health,
        health::health_head,
        tasks::list_tasks,
        tasks::create_task,
        tasks::create_batch,
        tasks::get_task,
        tasks::task_changes,
        tasks::patch_task,
        tasks::delete_task,
        tasks::run_task,
        tasks::retry_task,
        tasks::auto_retry_task,
        agents::list_agents,
        agents::spawn_agent,
        agents::get_agent,
        agents::control_agent,
        agents::retire_agent,
        agents::agent_logs,
        exceptions::list_exceptions,
        exceptions::get_exception,
        exceptions::decide_exception,
        locks::list_locks,
        locks::force_release,
        locks::check_locks,
        dashboard::stats,
        usage::usage,
        verify::verify,
        verify::results,
        connect::mint_setup_token,
        connect::exchange_setup_token,
        connect::disconnect,
        connect::list_runners,
        connect::revoke_runner,
        runner::status,
        runner::update_status,
        runner::task_states,
        runner::claim,
        runner::heartbeat,
        runner::logs,
        runner::acquire_locks,
        runner::complete,
        cron::cleanup,
        events::events,
        document,
    ),
    // Types that appear only in query parameters are not collected on their own.
    components(schemas(
        ErrorEnvelope,
        TaskStatus,
        TaskSort,
        AgentSort,
        AgentStatus,
        LogType,
        ExceptionSeverity,
        ExceptionType,
        ExceptionStatus,
        RunnerSessionStatus,
        SortOrder,
        IdPrefix,
        LogCursor,
        tasks::ListField,
        exceptions::StatusFilter,
    )),
    modifiers(&BearerTokens, &EmptyQueryValues)
)]
struct ApiDoc;

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)),
)]
async fn document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the API document serializes")
    });
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body.as_str())
}
