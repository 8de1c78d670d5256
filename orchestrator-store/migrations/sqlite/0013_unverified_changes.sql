-- no-transaction
-- A change that touches only files no check applies to (documentation, data) is
-- UNVERIFIED rather than failed, and a verification result keeps every stage's report.
-- SQLite cannot widen a column's check, so the tasks table is rebuilt with it (the
-- documented way: references are off while the table is swapped).

PRAGMA foreign_keys = OFF;

BEGIN;

CREATE TABLE tasks_next (
    id                    TEXT PRIMARY KEY NOT NULL,
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL,
    priority              INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    risk_level            TEXT NOT NULL CHECK (risk_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    status                TEXT NOT NULL CHECK (status IN ('QUEUED', 'ASSIGNED', 'IN_PROGRESS', 'VERIFYING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    assigned_agent_id     TEXT REFERENCES agents (id) ON DELETE SET NULL,
    assigned_at           INTEGER,
    branch_name           TEXT,
    commit_sha            TEXT,
    pr_url                TEXT,
    verification_status   TEXT NOT NULL CHECK (verification_status IN ('PENDING', 'PASSED', 'FAILED', 'UNVERIFIED')),
    verification_attempts INTEGER NOT NULL DEFAULT 0,
    estimated_complexity  TEXT CHECK (estimated_complexity IN ('SIMPLE', 'MEDIUM', 'COMPLEX')),
    files_hint            TEXT NOT NULL DEFAULT '[]',
    idempotency_key       TEXT UNIQUE,
    attempt               INTEGER NOT NULL DEFAULT 0,
    attempts_used         INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL,
    retry_count           INTEGER NOT NULL DEFAULT 0,
    not_before            INTEGER,
    lease_token           TEXT,
    lease_expires_at      INTEGER,
    cancel_requested      INTEGER NOT NULL DEFAULT 0,
    last_error            TEXT,
    revision              INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    completed_at          INTEGER,
    hidden_behind         TEXT
);
INSERT INTO tasks_next (
    id, title, description, priority, risk_level, status, assigned_agent_id, assigned_at,
    branch_name, commit_sha, pr_url, verification_status, verification_attempts,
    estimated_complexity, files_hint, idempotency_key, attempt, attempts_used, max_attempts,
    retry_count, not_before, lease_token, lease_expires_at, cancel_requested, last_error,
    revision, created_at, updated_at, completed_at, hidden_behind
)
SELECT
    id, title, description, priority, risk_level, status, assigned_agent_id, assigned_at,
    branch_name, commit_sha, pr_url, verification_status, verification_attempts,
    estimated_complexity, files_hint, idempotency_key, attempt, attempts_used, max_attempts,
    retry_count, not_before, lease_token, lease_expires_at, cancel_requested, last_error,
    revision, created_at, updated_at, completed_at, hidden_behind
FROM tasks;
DROP TABLE tasks;
-- Triggers of other tables name `tasks`, which is missing for this one statement: the
-- rename must not check them, nor rewrite what refers to the new table's old name.
PRAGMA legacy_alter_table = ON;
ALTER TABLE tasks_next RENAME TO tasks;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX tasks_queue ON tasks (status, priority, created_at, id);
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_updated ON tasks (updated_at);
CREATE INDEX tasks_assigned_agent ON tasks (assigned_agent_id);
CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX tasks_listing ON tasks (priority, created_at, id);
CREATE INDEX tasks_delayed ON tasks (not_before) WHERE status = 'QUEUED' AND not_before IS NOT NULL;
CREATE INDEX tasks_claim_order ON tasks (priority, created_at, id)
    WHERE status = 'QUEUED' AND hidden_behind IS NULL;
CREATE INDEX tasks_hidden_behind ON tasks (hidden_behind) WHERE hidden_behind IS NOT NULL;
CREATE TRIGGER tasks_unhide_off_the_queue AFTER UPDATE OF status ON tasks
    WHEN NEW.status <> 'QUEUED' AND NEW.hidden_behind IS NOT NULL
BEGIN
    UPDATE tasks SET hidden_behind = NULL WHERE id = NEW.id;
END;

ALTER TABLE verification_results ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verification_results ADD COLUMN stages TEXT NOT NULL DEFAULT '[]';

PRAGMA foreign_key_check;
COMMIT;

PRAGMA foreign_keys = ON;
