use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AgentLogId, TaskId};
use crate::model::LogType;
use crate::time::Timestamp;

/// Longest log content kept, in characters (the original's limit); longer content is cut
/// and marked as cut.
pub const MAX_LOG_CONTENT_CHARS: usize = 50_000;

/// One entry of an agent's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentLog {
    pub id: AgentLogId,
    pub agent_id: AgentId,
    pub task_id: Option<TaskId>,
    pub log_type: LogType,
    pub content: String,
    pub metadata: Option<serde_json::Value>,
    /// Server time of arrival.
    pub created_at: Timestamp,
}

/// A log entry before the store stamps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAgentLog {
    pub agent_id: AgentId,
    #[serde(default)]
    pub task_id: Option<TaskId>,
    pub log_type: LogType,
    pub content: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

impl NewAgentLog {
    /// The stored entry; content past [`MAX_LOG_CONTENT_CHARS`] is cut with a marker that
    /// says how much was dropped.
    pub fn into_log(self, id: AgentLogId, now: Timestamp) -> AgentLog {
        AgentLog {
            id,
            agent_id: self.agent_id,
            task_id: self.task_id,
            log_type: self.log_type,
            content: cap_content(self.content),
            metadata: self.metadata,
            created_at: now,
        }
    }
}

fn cap_content(content: String) -> String {
    let total = content.chars().count();
    if total <= MAX_LOG_CONTENT_CHARS {
        return content;
    }
    let kept: String = content.chars().take(MAX_LOG_CONTENT_CHARS).collect();
    format!(
        "{kept}\n… [{} more characters not kept]",
        total - MAX_LOG_CONTENT_CHARS
    )
}

/// Position in an agent's log, newest first: entries strictly older than this come next.
/// Ties on `created_at` are broken by id, so no entry is skipped at a page boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogCursor {
    pub created_at: Timestamp,
    pub id: AgentLogId,
}

impl LogCursor {
    /// The cursor that continues after `log`.
    pub fn after(log: &AgentLog) -> Self {
        Self {
            created_at: log.created_at,
            id: log.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_content_is_cut_with_a_marker_on_a_character_boundary() {
        let content = "ü".repeat(MAX_LOG_CONTENT_CHARS + 10);
        let log = NewAgentLog {
            agent_id: AgentId::new(),
            task_id: None,
            log_type: LogType::Info,
            content,
            metadata: None,
        }
        .into_log(AgentLogId::new(), Timestamp::from_millis(0).unwrap());
        assert!(log.content.ends_with("[10 more characters not kept]"));
        assert!(log.content.starts_with("üü"));
    }
}
