-- 0005: a claim logs the action the rate limits count together with the claim itself, so the
-- claim is one statement (sent with its commit). On PostgreSQL the claim's statement does it
-- (`job_claim_next` in src/store/postgres_jobs.rs, a data-modifying WITH); SQLite, which has no
-- such statement, does it with a trigger (migrations/sqlite/0005). Nothing to change here.
SELECT 1;
