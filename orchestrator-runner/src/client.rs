//! How a runner talks to the orchestrator: the [`OrchestratorClient`] seam, over HTTP
//! ([`crate::http`]) or in process ([`crate::local`]). Both carry the messages of
//! [`orchestrator_core::protocol`] and answer refusals alike ([`Refusal`]).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::{AttemptCompletion, LockAnswer};
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::model::{RunnerIdentity, TaskStatus};
use orchestrator_core::protocol::{AttemptRef, ClaimedTask, LogEntry};

/// Why the orchestrator refused a call, in the protocol's terms: the same whichever
/// transport carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The call itself was wrong (a bad field, a body too large).
    Invalid,
    /// The runner's token or session is not accepted, or the slot is not its own.
    Unauthorized,
    /// What the call names does not exist (any more).
    NotFound,
    /// It clashes with the current state: a stale lease, every slot busy.
    Conflict,
    /// Too many calls at once; try again later.
    RateLimited,
    /// The orchestrator cannot serve it now; try again.
    Unavailable,
    /// Any other answer of the transport.
    Other,
}

/// Why a call to the orchestrator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The orchestrator refused the call (its code and message).
    #[error("the orchestrator refused: {code}: {message}")]
    Refused {
        refusal: Refusal,
        code: String,
        message: String,
        /// How long the orchestrator asked to wait before trying again (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// It could not be reached, or its answer could not be read.
    #[error("the orchestrator at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
}

impl ClientError {
    /// The attempt's lease is no longer valid: stop working on it.
    pub fn is_stale_lease(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                refusal: Refusal::Conflict | Refusal::NotFound,
                ..
            }
        )
    }

    /// The runner's token was refused: reconnecting is the only fix.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                refusal: Refusal::Unauthorized,
                ..
            }
        )
    }

    /// The call itself was refused (a bad field, a body too large): sending it again
    /// cannot help.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                refusal: Refusal::Invalid,
                ..
            }
        )
    }

    /// The same call may succeed later: the orchestrator was unreachable, busy or
    /// failing, or asked to be called again later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { refusal, .. } => matches!(
                refusal,
                Refusal::RateLimited | Refusal::Unavailable | Refusal::Other
            ),
        }
    }

    /// The wait the orchestrator asked for before the next try, if it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            Self::Unreachable { .. } => None,
        }
    }
}

/// The orchestrator as a runner sees it.
#[async_trait]
pub trait OrchestratorClient: Send + Sync + Debug + 'static {
    /// Claims up to `max` tasks, waiting up to `wait` for work when none is claimable,
    /// stating what `runner` is.
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
        runner: &RunnerIdentity,
    ) -> Result<Vec<ClaimedTask>, ClientError>;

    /// Extends the attempt's lease (optionally reporting where it has got to) and returns
    /// what the runner must do.
    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError>;

    /// Appends a batch of log entries to the attempt.
    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogEntry]) -> Result<(), ClientError>;

    /// Locks `paths` the attempt changed beyond its locks, all or none.
    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError>;

    /// Ends the attempt with its evidence; sending the same completion again is harmless.
    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError>;
}
