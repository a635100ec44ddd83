-- GB28181 devices that register to the platform, their catalog (the tree of
-- regions, business groups, virtual organisations and channels) and events.

CREATE TABLE gb_devices (
    id              TEXT PRIMARY KEY NOT NULL,       -- 20-digit GB28181 code
    name            TEXT,                            -- operator's label; else DeviceInfo's DeviceName
    -- Per-device credential: HA1 = MD5(id:realm:password) and the realm it was
    -- computed for. NULL: the platform's default password applies.
    ha1             TEXT,
    ha1_realm       TEXT,
    -- 'utf-8' or 'gb18030' forced by an operator; NULL = detect.
    charset_override TEXT CHECK (charset_override IN ('utf-8', 'gb18030')),
    -- What the device was last seen sending (non-ASCII bodies only).
    charset_detected TEXT CHECK (charset_detected IN ('utf-8', 'gb18030')),
    gb_version      TEXT,                            -- X-GB-Ver (3.0 = 2022, 2.0 = 2016)
    transport       TEXT CHECK (transport IN ('udp', 'tcp')),
    address         TEXT,                            -- ip:port the last packet came from
    contact         TEXT,
    user_agent      TEXT,
    manufacturer    TEXT,
    model           TEXT,
    firmware        TEXT,
    channel_count   INTEGER,
    online          INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    registered_at   INTEGER,                         -- unix seconds
    expires         INTEGER,                         -- seconds granted at registration
    last_keepalive  INTEGER,                         -- unix seconds
    catalog_synced_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE gb_channels (
    device_id       TEXT NOT NULL REFERENCES gb_devices (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    -- region | business_group | virtual_organization | recorder | camera | platform | other
    kind            TEXT NOT NULL,
    name            TEXT,
    parent_id       TEXT,                            -- direct parent: last segment of ParentID
    parent_ids      TEXT,                            -- every ParentID segment, '/'-joined
    business_group_id TEXT,
    civil_code      TEXT,
    manufacturer    TEXT,
    model           TEXT,
    address         TEXT,
    ip_address      TEXT,
    port            INTEGER,
    parental        INTEGER,
    status          TEXT,                            -- ON / OFF / VLOST / DEFECT as last reported
    online          INTEGER NOT NULL DEFAULT 1 CHECK (online IN (0, 1)),
    ptz_type        INTEGER,
    longitude       REAL,
    latitude        REAL,
    -- The whole catalog item as JSON (Info fields and the rest).
    item            TEXT NOT NULL,
    -- Latest MobilePosition as JSON.
    position        TEXT,
    position_at     INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (device_id, id)
) STRICT;

CREATE INDEX gb_channels_parent ON gb_channels (device_id, parent_id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,                    -- unix milliseconds
    -- device_online | device_offline | device_registered | device_unregistered |
    -- auth_failed | catalog_synced | catalog_event | alarm | ...
    kind        TEXT NOT NULL,
    device_id   TEXT,
    channel_id  TEXT,
    message     TEXT NOT NULL,
    data        TEXT                                 -- JSON details
) STRICT;

CREATE INDEX events_at ON events (at);
CREATE INDEX events_device ON events (device_id, at);
