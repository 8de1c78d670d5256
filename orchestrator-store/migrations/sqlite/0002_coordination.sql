-- Coordination: lock lookups by task, fencing tokens that never repeat, and named leases
-- that let several server processes take turns (the supervisor).

CREATE INDEX file_locks_task ON file_locks (task_id);

CREATE TABLE counters (
    name   TEXT PRIMARY KEY NOT NULL,
    value  INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('file_lock_fencing', 0);

CREATE TABLE named_leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE INDEX agents_activity ON agents (last_activity_at);
