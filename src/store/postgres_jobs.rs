//! The job queue on PostgreSQL, shared by several executors. Mirrors `sqlite_jobs.rs` step by
//! step (the shared store suite keeps them equal). Claims take a transaction-scoped advisory lock
//! per lane while rate limits are on, so the limits hold across executors; rows are taken with
//! `FOR UPDATE SKIP LOCKED`, so with limits off (benchmarks) workers never wait on each other.

use super::{outcome_event, Enqueued, JobRow, Rescued, StoreError, JOB_COLUMNS};
use crate::clock::format_ts;
use crate::events::{self, Event, Identity, Severity};
use crate::jobs::{
    retry_delay, Claim, ClaimOutcome, Job, JobQuery, JobState, Kind, NewJob, Outcome,
};
use serde_json::json;
use std::time::{Duration, SystemTime};
use tokio_postgres::{Client, GenericClient, Row, Transaction};

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

fn row_to_job(row: &Row) -> Result<Job, StoreError> {
    JobRow {
        id: row.get(0),
        kind: row.get(1),
        text: row.get(2),
        reply_to: row.get(3),
        account: row.get(4),
        idempotency_key: row.get(5),
        not_before: row.get(6),
        state: row.get(7),
        attempts: i64::from(row.get::<_, i32>(8)),
        max_attempts: i64::from(row.get::<_, i32>(9)),
        lease_owner: row.get(10),
        lease_token: row.get(11),
        lease_expires_at: row.get(12),
        post_id: row.get(13),
        post_url: row.get(14),
        last_error: row.get(15),
        created_at: row.get(16),
        updated_at: row.get(17),
    }
    .into_job()
}

async fn get<C: GenericClient>(client: &C, id: i64) -> Result<Option<Job>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg("job get"))?;
    row.as_ref().map(row_to_job).transpose()
}

async fn must_get<C: GenericClient>(client: &C, id: i64) -> Result<Job, StoreError> {
    get(client, id)
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

pub(crate) async fn insert_event<C: GenericClient>(
    client: &C,
    event: &Event,
) -> Result<bool, StoreError> {
    let changed = client
        .execute(
            "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                &event.id,
                &event.event_type,
                &event.severity.as_str(),
                &event.message,
                &event.event_data,
                &event.created_at,
            ],
        )
        .await
        .map_err(pg("event insert"))?;
    Ok(changed == 1)
}

/// A stable advisory-lock key per lane.
fn lane_key(kind: Kind) -> i64 {
    match kind {
        Kind::Post => 0x6a6f_6273_0001,
        Kind::Reply => 0x6a6f_6273_0002,
    }
}

pub(crate) async fn job_get(client: &Client, id: i64) -> Result<Option<Job>, StoreError> {
    get(client, id).await
}

pub(crate) async fn enqueue(
    client: &mut Client,
    job: &NewJob,
    now: SystemTime,
) -> Result<Enqueued, StoreError> {
    let tx = client.transaction().await.map_err(pg("enqueue"))?;
    let inserted = tx
        .query_opt(
            "INSERT INTO jobs (kind, text, reply_to, account, idempotency_key, not_before, state, max_attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            &[
                &job.kind.as_str(),
                &job.text,
                &job.reply_to,
                &job.account,
                &job.idempotency_key,
                &job.not_before,
                &(job.max_attempts as i32),
                &now,
            ],
        )
        .await
        .map_err(pg("enqueue"))?;
    let result = match inserted {
        Some(row) => Enqueued::Created(must_get(&tx, row.get(0)).await?),
        None => {
            let row = tx
                .query_one(
                    "SELECT id FROM jobs WHERE idempotency_key = $1",
                    &[&job.idempotency_key],
                )
                .await
                .map_err(pg("enqueue"))?;
            Enqueued::Exists(must_get(&tx, row.get(0)).await?)
        }
    };
    tx.commit().await.map_err(pg("enqueue commit"))?;
    Ok(result)
}

pub(crate) async fn list(client: &Client, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
    let kind = query.kind.map(|k| k.as_str().to_string());
    let limit: i64 = query.limit.map(i64::from).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs
                   WHERE (cardinality($1::text[]) = 0 OR state = ANY($1)) AND ($2::text IS NULL OR kind = $2)
                   ORDER BY id DESC LIMIT $3) newest ORDER BY id"
            ),
            &[&query.states, &kind, &limit],
        )
        .await
        .map_err(pg("job list"))?;
    rows.iter().map(row_to_job).collect()
}

pub(crate) async fn count_due(
    client: &Client,
    kind: Kind,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state IN ('queued', 'failed') AND not_before <= $2",
            &[&kind.as_str(), &now],
        )
        .await
        .map_err(pg("job count"))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

pub(crate) async fn count_by_state(
    client: &Client,
) -> Result<Vec<(Kind, String, u64)>, StoreError> {
    let rows = client
        .query(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
            &[],
        )
        .await
        .map_err(pg("job counts"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                Kind::parse(r.get(0))?,
                r.get::<_, String>(1),
                r.get::<_, i64>(2).max(0) as u64,
            ))
        })
        .collect())
}

async fn sweep_expired(
    tx: &Transaction<'_>,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let swept = tx
        .query(
            "UPDATE jobs SET state = 'uncertain', last_error = 'lease expired after the irreversible step',
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
             WHERE kind = $1 AND state = 'attempting' AND lease_expires_at < $2 RETURNING id",
            &[&kind.as_str(), &now],
        )
        .await
        .map_err(pg("sweep"))?;
    for row in swept {
        let job = must_get(tx, row.get(0)).await?;
        let outcome = Outcome::Uncertain {
            error: "lease expired after the irreversible step".into(),
        };
        insert_event(tx, &outcome_event(&job, &outcome, identity, now)).await?;
    }
    tx.execute(
        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'claimed' AND lease_expires_at < $2",
        &[&kind.as_str(), &now],
    )
    .await
    .map_err(pg("sweep"))?;
    tx.execute(
        "UPDATE jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'uncertain' AND lease_expires_at < $2",
        &[&kind.as_str(), &now],
    )
    .await
    .map_err(pg("sweep"))?;
    Ok(())
}

async fn breaker_check(
    tx: &Transaction<'_>,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<Option<SystemTime>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT until FROM lane_breakers WHERE kind = $1",
            &[&kind.as_str()],
        )
        .await
        .map_err(pg("breaker"))?;
    let Some(until) = row.map(|r| r.get::<_, SystemTime>(0)) else {
        return Ok(None);
    };
    if until > now {
        return Ok(Some(until));
    }
    tx.execute(
        "DELETE FROM lane_breakers WHERE kind = $1",
        &[&kind.as_str()],
    )
    .await
    .map_err(pg("breaker"))?;
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
    )
    .await?;
    Ok(None)
}

async fn account_blocked_until(
    tx: &Transaction<'_>,
    claim: &Claim,
    account: &str,
) -> Result<Option<SystemTime>, StoreError> {
    let mut until: Option<SystemTime> = None;
    if let Some(per_hour) = claim.limits.per_hour {
        let hour_ago = claim
            .now
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let row = tx
            .query_one(
                "SELECT COUNT(*), MIN(started_at) FROM job_actions WHERE account = $1 AND kind = $2 AND started_at > $3",
                &[&account, &claim.kind.as_str(), &hour_ago],
            )
            .await
            .map_err(pg("rate limit"))?;
        let count: i64 = row.get(0);
        let oldest: Option<SystemTime> = row.get(1);
        if count >= i64::from(per_hour) {
            until = Some(match oldest {
                Some(oldest) => oldest + Duration::from_secs(3600),
                None => claim.now + Duration::from_secs(60),
            });
        }
    }
    let gap = claim.limits.min_gap + claim.gap_jitter;
    if !gap.is_zero() {
        let row = tx
            .query_one(
                "SELECT MAX(started_at) FROM job_actions WHERE account = $1",
                &[&account],
            )
            .await
            .map_err(pg("rate limit"))?;
        if let Some(last) = row.get::<_, Option<SystemTime>>(0) {
            let free_at = last + gap;
            if free_at > claim.now {
                until = Some(until.map_or(free_at, |u| u.max(free_at)));
            }
        }
    }
    Ok(until)
}

pub(crate) async fn claim_next(
    client: &mut Client,
    claim: &Claim,
    identity: &Identity,
) -> Result<ClaimOutcome, StoreError> {
    let tx = client.transaction().await.map_err(pg("claim"))?;
    let limited = claim.limits.per_hour.is_some() || !claim.limits.min_gap.is_zero();
    if limited {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lane_key(claim.kind)])
            .await
            .map_err(pg("claim lock"))?;
    }
    sweep_expired(&tx, claim.kind, identity, claim.now).await?;
    if let Some(until) = breaker_check(&tx, claim.kind, identity, claim.now).await? {
        tx.commit().await.map_err(pg("claim commit"))?;
        return Ok(ClaimOutcome::BreakerOpen { until });
    }
    let kind = claim.kind.as_str();
    let accounts: Vec<String> = if limited {
        tx.query(
            "SELECT account FROM jobs WHERE kind = $1 AND state IN ('queued', 'failed') AND not_before <= $2
             GROUP BY account ORDER BY MIN(not_before), MIN(id)",
            &[&kind, &claim.now],
        )
        .await
        .map_err(pg("claim"))?
        .iter()
        .map(|r| r.get(0))
        .collect()
    } else {
        // No limits: any account will do; skip the grouping.
        vec![String::new()]
    };
    let mut earliest: Option<SystemTime> = None;
    let mut any_due = false;
    for account in accounts {
        if limited {
            if let Some(until) = account_blocked_until(&tx, claim, &account).await? {
                any_due = true;
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
                continue;
            }
        }
        let row = tx
            .query_opt(
                "SELECT id, account FROM jobs WHERE kind = $1 AND ($2 OR account = $3) AND state IN ('queued', 'failed')
                   AND not_before <= $4
                 ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&kind, &!limited, &account, &claim.now],
            )
            .await
            .map_err(pg("claim"))?;
        let Some(row) = row else { continue };
        let id: i64 = row.get(0);
        let job_account: String = row.get(1);
        let token = uuid::Uuid::new_v4().to_string();
        let expires = claim.now + claim.lease_for;
        tx.execute(
            "UPDATE jobs SET state = 'claimed', attempts = attempts + 1, lease_owner = $2, lease_token = $3,
                 lease_expires_at = $4, updated_at = $5 WHERE id = $1",
            &[&id, &claim.owner, &token, &expires, &claim.now],
        )
        .await
        .map_err(pg("claim"))?;
        tx.execute(
            "INSERT INTO job_actions (job_id, kind, account, started_at) VALUES ($1, $2, $3, $4)",
            &[&id, &kind, &job_account, &claim.now],
        )
        .await
        .map_err(pg("claim"))?;
        let job = must_get(&tx, id).await?;
        tx.commit().await.map_err(pg("claim commit"))?;
        return Ok(ClaimOutcome::Claimed(Box::new(job)));
    }
    tx.commit().await.map_err(pg("claim commit"))?;
    Ok(match (any_due, earliest) {
        (true, Some(until)) => ClaimOutcome::RateLimited { until },
        _ => ClaimOutcome::Empty,
    })
}

async fn fenced(
    tx: &Transaction<'_>,
    id: i64,
    token: &str,
    states: &[&str],
) -> Result<Job, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(pg("job lock"))?;
    let job = row
        .as_ref()
        .map(row_to_job)
        .transpose()?
        .ok_or(StoreError::NotFound { job_id: id })?;
    let holds =
        job.state.lease().is_some_and(|l| l.token == token) && states.contains(&job.state.name());
    if holds {
        Ok(job)
    } else {
        Err(StoreError::Fenced { job_id: id })
    }
}

const CLEAR_LEASE: &str = "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL";

pub(crate) async fn mark_attempting(
    client: &mut Client,
    id: i64,
    token: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(pg("attempting"))?;
    let job = fenced(&tx, id, token, &["claimed"]).await?;
    if job.state.lease().is_some_and(|l| l.expires_at <= now) {
        return Err(StoreError::Fenced { job_id: id });
    }
    tx.execute(
        "UPDATE jobs SET state = 'attempting', updated_at = $2 WHERE id = $1",
        &[&id, &now],
    )
    .await
    .map_err(pg("attempting"))?;
    let job = must_get(&tx, id).await?;
    tx.commit().await.map_err(pg("attempting commit"))?;
    Ok(job)
}

pub(crate) async fn finish(
    client: &mut Client,
    id: i64,
    token: &str,
    outcome: &Outcome,
    identity: &Identity,
    now: SystemTime,
    retry_jitter: f64,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(pg("finish"))?;
    let job = fenced(&tx, id, token, &["claimed", "attempting"]).await?;
    let was_attempting = matches!(job.state, JobState::Attempting(_));
    match outcome {
        Outcome::Succeeded { post_id, url } => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'succeeded', post_id = $2, post_url = $3, last_error = NULL, {CLEAR_LEASE}, updated_at = $4 WHERE id = $1"),
                &[&id, post_id, url, &now],
            )
            .await
            .map_err(pg("finish"))?;
        }
        Outcome::Uncertain { error } | Outcome::FailedBeforeClick { error } => {
            // After `attempting`, a failure can never be called "before the click".
            let uncertain = was_attempting || matches!(outcome, Outcome::Uncertain { .. });
            if uncertain {
                tx.execute(
                    &format!("UPDATE jobs SET state = 'uncertain', last_error = $2, {CLEAR_LEASE}, updated_at = $3 WHERE id = $1"),
                    &[&id, error, &now],
                )
                .await
                .map_err(pg("finish"))?;
            } else if job.attempts >= job.max_attempts {
                tx.execute(
                    &format!("UPDATE jobs SET state = 'dead', last_error = $2, {CLEAR_LEASE}, updated_at = $3 WHERE id = $1"),
                    &[&id, error, &now],
                )
                .await
                .map_err(pg("finish"))?;
            } else {
                let retry_at = now + retry_delay(job.attempts, retry_jitter);
                tx.execute(
                    &format!("UPDATE jobs SET state = 'failed', last_error = $2, not_before = $3, {CLEAR_LEASE}, updated_at = $4 WHERE id = $1"),
                    &[&id, error, &retry_at, &now],
                )
                .await
                .map_err(pg("finish"))?;
            }
        }
    }
    let done = must_get(&tx, id).await?;
    insert_event(&tx, &outcome_event(&done, outcome, identity, now)).await?;
    tx.commit().await.map_err(pg("finish commit"))?;
    Ok(done)
}

pub(crate) async fn claim_uncertain(
    client: &mut Client,
    kind: Kind,
    owner: &str,
    lease_for: Duration,
    now: SystemTime,
) -> Result<Option<Job>, StoreError> {
    let tx = client.transaction().await.map_err(pg("claim uncertain"))?;
    let row = tx
        .query_opt(
            "SELECT id FROM jobs WHERE kind = $1 AND state = 'uncertain' AND (lease_token IS NULL OR lease_expires_at < $2)
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[&kind.as_str(), &now],
        )
        .await
        .map_err(pg("claim uncertain"))?;
    let Some(row) = row else {
        tx.commit().await.map_err(pg("claim uncertain"))?;
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let token = uuid::Uuid::new_v4().to_string();
    let expires = now + lease_for;
    tx.execute(
        "UPDATE jobs SET lease_owner = $2, lease_token = $3, lease_expires_at = $4, updated_at = $5 WHERE id = $1",
        &[&id, &owner, &token, &expires, &now],
    )
    .await
    .map_err(pg("claim uncertain"))?;
    let job = must_get(&tx, id).await?;
    tx.commit().await.map_err(pg("claim uncertain commit"))?;
    Ok(Some(job))
}

pub(crate) async fn resolve_uncertain(
    client: &mut Client,
    id: i64,
    token: &str,
    found: Option<(Option<String>, Option<String>)>,
    identity: &Identity,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(pg("resolve"))?;
    let job = fenced(&tx, id, token, &["uncertain"]).await?;
    let resolution = match &found {
        Some((post_id, url)) => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'succeeded', post_id = $2, post_url = $3, {CLEAR_LEASE}, updated_at = $4 WHERE id = $1"),
                &[&id, post_id, url, &now],
            )
            .await
            .map_err(pg("resolve"))?;
            let done = must_get(&tx, id).await?;
            let outcome = Outcome::Succeeded {
                post_id: post_id.clone(),
                url: url.clone(),
            };
            insert_event(&tx, &outcome_event(&done, &outcome, identity, now)).await?;
            "found on the site: succeeded"
        }
        None => {
            tx.execute(
                &format!("UPDATE jobs SET state = 'queued', not_before = $2, {CLEAR_LEASE}, updated_at = $2 WHERE id = $1"),
                &[&id, &now],
            )
            .await
            .map_err(pg("resolve"))?;
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
    )
    .await?;
    let done = must_get(&tx, id).await?;
    tx.commit().await.map_err(pg("resolve commit"))?;
    Ok(done)
}

pub(crate) async fn rescue_owner(
    client: &mut Client,
    owner: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Rescued, StoreError> {
    let tx = client.transaction().await.map_err(pg("rescue"))?;
    let rows = tx
        .query(
            &format!(
                "UPDATE jobs SET state = 'uncertain', last_error = 'the previous run ended after the irreversible step',
                     {CLEAR_LEASE}, updated_at = $2
                 WHERE state = 'attempting' AND lease_owner = $1 RETURNING id"
            ),
            &[&owner, &now],
        )
        .await
        .map_err(pg("rescue"))?;
    for row in &rows {
        let job = must_get(&tx, row.get(0)).await?;
        let outcome = Outcome::Uncertain {
            error: "the previous run ended after the irreversible step".into(),
        };
        insert_event(&tx, &outcome_event(&job, &outcome, identity, now)).await?;
    }
    let requeued = tx
        .execute(
            &format!("UPDATE jobs SET state = 'queued', {CLEAR_LEASE}, updated_at = $2 WHERE state = 'claimed' AND lease_owner = $1"),
            &[&owner, &now],
        )
        .await
        .map_err(pg("rescue"))?;
    tx.execute(
        &format!("UPDATE jobs SET {CLEAR_LEASE}, updated_at = $2 WHERE state = 'uncertain' AND lease_owner = $1"),
        &[&owner, &now],
    )
    .await
    .map_err(pg("rescue"))?;
    tx.commit().await.map_err(pg("rescue commit"))?;
    Ok(Rescued {
        uncertain: rows.len() as u64,
        requeued,
    })
}

async fn operator_transition(
    client: &mut Client,
    id: i64,
    from: &[&str],
    action: &'static str,
    update: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(pg("operator"))?;
    let row = tx
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(pg("operator"))?;
    let job = row
        .as_ref()
        .map(row_to_job)
        .transpose()?
        .ok_or(StoreError::NotFound { job_id: id })?;
    if !from.contains(&job.state.name()) || job.state.lease().is_some() {
        return Err(StoreError::Transition {
            job_id: id,
            state: job.state.name().to_string(),
            action,
        });
    }
    tx.execute(update, &[&id, &now])
        .await
        .map_err(pg("operator"))?;
    let job = must_get(&tx, id).await?;
    tx.commit().await.map_err(pg("operator commit"))?;
    Ok(job)
}

pub(crate) async fn retry(
    client: &mut Client,
    id: i64,
    now: SystemTime,
) -> Result<Job, StoreError> {
    operator_transition(
        client,
        id,
        &["failed", "dead", "cancelled"],
        "retry",
        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = $2, updated_at = $2 WHERE id = $1",
        now,
    )
    .await
}

pub(crate) async fn cancel(
    client: &mut Client,
    id: i64,
    now: SystemTime,
) -> Result<Job, StoreError> {
    operator_transition(
        client,
        id,
        &["queued", "failed", "uncertain", "dead"],
        "cancel",
        "UPDATE jobs SET state = 'cancelled', updated_at = $2 WHERE id = $1",
        now,
    )
    .await
}

pub(crate) async fn breaker_open(
    client: &mut Client,
    kind: Kind,
    until: SystemTime,
    reason: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg("breaker"))?;
    tx.execute(
        "INSERT INTO lane_breakers (kind, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (kind) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        &[&kind.as_str(), &until, &reason],
    )
    .await
    .map_err(pg("breaker"))?;
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
    )
    .await?;
    tx.commit().await.map_err(pg("breaker commit"))?;
    Ok(())
}

pub(crate) async fn breaker(client: &Client, kind: Kind) -> Result<Option<SystemTime>, StoreError> {
    let row = client
        .query_opt(
            "SELECT until FROM lane_breakers WHERE kind = $1",
            &[&kind.as_str()],
        )
        .await
        .map_err(pg("breaker"))?;
    Ok(row.map(|r| r.get(0)))
}
