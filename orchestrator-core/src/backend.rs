//! The [`AgentBackend`] seam: whatever does the coding (Claude Code, a model API, any CLI).

use std::fmt::Debug;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::model::{LogType, Usage};

/// What an agent is asked to do, and where.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// The full prompt: task, constraints, previous failures.
    pub prompt: String,
    /// The isolated working tree the agent may change.
    pub work_dir: PathBuf,
    /// Paths the agent holds locks on and must stay inside.
    pub locked_paths: Vec<String>,
    /// Whether a human asked the agent to hold still; a backend suspends its work while
    /// it is set (see [`PauseSignal`]).
    pub pause: PauseSignal,
}

/// A human's "pause" and "resume", as the runner hears them on its heartbeats.
///
/// A backend that runs a process suspends the process group while paused; one that
/// drives a model waits before its next request or tool call. Once the sender is gone
/// the signal no longer changes, and nothing waits for a resume.
#[derive(Debug, Clone)]
pub struct PauseSignal(watch::Receiver<bool>);

impl PauseSignal {
    /// A signal and the sender that sets it (`true` = paused).
    pub fn channel() -> (watch::Sender<bool>, Self) {
        let (sender, receiver) = watch::channel(false);
        (sender, Self(receiver))
    }

    /// A signal that never pauses, for agents run outside a runner.
    pub fn never() -> Self {
        Self::channel().1
    }

    /// Whether the agent should be holding still now.
    pub fn is_paused(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the agent may go on (at once when it is not paused).
    pub async fn until_resumed(&mut self) {
        // An error means the sender is gone: there is nobody left to wait for.
        let _ = self.0.wait_for(|paused| !paused).await;
    }

    /// Waits for the next change and returns the new state; never resolves once the
    /// sender is gone.
    pub async fn changed(&mut self) -> bool {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *self.0.borrow_and_update()
    }
}

/// One thing the agent did or said, streamed while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    pub log_type: LogType,
    pub content: String,
    pub metadata: Option<serde_json::Value>,
}

/// Receives an agent's output as it happens. Must not block.
pub trait AgentOutputSink: Send + Sync {
    /// Takes one entry.
    fn emit(&self, output: AgentOutput);
}

/// How an agent run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutcome {
    /// The agent itself reported success (not merely "the process exited 0").
    pub success: bool,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub usage: Usage,
    /// The model the agent ran on, when the backend knows it.
    pub model: Option<String>,
}

impl AgentOutcome {
    /// The agent finished its work.
    pub fn succeeded(summary: Option<String>, usage: Usage) -> Self {
        Self {
            success: true,
            summary,
            error: None,
            usage,
            model: None,
        }
    }

    /// The agent did not finish its work, for the reason given.
    pub fn failed(error: impl Into<String>, usage: Usage) -> Self {
        Self {
            success: false,
            summary: None,
            error: Some(error.into()),
            usage,
            model: None,
        }
    }
}

/// Runs an agent on a request.
///
/// Contract: `run` returns when the agent has finished; a failed task is an `Ok` outcome
/// with `success: false`, and `Err` is for the backend being unable to run at all.
/// Dropping the future stops the agent and every process it started.
#[async_trait]
pub trait AgentBackend: Send + Sync + Debug + 'static {
    /// A short, stable name ("claude-code", "anthropic").
    fn name(&self) -> &str;

    /// Runs the agent to completion, streaming its output to `sink`.
    async fn run(&self, request: AgentRequest, sink: &dyn AgentOutputSink) -> Result<AgentOutcome>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_paused_agent_waits_until_resumed() {
        let (sender, mut signal) = PauseSignal::channel();
        assert!(!signal.is_paused());
        signal.until_resumed().await;

        sender.send_replace(true);
        assert!(signal.changed().await);
        assert!(signal.is_paused());
        let mut waiting = signal.clone();
        let resumed = tokio::spawn(async move { waiting.until_resumed().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!resumed.is_finished(), "it waits while paused");
        sender.send_replace(false);
        resumed.await.unwrap();
        assert!(!signal.changed().await);
    }

    #[tokio::test]
    async fn a_signal_without_a_sender_never_pauses_nor_changes() {
        let mut never = PauseSignal::never();
        assert!(!never.is_paused());
        never.until_resumed().await;
        let changed = tokio::time::timeout(Duration::from_millis(20), never.changed()).await;
        assert!(changed.is_err(), "no change can come");
    }
}
