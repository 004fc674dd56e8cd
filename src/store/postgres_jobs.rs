//! The job queue's SQL for PostgreSQL, and the driver that runs it (the steps are in `queue.rs`).
//!
//! Several executors share one database. A claim with rate limits takes a transaction-scoped
//! advisory lock per account, so the limits hold across executors; rows are taken with
//! `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows. No state outlives a
//! transaction (leases are rows, locks are transaction-scoped). Statements are prepared once per
//! connection; with `pgbouncer=true` in the URL (a transaction-mode pooler in front) none is kept:
//! each goes out unnamed with its parameter types, in one round trip.

use super::queue::{job_columns, Col, Driver, Durability, Queries, Value};
use super::StoreError;
use crate::events::Event;
use std::collections::HashMap;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

pub(crate) const QUERIES: Queries = Queries {
    event_insert: "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    event_list: "SELECT id, event_type, severity, message, event_data, created_at FROM system_events
         WHERE (cardinality($1::text[]) = 0 OR event_type = ANY($1)) AND created_at >= $2
           AND ($4::text IS NULL OR event_data->>'job_id' = $4)
         ORDER BY created_at DESC, seq DESC LIMIT $3",
    job_get: concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1"),
    job_get_for_update: concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1 FOR UPDATE"),
    job_insert: "INSERT INTO jobs (kind, text, reply_to, account, idempotency_key, not_before, state,
             max_attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    job_ids_reserve: "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, $1) n
         ORDER BY n",
    job_insert_many: "INSERT INTO jobs (id, kind, text, reply_to, account, idempotency_key, not_before,
             state, max_attempts, created_at, updated_at)
         OVERRIDING SYSTEM VALUE
         SELECT r.id, r.kind, r.text, r.reply_to, r.account, r.idempotency_key, r.not_before,
             'queued', r.max_attempts, $2, $2
         FROM jsonb_to_recordset($1) AS r(id bigint, kind text, text text, reply_to text,
             account text, idempotency_key text, not_before timestamptz, max_attempts integer)
         ORDER BY r.id
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    job_id_by_key: "SELECT id FROM jobs WHERE idempotency_key = $1",
    job_list: concat!(
        "SELECT * FROM (SELECT ",
        job_columns!(),
        " FROM jobs
           WHERE (cardinality($1::text[]) = 0 OR state = ANY($1)) AND ($2::text IS NULL OR kind = $2)
             AND ($4::text IS NULL OR account = $4)
             AND ($5::text IS NULL OR strpos(text, $5) > 0)
           ORDER BY id DESC LIMIT $3) newest ORDER BY id"
    ),
    job_count_due: "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND ($2::text IS NULL OR account = $2)
           AND state IN ('queued', 'failed') AND not_before <= $3",
    lane_look: "SELECT (SELECT COUNT(*) FROM jobs WHERE kind = $1 AND account = $2
               AND state IN ('queued', 'failed') AND not_before <= $3),
           (CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE state = 'uncertain' AND kind = $1
                               AND account = $2 AND not_before <= $3
                               AND (lease_token IS NULL OR lease_expires_at < $3))
             OR EXISTS (SELECT 1 FROM jobs WHERE state IN ('claimed', 'attempting', 'uncertain')
                          AND kind = $1 AND lease_expires_at < $3)
             OR EXISTS (SELECT 1 FROM breakers WHERE account = $2 AND kind = $1)
             OR EXISTS (SELECT 1 FROM pauses)
           THEN 1 ELSE 0 END)::bigint",
    job_due_accounts: "SELECT DISTINCT account FROM jobs
         WHERE state IN ('queued', 'failed') AND not_before <= $1 ORDER BY account",
    job_count_by_state:
        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    job_queue_by_account: "SELECT account, kind, state, (CASE WHEN not_before <= $1 THEN 1 ELSE 0 END)::bigint AS due,
             COUNT(*), MIN(not_before) FROM jobs WHERE state NOT IN ('succeeded', 'cancelled')
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    lease_sweep_attempting: concat!(
        "UPDATE jobs SET state = 'uncertain', last_error = $3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'attempting' AND lease_expires_at < $2 RETURNING ",
        job_columns!()
    ),
    lease_sweep_claimed: "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'claimed' AND lease_expires_at < $2",
    lease_sweep_uncertain: "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'uncertain' AND lease_expires_at < $2",
    breaker_get: "SELECT until FROM breakers WHERE account = $1 AND kind = $2",
    breaker_delete: "DELETE FROM breakers WHERE account = $1 AND kind = $2",
    breaker_upsert: "INSERT INTO breakers (account, kind, until, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT (account, kind) DO UPDATE SET until = excluded.until, reason = excluded.reason",
    lane_gate: "SELECT (SELECT until FROM breakers WHERE account = $1 AND kind = $2),
             COALESCE((SELECT jsonb_agg(jsonb_build_object('scope', scope, 'kind', kind,
                 'account', account, 'reason', reason, 'paused_by', paused_by,
                 'paused_at', to_char(paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))
               FROM pauses), '[]'::jsonb)",
    pause_list: "SELECT COALESCE((SELECT jsonb_agg(jsonb_build_object('scope', scope, 'kind', kind,
                 'account', account, 'reason', reason, 'paused_by', paused_by,
                 'paused_at', to_char(paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))
               FROM pauses), '[]'::jsonb)",
    pause_insert: "INSERT INTO pauses (scope, kind, account, reason, paused_by, paused_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope) DO NOTHING",
    pause_delete: "DELETE FROM pauses WHERE scope = $1",
    pause_delete_all: "DELETE FROM pauses",
    // Released at COMMIT: nothing is held by a pooled server connection afterwards.
    account_lock: "SELECT pg_advisory_xact_lock(hashtextextended('executor account ' || $1, 0))",
    actions_in_window: "SELECT COUNT(*), MIN(started_at) FROM job_actions
         WHERE account = $1 AND kind = $2 AND started_at > $3",
    action_latest: "SELECT MAX(started_at) FROM job_actions WHERE account = $1",
    job_due_exists: "SELECT 1 FROM jobs WHERE kind = $1 AND account = $2
           AND state IN ('queued', 'failed') AND not_before <= $3 LIMIT 1",
    // Pick, lease and log the action in one statement (one round trip).
    job_claim_next: concat!(
        "WITH claimed AS (
             UPDATE jobs SET state = 'claimed', attempts = attempts + 1, lease_owner = $4,
                 lease_token = $5, lease_expires_at = $6, updated_at = $3
             WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND account = $2
                           AND state IN ('queued', 'failed') AND not_before <= $3
                         ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING jobs.*),
         action AS (
             INSERT INTO job_actions (job_id, kind, account, started_at)
             SELECT id, kind, account, $3 FROM claimed)
         SELECT ",
        job_columns!(),
        " FROM claimed"
    ),
    job_mark_attempting: concat!(
        "UPDATE jobs SET state = 'attempting', attempted_at = $3, updated_at = $3
         WHERE id = $1 AND lease_token = $2 AND state = 'claimed' AND lease_expires_at > $3
           -- Only the live holder of the account's lease (when there is one) may click.
           AND NOT EXISTS (SELECT 1 FROM account_leases l WHERE l.account = jobs.account
                             AND (l.holder <> jobs.lease_owner OR l.expires_at <= $3))
         RETURNING ",
        job_columns!()
    ),
    job_set_state: concat!(
        "UPDATE jobs SET state = $2, post_id = $3, post_url = $4, last_error = $5,
             not_before = COALESCE($6, not_before), lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $7
         WHERE id = $1 RETURNING ",
        job_columns!()
    ),
    job_claim_uncertain: concat!(
        "UPDATE jobs SET lease_owner = $4, lease_token = $5, lease_expires_at = $6, updated_at = $3
         WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND account = $2 AND state = 'uncertain'
                       AND (lease_token IS NULL OR lease_expires_at < $3) AND not_before <= $3
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ",
        job_columns!()
    ),
    job_defer_uncertain: concat!(
        "UPDATE jobs SET last_error = $2, not_before = $3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $4
         WHERE id = $1 RETURNING ",
        job_columns!()
    ),
    rescue_attempting: concat!(
        "UPDATE jobs SET state = 'uncertain', last_error = $3, lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE state = 'attempting' AND lease_owner = $1 RETURNING ",
        job_columns!()
    ),
    rescue_claimed: "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE state = 'claimed' AND lease_owner = $1",
    rescue_uncertain: "UPDATE jobs SET lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, updated_at = $2
         WHERE state = 'uncertain' AND lease_owner = $1",
    job_retry: concat!(
        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = $2, updated_at = $2
         WHERE id = $1 RETURNING ",
        job_columns!()
    ),
    job_cancel: concat!(
        "UPDATE jobs SET state = 'cancelled', updated_at = $2 WHERE id = $1 RETURNING ",
        job_columns!()
    ),
    executor_upsert: "INSERT INTO executors (id, account, host, pid, version, run_id, started_at,
             heartbeat_at, state, pace)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'standby', $9)
         ON CONFLICT (id) DO UPDATE SET account = excluded.account, host = excluded.host,
             pid = excluded.pid, version = excluded.version, run_id = excluded.run_id,
             started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
             state = excluded.state, pace = excluded.pace",
    executor_state: "UPDATE executors SET state = $2, heartbeat_at = $3 WHERE id = $1",
    executor_tick: "UPDATE executors SET last_tick = $2, last_tick_at = $3, heartbeat_at = $3
         WHERE id = $1",
    lease_get: "SELECT account, holder, token, acquired_at, expires_at FROM account_leases
         WHERE account = $1 FOR UPDATE",
    // The tick's read of its own lease: no lock, no write (`fleet::lease_fresh` decides).
    lease_peek: "SELECT holder, expires_at FROM account_leases WHERE account = $1",
    // The tick's event renews the lease its tick held: only the holder's, never shortened.
    lease_extend: "UPDATE account_leases SET expires_at = $3
         WHERE account = $1 AND holder = $2 AND expires_at < $3",
    lease_upsert: "INSERT INTO account_leases (account, holder, token, acquired_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, token = excluded.token,
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
    lease_renew: "UPDATE account_leases SET expires_at = $3 WHERE account = $1 AND holder = $2",
    // An orderly exit hands the account over: no lapse to wait for, no failover to record.
    lease_release: "DELETE FROM account_leases WHERE account = $1 AND holder = $2",
    fleet_list: "SELECT e.id, e.account, e.host, e.pid, e.version, e.run_id, e.started_at,
             e.heartbeat_at, e.last_tick_at, e.state, e.last_tick, l.holder, l.expires_at,
             e.pace
         FROM executors e LEFT JOIN account_leases l ON l.account = e.account
         ORDER BY e.account, e.id",
};

/// One client connection, with what the current transaction wrote.
pub(crate) struct PgConn {
    pub client: Client,
    pub written: Vec<Event>,
    /// A transaction was begun and not yet ended (its caller may have been dropped).
    in_transaction: bool,
    /// The BEGIN not sent yet: it travels with the transaction's first statement (pipelined on
    /// the connection, in order), which saves a round trip per transaction.
    begin_pending: Option<&'static str>,
    /// Writes held by [`Driver::defer`], sent before the next statement or with the commit.
    deferred: Vec<(&'static str, Vec<Value>)>,
    /// Statements prepared once on this connection and reused (planning each statement anew
    /// costs the server more than running it). `None` behind a transaction-mode pooler, where a
    /// prepared statement would live on one of its server connections only: there every
    /// statement goes out unnamed, with its types, in one round trip.
    prepared: Option<HashMap<&'static str, Statement>>,
    /// The task that drives the socket: ended with the connection, so a connection given up on
    /// mid-call (its server silent) does not linger.
    connection_task: tokio::task::AbortHandle,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.connection_task.abort();
    }
}

const BEGIN_FULL: &str = "BEGIN";
/// A relaxed commit skips the wait for the WAL flush.
const BEGIN_RELAXED: &str = "BEGIN; SET LOCAL synchronous_commit TO OFF";

/// What one statement of a pipeline answered.
enum Answer {
    Rows(Vec<tokio_postgres::Row>),
    Changed(u64),
}

type Step<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Answer, tokio_postgres::Error>> + Send + 'a>,
>;

impl PgConn {
    pub fn new(client: Client, prepare: bool, connection_task: tokio::task::AbortHandle) -> PgConn {
        PgConn {
            connection_task,
            client,
            written: Vec::new(),
            in_transaction: false,
            begin_pending: None,
            deferred: Vec::new(),
            prepared: prepare.then(HashMap::new),
        }
    }

    /// The statement for `sql`, prepared on first use; `None` when statements are not kept.
    async fn statement(
        &mut self,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Option<Statement>, StoreError> {
        let Some(prepared) = &self.prepared else {
            return Ok(None);
        };
        if let Some(statement) = prepared.get(sql) {
            return Ok(Some(statement.clone()));
        }
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let statement = self
            .client
            .prepare_typed(sql, &types)
            .await
            .map_err(pg("prepare"))?;
        if let Some(prepared) = &mut self.prepared {
            prepared.insert(sql, statement.clone());
        }
        Ok(Some(statement))
    }

    /// Sends, in one round trip and in this order: the pending BEGIN, the deferred writes,
    /// `last` (a statement, and whether its rows are wanted) and COMMIT when `commit`. Answers
    /// `last`. The first error of any of them is the answer (after a failed statement the
    /// server refuses the rest of the transaction, and turns the COMMIT into a rollback).
    async fn pipeline(
        &mut self,
        last: Option<(&'static str, &[Value], bool)>,
        commit: bool,
    ) -> Result<Answer, StoreError> {
        let mut answers = self.pipeline_all(last.as_slice(), commit).await?;
        Ok(answers.pop().unwrap_or(Answer::Changed(0)))
    }

    /// [`PgConn::pipeline`] for any number of statements after the deferred writes: answers
    /// each of `wanted`, in order.
    async fn pipeline_all(
        &mut self,
        wanted: &[(&'static str, &[Value], bool)],
        commit: bool,
    ) -> Result<Vec<Answer>, StoreError> {
        let deferred = std::mem::take(&mut self.deferred);
        let mut work: Vec<(&'static str, &[Value], bool)> = deferred
            .iter()
            .map(|(sql, params)| (*sql, params.as_slice(), false))
            .collect();
        work.extend_from_slice(wanted);
        let typed_params: Vec<_> = work.iter().map(|(_, params, _)| typed(params)).collect();
        let mut statements = Vec::with_capacity(work.len());
        for ((sql, _, _), params) in work.iter().zip(&typed_params) {
            statements.push(self.statement(sql, params).await?);
        }
        let begin = self.begin_pending.take();
        let client = &self.client;
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(work.len() + 2);
        if let Some(begin) = begin {
            steps.push(Box::pin(async move {
                client
                    .batch_execute(begin)
                    .await
                    .map(|()| Answer::Changed(0))
            }));
        }
        // The answers kept: those of `wanted`, after the BEGIN and the deferred writes.
        let first_wanted = steps.len() + work.len() - wanted.len();
        for (((sql, _, want_rows), params), statement) in
            work.iter().zip(&typed_params).zip(statements)
        {
            let (sql, want_rows) = (*sql, *want_rows);
            steps.push(Box::pin(async move {
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                match (statement, want_rows) {
                    (Some(s), true) => client.query(&s, &values).await.map(Answer::Rows),
                    (Some(s), false) => client.execute(&s, &values).await.map(Answer::Changed),
                    (None, true) => client.query_typed(sql, params).await.map(Answer::Rows),
                    (None, false) => client.execute_typed(sql, params).await.map(Answer::Changed),
                }
            }));
        }
        let end_of_wanted = steps.len();
        if commit {
            steps.push(Box::pin(async move {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map(|()| Answer::Changed(0))
            }));
        }
        let mut answers = Vec::with_capacity(wanted.len());
        let mut first_error = None;
        for (i, result) in in_order(steps).await.into_iter().enumerate() {
            match result {
                Ok(a) if (first_wanted..end_of_wanted).contains(&i) => answers.push(a),
                Ok(_) => {}
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(pg(if commit { "commit" } else { "statement" })(err)),
            None => Ok(answers),
        }
    }
}

/// Runs `steps` concurrently on this task, each first polled in order: a step's request is
/// queued on the connection when it is first polled, so they go out on the wire in this order
/// (`join_all` promises no polling order for long lists). The server answers in the same order,
/// so after that first pass only the earliest unfinished steps are polled again: a pipeline of
/// a thousand statements (a bulk enqueue) costs a thousand polls, not a million.
async fn in_order<T>(
    mut steps: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + '_>>>,
) -> Vec<T> {
    let mut done: Vec<Option<T>> = steps.iter().map(|_| None).collect();
    let mut sent = false;
    // Every step before this one has finished.
    let mut earliest = 0;
    std::future::poll_fn(|cx| {
        if !sent {
            sent = true;
            for (step, slot) in steps.iter_mut().zip(done.iter_mut()) {
                if let std::task::Poll::Ready(value) = step.as_mut().poll(cx) {
                    *slot = Some(value);
                }
            }
        }
        while earliest < steps.len() {
            if done[earliest].is_none() {
                match steps[earliest].as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => done[earliest] = Some(value),
                    // Its waker is registered: its answer wakes this task again.
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
            earliest += 1;
        }
        std::task::Poll::Ready(())
    })
    .await;
    done.into_iter().flatten().collect()
}

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

/// Each value with the type it is sent as.
fn typed(params: &[Value]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|value| -> (&(dyn ToSql + Sync), Type) {
            match value {
                Value::Int(v) => (v, Type::INT8),
                Value::Text(v) => (v, Type::TEXT),
                Value::OptText(v) => (v, Type::TEXT),
                Value::Time(v) => (v, Type::TIMESTAMPTZ),
                Value::OptTime(v) => (v, Type::TIMESTAMPTZ),
                Value::Texts(v) => (v, Type::TEXT_ARRAY),
                Value::Json(v) => (v, Type::JSONB),
            }
        })
        .collect()
}

fn read_rows(answer: Answer, shape: &'static [Col]) -> Result<Vec<Vec<Value>>, StoreError> {
    let Answer::Rows(rows) = answer else {
        return Ok(Vec::new());
    };
    rows.iter()
        .map(|row| {
            shape
                .iter()
                .enumerate()
                .map(|(i, col)| read(row, i, *col))
                .collect::<Result<Vec<_>, _>>()
                .map_err(pg("read row"))
        })
        .collect()
}

fn read(row: &tokio_postgres::Row, i: usize, col: Col) -> Result<Value, tokio_postgres::Error> {
    Ok(match col {
        Col::Int => match *row.columns()[i].type_() {
            Type::INT2 => Value::Int(i64::from(row.try_get::<_, i16>(i)?)),
            Type::INT4 => Value::Int(i64::from(row.try_get::<_, i32>(i)?)),
            _ => Value::Int(row.try_get(i)?),
        },
        Col::Text => Value::Text(row.try_get(i)?),
        Col::OptText => Value::OptText(row.try_get(i)?),
        Col::Time => Value::Time(row.try_get(i)?),
        Col::OptTime => Value::OptTime(row.try_get(i)?),
        Col::Json => Value::Json(row.try_get(i)?),
    })
}

impl Driver for PgConn {
    fn queries(&self) -> &'static Queries {
        &QUERIES
    }

    async fn begin(&mut self, durability: Durability) -> Result<(), StoreError> {
        if self.in_transaction {
            // The previous caller was dropped mid-transaction: none of it may be committed.
            self.client
                .batch_execute("ROLLBACK")
                .await
                .map_err(pg("rollback"))?;
        }
        self.in_transaction = true;
        self.written.clear();
        self.deferred.clear();
        self.begin_pending = Some(match durability {
            Durability::Full => BEGIN_FULL,
            Durability::Relaxed => BEGIN_RELAXED,
        });
        Ok(())
    }

    async fn end(&mut self, commit: bool) -> Result<(), StoreError> {
        if !self.in_transaction {
            // Already ended by `rows_then_commit`.
            return Ok(());
        }
        let nothing_sent = self.begin_pending.is_some();
        let ended = if nothing_sent && (!commit || self.deferred.is_empty()) {
            // Nothing reached the server: nothing to end.
            self.begin_pending = None;
            self.deferred.clear();
            Ok(())
        } else if commit {
            let committed = self.pipeline(None, true).await.map(|_| ());
            if committed.is_err() {
                // A deferred write that could not even be sent leaves the transaction open.
                let _ = self.client.batch_execute("ROLLBACK").await;
            }
            committed
        } else {
            self.deferred.clear();
            self.client
                .batch_execute("ROLLBACK")
                .await
                .map_err(pg("rollback"))
        };
        self.in_transaction = false;
        if !commit || ended.is_err() {
            self.written.clear();
        }
        ended
    }

    async fn execute(&mut self, sql: &'static str, params: &[Value]) -> Result<u64, StoreError> {
        if sql.is_empty() {
            return Ok(0);
        }
        match self.pipeline(Some((sql, params, false)), false).await? {
            Answer::Changed(n) => Ok(n),
            Answer::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    async fn rows(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let answer = self.pipeline(Some((sql, params, true)), false).await?;
        read_rows(answer, shape)
    }

    async fn rows_each(
        &mut self,
        sql: &'static str,
        params: &[Vec<Value>],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Vec<Value>>>, StoreError> {
        if params.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<(&'static str, &[Value], bool)> = params
            .iter()
            .map(|params| (sql, params.as_slice(), true))
            .collect();
        self.pipeline_all(&wanted, false)
            .await?
            .into_iter()
            .map(|answer| read_rows(answer, shape))
            .collect()
    }

    async fn defer(&mut self, sql: &'static str, params: Vec<Value>) -> Result<(), StoreError> {
        if !self.in_transaction {
            // No commit to travel with: send it now.
            return self.execute(sql, &params).await.map(|_| ());
        }
        if !sql.is_empty() {
            self.deferred.push((sql, params));
        }
        Ok(())
    }

    async fn rows_then_commit(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let alone = self.begin_pending == Some(BEGIN_FULL) && self.deferred.is_empty();
        let answer = if alone {
            // The whole transaction is this one statement, with the server's full durability:
            // sent on its own, the server commits it as it ends (BEGIN and COMMIT are two
            // statements the server need not run).
            self.begin_pending = None;
            self.pipeline(Some((sql, params, true)), false).await?
        } else {
            self.pipeline(Some((sql, params, true)), true).await?
        };
        // Committed. (After an error the transaction may still be open, if the statement could
        // not be sent at all: the `end` that follows rolls it back.)
        self.in_transaction = false;
        read_rows(answer, shape)
    }

    fn written(&mut self) -> &mut Vec<Event> {
        &mut self.written
    }
}
