//! The client conformance suite: every behaviour an [`OrchestratorClient`] promises,
//! written once as plain async functions and run against every transport by
//! [`client_conformance_tests!`](crate::client_conformance_tests).
//!
//! A transport's test file provides an async factory returning a [`ClientFixture`] (a
//! client working as a runner session of an orchestrator, and that orchestrator's store)
//! and invokes the macro once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::AttemptCompletion;
use orchestrator_core::change::{LeaseRef, TaskAction};
use orchestrator_core::coordination::{ClaimRequest, ControlSignal, MAX_BATCH_CLAIM};
use orchestrator_core::ids::{LeaseToken, RunnerSessionId, TaskId};
use orchestrator_core::lock::LockRequest;
use orchestrator_core::model::{
    ExceptionQuery, ExceptionType, LockMode, LogQuery, LogType, NewAgent, NewRunnerSession,
    NewTask, RunnerIdentity, TaskStatus, Usage,
};
use orchestrator_core::protocol::{AttemptRef, ClaimedTask, LogEntry};
use orchestrator_core::store::StoreExt;
use orchestrator_core::{Clock, Store, SystemClock};

use crate::client::{ClientError, OrchestratorClient, Refusal};

/// A client under test, with the orchestrator it talks to.
#[async_trait]
pub trait ClientFixture: Send + Sync {
    /// The client, working as a runner session of the orchestrator.
    fn client(&self) -> Arc<dyn OrchestratorClient>;

    /// The orchestrator's store, to queue work and look at what the client did.
    fn store(&self) -> Arc<dyn Store>;

    /// The runner session the client works as.
    fn session(&self) -> RunnerSessionId;

    /// Stops what the fixture started (a server) and removes what it created.
    async fn teardown(self: Box<Self>);
}

/// Runs one conformance case on a fresh fixture, tearing it down even when the case fails.
pub async fn run_case<F, Fut>(fixture: Box<dyn ClientFixture>, case: F)
where
    F: FnOnce(Arc<dyn OrchestratorClient>, Arc<dyn Store>, RunnerSessionId) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(case(fixture.client(), fixture.store(), fixture.session())).await;
    fixture.teardown().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Stamps out one `#[tokio::test]` per conformance case for a transport.
///
/// `$factory` is an async function returning `Box<dyn ClientFixture>`.
#[macro_export]
macro_rules! client_conformance_tests {
    ($factory:path) => {
        $crate::client_conformance_tests!(@cases $factory;
            a_claim_hands_over_work_and_waits_when_there_is_none,
            every_slot_at_work_is_a_conflict,
            heartbeats_keep_the_lease_report_progress_and_carry_signals,
            log_batches_reach_the_attempt,
            changed_paths_are_locked_or_answered_with_their_holders,
            a_completion_ends_the_attempt_and_may_be_sent_again,
            reports_with_a_stale_lease_are_refused_as_stale,
            a_runner_may_not_report_on_another_runners_slot
        );
    };
    (@cases $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testing::run_case($factory().await, $crate::testing::$case).await;
            }
        )+
    };
}

const LEASE: Duration = Duration::from_secs(60);

/// What the runner under test states about itself with its claims.
fn runner() -> RunnerIdentity {
    RunnerIdentity {
        host: Some("conformance.example.com".into()),
        version: Some("0.1.0".into()),
        backends: vec!["command".into()],
    }
}

/// Queues a task touching `files` and returns its id.
async fn queue(store: &Arc<dyn Store>, title: &str, files: &[&str]) -> TaskId {
    let mut new = NewTask::new(title, "conformance");
    new.files_hint = files.iter().map(|f| (*f).to_owned()).collect();
    store
        .create_task(new, SystemClock.now())
        .await
        .expect("queue a task")
        .value
        .id
}

/// Claims exactly one task into one slot.
async fn claim_one(client: &Arc<dyn OrchestratorClient>) -> ClaimedTask {
    let mut claimed = client
        .claim(1, Duration::from_millis(0), LEASE, &runner())
        .await
        .expect("a claim");
    assert_eq!(claimed.len(), 1, "one task was queued");
    claimed.remove(0)
}

fn refusal(err: &ClientError) -> Option<Refusal> {
    match err {
        ClientError::Refused { refusal, .. } => Some(*refusal),
        ClientError::Unreachable { .. } => None,
    }
}

/// A claim states what the runner is, which its session keeps, and hands over the next
/// queued task with its lease, slot and locks; with nothing queued it waits as long as
/// asked and returns nothing; a task queued while it waits is handed over at once.
pub async fn a_claim_hands_over_work_and_waits_when_there_is_none(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    session: RunnerSessionId,
) {
    let started = std::time::Instant::now();
    let none = client
        .claim(1, Duration::from_millis(300), LEASE, &runner())
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
    let stated = store.get_runner_session(session).await.unwrap().identity();
    assert_eq!(stated, runner());

    let id = queue(&store, "first", &["src/lib.rs"]).await;
    let claimed = claim_one(&client).await;
    assert_eq!(claimed.task.id, id);
    assert_eq!(claimed.task.status, TaskStatus::Assigned);
    assert_eq!(claimed.lease.task_id, id);
    assert_eq!(claimed.lease.attempt, 1);
    assert_eq!(claimed.locks.len(), 1);
    assert_eq!(claimed.locks[0].file_path, "src/lib.rs");
    let slot = store.get_agent(claimed.agent.id).await.unwrap();
    assert_eq!(slot.runner_session_id, Some(session));
    assert_eq!(slot.current_task_id, Some(id));

    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .claim(1, Duration::from_secs(20), LEASE, &runner())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = queue(&store, "late", &[]).await;
    let claimed = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken by the new task")
        .unwrap()
        .unwrap();
    assert_eq!(claimed[0].task.id, late);
}

/// A runner whose every slot is at work is refused a claim as a conflict.
pub async fn every_slot_at_work_is_a_conflict(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    for n in 0..MAX_BATCH_CLAIM {
        queue(&store, &format!("task {n}"), &[]).await;
    }
    let claimed = client
        .claim(MAX_BATCH_CLAIM, Duration::from_millis(0), LEASE, &runner())
        .await
        .unwrap();
    assert_eq!(claimed.len(), MAX_BATCH_CLAIM);
    let err = client
        .claim(1, Duration::from_millis(0), LEASE, &runner())
        .await
        .unwrap_err();
    assert_eq!(refusal(&err), Some(Refusal::Conflict), "{err}");
}

/// A heartbeat keeps the lease, moves the task on when it reports progress, and says
/// stop once the task is cancelled.
pub async fn heartbeats_keep_the_lease_report_progress_and_carry_signals(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "beat", &[]).await;
    let claimed = claim_one(&client).await;
    let attempt = AttemptRef::from(&claimed);
    let before = store.get_task(id).await.unwrap().lease_expires_at.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let signal = client
        .heartbeat(attempt, LEASE, Some(TaskStatus::InProgress))
        .await
        .unwrap();
    assert_eq!(signal, ControlSignal::Continue);
    let task = store.get_task(id).await.unwrap();
    assert_eq!(task.status, TaskStatus::InProgress);
    assert!(
        task.lease_expires_at.unwrap() > before,
        "the lease was extended"
    );

    store
        .apply_task_action(id, TaskAction::Cancel, None, SystemClock.now())
        .await
        .unwrap();
    let signal = client.heartbeat(attempt, LEASE, None).await.unwrap();
    assert_eq!(signal, ControlSignal::Stop);
}

/// Log entries sent on an attempt are stored on its task, by its agent.
pub async fn log_batches_reach_the_attempt(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "talk", &[]).await;
    let claimed = claim_one(&client).await;
    let entries = vec![
        LogEntry {
            log_type: LogType::Info,
            content: "reading the code".into(),
            metadata: None,
            timestamp: None,
        },
        LogEntry {
            log_type: LogType::ToolCall,
            content: "edit src/lib.rs".into(),
            metadata: Some(serde_json::json!({ "tool": "edit" })),
            timestamp: None,
        },
    ];
    client
        .send_logs(AttemptRef::from(&claimed), &entries)
        .await
        .unwrap();
    let page = store.list_logs(&LogQuery::for_task(id, 10)).await.unwrap();
    let mut stored: Vec<(LogType, String)> = page
        .logs
        .iter()
        .filter(|log| log.agent_id == claimed.agent.id)
        .map(|log| (log.log_type, log.content.clone()))
        .collect();
    stored.sort();
    let mut sent: Vec<(LogType, String)> = entries
        .into_iter()
        .map(|entry| (entry.log_type, entry.content))
        .collect();
    sent.sort();
    assert_eq!(stored, sent);
}

/// Paths the attempt changed are locked for it; paths another agent holds are answered
/// with their holder (not an error) and raise a CONFLICT_DETECTED exception.
pub async fn changed_paths_are_locked_or_answered_with_their_holders(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "edit", &[]).await;
    let claimed = claim_one(&client).await;
    let attempt = AttemptRef::from(&claimed);
    let answer = client
        .acquire_locks(attempt, &["src/new.rs".to_owned()])
        .await
        .unwrap();
    assert!(answer.granted);
    assert_eq!(answer.locks[0].file_path, "src/new.rs");

    let other = store
        .create_agent(NewAgent::default(), SystemClock.now())
        .await
        .unwrap();
    store
        .acquire(
            LockRequest {
                holder: other.id,
                task_id: None,
                paths: vec!["docs/".into()],
                mode: LockMode::Exclusive,
                ttl: LEASE,
            },
            SystemClock.now(),
        )
        .await
        .unwrap();
    let answer = client
        .acquire_locks(attempt, &["docs/guide.md".to_owned()])
        .await
        .unwrap();
    assert!(!answer.granted);
    assert_eq!(answer.conflicts[0].held.agent_id, other.id);
    let raised = store
        .list_exceptions(&ExceptionQuery {
            task_id: Some(id),
            exception_type: Some(ExceptionType::ConflictDetected),
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(raised.items.len(), 1);
}

/// A completion ends the attempt with its commit, backend and model and frees the slot;
/// sent again, it is accepted and changes nothing.
pub async fn a_completion_ends_the_attempt_and_may_be_sent_again(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "finish", &["src/"]).await;
    let claimed = claim_one(&client).await;
    let completion = AttemptCompletion {
        success: true,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: Some("done".into()),
        error: None,
        commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        usage: Usage::default(),
        backend: Some("claude-code".into()),
        model: Some("claude-sonnet-4-5".into()),
        diff_stats: None,
        changes: None,
        verification: None,
    };
    let attempt = AttemptRef::from(&claimed);
    client.complete(attempt, &completion).await.unwrap();
    let task = store.get_task(id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.commit_sha, completion.commit_sha);
    let ended = &store.list_attempts(id).await.unwrap()[0];
    assert_eq!(
        (&ended.backend, &ended.model),
        (&completion.backend, &completion.model)
    );
    let events = store.last_event_seq().await.unwrap();
    client.complete(attempt, &completion).await.unwrap();
    assert_eq!(store.get_task(id).await.unwrap(), task);
    assert_eq!(store.last_event_seq().await.unwrap(), events);
    let slot = store.get_agent(claimed.agent.id).await.unwrap();
    assert_eq!(slot.current_task_id, None);
}

/// Every report that presents a lease the task no longer has is refused as stale and
/// changes nothing.
pub async fn reports_with_a_stale_lease_are_refused_as_stale(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "stale", &[]).await;
    let claimed = claim_one(&client).await;
    let stale = AttemptRef {
        agent_id: claimed.agent.id,
        lease: LeaseRef {
            lease_token: LeaseToken::new(),
            ..claimed.lease
        },
    };
    let before = store.get_task(id).await.unwrap();
    let heartbeat = client.heartbeat(stale, LEASE, None).await.unwrap_err();
    assert!(heartbeat.is_stale_lease(), "{heartbeat}");
    let entry = LogEntry {
        log_type: LogType::Info,
        content: "late".into(),
        metadata: None,
        timestamp: None,
    };
    let logs = client.send_logs(stale, &[entry]).await.unwrap_err();
    assert!(logs.is_stale_lease(), "{logs}");
    let completion = AttemptCompletion {
        success: false,
        cancelled: false,
        returned: false,
        lock_conflict: false,
        summary: None,
        error: Some("late".into()),
        commit_sha: None,
        usage: Usage::default(),
        backend: None,
        model: None,
        diff_stats: None,
        changes: None,
        verification: None,
    };
    let complete = client.complete(stale, &completion).await.unwrap_err();
    assert!(complete.is_stale_lease(), "{complete}");
    assert_eq!(store.get_task(id).await.unwrap(), before);
}

/// Reports on a slot of another runner session are refused as unauthorized.
pub async fn a_runner_may_not_report_on_another_runners_slot(
    client: Arc<dyn OrchestratorClient>,
    store: Arc<dyn Store>,
    _session: RunnerSessionId,
) {
    let id = queue(&store, "theirs", &[]).await;
    let now = SystemClock.now();
    let other_session = store
        .create_runner_session(
            NewRunnerSession {
                name: "another runner".into(),
                working_dir: "/elsewhere".into(),
                token_hash: format!("conformance:{}", RunnerSessionId::new()),
                runner: RunnerIdentity::default(),
            },
            now,
        )
        .await
        .unwrap();
    let theirs = store
        .create_agent(
            NewAgent {
                runner_session_id: Some(other_session.id),
                ..NewAgent::default()
            },
            now,
        )
        .await
        .unwrap();
    let claim = ClaimRequest {
        agents: vec![theirs.id],
        runner_session_id: Some(other_session.id),
        task_id: Some(id),
        lease_ttl: LEASE,
    };
    let theirs_claim = store.claim(claim, now).await.unwrap().remove(0);
    let attempt = AttemptRef {
        agent_id: theirs.id,
        lease: theirs_claim.lease,
    };
    let err = client.heartbeat(attempt, LEASE, None).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(refusal(&err), Some(Refusal::Unauthorized));
}
