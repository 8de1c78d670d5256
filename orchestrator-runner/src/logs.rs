//! Streaming an agent's output to the orchestrator: entries are queued without blocking
//! the agent and sent in batches at least every flush interval (or sooner, when a batch
//! fills up).

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::backend::{AgentOutput, AgentOutputSink};
use orchestrator_core::protocol::{AttemptRef, LogEntry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::OrchestratorClient;

/// Entries per request.
const BATCH: usize = 200;

/// Queues an attempt's log entries for the sender.
#[derive(Debug, Clone)]
pub struct LogSink {
    queue: mpsc::UnboundedSender<LogEntry>,
}

impl LogSink {
    /// Queues a line the runner itself says about the attempt.
    pub fn note(&self, log_type: orchestrator_core::model::LogType, content: impl Into<String>) {
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
/// the queue is sent.
pub fn stream(
    client: Arc<dyn OrchestratorClient>,
    attempt: AttemptRef,
    flush_every: Duration,
) -> (LogSink, JoinHandle<()>) {
    let (queue, mut received) = mpsc::unbounded_channel::<LogEntry>();
    let sender = tokio::spawn(async move {
        let mut lease_lost = false;
        while let Some(first) = received.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + flush_every;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, received.recv()).await {
                    Ok(Some(line)) => batch.push(line),
                    Ok(None) | Err(_) => break,
                }
            }
            if lease_lost {
                continue;
            }
            if let Err(err) = client.send_logs(attempt, &batch).await {
                lease_lost = err.is_stale_lease();
                tracing::warn!(task = %attempt.task_id(), error = %err, entries = batch.len(), "log batch not delivered");
            }
        }
    });
    (LogSink { queue }, sender)
}
