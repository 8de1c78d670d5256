-- A task waiting for a dependency that failed or was cancelled is reported as
-- DEPENDENCY_FAILED. SQLite cannot widen a column's check, so the exceptions table (which
-- no other table refers to) is rebuilt with it.

CREATE TABLE exceptions_next (
    id                TEXT PRIMARY KEY NOT NULL,
    exception_type    TEXT NOT NULL CHECK (exception_type IN ('VERIFICATION_FAILED', 'AGENT_STUCK', 'CONFLICT_DETECTED', 'HIGH_RISK_CODE', 'DEPENDENCY_FAILED', 'UNKNOWN_ERROR')),
    agent_id          TEXT REFERENCES agents (id) ON DELETE SET NULL,
    task_id           TEXT REFERENCES tasks (id) ON DELETE CASCADE,
    severity          TEXT NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    title             TEXT NOT NULL,
    description       TEXT,
    suggested_action  TEXT,
    status            TEXT NOT NULL CHECK (status IN ('OPEN', 'ACKNOWLEDGED', 'RESOLVED', 'DISMISSED')),
    resolved_by       TEXT,
    resolved_at       INTEGER,
    resolution_notes  TEXT,
    occurrences       INTEGER NOT NULL DEFAULT 1,
    last_occurred_at  INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
INSERT INTO exceptions_next SELECT * FROM exceptions;
DROP TABLE exceptions;
ALTER TABLE exceptions_next RENAME TO exceptions;
CREATE INDEX exceptions_inbox ON exceptions (status, severity, created_at);
CREATE INDEX exceptions_task ON exceptions (task_id);
CREATE INDEX exceptions_agent ON exceptions (agent_id);
CREATE UNIQUE INDEX exceptions_one_unresolved ON exceptions (exception_type, task_id)
    WHERE status IN ('OPEN', 'ACKNOWLEDGED') AND task_id IS NOT NULL;
