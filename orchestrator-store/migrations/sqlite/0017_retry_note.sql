-- What a person asked of a task's next attempts when they retried it.

ALTER TABLE tasks ADD COLUMN retry_note TEXT;
