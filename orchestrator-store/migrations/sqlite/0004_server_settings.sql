-- Secrets a server keeps across restarts, as hashes: the admin token generated at first
-- start, and the single-use setup tokens that runners exchange for runner tokens.

CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX setup_tokens_expiry ON setup_tokens (expires_at);
