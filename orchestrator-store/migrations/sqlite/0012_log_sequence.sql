-- Log entries are ordered by number, not by the time they arrived (a batch shares one
-- instant): each agent's entries are numbered 1, 2, 3, … in the order they were written
-- (sequence), and an entry about a task carries the attempt it belongs to. A task's log
-- is read by (attempt, sequence), an agent's by sequence. The agent's row keeps the last
-- number given, so numbers never repeat once old entries are pruned, and writers of one
-- agent's entries take turns on that row.

ALTER TABLE agents ADD COLUMN log_sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_logs ADD COLUMN attempt INTEGER;
ALTER TABLE agent_logs ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;

UPDATE agent_logs SET sequence = numbered.position
FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY agent_id ORDER BY created_at, id) AS position
    FROM agent_logs
) AS numbered
WHERE agent_logs.id = numbered.id;

UPDATE agents SET log_sequence = COALESCE((
    SELECT MAX(sequence) FROM agent_logs WHERE agent_logs.agent_id = agents.id
), 0);

UPDATE agent_logs SET attempt = COALESCE((
    SELECT MAX(a.attempt_number) FROM task_attempts a
    WHERE a.task_id = agent_logs.task_id AND a.started_at <= agent_logs.created_at
), 0)
WHERE task_id IS NOT NULL;

CREATE UNIQUE INDEX agent_logs_agent_sequence ON agent_logs (agent_id, sequence);
CREATE INDEX agent_logs_task_sequence ON agent_logs (task_id, attempt, sequence);
DROP INDEX agent_logs_agent_time;
DROP INDEX agent_logs_task_time;
