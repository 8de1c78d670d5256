//! [`EventFanout`]: one reader of the event log for every event stream of the process.
//!
//! While at least one client follows `/api/events`, one task reads each commit's events
//! once, encodes each as its Server-Sent Events message once, and hands the same page to
//! every stream; a stream only filters and forwards. A stream reads the log by itself
//! only to catch up: when it starts from an earlier event, or when it fell behind the
//! pages handed out.

use std::sync::{Arc, OnceLock};

use actix_web::web::Bytes;
use orchestrator_core::Store;
use orchestrator_core::error::Result;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::Event;
use serde_json::json;
use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;

/// Events read from the store per query.
pub(crate) const PAGE: u32 = 200;
/// Pages kept for streams that have not forwarded them yet; one further behind catches
/// up from the store.
const PAGES_KEPT: usize = 64;

/// Hands each new event of the store to every event stream of the process.
#[derive(Debug)]
pub struct EventFanout {
    store: Arc<dyn Store>,
    pages: broadcast::Sender<Arc<[Outgoing]>>,
    /// The newest event handed out; `None` while no stream follows (nothing is read then).
    position: Arc<Mutex<Option<i64>>>,
    reader: OnceLock<JoinHandle<()>>,
}

/// An event as streams send it: what they filter on, and its encoded message.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub seq: i64,
    pub task_id: Option<TaskId>,
    pub agent_id: Option<AgentId>,
    pub message: Bytes,
}

impl Outgoing {
    pub(crate) fn new(event: &Event) -> Self {
        let data = serde_json::to_value(event).unwrap_or_default();
        Self {
            seq: event.seq,
            task_id: event.task_id,
            agent_id: event.agent_id,
            message: message(event.kind.as_str(), Some(event.seq), &data),
        }
    }
}

/// One Server-Sent Events message.
pub(crate) fn message(event: &str, id: Option<i64>, data: &serde_json::Value) -> Bytes {
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(text)
}

/// A `resync` message: the client should reload what it shows, then follow from `seq`
/// (the message carries it as its id, so a reconnecting browser resumes there).
pub(crate) fn resync(reason: &str, seq: i64, with_id: bool) -> Bytes {
    let data = json!({ "reason": reason, "lastSeq": seq });
    message("resync", with_id.then_some(seq), &data)
}

impl EventFanout {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            pages: broadcast::Sender::new(PAGES_KEPT),
            position: Arc::new(Mutex::new(None)),
            reader: OnceLock::new(),
        }
    }

    /// Pages of the events committed from now on. Every event after the returned
    /// position arrives on the receiver; those up to it the stream reads itself.
    pub(crate) async fn follow(&self) -> Result<(broadcast::Receiver<Arc<[Outgoing]>>, i64)> {
        self.reader.get_or_init(|| {
            tokio::spawn(hand_out(
                self.store.clone(),
                self.pages.clone(),
                self.position.clone(),
            ))
        });
        let pages = self.pages.subscribe();
        let mut position = self.position.lock().await;
        let from = match *position {
            Some(seq) => seq,
            None => {
                let newest = self.store.last_event_seq().await?;
                *position = Some(newest);
                newest
            }
        };
        Ok((pages, from))
    }

    /// The event streams following now.
    pub fn streams(&self) -> usize {
        self.pages.receiver_count()
    }
}

impl Drop for EventFanout {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
    }
}

/// Reads the events of each commit once while streams follow, and hands them out.
async fn hand_out(
    store: Arc<dyn Store>,
    pages: broadcast::Sender<Arc<[Outgoing]>>,
    position: Arc<Mutex<Option<i64>>>,
) {
    let mut commits = store.subscribe();
    loop {
        if commits.changed().await.is_err() {
            return;
        }
        let mut position = position.lock().await;
        if pages.receiver_count() == 0 {
            *position = None;
            continue;
        }
        let Some(mut after) = *position else {
            continue;
        };
        loop {
            let page = match store.events_since(after, PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    // The next commit reads again from where this one stopped.
                    tracing::warn!(error = %err, "event fan-out: reading the log failed");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == PAGE as usize;
            let _ = pages.send(page.iter().map(Outgoing::new).collect());
            if !full {
                break;
            }
        }
        *position = Some(after);
    }
}
