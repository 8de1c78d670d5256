-- An attempt a stopping runner gave back ends as RETURNED: its task is queued again and
-- the attempt does not count against the task's attempts. SQLite cannot change a column's
-- check, so the table is rebuilt with the wider one (no other table refers to it).

CREATE TABLE task_attempts_next (
    id                  TEXT PRIMARY KEY NOT NULL,
    task_id             TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number      INTEGER NOT NULL,
    agent_id            TEXT NOT NULL REFERENCES agents (id),
    runner_session_id   TEXT REFERENCES runner_sessions (id) ON DELETE SET NULL,
    lease_token         TEXT,
    lease_expires_at    INTEGER NOT NULL,
    started_at          INTEGER NOT NULL,
    ended_at            INTEGER,
    outcome             TEXT NOT NULL CHECK (outcome IN ('RUNNING', 'COMPLETED', 'FAILED', 'EXPIRED', 'CANCELLED', 'RETURNED')),
    failure_reason      TEXT,
    commit_sha          TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL NOT NULL DEFAULT 0,
    UNIQUE (task_id, attempt_number)
);
INSERT INTO task_attempts_next SELECT * FROM task_attempts;
DROP TABLE task_attempts;
ALTER TABLE task_attempts_next RENAME TO task_attempts;
CREATE INDEX task_attempts_agent ON task_attempts (agent_id);
