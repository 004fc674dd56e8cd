-- 0001: the event log (SPEC §6). Same number and meaning as migrations/postgres/0001.
CREATE TABLE IF NOT EXISTS system_events (
    id          TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message     TEXT NOT NULL,
    -- JSON text; SQLite's ->> operator reads it as PostgreSQL's does on jsonb.
    event_data  TEXT NOT NULL CHECK (json_valid(event_data)),
    -- RFC 3339 UTC with milliseconds ('2026-01-23T12:00:00.000Z'): sorts and compares as text.
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS system_events_type_created ON system_events (event_type, created_at);
