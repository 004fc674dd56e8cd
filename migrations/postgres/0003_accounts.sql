-- 0003: an executor serves one account (docs/jobs.md). Same number and meaning as
-- migrations/sqlite/0003.
-- The 429 breaker is per account and lane: one account's rate limit must not pause the others.
CREATE TABLE IF NOT EXISTS breakers (
    account     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (account, kind)
);
INSERT INTO breakers (account, kind, until, reason)
    SELECT '', kind, until, reason FROM lane_breakers
    ON CONFLICT (account, kind) DO NOTHING;
DROP TABLE IF EXISTS lane_breakers;
-- Claims look for the next due job of one account.
CREATE INDEX IF NOT EXISTS jobs_due_account ON jobs (kind, account, not_before, id)
    WHERE state IN ('queued', 'failed');
-- When the irreversible step began: a lookup of an unknown outcome must search back to it.
ALTER TABLE jobs ADD COLUMN attempted_at TIMESTAMPTZ;
