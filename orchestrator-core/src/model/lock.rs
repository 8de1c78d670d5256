use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, FileLockId, TaskId};
use crate::model::{FileLockStatus, LockMode};
use crate::time::Timestamp;

/// A grant on a repository-relative path, covering everything below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FileLock {
    pub id: FileLockId,
    pub file_path: String,
    pub agent_id: AgentId,
    pub task_id: Option<TaskId>,
    pub mode: LockMode,
    pub status: FileLockStatus,
    /// Strictly increasing across all grants; a holder presents it with its writes.
    pub fencing_token: u64,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
}

impl FileLock {
    /// Whether the lock still holds at `now`: it runs out at `expires_at`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}
