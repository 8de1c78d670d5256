use serde::{Deserialize, Serialize};

use super::{check_max_chars, check_not_blank};
use crate::error::Result;
use crate::ids::RunnerSessionId;
use crate::model::RunnerSessionStatus;
use crate::time::Timestamp;

const MAX_NAME_CHARS: usize = 100;
const MAX_WORKING_DIR_CHARS: usize = 4096;

/// A connected runner machine, authenticated by a token of which only the hash is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerSession {
    pub id: RunnerSessionId,
    pub name: String,
    pub working_dir: String,
    pub status: RunnerSessionStatus,
    /// SHA-256 of the runner token (hex); never serialized.
    #[serde(skip)]
    pub token_hash: String,
    pub last_seen_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl RunnerSession {
    /// Whether the session may act (not revoked). An inactive session becomes active again
    /// when it calls in.
    pub fn is_active(&self) -> bool {
        self.status != RunnerSessionStatus::Revoked
    }
}

/// What it takes to create a runner session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRunnerSession {
    pub name: String,
    pub working_dir: String,
    pub token_hash: String,
}

impl NewRunnerSession {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        check_not_blank("name", &self.name)?;
        check_max_chars("name", &self.name, MAX_NAME_CHARS)?;
        check_max_chars("workingDir", &self.working_dir, MAX_WORKING_DIR_CHARS)?;
        check_not_blank("tokenHash", &self.token_hash)
    }

    /// The ACTIVE session this creates.
    pub fn into_session(self, id: RunnerSessionId, now: Timestamp) -> RunnerSession {
        RunnerSession {
            id,
            name: self.name,
            working_dir: self.working_dir,
            status: RunnerSessionStatus::Active,
            token_hash: self.token_hash,
            last_seen_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}
