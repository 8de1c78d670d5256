//! Keyset pagination of task lists: a page starts just after the last task of the page
//! before it, found by that task's sort values rather than by counting rows, so a page
//! costs the same deep in a large queue as at its start and rows added or removed in
//! between do not shift it.

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{SortOrder, Task, TaskSort};
use crate::time::Timestamp;

/// The value a task list is sorted by first, for one task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    /// Sorted by creation time, which every order ends with anyway.
    None,
    Priority(u8),
    Time(Timestamp),
    /// A status's wire name or a title, compared byte by byte.
    Text(String),
}

impl TaskSort {
    /// `task`'s value in this sort's first column.
    pub fn key(self, task: &Task) -> SortKey {
        match self {
            Self::Priority => SortKey::Priority(task.priority),
            Self::CreatedAt => SortKey::None,
            Self::UpdatedAt => SortKey::Time(task.updated_at),
            Self::Status => SortKey::Text(task.status.as_str().to_owned()),
            Self::Title => SortKey::Text(task.title.clone()),
        }
    }

    /// The order of `a` and `b` in a list sorted by this column, then creation time, then
    /// id, all in `order`.
    pub fn compare(self, a: &Task, b: &Task, order: SortOrder) -> Ordering {
        let ascending = (self.key(a), a.created_at, a.id).cmp(&(self.key(b), b.created_at, b.id));
        order.apply(ascending)
    }
}

impl SortOrder {
    /// `ascending` as this order has it.
    pub fn apply(self, ascending: Ordering) -> Ordering {
        match self {
            Self::Asc => ascending,
            Self::Desc => ascending.reverse(),
        }
    }
}

/// Where a page of tasks starts: just after the task with these sort values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCursor {
    pub key: SortKey,
    pub created_at: Timestamp,
    pub id: TaskId,
}

impl TaskCursor {
    /// The cursor of the page that follows `task` in a list sorted by `sort`.
    pub fn after(task: &Task, sort: TaskSort) -> Self {
        Self {
            key: sort.key(task),
            created_at: task.created_at,
            id: task.id,
        }
    }

    /// Whether `task` comes after this cursor in a list sorted by `sort` in `order`.
    pub fn precedes(&self, task: &Task, sort: TaskSort, order: SortOrder) -> bool {
        let ascending = (sort.key(task), task.created_at, task.id).cmp(&(
            self.key.clone(),
            self.created_at,
            self.id,
        ));
        order.apply(ascending) == Ordering::Greater
    }

    /// Reads a cursor written by its `Display` for a list sorted by `sort`; `field` names
    /// the parameter in the error.
    pub fn parse(text: &str, sort: TaskSort, field: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                field,
                "is not a page cursor of this list; follow the list's own next-page link, or \
                 leave it out to start at the first page",
            )
        };
        let mut parts = text.splitn(3, '~');
        let (Some(id), Some(millis), key) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let id = id.parse::<TaskId>().map_err(|_| invalid())?;
        let created_at = millis
            .parse::<i64>()
            .ok()
            .and_then(Timestamp::from_millis)
            .ok_or_else(invalid)?;
        let key = match (sort, key) {
            (TaskSort::CreatedAt, None) => SortKey::None,
            (TaskSort::Priority, Some(key)) => {
                SortKey::Priority(key.parse().ok().filter(|p| *p <= 3).ok_or_else(invalid)?)
            }
            (TaskSort::UpdatedAt, Some(key)) => SortKey::Time(
                key.parse::<i64>()
                    .ok()
                    .and_then(Timestamp::from_millis)
                    .ok_or_else(invalid)?,
            ),
            (TaskSort::Status | TaskSort::Title, Some(key)) => SortKey::Text(key.to_owned()),
            _ => return Err(invalid()),
        };
        Ok(Self {
            key,
            created_at,
            id,
        })
    }
}

/// `id~created~key`, the key last because a title may hold any character.
impl fmt::Display for TaskCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}~{}", self.id, self.created_at.as_millis())?;
        match &self.key {
            SortKey::None => Ok(()),
            SortKey::Priority(priority) => write!(f, "~{priority}"),
            SortKey::Time(at) => write!(f, "~{}", at.as_millis()),
            SortKey::Text(text) => write!(f, "~{text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewTask;

    fn task(title: &str, priority: u8, created: i64) -> Task {
        let mut new = NewTask::new(title, "d");
        new.priority = priority;
        new.into_task(
            TaskId::new(),
            Timestamp::from_millis(created).expect("a valid instant"),
        )
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote_for_every_sort() {
        let task = task("a~title~with tildes", 1, 1_700_000_000_123);
        for sort in TaskSort::ALL {
            let cursor = TaskCursor::after(&task, *sort);
            let read = TaskCursor::parse(&cursor.to_string(), *sort, "after").expect("reads back");
            assert_eq!(read, cursor, "{sort:?}");
        }
    }

    #[test]
    fn a_cursor_of_another_sort_or_garbage_is_refused_naming_the_field() {
        let task = task("t", 1, 1_700_000_000_000);
        let by_title = TaskCursor::after(&task, TaskSort::Title).to_string();
        let by_created = TaskCursor::after(&task, TaskSort::CreatedAt).to_string();
        for (text, sort) in [
            (by_created.as_str(), TaskSort::Title),
            (by_title.as_str(), TaskSort::CreatedAt),
            ("nonsense", TaskSort::Priority),
            ("", TaskSort::CreatedAt),
        ] {
            let err = TaskCursor::parse(text, sort, "after").expect_err("refused");
            assert!(err.to_string().contains("after"), "{err}");
        }
        let mut priority = TaskCursor::after(&task, TaskSort::Priority).to_string();
        priority.pop();
        priority.push('9');
        assert!(TaskCursor::parse(&priority, TaskSort::Priority, "after").is_err());
    }

    #[test]
    fn precedes_follows_the_list_order_in_both_directions() {
        let first = task("a", 0, 1_000);
        let second = task("b", 0, 2_000);
        let cursor = TaskCursor::after(&first, TaskSort::Priority);
        assert!(cursor.precedes(&second, TaskSort::Priority, SortOrder::Asc));
        assert!(!cursor.precedes(&first, TaskSort::Priority, SortOrder::Asc));
        assert!(!cursor.precedes(&second, TaskSort::Priority, SortOrder::Desc));
        let cursor = TaskCursor::after(&second, TaskSort::Title);
        assert!(cursor.precedes(&first, TaskSort::Title, SortOrder::Desc));
    }
}
