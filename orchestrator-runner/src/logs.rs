//! Streaming an agent's output to the orchestrator: entries are queued without blocking
//! the agent and sent in batches at least every flush interval (or sooner, when a batch
//! fills up).
//!
//! Everything is bounded. An entry's text and its metadata's strings are cut (with a
//! marker saying how much) to fit a per-entry budget, a batch stays well under the
//! server's body limit, and the queue holds at most so many entries and bytes: past
//! that the oldest are dropped. Entries that were dropped, or that the orchestrator
//! could not take, are never lost without a trace: the next batch starts with a note
//! saying how many and why.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::backend::{AgentOutput, AgentOutputSink};
use orchestrator_core::model::LogType;
use orchestrator_core::protocol::{AttemptRef, LogEntry, MAX_LOG_BATCH_BYTES};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{ClientError, OrchestratorClient};

/// Entries per request.
const BATCH_ENTRIES: usize = 200;
/// Bytes of entries per request: a fifth of what the orchestrator accepts.
const BATCH_BYTES: usize = MAX_LOG_BATCH_BYTES / 5;
/// Longest text of one entry, in bytes; longer text is cut with a marker.
const ENTRY_TEXT_BYTES: usize = 48 * 1024;
/// Longest string in an entry's metadata (a tool's input, say), in bytes.
const METADATA_STRING_BYTES: usize = 4 * 1024;
/// Most bytes of one entry's metadata; larger metadata is replaced by a preview.
const METADATA_BYTES: usize = 16 * 1024;
/// The queue holds at most this many entries…
const QUEUE_ENTRIES: usize = 20_000;
/// …and this many bytes; past either, the oldest entries are dropped.
const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Tries of a batch that fails for a passing reason before it is given up.
const SEND_TRIES: u32 = 3;

/// Queues an attempt's log entries for the sender.
#[derive(Debug, Clone)]
pub struct LogSink {
    queue: mpsc::UnboundedSender<LogEntry>,
}

impl LogSink {
    /// Queues a line the runner itself says about the attempt.
    pub fn note(&self, log_type: LogType, content: impl Into<String>) {
        let _ = self.queue.send(LogEntry {
            log_type,
            content: content.into(),
            metadata: None,
            timestamp: None,
        });
    }
}

impl AgentOutputSink for LogSink {
    fn emit(&self, output: AgentOutput) {
        // The sender is gone only after the attempt ended; late output has nowhere to go.
        let _ = self.queue.send(LogEntry {
            log_type: output.log_type,
            content: output.content,
            metadata: output.metadata,
            timestamp: None,
        });
    }
}

/// Starts the sender for `attempt`; it ends once every [`LogSink`] clone is dropped and
/// the queue is sent (or the lease is found lost).
pub fn stream(
    client: Arc<dyn OrchestratorClient>,
    attempt: AttemptRef,
    flush_every: Duration,
) -> (LogSink, JoinHandle<()>) {
    let (queue, received) = mpsc::unbounded_channel::<LogEntry>();
    let sender = tokio::spawn(send_all(client, attempt, flush_every, received));
    (LogSink { queue }, sender)
}

/// Entries waiting to be sent, within the queue's bounds.
#[derive(Debug, Default)]
struct Backlog {
    entries: VecDeque<(LogEntry, usize)>,
    bytes: usize,
    /// Entries dropped from the front since the last batch.
    dropped: u64,
    /// Entries the orchestrator did not take, and why (the last reason).
    undelivered: u64,
    why_undelivered: String,
}

impl Backlog {
    fn push(&mut self, entry: LogEntry) {
        let entry = bounded(entry);
        let size = entry_size(&entry);
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > QUEUE_ENTRIES || self.bytes > QUEUE_BYTES {
            let Some((_, size)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.dropped += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.dropped == 0 && self.undelivered == 0
    }

    /// Whether a whole batch is waiting.
    fn full(&self) -> bool {
        self.entries.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES
    }

    /// The next batch: a note on what was lost since the last one, then the oldest
    /// entries up to the batch's bounds.
    fn take_batch(&mut self) -> Vec<LogEntry> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        if self.dropped > 0 {
            batch.push(runner_note(format!(
                "{} log entries were dropped: the runner's log queue was full (at most \
                 {QUEUE_ENTRIES} entries or {} MiB wait to be sent)",
                self.dropped,
                QUEUE_BYTES >> 20
            )));
            self.dropped = 0;
        }
        if self.undelivered > 0 {
            batch.push(runner_note(format!(
                "{} log entries could not be delivered: {}",
                self.undelivered, self.why_undelivered
            )));
            self.undelivered = 0;
        }
        bytes += batch.iter().map(entry_size).sum::<usize>();
        while let Some((_, size)) = self.entries.front() {
            if batch.len() >= BATCH_ENTRIES || (!batch.is_empty() && bytes + size > BATCH_BYTES) {
                break;
            }
            let (entry, size) = self.entries.pop_front().expect("just looked");
            self.bytes -= size;
            bytes += size;
            batch.push(entry);
        }
        batch
    }

    fn lost(&mut self, entries: u64, why: String) {
        if entries > 0 {
            self.undelivered += entries;
            self.why_undelivered = why;
        }
    }
}

/// Sends what the sinks queue, in batches, until they are all dropped and the backlog is
/// sent. Entries keep arriving (and the oldest are dropped past the bounds) while a
/// batch is on its way.
async fn send_all(
    client: Arc<dyn OrchestratorClient>,
    attempt: AttemptRef,
    flush_every: Duration,
    mut received: mpsc::UnboundedReceiver<LogEntry>,
) {
    let mut backlog = Backlog::default();
    let mut open = true;
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut in_flight: Option<std::pin::Pin<Box<dyn Future<Output = Sent> + Send>>> = None;
    loop {
        let due = flush_at.is_some_and(|at| at <= tokio::time::Instant::now());
        if in_flight.is_none() && !backlog.is_empty() && (!open || due || backlog.full()) {
            let batch = backlog.take_batch();
            flush_at = (!backlog.is_empty()).then(|| tokio::time::Instant::now() + flush_every);
            let client = client.clone();
            in_flight = Some(Box::pin(
                async move { send(&*client, attempt, batch).await },
            ));
        }
        if !open && in_flight.is_none() && backlog.is_empty() {
            return;
        }
        tokio::select! {
            entry = received.recv(), if open => match entry {
                Some(entry) => {
                    backlog.push(entry);
                    flush_at.get_or_insert_with(|| tokio::time::Instant::now() + flush_every);
                }
                None => open = false,
            },
            sent = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                match sent {
                    Sent::LeaseLost(err) => {
                        // Nothing more can be added to the attempt's log.
                        tracing::warn!(task = %attempt.task_id(), error = %err, "the lease is gone; the rest of the log is not sent");
                        return;
                    }
                    Sent::Lost { entries, why } => {
                        tracing::warn!(task = %attempt.task_id(), entries, reason = %why, "log entries not delivered");
                        // Said in the next batch; once the sinks are gone there is none
                        // to wait for, and the warning above is the trace.
                        if open {
                            backlog.lost(entries, why);
                        }
                    }
                    Sent::Delivered => {}
                }
            },
            () = sleep_until(flush_at), if flush_at.is_some() && in_flight.is_none() => {}
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What became of a batch.
enum Sent {
    Delivered,
    /// Some entries (`entries`) were not taken.
    Lost {
        entries: u64,
        why: String,
    },
    LeaseLost(ClientError),
}

/// Sends `batch`, trying again after failures that may pass; a batch the orchestrator
/// refuses as too large or invalid is split in halves, and a single entry it refuses is
/// replaced by a note saying so.
async fn send(client: &dyn OrchestratorClient, attempt: AttemptRef, batch: Vec<LogEntry>) -> Sent {
    // Batches still to send, each marked when it is the note standing in for a refused
    // entry (a note is never replaced by another).
    let mut pending = vec![(batch, false)];
    let mut lost = 0u64;
    let mut why = String::new();
    while let Some((batch, is_note)) = pending.pop() {
        let mut tries = 0;
        let err = loop {
            tries += 1;
            match client.send_logs(attempt, &batch).await {
                Ok(()) => break None,
                Err(err) if err.is_stale_lease() => return Sent::LeaseLost(err),
                Err(err) if err.is_transient() && tries < SEND_TRIES => {
                    let wait = err
                        .retry_after()
                        .unwrap_or(Duration::from_secs(1 << (tries - 1)));
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                Err(err) => break Some(err),
            }
        };
        let Some(err) = err else { continue };
        if err.is_invalid() && batch.len() > 1 {
            let mut first = batch;
            let second = first.split_off(first.len() / 2);
            pending.push((second, false));
            pending.push((first, false));
        } else if err.is_invalid() && !is_note {
            let entry = &batch[0];
            let note = runner_note(format!(
                "a {} log entry of {} bytes was refused by the orchestrator ({err}); it is left out",
                entry.log_type.as_str(),
                entry_size(entry)
            ));
            pending.push((vec![note], true));
        } else {
            lost += batch.len() as u64;
            why = err.to_string();
        }
    }
    if lost == 0 {
        Sent::Delivered
    } else {
        Sent::Lost { entries: lost, why }
    }
}

fn runner_note(content: String) -> LogEntry {
    LogEntry {
        log_type: LogType::Info,
        content,
        metadata: None,
        timestamp: None,
    }
}

/// Bytes `entry` takes in a batch (its text, its metadata, and room for the rest).
fn entry_size(entry: &LogEntry) -> usize {
    let metadata = entry
        .metadata
        .as_ref()
        .map_or(0, |m| serde_json::to_vec(m).map_or(0, |bytes| bytes.len()));
    // JSON escapes can double the text; the fields' names and quotes take some more.
    entry.content.len() * 2 + metadata + 128
}

/// `entry` within the per-entry bounds: its text cut to [`ENTRY_TEXT_BYTES`], its
/// metadata's strings to [`METADATA_STRING_BYTES`], and metadata still larger than
/// [`METADATA_BYTES`] replaced by a preview; each cut says how much it left out.
fn bounded(mut entry: LogEntry) -> LogEntry {
    entry.content = cut(entry.content, ENTRY_TEXT_BYTES);
    if let Some(metadata) = entry.metadata.as_mut() {
        cut_strings(metadata);
        let bytes = serde_json::to_string(metadata).unwrap_or_default();
        if bytes.len() > METADATA_BYTES {
            entry.metadata = Some(serde_json::json!({
                "truncated": true,
                "bytes": bytes.len(),
                "preview": cut(bytes, METADATA_STRING_BYTES),
            }));
        }
    }
    entry
}

fn cut_strings(value: &mut Value) {
    match value {
        Value::String(text) if text.len() > METADATA_STRING_BYTES => {
            *text = cut(std::mem::take(text), METADATA_STRING_BYTES);
        }
        Value::Array(items) => items.iter_mut().for_each(cut_strings),
        Value::Object(fields) => fields.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// `text` cut to at most about `limit` bytes (at a character boundary), with a marker
/// saying how many bytes were left out.
fn cut(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… [the runner cut {} of {} bytes]",
        &text[..end],
        text.len() - end,
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use orchestrator_core::attempts::{AttemptCompletion, LockAnswer};
    use orchestrator_core::change::LeaseRef;
    use orchestrator_core::coordination::ControlSignal;
    use orchestrator_core::ids::{AgentId, LeaseToken, TaskId};
    use orchestrator_core::model::{RunnerIdentity, TaskStatus};
    use orchestrator_core::protocol::{ClaimedTask, LogBatch};

    use super::*;
    use crate::client::Refusal;

    /// Takes log batches as a server does: a body past [`MAX_LOG_BATCH_BYTES`] is a 413;
    /// while `stalled`, every batch waits.
    #[derive(Debug, Default)]
    struct LogServer {
        received: Mutex<Vec<Vec<LogEntry>>>,
        stalled: tokio::sync::Notify,
        stall: std::sync::atomic::AtomicBool,
    }

    impl LogServer {
        fn entries(&self) -> Vec<LogEntry> {
            self.received.lock().unwrap().concat()
        }
    }

    #[async_trait]
    impl OrchestratorClient for LogServer {
        async fn claim(
            &self,
            _: usize,
            _: Duration,
            _: Duration,
            _: &RunnerIdentity,
        ) -> Result<Vec<ClaimedTask>, ClientError> {
            Err(logs_only())
        }

        async fn heartbeat(
            &self,
            _: AttemptRef,
            _: Duration,
            _: Option<TaskStatus>,
        ) -> Result<ControlSignal, ClientError> {
            Err(logs_only())
        }

        async fn send_logs(
            &self,
            attempt: AttemptRef,
            logs: &[LogEntry],
        ) -> Result<(), ClientError> {
            if self.stall.load(std::sync::atomic::Ordering::SeqCst) {
                self.stalled.notified().await;
            }
            let body = serde_json::to_vec(&LogBatch::new(attempt, logs.to_vec())).unwrap();
            if body.len() > MAX_LOG_BATCH_BYTES {
                return Err(ClientError::Refused {
                    refusal: Refusal::Invalid,
                    code: "PAYLOAD_TOO_LARGE".into(),
                    message: format!("{} bytes", body.len()),
                    retry_after: None,
                });
            }
            self.received.lock().unwrap().push(logs.to_vec());
            Ok(())
        }

        async fn acquire_locks(
            &self,
            _: AttemptRef,
            _: &[String],
        ) -> Result<LockAnswer, ClientError> {
            Err(logs_only())
        }

        async fn complete(&self, _: AttemptRef, _: &AttemptCompletion) -> Result<(), ClientError> {
            Err(logs_only())
        }
    }

    fn logs_only() -> ClientError {
        ClientError::Unreachable {
            url: "the test's log server".into(),
            detail: "it takes log batches only".into(),
        }
    }

    fn attempt() -> AttemptRef {
        AttemptRef {
            agent_id: AgentId::new(),
            lease: LeaseRef {
                task_id: TaskId::new(),
                attempt: 1,
                lease_token: LeaseToken::new(),
            },
        }
    }

    fn output(content: String, metadata: Option<Value>) -> AgentOutput {
        AgentOutput {
            log_type: LogType::ToolCall,
            content,
            metadata,
        }
    }

    #[tokio::test]
    async fn huge_entries_are_cut_with_a_marker_and_batches_fit_the_body_limit() {
        let server = Arc::new(LogServer::default());
        let (sink, sender) = stream(server.clone(), attempt(), Duration::from_millis(10));
        // Ten entries of 3 MB each, with a tool input of 1 MB: far past the body limit
        // together, and each alone.
        for _ in 0..10 {
            sink.emit(output(
                "x".repeat(3_000_000),
                Some(serde_json::json!({"input": {"command": "y".repeat(1_000_000)}})),
            ));
        }
        drop(sink);
        sender.await.unwrap();
        let entries = server.entries();
        assert_eq!(entries.len(), 10, "nothing is lost");
        for entry in &entries {
            assert!(entry.content.len() < ENTRY_TEXT_BYTES + 100);
            assert!(
                entry
                    .content
                    .ends_with("[the runner cut 2950848 of 3000000 bytes]"),
                "{}",
                &entry.content[entry.content.len() - 60..]
            );
            let input = entry.metadata.as_ref().unwrap()["input"]["command"]
                .as_str()
                .unwrap();
            assert!(input.len() < METADATA_STRING_BYTES + 100);
            assert!(input.contains("the runner cut"));
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_entries_and_says_how_many() {
        let server = Arc::new(LogServer::default());
        server
            .stall
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (sink, sender) = stream(server.clone(), attempt(), Duration::from_millis(10));
        let total = QUEUE_ENTRIES + 5_000;
        for line in 0..total {
            sink.note(LogType::Info, format!("line {line}"));
        }
        // Let the sender take everything in while its first batch is stalled.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server
            .stall
            .store(false, std::sync::atomic::Ordering::SeqCst);
        server.stalled.notify_waiters();
        drop(sink);
        sender.await.unwrap();
        let entries = server.entries();
        let notes: Vec<&LogEntry> = entries
            .iter()
            .filter(|e| e.content.contains("were dropped"))
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let lines = entries.len() - notes.len();
        let dropped: usize = notes[0].content.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(lines + dropped, total, "every line is sent or counted");
        assert!(lines <= QUEUE_ENTRIES + BATCH_ENTRIES, "{lines}");
        assert_eq!(
            entries.last().unwrap().content,
            format!("line {}", total - 1),
            "the newest are kept"
        );
    }

    #[tokio::test]
    async fn a_batch_refused_as_too_large_is_split_and_a_refused_entry_leaves_a_note() {
        let server = LogServer::default();
        let entries: Vec<LogEntry> = (0..4)
            .map(|n| LogEntry {
                log_type: LogType::Info,
                // Unbounded entries, as if the sender had not cut them: together past
                // the limit, the last alone too.
                content: "z".repeat(if n == 3 {
                    MAX_LOG_BATCH_BYTES
                } else {
                    2_000_000
                }),
                metadata: None,
                timestamp: None,
            })
            .collect();
        let sent = send(&server, attempt(), entries).await;
        assert!(matches!(sent, Sent::Delivered));
        let received = server.entries();
        assert_eq!(received.len(), 4);
        assert!(received[..3].iter().all(|e| e.content.len() == 2_000_000));
        assert!(
            received[3]
                .content
                .contains("was refused by the orchestrator"),
            "{}",
            received[3].content
        );
    }
}
