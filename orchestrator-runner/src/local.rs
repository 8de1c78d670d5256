//! [`OrchestratorClient`] over a [`Store`] in the same process: a runner inside the
//! server (`orchestrator-server --local-runner DIR`) or inside any program that embeds
//! the core. It calls the same [`RunnerProtocol`] the HTTP routes call, with the same
//! messages, and hears its refusals as the core's errors.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::{AttemptCompletion, LockAnswer};
use orchestrator_core::coordination::{ClaimRoom, ControlSignal};
use orchestrator_core::model::{NewRunnerSession, RunnerIdentity, RunnerSession, TaskStatus};
use orchestrator_core::protocol::{
    AttemptRef, ChangedPaths, ClaimWork, ClaimedTask, CompletionReport, HeartbeatReport, LogBatch,
    LogEntry, RunnerProtocol,
};
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::{Clock, Error, Store};

use crate::client::{ClientError, OrchestratorClient, Refusal};

/// A runner session of this process, working through the store directly.
#[derive(Debug)]
pub struct LocalClient {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retry_policy: RetryPolicy,
    /// Where this client's waiting claims take turns.
    waiting: ClaimRoom,
    /// The session as it was when it last called in.
    session: Mutex<RunnerSession>,
}

impl LocalClient {
    /// Registers a runner session called `name` for the repository at `working_dir`; the
    /// runner states what it is with its claims.
    pub async fn register(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        name: &str,
        working_dir: &Path,
    ) -> orchestrator_core::Result<Self> {
        // The session is reached in process only: its token hash matches no token.
        let unusable = format!(
            "in-process:{}",
            orchestrator_core::ids::RunnerSessionId::new()
        );
        let session = store
            .create_runner_session(
                NewRunnerSession {
                    name: name.to_owned(),
                    working_dir: working_dir.to_string_lossy().into_owned(),
                    token_hash: unusable,
                    runner: RunnerIdentity::default(),
                },
                clock.now(),
            )
            .await?;
        Ok(Self {
            waiting: ClaimRoom::new(store.clone()),
            store,
            clock,
            retry_policy: RetryPolicy::default(),
            session: Mutex::new(session),
        })
    }

    /// Applies `policy` to failed verifications (the default table otherwise).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// The runner session this client works as.
    pub fn session(&self) -> RunnerSession {
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn protocol(&self) -> RunnerProtocol<'_> {
        RunnerProtocol::new(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.retry_policy,
            &self.waiting,
        )
    }

    /// The session, after it called in (as every call of a runner over HTTP does).
    async fn checked_in(&self) -> Result<RunnerSession, ClientError> {
        let session = self
            .protocol()
            .check_in(self.session())
            .await
            .map_err(refused)?;
        *self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = session.clone();
        Ok(session)
    }
}

/// The core's refusals in the protocol's terms, so the runner treats them as it treats a
/// remote orchestrator's.
fn refused(err: Error) -> ClientError {
    let (refusal, code) = match &err {
        Error::NotFound { .. } => (Refusal::NotFound, "NOT_FOUND"),
        Error::Conflict(_) | Error::InvalidTransition(_) => (Refusal::Conflict, "CONFLICT"),
        Error::InvalidInput { .. } => (Refusal::Invalid, "VALIDATION_ERROR"),
        Error::Forbidden(_) => (Refusal::Unauthorized, "FORBIDDEN"),
        Error::Unavailable(_) | Error::Backend(_) => {
            return ClientError::Unreachable {
                url: "the in-process store".into(),
                detail: err.to_string(),
            };
        }
    };
    ClientError::Refused {
        refusal,
        code: code.into(),
        message: err.to_string(),
        retry_after: None,
    }
}

#[async_trait]
impl OrchestratorClient for LocalClient {
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
        runner: &RunnerIdentity,
    ) -> Result<Vec<ClaimedTask>, ClientError> {
        let session = self.checked_in().await?;
        let request = ClaimWork::new(max, wait, lease_ttl, runner.clone());
        let claimed = self
            .protocol()
            .claim(&session, request)
            .await
            .map_err(refused)?;
        Ok(claimed.claims)
    }

    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError> {
        let report = HeartbeatReport::keeping(attempt, lease_ttl, status);
        let answer = self
            .protocol()
            .heartbeat(&self.session(), report)
            .await
            .map_err(refused)?;
        Ok(answer.signal)
    }

    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogEntry]) -> Result<(), ClientError> {
        let batch = LogBatch::new(attempt, logs.to_vec());
        self.protocol()
            .append_logs(&self.session(), batch)
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError> {
        let request = ChangedPaths::new(attempt, paths.to_vec());
        self.protocol()
            .lock_paths(&self.session(), request)
            .await
            .map_err(refused)
    }

    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError> {
        let report = CompletionReport::from_completion(attempt, completion.clone());
        self.protocol()
            .complete(&self.session(), report)
            .await
            .map_err(refused)?;
        Ok(())
    }
}
