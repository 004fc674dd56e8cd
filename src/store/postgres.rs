//! PostgreSQL backend: production, shared by several executors.
//!
//! One client connection, made lazily and remade after it is lost, so a database restart costs
//! failed calls (which the event sink spools) rather than a dead daemon. `event_data` is
//! `jsonb`, so the seed's `event_data->>'pages'` SQL runs verbatim.
//!
//! Nothing here waits without a deadline: a server that accepts TCP and never answers, one that
//! stops answering mid-session, or another session sitting on the migrations' lock must end in
//! a one-line error naming the server, never in a hang.
//!
//! - **Connect** (TCP and the startup exchange together): [`CONNECT_DEADLINE`], or the URL's
//!   `connect_timeout`.
//! - **Each statement**, on the server: `statement_timeout`, sent as a startup option on a direct
//!   connection. Behind a transaction-mode pooler (`pgbouncer=true`) there is no session to set
//!   it on (PgBouncer refuses the `options` startup parameter, and a `SET` would stay on a pooled
//!   server connection for other clients): there the client's deadline below is the bound, and
//!   the pooler's own `query_timeout` the server's.
//! - **Each call**, on the client: waiting for the connection, connecting and its statements
//!   within `call_deadline` (connecting + statement timeout + slack). A call that ends early, by
//!   its deadline or because its caller dropped it, closes the connection: what it left in
//!   flight may never be answered, and the next call connects anew rather than queue behind it.
//! - **The migrations' lock**: waited for [`MIGRATION_LOCK_WAIT`] at most (`lock_timeout`,
//!   transaction-scoped, so it works through a pooler too).

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
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
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
    (
        6,
        "pauses",
        include_str!("../../migrations/postgres/0006_pauses.sql"),
    ),
    (
        7,
        "enqueue function",
        include_str!("../../migrations/postgres/0007_enqueue_function.sql"),
    ),
];

/// Any constant: the advisory lock key that serialises migrations across executors.
pub const MIGRATION_LOCK_KEY: i64 = 0x6578_6563_7574_6f72; // "executor"

/// Connecting, unless the URL sets `connect_timeout`: long enough for a server across a slow
/// network, short enough that an operator is told before they wonder.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The server's bound on one statement. Every statement of ours is a short indexed one.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// On top of connecting and the server's statement timeout, what the client allows a call before
/// it gives up on an answer: enough for the server's own timeout error to arrive first.
const CALL_SLACK: Duration = Duration::from_secs(5);
/// How long opening the store waits for another session's migration lock. Migrating takes an
/// executor well under a second; a lock held longer is a stuck session an operator must see.
pub const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(15);
/// The server's bound on each migration statement (DDL on a large table may take a while).
const MIGRATION_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The client's bound on the whole migration, on top of connecting.
const MIGRATION_DEADLINE: Duration = Duration::from_secs(60);

pub struct PostgresStore {
    config: Config,
    /// Where the server is, for errors: hosts, ports and database, never the password.
    address: String,
    /// `pgbouncer=true` in the URL: a transaction-mode pooler is in front, so no statement is
    /// prepared once and reused (it would live on one server connection of the pool), and no
    /// session setting is made.
    behind_pooler: bool,
    connect_deadline: Duration,
    client: Mutex<Option<PgConn>>,
    sweeps: super::SweepClock,
    observer: Observer,
}

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

/// `host:port[,host:port…]/dbname` of a config: what an error names the server by.
fn address_of(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            };
            // One port for all hosts, one per host, or the default.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(",")
    };
    match config.get_dbname() {
        Some(db) => format!("{hosts}/{db}"),
        None => hosts,
    }
}

/// The connection for one call. A call that ends without [`Call::done`] (its deadline passed,
/// its caller dropped it) leaves requests in flight whose answers may never come: the connection
/// is closed then, so the next call connects anew instead of queueing behind them.
struct Call<'a> {
    slot: tokio::sync::MutexGuard<'a, Option<PgConn>>,
    done: bool,
}

impl Call<'_> {
    fn conn(&mut self) -> Result<&mut PgConn, StoreError> {
        self.slot.as_mut().ok_or(StoreError::Other {
            operation: "connect",
            reason: "no connection".into(),
        })
    }

    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Dropping the connection ends its task and closes the socket.
            *self.slot = None;
        }
    }
}

impl PostgresStore {
    pub fn new(url: &str) -> Result<PostgresStore, StoreError> {
        let (url, behind_pooler) = crate::settings::without_pooler_flag(url);
        let mut config: Config = url.parse().map_err(pg("parse url"))?;
        let connect_deadline = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_DEADLINE);
        config.connect_timeout(connect_deadline);
        if config.get_application_name().is_none() {
            config.application_name("executor");
        }
        if !behind_pooler {
            // Added to what the URL's `options` already say (a test's search_path); a
            // statement_timeout of the operator's own wins.
            let options = config.get_options().unwrap_or_default().to_string();
            if !options.contains("statement_timeout") {
                let ours = format!("-c statement_timeout={}", STATEMENT_TIMEOUT.as_millis());
                let options = if options.trim().is_empty() {
                    ours
                } else {
                    format!("{options} {ours}")
                };
                config.options(options);
            }
        }
        Ok(PostgresStore {
            address: address_of(&config),
            config,
            behind_pooler,
            connect_deadline,
            client: Mutex::new(None),
            sweeps: super::SweepClock::default(),
            observer: Observer::default(),
        })
    }

    /// What the client allows one call, from its start to its answer.
    fn call_deadline(&self) -> Duration {
        self.connect_deadline + STATEMENT_TIMEOUT + CALL_SLACK
    }

    fn timed_out(&self, operation: &'static str, after: Duration) -> StoreError {
        StoreError::PostgresTimeout {
            address: self.address.clone(),
            operation,
            after,
        }
    }

    /// Runs `call` within `deadline`, or says which operation timed out.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        deadline: Duration,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(operation, deadline)))
    }

    /// The live connection for one call, connecting first when there is none or it was lost.
    async fn call(&self) -> Result<Call<'_>, StoreError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            // Dropped first: a lost connection's task ends with it.
            *slot = None;
            let (client, connection) =
                tokio::time::timeout(self.connect_deadline, self.config.connect(NoTls))
                    .await
                    .map_err(|_| self.timed_out("connect", self.connect_deadline))?
                    .map_err(pg("connect"))?;
            let task = tokio::spawn(async move {
                // Ends when the socket closes; the client then reports is_closed().
                let _ = connection.await;
            });
            *slot = Some(PgConn::new(
                client,
                !self.behind_pooler,
                task.abort_handle(),
            ));
        }
        Ok(Call { slot, done: false })
    }

    /// The migrations, in one transaction under the migrations' advisory lock.
    async fn migrate_on(&self, conn: &mut PgConn) -> Result<(), StoreError> {
        let tx = conn.client.transaction().await.map_err(pg("migrate"))?;
        // Transaction-scoped, like the lock: a pooler's server connection keeps nothing.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
            MIGRATION_LOCK_WAIT.as_millis(),
            MIGRATION_STATEMENT_TIMEOUT.as_millis()
        ))
        .await
        .map_err(pg("migrate"))?;
        // Released at COMMIT. Not granted within the lock timeout: the server says so with
        // LOCK_NOT_AVAILABLE.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(|err| {
                if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                    StoreError::MigrationLocked {
                        address: self.address.clone(),
                        key: MIGRATION_LOCK_KEY,
                        waited: MIGRATION_LOCK_WAIT,
                    }
                } else {
                    pg("migrate lock")(err)
                }
            })?;
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
}

/// Runs one of the queue's steps on the live connection, within the call deadline; the events
/// it committed then go to the observer.
macro_rules! run {
    ($store:expr, $operation:literal, |$conn:ident| $body:expr) => {{
        let store = $store;
        run!(store, $operation, deadline store.call_deadline(), |$conn| $body)
    }};
    ($store:expr, $operation:literal, deadline $deadline:expr, |$conn:ident| $body:expr) => {{
        let store = $store;
        store
            .bounded($operation, $deadline, async {
                let mut call = store.call().await?;
                let $conn = call.conn()?;
                let result = $body.await;
                store.observer.committed(&mut $conn.written);
                call.done();
                result
            })
            .await
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
        let deadline = self.connect_deadline + MIGRATION_DEADLINE;
        self.bounded("migrate", deadline, async {
            let mut call = self.call().await?;
            self.migrate_on(call.conn()?).await?;
            call.done();
            Ok(())
        })
        .await
    }

    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError> {
        run!(self, "event insert", |c| queue::event_insert(c, event))
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        run!(self, "event list", |c| queue::event_list(c, query))
    }

    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError> {
        run!(self, "job enqueue", |c| queue::job_enqueue(c, job, now))
    }

    async fn job_enqueue_batch(
        &self,
        jobs: Vec<NewJob>,
        now: SystemTime,
        control: &BatchControl,
    ) -> Result<Vec<BatchEnqueued>, StoreError> {
        // A batch is many statements in one transaction: its deadline grows with its size
        // (each statement still has the server's own limit on a direct connection).
        let deadline = self.call_deadline() + Duration::from_millis(jobs.len() as u64);
        run!(self, "job enqueue batch", deadline deadline, |c| {
            queue::job_enqueue_batch(c, &jobs, now, control)
        })
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        run!(self, "job get", |c| queue::job_get(c, id))
    }

    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        run!(self, "job list", |c| queue::job_list(c, query))
    }

    async fn job_count_due(
        &self,
        kind: Kind,
        account: Option<&str>,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        run!(self, "job count due", |c| queue::job_count_due(
            c, kind, account, now
        ))
    }

    async fn tick_start(
        &self,
        account: &str,
        hold: Option<&crate::fleet::TickHold>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(crate::kind::LaneLook, Option<crate::fleet::LeaseOutcome>), StoreError> {
        run!(self, "tick start", |c| queue::tick_start(
            c, account, hold, identity, now
        ))
    }

    async fn job_due_accounts(&self, now: SystemTime) -> Result<Vec<String>, StoreError> {
        run!(self, "due accounts", |c| queue::job_due_accounts(c, now))
    }

    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError> {
        run!(self, "job count by state", |c| queue::job_count_by_state(c))
    }

    async fn job_queue_by_account(
        &self,
        now: SystemTime,
    ) -> Result<Vec<crate::store::QueueCount>, StoreError> {
        run!(self, "job queue by account", |c| {
            queue::job_queue_by_account(c, now)
        })
    }

    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError> {
        let sweep = self.sweeps.due(claim.kind, claim.now);
        run!(self, "job claim next", |c| queue::job_claim_next(
            c, claim, identity, sweep
        ))
    }

    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        run!(self, "job mark attempting", |c| queue::job_mark_attempting(
            c, id, token, now
        ))
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
        run!(self, "job finish", |c| queue::job_finish(
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
        run!(self, "job claim uncertain", |c| queue::job_claim_uncertain(
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
        run!(self, "job resolve uncertain", |c| {
            queue::job_resolve_uncertain(c, id, token, found, identity, now)
        })
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
        run!(self, "job defer uncertain", |c| queue::job_defer_uncertain(
            c, id, token, reason, retry_at, identity, now
        ))
    }

    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError> {
        run!(self, "job rescue owner", |c| queue::job_rescue_owner(
            c, owner, identity, now
        ))
    }

    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        run!(self, "job retry", |c| queue::job_operator(
            c,
            id,
            OperatorAction::Retry,
            now
        ))
    }

    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        run!(self, "job cancel", |c| queue::job_operator(
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
        run!(self, "lane breaker open", |c| queue::breaker_open(
            c, account, kind, until, reason, identity, now
        ))
    }

    async fn executor_register(
        &self,
        info: &crate::fleet::ExecutorInfo,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, "executor register", |c| queue::executor_register(
            c, info, now
        ))
    }

    async fn account_lease_hold(
        &self,
        account: &str,
        me: &str,
        ttl: Duration,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<crate::fleet::LeaseOutcome, StoreError> {
        run!(self, "account lease hold", |c| queue::account_lease_hold(
            c, account, me, ttl, identity, now
        ))
    }

    async fn executor_tick(
        &self,
        id: &str,
        tick: &Event,
        renew: Option<&crate::fleet::LeaseRenewal>,
    ) -> Result<bool, StoreError> {
        run!(self, "executor tick", |c| queue::executor_tick(
            c, id, tick, renew
        ))
    }

    async fn executor_stopped(
        &self,
        id: &str,
        account: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        run!(self, "executor stopped", |c| queue::executor_stopped(
            c, id, account, now
        ))
    }

    async fn fleet(&self) -> Result<Vec<crate::fleet::FleetMember>, StoreError> {
        run!(self, "fleet", |c| queue::fleet(c))
    }

    async fn lane_breaker(
        &self,
        account: &str,
        kind: Kind,
    ) -> Result<Option<SystemTime>, StoreError> {
        run!(self, "lane breaker", |c| queue::breaker(c, account, kind))
    }

    async fn lane_recent_actions(
        &self,
        account: &str,
        kind: Kind,
        now: SystemTime,
    ) -> Result<crate::jobs::RecentActions, StoreError> {
        run!(self, "lane recent actions", |c| queue::lane_recent_actions(
            c, account, kind, now
        ))
    }

    async fn pause_insert(
        &self,
        pause: &crate::pauses::Pause,
        identity: &Identity,
    ) -> Result<crate::pauses::Inserted, StoreError> {
        run!(self, "pause", |c| queue::pause_insert(c, pause, identity))
    }

    async fn pause_delete(
        &self,
        scope: &crate::pauses::Scope,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        run!(self, "resume", |c| queue::pause_delete(
            c, scope, by, identity, now
        ))
    }

    async fn pause_delete_all(
        &self,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Vec<crate::pauses::Pause>, StoreError> {
        run!(self, "resume all", |c| queue::pause_delete_all(
            c, by, identity, now
        ))
    }

    async fn pause_list(&self) -> Result<Vec<crate::pauses::Pause>, StoreError> {
        run!(self, "pause list", |c| queue::pause_list(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_connection_gets_a_statement_timeout_next_to_the_urls_options() {
        let store = PostgresStore::new(
            "postgres://me:secret@db.example:6543/app?options=-csearch_path%3Dt_1",
        )
        .expect("url");
        assert_eq!(
            store.config.get_options(),
            Some("-csearch_path=t_1 -c statement_timeout=10000")
        );
        assert_eq!(store.address, "db.example:6543/app");
        assert_eq!(store.connect_deadline, CONNECT_DEADLINE);
    }

    #[test]
    fn an_operators_own_timeouts_win() {
        let store = PostgresStore::new(
            "postgres://me@db/app?connect_timeout=2&options=-c%20statement_timeout%3D500",
        )
        .expect("url");
        assert_eq!(store.config.get_options(), Some("-c statement_timeout=500"));
        assert_eq!(store.connect_deadline, Duration::from_secs(2));
        assert_eq!(store.call_deadline(), Duration::from_secs(17));
        assert_eq!(store.address, "db:5432/app");
    }

    #[test]
    fn behind_a_pooler_no_session_setting_is_sent() {
        // PgBouncer refuses the `options` startup parameter.
        let store =
            PostgresStore::new("postgres://me@127.0.0.1:6432/app?pgbouncer=true").expect("url");
        assert_eq!(store.config.get_options(), None);
        assert!(store.behind_pooler);
    }
}
