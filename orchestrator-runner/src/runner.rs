//! The runner: claims tasks into its agent slots by long poll, runs each attempt in the
//! task's worktree with heartbeats and streamed logs, verifies the change, commits it on
//! the task's branch and reports the completion with its evidence.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::attempts::{AttemptCompletion, DiffStats};
use orchestrator_core::backend::{AgentBackend, AgentOutcome, AgentRequest, PauseSignal};
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::error::Error;
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::{LockPath, MAX_LOCK_PATHS, covering_at_most};
use orchestrator_core::model::{LogType, NewVerificationResult, TaskStatus, Usage};
use orchestrator_core::protocol::{AttemptRef, ClaimedTask};
use orchestrator_core::verify::Verifier;
use orchestrator_verify::{ReviewModel, SemanticVerifier, Verification, paths_outside_locks};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{ClientError, OrchestratorClient};
use crate::logs::{self, LogSink};
use crate::prompt;
use crate::worktree::{Workspace, WorktreeError, Worktrees};

/// Failures listed in the error a failed verification reports (and the next prompt shows).
const FAILURES_REPORTED: usize = 10;

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
    /// The orchestrator could not be reached; the runner tries again.
    Disconnected {
        detail: String,
    },
    /// Something the user should know; the runner goes on.
    Warning {
        detail: String,
    },
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
}

impl RunnerBuilder {
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
                backend: self.backend,
                worktrees: self.worktrees,
                config: RunnerConfig {
                    parallel: self.config.parallel.max(1),
                    ..self.config
                },
                events: self.events,
                verification: self.verification,
                control: RunnerControl { mode },
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
    backend: Arc<dyn AgentBackend>,
    worktrees: Worktrees,
    config: RunnerConfig,
    events: Option<mpsc::UnboundedSender<RunnerEvent>>,
    verification: Verification,
    control: RunnerControl,
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
                    shared.control.stop();
                    while attempts.join_next().await.is_some() {}
                    return Err(RunnerError::Unauthorized(err));
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
        Ok(())
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
    /// The lease is gone (expired and taken back); nothing more may be reported.
    LeaseLost(ClientError),
}

/// Why a heartbeat ends an attempt.
enum Interrupted {
    Cancelled,
    LeaseLost(ClientError),
}

impl<T> From<Interrupted> for Supervised<T> {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::Cancelled => Self::Cancelled,
            Interrupted::LeaseLost(err) => Self::LeaseLost(err),
        }
    }
}

impl Shared {
    fn emit(&self, event: RunnerEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// Runs `work` while heartbeating the attempt. The first beat reports `status` before
    /// the work starts, so the orchestrator knows where the attempt is even when the work
    /// ends at once. Pause and resume go to `agent_pause` when the work is the agent's.
    async fn supervise<T>(
        &self,
        attempt: AttemptRef,
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
        if let Some(ended) = self.beat(attempt, Some(status), sink, &mut pause).await {
            return ended.into();
        }
        let every = self.config.heartbeat_every;
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Supervised::Done(done),
                _ = beats.tick() => {
                    if let Some(ended) = self.beat(attempt, None, sink, &mut pause).await {
                        return ended.into();
                    }
                }
                _ = wait_for(&mut mode, RunMode::Stopping) => return Supervised::Stopped,
            }
        }
    }

    /// One heartbeat; `Some` when the attempt must end.
    async fn beat(
        &self,
        attempt: AttemptRef,
        report: Option<TaskStatus>,
        sink: &LogSink,
        pause: &mut PauseRelay<'_>,
    ) -> Option<Interrupted> {
        match self
            .client
            .heartbeat(attempt, self.config.lease_ttl, report)
            .await
        {
            Ok(ControlSignal::Continue) => {
                pause.set(false, sink);
                None
            }
            Ok(ControlSignal::Stop) => Some(Interrupted::Cancelled),
            Ok(ControlSignal::Pause) => {
                pause.set(true, sink);
                None
            }
            Err(err) if err.is_stale_lease() => Some(Interrupted::LeaseLost(err)),
            Err(err) => {
                tracing::warn!(task = %attempt.task_id(), error = %err, "heartbeat failed; the lease holds until it runs out");
                None
            }
        }
    }

    async fn complete(&self, attempt: AttemptRef, completion: &AttemptCompletion) {
        // A completion that cannot be delivered leaves the lease to run out: the
        // supervisor then gives the task back to the queue.
        for delay in [0, 1, 3] {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            match self.client.complete(attempt, completion).await {
                Ok(()) => return,
                Err(err) if matches!(err, ClientError::Refused { .. }) => {
                    tracing::warn!(task = %attempt.task_id(), error = %err, "completion refused");
                    return;
                }
                Err(err) => {
                    tracing::warn!(task = %attempt.task_id(), error = %err, "completion not delivered; retrying")
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
        summary: None,
        error: Some(error),
        commit_sha: None,
        usage,
        diff_stats: None,
        verification: None,
    }
}

/// One attempt, start to completion.
async fn run_attempt(shared: &Arc<Shared>, assignment: ClaimedTask) {
    let attempt = AttemptRef::from(&assignment);
    let task = &assignment.task;
    shared.emit(RunnerEvent::Claimed {
        task: task.id,
        title: task.title.clone(),
        attempt: assignment.lease.attempt,
    });
    let (sink, sender) = logs::stream(shared.client.clone(), attempt, shared.config.log_flush);
    let completion = attempt_work(shared, &assignment, &sink).await;
    drop(sink);
    let _ = sender.await;
    if let Some(completion) = completion {
        shared.complete(attempt, &completion).await;
        shared.emit(RunnerEvent::Finished {
            task: task.id,
            success: completion.success,
            commit: completion.commit_sha.clone(),
            detail: completion
                .summary
                .clone()
                .or(completion.error.clone())
                .unwrap_or_default(),
        });
    } else {
        shared.emit(RunnerEvent::Finished {
            task: task.id,
            success: false,
            commit: None,
            detail: "the lease was lost; the orchestrator gives the task to another runner".into(),
        });
    }
}

/// The attempt's work; `None` when its lease was lost and nothing may be reported.
async fn attempt_work(
    shared: &Arc<Shared>,
    assignment: &ClaimedTask,
    sink: &LogSink,
) -> Option<AttemptCompletion> {
    let attempt = AttemptRef::from(assignment);
    let task = &assignment.task;
    let worktrees = shared.worktrees.clone();
    let task_id = task.id;
    // The worktree is held (against prunes) until the attempt's work is over.
    let prepared = tokio::task::spawn_blocking(move || {
        let workspace = worktrees.prepare(task_id)?;
        let in_use = worktrees.hold(&workspace)?;
        Ok((workspace, in_use))
    })
    .await
    .map_err(|err| err.to_string())
    .and_then(|prepared: Result<_, WorktreeError>| prepared.map_err(|err| err.to_string()));
    let (workspace, _in_use) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            return Some(failed_completion(
                format!("the worktree could not be prepared: {err}"),
                Usage::default(),
            ));
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
    let outcome = match shared
        .supervise(
            attempt,
            TaskStatus::InProgress,
            sink,
            Some(&pause),
            shared.backend.run(request, sink),
        )
        .await
    {
        Supervised::Done(Ok(outcome)) => outcome,
        Supervised::Done(Err(err)) => {
            sink.note(LogType::Error, err.to_string());
            return Some(failed_completion(
                format!("the agent could not run: {err}"),
                Usage::default(),
            ));
        }
        Supervised::Cancelled => {
            sink.note(LogType::StatusChange, "cancelled: the agent was stopped");
            return Some(AttemptCompletion {
                cancelled: true,
                ..failed_completion("cancelled while running".into(), Usage::default())
            });
        }
        Supervised::Stopped => {
            sink.note(
                LogType::StatusChange,
                "the runner stopped: the agent was stopped",
            );
            return Some(failed_completion(
                "the runner was stopped during the attempt".into(),
                Usage::default(),
            ));
        }
        Supervised::LeaseLost(err) => {
            tracing::warn!(task = %task.id, error = %err, "lease lost while the agent ran");
            return None;
        }
    };
    let finished = shared
        .supervise(
            attempt,
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
        .await;
    match finished {
        Supervised::Done(completion) => Some(completion),
        Supervised::Cancelled => Some(AttemptCompletion {
            cancelled: true,
            ..failed_completion("cancelled during verification".into(), outcome.usage)
        }),
        Supervised::Stopped => Some(failed_completion(
            "the runner was stopped during verification".into(),
            outcome.usage,
        )),
        Supervised::LeaseLost(_) => None,
    }
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
                return failed_completion(error, outcome.usage);
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
        Some(result)
    } else {
        None
    };
    let verified = verification.as_ref().is_none_or(|v| v.passed);
    let message = format!(
        "{}\n\nTask {}, attempt {}{}.\n",
        task.title,
        task.id,
        assignment.lease.attempt,
        if verified {
            ""
        } else {
            " (verification failed)"
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
        summary: outcome.summary.clone(),
        error,
        commit_sha,
        usage: outcome.usage,
        diff_stats: Some(diff_stats),
        verification,
    }
}

fn stage_word(status: &orchestrator_core::verify::StageStatus) -> String {
    match status {
        orchestrator_core::verify::StageStatus::Passed => "passed".into(),
        orchestrator_core::verify::StageStatus::Failed => "FAILED".into(),
        orchestrator_core::verify::StageStatus::Skipped { reason } => format!("skipped ({reason})"),
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

/// `paths` as one lock request the server accepts: beyond [`MAX_LOCK_PATHS`] paths, the
/// directories covering them (and a note saying so). Fails for a path the server would
/// refuse (too long or too deep).
fn within_one_lock_request(paths: Vec<String>) -> Result<(Vec<String>, Option<String>), Error> {
    if paths.len() <= MAX_LOCK_PATHS {
        return Ok((paths, None));
    }
    let parsed = paths
        .iter()
        .map(|path| LockPath::parse(path))
        .collect::<Result<Vec<_>, _>>()?;
    let covering: Vec<String> = covering_at_most(parsed, MAX_LOCK_PATHS)
        .iter()
        .map(LockPath::key)
        .collect();
    let note = format!(
        "the change touches {} paths beyond its locks, more than one request may name \
         ({MAX_LOCK_PATHS}); locking the {} directories that cover them",
        paths.len(),
        covering.len()
    );
    Ok((covering, Some(note)))
}
