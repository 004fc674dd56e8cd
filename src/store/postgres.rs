//! PostgreSQL backend: production, shared by several executors.
//!
//! One client connection, made lazily and remade after it is lost, so a database restart costs
//! failed calls (which the event sink spools) rather than a dead daemon. Every connect has a short
//! timeout. `event_data` is `jsonb`, so the seed's `event_data->>'pages'` SQL runs verbatim.

use super::postgres_jobs::PgConn;
use super::queue;
use super::{
    BatchControl, BatchEnqueued, Enqueued, EventQuery, Observer, Rescued, Store, StoreError,
};
use crate::events::{Event, EventObserver, Identity};
use crate::jobs::{Claim, ClaimOutcome, Job, JobQuery, Kind, NewJob, OperatorAction, Outcome};
use std::sync::Arc;
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
    (
        3,
        "accounts",
        include_str!("../../migrations/postgres/0003_accounts.sql"),
    ),
    (
        4,
        "fleet",
        include_str!("../../migrations/postgres/0004_fleet.sql"),
    ),
    (
        5,
        "claim logs action",
        include_str!("../../migrations/postgres/0005_claim_logs_action.sql"),
    ),
];

/// Any constant: the advisory lock key that serialises migrations across executors.
const MIGRATION_LOCK_KEY: i64 = 0x6578_6563_7574_6f72; // "executor"

pub struct PostgresStore {
    config: Config,
    /// `pgbouncer=true` in the URL: a transaction-mode pooler is in front, so no statement is
    /// prepared once and reused (it would live on one server connection of the pool).
    behind_pooler: bool,
    client: Mutex<Option<PgConn>>,
    sweeps: super::SweepClock,
    observer: Observer,
}

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

impl PostgresStore {
    pub fn new(url: &str) -> Result<PostgresStore, StoreError> {
        let (url, behind_pooler) = crate::settings::without_pooler_flag(url);
        let mut config: Config = url.parse().map_err(pg("parse url"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        if config.get_application_name().is_none() {
            config.application_name("executor");
        }
        Ok(PostgresStore {
            config,
            behind_pooler,
            client: Mutex::new(None),
            sweeps: super::SweepClock::default(),
            observer: Observer::default(),
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
            *guard = Some(PgConn::new(client, !self.behind_pooler));
        }
        Ok(guard)
    }
}

/// Runs one of the queue's steps on the live connection; the events it committed then go to the
/// observer.
macro_rules! run {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut guard = $store.client().await?;
        let $conn = guard.as_mut().ok_or(StoreError::Other {
            operation: "connect",
            reason: "no connection".into(),
        })?;
        let result = $body.await;
        $store.observer.committed(&mut $conn.written);
        result
    }};
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn dialect(&self) -> &'static str {
        "postgres"
    }

    fn set_observer(&self, observer: Arc<dyn EventObserver>) {
        self.observer.set(observer);
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
        // Transaction-scoped: released at COMMIT, so a pooler's server connection keeps nothing.
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
        run!(self, |c| queue::event_insert(c, event))
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        run!(self, |c| queue::event_list(c, query))
    }

    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError> {
        run!(self, |c| queue::job_enqueue(c, job, now))
    }

    async fn job_enqueue_batch(
        &self,
        jobs: Vec<NewJob>,
        now: SystemTime,
        control: &BatchControl,
    ) -> Result<Vec<BatchEnqueued>, StoreError> {
        run!(self, |c| queue::job_enqueue_batch(c, &jobs, now, control))
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        run!(self, |c| queue::job_get(c, id))
    }

    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        run!(self, |c| queue::job_list(c, query))
    }

    async fn job_count_due(
        &self,
        kind: Kind,
        account: Option<&str>,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        run!(self, |c| queue::job_count_due(c, kind, account, now))
    }

    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError> {
        run!(self, |c| queue::job_count_by_state(c))
    }

    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError> {
        let sweep = self.sweeps.due(claim.kind, claim.now);
        run!(self, |c| queue::job_claim_next(c, claim, identity, sweep))
    }

    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        run!(self, |c| queue::job_mark_attempting(c, id, token, now))
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
        run!(self, |c| queue::job_finish(
            c,
            id,
            token,
            outcome,
            identity,
            now,
            retry_jitter
        ))
    }

    async fn job_claim_uncertain(
        &self,
        kind: Kind,
        account: &str,
        owner: &str,
        lease_for: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, StoreError> {
        run!(self, |c| queue::job_claim_uncertain(
            c, kind, account, owner, lease_for, now
        ))
    }

    async fn job_resolve_uncertain(
        &self,
        id: i64,
        token: &str,
        found: Option<(Option<String>, Option<String>)>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        run!(self, |c| queue::job_resolve_uncertain(
            c, id, token, found, identity, now
        ))
    }

    async fn job_defer_uncertain(
        &self,
        id: i64,
        token: &str,
        reason: &str,
        retry_at: SystemTime,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        run!(self, |c| queue::job_defer_uncertain(
            c, id, token, reason, retry_at, identity, now
        ))
    }

    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError> {
        run!(self, |c| queue::job_rescue_owner(c, owner, identity, now))
    }

    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        run!(self, |c| queue::job_operator(
            c,
            id,
            OperatorAction::Retry,
            now
        ))
    }

    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        run!(self, |c| queue::job_operator(
            c,
            id,
            OperatorAction::Cancel,
            now
        ))
    }

    async fn lane_breaker_open(
        &self,
        account: &str,
        kind: Kind,
        until: SystemTime,
        reason: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, |c| queue::breaker_open(
            c, account, kind, until, reason, identity, now
        ))
    }

    async fn executor_register(
        &self,
        info: &crate::fleet::ExecutorInfo,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, |c| queue::executor_register(c, info, now))
    }

    async fn account_lease_hold(
        &self,
        account: &str,
        me: &str,
        ttl: Duration,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<crate::fleet::LeaseOutcome, StoreError> {
        run!(self, |c| queue::account_lease_hold(
            c, account, me, ttl, identity, now
        ))
    }

    async fn executor_heartbeat(
        &self,
        id: &str,
        last_tick: &serde_json::Value,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, |c| queue::executor_heartbeat(c, id, last_tick, now))
    }

    async fn executor_stopped(
        &self,
        id: &str,
        account: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, |c| queue::executor_stopped(c, id, account, now))
    }

    async fn fleet(&self) -> Result<Vec<crate::fleet::FleetMember>, StoreError> {
        run!(self, |c| queue::fleet(c))
    }

    async fn lane_breaker(
        &self,
        account: &str,
        kind: Kind,
    ) -> Result<Option<SystemTime>, StoreError> {
        run!(self, |c| queue::breaker(c, account, kind))
    }
}
