-- Secrets a server keeps across restarts, as hashes: the admin token generated at first
-- start, and the single-use setup tokens that runners exchange for runner tokens.

CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX setup_tokens_expiry ON setup_tokens (expires_at);
