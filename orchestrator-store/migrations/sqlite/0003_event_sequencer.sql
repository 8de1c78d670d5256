-- Matches postgres/0003_event_sequencer.sql. SQLite has one writer at a time, so its
-- events are numbered as they are inserted (in commit order) and nothing changes here.
SELECT 1;
