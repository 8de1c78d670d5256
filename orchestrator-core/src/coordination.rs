//! The vocabulary of coordination between runners and the store: claims, heartbeats and
//! the housekeeping the supervisor does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::change::LeaseRef;
use crate::error::{Error, Result};
use crate::ids::{AgentId, RunnerSessionId, TaskId};
use crate::model::{FileLock, Task};
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
