//! [`OrchestratorClient`] over a [`Store`] in the same process: a runner inside the
//! server (`orchestrator-server --local-runner DIR`) or inside any program that embeds
//! the core. It goes through the same operations as the HTTP runner protocol.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::{self, AttemptCompletion, LockAnswer};
use orchestrator_core::coordination::{self, ClaimRequest, ControlSignal};
use orchestrator_core::model::{NewAgentLog, NewRunnerSession, RunnerSession, TaskStatus};
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::{Clock, Store};

use crate::client::{
    AssignedAgent, Assignment, AttemptRef, ClientError, LogLine, OrchestratorClient,
};

/// A runner session of this process, working through the store directly.
#[derive(Debug, Clone)]
pub struct LocalClient {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retry_policy: RetryPolicy,
    session: RunnerSession,
}

impl LocalClient {
    /// Registers a runner session called `name` for the repository at `working_dir`.
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
                },
                clock.now(),
            )
            .await?;
        Ok(Self {
            store,
            clock,
            retry_policy: RetryPolicy::default(),
            session,
        })
    }

    /// Applies `policy` to failed verifications (the original's table by default).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// The runner session this client works as.
    pub fn session(&self) -> &RunnerSession {
        &self.session
    }
}

/// The store's refusals in the protocol's terms, so the runner treats them alike.
fn refused(err: orchestrator_core::Error) -> ClientError {
    use orchestrator_core::Error;
    let (status, code) = match &err {
        Error::NotFound { .. } => (404, "NOT_FOUND"),
        Error::Conflict(_) | Error::InvalidTransition(_) => (409, "CONFLICT"),
        Error::InvalidInput { .. } => (400, "VALIDATION_ERROR"),
        Error::Unavailable(_) | Error::Backend(_) => {
            return ClientError::Unreachable {
                url: "the in-process store".into(),
                detail: err.to_string(),
            };
        }
    };
    ClientError::Refused {
        status,
        code: code.into(),
        message: err.to_string(),
    }
}

#[async_trait]
impl OrchestratorClient for LocalClient {
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
    ) -> Result<Vec<Assignment>, ClientError> {
        let store = self.store.as_ref();
        let agents = coordination::idle_slots(store, &self.session, max, self.clock.now())
            .await
            .map_err(refused)?;
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let request = ClaimRequest {
            agents,
            runner_session_id: Some(self.session.id),
            task_id: None,
            lease_ttl,
        };
        let claims = coordination::claim_waiting(store, self.clock.as_ref(), request, wait)
            .await
            .map_err(refused)?;
        Ok(claims
            .into_iter()
            .map(|claim| Assignment {
                agent: AssignedAgent { id: claim.agent_id },
                lease: claim.lease,
                locks: claim.locks,
                task: claim.task,
            })
            .collect())
    }

    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError> {
        let now = self.clock.now();
        if let Some(status) = status {
            attempts::report_progress(self.store.as_ref(), attempt.lease, status, now)
                .await
                .map_err(refused)?;
        }
        let ack = self
            .store
            .heartbeat(attempt.lease, lease_ttl, now)
            .await
            .map_err(refused)?;
        Ok(ack.signal)
    }

    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogLine]) -> Result<(), ClientError> {
        let entries = logs
            .iter()
            .map(|line| NewAgentLog {
                agent_id: attempt.agent_id,
                task_id: Some(attempt.task_id()),
                log_type: line.log_type,
                content: line.content.clone(),
                metadata: line.metadata.clone(),
            })
            .collect();
        self.store
            .append_attempt_logs(attempt.lease, entries, self.clock.now())
            .await
            .map_err(refused)?;
        Ok(())
    }

    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError> {
        attempts::lock_changed_paths(
            self.store.as_ref(),
            attempt.agent_id,
            attempt.lease,
            paths.to_vec(),
            self.clock.now(),
        )
        .await
        .map_err(refused)
    }

    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError> {
        attempts::complete_attempt(
            self.store.as_ref(),
            &self.retry_policy,
            attempt.agent_id,
            attempt.lease,
            completion.clone(),
            self.clock.now(),
        )
        .await
        .map_err(refused)?;
        Ok(())
    }
}
