-- Settings a server keeps across restarts, such as the hash of the admin token generated
-- at first start.

CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
