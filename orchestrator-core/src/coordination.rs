//! The vocabulary of coordination between runners and the store: claims, heartbeats and
//! the housekeeping the supervisor does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::change::LeaseRef;
use crate::error::{Error, Result};
use crate::ids::{AgentId, RunnerSessionId, TaskId};
use crate::model::{Event, EventKind, FileLock, Task, TaskStatus};
use crate::time::Timestamp;

/// Most agent slots one claim may fill.
pub const MAX_BATCH_CLAIM: usize = 32;
/// Shortest and longest lease a claim or heartbeat may ask for.
pub const LEASE_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(3_600));

/// A runner asking work for some of its idle agent slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The idle slots to fill, one task each (1 to [`MAX_BATCH_CLAIM`]).
    pub agents: Vec<AgentId>,
    pub runner_session_id: Option<RunnerSessionId>,
    /// Claim this task rather than the next in the queue (one slot only).
    pub task_id: Option<TaskId>,
    pub lease_ttl: Duration,
}

impl ClaimRequest {
    /// Checks the slot count, duplicates and the lease length.
    pub fn validate(&self) -> Result<()> {
        if self.agents.is_empty() || self.agents.len() > MAX_BATCH_CLAIM {
            return Err(Error::invalid(
                "max",
                format!(
                    "claim 1 to {MAX_BATCH_CLAIM} tasks at once, not {}",
                    self.agents.len()
                ),
            ));
        }
        let mut sorted = self.agents.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.agents.len() {
            return Err(Error::invalid("agents", "an agent slot appears twice"));
        }
        if self.task_id.is_some() && self.agents.len() != 1 {
            return Err(Error::invalid(
                "taskId",
                "a specific task is claimed for exactly one agent slot",
            ));
        }
        check_lease_ttl(self.lease_ttl)
    }
}

/// Rejects a lease length outside [`LEASE_TTL_RANGE`].
pub fn check_lease_ttl(ttl: Duration) -> Result<()> {
    let (min, max) = LEASE_TTL_RANGE;
    if ttl < min || ttl > max {
        return Err(Error::invalid(
            "leaseTtl",
            format!(
                "a lease lasts {} to {} seconds, not {:.1}",
                min.as_secs(),
                max.as_secs(),
                ttl.as_secs_f64()
            ),
        ));
    }
    Ok(())
}

/// One task handed to one slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub task: Task,
    pub agent_id: AgentId,
    /// What the runner presents with every report on this attempt.
    pub lease: LeaseRef,
    /// The locks taken on the task's files hint.
    pub locks: Vec<FileLock>,
}

/// What a heartbeat tells the runner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ControlSignal {
    /// Keep working.
    Continue,
    /// Stop the agent and acknowledge the cancellation.
    Stop,
    /// Pause until told to continue.
    Pause,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAck {
    pub lease_expires_at: Timestamp,
    pub signal: ControlSignal,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Agent log entries older than this are deleted.
    pub log_max_age: Duration,
    /// At most this many agent log entries are kept (the newest).
    pub log_max_count: u64,
    /// Events older than this are deleted.
    pub event_max_age: Duration,
    /// At most this many events are kept (the newest).
    pub event_max_count: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            log_max_age: Duration::from_secs(30 * 24 * 3_600),
            log_max_count: 5_000_000,
            event_max_age: Duration::from_secs(7 * 24 * 3_600),
            event_max_count: 1_000_000,
        }
    }
}

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub logs_deleted: u64,
    pub events_deleted: u64,
}

/// Claims like [`QueueStore::claim`](crate::store::QueueStore::claim), but when nothing is claimable waits
/// up to `wait` for a commit that may have made work claimable (see [`may_free_work`]: a
/// new task, a released lock, a finished dependency, another claim done) and tries again,
/// instead of polling. Commits that cannot free work (log entries, heartbeats, evidence)
/// are read past without claiming; it also looks again when a delayed task's `notBefore`
/// passes or a lock runs out (before the supervisor sweeps it). Returns an empty list when
/// `wait` passes without work. Work that becomes claimable otherwise without a commit is
/// found by the next claim: on PostgreSQL, a task passed over while a claim that then
/// took nothing held its row.
pub async fn claim_waiting(
    store: &dyn crate::Store,
    clock: &dyn crate::Clock,
    request: ClaimRequest,
    wait: Duration,
) -> Result<Vec<Claim>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut commits = store.subscribe();
    // Mark the current state seen before looking, so that a commit between the claim and
    // the wait still wakes us; its events are the ones after `seen`.
    commits.borrow_and_update();
    let mut seen = store.last_event_seq().await?;
    loop {
        let claims = store.claim(request.clone(), clock.now()).await?;
        if !claims.is_empty() {
            return Ok(claims);
        }
        let due = store.work_due_in(clock.now()).await?;
        let look_again = due.map_or(deadline, |due| {
            deadline.min(tokio::time::Instant::now() + due)
        });
        loop {
            match tokio::time::timeout_at(look_again, commits.changed()).await {
                Ok(Ok(())) => {}
                // A delayed task came due, or a lock ran out.
                Err(_) if look_again < deadline => break,
                // The deadline passed, or the store is gone: no work this time.
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
            commits.borrow_and_update();
            let events = store.events_since(seen, WAKE_EVENTS_PAGE).await?;
            let Some(last) = events.last() else {
                // Pruning commits without events, and may have taken the events of the
                // commit that woke us: look again.
                break;
            };
            seen = last.seq;
            if events.len() == WAKE_EVENTS_PAGE as usize || events.iter().any(may_free_work) {
                break;
            }
        }
    }
}

/// Events a waiting claim reads per wake; a full page counts as a reason to look.
const WAKE_EVENTS_PAGE: u32 = 500;

/// Whether `event` may have made a task claimable that was not before: a task created,
/// edited, deleted (a dependency gone), queued again or completed (its dependents may be
/// ready), a lock released, or another claim committed (on PostgreSQL a claim passes over
/// the rows another claim holds; they are free again once it commits).
pub fn may_free_work(event: &Event) -> bool {
    match event.kind {
        EventKind::TaskCreated
        | EventKind::TaskUpdated
        | EventKind::TaskDeleted
        | EventKind::LockReleased => true,
        EventKind::TaskStatusChanged => event
            .payload
            .get("to")
            .and_then(|to| TaskStatus::deserialize(to).ok())
            .is_none_or(|to| {
                matches!(
                    to,
                    TaskStatus::Queued | TaskStatus::Assigned | TaskStatus::Completed
                )
            }),
        EventKind::TaskCancelRequested
        | EventKind::LeaseRenewed
        | EventKind::AgentCreated
        | EventKind::AgentStatusChanged
        | EventKind::RunnerConnected
        | EventKind::RunnerStatusChanged
        | EventKind::LogsAppended
        | EventKind::VerificationRecorded
        | EventKind::ExceptionOpened
        | EventKind::ExceptionStatusChanged
        | EventKind::LockAcquired
        | EventKind::LockRenewed => false,
    }
}

/// The live agent slots of a runner session (finished ones left out).
pub async fn session_slots(
    store: &dyn crate::Store,
    session: RunnerSessionId,
) -> Result<Vec<crate::model::Agent>> {
    use crate::model::{AgentQuery, AgentStatus};

    let page = store
        .list_agents(&AgentQuery {
            runner_session_id: Some(session),
            limit: 100,
            ..AgentQuery::default()
        })
        .await?;
    Ok(page
        .items
        .into_iter()
        .filter(|a| !matches!(a.status, AgentStatus::Completed | AgentStatus::Failed))
        .collect())
}

/// Up to `wanted` idle slots of the session, creating slots while it has fewer than
/// [`MAX_BATCH_CLAIM`]; a slot left STUCK by an expired lease recovers when its runner
/// asks for work again.
pub async fn idle_slots(
    store: &dyn crate::Store,
    session: &crate::model::RunnerSession,
    wanted: usize,
    now: Timestamp,
) -> Result<Vec<AgentId>> {
    use crate::change::AgentAction;
    use crate::model::{AgentStatus, NewAgent};

    let slots = session_slots(store, session.id).await?;
    let mut idle = Vec::new();
    for slot in &slots {
        if idle.len() == wanted {
            break;
        }
        match slot.status {
            AgentStatus::Idle => idle.push(slot.id),
            AgentStatus::Stuck if slot.current_task_id.is_none() => {
                store
                    .apply_agent_action(slot.id, AgentAction::Recover, now)
                    .await?;
                idle.push(slot.id);
            }
            _ => {}
        }
    }
    let mut next_slot = slots
        .iter()
        .filter_map(|s| s.slot)
        .max()
        .map_or(0, |s| s + 1);
    let mut live = slots.len();
    while idle.len() < wanted && live < MAX_BATCH_CLAIM {
        let agent = store
            .create_agent(
                NewAgent {
                    name: Some(format!("{} #{next_slot}", session.name)),
                    runner_session_id: Some(session.id),
                    slot: Some(next_slot),
                    is_local_runner: true,
                },
                now,
            )
            .await?;
        idle.push(agent.id);
        next_slot += 1;
        live += 1;
    }
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{NewAgent, NewTask};
    use crate::{Clock, InMemoryStore, ManualClock, Store, SystemClock};

    /// An in-memory store with one agent slot.
    async fn store_with_slot(clock: &dyn Clock) -> (Arc<dyn Store>, crate::model::Agent) {
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        let agent = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .unwrap();
        (store, agent)
    }

    /// A queue claim for `agent`'s slot.
    fn one_slot(agent: AgentId) -> ClaimRequest {
        ClaimRequest {
            agents: vec![agent],
            runner_session_id: None,
            task_id: None,
            lease_ttl: Duration::from_secs(60),
        }
    }

    /// A holder's lock on `src/` for `ttl` and a queued task that needs `src/main.rs`;
    /// returns the holder and the task.
    async fn task_behind_a_lock(
        store: &Arc<dyn Store>,
        clock: &dyn Clock,
        ttl: Duration,
    ) -> (crate::model::Agent, Task) {
        use crate::lock::LockRequest;
        use crate::model::LockMode;

        let holder = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .unwrap();
        let lock = LockRequest {
            holder: holder.id,
            task_id: None,
            paths: vec!["src/".into()],
            mode: LockMode::Exclusive,
            ttl,
        };
        store.acquire(lock, clock.now()).await.unwrap();
        let mut new = NewTask::new("needs src", "d");
        new.files_hint = vec!["src/main.rs".into()];
        let task = store.create_task(new, clock.now()).await.unwrap().value;
        (holder, task)
    }

    /// A claim for `slot` waiting up to a minute on `clock`, in a task of its own.
    fn spawn_waiter(
        store: &Arc<dyn Store>,
        clock: &Arc<ManualClock>,
        slot: AgentId,
    ) -> tokio::task::JoinHandle<Result<Vec<Claim>>> {
        let (store, clock) = (store.clone(), clock.clone());
        tokio::spawn(async move {
            claim_waiting(&*store, &*clock, one_slot(slot), Duration::from_secs(60)).await
        })
    }

    #[tokio::test]
    async fn a_waiting_claim_wakes_when_a_task_arrives() {
        let clock = SystemClock;
        let (store, agent) = store_with_slot(&clock).await;
        let request = one_slot(agent.id);
        let empty = claim_waiting(&*store, &clock, request.clone(), Duration::from_millis(20))
            .await
            .unwrap();
        assert!(empty.is_empty(), "nothing to claim, and the wait ends");

        let waiter = {
            let store = store.clone();
            let request = request.clone();
            tokio::spawn(async move {
                claim_waiting(&*store, &SystemClock, request, Duration::from_secs(30)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it waits instead of returning");
        let task = store
            .create_task(NewTask::new("late", "d"), clock.now())
            .await
            .unwrap()
            .value;
        let claims = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the commit")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }

    #[tokio::test]
    async fn a_waiting_claim_sleeps_through_logs_and_wakes_when_a_lock_is_released() {
        use crate::model::{LogType, NewAgentLog};

        // The waiter's clock moves only when the test moves it.
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000).unwrap()));
        let (store, slot) = store_with_slot(&*clock).await;
        let (holder, task) = task_behind_a_lock(&store, &*clock, Duration::from_secs(600)).await;
        let waiter = spawn_waiter(&store, &clock, slot.id);
        // A task that comes due while the waiter sleeps, with no commit to say so: a
        // waiter that claimed again on any commit would take it at the log entry below.
        let mut soon = NewTask::new("soon", "d");
        soon.not_before = Some(clock.now().add(Duration::from_secs(10)));
        let later = clock.now().add(Duration::from_millis(1));
        store.create_task(soon, later).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "nothing was claimable yet");
        clock.advance(Duration::from_secs(20));
        let log = NewAgentLog {
            agent_id: holder.id,
            task_id: None,
            log_type: LogType::Info,
            content: "still editing".into(),
            metadata: None,
        };
        store.append_logs(vec![log], clock.now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a log entry frees nothing");
        store.release(holder.id, None, clock.now()).await.unwrap();
        let claims = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id, "the older task comes first");
    }

    #[tokio::test]
    async fn a_waiting_claim_looks_again_when_a_delayed_task_comes_due() {
        let clock = SystemClock;
        let (store, agent) = store_with_slot(&clock).await;
        let mut delayed = NewTask::new("retry later", "d");
        delayed.not_before = Some(clock.now().add(Duration::from_millis(300)));
        let task = store.create_task(delayed, clock.now()).await.unwrap().value;
        let request = one_slot(agent.id);
        let waiting = claim_waiting(&*store, &clock, request, Duration::from_secs(60));
        let claims = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("claimed when it came due, without a commit to wake it")
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }

    #[tokio::test]
    async fn a_waiting_claim_looks_again_when_a_lock_runs_out() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000).unwrap()));
        let (store, slot) = store_with_slot(&*clock).await;
        let (_, task) = task_behind_a_lock(&store, &*clock, Duration::from_secs(5)).await;
        // The lock runs out 300 ms after the waiter starts; the store's clock then passes
        // that instant while the waiter sleeps, with no commit to say so.
        clock.advance(Duration::from_millis(4_700));
        let waiter = spawn_waiter(&store, &clock, slot.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the lock still holds the task back");
        clock.advance(Duration::from_secs(1));
        let claims = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("claimed when the lock ran out")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }

    #[test]
    fn only_events_that_can_free_work_wake_a_waiting_claim() {
        let event = |kind, payload| Event {
            seq: 1,
            kind,
            task_id: None,
            agent_id: None,
            runner_session_id: None,
            exception_id: None,
            payload,
            created_at: Timestamp::from_millis(0).unwrap(),
        };
        let status = |to: &str| {
            event(
                EventKind::TaskStatusChanged,
                serde_json::json!({ "to": to }),
            )
        };
        for waking in [
            event(EventKind::TaskCreated, serde_json::Value::Null),
            event(EventKind::TaskUpdated, serde_json::Value::Null),
            event(EventKind::LockReleased, serde_json::Value::Null),
            status("QUEUED"),
            status("ASSIGNED"),
            status("COMPLETED"),
            event(EventKind::TaskStatusChanged, serde_json::Value::Null),
        ] {
            assert!(may_free_work(&waking), "{waking:?}");
        }
        for quiet in [
            event(EventKind::LogsAppended, serde_json::Value::Null),
            event(EventKind::VerificationRecorded, serde_json::Value::Null),
            event(EventKind::LockAcquired, serde_json::Value::Null),
            event(EventKind::ExceptionOpened, serde_json::Value::Null),
            event(EventKind::AgentStatusChanged, serde_json::Value::Null),
            status("IN_PROGRESS"),
            status("VERIFYING"),
            status("FAILED"),
        ] {
            assert!(!may_free_work(&quiet), "{quiet:?}");
        }
    }
}
