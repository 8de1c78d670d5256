//! The vocabulary of coordination between runners and the store: claims, heartbeats and
//! the housekeeping the supervisor does; and [`ClaimRoom`], where waiting claims take
//! turns.

mod reservations;
mod waiting;

pub use reservations::{Reserved, SlotReservations};
pub use waiting::ClaimRoom;

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

/// Whether `event` may have made a task claimable that was not before: a task created,
/// edited, deleted (a dependency gone), queued again or completed (its dependents may be
/// ready), or a lock released. A claim taking work frees none; a claim that saw work it
/// left hands the turn on itself ([`ClaimRoom`](super::ClaimRoom)).
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
            .is_none_or(|to| matches!(to, TaskStatus::Queued | TaskStatus::Completed)),
        EventKind::TaskCancelRequested
        | EventKind::LeaseRenewed
        | EventKind::AgentCreated
        | EventKind::AgentStatusChanged
        | EventKind::RunnerConnected
        | EventKind::RunnerStatusChanged
        | EventKind::RunnerUpdated
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

/// Up to `wanted` idle slots of the session that are not `taken` by other claims,
/// creating slots while it has fewer than [`MAX_BATCH_CLAIM`]; a slot left STUCK by an
/// expired lease recovers when its runner asks for work again.
pub async fn idle_slots(
    store: &dyn crate::Store,
    session: &crate::model::RunnerSession,
    wanted: usize,
    now: Timestamp,
    taken: &std::collections::HashSet<AgentId>,
) -> Result<Vec<AgentId>> {
    use crate::change::AgentAction;
    use crate::model::{AgentStatus, NewAgent};

    let slots = session_slots(store, session.id).await?;
    let mut idle = Vec::new();
    for slot in &slots {
        if idle.len() == wanted {
            break;
        }
        if taken.contains(&slot.id) {
            continue;
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
    use super::*;

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
            status("ASSIGNED"),
            status("IN_PROGRESS"),
            status("VERIFYING"),
            status("FAILED"),
        ] {
            assert!(!may_free_work(&quiet), "{quiet:?}");
        }
    }
}
