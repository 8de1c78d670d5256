-- Matches sqlite/0009_hidden_behind_locks.sql. Queued tasks behind a lock held for a
-- while are set aside (hidden_behind names the lock's path), so that claims walk only the
-- tasks that may be free instead of every blocked one. Setting aside is only ever an
-- optimization: a task is taken back into the walk whenever that may be needed — the
-- lock's release, the task leaving the queue, its files hint changing — and claims take
-- back tasks behind expired locks and the claimer's own.

ALTER TABLE tasks ADD COLUMN hidden_behind TEXT COLLATE "C";

CREATE INDEX tasks_claim_order ON tasks (priority, created_at, id)
    WHERE status = 'QUEUED' AND hidden_behind IS NULL;
CREATE INDEX tasks_hidden_behind ON tasks (hidden_behind) WHERE hidden_behind IS NOT NULL;
CREATE INDEX task_path_keys_key ON task_path_keys (key);
CREATE INDEX task_path_ranges_start ON task_path_ranges (range_start);

CREATE FUNCTION orchestrator_release_hidden() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET hidden_behind = NULL WHERE hidden_behind = OLD.file_path;
    RETURN NULL;
END
$$;

CREATE TRIGGER file_locks_release_hidden AFTER DELETE ON file_locks
    FOR EACH ROW EXECUTE FUNCTION orchestrator_release_hidden();

CREATE FUNCTION orchestrator_unhide_off_the_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.hidden_behind := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_unhide_off_the_queue BEFORE UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.status <> 'QUEUED' AND NEW.hidden_behind IS NOT NULL)
    EXECUTE FUNCTION orchestrator_unhide_off_the_queue();

CREATE FUNCTION orchestrator_unhide_edited() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET hidden_behind = NULL
        WHERE id = OLD.task_id AND hidden_behind IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_path_keys_unhide AFTER DELETE ON task_path_keys
    FOR EACH ROW EXECUTE FUNCTION orchestrator_unhide_edited();

CREATE TRIGGER task_path_ranges_unhide AFTER DELETE ON task_path_ranges
    FOR EACH ROW EXECUTE FUNCTION orchestrator_unhide_edited();
