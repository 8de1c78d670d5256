//! The orders the SQL stores express in `ORDER BY`, written out for the in-memory store.

use std::cmp::Ordering;

use crate::model::{Exception, Task};

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
