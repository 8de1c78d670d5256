-- A task created with an idempotency key keeps a fingerprint of what was asked for, so
-- that the same key with a different body is refused instead of answered with a task
-- that is not the one asked for (rows from before have none, and are not checked).

ALTER TABLE tasks ADD COLUMN idempotency_fingerprint TEXT;
