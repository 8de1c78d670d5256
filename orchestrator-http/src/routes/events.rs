//! `GET /api/events`: the event log as Server-Sent Events.
//!
//! Each event goes out as `id: <seq>`, `event: <kind>`, `data: <event JSON>`. A client
//! resumes with `Last-Event-ID` (or `?after=<seq>`); without either it gets what happens
//! from now on. `taskId` and `agentId` filter. A comment line keeps idle connections
//! open. Each client has a bounded buffer: one that does not keep up gets a `resync`
//! event (reload, then resume from its `seq`) and is disconnected, so memory never grows
//! with a slow reader. When the server shuts down, clients get a `shutdown` event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::Store;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::Event;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Params;
use crate::state::AppState;

/// Messages buffered per client before it counts as too slow.
const CLIENT_BUFFER: usize = 256;
/// Events read from the store per query.
const PAGE: u32 = 200;
/// Idle time after which a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").route(web::get().to(events)));
}

/// Which events a client wants.
#[derive(Debug, Clone, Copy)]
struct Filter {
    task: Option<TaskId>,
    agent: Option<AgentId>,
}

impl Filter {
    fn admits(&self, event: &Event) -> bool {
        self.task.is_none_or(|task| event.task_id == Some(task))
            && self.agent.is_none_or(|agent| event.agent_id == Some(agent))
    }
}

#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    summary = "The event log as Server-Sent Events (text/event-stream)",
    params(
        ("taskId" = Option<String>, Query, description = "Only events about this task"),
        ("agentId" = Option<String>, Query, description = "Only events about this agent"),
        ("after" = Option<i64>, Query, description = "Start after this sequence number (or send Last-Event-ID)"),
    ),
    responses(
        (status = 200, description = "A stream of events: id = sequence number, event = kind, data = Event JSON"),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 403, description = "A token of the other scope", body = ErrorEnvelope),
    ),
    security(("admin" = [])),
)]
async fn events(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> ApiResult<HttpResponse> {
    let filter = Filter {
        task: params.parse::<TaskId>("taskId")?,
        agent: params.parse::<AgentId>("agentId")?,
    };
    let resume = match req.headers().get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .filter(|seq| *seq >= 0)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "must be the id of an event received")
                })?,
        ),
        None => params
            .int("after", 0..=i64::MAX, -1)
            .map(|after| (after >= 0).then_some(after))?,
    };
    let after = match resume {
        Some(after) => after,
        None => state.store.last_event_seq().await?,
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(CLIENT_BUFFER + 1);
    tokio::spawn(feed(
        state.store.clone(),
        filter,
        after,
        sender,
        state.shutdown_signal(),
    ));
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), receiver))
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// One SSE message.
fn message(event: &str, id: Option<i64>, data: &serde_json::Value) -> Bytes {
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(text)
}

/// Reads the log after `after` and sends what `filter` admits until the client leaves,
/// falls behind, or the server shuts down.
async fn feed(
    store: Arc<dyn Store>,
    filter: Filter,
    mut after: i64,
    sender: mpsc::Sender<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut commits = store.subscribe();
    // The last event this client was sent (or had before it connected).
    let mut delivered = after;
    let _ = sender.send(Bytes::from_static(b": connected\n\n")).await;
    loop {
        commits.borrow_and_update();
        let page = match store.events_since(after, PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "event stream: reading the log failed");
                let data = json!({ "reason": "the event log could not be read; reconnect" });
                let _ = sender.try_send(message("error", None, &data));
                return;
            }
        };
        for event in &page {
            after = event.seq;
            if !filter.admits(event) {
                continue;
            }
            // One place stays free for the resync notice.
            if sender.capacity() <= 1 {
                let data = json!({ "reason": "the client fell behind", "lastSeq": delivered });
                let _ = sender.try_send(message("resync", None, &data));
                return;
            }
            let data = serde_json::to_value(event).unwrap_or_default();
            if sender
                .try_send(message(event.kind.as_str(), Some(event.seq), &data))
                .is_err()
            {
                return;
            }
            delivered = event.seq;
        }
        if page.len() == PAGE as usize {
            continue;
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shutdown.wait_for(|stopping| *stopping) => {
                let data = json!({ "reason": "the server is shutting down", "lastSeq": delivered });
                let _ = sender.try_send(message("shutdown", None, &data));
                return;
            }
            () = sender.closed() => return,
            () = tokio::time::sleep(KEEP_ALIVE) => {
                // A full buffer is handled with the next event; a closed one ends the feed.
                let _ = sender.try_send(Bytes::from_static(b": keep-alive\n\n"));
            }
        }
    }
}
