-- An attempt a stopping runner gave back ends as RETURNED: its task is queued again and
-- the attempt does not count against the task's attempts.

ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_outcome_check;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_outcome_check
    CHECK (outcome IN ('RUNNING', 'COMPLETED', 'FAILED', 'EXPIRED', 'CANCELLED', 'RETURNED'));
