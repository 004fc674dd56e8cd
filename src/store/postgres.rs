//! PostgreSQL backend: production, shared by several executors.
//!
//! One client connection, made lazily and remade after it is lost, so a database restart costs
//! failed calls (which the event sink spools) rather than a dead daemon. Every connect has a short
//! timeout. `event_data` is `jsonb`, so the seed's `event_data->>'pages'` SQL runs verbatim.

use super::postgres_jobs::{self as jobs, PgConn};
use super::{Enqueued, EventQuery, Rescued, Store, StoreError};
use crate::events::{Event, Identity, Severity};
use crate::jobs::{Claim, ClaimOutcome, Job, JobQuery, Kind, NewJob, Outcome};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio_postgres::{Config, NoTls};

const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "system_events",
        include_str!("../../migrations/postgres/0001_system_events.sql"),
    ),
    (
        2,
        "jobs",
        include_str!("../../migrations/postgres/0002_jobs.sql"),
    ),
];

/// Any constant: the advisory lock key that serialises migrations across executors.
const MIGRATION_LOCK_KEY: i64 = 0x6578_6563_7574_6f72; // "executor"

pub struct PostgresStore {
    config: Config,
    client: Mutex<Option<PgConn>>,
    sweeps: super::SweepClock,
}

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

impl PostgresStore {
    pub fn new(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse().map_err(pg("parse url"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        if config.get_application_name().is_none() {
            config.application_name("executor");
        }
        Ok(PostgresStore {
            config,
            client: Mutex::new(None),
            sweeps: super::SweepClock::default(),
        })
    }

    /// The live client, connecting first when there is none or it was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<PgConn>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            let (client, connection) = self.config.connect(NoTls).await.map_err(pg("connect"))?;
            tokio::spawn(async move {
                // Ends when the socket closes; the client then reports is_closed().
                let _ = connection.await;
            });
            *guard = Some(PgConn {
                client,
                statements: Default::default(),
            });
        }
        Ok(guard)
    }
}

fn row_to_event(row: &tokio_postgres::Row) -> Result<Event, StoreError> {
    let severity: String = row.get(2);
    Ok(Event {
        id: row.get(0),
        event_type: row.get(1),
        severity: Severity::parse(&severity).ok_or(StoreError::Other {
            operation: "read event",
            reason: format!("unknown severity {severity:?}"),
        })?,
        message: row.get(3),
        event_data: row.get(4),
        created_at: row.get(5),
    })
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn dialect(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut guard = self.client().await?;
        let Some(PgConn { client, .. }) = guard.as_mut() else {
            return Err(StoreError::Other {
                operation: "migrate",
                reason: "no connection".into(),
            });
        };
        let tx = client.transaction().await.map_err(pg("migrate"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(pg("migrate lock"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg("migrate"))?;
        for (version, name, sql) in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(pg("migrate"))?;
            if applied.is_none() {
                tx.batch_execute(sql).await.map_err(pg("migrate"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(pg("migrate"))?;
            }
        }
        tx.commit().await.map_err(pg("migrate commit"))
    }

    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError> {
        let mut guard = self.client().await?;
        let conn = connected_mut(&mut guard, "event insert")?;
        jobs::insert_event(&conn.client, &mut conn.statements, event).await
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let guard = self.client().await?;
        let Some(PgConn { client, .. }) = guard.as_ref() else {
            return Err(StoreError::Other {
                operation: "event list",
                reason: "no connection".into(),
            });
        };
        let since = query.since.unwrap_or(std::time::UNIX_EPOCH);
        let types: Vec<String> = query.types.clone();
        let limit: i64 = query.limit.map(i64::from).unwrap_or(i64::MAX);
        let mut rows = client
            .query(
                "SELECT id, event_type, severity, message, event_data, created_at FROM system_events
                 WHERE (cardinality($1::text[]) = 0 OR event_type = ANY($1)) AND created_at >= $2
                 ORDER BY created_at DESC, seq DESC LIMIT $3",
                &[&types, &since, &limit],
            )
            .await
            .map_err(pg("event list"))?;
        rows.reverse();
        rows.iter().map(row_to_event).collect()
    }

    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError> {
        let mut guard = self.client().await?;
        jobs::enqueue(connected_mut(&mut guard, "enqueue")?, job, now).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let mut guard = self.client().await?;
        jobs::job_get(connected_mut(&mut guard, "job get")?, id).await
    }

    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let mut guard = self.client().await?;
        jobs::list(connected_mut(&mut guard, "job list")?, query).await
    }

    async fn job_count_due(&self, kind: Kind, now: SystemTime) -> Result<u64, StoreError> {
        let mut guard = self.client().await?;
        jobs::count_due(connected_mut(&mut guard, "job count")?, kind, now).await
    }

    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError> {
        let mut guard = self.client().await?;
        jobs::count_by_state(connected_mut(&mut guard, "job counts")?).await
    }

    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError> {
        let sweep = self.sweeps.due(claim.kind, claim.now);
        let mut guard = self.client().await?;
        jobs::claim_next(connected_mut(&mut guard, "claim")?, claim, identity, sweep).await
    }

    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        let mut guard = self.client().await?;
        jobs::mark_attempting(connected_mut(&mut guard, "attempting")?, id, token, now).await
    }

    async fn job_finish(
        &self,
        id: i64,
        token: &str,
        outcome: &Outcome,
        identity: &Identity,
        now: SystemTime,
        retry_jitter: f64,
    ) -> Result<Job, StoreError> {
        let mut guard = self.client().await?;
        jobs::finish(
            connected_mut(&mut guard, "finish")?,
            id,
            token,
            outcome,
            identity,
            now,
            retry_jitter,
        )
        .await
    }

    async fn job_claim_uncertain(
        &self,
        kind: Kind,
        owner: &str,
        lease_for: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, StoreError> {
        let mut guard = self.client().await?;
        jobs::claim_uncertain(
            connected_mut(&mut guard, "claim uncertain")?,
            kind,
            owner,
            lease_for,
            now,
        )
        .await
    }

    async fn job_resolve_uncertain(
        &self,
        id: i64,
        token: &str,
        found: Option<(Option<String>, Option<String>)>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        let mut guard = self.client().await?;
        jobs::resolve_uncertain(
            connected_mut(&mut guard, "resolve")?,
            id,
            token,
            found,
            identity,
            now,
        )
        .await
    }

    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError> {
        let mut guard = self.client().await?;
        jobs::rescue_owner(connected_mut(&mut guard, "rescue")?, owner, identity, now).await
    }

    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        let mut guard = self.client().await?;
        jobs::retry(connected_mut(&mut guard, "retry")?, id, now).await
    }

    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        let mut guard = self.client().await?;
        jobs::cancel(connected_mut(&mut guard, "cancel")?, id, now).await
    }

    async fn lane_breaker_open(
        &self,
        kind: Kind,
        until: SystemTime,
        reason: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut guard = self.client().await?;
        jobs::breaker_open(
            connected_mut(&mut guard, "breaker")?,
            kind,
            until,
            reason,
            identity,
            now,
        )
        .await
    }

    async fn lane_breaker(&self, kind: Kind) -> Result<Option<SystemTime>, StoreError> {
        let mut guard = self.client().await?;
        jobs::breaker(connected_mut(&mut guard, "breaker")?, kind).await
    }
}

/// The connection inside a guard from [`PostgresStore::client`].
fn connected_mut<'a>(
    guard: &'a mut Option<PgConn>,
    operation: &'static str,
) -> Result<&'a mut PgConn, StoreError> {
    guard.as_mut().ok_or(StoreError::Other {
        operation,
        reason: "no connection".into(),
    })
}
