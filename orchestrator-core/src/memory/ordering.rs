//! The orders the SQL stores express in `ORDER BY`, written out for the in-memory store.

use std::cmp::Ordering;

use crate::model::{Agent, AgentSort, Exception, SortOrder, Task};

/// Whether `needle` (lower case) occurs in the task's title or description, ignoring
/// the case of ASCII letters.
pub(super) fn matches_search(task: &Task, needle: &str) -> bool {
    task.title.to_ascii_lowercase().contains(needle)
        || task.description.to_ascii_lowercase().contains(needle)
}

/// Most severe first, then newest, then by id.
pub(super) fn compare_exceptions(a: &Exception, b: &Exception) -> Ordering {
    a.severity
        .urgency_rank()
        .cmp(&b.severity.urgency_rank())
        .then_with(|| (b.created_at, b.id).cmp(&(a.created_at, a.id)))
}

/// Whether `needle` (lower case) occurs in the agent's name or id, or in the title of
/// its current task, ignoring the case of ASCII letters.
pub(super) fn agent_matches_search(agent: &Agent, task: Option<&Task>, needle: &str) -> bool {
    agent
        .name
        .as_ref()
        .is_some_and(|name| name.to_ascii_lowercase().contains(needle))
        || agent.id.to_string().contains(needle)
        || task.is_some_and(|task| task.title.to_ascii_lowercase().contains(needle))
}

/// An agent list's order: the chosen column (unnamed slots last in either direction),
/// then creation time and id, all in the chosen direction.
pub(super) fn compare_agents(a: &Agent, b: &Agent, sort: AgentSort, order: SortOrder) -> Ordering {
    let directed = |ordering: Ordering| match order {
        SortOrder::Asc => ordering,
        SortOrder::Desc => ordering.reverse(),
    };
    let column = match sort {
        AgentSort::CreatedAt => Ordering::Equal,
        AgentSort::Name => match (&a.name, &b.name) {
            (Some(x), Some(y)) => directed(x.as_bytes().cmp(y.as_bytes())),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        AgentSort::Status => directed(a.status.as_str().cmp(b.status.as_str())),
    };
    column.then_with(|| directed((a.created_at, a.id).cmp(&(b.created_at, b.id))))
}
