use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AgentId, AgentLogId, TaskId};
use crate::model::LogType;
use crate::time::Timestamp;

/// Longest log content kept, in characters; longer content is cut and marked as cut.
pub const MAX_LOG_CONTENT_CHARS: usize = 50_000;

/// One entry of an agent's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The text form `<ISO instant>~<entry id>`, which clients hand back as `before`.
impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}~{}", self.created_at, self.id)
    }
}

/// Parses the text form, or a bare ISO instant, which means "everything strictly older
/// than this instant".
impl FromStr for LogCursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                "before",
                format!("{s:?} is neither an ISO-8601 instant nor a cursor from nextCursor"),
            )
        };
        let (instant, id) = match s.trim().split_once('~') {
            Some((instant, id)) => (instant, id.parse().map_err(|_| invalid())?),
            None => (s.trim(), AgentLogId::from(uuid::Uuid::nil())),
        };
        Ok(Self {
            created_at: instant.parse().map_err(|_| invalid())?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bare_instants_mean_strictly_older() {
        let cursor = LogCursor {
            created_at: Timestamp::from_millis(1_700_000_000_123).unwrap(),
            id: AgentLogId::new(),
        };
        assert_eq!(cursor.to_string().parse::<LogCursor>().unwrap(), cursor);
        let bare: LogCursor = "2023-11-14T22:13:20.123Z".parse().unwrap();
        assert_eq!(bare.created_at, cursor.created_at);
        assert_eq!(bare.id, AgentLogId::from(uuid::Uuid::nil()));
        assert!("yesterday".parse::<LogCursor>().is_err());
        assert!(
            "2023-11-14T22:13:20.123Z~nope"
                .parse::<LogCursor>()
                .is_err()
        );
    }

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
