-- What runners state about themselves: the host name of their machine, their version and
-- the agent backends they run (a JSON list). Which backend ran each attempt and on which
-- model; usage is summed over the attempts started in a window, found by their start.

ALTER TABLE runner_sessions ADD COLUMN host TEXT;
ALTER TABLE runner_sessions ADD COLUMN version TEXT;
ALTER TABLE runner_sessions ADD COLUMN backends TEXT;

ALTER TABLE task_attempts ADD COLUMN backend TEXT;
ALTER TABLE task_attempts ADD COLUMN model TEXT;
CREATE INDEX task_attempts_started ON task_attempts (started_at);
