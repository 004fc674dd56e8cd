//! The job state machine's steps, written once for both stores (docs/jobs.md).
//!
//! Each function here is one store operation: the order of its statements, what it checks, and
//! which events it writes in the same transaction. What the rules decide — what a finished attempt
//! becomes, when an account may act next, which operator command a state allows, what each event
//! says — are plain functions in [`crate::jobs`]. What differs between SQLite and PostgreSQL is
//! only the SQL text ([`Queries`], filled by `sqlite_jobs.rs` and `postgres_jobs.rs` under the
//! same names) and how values travel ([`Driver`]).
//!
//! A transaction is opened by [`Driver::begin`] and always ended by [`Driver::end`] (see
//! [`in_tx`]); a driver whose caller was dropped mid-transaction rolls it back before its next
//! use, so a cancelled call can never leave half a change to be committed by the next one.

use super::{EventQuery, StoreError};
use crate::events::Event;
use crate::jobs::{Job, Kind};
use std::time::SystemTime;

/// A value passed to or read from a statement, in the form both dialects can carry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
    OptText(Option<String>),
    Time(SystemTime),
    OptTime(Option<SystemTime>),
    /// A list of strings (PostgreSQL `text[]`, SQLite a JSON array read with `json_each`).
    Texts(Vec<String>),
    Json(serde_json::Value),
}

/// The type a statement's result column is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Int,
    Text,
    OptText,
    Time,
    OptTime,
    Json,
}

/// How a transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Survives a power cut: an enqueue (a lost job) and `attempting` (a second publish).
    Full,
    /// Survives a crash of the process: a lost claim or outcome is recovered by the lease rules.
    Relaxed,
}

/// Every statement the state machine runs, by name; each dialect fills in its SQL text with the
/// same parameters in the same order. An empty text means "nothing to do in this dialect".
pub(crate) struct Queries {
    pub event_insert: &'static str,
    pub event_list: &'static str,
    pub job_get: &'static str,
    pub job_get_for_update: &'static str,
    pub job_insert: &'static str,
    pub job_ids_reserve: &'static str,
    pub job_insert_many: &'static str,
    pub job_id_by_key: &'static str,
    pub job_list: &'static str,
    pub job_count_due: &'static str,
    /// One lane of an account as the tick first reads it: `(due, chores)`, see
    /// [`crate::kind::LaneLook`].
    pub lane_look: &'static str,
    /// The accounts that have due jobs.
    pub job_due_accounts: &'static str,
    pub job_count_by_state: &'static str,
    pub job_queue_by_account: &'static str,
    pub lease_sweep_attempting: &'static str,
    pub lease_sweep_claimed: &'static str,
    pub lease_sweep_uncertain: &'static str,
    pub breaker_get: &'static str,
    pub breaker_delete: &'static str,
    pub breaker_upsert: &'static str,
    /// The account lane's breaker and every pause, in one statement (the claim's first read).
    pub lane_gate: &'static str,
    /// Every pause, as one JSON array.
    pub pause_list: &'static str,
    pub pause_insert: &'static str,
    pub pause_delete: &'static str,
    pub pause_delete_all: &'static str,
    pub account_lock: &'static str,
    pub actions_in_window: &'static str,
    pub action_latest: &'static str,
    pub job_due_exists: &'static str,
    pub job_claim_next: &'static str,
    pub job_mark_attempting: &'static str,
    pub job_set_state: &'static str,
    pub job_claim_uncertain: &'static str,
    pub job_defer_uncertain: &'static str,
    pub rescue_attempting: &'static str,
    pub rescue_claimed: &'static str,
    pub rescue_uncertain: &'static str,
    pub job_retry: &'static str,
    pub job_cancel: &'static str,
    pub executor_upsert: &'static str,
    pub executor_state: &'static str,
    pub executor_tick: &'static str,
    pub lease_get: &'static str,
    pub lease_peek: &'static str,
    pub lease_extend: &'static str,
    pub lease_upsert: &'static str,
    pub lease_renew: &'static str,
    pub lease_release: &'static str,
    pub fleet_list: &'static str,
}

/// A connection of one dialect: runs the named statements and the transaction around them.
/// Methods return `impl Future + Send` so that the steps below stay `Send` for PostgreSQL; the
/// SQLite driver answers at once (it runs on the blocking pool, see `sqlite.rs`).
pub(crate) trait Driver {
    fn queries(&self) -> &'static Queries;
    fn begin(
        &mut self,
        durability: Durability,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Commits (`commit`) or rolls back the open transaction.
    fn end(
        &mut self,
        commit: bool,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Runs a statement; returns the number of rows it changed.
    fn execute(
        &mut self,
        sql: &'static str,
        params: &[Value],
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send;
    /// Runs a statement and reads its rows as `shape`.
    fn rows(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> impl std::future::Future<Output = Result<Vec<Vec<Value>>, StoreError>> + Send;
    /// Runs `sql` once for each parameter set, in order, each seeing the ones before it, and
    /// reads each one's rows as `shape` (answers in the same order). For many rows in one
    /// transaction (a bulk enqueue): SQLite runs its prepared statement in a loop; PostgreSQL
    /// sends them all in one round trip. After a failure none of the answers is given.
    fn rows_each(
        &mut self,
        sql: &'static str,
        params: &[Vec<Value>],
        shape: &'static [Col],
    ) -> impl std::future::Future<Output = Result<Vec<Vec<Vec<Value>>>, StoreError>> + Send;
    /// A write whose answer the step does not read (an event): the driver may hold it and send
    /// it with the transaction's next statement or its commit, in order, in one round trip. If it
    /// fails, the transaction fails with it (at that next statement or commit at the latest).
    fn defer(
        &mut self,
        sql: &'static str,
        params: Vec<Value>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Runs the transaction's last statement and commits with it, in one round trip where the
    /// dialect can. The transaction is over when this returns (committed on `Ok`, rolled back on
    /// `Err`); the [`Driver::end`] that follows does nothing. Nothing may be written after it.
    fn rows_then_commit(
        &mut self,
        sql: &'static str,
        params: &[Value],
        shape: &'static [Col],
    ) -> impl std::future::Future<Output = Result<Vec<Vec<Value>>, StoreError>> + Send;
    /// Events written in the current transaction, kept until it ends; after a commit they are
    /// handed to the store's observer.
    fn written(&mut self) -> &mut Vec<Event>;
}

/// Runs `body` in a transaction: committed when it returns `Ok`, rolled back otherwise. Events
/// written by a rolled-back transaction are forgotten.
macro_rules! in_tx {
    ($driver:expr, $durability:expr, $body:expr) => {{
        $driver.begin($durability).await?;
        let result = $body.await;
        let ended = $driver.end(result.is_ok()).await;
        match (result, ended) {
            (Err(err), _) => Err(err),
            (Ok(_), Err(err)) => Err(err),
            (Ok(value), Ok(())) => Ok(value),
        }
    }};
}

/// The job columns, in the order [`JOB_SHAPE`] reads them; both dialects use this list.
macro_rules! job_columns {
    () => {
        "id, kind, text, reply_to, account, idempotency_key, not_before, state, attempts, \
         max_attempts, lease_owner, lease_token, lease_expires_at, post_id, post_url, last_error, \
         created_at, updated_at, attempted_at"
    };
}
pub(crate) use job_columns;

pub(super) const JOB_SHAPE: &[Col] = &[
    Col::Int,
    Col::Text,
    Col::Text,
    Col::OptText,
    Col::Text,
    Col::OptText,
    Col::Time,
    Col::Text,
    Col::Int,
    Col::Int,
    Col::OptText,
    Col::OptText,
    Col::OptTime,
    Col::OptText,
    Col::OptText,
    Col::OptText,
    Col::Time,
    Col::Time,
    Col::OptTime,
];

const EVENT_SHAPE: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Json,
    Col::Time,
];

/// Reads a row's values in order; a value of another type than asked is a store error (it
/// would mean the SQL and its shape disagree).
pub(super) struct Reader(pub(super) std::vec::IntoIter<Value>);

impl Reader {
    fn bad(what: &str) -> StoreError {
        StoreError::Other {
            operation: "read row",
            reason: format!("expected {what}"),
        }
    }
    pub(super) fn int(&mut self) -> Result<i64, StoreError> {
        match self.0.next() {
            Some(Value::Int(v)) => Ok(v),
            _ => Err(Self::bad("an integer")),
        }
    }
    pub(super) fn text(&mut self) -> Result<String, StoreError> {
        match self.0.next() {
            Some(Value::Text(v)) => Ok(v),
            _ => Err(Self::bad("a text")),
        }
    }
    pub(super) fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.0.next() {
            Some(Value::OptText(v)) => Ok(v),
            _ => Err(Self::bad("a text or null")),
        }
    }
    pub(super) fn time(&mut self) -> Result<SystemTime, StoreError> {
        match self.0.next() {
            Some(Value::Time(v)) => Ok(v),
            _ => Err(Self::bad("a time")),
        }
    }
    pub(super) fn opt_time(&mut self) -> Result<Option<SystemTime>, StoreError> {
        match self.0.next() {
            Some(Value::OptTime(v)) => Ok(v),
            _ => Err(Self::bad("a time or null")),
        }
    }
    pub(super) fn json(&mut self) -> Result<serde_json::Value, StoreError> {
        match self.0.next() {
            Some(Value::Json(v)) => Ok(v),
            _ => Err(Self::bad("JSON")),
        }
    }
}

pub(super) fn job_from(row: Vec<Value>) -> Result<Job, StoreError> {
    let mut r = Reader(row.into_iter());
    super::JobRow {
        id: r.int()?,
        kind: r.text()?,
        text: r.text()?,
        reply_to: r.opt_text()?,
        account: r.text()?,
        idempotency_key: r.opt_text()?,
        not_before: r.time()?,
        state: r.text()?,
        attempts: r.int()?,
        max_attempts: r.int()?,
        lease_owner: r.opt_text()?,
        lease_token: r.opt_text()?,
        lease_expires_at: r.opt_time()?,
        post_id: r.opt_text()?,
        post_url: r.opt_text()?,
        last_error: r.opt_text()?,
        created_at: r.time()?,
        updated_at: r.time()?,
        attempted_at: r.opt_time()?,
    }
    .into_job()
}

pub(super) async fn jobs<D: Driver>(
    d: &mut D,
    sql: &'static str,
    params: &[Value],
) -> Result<Vec<Job>, StoreError> {
    d.rows(sql, params, JOB_SHAPE)
        .await?
        .into_iter()
        .map(job_from)
        .collect()
}

pub(super) async fn job_opt<D: Driver>(
    d: &mut D,
    sql: &'static str,
    params: &[Value],
) -> Result<Option<Job>, StoreError> {
    Ok(jobs(d, sql, params).await?.into_iter().next())
}

/// [`job_opt`] as the transaction's last statement, committed with it
/// ([`Driver::rows_then_commit`]).
pub(super) async fn job_opt_last<D: Driver>(
    d: &mut D,
    sql: &'static str,
    params: &[Value],
) -> Result<Option<Job>, StoreError> {
    let rows = d.rows_then_commit(sql, params, JOB_SHAPE).await?;
    rows.into_iter().next().map(job_from).transpose()
}

pub(super) async fn must_get<D: Driver>(d: &mut D, id: i64) -> Result<Job, StoreError> {
    let sql = d.queries().job_get;
    job_opt(d, sql, &[Value::Int(id)])
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

/// The first column of the first row, as an integer (`COUNT(*)`, an id).
pub(super) async fn scalar<D: Driver>(
    d: &mut D,
    sql: &'static str,
    params: &[Value],
) -> Result<Option<i64>, StoreError> {
    let rows = d.rows(sql, params, &[Col::Int]).await?;
    match rows.into_iter().next() {
        Some(row) => Ok(Some(Reader(row.into_iter()).int()?)),
        None => Ok(None),
    }
}

pub(super) fn kind_value(kind: Kind) -> Value {
    Value::Text(kind.as_str().to_string())
}

pub(super) fn lease_token() -> Value {
    Value::Text(uuid::Uuid::new_v4().to_string())
}

/// Writes an event inside the current transaction (sent with the transaction's next statement
/// or its commit) and keeps it for the observer.
pub(super) async fn write_event<D: Driver>(d: &mut D, event: Event) -> Result<(), StoreError> {
    let sql = d.queries().event_insert;
    d.defer(sql, event_params(&event)).await?;
    d.written().push(event);
    Ok(())
}

fn event_params(event: &Event) -> Vec<Value> {
    vec![
        Value::Text(event.id.clone()),
        Value::Text(event.event_type.clone()),
        Value::Text(event.severity.as_str().to_string()),
        Value::Text(event.message.clone()),
        Value::Json(event.event_data.clone()),
        Value::Time(event.created_at),
    ]
}

// ---- events ---------------------------------------------------------------------------------

/// Inserts one event; false when its id was already stored.
pub(crate) async fn event_insert<D: Driver>(d: &mut D, event: &Event) -> Result<bool, StoreError> {
    let sql = d.queries().event_insert;
    let changed = d.execute(sql, &event_params(event)).await?;
    Ok(changed == 1)
}

/// Events matching `query`, oldest first (the newest `limit` of them when a limit is set).
pub(crate) async fn event_list<D: Driver>(
    d: &mut D,
    query: &EventQuery,
) -> Result<Vec<Event>, StoreError> {
    let sql = d.queries().event_list;
    let limit = query.limit.map(i64::from).unwrap_or(i64::MAX);
    let rows = d
        .rows(
            sql,
            &[
                Value::Texts(query.types.clone()),
                Value::Time(query.since.unwrap_or(SystemTime::UNIX_EPOCH)),
                Value::Int(limit),
                Value::OptText(query.job_id.map(|id| id.to_string())),
            ],
            EVENT_SHAPE,
        )
        .await?;
    let mut events = rows
        .into_iter()
        .map(|row| {
            let mut r = Reader(row.into_iter());
            let (id, event_type, severity) = (r.text()?, r.text()?, r.text()?);
            Ok(Event {
                id,
                event_type,
                severity: crate::events::Severity::parse(&severity).ok_or(StoreError::Other {
                    operation: "read event",
                    reason: format!("unknown severity {severity:?}"),
                })?,
                message: r.text()?,
                event_data: r.json()?,
                created_at: r.time()?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Read newest first (so a limit keeps the newest), shown oldest first.
    events.reverse();
    Ok(events)
}

// The steps, by what they change. Declared after the macros above, which they use.
mod fleet;
mod jobs;
mod pauses;

pub(crate) use fleet::*;
pub(crate) use jobs::*;
pub(crate) use pauses::*;
