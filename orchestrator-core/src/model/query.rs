//! Filters, sorting and pagination of list queries, validated before they reach a store.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AgentId, RunnerSessionId, TaskId};
use crate::model::{
    AgentStatus, ExceptionSeverity, ExceptionStatus, ExceptionType, LogCursor, LogType, TaskStatus,
};

const MAX_SEARCH_CHARS: usize = 200;

/// One page of a list, with the total count of matching rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_count: u64,
    pub limit: u32,
    pub offset: u64,
}

impl<T> Page<T> {
    /// Whether rows follow this page.
    pub fn has_more(&self) -> bool {
        self.offset + (self.items.len() as u64) < self.total_count
    }
}

wire_enum!(
    /// Ascending or descending (`sortOrder` in the API).
    #[derive(Default)]
    SortOrder, "sortOrder" {
        #[default]
        Asc = "asc",
        Desc = "desc",
    }
);

wire_enum!(
    /// Column a task list is sorted by (`sortBy` in the API).
    TaskSort, "sortBy" {
        /// Priority, then creation time: the queue's own order.
        Priority = "priority",
        /// Creation time.
        CreatedAt = "createdAt",
        /// Last change.
        UpdatedAt = "updatedAt",
        /// Status.
        Status = "status",
        /// Title.
        Title = "title",
    }
);

/// Which tasks to list.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub priority: Option<u8>,
    /// Case-insensitive substring of title or description.
    pub search: Option<String>,
    /// Only tasks whose id begins with this.
    pub id_prefix: Option<super::IdPrefix>,
    pub sort_by: TaskSort,
    pub sort_order: SortOrder,
    pub limit: u32,
    pub offset: u64,
    /// Starts the page just after this task's place in the list (keyset pagination;
    /// with `offset`, the rows after the cursor are skipped).
    pub after: Option<super::TaskCursor>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            status: None,
            priority: None,
            search: None,
            id_prefix: None,
            sort_by: TaskSort::Priority,
            sort_order: SortOrder::Asc,
            limit: 50,
            offset: 0,
            after: None,
        }
    }
}

impl TaskQuery {
    /// Checks limits (1..=100), priority and search length.
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit, 100)?;
        if let Some(priority) = self.priority
            && priority > 3
        {
            return Err(Error::invalid("priority", "must be 0 to 3"));
        }
        if let Some(search) = &self.search {
            super::check_max_chars("search", search, MAX_SEARCH_CHARS)?;
        }
        Ok(())
    }

    /// The search text with ASCII letters lower-cased, if any is left after trimming.
    /// Search ignores the case of ASCII letters and matches other characters exactly, the
    /// same on every backend.
    pub fn search_needle(&self) -> Option<String> {
        needle(self.search.as_deref())
    }
}

/// `search` trimmed, with ASCII letters lower-cased, if anything is left: search ignores
/// the case of ASCII letters and matches other characters exactly, the same on every
/// backend.
fn needle(search: Option<&str>) -> Option<String> {
    search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
}

wire_enum!(
    /// Column an agent list is sorted by (`sortBy` on `GET /api/agents`).
    AgentSort, "sortBy" {
        /// Creation time (ties broken by id).
        CreatedAt = "createdAt",
        /// Name; slots without one come last.
        Name = "name",
        /// Status.
        Status = "status",
    }
);

impl AgentSort {
    /// The order a list takes when none is asked for: newest first by creation time,
    /// A to Z by name or status.
    pub fn default_order(self) -> SortOrder {
        match self {
            Self::CreatedAt => SortOrder::Desc,
            Self::Name | Self::Status => SortOrder::Asc,
        }
    }
}

/// Which agents to list, and in which order (newest first unless asked otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentQuery {
    pub status: Option<AgentStatus>,
    pub runner_session_id: Option<RunnerSessionId>,
    /// Only agents whose id begins with this.
    pub id_prefix: Option<super::IdPrefix>,
    /// Case-insensitive substring of the name, the id, or the current task's title.
    pub search: Option<String>,
    pub sort_by: AgentSort,
    pub sort_order: SortOrder,
    pub limit: u32,
    pub offset: u64,
}

impl Default for AgentQuery {
    fn default() -> Self {
        Self {
            status: None,
            runner_session_id: None,
            id_prefix: None,
            search: None,
            sort_by: AgentSort::CreatedAt,
            sort_order: SortOrder::Desc,
            limit: 50,
            offset: 0,
        }
    }
}

impl AgentQuery {
    /// Checks the limit (1..=100) and the search's length.
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit, 100)?;
        if let Some(search) = &self.search {
            super::check_max_chars("search", search, MAX_SEARCH_CHARS)?;
        }
        Ok(())
    }

    /// The search text with ASCII letters lower-cased, if any is left after trimming.
    pub fn search_needle(&self) -> Option<String> {
        needle(self.search.as_deref())
    }
}

/// Which log entries to list: an agent's (in the order of their `sequence`), a task's (by
/// attempt, then sequence), or an agent's on one task. Newest first, or with `after`
/// oldest first from a position on, to follow the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    pub agent_id: Option<AgentId>,
    pub task_id: Option<TaskId>,
    pub log_type: Option<LogType>,
    /// Entries strictly older than this position, newest first.
    pub before: Option<LogCursor>,
    /// Entries strictly newer than this position, oldest first.
    pub after: Option<LogCursor>,
    /// Only entries whose text holds this (ignoring the case of ASCII letters).
    pub search: Option<String>,
    pub limit: u32,
}

impl LogQuery {
    /// The newest `limit` entries of `agent_id`.
    pub fn new(agent_id: AgentId, limit: u32) -> Self {
        Self {
            agent_id: Some(agent_id),
            task_id: None,
            log_type: None,
            before: None,
            after: None,
            search: None,
            limit,
        }
    }

    /// The search text with ASCII letters lower-cased, if any is left after trimming.
    pub fn search_needle(&self) -> Option<String> {
        needle(self.search.as_deref())
    }

    /// Whether the log is ordered by the agent's sequence (an agent is named) rather
    /// than by the task's attempts.
    pub fn by_agent(&self) -> bool {
        self.agent_id.is_some()
    }

    /// The sort key of `log` in this query's order, oldest first.
    pub fn key(&self, log: &super::AgentLog) -> (u32, u64) {
        self.position(log.attempt.unwrap_or(0), log.sequence)
    }

    /// The sort key of the entry at `attempt` and `sequence` (an agent's log ignores the
    /// attempt).
    fn position(&self, attempt: u32, sequence: u64) -> (u32, u64) {
        if self.by_agent() {
            (0, sequence)
        } else {
            (attempt, sequence)
        }
    }

    /// Whether `log` lies strictly after `after` and strictly before `before`, where given.
    pub fn between_cursors(&self, log: &super::AgentLog) -> bool {
        let compared = |cursor: LogCursor| match cursor {
            LogCursor::Entry { attempt, sequence } => {
                self.key(log).cmp(&self.position(attempt, sequence))
            }
            LogCursor::Instant(at) => log.created_at.cmp(&at),
        };
        self.before
            .is_none_or(|c| compared(c) == std::cmp::Ordering::Less)
            && self
                .after
                .is_none_or(|c| compared(c) == std::cmp::Ordering::Greater)
    }

    /// The newest `limit` entries about `task_id`, whichever agent wrote them.
    pub fn for_task(task_id: TaskId, limit: u32) -> Self {
        Self {
            agent_id: None,
            task_id: Some(task_id),
            ..Self::new(AgentId::new(), limit)
        }
    }

    /// Checks the limit (1..=500) and that an agent or a task is named.
    pub fn validate(&self) -> Result<()> {
        if self.agent_id.is_none() && self.task_id.is_none() {
            return Err(Error::invalid(
                "agentId",
                "name the agent or the task whose log to list",
            ));
        }
        if let Some(search) = &self.search {
            super::check_max_chars("search", search, MAX_SEARCH_CHARS)?;
        }
        check_limit(self.limit, 500)
    }
}

/// Most log entries a page counts: a page of a long history does not count all of it.
pub const LOG_COUNT_LIMIT: u64 = 10_000;

/// A page of log entries, newest first (oldest first when following with `after`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub logs: Vec<super::AgentLog>,
    /// Where the next page starts (older entries; with `after`, newer ones), if there
    /// is one.
    pub next_cursor: Option<LogCursor>,
    /// Entries matching the query's filters, over all pages, counted up to
    /// [`LOG_COUNT_LIMIT`].
    pub total_count: u64,
    /// More entries match than were counted.
    pub total_count_capped: bool,
}

impl LogPage {
    /// The page made of up to `limit + 1` rows fetched newest first (the extra row, if
    /// present, only says that another page follows) and `counted`, the matching entries
    /// counted up to one past [`LOG_COUNT_LIMIT`].
    pub fn from_fetched(mut logs: Vec<super::AgentLog>, limit: u32, counted: u64) -> Self {
        let next_cursor = if logs.len() > limit as usize {
            logs.truncate(limit as usize);
            logs.last().map(LogCursor::after)
        } else {
            None
        };
        Self {
            logs,
            next_cursor,
            total_count: counted.min(LOG_COUNT_LIMIT),
            total_count_capped: counted > LOG_COUNT_LIMIT,
        }
    }
}

/// Which exceptions to list: most urgent first, then newest, over all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionQuery {
    /// `None` lists every status.
    pub status: Option<ExceptionStatus>,
    pub severity: Option<ExceptionSeverity>,
    pub exception_type: Option<ExceptionType>,
    pub task_id: Option<TaskId>,
    pub agent_id: Option<AgentId>,
    pub limit: u32,
    pub offset: u64,
}

impl Default for ExceptionQuery {
    fn default() -> Self {
        Self {
            status: Some(ExceptionStatus::Open),
            severity: None,
            exception_type: None,
            task_id: None,
            agent_id: None,
            limit: 50,
            offset: 0,
        }
    }
}

impl ExceptionQuery {
    /// Checks the limit (1..=100).
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit, 100)
    }
}

fn check_limit(limit: u32, max: u32) -> Result<()> {
    if limit == 0 || limit > max {
        return Err(Error::invalid(
            "limit",
            format!("must be 1 to {max}, got {limit}"),
        ));
    }
    Ok(())
}
