use serde::{Deserialize, Serialize};

use super::check_max_chars;
use crate::error::Result;
use crate::ids::{AgentId, RunnerSessionId, TaskId};
use crate::model::AgentStatus;
use crate::time::Timestamp;

const MAX_NAME_CHARS: usize = 200;

/// A worker slot of a runner session: it runs one task attempt at a time and is reused
/// for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: AgentId,
    pub name: Option<String>,
    pub status: AgentStatus,
    pub current_task_id: Option<TaskId>,
    pub branch_name: Option<String>,
    pub conversation_id: Option<String>,
    /// Tokens used over every attempt this slot ran.
    pub total_tokens_used: u64,
    pub last_activity_at: Option<Timestamp>,
    /// When the current (or last) attempt started.
    pub started_at: Option<Timestamp>,
    /// When the last attempt ended, or when the slot was retired.
    pub completed_at: Option<Timestamp>,
    pub tasks_completed: u32,
    pub tasks_failed: u32,
    pub is_local_runner: bool,
    pub runner_session_id: Option<RunnerSessionId>,
    /// Position of the slot within its runner session (0-based).
    pub slot: Option<u32>,
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What it takes to register an agent slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAgent {
    pub name: Option<String>,
    pub runner_session_id: Option<RunnerSessionId>,
    pub slot: Option<u32>,
    #[serde(default)]
    pub is_local_runner: bool,
}

impl NewAgent {
    /// Checks the name's length.
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            check_max_chars("name", name, MAX_NAME_CHARS)?;
        }
        Ok(())
    }

    /// The IDLE agent this registers.
    pub fn into_agent(self, id: AgentId, now: Timestamp) -> Agent {
        Agent {
            id,
            name: self.name,
            status: AgentStatus::Idle,
            current_task_id: None,
            branch_name: None,
            conversation_id: None,
            total_tokens_used: 0,
            last_activity_at: None,
            started_at: None,
            completed_at: None,
            tasks_completed: 0,
            tasks_failed: 0,
            is_local_runner: self.is_local_runner,
            runner_session_id: self.runner_session_id,
            slot: self.slot,
            revision: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// How much has been recorded about an agent: what an agent list shows next to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentActivityCounts {
    #[serde(skip)]
    pub agent_id: AgentId,
    pub logs: u64,
    /// Locks it holds, live or expired but not yet swept.
    pub file_locks: u64,
    pub exceptions: u64,
}

impl AgentActivityCounts {
    /// Nothing recorded yet.
    pub fn none(agent_id: AgentId) -> Self {
        Self {
            agent_id,
            logs: 0,
            file_locks: 0,
            exceptions: 0,
        }
    }
}
