-- Task lists sort by priority, then age, by default: an index in that order lets a page
-- read only its own rows instead of sorting the whole table.

CREATE INDEX tasks_listing ON tasks (priority, created_at, id);
