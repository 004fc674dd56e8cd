-- 0007: the producers' door. Same number as migrations/postgres/0007, which creates
-- `executor_enqueue(…)`, the SQL function through which programs on other machines enqueue
-- (docs/producers.md). SQLite is one file on one machine, read by no other: its producers use
-- `executor enqueue` (or `enqueue bulk`). Nothing to change here.
SELECT 1;
