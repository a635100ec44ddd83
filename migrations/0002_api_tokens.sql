-- Bearer tokens for the REST API. Only a SHA-256 hash of each token is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    -- The first characters of the token, so an operator can tell tokens apart.
    prefix       TEXT NOT NULL,
    role         TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
