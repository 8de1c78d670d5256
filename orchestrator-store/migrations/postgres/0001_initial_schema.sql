-- Initial schema, PostgreSQL flavour: native UUID, TIMESTAMPTZ and JSONB columns. Every
-- enum column is checked against its values. Matches sqlite/0001_initial_schema.sql.

CREATE TABLE runner_sessions (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    working_dir   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE', 'REVOKED')),
    token_hash    TEXT NOT NULL UNIQUE,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX runner_sessions_status_seen ON runner_sessions (status, last_seen_at);

CREATE TABLE tasks (
    id                    UUID PRIMARY KEY,
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL,
    priority              SMALLINT NOT NULL CHECK (priority BETWEEN 0 AND 3),
    risk_level            TEXT NOT NULL CHECK (risk_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    status                TEXT NOT NULL CHECK (status IN ('QUEUED', 'ASSIGNED', 'IN_PROGRESS', 'VERIFYING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    assigned_agent_id     UUID,
    assigned_at           TIMESTAMPTZ,
    branch_name           TEXT,
    commit_sha            TEXT,
    pr_url                TEXT,
    verification_status   TEXT NOT NULL CHECK (verification_status IN ('PENDING', 'PASSED', 'FAILED')),
    verification_attempts INTEGER NOT NULL DEFAULT 0,
    estimated_complexity  TEXT CHECK (estimated_complexity IN ('SIMPLE', 'MEDIUM', 'COMPLEX')),
    files_hint            JSONB NOT NULL DEFAULT '[]',
    idempotency_key       TEXT UNIQUE,
    attempt               INTEGER NOT NULL DEFAULT 0,
    attempts_used         INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL,
    retry_count           INTEGER NOT NULL DEFAULT 0,
    not_before            TIMESTAMPTZ,
    lease_token           UUID,
    lease_expires_at      TIMESTAMPTZ,
    cancel_requested      BOOLEAN NOT NULL DEFAULT FALSE,
    last_error            TEXT,
    revision              BIGINT NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    completed_at          TIMESTAMPTZ
);
-- The queue's order, and the list orders of the API.
CREATE INDEX tasks_queue ON tasks (status, priority, created_at, id);
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_updated ON tasks (updated_at);
CREATE INDEX tasks_assigned_agent ON tasks (assigned_agent_id);
CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

CREATE TABLE task_dependencies (
    task_id        UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on_id  UUID NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on_id)
);
CREATE INDEX task_dependencies_dependents ON task_dependencies (depends_on_id);

CREATE TABLE agents (
    id                 UUID PRIMARY KEY,
    name               TEXT,
    status             TEXT NOT NULL CHECK (status IN ('IDLE', 'WORKING', 'PAUSED', 'COMPLETED', 'FAILED', 'STUCK')),
    current_task_id    UUID UNIQUE REFERENCES tasks (id) ON DELETE SET NULL,
    branch_name        TEXT,
    conversation_id    TEXT,
    total_tokens_used  BIGINT NOT NULL DEFAULT 0,
    last_activity_at   TIMESTAMPTZ,
    started_at         TIMESTAMPTZ,
    completed_at       TIMESTAMPTZ,
    tasks_completed    INTEGER NOT NULL DEFAULT 0,
    tasks_failed       INTEGER NOT NULL DEFAULT 0,
    is_local_runner    BOOLEAN NOT NULL DEFAULT FALSE,
    runner_session_id  UUID REFERENCES runner_sessions (id) ON DELETE SET NULL,
    slot               INTEGER,
    revision           BIGINT NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_created ON agents (created_at, id);
ALTER TABLE tasks ADD CONSTRAINT tasks_assigned_agent_fk
    FOREIGN KEY (assigned_agent_id) REFERENCES agents (id) ON DELETE SET NULL;
CREATE INDEX agents_status ON agents (status, last_activity_at);
CREATE INDEX agents_runner_session ON agents (runner_session_id, created_at);

CREATE TABLE task_attempts (
    id                  UUID PRIMARY KEY,
    task_id             UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number      INTEGER NOT NULL,
    agent_id            UUID NOT NULL REFERENCES agents (id),
    runner_session_id   UUID REFERENCES runner_sessions (id) ON DELETE SET NULL,
    lease_token         UUID,
    lease_expires_at    TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    ended_at            TIMESTAMPTZ,
    outcome             TEXT NOT NULL CHECK (outcome IN ('RUNNING', 'COMPLETED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    failure_reason      TEXT,
    commit_sha          TEXT,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens   BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens  BIGINT NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (task_id, attempt_number)
);
CREATE INDEX task_attempts_agent ON task_attempts (agent_id);

CREATE TABLE file_locks (
    id             UUID PRIMARY KEY,
    file_path      TEXT NOT NULL,
    agent_id       UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id        UUID REFERENCES tasks (id) ON DELETE CASCADE,
    mode           TEXT NOT NULL CHECK (mode IN ('EXCLUSIVE', 'SHARED')),
    fencing_token  BIGINT NOT NULL UNIQUE,
    acquired_at    TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX file_locks_path ON file_locks (file_path);
CREATE INDEX file_locks_agent ON file_locks (agent_id);
CREATE INDEX file_locks_expiry ON file_locks (expires_at);

CREATE TABLE verification_results (
    id                    UUID PRIMARY KEY,
    task_id               UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number        INTEGER NOT NULL,
    passed                BOOLEAN NOT NULL,
    confidence_score      DOUBLE PRECISION NOT NULL,
    syntax_passed         BOOLEAN,
    types_passed          BOOLEAN,
    lint_passed           BOOLEAN,
    tests_passed          BOOLEAN,
    tests_total           INTEGER,
    tests_failed          INTEGER,
    semantic_score        DOUBLE PRECISION,
    semantic_explanation  TEXT,
    failures              JSONB NOT NULL DEFAULT '[]',
    recommendations       JSONB NOT NULL DEFAULT '[]',
    created_at            TIMESTAMPTZ NOT NULL,
    UNIQUE (task_id, attempt_number)
);

CREATE TABLE agent_logs (
    id          UUID PRIMARY KEY,
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    task_id     UUID REFERENCES tasks (id) ON DELETE CASCADE,
    log_type    TEXT NOT NULL CHECK (log_type IN ('THINKING', 'TOOL_CALL', 'TOOL_RESULT', 'ERROR', 'STATUS_CHANGE', 'INFO')),
    content     TEXT NOT NULL,
    metadata    JSONB,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_logs_agent_time ON agent_logs (agent_id, created_at DESC, id DESC);
CREATE INDEX agent_logs_task ON agent_logs (task_id);
CREATE INDEX agent_logs_time ON agent_logs (created_at);

CREATE TABLE exceptions (
    id                UUID PRIMARY KEY,
    exception_type    TEXT NOT NULL CHECK (exception_type IN ('VERIFICATION_FAILED', 'AGENT_STUCK', 'CONFLICT_DETECTED', 'HIGH_RISK_CODE', 'UNKNOWN_ERROR')),
    agent_id          UUID REFERENCES agents (id) ON DELETE SET NULL,
    task_id           UUID REFERENCES tasks (id) ON DELETE CASCADE,
    severity          TEXT NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    title             TEXT NOT NULL,
    description       TEXT,
    suggested_action  TEXT,
    status            TEXT NOT NULL CHECK (status IN ('OPEN', 'ACKNOWLEDGED', 'RESOLVED', 'DISMISSED')),
    resolved_by       TEXT,
    resolved_at       TIMESTAMPTZ,
    resolution_notes  TEXT,
    occurrences       INTEGER NOT NULL DEFAULT 1,
    last_occurred_at  TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX exceptions_inbox ON exceptions (status, severity, created_at);
CREATE INDEX exceptions_task ON exceptions (task_id);
CREATE INDEX exceptions_agent ON exceptions (agent_id);
-- At most one unresolved exception per (type, task).
CREATE UNIQUE INDEX exceptions_one_unresolved ON exceptions (exception_type, task_id)
    WHERE status IN ('OPEN', 'ACKNOWLEDGED') AND task_id IS NOT NULL;

CREATE TABLE events (
    seq                BIGSERIAL PRIMARY KEY,
    kind               TEXT NOT NULL,
    task_id            UUID,
    agent_id           UUID,
    runner_session_id  UUID,
    exception_id       UUID,
    payload            JSONB NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_time ON events (created_at);
