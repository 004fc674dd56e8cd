//! The job queue's SQL for SQLite, and the driver that runs it (the steps are in `queue.rs`).
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction, so one writer at a time decides (claims,
//! rate limits, fencing) across every process sharing the file. Times are RFC 3339 UTC text with
//! milliseconds, which sorts and compares as text. Lists travel as JSON arrays (`json_each`).

use super::queue::{job_columns, Col, Driver, Durability, Queries, Value};
use super::StoreError;
use crate::clock::{format_ts, parse_ts};
use crate::events::Event;
use rusqlite::Connection;
use std::time::SystemTime;

pub(crate) const QUERIES: Queries = Queries {
    event_insert: "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
    event_list: "SELECT id, event_type, severity, message, event_data, created_at FROM system_events
         WHERE (json_array_length(?1) = 0 OR event_type IN (SELECT value FROM json_each(?1)))
           AND created_at >= ?2
           AND (?4 IS NULL OR event_data->>'job_id' = CAST(?4 AS INTEGER))
         ORDER BY created_at DESC, rowid DESC LIMIT ?3",
    job_get: concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1"),
    // BEGIN IMMEDIATE already holds the database's write lock.
    job_get_for_update: concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1"),
    job_insert: "INSERT INTO jobs (kind, text, reply_to, account, idempotency_key, not_before, state,
             max_attempts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?8)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    // BEGIN IMMEDIATE holds the write lock: the ids above the highest ever given are ours.
    job_ids_reserve: "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         SELECT i + MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0),
                        COALESCE((SELECT MAX(id) FROM jobs), 0))
         FROM n ORDER BY i",
    // `WHERE true`: without it SQLite would read ON CONFLICT as a join's ON.
    job_insert_many: "INSERT INTO jobs (id, kind, text, reply_to, account, idempotency_key, not_before,
             state, max_attempts, created_at, updated_at)
         SELECT json_extract(value, '$.id'), json_extract(value, '$.kind'),
             json_extract(value, '$.text'), json_extract(value, '$.reply_to'),
             json_extract(value, '$.account'), json_extract(value, '$.idempotency_key'),
             json_extract(value, '$.not_before'), 'queued', json_extract(value, '$.max_attempts'),
             ?2, ?2
         FROM json_each(?1) WHERE true ORDER BY json_extract(value, '$.id')
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    job_id_by_key: "SELECT id FROM jobs WHERE idempotency_key = ?1",
    job_list: concat!(
        "SELECT * FROM (SELECT ",
        job_columns!(),
        " FROM jobs
           WHERE (json_array_length(?1) = 0 OR state IN (SELECT value FROM json_each(?1)))
             AND (?2 IS NULL OR kind = ?2)
             AND (?4 IS NULL OR account = ?4)
             AND (?5 IS NULL OR instr(text, ?5) > 0)
           ORDER BY id DESC LIMIT ?3) ORDER BY id"
    ),
    job_count_due: "SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND (?2 IS NULL OR account = ?2)
           AND state IN ('queued', 'failed') AND not_before <= ?3",
    lane_look: "SELECT (SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND account = ?2
               AND state IN ('queued', 'failed') AND not_before <= ?3),
           CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE state = 'uncertain' AND kind = ?1
                               AND account = ?2 AND not_before <= ?3
                               AND (lease_token IS NULL OR lease_expires_at < ?3))
             OR EXISTS (SELECT 1 FROM jobs WHERE state IN ('claimed', 'attempting', 'uncertain')
                          AND kind = ?1 AND lease_expires_at < ?3)
             OR EXISTS (SELECT 1 FROM breakers WHERE account = ?2 AND kind = ?1)
             OR EXISTS (SELECT 1 FROM pauses)
           THEN 1 ELSE 0 END",
    job_due_accounts: "SELECT DISTINCT account FROM jobs
         WHERE state IN ('queued', 'failed') AND not_before <= ?1 ORDER BY account",
    job_count_by_state:
        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    job_queue_by_account: "SELECT account, kind, state, CASE WHEN not_before <= ?1 THEN 1 ELSE 0 END AS due,
             COUNT(*), MIN(not_before) FROM jobs WHERE state NOT IN ('succeeded', 'cancelled')
         GROUP BY account, kind, state, due ORDER BY account, kind, state, due",
    lease_sweep_attempting: concat!(
        "UPDATE jobs SET state = 'uncertain', last_error = ?3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'attempting' AND lease_expires_at < ?2 RETURNING ",
        job_columns!()
    ),
    lease_sweep_claimed: "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'claimed' AND lease_expires_at < ?2",
    lease_sweep_uncertain: "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'uncertain' AND lease_expires_at < ?2",
    breaker_get: "SELECT until FROM breakers WHERE account = ?1 AND kind = ?2",
    breaker_delete: "DELETE FROM breakers WHERE account = ?1 AND kind = ?2",
    breaker_upsert: "INSERT INTO breakers (account, kind, until, reason) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account, kind) DO UPDATE SET until = excluded.until, reason = excluded.reason",
    lane_gate: "SELECT (SELECT until FROM breakers WHERE account = ?1 AND kind = ?2),
             (SELECT json_group_array(json_object('scope', scope, 'kind', kind, 'account', account,
                 'reason', reason, 'paused_by', paused_by, 'paused_at', paused_at)) FROM pauses)",
    pause_list: "SELECT (SELECT json_group_array(json_object('scope', scope, 'kind', kind, 'account', account,
                 'reason', reason, 'paused_by', paused_by, 'paused_at', paused_at)) FROM pauses)",
    pause_insert: "INSERT INTO pauses (scope, kind, account, reason, paused_by, paused_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (scope) DO NOTHING",
    pause_delete: "DELETE FROM pauses WHERE scope = ?1",
    pause_delete_all: "DELETE FROM pauses",
    // BEGIN IMMEDIATE already serialises every writer of the file.
    account_lock: "",
    actions_in_window: "SELECT COUNT(*), MIN(started_at) FROM job_actions
         WHERE account = ?1 AND kind = ?2 AND started_at > ?3",
    action_latest: "SELECT MAX(started_at) FROM job_actions WHERE account = ?1",
    job_due_exists: "SELECT 1 FROM jobs WHERE kind = ?1 AND account = ?2
           AND state IN ('queued', 'failed') AND not_before <= ?3 LIMIT 1",
    job_claim_next: concat!(
        "UPDATE jobs SET state = 'claimed', attempts = attempts + 1, lease_owner = ?4,
             lease_token = ?5, lease_expires_at = ?6, updated_at = ?3
         WHERE id = (SELECT id FROM jobs WHERE kind = ?1 AND account = ?2
                       AND state IN ('queued', 'failed') AND not_before <= ?3
                     ORDER BY not_before, id LIMIT 1)
         RETURNING ",
        job_columns!()
    ),
    job_mark_attempting: concat!(
        "UPDATE jobs SET state = 'attempting', attempted_at = ?3, updated_at = ?3
         WHERE id = ?1 AND lease_token = ?2 AND state = 'claimed' AND lease_expires_at > ?3
           -- Only the live holder of the account's lease (when there is one) may click.
           AND NOT EXISTS (SELECT 1 FROM account_leases l WHERE l.account = jobs.account
                             AND (l.holder <> jobs.lease_owner OR l.expires_at <= ?3))
         RETURNING ",
        job_columns!()
    ),
    job_set_state: concat!(
        "UPDATE jobs SET state = ?2, post_id = ?3, post_url = ?4, last_error = ?5,
             not_before = COALESCE(?6, not_before), lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?7
         WHERE id = ?1 RETURNING ",
        job_columns!()
    ),
    job_claim_uncertain: concat!(
        "UPDATE jobs SET lease_owner = ?4, lease_token = ?5, lease_expires_at = ?6, updated_at = ?3
         WHERE id = (SELECT id FROM jobs WHERE kind = ?1 AND account = ?2 AND state = 'uncertain'
                       AND (lease_token IS NULL OR lease_expires_at < ?3) AND not_before <= ?3
                     ORDER BY id LIMIT 1)
         RETURNING ",
        job_columns!()
    ),
    job_defer_uncertain: concat!(
        "UPDATE jobs SET last_error = ?2, not_before = ?3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?4
         WHERE id = ?1 RETURNING ",
        job_columns!()
    ),
    rescue_attempting: concat!(
        "UPDATE jobs SET state = 'uncertain', last_error = ?3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE state = 'attempting' AND lease_owner = ?1 RETURNING ",
        job_columns!()
    ),
    rescue_claimed: "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE state = 'claimed' AND lease_owner = ?1",
    rescue_uncertain: "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = ?2
         WHERE state = 'uncertain' AND lease_owner = ?1",
    job_retry: concat!(
        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = ?2, updated_at = ?2
         WHERE id = ?1 RETURNING ",
        job_columns!()
    ),
    job_cancel: concat!(
        "UPDATE jobs SET state = 'cancelled', updated_at = ?2 WHERE id = ?1 RETURNING ",
        job_columns!()
    ),
    executor_upsert: "INSERT INTO executors (id, account, host, pid, version, run_id, started_at,
             heartbeat_at, state, pace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'standby', ?9)
         ON CONFLICT (id) DO UPDATE SET account = excluded.account, host = excluded.host,
             pid = excluded.pid, version = excluded.version, run_id = excluded.run_id,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
             state = excluded.state, pace = excluded.pace",
    executor_state: "UPDATE executors SET state = ?2, heartbeat_at = ?3 WHERE id = ?1",
    executor_tick: "UPDATE executors SET last_tick = ?2, last_tick_at = ?3, heartbeat_at = ?3
         WHERE id = ?1",
    lease_get: "SELECT account, holder, token, acquired_at, expires_at FROM account_leases
         WHERE account = ?1",
    // The tick's read of its own lease: no lock, no write (`fleet::lease_fresh` decides).
    lease_peek: "SELECT holder, expires_at FROM account_leases WHERE account = ?1",
    // The tick's event renews the lease its tick held: only the holder's, never shortened.
    lease_extend: "UPDATE account_leases SET expires_at = ?3
         WHERE account = ?1 AND holder = ?2 AND expires_at < ?3",
    lease_upsert: "INSERT INTO account_leases (account, holder, token, acquired_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, token = excluded.token,
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
    lease_renew: "UPDATE account_leases SET expires_at = ?3 WHERE account = ?1 AND holder = ?2",
    // An orderly exit hands the account over: no lapse to wait for, no failover to record.
    lease_release: "DELETE FROM account_leases WHERE account = ?1 AND holder = ?2",
    fleet_list: "SELECT e.id, e.account, e.host, e.pid, e.version, e.run_id, e.started_at,
             e.heartbeat_at, e.last_tick_at, e.state, e.last_tick, l.holder, l.expires_at,
             e.pace
         FROM executors e LEFT JOIN account_leases l ON l.account = e.account
         ORDER BY e.account, e.id",
};

/// The one connection to the file, with what the current transaction wrote.
pub(crate) struct SqliteConn {
    pub conn: Connection,
    pub path: String,
    pub written: Vec<Event>,
    durability: Option<Durability>,
}

impl SqliteConn {
    pub fn new(conn: Connection, path: String) -> SqliteConn {
        SqliteConn {
            conn,
            path,
            written: Vec::new(),
            durability: None,
        }
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn begin_now(&mut self, durability: Durability) -> rusqlite::Result<()> {
        if !self.conn.is_autocommit() {
            // A transaction whose end failed: nothing of it may be committed later.
            self.conn.execute_batch("ROLLBACK")?;
        }
        if durability == Durability::Full {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        self.durability = Some(durability);
        self.written.clear();
        self.run_execute("BEGIN IMMEDIATE", &[]).map(|_| ())
    }

    fn end_now(&mut self, commit: bool) -> rusqlite::Result<()> {
        let ended = self
            .run_execute(if commit { "COMMIT" } else { "ROLLBACK" }, &[])
            .map(|_| ());
        if !commit || ended.is_err() {
            self.written.clear();
        }
        // The connection's default is NORMAL: only the commits that need it pay for FULL.
        if self.durability.take() == Some(Durability::Full) {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        ended
    }

    fn run_rows(
        &mut self,
        sql: &str,
        params: &[Value],
        shape: &[Col],
    ) -> rusqlite::Result<Vec<Vec<Value>>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter().map(to_sql)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(
                shape
                    .iter()
                    .enumerate()
                    .map(|(i, col)| from_sql(row, i, *col))
                    .collect::<rusqlite::Result<_>>()?,
            );
        }
        Ok(out)
    }

    fn run_execute(&mut self, sql: &str, params: &[Value]) -> rusqlite::Result<u64> {
        if sql.is_empty() {
            return Ok(0);
        }
        let mut statement = self.conn.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params.iter().map(to_sql)))? as u64)
    }
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Int(v) => V::Integer(*v),
        Value::Text(v) => V::Text(v.clone()),
        Value::OptText(v) => v.clone().map_or(V::Null, V::Text),
        Value::Time(v) => V::Text(format_ts(*v)),
        Value::OptTime(v) => v.map_or(V::Null, |t| V::Text(format_ts(t))),
        Value::Texts(v) => V::Text(serde_json::Value::from(v.clone()).to_string()),
        Value::Json(v) => V::Text(v.to_string()),
    }
}

fn conversion(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what}").into(),
    )
}

fn time(text: String) -> rusqlite::Result<SystemTime> {
    parse_ts(&text).ok_or_else(|| conversion("timestamp"))
}

fn from_sql(row: &rusqlite::Row<'_>, i: usize, col: Col) -> rusqlite::Result<Value> {
    Ok(match col {
        Col::Int => Value::Int(row.get(i)?),
        Col::Text => Value::Text(row.get(i)?),
        Col::OptText => Value::OptText(row.get(i)?),
        Col::Time => Value::Time(time(row.get(i)?)?),
        Col::OptTime => Value::OptTime(row.get::<_, Option<String>>(i)?.map(time).transpose()?),
        Col::Json => Value::Json(
            serde_json::from_str(&row.get::<_, String>(i)?).map_err(|_| conversion("JSON"))?,
        ),
    })
}

/// SQLite answers at once: each future below is ready when first polled (see `sqlite.rs`).
impl Driver for SqliteConn {
    fn queries(&self) -> &'static Queries {
        &QUERIES
    }

    async fn begin(&mut self, durability: Durability) -> Result<(), StoreError> {
        self.begin_now(durability).map_err(|e| self.error(e))
    }

    async fn end(&mut self, commit: bool) -> Result<(), StoreError> {
        if self.durability.is_none() && self.conn.is_autocommit() {
            // Already ended by `rows_then_commit`.
            return Ok(());
        }
        self.end_now(commit).map_err(|e| self.error(e))
    }

    async fn execute(&mut self, sql: &'static str, params: &[Value]) -> Result<u64, StoreError> {
        self.run_execute(sql, params).map_err(|e| self.error(e))
    }

    async fn rows(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        self.run_rows(sql, params, shape).map_err(|e| self.error(e))
    }

    async fn rows_each(
        &mut self,
        sql: &'static str,
        params: &[Vec<Value>],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Vec<Value>>>, StoreError> {
        // The statement is prepared once (cached) and run for each set: the file is local, so
        // a loop costs no round trips.
        params
            .iter()
            .map(|params| self.run_rows(sql, params, shape))
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    async fn defer(&mut self, sql: &'static str, params: Vec<Value>) -> Result<(), StoreError> {
        // Nothing to save by waiting: the file is local.
        self.run_execute(sql, &params)
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn rows_then_commit(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let rows = self
            .run_rows(sql, params, shape)
            .map_err(|e| self.error(e))?;
        // On failure the transaction is still open: the `end` that follows rolls it back.
        self.end_now(true).map_err(|e| self.error(e))?;
        Ok(rows)
    }

    fn written(&mut self) -> &mut Vec<Event> {
        &mut self.written
    }
}
