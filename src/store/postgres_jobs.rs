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
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio_postgres::{Client, GenericClient, Row, Statement, Transaction};

/// Statements prepared once per connection. tokio-postgres prepares a query given as text on
/// every call (a round trip and a plan each time); on the claim path that doubled the work.
#[derive(Default)]
pub(crate) struct Statements {
    prepared: HashMap<String, Statement>,
}

impl Statements {
    pub async fn get<C: GenericClient>(
        &mut self,
        client: &C,
        sql: &str,
    ) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).await.map_err(pg("prepare"))?;
        self.prepared.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// One connection and the statements prepared on it (they are only valid there).
pub(crate) struct PgConn {
    pub client: Client,
    pub statements: Statements,
}

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

async fn get<C: GenericClient>(
    client: &C,
    st: &mut Statements,
    id: i64,
) -> Result<Option<Job>, StoreError> {
    let row = client
        .query_opt(
            &st.get(
                client,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
            )
            .await?,
            &[&id],
        )
        .await
        .map_err(pg("job get"))?;
    row.as_ref().map(row_to_job).transpose()
}

async fn must_get<C: GenericClient>(
    client: &C,
    st: &mut Statements,
    id: i64,
) -> Result<Job, StoreError> {
    get(client, st, id)
        .await?
        .ok_or(StoreError::NotFound { job_id: id })
}

pub(crate) async fn insert_event<C: GenericClient>(
    client: &C,
    st: &mut Statements,
    event: &Event,
) -> Result<bool, StoreError> {
    let changed = client
        .execute(&st.get(client, "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING").await?,
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

pub(crate) async fn job_get(conn: &mut PgConn, id: i64) -> Result<Option<Job>, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    get(client, st, id).await
}

pub(crate) async fn enqueue(
    conn: &mut PgConn,
    job: &NewJob,
    now: SystemTime,
) -> Result<Enqueued, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("enqueue"))?;
    let inserted = tx
        .query_opt(&st.get(&tx, "INSERT INTO jobs (kind, text, reply_to, account, idempotency_key, not_before, state, max_attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $8)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id").await?,
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
        Some(row) => Enqueued::Created(must_get(&tx, st, row.get(0)).await?),
        None => {
            let row = tx
                .query_one(
                    &st.get(&tx, "SELECT id FROM jobs WHERE idempotency_key = $1")
                        .await?,
                    &[&job.idempotency_key],
                )
                .await
                .map_err(pg("enqueue"))?;
            Enqueued::Exists(must_get(&tx, st, row.get(0)).await?)
        }
    };
    tx.commit().await.map_err(pg("enqueue commit"))?;
    Ok(result)
}

pub(crate) async fn list(conn: &mut PgConn, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let kind = query.kind.map(|k| k.as_str().to_string());
    let limit: i64 = query.limit.map(i64::from).unwrap_or(i64::MAX);
    let rows = client
        .query(&st.get(client, &format!(
                "SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs
                   WHERE (cardinality($1::text[]) = 0 OR state = ANY($1)) AND ($2::text IS NULL OR kind = $2)
                   ORDER BY id DESC LIMIT $3) newest ORDER BY id"
            )).await?,
            &[&query.states, &kind, &limit],
        )
        .await
        .map_err(pg("job list"))?;
    rows.iter().map(row_to_job).collect()
}

pub(crate) async fn count_due(
    conn: &mut PgConn,
    kind: Kind,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let row = client
        .query_one(&st.get(client, "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state IN ('queued', 'failed') AND not_before <= $2").await?,
            &[&kind.as_str(), &now],
        )
        .await
        .map_err(pg("job count"))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

pub(crate) async fn count_by_state(
    conn: &mut PgConn,
) -> Result<Vec<(Kind, String, u64)>, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let rows = client
        .query(
            &st.get(
                client,
                "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
            )
            .await?,
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
    st: &mut Statements,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let swept = tx
        .query(&st.get(tx, "UPDATE jobs SET state = 'uncertain', last_error = 'lease expired after the irreversible step',
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
             WHERE kind = $1 AND state = 'attempting' AND lease_expires_at < $2 RETURNING id").await?,
            &[&kind.as_str(), &now],
        )
        .await
        .map_err(pg("sweep"))?;
    for row in swept {
        let job = must_get(tx, st, row.get(0)).await?;
        let outcome = Outcome::Uncertain {
            error: "lease expired after the irreversible step".into(),
        };
        insert_event(tx, st, &outcome_event(&job, &outcome, identity, now)).await?;
    }
    tx.execute(&st.get(tx, "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'claimed' AND lease_expires_at < $2").await?,
        &[&kind.as_str(), &now],
    )
    .await
    .map_err(pg("sweep"))?;
    tx.execute(&st.get(tx, "UPDATE jobs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
         WHERE kind = $1 AND state = 'uncertain' AND lease_expires_at < $2").await?,
        &[&kind.as_str(), &now],
    )
    .await
    .map_err(pg("sweep"))?;
    Ok(())
}

async fn breaker_check(
    tx: &Transaction<'_>,
    st: &mut Statements,
    kind: Kind,
    identity: &Identity,
    now: SystemTime,
) -> Result<Option<SystemTime>, StoreError> {
    let row = tx
        .query_opt(
            &st.get(tx, "SELECT until FROM lane_breakers WHERE kind = $1")
                .await?,
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
        &st.get(tx, "DELETE FROM lane_breakers WHERE kind = $1")
            .await?,
        &[&kind.as_str()],
    )
    .await
    .map_err(pg("breaker"))?;
    insert_event(
        tx,
        st,
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
    st: &mut Statements,
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
            .query_one(&st.get(tx, "SELECT COUNT(*), MIN(started_at) FROM job_actions WHERE account = $1 AND kind = $2 AND started_at > $3").await?,
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
                &st.get(
                    tx,
                    "SELECT MAX(started_at) FROM job_actions WHERE account = $1",
                )
                .await?,
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
    conn: &mut PgConn,
    claim: &Claim,
    identity: &Identity,
    sweep: bool,
) -> Result<ClaimOutcome, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("claim"))?;
    let limited = claim.limits.per_hour.is_some() || !claim.limits.min_gap.is_zero();
    if limited {
        tx.execute(
            &st.get(&tx, "SELECT pg_advisory_xact_lock($1)").await?,
            &[&lane_key(claim.kind)],
        )
        .await
        .map_err(pg("claim lock"))?;
    }
    if sweep {
        sweep_expired(&tx, st, claim.kind, identity, claim.now).await?;
    }
    // A claim lost in a server crash only puts the job back in the queue: no fsync needed.
    // (It only has to arrive before COMMIT, so it travels with the breaker read.)
    let (relaxed, breaker) = tokio::join!(
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF"),
        breaker_check(&tx, st, claim.kind, identity, claim.now)
    );
    relaxed.map_err(pg("claim"))?;
    if let Some(until) = breaker? {
        tx.commit().await.map_err(pg("claim commit"))?;
        return Ok(ClaimOutcome::BreakerOpen { until });
    }
    let kind = claim.kind.as_str();
    let accounts: Vec<String> = if limited {
        tx.query(&st.get(&tx, "SELECT account FROM jobs WHERE kind = $1 AND state IN ('queued', 'failed') AND not_before <= $2
             GROUP BY account ORDER BY MIN(not_before), MIN(id)").await?,
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
            if let Some(until) = account_blocked_until(&tx, st, claim, &account).await? {
                any_due = true;
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
                continue;
            }
        }
        // Pick, lease and log the action in one statement (one round trip).
        let token = uuid::Uuid::new_v4().to_string();
        let expires = claim.now + claim.lease_for;
        let row = tx
            .query_opt(&st.get(&tx, &format!(
                    "WITH next AS (
                         SELECT id FROM jobs WHERE kind = $1 AND ($2 OR account = $3)
                           AND state IN ('queued', 'failed') AND not_before <= $4
                         ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED),
                     claimed AS (
                         UPDATE jobs SET state = 'claimed', attempts = attempts + 1, lease_owner = $5,
                             lease_token = $6, lease_expires_at = $7, updated_at = $4
                         FROM next WHERE jobs.id = next.id RETURNING jobs.*),
                     action AS (
                         INSERT INTO job_actions (job_id, kind, account, started_at)
                         SELECT id, kind, account, $4 FROM claimed)
                     SELECT {JOB_COLUMNS} FROM claimed"
                )).await?,
                &[&kind, &!limited, &account, &claim.now, &claim.owner, &token, &expires],
            )
            .await
            .map_err(pg("claim"))?;
        let Some(row) = row else { continue };
        let job = row_to_job(&row)?;
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
    st: &mut Statements,
    id: i64,
    token: &str,
    states: &[&str],
) -> Result<Job, StoreError> {
    let row = tx
        .query_opt(
            &st.get(
                tx,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"),
            )
            .await?,
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
    conn: &mut PgConn,
    id: i64,
    token: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    // One statement, committed with the server's full durability: the point of no return.
    let row = client
        .query_opt(
            &st.get(
                client,
                &format!(
                    "UPDATE jobs SET state = 'attempting', updated_at = $3
                 WHERE id = $1 AND lease_token = $2 AND state = 'claimed' AND lease_expires_at > $3
                 RETURNING {JOB_COLUMNS}"
                ),
            )
            .await?,
            &[&id, &token, &now],
        )
        .await
        .map_err(pg("attempting"))?;
    match row {
        Some(row) => row_to_job(&row),
        None if get(client, st, id).await?.is_none() => Err(StoreError::NotFound { job_id: id }),
        None => Err(StoreError::Fenced { job_id: id }),
    }
}

pub(crate) async fn finish(
    conn: &mut PgConn,
    id: i64,
    token: &str,
    outcome: &Outcome,
    identity: &Identity,
    now: SystemTime,
    retry_jitter: f64,
) -> Result<Job, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("finish"))?;
    // An outcome lost in a server crash leaves the job `attempting`; its lease then expires and
    // the job is verified on the site. Never a second publish, so no fsync is needed here.
    // (Sent together with the fenced read: one round trip for both.)
    let (relaxed, job) = tokio::join!(
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF"),
        fenced(&tx, st, id, token, &["claimed", "attempting"])
    );
    relaxed.map_err(pg("finish"))?;
    let job = job?;
    let was_attempting = matches!(job.state, JobState::Attempting(_));
    let retry_at;
    let (set, params): (&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) = match outcome {
        Outcome::Succeeded { post_id, url } => (
            "state = 'succeeded', post_id = $3, post_url = $4, last_error = NULL",
            vec![&id, &now, post_id, url],
        ),
        // After `attempting`, a failure can never be called "before the click".
        Outcome::Uncertain { error } | Outcome::FailedBeforeClick { error }
            if was_attempting || matches!(outcome, Outcome::Uncertain { .. }) =>
        {
            (
                "state = 'uncertain', last_error = $3",
                vec![&id, &now, error],
            )
        }
        Outcome::Uncertain { error } | Outcome::FailedBeforeClick { error } => {
            if job.attempts >= job.max_attempts {
                ("state = 'dead', last_error = $3", vec![&id, &now, error])
            } else {
                retry_at = now + retry_delay(job.attempts, retry_jitter);
                (
                    "state = 'failed', last_error = $3, not_before = $4",
                    vec![&id, &now, error, &retry_at],
                )
            }
        }
    };
    let sql = format!("UPDATE jobs SET {set}, {CLEAR_LEASE}, updated_at = $2 WHERE id = $1 RETURNING {JOB_COLUMNS}");
    let row = tx
        .query_one(&st.get(&tx, &sql).await?, &params)
        .await
        .map_err(pg("finish"))?;
    let done = row_to_job(&row)?;
    insert_event(&tx, st, &outcome_event(&done, outcome, identity, now)).await?;
    tx.commit().await.map_err(pg("finish commit"))?;
    Ok(done)
}

pub(crate) async fn claim_uncertain(
    conn: &mut PgConn,
    kind: Kind,
    owner: &str,
    lease_for: Duration,
    now: SystemTime,
) -> Result<Option<Job>, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("claim uncertain"))?;
    let row = tx
        .query_opt(&st.get(&tx, "SELECT id FROM jobs WHERE kind = $1 AND state = 'uncertain' AND (lease_token IS NULL OR lease_expires_at < $2)
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").await?,
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
    tx.execute(&st.get(&tx, "UPDATE jobs SET lease_owner = $2, lease_token = $3, lease_expires_at = $4, updated_at = $5 WHERE id = $1").await?,
        &[&id, &owner, &token, &expires, &now],
    )
    .await
    .map_err(pg("claim uncertain"))?;
    let job = must_get(&tx, st, id).await?;
    tx.commit().await.map_err(pg("claim uncertain commit"))?;
    Ok(Some(job))
}

pub(crate) async fn resolve_uncertain(
    conn: &mut PgConn,
    id: i64,
    token: &str,
    found: Option<(Option<String>, Option<String>)>,
    identity: &Identity,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("resolve"))?;
    let job = fenced(&tx, st, id, token, &["uncertain"]).await?;
    let resolution = match &found {
        Some((post_id, url)) => {
            tx.execute(&st.get(&tx, &format!("UPDATE jobs SET state = 'succeeded', post_id = $2, post_url = $3, {CLEAR_LEASE}, updated_at = $4 WHERE id = $1")).await?,
                &[&id, post_id, url, &now],
            )
            .await
            .map_err(pg("resolve"))?;
            let done = must_get(&tx, st, id).await?;
            let outcome = Outcome::Succeeded {
                post_id: post_id.clone(),
                url: url.clone(),
            };
            insert_event(&tx, st, &outcome_event(&done, &outcome, identity, now)).await?;
            "found on the site: succeeded"
        }
        None => {
            tx.execute(&st.get(&tx, &format!("UPDATE jobs SET state = 'queued', not_before = $2, {CLEAR_LEASE}, updated_at = $2 WHERE id = $1")).await?,
                &[&id, &now],
            )
            .await
            .map_err(pg("resolve"))?;
            "not on the site: queued again"
        }
    };
    insert_event(
        &tx,
        st,
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
    let done = must_get(&tx, st, id).await?;
    tx.commit().await.map_err(pg("resolve commit"))?;
    Ok(done)
}

pub(crate) async fn rescue_owner(
    conn: &mut PgConn,
    owner: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Rescued, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("rescue"))?;
    let rows = tx
        .query(&st.get(&tx, &format!(
                "UPDATE jobs SET state = 'uncertain', last_error = 'the previous run ended after the irreversible step',
                     {CLEAR_LEASE}, updated_at = $2
                 WHERE state = 'attempting' AND lease_owner = $1 RETURNING id"
            )).await?,
            &[&owner, &now],
        )
        .await
        .map_err(pg("rescue"))?;
    for row in &rows {
        let job = must_get(&tx, st, row.get(0)).await?;
        let outcome = Outcome::Uncertain {
            error: "the previous run ended after the irreversible step".into(),
        };
        insert_event(&tx, st, &outcome_event(&job, &outcome, identity, now)).await?;
    }
    let requeued = tx
        .execute(&st.get(&tx, &format!("UPDATE jobs SET state = 'queued', {CLEAR_LEASE}, updated_at = $2 WHERE state = 'claimed' AND lease_owner = $1")).await?,
            &[&owner, &now],
        )
        .await
        .map_err(pg("rescue"))?;
    tx.execute(&st.get(&tx, &format!("UPDATE jobs SET {CLEAR_LEASE}, updated_at = $2 WHERE state = 'uncertain' AND lease_owner = $1")).await?,
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
    st: &mut Statements,
    id: i64,
    from: &[&str],
    action: &'static str,
    update: &str,
    now: SystemTime,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(pg("operator"))?;
    let row = tx
        .query_opt(
            &st.get(
                &tx,
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"),
            )
            .await?,
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
    tx.execute(&st.get(&tx, update).await?, &[&id, &now])
        .await
        .map_err(pg("operator"))?;
    let job = must_get(&tx, st, id).await?;
    tx.commit().await.map_err(pg("operator commit"))?;
    Ok(job)
}

pub(crate) async fn retry(conn: &mut PgConn, id: i64, now: SystemTime) -> Result<Job, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    operator_transition(
        client,
        st,
        id,
        &["failed", "dead", "cancelled"],
        "retry",
        "UPDATE jobs SET state = 'queued', attempts = 0, not_before = $2, updated_at = $2 WHERE id = $1",
        now,
    )
    .await
}

pub(crate) async fn cancel(conn: &mut PgConn, id: i64, now: SystemTime) -> Result<Job, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    operator_transition(
        client,
        st,
        id,
        &["queued", "failed", "uncertain", "dead"],
        "cancel",
        "UPDATE jobs SET state = 'cancelled', updated_at = $2 WHERE id = $1",
        now,
    )
    .await
}

pub(crate) async fn breaker_open(
    conn: &mut PgConn,
    kind: Kind,
    until: SystemTime,
    reason: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<(), StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let tx = client.transaction().await.map_err(pg("breaker"))?;
    tx.execute(
        &st.get(
            &tx,
            "INSERT INTO lane_breakers (kind, until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (kind) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        )
        .await?,
        &[&kind.as_str(), &until, &reason],
    )
    .await
    .map_err(pg("breaker"))?;
    insert_event(
        &tx,
        st,
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

pub(crate) async fn breaker(
    conn: &mut PgConn,
    kind: Kind,
) -> Result<Option<SystemTime>, StoreError> {
    let PgConn {
        client,
        statements: st,
    } = conn;
    let row = client
        .query_opt(
            &st.get(client, "SELECT until FROM lane_breakers WHERE kind = $1")
                .await?,
            &[&kind.as_str()],
        )
        .await
        .map_err(pg("breaker"))?;
    Ok(row.map(|r| r.get(0)))
}
