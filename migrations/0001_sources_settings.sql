-- RTSP cameras pulled by the gateway, and runtime settings.
CREATE TABLE rtsp_sources (
    name        TEXT PRIMARY KEY NOT NULL,
    url         TEXT NOT NULL,
    username    TEXT,
    password    TEXT,
    transport   TEXT NOT NULL DEFAULT 'tcp' CHECK (transport IN ('tcp', 'udp')),
    on_demand   INTEGER NOT NULL DEFAULT 1 CHECK (on_demand IN (0, 1)),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
