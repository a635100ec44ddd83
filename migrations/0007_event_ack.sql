-- Alarms are acknowledged by an operator (and reset on the device).
ALTER TABLE events ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE events ADD COLUMN acknowledged_by TEXT;
CREATE INDEX events_unacknowledged ON events (kind, id) WHERE acknowledged_at IS NULL;
