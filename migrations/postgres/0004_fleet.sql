-- 0004: the fleet registry and the account leases (docs/fleet.md). Same number and meaning as
-- migrations/sqlite/0004.
CREATE TABLE IF NOT EXISTS executors (
    id            TEXT PRIMARY KEY,
    account       TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    version       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    last_tick_at  TIMESTAMPTZ,
    state         TEXT NOT NULL CHECK (state IN ('active', 'standby', 'stopped')),
    -- The last tick's event data.
    last_tick     JSONB NOT NULL DEFAULT '{}'
);
-- At most one live executor acts for an account: the holder of its lease.
CREATE TABLE IF NOT EXISTS account_leases (
    account      TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    token        TEXT NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
