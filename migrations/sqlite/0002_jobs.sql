-- 0002: the job queue, the action log behind the rate limits, and the 429 breakers (SPEC §5).
-- Same number and meaning as migrations/postgres/0002. Times are RFC 3339 UTC text with ms.
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL CHECK (kind IN ('post', 'reply')),
    text             TEXT NOT NULL,
    reply_to         TEXT,
    account          TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT UNIQUE,
    not_before       TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                       ('queued', 'claimed', 'attempting', 'succeeded', 'failed', 'uncertain', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at TEXT,
    post_id          TEXT,
    post_url         TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- Only unfinished jobs are indexed, so finished ones never slow the claim.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (kind, not_before, id)
    WHERE state IN ('queued', 'failed');
-- Leased jobs by state first: the finished ones sit under other keys and are never scanned
-- (a partial index would not do here: SQLite only uses one whose WHERE the query repeats).
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (state, kind, lease_expires_at);

CREATE TABLE IF NOT EXISTS job_actions (
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    kind        TEXT NOT NULL,
    account     TEXT NOT NULL,
    started_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_actions_account ON job_actions (account, kind, started_at);

CREATE TABLE IF NOT EXISTS lane_breakers (
    kind        TEXT PRIMARY KEY,
    until       TEXT NOT NULL,
    reason      TEXT NOT NULL
);
