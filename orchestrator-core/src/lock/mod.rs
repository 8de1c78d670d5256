//! The [`LockManager`] seam: exclusive (and shared) grants on repository-relative paths,
//! and [`LockPath`], their normalized form.

mod path;
mod rules;

pub use path::{DescendantRange, LockPath, MAX_PATH_BYTES, MAX_PATH_DEPTH, ROOT_KEY};
pub use rules::{
    MAX_LOCK_PATHS, MAX_PATH_KEY_BYTES, acquired_event, check_force_release, conflicts_among,
    covering_at_most, force_release_exception, grants_for, key_bytes, parse_paths, released_event,
    renewed_event,
};

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{AgentId, TaskId};
use crate::model::{Exception, FileLock, LockMode};
use crate::time::Timestamp;

/// A request for a set of paths, granted all together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub holder: AgentId,
    pub task_id: Option<TaskId>,
    /// Repository-relative paths, each covering everything below it.
    pub paths: Vec<String>,
    pub mode: LockMode,
    pub ttl: Duration,
}

/// A held lock that stands in the way of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LockConflict {
    /// The requested path, normalized.
    pub requested_path: String,
    /// The lock that overlaps it.
    pub held: FileLock,
}

/// The outcome of an acquire. Contention is an outcome, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    /// Every path was granted; each grant carries a fresh fencing token.
    Granted(Vec<FileLock>),
    /// Nothing was granted, because of these locks.
    Denied(Vec<LockConflict>),
}

/// Which locks to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockQuery {
    pub agent_id: Option<AgentId>,
    pub task_id: Option<TaskId>,
    /// Also list locks whose time ran out but that the supervisor has not swept yet.
    pub include_expired: bool,
    pub limit: u32,
}

impl Default for LockQuery {
    fn default() -> Self {
        Self {
            agent_id: None,
            task_id: None,
            include_expired: false,
            limit: 100,
        }
    }
}

impl LockQuery {
    /// Checks the limit (1..=200).
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > 200 {
            return Err(crate::Error::invalid(
                "limit",
                format!("must be 1 to 200, got {}", self.limit),
            ));
        }
        Ok(())
    }
}

/// What an administrator's force release took away, and the exception recording it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForcedRelease {
    pub released: Vec<FileLock>,
    pub exception: Exception,
}

/// Grants locks on paths so that two agents never edit overlapping files.
///
/// Contract: `acquire` is atomic over its paths; two live locks of different holders
/// never overlap unless both are shared; a holder never conflicts with itself; fencing
/// tokens strictly increase across grants; an expired lock counts as free; the cost of an
/// acquire does not grow with the number of locks held elsewhere (lookups go through an
/// index on the normalized path, never a scan).
#[async_trait]
pub trait LockManager: Send + Sync + Debug + 'static {
    /// Grants every path of the request, or none.
    async fn acquire(&self, request: LockRequest, now: Timestamp) -> Result<LockOutcome>;

    /// Extends every live lock of `holder` to `now + ttl`; returns how many.
    async fn renew(&self, holder: AgentId, ttl: Duration, now: Timestamp) -> Result<u64>;

    /// Releases `holder`'s locks (all of them when `paths` is `None`); returns how many.
    async fn release(
        &self,
        holder: AgentId,
        paths: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<u64>;

    /// The live locks that would stand in the way of `paths` for anyone but `exclude`.
    async fn check(
        &self,
        paths: &[String],
        exclude: Option<AgentId>,
        now: Timestamp,
    ) -> Result<Vec<LockConflict>>;

    /// Locks, newest first.
    async fn list_locks(&self, query: &LockQuery, now: Timestamp) -> Result<Vec<FileLock>>;

    /// Takes away every lock on exactly `path` (normalized) and records a
    /// CONFLICT_DETECTED exception naming the previous holders. `NotFound` if none.
    async fn force_release(
        &self,
        path: &str,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<ForcedRelease>;

    /// Deletes locks whose time ran out; returns how many.
    async fn sweep_expired_locks(&self, now: Timestamp) -> Result<u64>;
}
