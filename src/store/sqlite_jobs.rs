//! The job queue on SQLite. Every write runs in a `BEGIN IMMEDIATE` transaction, so one writer
//! at a time decides (claims, rate limits, fencing) across every process sharing the file; the
//! events a transition writes commit with it. The logic mirrors `postgres_jobs.rs` step by step;
//! the shared store suite keeps them equal.

use super::{outcome_event, Enqueued, JobRow, Rescued, StoreError, JOB_COLUMNS};
use crate::clock::{format_ts, parse_ts};
use crate::events::{self, Event, Identity, Severity};
use crate::jobs::{
    retry_delay, Claim, ClaimOutcome, Job, JobQuery, JobState, Kind, NewJob, Outcome,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::json;
use std::time::{Duration, SystemTime};

type Sql<T> = rusqlite::Result<T>;

/// A conversion failure inside a row (kept as a rusqlite error so `?` works in closures).
fn conversion(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        what.to_string().into(),
    )
}

fn time(text: String) -> Sql<SystemTime> {
    parse_ts(&text).ok_or_else(|| conversion("bad timestamp"))
}

fn row_to_job_row(row: &rusqlite::Row<'_>) -> Sql<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        text: row.get(2)?,
        reply_to: row.get(3)?,
        account: row.get(4)?,
        idempotency_key: row.get(5)?,
        not_before: time(row.get(6)?)?,
        state: row.get(7)?,
        attempts: row.get(8)?,
        max_attempts: row.get(9)?,
        lease_owner: row.get(10)?,
        lease_token: row.get(11)?,
        lease_expires_at: row.get::<_, Option<String>>(12)?.map(time).transpose()?,
        post_id: row.get(13)?,
        post_url: row.get(14)?,
        last_error: row.get(15)?,
        created_at: time(row.get(16)?)?,
        updated_at: time(row.get(17)?)?,
    })
}

/// Result of the sync layer: a SQL error, or a store-level one (fenced, not found, …).
pub(crate) enum JobsError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for JobsError {
    fn from(err: rusqlite::Error) -> Self {
        JobsError::Sql(err)
    }
}

impl From<StoreError> for JobsError {
    fn from(err: StoreError) -> Self {
        JobsError::Store(err)
    }
}

type Res<T> = Result<T, JobsError>;

fn get(conn: &Connection, id: i64) -> Res<Option<Job>> {
    let row = conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            params![id],
            row_to_job_row,
        )
        .optional()?;
    Ok(row.map(JobRow::into_job).transpose()?)
}

pub(crate) fn get_job(conn: &mut Connection, id: i64) -> Res<Option<Job>> {
    get(conn, id)
}

fn must_get(conn: &Connection, id: i64) -> Res<Job> {
    get(conn, id)?.ok_or(JobsError::Store(StoreError::NotFound { job_id: id }))
}

pub(crate) fn insert_event(conn: &Connection, event: &Event) -> Sql<bool> {
    let changed = conn.execute(
        "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        params![
            event.id,
            event.event_type,
            event.severity.as_str(),
            event.message,
            event.event_data.to_string(),
            format_ts(event.created_at),
        ],
    )?;
    Ok(changed == 1)
}

fn immediate(conn: &mut Connection) -> Sql<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Runs `f` with FULL sync, so its commit survives a power cut: for the commits whose loss
/// would do harm (an enqueue, the `attempting` mark). The connection's default is NORMAL.
fn durable<T>(conn: &mut Connection, f: impl FnOnce(&mut Connection) -> Res<T>) -> Res<T> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    let result = f(conn);
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    result
}

pub(crate) fn enqueue(conn: &mut Connection, job: &NewJob, now: SystemTime) -> Res<Enqueued> {
    durable(conn, |conn| enqueue_tx(conn, job, now))
}

fn enqueue_tx(conn: &mut Connection, job: &NewJob, now: SystemTime) -> Res<Enqueued> {
    let tx = immediate(conn)?;
    if let Some(key) = &job.idempotency_key {
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM jobs WHERE idempotency_key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            let job = must_get(&tx, id)?;
            tx.commit()?;
            return Ok(Enqueued::Exists(job));
        }
    }
    let now_text = format_ts(now);
    tx.execute(
        "INSERT INTO jobs (kind, text, reply_to, account, idempotency_key, not_before, state, max_attempts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?8)",
        params![
            job.kind.as_str(),
            job.text,
            job.reply_to,
            job.account,
            job.idempotency_key,
            format_ts(job.not_before),
            job.max_attempts,
            now_text,
        ],
    )?;
    let id = tx.last_insert_rowid();
    let created = must_get(&tx, id)?;
    tx.commit()?;
    Ok(Enqueued::Created(created))
}

pub(crate) fn list(conn: &Connection, query: &JobQuery) -> Res<Vec<Job>> {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    if !query.states.is_empty() {
        let marks: Vec<String> = query
            .states
            .iter()
            .map(|s| {
                args.push(s.clone());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND state IN ({})", marks.join(",")));
    }
    if let Some(kind) = query.kind {
        args.push(kind.as_str().to_string());
        sql.push_str(&format!(" AND kind = ?{}", args.len()));
    }
    sql.push_str(" ORDER BY id");
    if let Some(limit) = query.limit {
        sql = format!("SELECT * FROM ({sql} DESC LIMIT {limit}) ORDER BY id");
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), row_to_job_row)?
        .collect::<Sql<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(JobRow::into_job)
        .collect::<Result<_, _>>()?)
}

pub(crate) fn count_due(conn: &Connection, kind: Kind, now: SystemTime) -> Res<u64> {
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND state IN ('queued', 'failed') AND not_before <= ?2",
        params![kind.as_str(), format_ts(now)],
        |r| r.get(0),
    )?;
    Ok(count.max(0) as u64)
}

pub(crate) fn count_by_state(conn: &mut Connection) -> Res<Vec<(Kind, String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Sql<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, state, n)| Some((Kind::parse(&kind)?, state, n.max(0) as u64)))
        .collect())
}

/// Sweeps leases that expired: `attempting` → `uncertain` (with its event), `claimed` →
/// `queued`, verification leases on `uncertain` jobs dropped.
fn sweep_expired(
    tx: &Transaction<'_>,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Res<()> {
    let now_text = format_ts(now);
    let mut stmt = tx.prepare(
        "UPDATE jobs SET state = 'uncertain', last_error = 'lease expired after the irreversible step',
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'attempting' AND lease_expires_at < ?2 RETURNING id",
    )?;
    let ids = stmt
        .query_map(params![kind.as_str(), now_text], |r| r.get::<_, i64>(0))?
        .collect::<Sql<Vec<_>>>()?;
    for id in ids {
        let job = must_get(tx, id)?;
        let outcome = Outcome::Uncertain {
            error: "lease expired after the irreversible step".into(),
        };
        insert_event(tx, &outcome_event(&job, &outcome, identity, now))?;
    }
    tx.execute(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'claimed' AND lease_expires_at < ?2",
        params![kind.as_str(), now_text],
    )?;
    tx.execute(
        "UPDATE jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?2
         WHERE kind = ?1 AND state = 'uncertain' AND lease_expires_at < ?2",
        params![kind.as_str(), now_text],
    )?;
    Ok(())
}

/// The breaker: `Some(until)` while open; an expired one is removed with its event.
fn breaker_check(
    tx: &Transaction<'_>,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Res<Option<SystemTime>> {
    let until: Option<String> = tx
        .query_row(
            "SELECT until FROM lane_breakers WHERE kind = ?1",
            params![kind.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(until) = until.map(time).transpose()? else {
        return Ok(None);
    };
    if until > now {
        return Ok(Some(until));
    }
    tx.execute(
        "DELETE FROM lane_breakers WHERE kind = ?1",
        params![kind.as_str()],
    )?;
    insert_event(
        tx,
        &Event::at(
            identity,
            events::RATE_LIMIT_CLEARED,
            Severity::Info,
            format!("{} lane resumed after the site's rate limit", kind.as_str()),
            json!({ "kind": kind.as_str(), "until": format_ts(until) }),
            now,
        ),
    )?;
    Ok(None)
}

/// When `account` may act next in this lane (`None`: now).
fn account_blocked_until(
    tx: &Transaction<'_>,
    claim: &Claim,
    account: &str,
) -> Res<Option<SystemTime>> {
    let mut until: Option<SystemTime> = None;
    if let Some(per_hour) = claim.limits.per_hour {
        let hour_ago = claim
            .now
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (count, oldest): (i64, Option<String>) = tx.query_row(
            "SELECT COUNT(*), MIN(started_at) FROM job_actions WHERE account = ?1 AND kind = ?2 AND started_at > ?3",
            params![account, claim.kind.as_str(), format_ts(hour_ago)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count >= i64::from(per_hour) {
            let free_at = match oldest.map(time).transpose()? {
                Some(oldest) => oldest + Duration::from_secs(3600),
                // per_hour = 0: the lane is paused; look again in a minute.
                None => claim.now + Duration::from_secs(60),
            };
            until = Some(free_at);
        }
    }
    let gap = claim.limits.min_gap + claim.gap_jitter;
    if !gap.is_zero() {
        let last: Option<String> = tx.query_row(
            "SELECT MAX(started_at) FROM job_actions WHERE account = ?1",
            params![account],
            |r| r.get(0),
        )?;
        if let Some(last) = last.map(time).transpose()? {
            let free_at = last + gap;
            if free_at > claim.now {
                until = Some(until.map_or(free_at, |u| u.max(free_at)));
            }
        }
    }
    Ok(until)
}

pub(crate) fn claim_next(
    conn: &mut Connection,
    claim: &Claim,
    identity: &Identity,
    sweep: bool,
) -> Res<ClaimOutcome> {
    let tx = immediate(conn)?;
    if sweep {
        sweep_expired(&tx, claim.kind, identity, claim.now)?;
    }
    if let Some(until) = breaker_check(&tx, claim.kind, identity, claim.now)? {
        tx.commit()?;
        return Ok(ClaimOutcome::BreakerOpen { until });
    }
    let now_text = format_ts(claim.now);
    let accounts: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT account FROM jobs WHERE kind = ?1 AND state IN ('queued', 'failed') AND not_before <= ?2
             GROUP BY account ORDER BY MIN(not_before), MIN(id)",
        )?;
        let rows = stmt.query_map(params![claim.kind.as_str(), now_text], |r| r.get(0))?;
        rows.collect::<Sql<Vec<_>>>()?
    };
    if accounts.is_empty() {
        tx.commit()?;
        return Ok(ClaimOutcome::Empty);
    }
    let mut earliest: Option<SystemTime> = None;
    for account in accounts {
        if let Some(until) = account_blocked_until(&tx, claim, &account)? {
            earliest = Some(earliest.map_or(until, |e| e.min(until)));
            continue;
        }
        let id: i64 = tx.query_row(
            "SELECT id FROM jobs WHERE kind = ?1 AND account = ?2 AND state IN ('queued', 'failed') AND not_before <= ?3
             ORDER BY not_before, id LIMIT 1",
            params![claim.kind.as_str(), account, now_text],
            |r| r.get(0),
        )?;
        let token = uuid::Uuid::new_v4().to_string();
        tx.execute(
            "UPDATE jobs SET state = 'claimed', attempts = attempts + 1, lease_owner = ?2, lease_token = ?3,
                 lease_expires_at = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, claim.owner, token, format_ts(claim.now + claim.lease_for), now_text],
        )?;
        tx.execute(
            "INSERT INTO job_actions (job_id, kind, account, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, claim.kind.as_str(), account, now_text],
        )?;
        let job = must_get(&tx, id)?;
        tx.commit()?;
        return Ok(ClaimOutcome::Claimed(Box::new(job)));
    }
    tx.commit()?;
    Ok(ClaimOutcome::RateLimited {
        until: earliest.unwrap_or(claim.now),
    })
}

/// Loads the job and checks that `token` still holds it in one of `states`.
fn fenced(tx: &Transaction<'_>, id: i64, token: &str, states: &[&str]) -> Res<Job> {
    let job = must_get(tx, id)?;
    let holds =
        job.state.lease().is_some_and(|l| l.token == token) && states.contains(&job.state.name());
    if holds {
        Ok(job)
    } else {
        Err(JobsError::Store(StoreError::Fenced { job_id: id }))
    }
}

pub(crate) fn mark_attempting(
    conn: &mut Connection,
    id: i64,
    token: &str,
    now: SystemTime,
) -> Res<Job> {
    let tx = immediate(conn)?;
    let job = fenced(&tx, id, token, &["claimed"])?;
    if job.state.lease().is_some_and(|l| l.expires_at <= now) {
        return Err(JobsError::Store(StoreError::Fenced { job_id: id }));
    }
    tx.execute(
        "UPDATE jobs SET state = 'attempting', updated_at = ?2 WHERE id = ?1",
        params![id, format_ts(now)],
    )?;
    let job = must_get(&tx, id)?;
    tx.commit()?;
    Ok(job)
}

const CLEAR_LEASE: &str = "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL";

pub(crate) fn finish(
    conn: &mut Connection,
    id: i64,
    token: &str,
    outcome: &Outcome,
    identity: &Identity,
    now: SystemTime,
    retry_jitter: f64,
) -> Res<Job> {
    let tx = immediate(conn)?;
    let job = fenced(&tx, id, token, &["claimed", "attempting"])?;
    let now_text = format_ts(now);
    let was_attempting = matches!(job.state, JobState::Attempting(_));
    match outcome {
        Outcome::Succeeded { post_id, url } => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'succeeded', post_id = ?2, post_url = ?3, last_error = NULL, {CLEAR_LEASE}, updated_at = ?4 WHERE id = ?1"),
                params![id, post_id, url, now_text],
            )?;
        }
        Outcome::Uncertain { error } | Outcome::FailedBeforeClick { error } => {
            // After `attempting`, a failure can never be called "before the click".
            let uncertain = was_attempting || matches!(outcome, Outcome::Uncertain { .. });
            if uncertain {
                tx.execute(
                    &format!("UPDATE jobs SET state = 'uncertain', last_error = ?2, {CLEAR_LEASE}, updated_at = ?3 WHERE id = ?1"),
                    params![id, error, now_text],
                )?;
            } else if job.attempts >= job.max_attempts {
                tx.execute(
                    &format!("UPDATE jobs SET state = 'dead', last_error = ?2, {CLEAR_LEASE}, updated_at = ?3 WHERE id = ?1"),
                    params![id, error, now_text],
                )?;
            } else {
                let retry_at = now + retry_delay(job.attempts, retry_jitter);
                tx.execute(
                    &format!("UPDATE jobs SET state = 'failed', last_error = ?2, not_before = ?3, {CLEAR_LEASE}, updated_at = ?4 WHERE id = ?1"),
                    params![id, error, format_ts(retry_at), now_text],
                )?;
            }
        }
    }
    let done = must_get(&tx, id)?;
    insert_event(&tx, &outcome_event(&done, outcome, identity, now))?;
    tx.commit()?;
    Ok(done)
}

pub(crate) fn claim_uncertain(
    conn: &mut Connection,
    kind: Kind,
    owner: &str,
    lease_for: Duration,
    now: SystemTime,
) -> Res<Option<Job>> {
    let tx = immediate(conn)?;
    let now_text = format_ts(now);
    let id: Option<i64> = tx
        .query_row(
            "SELECT id FROM jobs WHERE kind = ?1 AND state = 'uncertain' AND (lease_token IS NULL OR lease_expires_at < ?2)
             ORDER BY id LIMIT 1",
            params![kind.as_str(), now_text],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else {
        tx.commit()?;
        return Ok(None);
    };
    tx.execute(
        "UPDATE jobs SET lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4, updated_at = ?5 WHERE id = ?1",
        params![id, owner, uuid::Uuid::new_v4().to_string(), format_ts(now + lease_for), now_text],
    )?;
    let job = must_get(&tx, id)?;
    tx.commit()?;
    Ok(Some(job))
}

pub(crate) fn resolve_uncertain(
    conn: &mut Connection,
    id: i64,
    token: &str,
    found: Option<(Option<String>, Option<String>)>,
    identity: &Identity,
    now: SystemTime,
) -> Res<Job> {
    let tx = immediate(conn)?;
    let job = fenced(&tx, id, token, &["uncertain"])?;
    let now_text = format_ts(now);
    let resolution = match &found {
        Some((post_id, url)) => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'succeeded', post_id = ?2, post_url = ?3, {CLEAR_LEASE}, updated_at = ?4 WHERE id = ?1"),
                params![id, post_id, url, now_text],
            )?;
            let done = must_get(&tx, id)?;
            let outcome = Outcome::Succeeded {
                post_id: post_id.clone(),
                url: url.clone(),
            };
            insert_event(&tx, &outcome_event(&done, &outcome, identity, now))?;
            "found on the site: succeeded"
        }
        None => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'queued', not_before = ?2, {CLEAR_LEASE}, updated_at = ?2 WHERE id = ?1"),
                params![id, now_text],
            )?;
            "not on the site: queued again"
        }
    };
    insert_event(
        &tx,
        &Event::at(
            identity,
            events::JOB_RESCUED,
            Severity::Info,
            format!("job {id} verified after an unknown outcome: {resolution}"),
            json!({ "job_id": id, "kind": job.kind.as_str(), "found": found.is_some(), "resolution": resolution }),
            now,
        ),
    )?;
    let done = must_get(&tx, id)?;
    tx.commit()?;
    Ok(done)
}

pub(crate) fn rescue_owner(
    conn: &mut Connection,
    owner: &str,
    identity: &Identity,
    now: SystemTime,
) -> Res<Rescued> {
    let tx = immediate(conn)?;
    let now_text = format_ts(now);
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare(&format!(
            "UPDATE jobs SET state = 'uncertain', last_error = 'the previous run ended after the irreversible step',
                 {CLEAR_LEASE}, updated_at = ?2
             WHERE state = 'attempting' AND lease_owner = ?1 RETURNING id"
        ))?;
        let rows = stmt.query_map(params![owner, now_text], |r| r.get(0))?;
        rows.collect::<Sql<Vec<_>>>()?
    };
    for id in &ids {
        let job = must_get(&tx, *id)?;
        let outcome = Outcome::Uncertain {
            error: "the previous run ended after the irreversible step".into(),
        };
        insert_event(&tx, &outcome_event(&job, &outcome, identity, now))?;
    }
    let requeued = tx.execute(
        &format!("UPDATE jobs SET state = 'queued', {CLEAR_LEASE}, updated_at = ?2 WHERE state = 'claimed' AND lease_owner = ?1"),
        params![owner, now_text],
    )?;
    tx.execute(
        &format!("UPDATE jobs SET {CLEAR_LEASE}, updated_at = ?2 WHERE state = 'uncertain' AND lease_owner = ?1"),
        params![owner, now_text],
    )?;
    tx.commit()?;
    Ok(Rescued {
        uncertain: ids.len() as u64,
        requeued: requeued as u64,
    })
}

fn operator_transition(
    conn: &mut Connection,
    id: i64,
    from: &[&str],
    action: &'static str,
    update: &str,
    now: SystemTime,
) -> Res<Job> {
    let tx = immediate(conn)?;
    let job = must_get(&tx, id)?;
    let leased = job.state.lease().is_some();
    if !from.contains(&job.state.name()) || leased {
        return Err(JobsError::Store(StoreError::Transition {
            job_id: id,
            state: job.state.name().to_string(),
            action,
        }));
    }
    tx.execute(update, params![id, format_ts(now)])?;
    let job = must_get(&tx, id)?;
    tx.commit()?;
    Ok(job)
}

pub(crate) fn retry(conn: &mut Connection, id: i64, now: SystemTime) -> Res<Job> {
    operator_transition(
        conn,
        id,
        &["failed", "dead", "cancelled"],
        "retry",
        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = ?2, updated_at = ?2 WHERE id = ?1",
        now,
    )
}

pub(crate) fn cancel(conn: &mut Connection, id: i64, now: SystemTime) -> Res<Job> {
    operator_transition(
        conn,
        id,
        &["queued", "failed", "uncertain", "dead"],
        "cancel",
        "UPDATE jobs SET state = 'cancelled', updated_at = ?2 WHERE id = ?1",
        now,
    )
}

pub(crate) fn breaker_open(
    conn: &mut Connection,
    kind: Kind,
    until: SystemTime,
    reason: &str,
    identity: &Identity,
    now: SystemTime,
) -> Res<()> {
    let tx = immediate(conn)?;
    tx.execute(
        "INSERT INTO lane_breakers (kind, until, reason) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        params![kind.as_str(), format_ts(until), reason],
    )?;
    insert_event(
        &tx,
        &Event::at(
            identity,
            events::RATE_LIMIT_DETECTED,
            Severity::Warning,
            format!(
                "{} lane paused by the site's rate limit until {}",
                kind.as_str(),
                format_ts(until)
            ),
            json!({ "kind": kind.as_str(), "until": format_ts(until), "reason": reason }),
            now,
        ),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn breaker(conn: &Connection, kind: Kind) -> Res<Option<SystemTime>> {
    let until: Option<String> = conn
        .query_row(
            "SELECT until FROM lane_breakers WHERE kind = ?1",
            params![kind.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(until.map(time).transpose()?)
}
