//! A transcript: the entries of an agent's log or of a task's attempts, newest first, a
//! page at a time by cursor (`before`), filtered by kind (`type`) and text (`search`). The task page and the
//! agent page show it the same way.

use orchestrator_core::model::{AgentLog, LogCursor, LogQuery, LogType};

use super::{encode_component, keep};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::state::AppState;

/// Entries on one page.
const PAGE_ENTRIES: u32 = 50;

/// One entry.
pub(super) struct Entry {
    pub(super) kind: &'static str,
    pub(super) content: String,
    pub(super) at: String,
    pub(super) attempt: Option<u32>,
    /// What came with the entry (a tool call's input, a result's details), as JSON.
    pub(super) details: Option<String>,
}

impl From<&AgentLog> for Entry {
    fn from(log: &AgentLog) -> Self {
        Self {
            kind: log.log_type.as_str(),
            content: log.content.clone(),
            at: log.created_at.to_string(),
            attempt: log.attempt,
            details: log
                .metadata
                .as_ref()
                .filter(|metadata| !metadata.is_null())
                .map(|metadata| {
                    serde_json::to_string_pretty(metadata).unwrap_or_else(|_| metadata.to_string())
                }),
        }
    }
}

/// A page of a transcript with the links around it.
pub(super) struct Transcript {
    pub(super) entries: Vec<Entry>,
    /// Entries matching the filter, counted up to the store's limit.
    pub(super) total: u64,
    pub(super) total_capped: bool,
    /// The kind shown, if only one.
    pub(super) kind: Option<LogType>,
    /// The text the entries shown hold, if any was asked for.
    pub(super) search: String,
    /// The page with older entries.
    pub(super) older: Option<String>,
    /// The newest page, when this one is older.
    pub(super) newest: Option<String>,
    /// The page's address (without the page), where the kind filter's form goes.
    pub(super) path: String,
    /// What was wrong with the address's `before` or `type`.
    pub(super) problems: Vec<String>,
}

impl Transcript {
    /// The page of `query` (an agent's or a task's log) that `params` ask for, on the
    /// page at `path`.
    pub(super) async fn load(
        state: &AppState,
        mut query: LogQuery,
        params: &Params,
        path: &str,
    ) -> ApiResult<Self> {
        let mut problems = Vec::new();
        query.limit = PAGE_ENTRIES;
        query.log_type = params
            .text("type")
            .and_then(|kind| keep(kind.parse(), &mut problems));
        query.before = params
            .text("before")
            .and_then(|before| keep(before.parse::<LogCursor>(), &mut problems));
        let search = params.text("search").unwrap_or_default().to_owned();
        query.search = (!search.trim().is_empty()).then(|| search.clone());
        if let Err(err) = query.validate() {
            problems.push(super::explain(err).0);
            query.search = None;
        }
        let page = state.store.list_logs(&query).await?;
        let href = |before: Option<&LogCursor>| {
            let mut pairs = Vec::new();
            if let Some(kind) = query.log_type {
                pairs.push(format!("type={}", kind.as_str()));
            }
            if let Some(search) = &query.search {
                pairs.push(format!("search={}", encode_component(search)));
            }
            if let Some(before) = before {
                pairs.push(format!("before={}", encode_component(&before.to_string())));
            }
            let query = if pairs.is_empty() {
                String::new()
            } else {
                format!("?{}", pairs.join("&"))
            };
            format!("{path}{query}#transcript")
        };
        Ok(Self {
            entries: page.logs.iter().map(Entry::from).collect(),
            total: page.total_count,
            total_capped: page.total_count_capped,
            kind: query.log_type,
            search,
            older: page.next_cursor.as_ref().map(|cursor| href(Some(cursor))),
            newest: query.before.is_some().then(|| href(None)),
            path: path.to_owned(),
            problems,
        })
    }

    pub(super) fn kinds(&self) -> &'static [LogType] {
        LogType::ALL
    }
}
