//! The runner: claims tasks into its agent slots by long poll, runs each attempt in the
//! task's worktree with heartbeats and streamed logs, verifies the change, commits it on
//! the task's branch and reports the completion with its evidence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrator_core::attempts::{AttemptCompletion, DiffStats};
use orchestrator_core::backend::{AgentBackend, AgentOutcome, AgentRequest, PauseSignal};
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::error::Error;
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::{
    LockPath, MAX_LOCK_PATHS, MAX_PATH_KEY_BYTES, covering_at_most, key_bytes,
};
use orchestrator_core::model::{
    ChangeReport, LogType, MAX_MODEL_CHARS, MAX_PATCH_BYTES, NewVerificationResult, RunnerIdentity,
    TaskStatus, Usage,
};
use orchestrator_core::protocol::{AttemptRef, ClaimedTask};
use orchestrator_core::verify::Verifier;
use orchestrator_verify::{ReviewModel, SemanticVerifier, Verification, paths_outside_locks};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{ClientError, OrchestratorClient};
use crate::identity::{acceptable, runner_identity};
use crate::lease::LeaseKeeper;
use crate::logs::{self, LogSink};
use crate::prompt;
use crate::spool::Spool;
use crate::worktree::{InUse, Workspace, WorktreeError, Worktrees};

/// Failures listed in the error a failed verification reports (and the next prompt shows).
const FAILURES_REPORTED: usize = 10;
/// The largest patch a completion carries unless configured otherwise (256 KiB).
pub const DEFAULT_MAX_PATCH_BYTES: u32 = 256 * 1024;

/// How the runner works.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// Agent slots: attempts run at once.
    pub parallel: usize,
    /// Lease length asked for at claim and at every heartbeat.
    pub lease_ttl: Duration,
    /// Time between heartbeats.
    pub heartbeat_every: Duration,
    /// How long one claim waits for work.
    pub claim_wait: Duration,
    /// Longest time a log entry waits before it is sent.
    pub log_flush: Duration,
    /// Verify each change before reporting it (on by default).
    pub verify: bool,
    /// Claim once, run what came, and stop.
    pub once: bool,
    /// The largest patch a completion carries, in bytes (1 to [`MAX_PATCH_BYTES`], what
    /// servers accept); a longer one ends after the last whole line that fits.
    pub max_patch_bytes: u32,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            parallel: 1,
            lease_ttl: Duration::from_secs(300),
            heartbeat_every: Duration::from_secs(5),
            // Short enough that a drain is not held up long by a claim in flight;
            // new work still arrives at once, as the server answers when it commits.
            claim_wait: Duration::from_secs(5),
            log_flush: Duration::from_millis(500),
            verify: true,
            once: false,
            max_patch_bytes: DEFAULT_MAX_PATCH_BYTES,
        }
    }
}

/// What the runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Running,
    /// Claim nothing more; finish the attempts under way.
    Draining,
    /// Stop the agents, report the attempts as failed (releasing their leases), exit.
    Stopping,
}

/// Tells a running [`Runner`] to drain or stop.
#[derive(Debug, Clone)]
pub struct RunnerControl {
    mode: watch::Sender<RunMode>,
}

impl RunnerControl {
    pub fn drain(&self) {
        self.mode.send_if_modified(|mode| {
            let changed = *mode == RunMode::Running;
            if changed {
                *mode = RunMode::Draining;
            }
            changed
        });
    }

    pub fn stop(&self) {
        self.mode.send_replace(RunMode::Stopping);
    }

    pub fn mode(&self) -> RunMode {
        *self.mode.borrow()
    }
}

/// What happened, for a user interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerEvent {
    Claimed {
        task: TaskId,
        title: String,
        attempt: u32,
    },
    Verifying {
        task: TaskId,
    },
    Finished {
        task: TaskId,
        success: bool,
        commit: Option<String>,
        detail: String,
    },
    /// The runner stopped before the attempt finished, and the orchestrator took the task
    /// back into its queue without counting the attempt.
    GivenBack {
        task: TaskId,
    },
    /// The orchestrator could not be reached; the runner tries again.
    Disconnected {
        detail: String,
    },
    /// The attempt ended without the orchestrator accepting its completion: why, and
    /// what became of its work.
    NotAccepted {
        task: TaskId,
        commit: Option<String>,
        detail: String,
    },
    /// A completion kept from an earlier run is sent again.
    Resending {
        task: TaskId,
        attempt: u32,
    },
    /// Something the user should know; the runner goes on.
    Warning {
        detail: String,
    },
}

/// The event in one line, for a person (task ids shortened to their first 8 characters,
/// as `git` shortens commits).
impl std::fmt::Display for RunnerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |task: &TaskId| -> String { task.to_string().chars().take(8).collect() };
        match self {
            Self::Claimed {
                task,
                title,
                attempt,
            } => write!(f, "claimed  {} {title} (attempt {attempt})", short(task)),
            Self::Verifying { task } => write!(f, "verify   {}", short(task)),
            Self::Finished {
                task,
                success: true,
                commit,
                ..
            } => write!(
                f,
                "done     {}{}",
                short(task),
                commit
                    .as_deref()
                    .map(|c| format!(" commit {}", &c[..c.len().min(12)]))
                    .unwrap_or_default()
            ),
            Self::Finished {
                task,
                success: false,
                detail,
                ..
            } => write!(
                f,
                "failed   {} {}",
                short(task),
                detail.lines().next().unwrap_or_default()
            ),
            Self::GivenBack { task } => {
                write!(
                    f,
                    "returned {} to the queue (the runner stopped)",
                    short(task)
                )
            }
            Self::NotAccepted { task, detail, .. } => {
                write!(f, "not done {} {detail}", short(task))
            }
            Self::Resending { task, attempt } => write!(
                f,
                "resend   {} the completion of attempt {attempt}, kept from an earlier run",
                short(task)
            ),
            Self::Disconnected { detail } => write!(f, "warning: {detail}; retrying"),
            Self::Warning { detail } => write!(f, "warning: {detail}"),
        }
    }
}

/// Why the runner stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("the runner token was refused ({0}); connect again with a new connection token")]
    Unauthorized(ClientError),
}

/// Builds a [`Runner`].
#[derive(Debug)]
pub struct RunnerBuilder {
    client: Arc<dyn OrchestratorClient>,
    backend: Arc<dyn AgentBackend>,
    worktrees: Worktrees,
    config: RunnerConfig,
    events: Option<mpsc::UnboundedSender<RunnerEvent>>,
    verification: Verification,
    spool: Option<Spool>,
}

impl RunnerBuilder {
    /// Keeps each completion in `spool` until the orchestrator has answered it, and sends
    /// the completions found there when the runner starts.
    pub fn spool(mut self, spool: Spool) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Adds the semantic review by `model` to every verification (advisory).
    pub fn semantic_review(self, model: Arc<dyn ReviewModel>) -> Self {
        self.verifier(SemanticVerifier::new(model))
    }

    /// Adds `verifier` to every verification, after the checks already there.
    pub fn verifier(mut self, verifier: impl Verifier) -> Self {
        self.verification = self.verification.with(verifier);
        self
    }

    /// Verifies every attempt's change as `verification` says (by default the project's
    /// checks, from its tree and its `orchestrator.toml`).
    pub fn verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }

    pub fn config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sends what happens to `events`.
    pub fn events(mut self, events: mpsc::UnboundedSender<RunnerEvent>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn build(self) -> Runner {
        let (mode, _) = watch::channel(RunMode::Running);
        Runner {
            shared: Arc::new(Shared {
                client: self.client,
                identity: runner_identity([self.backend.name().to_owned()]),
                backend: self.backend,
                worktrees: self.worktrees,
                config: RunnerConfig {
                    parallel: self.config.parallel.max(1),
                    max_patch_bytes: self.config.max_patch_bytes.clamp(1, MAX_PATCH_BYTES),
                    ..self.config
                },
                events: self.events,
                verification: self.verification,
                control: RunnerControl { mode },
                spool: self.spool,
                revoked: Mutex::new(None),
            }),
        }
    }
}

/// Runs agents on claimed tasks until drained or stopped.
#[derive(Debug, Clone)]
pub struct Runner {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Arc<dyn OrchestratorClient>,
    /// What the runner states about itself with its claims.
    identity: RunnerIdentity,
    backend: Arc<dyn AgentBackend>,
    worktrees: Worktrees,
    config: RunnerConfig,
    events: Option<mpsc::UnboundedSender<RunnerEvent>>,
    verification: Verification,
    control: RunnerControl,
    spool: Option<Spool>,
    /// Why the session was revoked, once it was: the runner stops with this error.
    revoked: Mutex<Option<ClientError>>,
}

impl Runner {
    /// A runner over `client` running `backend` in worktrees of `worktrees`.
    pub fn builder(
        client: Arc<dyn OrchestratorClient>,
        backend: Arc<dyn AgentBackend>,
        worktrees: Worktrees,
    ) -> RunnerBuilder {
        RunnerBuilder {
            client,
            backend,
            worktrees,
            config: RunnerConfig::default(),
            events: None,
            verification: Verification::new(),
            spool: None,
        }
    }

    /// Drains or stops this runner from elsewhere.
    pub fn control(&self) -> RunnerControl {
        self.shared.control.clone()
    }

    /// Claims and runs tasks until drained (or, with `once`, after one claim).
    pub async fn run(&self) -> Result<(), RunnerError> {
        let shared = &self.shared;
        let slots = Arc::new(Semaphore::new(shared.config.parallel));
        let mut attempts = JoinSet::new();
        let mut mode = shared.control.mode.subscribe();
        let mut failures = 0u32;
        self.resend_spooled(&mut attempts);
        while *mode.borrow() == RunMode::Running {
            // Wait for a free slot (or a change of mode), then take every free one.
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                _ = mode.changed() => continue,
                Some(_) = attempts.join_next(), if !attempts.is_empty() => continue,
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            // A claim in flight is never abandoned on a drain: the server may have
            // handed over tasks. A stop abandons it; their leases then run out.
            let claim = shared.client.claim(
                permits.len(),
                shared.config.claim_wait,
                shared.config.lease_ttl,
                &shared.identity,
            );
            let claimed = tokio::select! {
                claimed = claim => claimed,
                _ = wait_for(&mut mode, RunMode::Stopping) => break,
            };
            match claimed {
                Ok(assignments) => {
                    failures = 0;
                    let claimed_any = !assignments.is_empty();
                    let free = permits.len();
                    for assignment in assignments {
                        let Some(permit) = permits.pop() else {
                            shared.emit(RunnerEvent::Warning {
                                detail: format!(
                                    "the orchestrator handed out task {} beyond the {free} free \
                                     slot(s) asked for; it goes back to the queue when its \
                                     lease runs out",
                                    assignment.task.id
                                ),
                            });
                            continue;
                        };
                        let shared = shared.clone();
                        attempts.spawn(async move {
                            run_attempt(&shared, assignment).await;
                            drop(permit);
                        });
                    }
                    if shared.config.once && (claimed_any || attempts.is_empty()) {
                        break;
                    }
                }
                Err(err) if err.is_unauthorized() => {
                    shared.revoked(err);
                    break;
                }
                Err(err) => {
                    failures += 1;
                    shared.emit(RunnerEvent::Disconnected {
                        detail: err.to_string(),
                    });
                    let backoff = Duration::from_secs(u64::from(failures.min(5)) * 2);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = mode.changed() => {}
                    }
                }
            }
        }
        while attempts.join_next().await.is_some() {}
        let revoked = shared
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match revoked {
            Some(err) => Err(RunnerError::Unauthorized(err)),
            None => Ok(()),
        }
    }

    /// Sends again the completions an earlier run kept in the spool, beside the new work.
    fn resend_spooled(&self, attempts: &mut JoinSet<()>) {
        let Some(spool) = &self.shared.spool else {
            return;
        };
        let (pending, unreadable) = spool.pending();
        for detail in unreadable {
            self.shared.emit(RunnerEvent::Warning { detail });
        }
        for spooled in pending {
            let shared = self.shared.clone();
            attempts.spawn(async move {
                shared.emit(RunnerEvent::Resending {
                    task: spooled.attempt.task_id(),
                    attempt: spooled.attempt.lease.attempt,
                });
                let mut lease = LeaseKeeper::new(
                    shared.config.heartbeat_every,
                    shared.config.lease_ttl,
                    tokio::time::Instant::now(),
                );
                deliver_and_say(&shared, spooled.attempt, &mut lease, &spooled.completion).await;
            });
        }
    }
}

/// Resolves once the mode is `wanted`.
async fn wait_for(mode: &mut watch::Receiver<RunMode>, wanted: RunMode) {
    // The sender lives in the runner; an error means it is gone, and so is the wait.
    let _ = mode.wait_for(|current| *current == wanted).await;
}

/// How a supervised piece of work ended.
enum Supervised<T> {
    Done(T),
    /// The heartbeat said stop: the task was cancelled.
    Cancelled,
    /// The runner is stopping.
    Stopped,
    /// The lease is gone (taken back, or run out with no heartbeat getting through);
    /// nothing more may be reported.
    LeaseLost(String),
    /// The runner's session was revoked: every agent stops.
    Revoked(ClientError),
}

/// Why a heartbeat ends an attempt.
enum Interrupted {
    Cancelled,
    LeaseLost(String),
    Revoked(ClientError),
}

impl<T> From<Interrupted> for Supervised<T> {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::Cancelled => Self::Cancelled,
            Interrupted::LeaseLost(detail) => Self::LeaseLost(detail),
            Interrupted::Revoked(err) => Self::Revoked(err),
        }
    }
}

/// What became of a completion.
enum Delivery {
    /// The orchestrator accepted it.
    Accepted,
    /// The attempt's lease was gone when it arrived: the task is not changed (the
    /// orchestrator keeps the commit and evidence on the attempt).
    LeaseLost(ClientError),
    /// The runner's session was revoked.
    Revoked(ClientError),
    /// The orchestrator refused the report itself; sending it again cannot help.
    Refused(ClientError),
    /// Not delivered before the runner stopped or the lease ran out: it waits in the
    /// spool (if there is one) for the next start.
    Kept(String),
}

/// Flush intervals an attempt's log may take to be sent after its work ends.
const LOG_DRAIN_FLUSHES: u32 = 20;

/// The longest wait between two tries to deliver a completion.
const MOST_BETWEEN_TRIES: Duration = Duration::from_secs(15);

impl Shared {
    fn emit(&self, event: RunnerEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Stops every agent: the runner's session was revoked.
    fn revoked(&self, err: ClientError) {
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if revoked.is_none() {
            *revoked = Some(err);
        }
        self.control.stop();
    }

    /// Runs `work` while heartbeating the attempt. The first beat reports `status` before
    /// the work starts, so the orchestrator knows where the attempt is even when the work
    /// ends at once (a beat that fails is tried again, with the status, while the work
    /// goes on). Pause and resume go to `agent_pause` when the work is the agent's.
    async fn supervise<T>(
        &self,
        attempt: AttemptRef,
        lease: &mut LeaseKeeper,
        status: TaskStatus,
        sink: &LogSink,
        agent_pause: Option<&watch::Sender<bool>>,
        work: impl Future<Output = T>,
    ) -> Supervised<T> {
        let mut mode = self.control.mode.subscribe();
        let mut pause = PauseRelay {
            agent: agent_pause,
            paused: false,
        };
        let mut report = Some(status);
        if let Some(ended) = self
            .beat(attempt, lease, &mut report, sink, &mut pause)
            .await
        {
            return ended.into();
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Supervised::Done(done),
                () = tokio::time::sleep_until(lease.next_beat()) => {
                    if let Some(ended) = self.beat(attempt, lease, &mut report, sink, &mut pause).await {
                        return ended.into();
                    }
                }
                _ = wait_for(&mut mode, RunMode::Stopping) => return Supervised::Stopped,
            }
        }
    }

    /// One heartbeat, carrying `report` until one gets through; `Some` when the attempt
    /// must end. A failure that may pass is tried again sooner, and said once per run
    /// of failures; the lease is lost once it runs out with none getting through.
    async fn beat(
        &self,
        attempt: AttemptRef,
        lease: &mut LeaseKeeper,
        report: &mut Option<TaskStatus>,
        sink: &LogSink,
        pause: &mut PauseRelay<'_>,
    ) -> Option<Interrupted> {
        let sent = tokio::time::Instant::now();
        let answer = self
            .client
            .heartbeat(attempt, self.config.lease_ttl, *report)
            .await;
        let err = match answer {
            Ok(signal) => {
                if lease.failures() > 0 {
                    self.emit(RunnerEvent::Warning {
                        detail: format!(
                            "heartbeats of task {} reach the orchestrator again",
                            attempt.task_id()
                        ),
                    });
                }
                lease.renewed(sent);
                *report = None;
                return match signal {
                    ControlSignal::Continue => {
                        pause.set(false, sink);
                        None
                    }
                    ControlSignal::Stop => Some(Interrupted::Cancelled),
                    ControlSignal::Pause => {
                        pause.set(true, sink);
                        None
                    }
                };
            }
            Err(err) => err,
        };
        self.heartbeat_failed(attempt, lease, err)
    }

    /// Handles a heartbeat that failed: `Some` when the attempt must end.
    fn heartbeat_failed(
        &self,
        attempt: AttemptRef,
        lease: &mut LeaseKeeper,
        err: ClientError,
    ) -> Option<Interrupted> {
        if err.is_stale_lease() {
            return Some(Interrupted::LeaseLost(err.to_string()));
        }
        if err.is_unauthorized() {
            return Some(Interrupted::Revoked(err));
        }
        let now = tokio::time::Instant::now();
        let holds = lease.failed(now, err.retry_after());
        if !holds {
            return Some(Interrupted::LeaseLost(format!(
                "no heartbeat reached the orchestrator before the lease ran out (last error: {err})"
            )));
        }
        if lease.failures() == 1 {
            let left = lease.expires().saturating_duration_since(now).as_secs();
            self.emit(RunnerEvent::Warning {
                detail: format!(
                    "a heartbeat of task {} failed: {err}; trying again while the lease \
                     holds ({left} s left)",
                    attempt.task_id()
                ),
            });
        }
        None
    }

    /// Delivers the attempt's completion: kept in the spool first, then sent until the
    /// orchestrator answers for good, tried again after failures that may pass (as long
    /// as the orchestrator asks, or with a backoff) while heartbeats keep the lease.
    async fn deliver(
        &self,
        attempt: AttemptRef,
        lease: &mut LeaseKeeper,
        completion: &AttemptCompletion,
    ) -> Delivery {
        if let Some(spool) = &self.spool
            && let Err(err) = spool.keep(attempt, completion)
        {
            self.emit(RunnerEvent::Warning {
                detail: format!(
                    "the completion of task {} cannot be kept in {} ({err}); it is sent, but \
                     not kept for a restart",
                    attempt.task_id(),
                    spool.dir().display()
                ),
            });
        }
        let delivery = self.send_completion(attempt, lease, completion).await;
        if let (Some(spool), Delivery::Refused(_)) = (&self.spool, &delivery) {
            match spool.set_aside(&attempt) {
                Ok(kept) => self.emit(RunnerEvent::Warning {
                    detail: format!(
                        "the refused completion of task {} is kept in {} (it is not sent again)",
                        attempt.task_id(),
                        kept.display()
                    ),
                }),
                Err(err) => self.emit(RunnerEvent::Warning {
                    detail: format!(
                        "the refused completion of task {} could not be set aside in {} ({err}); \
                         the next start sends it again",
                        attempt.task_id(),
                        spool.dir().display()
                    ),
                }),
            }
        }
        if let Some(spool) = &self.spool
            && matches!(delivery, Delivery::Accepted | Delivery::LeaseLost(_))
            && let Err(err) = spool.remove(&attempt)
        {
            self.emit(RunnerEvent::Warning {
                detail: format!(
                    "the delivered completion of task {} stays in {} ({err}); the next start \
                     sends it again, which changes nothing",
                    attempt.task_id(),
                    spool.dir().display()
                ),
            });
        }
        delivery
    }

    async fn send_completion(
        &self,
        attempt: AttemptRef,
        lease: &mut LeaseKeeper,
        completion: &AttemptCompletion,
    ) -> Delivery {
        let mut mode = self.control.mode.subscribe();
        let mut tries = 0u32;
        loop {
            let err = match self.client.complete(attempt, completion).await {
                Ok(()) => return Delivery::Accepted,
                Err(err) if err.is_stale_lease() => return Delivery::LeaseLost(err),
                Err(err) if err.is_unauthorized() => return Delivery::Revoked(err),
                Err(err) if !err.is_transient() => return Delivery::Refused(err),
                Err(err) => err,
            };
            tries += 1;
            let now = tokio::time::Instant::now();
            if *mode.borrow() == RunMode::Stopping {
                return Delivery::Kept(format!("the runner stopped first (last error: {err})"));
            }
            if lease.lost_by(now) {
                return Delivery::Kept(format!(
                    "the lease ran out before the orchestrator could be reached (last error: {err})"
                ));
            }
            if tries == 1 {
                let left = lease.expires().saturating_duration_since(now).as_secs();
                self.emit(RunnerEvent::Warning {
                    detail: format!(
                        "the completion of task {} did not get through: {err}; trying again \
                         while the lease holds ({left} s left)",
                        attempt.task_id()
                    ),
                });
            }
            let backoff = Duration::from_secs(1 << tries.min(4)).min(MOST_BETWEEN_TRIES);
            let retry_at = now + err.retry_after().unwrap_or(backoff);
            // Heartbeats go on while the completion waits, so the lease holds.
            while tokio::time::Instant::now() < retry_at {
                let wake = retry_at.min(lease.next_beat()).min(lease.expires());
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    _ = wait_for(&mut mode, RunMode::Stopping) => {
                        return Delivery::Kept(format!("the runner stopped first (last error: {err})"));
                    }
                }
                if tokio::time::Instant::now() < lease.next_beat() {
                    continue;
                }
                let sent = tokio::time::Instant::now();
                match self
                    .client
                    .heartbeat(attempt, self.config.lease_ttl, None)
                    .await
                {
                    Ok(_) => lease.renewed(sent),
                    // Sent now, the completion is kept on its attempt.
                    Err(lost) if lost.is_stale_lease() => break,
                    Err(revoked) if revoked.is_unauthorized() => return Delivery::Revoked(revoked),
                    Err(other) => {
                        if !lease.failed(tokio::time::Instant::now(), other.retry_after()) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Carries a human's pause and resume from the heartbeats to the agent, noting each change
/// in the attempt's log.
struct PauseRelay<'a> {
    /// The agent's pause signal; `None` while the attempt verifies, which is not paused.
    agent: Option<&'a watch::Sender<bool>>,
    paused: bool,
}

impl PauseRelay<'_> {
    fn set(&mut self, paused: bool, sink: &LogSink) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        match (self.agent, paused) {
            (Some(agent), _) => {
                agent.send_replace(paused);
                sink.note(
                    LogType::StatusChange,
                    if paused {
                        "paused: the agent holds still until it is resumed"
                    } else {
                        "resumed: the agent goes on"
                    },
                );
            }
            (None, true) => sink.note(
                LogType::Info,
                "pause requested while verifying: verification is not paused and finishes",
            ),
            (None, false) => {}
        }
    }
}

fn failed_completion(error: String, usage: Usage) -> AttemptCompletion {
    AttemptCompletion {
        success: false,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: None,
        error: Some(error),
        commit_sha: None,
        usage,
        backend: None,
        model: None,
        diff_stats: None,
        changes: None,
        verification: None,
    }
}

/// How an attempt's work ended.
enum AttemptEnding {
    /// It ends with this completion, to deliver.
    Report(Box<AttemptCompletion>),
    /// Its lease was lost while it worked: nothing may be reported.
    LeaseLost(String),
    /// The runner's session was revoked while it worked.
    Revoked(ClientError),
}

impl AttemptEnding {
    /// A failure with `error`, having used `usage`.
    fn failed(error: String, usage: Usage) -> Self {
        Self::Report(Box::new(failed_completion(error, usage)))
    }

    /// This ending, its report naming `model` as the one the agent ran on (left out when
    /// the orchestrator would refuse it).
    fn ran_on(self, model: Option<String>) -> Self {
        match self {
            Self::Report(mut completion) => {
                completion.model = model.filter(|model| acceptable(model, MAX_MODEL_CHARS));
                Self::Report(completion)
            }
            other => other,
        }
    }
}

impl<T> Supervised<T> {
    /// What the work returned, or how the attempt ends when it was interrupted `stage`
    /// ("while running", "during verification") having used `usage`.
    fn finished(self, usage: Usage, stage: &str) -> Result<T, AttemptEnding> {
        match self {
            Self::Done(value) => Ok(value),
            Self::Cancelled => Err(AttemptEnding::Report(Box::new(AttemptCompletion {
                cancelled: true,
                ..failed_completion(format!("cancelled {stage}"), usage)
            }))),
            Self::Stopped => Err(AttemptEnding::Report(Box::new(AttemptCompletion {
                returned: true,
                ..failed_completion(format!("the runner was stopped {stage}"), usage)
            }))),
            Self::LeaseLost(detail) => Err(AttemptEnding::LeaseLost(detail)),
            Self::Revoked(err) => Err(AttemptEnding::Revoked(err)),
        }
    }
}

/// One attempt, start to completion.
async fn run_attempt(shared: &Arc<Shared>, assignment: ClaimedTask) {
    let attempt = AttemptRef::from(&assignment);
    let task = &assignment.task;
    let mut lease = LeaseKeeper::new(
        shared.config.heartbeat_every,
        shared.config.lease_ttl,
        tokio::time::Instant::now(),
    );
    shared.emit(RunnerEvent::Claimed {
        task: task.id,
        title: task.title.clone(),
        attempt: assignment.lease.attempt,
    });
    let (sink, sender) = logs::stream(shared.client.clone(), attempt, shared.config.log_flush);
    let ending = attempt_work(shared, &assignment, &mut lease, &sink).await;
    drop(sink);
    finish_logs(shared, attempt, &lease, sender).await;
    match ending {
        AttemptEnding::Report(mut completion) => {
            completion.backend = shared.identity.backends.first().cloned();
            deliver_and_say(shared, attempt, &mut lease, &completion).await;
        }
        AttemptEnding::LeaseLost(detail) => shared.emit(RunnerEvent::NotAccepted {
            task: task.id,
            commit: None,
            detail: format!(
                "the lease was lost ({detail}); the agent was stopped and the orchestrator \
                 gives the task to another runner"
            ),
        }),
        AttemptEnding::Revoked(err) => {
            shared.emit(RunnerEvent::NotAccepted {
                task: task.id,
                commit: None,
                detail: format!("the runner's session was revoked ({err}); the agent was stopped"),
            });
            shared.revoked(err);
        }
    }
}

/// Waits for the attempt's log to be sent, but never so long that the completion would
/// miss its lease: what is still unsent after [`LOG_DRAIN_FLUSHES`] flush intervals (or
/// by half the time left on the lease) is given up, and said.
async fn finish_logs(
    shared: &Shared,
    attempt: AttemptRef,
    lease: &LeaseKeeper,
    mut sender: tokio::task::JoinHandle<()>,
) {
    let now = tokio::time::Instant::now();
    let limit = (shared.config.log_flush * LOG_DRAIN_FLUSHES)
        .min(lease.expires().saturating_duration_since(now) / 2);
    if tokio::time::timeout(limit, &mut sender).await.is_err() {
        sender.abort();
        shared.emit(RunnerEvent::Warning {
            detail: format!(
                "the log of task {} was not all sent within {} ms; the completion goes first \
                 and the rest of the log is left out",
                attempt.task_id(),
                limit.as_millis()
            ),
        });
    }
}

/// Delivers `completion` and says what became of it.
async fn deliver_and_say(
    shared: &Arc<Shared>,
    attempt: AttemptRef,
    lease: &mut LeaseKeeper,
    completion: &AttemptCompletion,
) {
    let task = attempt.task_id();
    let commit = completion.commit_sha.clone();
    let kept_on = |commit: &Option<String>| {
        commit
            .as_deref()
            .map(|sha| format!("; its commit {sha} stays in the repository"))
            .unwrap_or_default()
    };
    let not_accepted = |detail: String| RunnerEvent::NotAccepted {
        task,
        commit: commit.clone(),
        detail,
    };
    match shared.deliver(attempt, lease, completion).await {
        Delivery::Accepted if completion.returned => shared.emit(RunnerEvent::GivenBack { task }),
        Delivery::Accepted => shared.emit(RunnerEvent::Finished {
            task,
            success: completion.success,
            commit: completion.commit_sha.clone(),
            detail: completion
                .summary
                .clone()
                .or(completion.error.clone())
                .unwrap_or_default(),
        }),
        Delivery::LeaseLost(err) => shared.emit(not_accepted(format!(
            "the completion came after the attempt's lease was lost ({err}); the task is not \
             changed by it{}",
            kept_on(&commit)
        ))),
        Delivery::Refused(err) => shared.emit(not_accepted(format!(
            "the orchestrator refused the completion ({err}){}",
            kept_on(&commit)
        ))),
        Delivery::Revoked(err) => {
            shared.emit(not_accepted(format!(
                "the runner's session was revoked before the completion was accepted ({err}){}",
                kept_on(&commit)
            )));
            shared.revoked(err);
        }
        Delivery::Kept(why) => shared.emit(not_accepted(match &shared.spool {
            Some(spool) => format!(
                "the completion is not delivered yet: {why}; it is kept in {} and the next \
                 start sends it{}",
                spool.dir().display(),
                kept_on(&commit)
            ),
            None => format!(
                "the completion was not delivered: {why}{}",
                kept_on(&commit)
            ),
        })),
    }
}

/// How long an attempt waits for its task's worktree while another attempt still holds
/// it (one of this runner that is stopping, or a runner process that is exiting).
const WORKTREE_WAIT: Duration = Duration::from_secs(30);

/// The task's worktree, prepared and held (against prunes and other attempts) until the
/// guard is dropped; waits up to [`WORKTREE_WAIT`] while another attempt holds it.
async fn hold_worktree(
    shared: &Shared,
    task: TaskId,
    sink: &LogSink,
) -> Result<(Workspace, InUse), String> {
    let deadline = tokio::time::Instant::now() + WORKTREE_WAIT;
    let mut said = false;
    loop {
        let worktrees = shared.worktrees.clone();
        let held = tokio::task::spawn_blocking(move || {
            let workspace = worktrees.prepare(task)?;
            let in_use = worktrees.hold(&workspace)?;
            Ok::<_, WorktreeError>((workspace, in_use))
        })
        .await
        .map_err(|err| err.to_string())?;
        match held {
            Err(busy @ WorktreeError::Busy { .. }) if tokio::time::Instant::now() < deadline => {
                if !said {
                    sink.note(
                        LogType::Info,
                        format!("{busy}; waiting for it to be let go"),
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            held => return held.map_err(|err| err.to_string()),
        }
    }
}

/// The attempt's work, and how it ended.
async fn attempt_work(
    shared: &Arc<Shared>,
    assignment: &ClaimedTask,
    lease: &mut LeaseKeeper,
    sink: &LogSink,
) -> AttemptEnding {
    let attempt = AttemptRef::from(assignment);
    let task = &assignment.task;
    let prepared = hold_worktree(shared, task.id, sink).await;
    let (workspace, _in_use) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            return AttemptEnding::failed(
                format!("the worktree could not be prepared: {err}"),
                Usage::default(),
            );
        }
    };
    sink.note(
        LogType::StatusChange,
        format!(
            "attempt {} started in {} on {}",
            assignment.lease.attempt,
            workspace.path.display(),
            workspace.branch
        ),
    );
    let locked_paths: Vec<String> = assignment
        .locks
        .iter()
        .map(|l| l.file_path.clone())
        .collect();
    let (pause, pause_signal) = PauseSignal::channel();
    let request = AgentRequest {
        prompt: prompt::build(task, &locked_paths),
        work_dir: workspace.path.clone(),
        locked_paths: locked_paths.clone(),
        pause: pause_signal,
    };
    let ran = shared
        .supervise(
            attempt,
            lease,
            TaskStatus::InProgress,
            sink,
            Some(&pause),
            shared.backend.run(request, sink),
        )
        .await;
    match &ran {
        Supervised::Cancelled => {
            sink.note(LogType::StatusChange, "cancelled: the agent was stopped")
        }
        Supervised::Stopped => sink.note(
            LogType::StatusChange,
            "the runner stopped: the agent was stopped",
        ),
        _ => {}
    }
    let outcome = match ran.finished(Usage::default(), "while running") {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(err)) => {
            sink.note(LogType::Error, err.to_string());
            return AttemptEnding::failed(
                format!("the agent could not run: {err}"),
                Usage::default(),
            );
        }
        Err(ending) => return ending,
    };
    shared
        .supervise(
            attempt,
            lease,
            TaskStatus::Verifying,
            sink,
            None,
            finish(
                shared,
                assignment,
                &workspace,
                &locked_paths,
                &outcome,
                sink,
            ),
        )
        .await
        .finished(outcome.usage, "during verification")
        .map_or_else(
            |ending| ending,
            |completion| AttemptEnding::Report(Box::new(completion)),
        )
        .ran_on(outcome.model)
}

/// After the agent: the change set, verification, the commit, and the completion.
async fn finish(
    shared: &Arc<Shared>,
    assignment: &ClaimedTask,
    workspace: &Workspace,
    locked_paths: &[String],
    outcome: &AgentOutcome,
    sink: &LogSink,
) -> AttemptCompletion {
    let task = &assignment.task;
    shared.emit(RunnerEvent::Verifying { task: task.id });
    // With verification off, the change is still read (for its locks and its stats), but
    // no check is prepared.
    let verification = if shared.config.verify {
        shared.verification.clone()
    } else {
        Verification::only()
    };
    let restored = {
        let (worktrees, workspace) = (shared.worktrees.clone(), workspace.clone());
        tokio::task::spawn_blocking(move || worktrees.restore_git_link(&workspace)).await
    };
    match restored {
        Ok(Ok(false)) => {}
        Ok(Ok(true)) => sink.note(
            LogType::Error,
            "the worktree's .git link had been changed; it points at the task's own git \
             directory again before the change is read and committed",
        ),
        Ok(Err(err)) => {
            let err = format!("the worktree's .git link could not be restored: {err}");
            sink.note(LogType::Error, err.clone());
            return failed_completion(err, outcome.usage);
        }
        Err(err) => return failed_completion(err.to_string(), outcome.usage),
    }
    let prepared = {
        let workspace = workspace.clone();
        tokio::task::spawn_blocking(move || {
            let prepared = verification
                .prepare(&workspace.path, &workspace.base_commit)
                .map_err(|err| err.to_string())?;
            let changes = prepared.changes().cloned().ok_or_else(|| {
                format!(
                    "the change could not be read: {} is not a git worktree",
                    workspace.path.display()
                )
            })?;
            Ok::<_, String>((changes, prepared))
        })
        .await
        .unwrap_or_else(|err| Err(err.to_string()))
    };
    let (changes, prepared) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            sink.note(LogType::Error, err.clone());
            return failed_completion(err, outcome.usage);
        }
    };
    // Changed paths beyond the task's locks are locked now, or the attempt fails: two
    // agents never hand in overlapping changes.
    let mut locked_paths = locked_paths.to_vec();
    let outside: Vec<String> = paths_outside_locks(&changes.files, &locked_paths)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let outside = match within_one_lock_request(outside) {
        Ok((paths, None)) => paths,
        Ok((paths, Some(note))) => {
            sink.note(LogType::Info, note);
            paths
        }
        Err(err) => {
            let error = format!("the changed paths cannot be locked: {err}");
            sink.note(LogType::Error, error.clone());
            return failed_completion(error, outcome.usage);
        }
    };
    if !outside.is_empty() {
        let attempt = AttemptRef::from(assignment);
        match shared.client.acquire_locks(attempt, &outside).await {
            Ok(answer) if answer.granted => {
                sink.note(
                    LogType::Info,
                    format!(
                        "locked {} more path(s): {}",
                        outside.len(),
                        outside.join(", ")
                    ),
                );
                locked_paths.extend(outside);
            }
            Ok(answer) => {
                let held: Vec<String> = answer
                    .conflicts
                    .iter()
                    .map(|c| format!("{} (held by agent {})", c.requested_path, c.held.agent_id))
                    .collect();
                let error = format!(
                    "the change touches files another agent holds: {}",
                    held.join(", ")
                );
                sink.note(LogType::Error, error.clone());
                return AttemptCompletion {
                    lock_conflict: true,
                    ..failed_completion(error, outcome.usage)
                };
            }
            Err(err) => {
                let error = format!("the changed paths could not be locked: {err}");
                sink.note(LogType::Error, error.clone());
                return failed_completion(error, outcome.usage);
            }
        }
    }
    let diff_stats = DiffStats {
        files_changed: u32::try_from(changes.files.len()).unwrap_or(u32::MAX),
        insertions: changes.files.iter().map(|f| f.insertions).sum(),
        deletions: changes.files.iter().map(|f| f.deletions).sum(),
    };
    let verification = if shared.config.verify {
        let (reports, result) = prepared
            .run(&task.title, &task.description, locked_paths)
            .await;
        for report in &reports {
            sink.note(
                LogType::Info,
                format!(
                    "verification: {} {}",
                    report.stage,
                    stage_word(&report.status)
                ),
            );
        }
        if result.unverified {
            sink.note(
                LogType::Info,
                "verification: no check applies to the files this change touches; it is unverified",
            );
        }
        Some(result)
    } else {
        None
    };
    // A change no check applies to is not verified, and not failed either.
    let verified = verification
        .as_ref()
        .is_none_or(|v| v.passed || v.unverified);
    let message = format!(
        "{}\n\nTask {}, attempt {}{}.\n",
        task.title,
        task.id,
        assignment.lease.attempt,
        match &verification {
            Some(result) if result.unverified => " (unverified: no check applies to it)",
            _ if !verified => " (verification failed)",
            _ => "",
        }
    );
    let commit = {
        let worktrees = shared.worktrees.clone();
        let workspace = workspace.clone();
        tokio::task::spawn_blocking(move || worktrees.commit(&workspace, &message)).await
    };
    let commit_sha = match commit {
        Ok(Ok(sha)) => sha,
        Ok(Err(err)) => {
            let err = format!("the change could not be committed: {err}");
            sink.note(LogType::Error, err.clone());
            return failed_completion(err, outcome.usage);
        }
        Err(err) => return failed_completion(err.to_string(), outcome.usage),
    };
    if let Some(sha) = &commit_sha {
        sink.note(
            LogType::StatusChange,
            format!("committed {sha} on {}", workspace.branch),
        );
    }
    let changes = committed_changes(shared, workspace, sink).await;
    let success = outcome.success && verified;
    let error = if !outcome.success {
        outcome
            .error
            .clone()
            .or_else(|| Some("the agent did not finish its work".into()))
    } else if !verified {
        verification.as_ref().map(failure_summary)
    } else {
        None
    };
    AttemptCompletion {
        success,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: outcome.summary.clone(),
        error,
        commit_sha,
        usage: outcome.usage,
        // The attempt's ending names them (see `run_attempt`, `AttemptEnding::ran_on`).
        backend: None,
        model: None,
        diff_stats: Some(diff_stats),
        changes,
        verification,
    }
}

/// The files and the patch of the task's committed change, for the completion; none (and
/// a note in the log saying why) when they cannot be read, which fails nothing.
async fn committed_changes(
    shared: &Shared,
    workspace: &Workspace,
    sink: &LogSink,
) -> Option<ChangeReport> {
    let read = {
        let (worktrees, workspace) = (shared.worktrees.clone(), workspace.clone());
        let cap = shared.config.max_patch_bytes;
        tokio::task::spawn_blocking(move || worktrees.change_report(&workspace, cap)).await
    };
    let failure = match read {
        Ok(Ok(report)) => return Some(report),
        Ok(Err(err)) => err.to_string(),
        Err(err) => err.to_string(),
    };
    sink.note(
        LogType::Error,
        format!("the change's files and patch could not be read for the report: {failure}"),
    );
    None
}

fn stage_word(status: &orchestrator_core::verify::StageStatus) -> String {
    match status {
        orchestrator_core::verify::StageStatus::Passed => "passed".into(),
        orchestrator_core::verify::StageStatus::Failed => "FAILED".into(),
        orchestrator_core::verify::StageStatus::Skipped { reason } => format!("skipped ({reason})"),
        orchestrator_core::verify::StageStatus::NotApplicable { reason } => {
            format!("does not apply ({reason})")
        }
    }
}

/// `verification failed:` and the first failures, one per line with their places.
fn failure_summary(result: &NewVerificationResult) -> String {
    let mut summary = String::from("verification failed:");
    for failure in result.failures.iter().take(FAILURES_REPORTED) {
        let place = match (&failure.file, failure.line, failure.column) {
            (Some(file), Some(line), Some(column)) => format!("{file}:{line}:{column}: "),
            (Some(file), Some(line), None) => format!("{file}:{line}: "),
            (Some(file), None, _) => format!("{file}: "),
            _ => String::new(),
        };
        summary.push_str(&format!(
            "\n- [{}] {place}{}",
            failure.kind, failure.message
        ));
    }
    if result.failures.len() > FAILURES_REPORTED {
        summary.push_str(&format!(
            "\n- … and {} more",
            result.failures.len() - FAILURES_REPORTED
        ));
    }
    if result.failures.is_empty() {
        summary.push_str(" no check could run on the change");
    }
    summary
}

/// `paths` as one lock request the server accepts: beyond [`MAX_LOCK_PATHS`] paths, or
/// [`MAX_PATH_KEY_BYTES`] of their keys, the directories covering them (and a note saying
/// so). Fails for a path the server would refuse (too long or too deep).
fn within_one_lock_request(paths: Vec<String>) -> Result<(Vec<String>, Option<String>), Error> {
    let parsed = paths
        .iter()
        .map(|path| LockPath::parse(path))
        .collect::<Result<Vec<_>, _>>()?;
    if paths.len() <= MAX_LOCK_PATHS && key_bytes(&parsed) <= MAX_PATH_KEY_BYTES {
        return Ok((paths, None));
    }
    let covering: Vec<String> = covering_at_most(parsed, MAX_LOCK_PATHS)
        .iter()
        .map(LockPath::key)
        .collect();
    let note = format!(
        "the change touches {} paths beyond its locks, more (or deeper) than one request may \
         name ({MAX_LOCK_PATHS} paths, {MAX_PATH_KEY_BYTES} bytes of keys); locking the {} \
         directories that cover them",
        paths.len(),
        covering.len()
    );
    Ok((covering, Some(note)))
}
