-- Coordination: lock paths compared byte by byte (prefix ranges over the index), lock
-- lookups by task, fencing tokens that never repeat, and named leases that let several
-- server processes take turns (the supervisor). Matches sqlite/0002_coordination.sql.

ALTER TABLE file_locks ALTER COLUMN file_path TYPE TEXT COLLATE "C";
CREATE INDEX file_locks_task ON file_locks (task_id);

CREATE SEQUENCE file_lock_fencing;

CREATE TABLE named_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX agents_activity ON agents (last_activity_at);
