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

use super::{Enqueued, EventQuery, Rescued, StoreError};
use crate::events::{Event, Identity, Severity};
use crate::fleet::{
    decide_lease, AccountLease, ExecutorInfo, ExecutorState, FleetMember, LeaseDecision,
    LeaseOutcome,
};
use crate::jobs::{
    finished_state, transition_events, Claim, ClaimOutcome, Job, JobQuery, JobState, Kind, NewJob,
    OperatorAction, Outcome, RecentActions, LEASE_EXPIRED_AFTER_CLICK,
    PREVIOUS_RUN_ENDED_AFTER_CLICK,
};
use std::time::{Duration, SystemTime};

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
    pub job_id_by_key: &'static str,
    pub job_list: &'static str,
    pub job_count_due: &'static str,
    pub job_count_by_state: &'static str,
    pub lease_sweep_attempting: &'static str,
    pub lease_sweep_claimed: &'static str,
    pub lease_sweep_uncertain: &'static str,
    pub breaker_get: &'static str,
    pub breaker_delete: &'static str,
    pub breaker_upsert: &'static str,
    pub account_lock: &'static str,
    pub actions_in_window: &'static str,
    pub action_latest: &'static str,
    pub job_due_exists: &'static str,
    pub job_claim_next: &'static str,
    pub action_insert: &'static str,
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

const JOB_SHAPE: &[Col] = &[
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
struct Reader(std::vec::IntoIter<Value>);

impl Reader {
    fn bad(what: &str) -> StoreError {
        StoreError::Other {
            operation: "read row",
            reason: format!("expected {what}"),
        }
    }
    fn int(&mut self) -> Result<i64, StoreError> {
        match self.0.next() {
            Some(Value::Int(v)) => Ok(v),
            _ => Err(Self::bad("an integer")),
        }
    }
    fn text(&mut self) -> Result<String, StoreError> {
        match self.0.next() {
            Some(Value::Text(v)) => Ok(v),
            _ => Err(Self::bad("a text")),
        }
    }
    fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.0.next() {
            Some(Value::OptText(v)) => Ok(v),
            _ => Err(Self::bad("a text or null")),
        }
    }
    fn time(&mut self) -> Result<SystemTime, StoreError> {
        match self.0.next() {
            Some(Value::Time(v)) => Ok(v),
            _ => Err(Self::bad("a time")),
        }
    }
    fn opt_time(&mut self) -> Result<Option<SystemTime>, StoreError> {
        match self.0.next() {
            Some(Value::OptTime(v)) => Ok(v),
            _ => Err(Self::bad("a time or null")),
        }
    }
    fn json(&mut self) -> Result<serde_json::Value, StoreError> {
        match self.0.next() {
            Some(Value::Json(v)) => Ok(v),
            _ => Err(Self::bad("JSON")),
        }
    }
}

fn job_from(row: Vec<Value>) -> Result<Job, StoreError> {
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

async fn jobs<D: Driver>(
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

async fn job_opt<D: Driver>(
    d: &mut D,
    sql: &'static str,
    params: &[Value],
) -> Result<Option<Job>, StoreError> {
    Ok(jobs(d, sql, params).await?.into_iter().next())
}

async fn must_get<D: Driver>(d: &mut D, id: i64) -> Result<Job, StoreError> {
    let sql = d.queries().job_get;
    job_opt(d, sql, &[Value::Int(id)])
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

/// The first column of the first row, as an integer (`COUNT(*)`, an id).
async fn scalar<D: Driver>(
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

fn kind_value(kind: Kind) -> Value {
    Value::Text(kind.as_str().to_string())
}

fn lease_token() -> Value {
    Value::Text(uuid::Uuid::new_v4().to_string())
}

/// Writes an event inside the current transaction and keeps it for the observer.
async fn write_event<D: Driver>(d: &mut D, event: Event) -> Result<(), StoreError> {
    event_insert(d, &event).await?;
    d.written().push(event);
    Ok(())
}

// ---- events ---------------------------------------------------------------------------------

/// Inserts one event; false when its id was already stored.
pub(crate) async fn event_insert<D: Driver>(d: &mut D, event: &Event) -> Result<bool, StoreError> {
    let sql = d.queries().event_insert;
    let changed = d
        .execute(
            sql,
            &[
                Value::Text(event.id.clone()),
                Value::Text(event.event_type.clone()),
                Value::Text(event.severity.as_str().to_string()),
                Value::Text(event.message.clone()),
                Value::Json(event.event_data.clone()),
                Value::Time(event.created_at),
            ],
        )
        .await?;
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

// ---- reading jobs ---------------------------------------------------------------------------

pub(crate) async fn job_get<D: Driver>(d: &mut D, id: i64) -> Result<Option<Job>, StoreError> {
    let sql = d.queries().job_get;
    job_opt(d, sql, &[Value::Int(id)]).await
}

/// Jobs matching `query`, oldest first (the newest `limit` of them when a limit is set).
pub(crate) async fn job_list<D: Driver>(
    d: &mut D,
    query: &JobQuery,
) -> Result<Vec<Job>, StoreError> {
    let sql = d.queries().job_list;
    jobs(
        d,
        sql,
        &[
            Value::Texts(query.states.clone()),
            Value::OptText(query.kind.map(|k| k.as_str().to_string())),
            Value::Int(query.limit.map(i64::from).unwrap_or(i64::MAX)),
        ],
    )
    .await
}

/// Jobs of `kind` due at `now` (of one account, or of all).
pub(crate) async fn job_count_due<D: Driver>(
    d: &mut D,
    kind: Kind,
    account: Option<&str>,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let sql = d.queries().job_count_due;
    let params = [
        kind_value(kind),
        Value::OptText(account.map(str::to_string)),
        Value::Time(now),
    ];
    Ok(scalar(d, sql, &params).await?.unwrap_or(0).max(0) as u64)
}

pub(crate) async fn job_count_by_state<D: Driver>(
    d: &mut D,
) -> Result<Vec<(Kind, String, u64)>, StoreError> {
    let sql = d.queries().job_count_by_state;
    let rows = d.rows(sql, &[], &[Col::Text, Col::Text, Col::Int]).await?;
    let mut counts = Vec::new();
    for row in rows {
        let mut r = Reader(row.into_iter());
        let (kind, state, count) = (r.text()?, r.text()?, r.int()?);
        if let Some(kind) = Kind::parse(&kind) {
            counts.push((kind, state, count.max(0) as u64));
        }
    }
    Ok(counts)
}

// ---- enqueue --------------------------------------------------------------------------------

/// Adds a job, or returns the one that already has its idempotency key.
pub(crate) async fn job_enqueue<D: Driver + Send>(
    d: &mut D,
    job: &NewJob,
    now: SystemTime,
) -> Result<Enqueued, StoreError> {
    in_tx!(d, Durability::Full, enqueue_in(d, job, now))
}

async fn enqueue_in<D: Driver>(
    d: &mut D,
    job: &NewJob,
    now: SystemTime,
) -> Result<Enqueued, StoreError> {
    let q = d.queries();
    let inserted = scalar(
        d,
        q.job_insert,
        &[
            kind_value(job.kind),
            Value::Text(job.text.clone()),
            Value::OptText(job.reply_to.clone()),
            Value::Text(job.account.clone()),
            Value::OptText(job.idempotency_key.clone()),
            Value::Time(job.not_before),
            Value::Int(i64::from(job.max_attempts)),
            Value::Time(now),
        ],
    )
    .await?;
    if let Some(id) = inserted {
        return Ok(Enqueued::Created(must_get(d, id).await?));
    }
    // The key is taken: the existing job.
    let id = scalar(
        d,
        q.job_id_by_key,
        &[Value::OptText(job.idempotency_key.clone())],
    )
    .await?
    .ok_or(StoreError::Other {
        operation: "enqueue",
        reason: "the insert was refused, yet no job has its key".into(),
    })?;
    Ok(Enqueued::Exists(must_get(d, id).await?))
}

// ---- claims ---------------------------------------------------------------------------------

/// Expired leases: `attempting` → `uncertain` (with its event: the click may have happened),
/// `claimed` → `queued` (it never was), verification leases on `uncertain` jobs dropped.
async fn sweep_expired<D: Driver>(
    d: &mut D,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let q = d.queries();
    let params = [kind_value(kind), Value::Time(now)];
    let swept = jobs(
        d,
        q.lease_sweep_attempting,
        &[
            kind_value(kind),
            Value::Time(now),
            Value::Text(LEASE_EXPIRED_AFTER_CLICK.into()),
        ],
    )
    .await?;
    for job in swept {
        let outcome = Outcome::Uncertain {
            error: LEASE_EXPIRED_AFTER_CLICK.into(),
        };
        write_event(d, transition_events::outcome(&job, &outcome, identity, now)).await?;
    }
    d.execute(q.lease_sweep_claimed, &params).await?;
    d.execute(q.lease_sweep_uncertain, &params).await?;
    Ok(())
}

/// The account's breaker for the lane: `Some(until)` while open; an expired one is removed,
/// with its event.
async fn breaker_check<D: Driver>(
    d: &mut D,
    account: &str,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<Option<SystemTime>, StoreError> {
    let Some(until) = breaker(d, account, kind).await? else {
        return Ok(None);
    };
    if until > now {
        return Ok(Some(until));
    }
    let sql = d.queries().breaker_delete;
    d.execute(sql, &[Value::Text(account.into()), kind_value(kind)])
        .await?;
    write_event(
        d,
        transition_events::breaker_cleared(account, kind, until, identity, now),
    )
    .await?;
    Ok(None)
}

/// What the store knows of the account's recent actions, for [`Claim::blocked_until`].
async fn recent_actions<D: Driver>(d: &mut D, claim: &Claim) -> Result<RecentActions, StoreError> {
    let q = d.queries();
    let account = Value::Text(claim.account.clone());
    let window = d
        .rows(
            q.actions_in_window,
            &[
                account.clone(),
                kind_value(claim.kind),
                Value::Time(claim.hour_ago()),
            ],
            &[Col::Int, Col::OptTime],
        )
        .await?;
    let mut recent = RecentActions::default();
    if let Some(row) = window.into_iter().next() {
        let mut r = Reader(row.into_iter());
        recent.lane_in_last_hour = r.int()?.max(0) as u64;
        recent.lane_oldest_in_hour = r.opt_time()?;
    }
    if !(claim.limits.min_gap + claim.gap_jitter).is_zero() {
        let latest = d.rows(q.action_latest, &[account], &[Col::OptTime]).await?;
        if let Some(row) = latest.into_iter().next() {
            recent.latest_any_lane = Reader(row.into_iter()).opt_time()?;
        }
    }
    Ok(recent)
}

/// Claims the next due job of the claim's account and lane, within its rate limits and
/// breaker, and logs the action (the rate limits count it from now on). `sweep`: also end
/// expired leases first.
pub(crate) async fn job_claim_next<D: Driver + Send>(
    d: &mut D,
    claim: &Claim,
    identity: &Identity,
    sweep: bool,
) -> Result<ClaimOutcome, StoreError> {
    in_tx!(d, Durability::Relaxed, claim_in(d, claim, identity, sweep))
}

async fn claim_in<D: Driver>(
    d: &mut D,
    claim: &Claim,
    identity: &Identity,
    sweep: bool,
) -> Result<ClaimOutcome, StoreError> {
    let q = d.queries();
    let account = Value::Text(claim.account.clone());
    let now = Value::Time(claim.now);
    if claim.limited() {
        // Executors sharing the account decide one at a time, so the limits hold fleet-wide.
        d.execute(q.account_lock, std::slice::from_ref(&account))
            .await?;
    }
    if sweep {
        sweep_expired(d, claim.kind, identity, claim.now).await?;
    }
    if let Some(until) = breaker_check(d, &claim.account, claim.kind, identity, claim.now).await? {
        return Ok(ClaimOutcome::BreakerOpen { until });
    }
    if claim.limited() {
        if let Some(until) = claim.blocked_until(&recent_actions(d, claim).await?) {
            let due = scalar(d, q.job_due_exists, &[kind_value(claim.kind), account, now]).await?;
            return Ok(match due {
                Some(_) => ClaimOutcome::RateLimited { until },
                None => ClaimOutcome::Empty,
            });
        }
    }
    let expires = claim.now + claim.lease_for;
    let claimed = job_opt(
        d,
        q.job_claim_next,
        &[
            kind_value(claim.kind),
            account,
            now.clone(),
            Value::Text(claim.owner.clone()),
            lease_token(),
            Value::Time(expires),
        ],
    )
    .await?;
    let Some(job) = claimed else {
        return Ok(ClaimOutcome::Empty);
    };
    d.execute(
        q.action_insert,
        &[
            Value::Int(job.id),
            kind_value(job.kind),
            Value::Text(job.account.clone()),
            now,
        ],
    )
    .await?;
    Ok(ClaimOutcome::Claimed(Box::new(job)))
}

/// Loads the job for a change and checks that `token` still holds it in one of `states`.
async fn fenced<D: Driver>(
    d: &mut D,
    id: i64,
    token: &str,
    states: &[&str],
) -> Result<Job, StoreError> {
    let sql = d.queries().job_get_for_update;
    let job = job_opt(d, sql, &[Value::Int(id)])
        .await?
        .ok_or(StoreError::NotFound { job_id: id })?;
    let holds =
        job.state.lease().is_some_and(|l| l.token == token) && states.contains(&job.state.name());
    if holds {
        Ok(job)
    } else {
        Err(StoreError::Fenced { job_id: id })
    }
}

/// The point of no return, committed with full durability before the click. Refused once the
/// lease has expired (another executor may be about to treat the job as abandoned).
pub(crate) async fn job_mark_attempting<D: Driver + Send>(
    d: &mut D,
    id: i64,
    token: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    in_tx!(d, Durability::Full, mark_attempting_in(d, id, token, now))
}

async fn mark_attempting_in<D: Driver>(
    d: &mut D,
    id: i64,
    token: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let sql = d.queries().job_mark_attempting;
    let marked = job_opt(
        d,
        sql,
        &[Value::Int(id), Value::Text(token.into()), Value::Time(now)],
    )
    .await?;
    match marked {
        Some(job) => Ok(job),
        None if job_get(d, id).await?.is_none() => Err(StoreError::NotFound { job_id: id }),
        None => Err(StoreError::Fenced { job_id: id }),
    }
}

/// Writes a job's new state (and drops its lease).
async fn set_state<D: Driver>(
    d: &mut D,
    id: i64,
    state: &JobState,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let (post_id, url, error, not_before) = match state {
        JobState::Succeeded { post_id, url } => (post_id.clone(), url.clone(), None, None),
        JobState::Failed { error, retry_at } => (None, None, Some(error.clone()), Some(*retry_at)),
        JobState::Uncertain { error, .. } | JobState::Dead { error } => {
            (None, None, Some(error.clone()), None)
        }
        JobState::Queued => (None, None, None, Some(now)),
        JobState::Claimed(_) | JobState::Attempting(_) | JobState::Cancelled => {
            return Err(StoreError::Other {
                operation: "set state",
                reason: format!("{} is not an outcome", state.name()),
            })
        }
    };
    let sql = d.queries().job_set_state;
    job_opt(
        d,
        sql,
        &[
            Value::Int(id),
            Value::Text(state.name().into()),
            Value::OptText(post_id),
            Value::OptText(url),
            Value::OptText(error),
            Value::OptTime(not_before),
            Value::Time(now),
        ],
    )
    .await?
    .ok_or(StoreError::NotFound { job_id: id })
}

/// Records how an attempt ended, with its event. Fenced by the lease token.
pub(crate) async fn job_finish<D: Driver + Send>(
    d: &mut D,
    id: i64,
    token: &str,
    outcome: &Outcome,
    identity: &Identity,
    now: SystemTime,
    retry_jitter: f64,
) -> Result<Job, StoreError> {
    in_tx!(
        d,
        Durability::Relaxed,
        finish_in(d, id, token, outcome, identity, now, retry_jitter)
    )
}

async fn finish_in<D: Driver>(
    d: &mut D,
    id: i64,
    token: &str,
    outcome: &Outcome,
    identity: &Identity,
    now: SystemTime,
    retry_jitter: f64,
) -> Result<Job, StoreError> {
    let job = fenced(d, id, token, &["claimed", "attempting"]).await?;
    let state = finished_state(&job, outcome, now, retry_jitter);
    let done = set_state(d, id, &state, now).await?;
    write_event(d, transition_events::outcome(&done, outcome, identity, now)).await?;
    Ok(done)
}

// ---- unknown outcomes -----------------------------------------------------------------------

/// Leases one `uncertain` job of the account's lane for a verification on the site.
pub(crate) async fn job_claim_uncertain<D: Driver + Send>(
    d: &mut D,
    kind: Kind,
    account: &str,
    owner: &str,
    lease_for: Duration,
    now: SystemTime,
) -> Result<Option<Job>, StoreError> {
    let sql = d.queries().job_claim_uncertain;
    let params = [
        kind_value(kind),
        Value::Text(account.into()),
        Value::Time(now),
        Value::Text(owner.into()),
        lease_token(),
        Value::Time(now + lease_for),
    ];
    in_tx!(d, Durability::Relaxed, job_opt(d, sql, &params))
}

/// The verification's answer: found → `succeeded` (with its event); not found → `queued`.
pub(crate) async fn job_resolve_uncertain<D: Driver + Send>(
    d: &mut D,
    id: i64,
    token: &str,
    found: Option<(Option<String>, Option<String>)>,
    identity: &Identity,
    now: SystemTime,
) -> Result<Job, StoreError> {
    in_tx!(
        d,
        Durability::Relaxed,
        resolve_in(d, id, token, found, identity, now)
    )
}

async fn resolve_in<D: Driver>(
    d: &mut D,
    id: i64,
    token: &str,
    found: Option<(Option<String>, Option<String>)>,
    identity: &Identity,
    now: SystemTime,
) -> Result<Job, StoreError> {
    fenced(d, id, token, &["uncertain"]).await?;
    let (done, resolution) = match &found {
        Some((post_id, url)) => {
            let outcome = Outcome::Succeeded {
                post_id: post_id.clone(),
                url: url.clone(),
            };
            let state = JobState::Succeeded {
                post_id: post_id.clone(),
                url: url.clone(),
            };
            let done = set_state(d, id, &state, now).await?;
            write_event(
                d,
                transition_events::outcome(&done, &outcome, identity, now),
            )
            .await?;
            (done, "found on the site: succeeded")
        }
        None => (
            set_state(d, id, &JobState::Queued, now).await?,
            "not on the site: queued again",
        ),
    };
    write_event(
        d,
        transition_events::rescued(&done, found.is_some(), resolution, identity, now),
    )
    .await?;
    Ok(done)
}

/// The lookup could not search the whole window since the attempt: the job stays `uncertain`
/// (never queued again blind), is not looked up again before `retry_at`, and the operator is told
/// by its event.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn job_defer_uncertain<D: Driver + Send>(
    d: &mut D,
    id: i64,
    token: &str,
    reason: &str,
    retry_at: SystemTime,
    identity: &Identity,
    now: SystemTime,
) -> Result<Job, StoreError> {
    in_tx!(d, Durability::Relaxed, async {
        fenced(d, id, token, &["uncertain"]).await?;
        let sql = d.queries().job_defer_uncertain;
        let params = [
            Value::Int(id),
            Value::Text(reason.into()),
            Value::Time(retry_at),
            Value::Time(now),
        ];
        let job = job_opt(d, sql, &params)
            .await?
            .ok_or(StoreError::NotFound { job_id: id })?;
        write_event(
            d,
            transition_events::lookup_incomplete(&job, reason, retry_at, identity, now),
        )
        .await?;
        Ok(job)
    })
}

/// At start: jobs still leased to `owner` by an earlier run become `uncertain` (if they were
/// `attempting`, with the event) or `queued` (if only `claimed`).
pub(crate) async fn job_rescue_owner<D: Driver + Send>(
    d: &mut D,
    owner: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Rescued, StoreError> {
    in_tx!(d, Durability::Relaxed, rescue_in(d, owner, identity, now))
}

async fn rescue_in<D: Driver>(
    d: &mut D,
    owner: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Rescued, StoreError> {
    let q = d.queries();
    let params = [Value::Text(owner.into()), Value::Time(now)];
    let uncertain = jobs(
        d,
        q.rescue_attempting,
        &[
            Value::Text(owner.into()),
            Value::Time(now),
            Value::Text(PREVIOUS_RUN_ENDED_AFTER_CLICK.into()),
        ],
    )
    .await?;
    for job in &uncertain {
        let outcome = Outcome::Uncertain {
            error: PREVIOUS_RUN_ENDED_AFTER_CLICK.into(),
        };
        write_event(d, transition_events::outcome(job, &outcome, identity, now)).await?;
    }
    let requeued = d.execute(q.rescue_claimed, &params).await?;
    d.execute(q.rescue_uncertain, &params).await?;
    Ok(Rescued {
        uncertain: uncertain.len() as u64,
        requeued,
    })
}

// ---- the operator ---------------------------------------------------------------------------

/// `retry` or `cancel`, by the rules of [`OperatorAction::allowed`].
pub(crate) async fn job_operator<D: Driver + Send>(
    d: &mut D,
    id: i64,
    action: OperatorAction,
    now: SystemTime,
) -> Result<Job, StoreError> {
    in_tx!(d, Durability::Relaxed, operator_in(d, id, action, now))
}

async fn operator_in<D: Driver>(
    d: &mut D,
    id: i64,
    action: OperatorAction,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let q = d.queries();
    let job = job_opt(d, q.job_get_for_update, &[Value::Int(id)])
        .await?
        .ok_or(StoreError::NotFound { job_id: id })?;
    if !action.allowed(&job.state) {
        return Err(StoreError::Transition {
            job_id: id,
            state: job.state.name().to_string(),
            action: action.name(),
        });
    }
    let sql = match action {
        OperatorAction::Retry => q.job_retry,
        OperatorAction::Cancel => q.job_cancel,
    };
    job_opt(d, sql, &[Value::Int(id), Value::Time(now)])
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

// ---- 429 breakers ---------------------------------------------------------------------------

/// The site answered 429 for `account`: its `kind` lane pauses until `until`, with the event.
pub(crate) async fn breaker_open<D: Driver + Send>(
    d: &mut D,
    account: &str,
    kind: Kind,
    until: SystemTime,
    reason: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let sql = d.queries().breaker_upsert;
    let params = [
        Value::Text(account.into()),
        kind_value(kind),
        Value::Time(until),
        Value::Text(reason.into()),
    ];
    let event = transition_events::breaker_opened(account, kind, until, reason, identity, now);
    in_tx!(d, Durability::Relaxed, async {
        d.execute(sql, &params).await?;
        write_event(d, event).await
    })
}

/// The account's breaker for the lane, if one is recorded (it may already have expired).
pub(crate) async fn breaker<D: Driver>(
    d: &mut D,
    account: &str,
    kind: Kind,
) -> Result<Option<SystemTime>, StoreError> {
    let sql = d.queries().breaker_get;
    let rows = d
        .rows(
            sql,
            &[Value::Text(account.into()), kind_value(kind)],
            &[Col::Time],
        )
        .await?;
    match rows.into_iter().next() {
        Some(row) => Ok(Some(Reader(row.into_iter()).time()?)),
        None => Ok(None),
    }
}

// ---- the fleet ------------------------------------------------------------------------------

/// At start: the executor is in the registry, as a standby until it holds its account.
pub(crate) async fn executor_register<D: Driver + Send>(
    d: &mut D,
    info: &ExecutorInfo,
    now: SystemTime,
) -> Result<(), StoreError> {
    let sql = d.queries().executor_upsert;
    let params = [
        Value::Text(info.id.clone()),
        Value::Text(info.account.clone()),
        Value::Text(info.host.clone()),
        Value::Int(i64::from(info.pid)),
        Value::Text(info.version.clone()),
        Value::Text(info.run_id.clone()),
        Value::Time(info.started_at),
        Value::Time(now),
    ];
    in_tx!(d, Durability::Relaxed, async {
        d.execute(sql, &params).await.map(|_| ())
    })
}

/// Holds (takes, renews) the account's lease for `me`, or says who holds it. Taking over a
/// lapsed lease of another executor writes the failover event; the executors it took over from
/// lose their `claimed` jobs to the queue at once (they can no longer mark them `attempting`);
/// their `attempting` ones become uncertain when those jobs' own leases run out.
pub(crate) async fn account_lease_hold<D: Driver + Send>(
    d: &mut D,
    account: &str,
    me: &str,
    ttl: Duration,
    identity: &Identity,
    now: SystemTime,
) -> Result<LeaseOutcome, StoreError> {
    in_tx!(
        d,
        Durability::Relaxed,
        lease_hold_in(d, account, me, ttl, identity, now)
    )
}

async fn lease_hold_in<D: Driver>(
    d: &mut D,
    account: &str,
    me: &str,
    ttl: Duration,
    identity: &Identity,
    now: SystemTime,
) -> Result<LeaseOutcome, StoreError> {
    let q = d.queries();
    let account_value = Value::Text(account.into());
    d.execute(q.account_lock, std::slice::from_ref(&account_value))
        .await?;
    let current = d
        .rows(
            q.lease_get,
            std::slice::from_ref(&account_value),
            &[Col::Text, Col::Text, Col::Text, Col::Time, Col::Time],
        )
        .await?
        .into_iter()
        .next()
        .map(|row| {
            let mut r = Reader(row.into_iter());
            Ok::<_, StoreError>(AccountLease {
                account: r.text()?,
                holder: r.text()?,
                token: r.text()?,
                acquired_at: r.time()?,
                expires_at: r.time()?,
            })
        })
        .transpose()?;
    let until = now + ttl;
    let outcome = match decide_lease(current.as_ref(), me, now) {
        LeaseDecision::Renew => {
            d.execute(
                q.lease_renew,
                &[account_value, Value::Text(me.into()), Value::Time(until)],
            )
            .await?;
            LeaseOutcome::Held {
                until,
                took_over_from: None,
            }
        }
        LeaseDecision::Take { from } => {
            d.execute(
                q.lease_upsert,
                &[
                    account_value,
                    Value::Text(me.into()),
                    lease_token(),
                    Value::Time(now),
                    Value::Time(until),
                ],
            )
            .await?;
            if let Some(previous) = &from {
                d.execute(
                    q.rescue_claimed,
                    &[Value::Text(previous.clone()), Value::Time(now)],
                )
                .await?;
                write_event(
                    d,
                    Event::at(
                        identity,
                        crate::events::FAILOVER,
                        Severity::Warning,
                        format!(
                            "took over account {account:?} from {previous} (its lease had lapsed)"
                        ),
                        serde_json::json!({ "account": account, "from": previous, "to": me }),
                        now,
                    ),
                )
                .await?;
            }
            LeaseOutcome::Held {
                until,
                took_over_from: from,
            }
        }
        LeaseDecision::Wait { holder, until } => LeaseOutcome::Standby { holder, until },
    };
    let state = match outcome {
        LeaseOutcome::Held { .. } => ExecutorState::Active,
        LeaseOutcome::Standby { .. } => ExecutorState::Standby,
    };
    d.execute(
        q.executor_state,
        &[
            Value::Text(me.into()),
            Value::Text(state.as_str().into()),
            Value::Time(now),
        ],
    )
    .await?;
    Ok(outcome)
}

/// After each tick: the registry shows it (and that the executor lives).
pub(crate) async fn executor_heartbeat<D: Driver + Send>(
    d: &mut D,
    id: &str,
    last_tick: &serde_json::Value,
    now: SystemTime,
) -> Result<(), StoreError> {
    let sql = d.queries().executor_tick;
    let params = [
        Value::Text(id.into()),
        Value::Json(last_tick.clone()),
        Value::Time(now),
    ];
    in_tx!(d, Durability::Relaxed, async {
        d.execute(sql, &params).await.map(|_| ())
    })
}

/// At an orderly exit: stopped in the registry, and the account's lease ended at once, so a
/// standby takes over without waiting for it to lapse.
pub(crate) async fn executor_stopped<D: Driver + Send>(
    d: &mut D,
    id: &str,
    account: &str,
    now: SystemTime,
) -> Result<(), StoreError> {
    let q = d.queries();
    in_tx!(d, Durability::Relaxed, async {
        d.execute(
            q.executor_state,
            &[
                Value::Text(id.into()),
                Value::Text(ExecutorState::Stopped.as_str().into()),
                Value::Time(now),
            ],
        )
        .await?;
        d.execute(
            q.lease_release,
            &[Value::Text(account.into()), Value::Text(id.into())],
        )
        .await
        .map(|_| ())
    })
}

/// Every registered executor with its account's lease, by account.
pub(crate) async fn fleet<D: Driver>(d: &mut D) -> Result<Vec<FleetMember>, StoreError> {
    let sql = d.queries().fleet_list;
    let shape = &[
        Col::Text,
        Col::Text,
        Col::Text,
        Col::Int,
        Col::Text,
        Col::Text,
        Col::Time,
        Col::Time,
        Col::OptTime,
        Col::Text,
        Col::Json,
        Col::OptText,
        Col::OptTime,
    ];
    let rows = d.rows(sql, &[], shape).await?;
    rows.into_iter()
        .map(|row| {
            let mut r = Reader(row.into_iter());
            let (id, account, host, pid) = (r.text()?, r.text()?, r.text()?, r.int()?);
            let (version, run_id, started_at, heartbeat_at) =
                (r.text()?, r.text()?, r.time()?, r.time()?);
            let last_tick_at = r.opt_time()?;
            let state = r.text()?;
            let last_tick = r.json()?;
            let lease = match (r.opt_text()?, r.opt_time()?) {
                (Some(holder), Some(until)) => Some((holder, until)),
                _ => None,
            };
            Ok(FleetMember {
                id,
                account,
                host,
                pid: u32::try_from(pid).unwrap_or_default(),
                version,
                run_id,
                started_at,
                heartbeat_at,
                last_tick_at,
                state: ExecutorState::parse(&state).ok_or(StoreError::Other {
                    operation: "read fleet",
                    reason: format!("unknown executor state {state:?}"),
                })?,
                last_tick,
                lease,
            })
        })
        .collect()
}
