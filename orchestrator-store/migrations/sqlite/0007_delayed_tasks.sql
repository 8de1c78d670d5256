-- A waiting claim asks when the next delayed task comes due: an index of the queued
-- tasks that wait for a time answers without reading the queue.

CREATE INDEX tasks_delayed ON tasks (not_before) WHERE status = 'QUEUED' AND not_before IS NOT NULL;
