-- Queued tasks behind a lock held for a while are set aside (hidden_behind names the
-- lock's path), so that claims walk only the tasks that may be free instead of every
-- blocked one. Setting aside is only ever an optimization: a task is taken back into the
-- walk whenever that may be needed — the lock's release, the task leaving the queue, its
-- files hint changing — and claims take back tasks behind expired locks and the claimer's
-- own.

ALTER TABLE tasks ADD COLUMN hidden_behind TEXT;

CREATE INDEX tasks_claim_order ON tasks (priority, created_at, id)
    WHERE status = 'QUEUED' AND hidden_behind IS NULL;
CREATE INDEX tasks_hidden_behind ON tasks (hidden_behind) WHERE hidden_behind IS NOT NULL;
CREATE INDEX task_path_keys_key ON task_path_keys (key);
CREATE INDEX task_path_ranges_start ON task_path_ranges (range_start);

CREATE TRIGGER file_locks_release_hidden AFTER DELETE ON file_locks
BEGIN
    UPDATE tasks SET hidden_behind = NULL WHERE hidden_behind = OLD.file_path;
END;

CREATE TRIGGER tasks_unhide_off_the_queue AFTER UPDATE OF status ON tasks
    WHEN NEW.status <> 'QUEUED' AND NEW.hidden_behind IS NOT NULL
BEGIN
    UPDATE tasks SET hidden_behind = NULL WHERE id = NEW.id;
END;

CREATE TRIGGER task_path_keys_unhide AFTER DELETE ON task_path_keys
BEGIN
    UPDATE tasks SET hidden_behind = NULL
        WHERE id = OLD.task_id AND hidden_behind IS NOT NULL;
END;

CREATE TRIGGER task_path_ranges_unhide AFTER DELETE ON task_path_ranges
BEGIN
    UPDATE tasks SET hidden_behind = NULL
        WHERE id = OLD.task_id AND hidden_behind IS NOT NULL;
END;
