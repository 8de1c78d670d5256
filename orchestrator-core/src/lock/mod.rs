//! The [`LockManager`] seam: exclusive (and shared) grants on repository-relative paths,
//! and [`LockPath`], their normalized form.

mod path;

pub use path::{DescendantRange, LockPath, ROOT_KEY};

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{AgentId, TaskId};
use crate::model::{FileLock, LockMode};
use crate::time::Timestamp;

/// A request for a set of paths, granted all together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub holder: AgentId,
    pub task_id: Option<TaskId>,
    /// Repository-relative paths; a trailing `/` covers everything below.
    pub paths: Vec<String>,
    pub mode: LockMode,
    pub ttl: Duration,
}

/// A held lock that stands in the way of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockConflict {
    /// The requested path.
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

/// Grants locks on paths so that two agents never edit overlapping files.
///
/// Contract: `acquire` is atomic over its paths; two live locks of different holders
/// never overlap unless both are shared; fencing tokens strictly increase across grants;
/// an expired lock counts as free; the cost of an acquire does not grow with the number
/// of locks held elsewhere.
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
}
