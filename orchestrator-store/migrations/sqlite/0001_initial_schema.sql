-- Initial schema, SQLite flavour: UUIDs as text, instants as milliseconds since the Unix
-- epoch, JSON as text. Every enum column is checked against its values.

CREATE TABLE runner_sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    working_dir   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE', 'REVOKED')),
    token_hash    TEXT NOT NULL UNIQUE,
    last_seen_at  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX runner_sessions_status_seen ON runner_sessions (status, last_seen_at);

CREATE TABLE tasks (
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
    verification_status   TEXT NOT NULL CHECK (verification_status IN ('PENDING', 'PASSED', 'FAILED')),
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
    completed_at          INTEGER
);
-- The queue's order, and the list orders of the API.
CREATE INDEX tasks_queue ON tasks (status, priority, created_at, id);
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_updated ON tasks (updated_at);
CREATE INDEX tasks_assigned_agent ON tasks (assigned_agent_id);
CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id        TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on_id  TEXT NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on_id)
);
CREATE INDEX task_dependencies_dependents ON task_dependencies (depends_on_id);

CREATE TABLE agents (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT,
    status             TEXT NOT NULL CHECK (status IN ('IDLE', 'WORKING', 'PAUSED', 'COMPLETED', 'FAILED', 'STUCK')),
    current_task_id    TEXT UNIQUE REFERENCES tasks (id) ON DELETE SET NULL,
    branch_name        TEXT,
    conversation_id    TEXT,
    total_tokens_used  INTEGER NOT NULL DEFAULT 0,
    last_activity_at   INTEGER,
    started_at         INTEGER,
    completed_at       INTEGER,
    tasks_completed    INTEGER NOT NULL DEFAULT 0,
    tasks_failed       INTEGER NOT NULL DEFAULT 0,
    is_local_runner    INTEGER NOT NULL DEFAULT 0,
    runner_session_id  TEXT REFERENCES runner_sessions (id) ON DELETE SET NULL,
    slot               INTEGER,
    revision           INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX agents_created ON agents (created_at, id);
CREATE INDEX agents_status ON agents (status, last_activity_at);
CREATE INDEX agents_runner_session ON agents (runner_session_id, created_at);

CREATE TABLE task_attempts (
    id                  TEXT PRIMARY KEY NOT NULL,
    task_id             TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number      INTEGER NOT NULL,
    agent_id            TEXT NOT NULL REFERENCES agents (id),
    runner_session_id   TEXT REFERENCES runner_sessions (id) ON DELETE SET NULL,
    lease_token         TEXT,
    lease_expires_at    INTEGER NOT NULL,
    started_at          INTEGER NOT NULL,
    ended_at            INTEGER,
    outcome             TEXT NOT NULL CHECK (outcome IN ('RUNNING', 'COMPLETED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    failure_reason      TEXT,
    commit_sha          TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL NOT NULL DEFAULT 0,
    UNIQUE (task_id, attempt_number)
);
CREATE INDEX task_attempts_agent ON task_attempts (agent_id);

CREATE TABLE file_locks (
    id             TEXT PRIMARY KEY NOT NULL,
    file_path      TEXT NOT NULL,
    agent_id       TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id        TEXT REFERENCES tasks (id) ON DELETE CASCADE,
    mode           TEXT NOT NULL CHECK (mode IN ('EXCLUSIVE', 'SHARED')),
    fencing_token  INTEGER NOT NULL UNIQUE,
    acquired_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX file_locks_path ON file_locks (file_path);
CREATE INDEX file_locks_agent ON file_locks (agent_id);
CREATE INDEX file_locks_expiry ON file_locks (expires_at);

CREATE TABLE verification_results (
    id                    TEXT PRIMARY KEY NOT NULL,
    task_id               TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number        INTEGER NOT NULL,
    passed                INTEGER NOT NULL,
    confidence_score      REAL NOT NULL,
    syntax_passed         INTEGER,
    types_passed          INTEGER,
    lint_passed           INTEGER,
    tests_passed          INTEGER,
    tests_total           INTEGER,
    tests_failed          INTEGER,
    semantic_score        REAL,
    semantic_explanation  TEXT,
    failures              TEXT NOT NULL DEFAULT '[]',
    recommendations       TEXT NOT NULL DEFAULT '[]',
    created_at            INTEGER NOT NULL,
    UNIQUE (task_id, attempt_number)
);

CREATE TABLE agent_logs (
    id          TEXT PRIMARY KEY NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id     TEXT REFERENCES tasks (id) ON DELETE CASCADE,
    log_type    TEXT NOT NULL CHECK (log_type IN ('THINKING', 'TOOL_CALL', 'TOOL_RESULT', 'ERROR', 'STATUS_CHANGE', 'INFO')),
    content     TEXT NOT NULL,
    metadata    TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX agent_logs_agent_time ON agent_logs (agent_id, created_at DESC, id DESC);
CREATE INDEX agent_logs_task ON agent_logs (task_id);
CREATE INDEX agent_logs_time ON agent_logs (created_at);

CREATE TABLE exceptions (
    id                TEXT PRIMARY KEY NOT NULL,
    exception_type    TEXT NOT NULL CHECK (exception_type IN ('VERIFICATION_FAILED', 'AGENT_STUCK', 'CONFLICT_DETECTED', 'HIGH_RISK_CODE', 'UNKNOWN_ERROR')),
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
CREATE INDEX exceptions_inbox ON exceptions (status, severity, created_at);
CREATE INDEX exceptions_task ON exceptions (task_id);
CREATE INDEX exceptions_agent ON exceptions (agent_id);
-- At most one unresolved exception per (type, task).
CREATE UNIQUE INDEX exceptions_one_unresolved ON exceptions (exception_type, task_id)
    WHERE status IN ('OPEN', 'ACKNOWLEDGED') AND task_id IS NOT NULL;

CREATE TABLE events (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT NOT NULL,
    task_id            TEXT,
    agent_id           TEXT,
    runner_session_id  TEXT,
    exception_id       TEXT,
    payload            TEXT NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE INDEX events_time ON events (created_at);
