-- Matches postgres/0006_write_guard.sql. SQLite's guard is a temporary trigger that every
-- writing connection creates for itself (see sqlite.rs), so nothing changes here.
SELECT 1;
