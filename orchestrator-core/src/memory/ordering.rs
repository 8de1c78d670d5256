//! The orders the SQL stores express in `ORDER BY`, written out for the in-memory store.

use std::cmp::Ordering;

use crate::model::{Exception, SortOrder, Task, TaskSort};

/// Compares two tasks by `sort_by`, then creation time, then id, all in `order`.
pub(super) fn compare_tasks(a: &Task, b: &Task, sort_by: TaskSort, order: SortOrder) -> Ordering {
    let primary = match sort_by {
        TaskSort::Priority => a.priority.cmp(&b.priority),
        TaskSort::CreatedAt => Ordering::Equal,
        TaskSort::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        TaskSort::Status => a.status.as_str().cmp(b.status.as_str()),
        TaskSort::Title => a.title.cmp(&b.title),
    };
    let ordering = primary.then_with(|| (a.created_at, a.id).cmp(&(b.created_at, b.id)));
    match order {
        SortOrder::Asc => ordering,
        SortOrder::Desc => ordering.reverse(),
    }
}

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
