use serde::{Deserialize, Serialize};

use super::{check_max_chars, check_not_blank};
use crate::error::Result;
use crate::ids::{AgentId, ExceptionId, TaskId};
use crate::model::{ExceptionSeverity, ExceptionStatus, ExceptionType};
use crate::time::Timestamp;

const MAX_TITLE_CHARS: usize = 500;
const MAX_TEXT_CHARS: usize = 50_000;
/// Longest resolution note accepted.
pub(crate) const MAX_RESOLUTION_NOTES_CHARS: usize = 5_000;
/// Longest `resolvedBy` accepted.
pub(crate) const MAX_RESOLVED_BY_CHARS: usize = 255;

/// Something that needs a human, in the one inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    pub id: ExceptionId,
    pub exception_type: ExceptionType,
    pub agent_id: Option<AgentId>,
    pub task_id: Option<TaskId>,
    pub severity: ExceptionSeverity,
    pub title: String,
    pub description: Option<String>,
    pub suggested_action: Option<String>,
    pub status: ExceptionStatus,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolution_notes: Option<String>,
    /// How many times the same condition was raised while this exception was unresolved.
    pub occurrences: u32,
    pub last_occurred_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What it takes to raise an exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewException {
    pub exception_type: ExceptionType,
    pub severity: ExceptionSeverity,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub suggested_action: Option<String>,
    #[serde(default)]
    pub agent_id: Option<AgentId>,
    #[serde(default)]
    pub task_id: Option<TaskId>,
}

impl NewException {
    /// An exception with only the required fields.
    pub fn new(
        exception_type: ExceptionType,
        severity: ExceptionSeverity,
        title: impl Into<String>,
    ) -> Self {
        Self {
            exception_type,
            severity,
            title: title.into(),
            description: None,
            suggested_action: None,
            agent_id: None,
            task_id: None,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        check_not_blank("title", &self.title)?;
        check_max_chars("title", &self.title, MAX_TITLE_CHARS)?;
        if let Some(text) = &self.description {
            check_max_chars("description", text, MAX_TEXT_CHARS)?;
        }
        if let Some(text) = &self.suggested_action {
            check_max_chars("suggestedAction", text, MAX_TEXT_CHARS)?;
        }
        Ok(())
    }

    /// The OPEN exception this raises.
    pub fn into_exception(self, id: ExceptionId, now: Timestamp) -> Exception {
        Exception {
            id,
            exception_type: self.exception_type,
            agent_id: self.agent_id,
            task_id: self.task_id,
            severity: self.severity,
            title: self.title,
            description: self.description,
            suggested_action: self.suggested_action,
            status: ExceptionStatus::Open,
            resolved_by: None,
            resolved_at: None,
            resolution_notes: None,
            occurrences: 1,
            last_occurred_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}
