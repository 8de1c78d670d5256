-- A task's log is read newest first a page at a time: an index in that order lets a page
-- read only its own rows. It also serves every lookup by task the old index served.

CREATE INDEX agent_logs_task_time ON agent_logs (task_id, created_at DESC, id DESC);
DROP INDEX agent_logs_task;
