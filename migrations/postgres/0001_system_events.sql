-- 0001: the event log (SPEC §6). Same number and meaning as migrations/sqlite/0001.
CREATE TABLE IF NOT EXISTS system_events (
    id          TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message     TEXT NOT NULL,
    event_data  JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Insertion order, to break ties between events of the same millisecond.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX IF NOT EXISTS system_events_type_created ON system_events (event_type, created_at);
