-- 0006: operator pauses of a lane or an account, fleet-wide (docs/jobs.md, "Pausing"); and the
-- pace each executor registers, which the "why is it waiting?" view reads. Same number and
-- meaning as migrations/postgres/0006.
-- One row per scope: `kind` NULL is both lanes, `account` NULL every account. `scope` is the key
-- the program makes of the two, so a scope is paused once.
CREATE TABLE IF NOT EXISTS pauses (
    scope       TEXT PRIMARY KEY,
    kind        TEXT CHECK (kind IS NULL OR kind IN ('post', 'reply')),
    account     TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    paused_by   TEXT NOT NULL,
    paused_at   TEXT NOT NULL
);
-- The executor's rate limits and tick timing as it registered them ('{}' from older versions).
ALTER TABLE executors ADD COLUMN pace TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(pace));
