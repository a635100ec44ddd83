-- People who sign in to the web UI (machines use api_tokens).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- Argon2id in PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;

-- Browser sessions (the HttpOnly cookie). Only the SHA-256 of the cookie
-- value is kept, like api_tokens. A session belongs to a user or, when
-- someone signed in with an API token, to that token; deleting either ends
-- its sessions.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    token_id     INTEGER REFERENCES api_tokens (id) ON DELETE CASCADE,
    -- Sent back in X-CSRF-Token by cookie-authenticated writes.
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    -- Unix seconds; slides forward with use, never past created_at + the
    -- absolute lifetime.
    expires_at   INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (token_id IS NULL))
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_token ON sessions (token_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
