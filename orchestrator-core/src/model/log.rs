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
    /// The attempt of its task it belongs to (`None` for an entry about no task; 0 for
    /// one written before the task's first attempt).
    pub attempt: Option<u32>,
    /// Its place in its agent's log: the agent's entries are numbered 1, 2, 3, … in the
    /// order they were written (a batch in its own order). The store assigns it.
    pub sequence: u64,
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
            attempt: None,
            sequence: 0,
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

/// A position in a log, handed back by clients to page or follow. An agent's log is
/// ordered by `sequence`, a task's by `(attempt, sequence)`; a cursor names the entry it
/// continues from, so no entry is skipped or shown twice at a page boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LogCursor {
    /// After (or before) this entry.
    Entry { attempt: u32, sequence: u64 },
    /// Before (or after) this instant of arrival: the form clients may write by hand.
    Instant(Timestamp),
}

impl LogCursor {
    /// The cursor that continues from `log`.
    pub fn after(log: &AgentLog) -> Self {
        Self::Entry {
            attempt: log.attempt.unwrap_or(0),
            sequence: log.sequence,
        }
    }
}

/// The text form `<attempt>.<sequence>`, which clients hand back as `before` or `after`.
impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entry { attempt, sequence } => write!(f, "{attempt}.{sequence}"),
            Self::Instant(at) => write!(f, "{at}"),
        }
    }
}

/// In API documents: an entry's `<attempt>.<sequence>`, or an instant.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LogCursor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let entry = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,9}\\.[0-9]{1,18}$"))
            .examples([serde_json::json!("2.41")]);
        OneOfBuilder::new()
            .item(entry)
            .item(<Timestamp as utoipa::PartialSchema>::schema())
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LogCursor {}

/// Parses the text form, or an ISO-8601 instant.
impl FromStr for LogCursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some((attempt, sequence)) = s.split_once('.')
            && let (Ok(attempt), Ok(sequence)) = (attempt.parse(), sequence.parse())
        {
            return Ok(Self::Entry { attempt, sequence });
        }
        s.parse().map(Self::Instant).map_err(|_| {
            Error::invalid(
                "cursor",
                format!(
                    "{s:?} is neither a cursor from nextCursor (like 2.41) nor an ISO-8601 instant"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_instants_are_accepted() {
        let cursor = LogCursor::Entry {
            attempt: 2,
            sequence: 41,
        };
        assert_eq!(cursor.to_string(), "2.41");
        assert_eq!("2.41".parse::<LogCursor>().unwrap(), cursor);
        let instant: LogCursor = "2023-11-14T22:13:20.123Z".parse().unwrap();
        assert_eq!(
            instant,
            LogCursor::Instant(Timestamp::from_millis(1_700_000_000_123).unwrap())
        );
        for bad in ["yesterday", "2.x", "-1.4", ""] {
            let err = bad.parse::<LogCursor>().unwrap_err();
            assert!(err.to_string().contains("nextCursor"), "{bad}: {err}");
        }
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
