//! The job state machine's steps: reading, enqueueing, claiming, the outcome of an attempt,
//! unknown outcomes, the operator's commands and the 429 breakers (docs/jobs.md).

use super::{
    job_from, job_opt, job_opt_last, jobs, kind_value, lease_token, must_get, scalar, write_event,
    Col, Driver, Durability, Reader, Value, JOB_SHAPE,
};
use crate::events::Identity;
use crate::jobs::{
    finished_state, transition_events, Claim, ClaimOutcome, Job, JobQuery, JobState, Kind, NewJob,
    OperatorAction, Outcome, RecentActions, LEASE_EXPIRED_AFTER_CLICK,
    PREVIOUS_RUN_ENDED_AFTER_CLICK,
};
use crate::store::{BatchControl, BatchEnqueued, Enqueued, Rescued, StoreError};
use std::time::{Duration, SystemTime};

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
            Value::OptText(query.account.clone()),
            Value::OptText(query.text.clone()),
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

/// Both lanes of `account` as the tick first reads them (in the caller's transaction, if any).
pub(super) async fn lane_look<D: Driver>(
    d: &mut D,
    account: &str,
    now: SystemTime,
) -> Result<crate::kind::LaneLook, StoreError> {
    let sql = d.queries().lane_look;
    let mut look = crate::kind::LaneLook::default();
    for kind in Kind::ALL {
        let params = [
            kind_value(kind),
            Value::Text(account.into()),
            Value::Time(now),
        ];
        let rows = d.rows(sql, &params, &[Col::Int, Col::Int]).await?;
        let row = rows.into_iter().next().unwrap_or_default();
        let mut r = Reader(row.into_iter());
        let (due, chores) = (r.int()?, r.int()?);
        look.due.add(kind, due.max(0) as u64);
        look.set_chores(kind, chores != 0);
    }
    Ok(look)
}

/// The accounts with jobs due at `now`, in order.
pub(crate) async fn job_due_accounts<D: Driver>(
    d: &mut D,
    now: SystemTime,
) -> Result<Vec<String>, StoreError> {
    let sql = d.queries().job_due_accounts;
    d.rows(sql, &[Value::Time(now)], &[Col::Text])
        .await?
        .into_iter()
        .map(|row| Reader(row.into_iter()).text())
        .collect()
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

/// The unfinished jobs by account, lane, state and whether due at `now`.
pub(crate) async fn job_queue_by_account<D: Driver>(
    d: &mut D,
    now: SystemTime,
) -> Result<Vec<crate::store::QueueCount>, StoreError> {
    let sql = d.queries().job_queue_by_account;
    const SHAPE: &[Col] = &[
        Col::Text,
        Col::Text,
        Col::Text,
        Col::Int,
        Col::Int,
        Col::Time,
    ];
    let rows = d.rows(sql, &[Value::Time(now)], SHAPE).await?;
    let mut counts = Vec::new();
    for row in rows {
        let mut r = Reader(row.into_iter());
        let (account, kind, state) = (r.text()?, r.text()?, r.text()?);
        let (due, count, earliest) = (r.int()?, r.int()?, r.time()?);
        if let Some(kind) = Kind::parse(&kind) {
            counts.push(crate::store::QueueCount {
                account,
                kind,
                state,
                due: due != 0,
                count: count.max(0) as u64,
                earliest,
            });
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
    let inserted = scalar(d, q.job_insert, &insert_params(job, now)).await?;
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
    .ok_or_else(key_vanished)?;
    Ok(Enqueued::Exists(must_get(d, id).await?))
}

/// How many jobs of a batch go to the store together: large enough that PostgreSQL's round
/// trips do not count, small enough that a cancelled batch stops within milliseconds and the
/// parameters of one chunk are all the batch holds twice.
pub(crate) const BATCH_CHUNK: usize = 1000;

/// Adds a batch of jobs in ONE transaction (see [`Store::job_enqueue_batch`]), chunk by chunk,
/// with the rules of [`job_enqueue`]: a key already taken — by an earlier job, or by an earlier
/// line of the same batch, which the transaction sees — adds nothing and answers the job that
/// has it. Committed with full durability, once; never once `control` is cancelled.
///
/// [`Store::job_enqueue_batch`]: crate::store::Store::job_enqueue_batch
pub(crate) async fn job_enqueue_batch<D: Driver + Send>(
    d: &mut D,
    batch: &[NewJob],
    now: SystemTime,
    control: &BatchControl,
) -> Result<Vec<BatchEnqueued>, StoreError> {
    in_tx!(d, Durability::Full, async {
        let mut answers = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(BATCH_CHUNK) {
            abandoned_if_cancelled(control)?;
            answers.extend(enqueue_chunk(d, chunk, now).await?);
            control.add_written(chunk.len());
        }
        // The last look before the commit: a cancel from now on comes too late to matter.
        abandoned_if_cancelled(control)?;
        Ok(answers)
    })
}

fn abandoned_if_cancelled(control: &BatchControl) -> Result<(), StoreError> {
    if control.is_cancelled() {
        return Err(StoreError::Abandoned {
            operation: "enqueue batch",
        });
    }
    Ok(())
}

/// One chunk of a batch in two statements: the chunk's ids are reserved, then every job is
/// inserted with its own id by one multi-row statement (one statement per job cost PostgreSQL
/// more than the 5 s a 100,000-line batch may take), which answers the ids it stored. A job
/// whose id is not among them found its key taken, by an earlier job or an earlier job of the
/// batch (the rows go in in the batch's order, so the first line with a key gets it, as with
/// single enqueues). Nothing depends on the order the rows come back in.
async fn enqueue_chunk<D: Driver>(
    d: &mut D,
    chunk: &[NewJob],
    now: SystemTime,
) -> Result<Vec<BatchEnqueued>, StoreError> {
    let q = d.queries();
    let count = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
    let ids = d
        .rows(q.job_ids_reserve, &[Value::Int(count)], &[Col::Int])
        .await?
        .into_iter()
        .map(|row| Reader(row.into_iter()).int())
        .collect::<Result<Vec<i64>, StoreError>>()?;
    if ids.len() != chunk.len() {
        return Err(StoreError::Other {
            operation: "enqueue batch",
            reason: format!("{} ids reserved for {} jobs", ids.len(), chunk.len()),
        });
    }
    let rows: Vec<serde_json::Value> = chunk
        .iter()
        .zip(&ids)
        .map(|(job, id)| {
            serde_json::json!({
                "id": id,
                "kind": job.kind.as_str(),
                "text": job.text,
                "reply_to": job.reply_to,
                "account": job.account,
                "idempotency_key": job.idempotency_key,
                "not_before": crate::clock::format_ts(job.not_before),
                "max_attempts": job.max_attempts,
            })
        })
        .collect();
    let stored = d
        .rows(
            q.job_insert_many,
            &[
                Value::Json(serde_json::Value::Array(rows)),
                Value::Time(now),
            ],
            &[Col::Int],
        )
        .await?
        .into_iter()
        .map(|row| Reader(row.into_iter()).int())
        .collect::<Result<std::collections::HashSet<i64>, StoreError>>()?;
    let inserted: Vec<bool> = ids.iter().map(|id| stored.contains(id)).collect();
    // The jobs whose key was taken: the jobs that hold those keys, and their states.
    let key_params: Vec<Vec<Value>> = chunk
        .iter()
        .zip(&inserted)
        .filter(|(_, inserted)| !**inserted)
        .map(|(job, _)| vec![Value::OptText(job.idempotency_key.clone())])
        .collect();
    let holder_ids = d
        .rows_each(q.job_id_by_key, &key_params, &[Col::Int])
        .await?
        .into_iter()
        .map(|rows| match rows.into_iter().next() {
            Some(row) => Reader(row.into_iter()).int(),
            None => Err(key_vanished()),
        })
        .collect::<Result<Vec<i64>, StoreError>>()?;
    let id_params: Vec<Vec<Value>> = holder_ids.iter().map(|id| vec![Value::Int(*id)]).collect();
    let mut holders = d
        .rows_each(q.job_get, &id_params, JOB_SHAPE)
        .await?
        .into_iter();
    let mut answers = Vec::with_capacity(chunk.len());
    for ((job, id), inserted) in chunk.iter().zip(ids).zip(inserted) {
        let answer = if inserted {
            BatchEnqueued::Created {
                id,
                kind: job.kind,
                not_before: job.not_before,
            }
        } else {
            let holder = match holders.next().and_then(|rows| rows.into_iter().next()) {
                Some(row) => job_from(row)?,
                None => return Err(key_vanished()),
            };
            BatchEnqueued::Exists {
                id: holder.id,
                key: job.idempotency_key.clone().unwrap_or_default(),
                state: holder.state.name(),
            }
        };
        answers.push(answer);
    }
    Ok(answers)
}

fn key_vanished() -> StoreError {
    StoreError::Other {
        operation: "enqueue",
        reason: "the insert was refused, yet no job has its key".into(),
    }
}

fn insert_params(job: &NewJob, now: SystemTime) -> Vec<Value> {
    vec![
        kind_value(job.kind),
        Value::Text(job.text.clone()),
        Value::OptText(job.reply_to.clone()),
        Value::Text(job.account.clone()),
        Value::OptText(job.idempotency_key.clone()),
        Value::Time(job.not_before),
        Value::Int(i64::from(job.max_attempts)),
        Value::Time(now),
    ]
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

/// The account's breaker for the lane, as recorded (`recorded`): `Some(until)` while open
/// ([`crate::jobs::breaker_open`]); an expired one is removed, with its event.
async fn breaker_check<D: Driver>(
    d: &mut D,
    recorded: Option<SystemTime>,
    account: &str,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<Option<SystemTime>, StoreError> {
    let Some(until) = recorded else {
        return Ok(None);
    };
    if let Some(open) = crate::jobs::breaker_open(recorded, now) {
        return Ok(Some(open));
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

/// What the store knows of the account's recent actions in `kind`'s lane since `hour_ago`, for
/// [`Claim::blocked_until`]; the latest action of any lane only when `with_latest` (a claim
/// without a minimum gap does not need it).
async fn recent_actions<D: Driver>(
    d: &mut D,
    account: &str,
    kind: Kind,
    hour_ago: SystemTime,
    with_latest: bool,
) -> Result<RecentActions, StoreError> {
    let q = d.queries();
    let account = Value::Text(account.to_string());
    let window = d
        .rows(
            q.actions_in_window,
            &[account.clone(), kind_value(kind), Value::Time(hour_ago)],
            &[Col::Int, Col::OptTime],
        )
        .await?;
    let mut recent = RecentActions::default();
    if let Some(row) = window.into_iter().next() {
        let mut r = Reader(row.into_iter());
        recent.lane_in_last_hour = r.int()?.max(0) as u64;
        recent.lane_oldest_in_hour = r.opt_time()?;
    }
    if with_latest {
        let latest = d.rows(q.action_latest, &[account], &[Col::OptTime]).await?;
        if let Some(row) = latest.into_iter().next() {
            recent.latest_any_lane = Reader(row.into_iter()).opt_time()?;
        }
    }
    Ok(recent)
}

/// The account's recent actions in `kind`'s lane as of `now`, read for the "why is it waiting?"
/// view: the same figures a claim at `now` would judge.
pub(crate) async fn lane_recent_actions<D: Driver>(
    d: &mut D,
    account: &str,
    kind: Kind,
    now: SystemTime,
) -> Result<RecentActions, StoreError> {
    let hour_ago = now
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    recent_actions(d, account, kind, hour_ago, true).await
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
    // Leases run out whatever is paused: rescue is never held back (see `crate::pauses`).
    if sweep {
        sweep_expired(d, claim.kind, identity, claim.now).await?;
    }
    let (breaker, pauses) = super::lane_gate(d, &claim.account, claim.kind).await?;
    if let Some(pause) = crate::pauses::blocking(&pauses, &claim.account, claim.kind) {
        return Ok(ClaimOutcome::Paused(Box::new(pause.clone())));
    }
    let breaker =
        breaker_check(d, breaker, &claim.account, claim.kind, identity, claim.now).await?;
    if let Some(until) = breaker {
        return Ok(ClaimOutcome::BreakerOpen { until });
    }
    if claim.limited() {
        let with_latest = !(claim.limits.min_gap + claim.gap_jitter).is_zero();
        let recent =
            recent_actions(d, &claim.account, claim.kind, claim.hour_ago(), with_latest).await?;
        if let Some(until) = claim.blocked_until(&recent) {
            let due = scalar(d, q.job_due_exists, &[kind_value(claim.kind), account, now]).await?;
            return Ok(match due {
                Some(_) => ClaimOutcome::RateLimited { until },
                None => ClaimOutcome::Empty,
            });
        }
    }
    let expires = claim.now + claim.lease_for;
    // The statement also logs the action the rate limits count (in SQL on both dialects), so
    // it can be the last one, sent with the commit.
    let claimed = job_opt_last(
        d,
        q.job_claim_next,
        &[
            kind_value(claim.kind),
            account,
            now,
            Value::Text(claim.owner.clone()),
            lease_token(),
            Value::Time(expires),
        ],
    )
    .await?;
    Ok(match claimed {
        Some(job) => ClaimOutcome::Claimed(Box::new(job)),
        None => ClaimOutcome::Empty,
    })
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
    // One statement, committed with it: one round trip.
    let sql = d.queries().job_mark_attempting;
    let marked = job_opt_last(
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
    let sql = d.queries().job_set_state;
    job_opt(d, sql, &set_state_params(id, state, now)?)
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

/// [`set_state`] as the transaction's last statement, committed with it.
async fn set_state_last<D: Driver>(
    d: &mut D,
    id: i64,
    state: &JobState,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let sql = d.queries().job_set_state;
    job_opt_last(d, sql, &set_state_params(id, state, now)?)
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

fn set_state_params(id: i64, state: &JobState, now: SystemTime) -> Result<Vec<Value>, StoreError> {
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
    Ok(vec![
        Value::Int(id),
        Value::Text(state.name().into()),
        Value::OptText(post_id),
        Value::OptText(url),
        Value::OptText(error),
        Value::OptTime(not_before),
        Value::Time(now),
    ])
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
    // The event describes the job as the update below leaves it; both travel with the commit.
    let next = Job {
        state: state.clone(),
        ..job
    };
    write_event(d, transition_events::outcome(&next, outcome, identity, now)).await?;
    set_state_last(d, id, &state, now).await
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
