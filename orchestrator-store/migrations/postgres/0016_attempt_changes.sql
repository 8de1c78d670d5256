-- The changes an attempt's runner reports when it ends the attempt: the changed files
-- with their line counts (a JSON list) and the unified patch, as the runner cut it. One
-- row per attempt, written with the attempt's end, gone with its task.

CREATE TABLE attempt_changes (
    task_id          UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt_number   INTEGER NOT NULL,
    files            JSONB NOT NULL,
    omitted_files    INTEGER NOT NULL,
    patch            TEXT NOT NULL,
    truncated        BOOLEAN NOT NULL,
    max_patch_bytes  INTEGER NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, attempt_number)
);
