-- The three queries of the original deployment's stability document, verbatim.
SELECT 
  created_at,
  event_data->>'pages' AS pages,
  event_data->>'chrome_pids' AS chrome_pids,
  event_data->>'posting_ready' AS posting_ready,
  event_data->>'posting_attempts' AS posting_attempts,
  event_data->>'reply_ready' AS reply_ready,
  event_data->>'reply_attempts' AS reply_attempts,
  event_data->>'backoff_seconds' AS backoff,
  event_data->>'last_error' AS last_error
FROM system_events
WHERE event_type='EXECUTOR_DAEMON_TICK'
  AND created_at >= NOW() - INTERVAL '60 minutes'
ORDER BY created_at DESC
LIMIT 20;

SELECT 
  event_data->>'pages' AS pages,
  COUNT(*) AS count,
  MIN(created_at) AS first_seen,
  MAX(created_at) AS last_seen
FROM system_events
WHERE event_type='EXECUTOR_DAEMON_TICK'
  AND created_at >= NOW() - INTERVAL '60 minutes'
GROUP BY pages
ORDER BY pages;

SELECT 
  COUNT(*) AS total_ticks,
  COUNT(CASE WHEN event_data->>'last_error' IS NOT NULL THEN 1 END) AS failed_ticks,
  ROUND(100.0 * COUNT(CASE WHEN event_data->>'last_error' IS NOT NULL THEN 1 END) / COUNT(*), 2) AS failure_rate_pct
FROM system_events
WHERE event_type='EXECUTOR_DAEMON_TICK'
  AND created_at >= NOW() - INTERVAL '60 minutes';
