//! `GET /api/events`: the event log as Server-Sent Events.
//!
//! Each event goes out as `id: <seq>`, `event: <kind>`, `data: <event JSON>`. A client
//! resumes with `Last-Event-ID` (or `?after=<seq>`); without either it gets what happens
//! from now on. `taskId` and `agentId` filter. A comment line keeps idle connections
//! open. Each client has a bounded buffer: one that does not keep up gets a `resync`
//! event (reload, then resume from its `lastSeq`) and is disconnected, so memory never
//! grows with a slow reader. A client resuming from an event past the retention window,
//! or newer than the newest, gets a `resync` whose id is where the stream goes on from.
//! When the server shuts down, clients get a `shutdown` event. New events are read once
//! for all clients ([`EventFanout`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::Store;
use orchestrator_core::ids::{AgentId, TaskId};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Params;
use crate::fanout::{EventFanout, Outgoing, PAGE, message, resync};
use crate::state::AppState;

/// Messages buffered per client before it counts as too slow.
const CLIENT_BUFFER: usize = 256;
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
    fn admits(&self, task: Option<TaskId>, agent: Option<AgentId>) -> bool {
        self.task.is_none_or(|wanted| task == Some(wanted))
            && self.agent.is_none_or(|wanted| agent == Some(wanted))
    }
}

#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    summary = "The event log as Server-Sent Events (text/event-stream)",
    params(
        ("taskId" = Option<Uuid>, Query, description = "Only events about this task"),
        ("agentId" = Option<Uuid>, Query, description = "Only events about this agent"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this sequence number (or send Last-Event-ID)"),
    ),
    responses(
        (status = 200, description = "A stream of events: id = sequence number, event = kind, data = Event JSON", content_type = "text/event-stream", body = String),
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
    let (sender, receiver) = mpsc::channel::<Bytes>(CLIENT_BUFFER + 1);
    // A client that does not resume starts where the fan-out stands (see `feed`).
    let after = resume.unwrap_or_default();
    let stream = Stream {
        store: state.store.clone(),
        filter,
        after,
        delivered: after,
        sender,
    };
    tokio::spawn(feed(
        state.events.clone(),
        stream,
        resume.is_some(),
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

/// Where a stream stands: the last event it forwarded or passed over.
struct Stream {
    store: Arc<dyn Store>,
    filter: Filter,
    after: i64,
    /// The last event sent to this client (or had before it connected).
    delivered: i64,
    sender: mpsc::Sender<Bytes>,
}

/// The stream ends: the client left or fell behind, or the log could not be read.
struct Stopped;

impl Stream {
    /// Sends `event` if the filter admits it; `Err` ends the stream (a closed client, or
    /// one too slow: that one gets a `resync` first).
    fn forward(&mut self, event: &Outgoing) -> Result<(), Stopped> {
        if event.seq <= self.after {
            return Ok(());
        }
        self.after = event.seq;
        if !self.filter.admits(event.task_id, event.agent_id) {
            return Ok(());
        }
        // One place stays free for the resync notice.
        if self.sender.capacity() <= 1 {
            let _ = self
                .sender
                .try_send(resync("the client fell behind", self.delivered, false));
            return Err(Stopped);
        }
        self.sender
            .try_send(event.message.clone())
            .map_err(|_| Stopped)?;
        self.delivered = event.seq;
        Ok(())
    }

    /// Reads the log from where the stream stands up to the newest event.
    async fn catch_up(&mut self) -> Result<(), Stopped> {
        loop {
            let page = match self.store.events_since(self.after, PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "event stream: reading the log failed");
                    let data = json!({ "reason": "the event log could not be read; reconnect" });
                    let _ = self.sender.try_send(message("error", None, &data));
                    return Err(Stopped);
                }
            };
            for event in &page {
                self.forward(&Outgoing::new(event))?;
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Checks where a resuming client wants to start against the log: a position newer
    /// than the newest event (another database, or a reset one) or one whose following
    /// events were pruned gets a `resync` that moves it to where the log stands.
    async fn check_resume(&mut self) -> orchestrator_core::error::Result<()> {
        let newest = self.store.last_event_seq().await?;
        if self.after > newest {
            self.restart_at(newest, "Last-Event-ID is newer than the newest event");
            return Ok(());
        }
        if self.after == newest {
            return Ok(());
        }
        let oldest = self.store.events_since(-1, 1).await?;
        if let Some(oldest) = oldest.first()
            && oldest.seq > self.after + 1
        {
            self.restart_at(
                oldest.seq - 1,
                "the events after Last-Event-ID are past the retention window",
            );
        }
        Ok(())
    }

    fn restart_at(&mut self, seq: i64, reason: &str) {
        let _ = self.sender.try_send(resync(reason, seq, true));
        self.after = seq;
        self.delivered = seq;
    }
}

/// Follows the log from `after` for one client until it leaves, falls behind, or the
/// server shuts down: catches up from the store, then forwards the pages `fanout`
/// hands out.
async fn feed(
    fanout: Arc<EventFanout>,
    mut stream: Stream,
    resuming: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut pages, handed_out) = match fanout.follow().await {
        Ok(followed) => followed,
        Err(err) => {
            tracing::warn!(error = %err, "event stream: reading the log failed");
            return;
        }
    };
    if !resuming {
        // What happens from now on: everything after the events handed out so far.
        stream.after = handed_out;
        stream.delivered = handed_out;
    }
    // Sent once the stream follows, so that a client that saw it misses nothing after.
    let _ = stream
        .sender
        .send(Bytes::from_static(b": connected\n\n"))
        .await;
    if resuming && let Err(err) = stream.check_resume().await {
        tracing::warn!(error = %err, "event stream: reading the log failed");
        return;
    }
    // Events after `handed_out` arrive as pages; only those before, not yet seen, are
    // read here.
    if stream.after < handed_out && stream.catch_up().await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            page = pages.recv() => match page {
                Ok(page) => {
                    if page.iter().try_for_each(|event| stream.forward(event)).is_err() {
                        return;
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.wait_for(|stopping| *stopping) => {
                let data = json!({
                    "reason": "the server is shutting down",
                    "lastSeq": stream.delivered,
                });
                let _ = stream.sender.try_send(message("shutdown", None, &data));
                return;
            }
            () = stream.sender.closed() => return,
            () = tokio::time::sleep(KEEP_ALIVE) => {
                // A full buffer is handled with the next event; a closed one ends the feed.
                let _ = stream.sender.try_send(Bytes::from_static(b": keep-alive\n\n"));
                continue;
            }
        }
        // The stream fell further behind than the pages kept.
        if stream.catch_up().await.is_err() {
            return;
        }
    }
}
