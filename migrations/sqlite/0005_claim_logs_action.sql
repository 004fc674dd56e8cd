-- 0005: a claim logs the action the rate limits count in the database itself, so the claim is
-- one statement (sent with its commit). PostgreSQL does the same in the claim's own statement
-- (migrations/postgres/0005 says so); the meaning is the same on both.
CREATE TRIGGER IF NOT EXISTS jobs_claim_logs_action
AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'claimed' AND OLD.state IN ('queued', 'failed')
BEGIN
    INSERT INTO job_actions (job_id, kind, account, started_at)
    VALUES (NEW.id, NEW.kind, NEW.account, NEW.updated_at);
END;
