//! Storage behind one trait, with one implementation per dialect (docs/architecture.md).
//!
//! - [`sqlite`]: the embedded default (`<profile>/executor.db`), WAL, one writer at a time.
//! - [`postgres`]: production (`DATABASE_URL=postgres://…`), shared by several executors.
//!
//! The job state machine's steps are written once, in `queue.rs`, over a small driver; each
//! dialect supplies only its SQL text under the same names (`sqlite_jobs.rs`, `postgres_jobs.rs`)
//! and the few lines that run it. The rules the steps apply are plain functions in
//! [`crate::jobs`]. Events a step writes in its transaction are handed, after the commit, to the
//! observer set with [`Store::set_observer`] (the metrics count them).
//!
//! Migrations live in `migrations/<dialect>/NNNN_name.sql`, numbered the same for both, embedded
//! in the binary and applied at start inside a transaction (on PostgreSQL under an advisory lock,
//! so executors starting together do not race). The same test suite (`tests/store.rs`) runs
//! against both backends so they cannot drift apart.
//!
//! Every write is idempotent by the event's unique id: writing an event twice (say, once before a
//! crash and again from the spool) stores it once.

pub mod postgres;
mod postgres_jobs;
mod queue;
pub mod sqlite;
mod sqlite_idle;
mod sqlite_jobs;

use crate::events::{Event, EventObserver, Identity};
use crate::jobs::{Claim, ClaimOutcome, Job, JobQuery, Kind, NewJob, Outcome};
use crate::settings::DatabaseUrl;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// What PostgreSQL said, not only the driver's "db error": the server's message (with its
/// detail and hint), or the cause of a failed connection, once.
pub fn postgres_message(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return crate::quote::single_line(&text, crate::quote::MESSAGE_CHARS);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    crate::quote::single_line(&text, crate::quote::MESSAGE_CHARS)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("postgres {operation}: {}", postgres_message(.source))]
    Postgres {
        operation: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("store {operation} timed out after {seconds}s")]
    Timeout {
        operation: &'static str,
        seconds: u64,
    },
    /// A PostgreSQL call got no answer in time: named by the server's address (never a
    /// password), so the line alone says which server to look at.
    #[error("postgres {address}: {operation} timed out after {}", crate::settings::format_duration(*.after))]
    PostgresTimeout {
        address: String,
        operation: &'static str,
        after: Duration,
    },
    /// Another session held the migrations' advisory lock for longer than opening waits.
    #[error(
        "postgres {address}: migration lock not granted within {}: another session holds advisory lock {key} (pg_locks shows which)",
        crate::settings::format_duration(*.waited)
    )]
    MigrationLocked {
        address: String,
        key: i64,
        waited: Duration,
    },
    #[error("store {operation}: {reason}")]
    Other {
        operation: &'static str,
        reason: String,
    },
    /// The worker's lease is gone (expired and swept, or taken over): it must not touch the job.
    #[error("job {job_id}: lease lost (fenced out); the job is no longer ours")]
    Fenced { job_id: i64 },
    #[error("job {job_id} not found")]
    NotFound { job_id: i64 },
    #[error("job {job_id} is {state}: cannot {action} it")]
    Transition {
        job_id: i64,
        state: String,
        action: &'static str,
    },
    /// The caller gave up (a signal) before the commit: the transaction was rolled back.
    #[error("store {operation} abandoned before its commit: nothing of it was stored")]
    Abandoned { operation: &'static str },
}

impl StoreError {
    /// The disk (or the server's) is full: SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`
    /// (53100). Said by name, because the store's own words ("database or disk is full") are
    /// easy to miss at the end of a long line.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            StoreError::Postgres { source, .. } => {
                source.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL)
            }
            _ => false,
        }
    }
}

/// The result of an enqueue: a new job, or the one that already has this idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created(Job),
    Exists(Job),
}

/// What [`Store::job_enqueue_batch`] did with one job of the batch: a summary, so that a batch
/// of a hundred thousand jobs is not read back whole.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEnqueued {
    Created {
        id: i64,
        kind: Kind,
        not_before: SystemTime,
    },
    /// The key was taken (by an earlier job, or an earlier job of the same batch): nothing added.
    Exists {
        id: i64,
        key: String,
        state: &'static str,
    },
}

/// Watches a batch from outside while the store writes it: how many jobs are written so far (in
/// the transaction, not committed), and a switch that abandons it. The batch is abandoned
/// between two of its chunks and never committed once the switch is on. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BatchControl {
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    written: Arc<std::sync::atomic::AtomicUsize>,
}

impl BatchControl {
    /// Abandon the batch: its transaction is rolled back instead of committed.
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Jobs written so far in the batch's transaction.
    pub fn written(&self) -> usize {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn add_written(&self, jobs: usize) {
        self.written
            .fetch_add(jobs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What [`Store::job_rescue_owner`] did at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Jobs left `attempting` by our previous run: now `uncertain`.
    pub uncertain: u64,
    /// Jobs left `claimed` (never clicked): back to `queued`.
    pub requeued: u64,
}

/// Which events to read back.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only these types (all when empty).
    pub types: Vec<String>,
    /// Only events created at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many, newest first when set; all in time order otherwise.
    pub limit: Option<u32>,
    /// Only the events about this job (their data's `job_id`).
    pub job_id: Option<i64>,
}

/// One line of the queue by account and lane: how many jobs of `account`'s `kind` lane are in
/// `state`, split by whether they are `due` at the time asked (else waiting for their time),
/// and the earliest time among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    pub account: String,
    pub kind: Kind,
    pub state: String,
    pub due: bool,
    pub count: u64,
    pub earliest: SystemTime,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn dialect(&self) -> &'static str;

    /// Every event a job transition writes is shown to `observer` once its transaction has
    /// committed (events inserted with [`Store::event_insert`] are not: their sender saw them).
    fn set_observer(&self, observer: Arc<dyn EventObserver>);

    /// Applies every migration not yet applied.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Inserts one event; returns false when an event with that id was already stored.
    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError>;

    /// Events matching `query`, oldest first.
    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// Adds a job, or returns the existing one with the same idempotency key.
    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError>;

    /// Adds every job of `jobs` in ONE transaction, each as [`Store::job_enqueue`] would (a
    /// taken key adds nothing and names the job that has it), answering in the same order: all
    /// of them are stored, or — on any error, or once `control` is cancelled — none.
    async fn job_enqueue_batch(
        &self,
        jobs: Vec<NewJob>,
        now: SystemTime,
        control: &BatchControl,
    ) -> Result<Vec<BatchEnqueued>, StoreError>;

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError>;

    /// Jobs matching `query`, oldest first.
    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError>;

    /// The true number of jobs of `kind` due at `now` (queued or failed, not before now), of
    /// one account or (`None`) of all.
    async fn job_count_due(
        &self,
        kind: Kind,
        account: Option<&str>,
        now: SystemTime,
    ) -> Result<u64, StoreError>;

    /// The tick's first call: both lanes of `account` — what is due, and whether anything else
    /// asks for the lane's pass (see [`crate::kind::LaneLook`]) — and, given `hold`, the
    /// account's lease held in the same transaction, as [`Store::account_lease_hold`] holds it;
    /// on an idle tick of an executor that held it at its last answer, only read while it is
    /// still [`crate::fleet::lease_fresh`] (the tick's event renews it).
    async fn tick_start(
        &self,
        account: &str,
        hold: Option<&crate::fleet::TickHold>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(crate::kind::LaneLook, Option<crate::fleet::LeaseOutcome>), StoreError>;

    /// The accounts that have jobs due at `now` (queued or failed, not before now), in order.
    async fn job_due_accounts(&self, now: SystemTime) -> Result<Vec<String>, StoreError>;

    /// How many jobs of each kind are in each state: `(kind, state, count)`.
    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError>;

    /// The unfinished jobs (not `succeeded` or `cancelled`) counted by account, lane, state and
    /// whether they are due at `now`.
    async fn job_queue_by_account(&self, now: SystemTime) -> Result<Vec<QueueCount>, StoreError>;

    /// Atomically claims the next due job of the claim's account and lane, within its rate
    /// limits and breaker.
    /// Expired leases are swept first (`attempting` → `uncertain`, `claimed` → `queued`).
    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Commits `attempting` before the irreversible step. Fenced by the lease token; refused
    /// once the lease has expired.
    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError>;

    /// Records how an attempt ended (with its event, in the same transaction). Fenced.
    /// `retry_jitter` (0–0.25) spreads retries of jobs that failed before the click.
    async fn job_finish(
        &self,
        id: i64,
        token: &str,
        outcome: &Outcome,
        identity: &Identity,
        now: SystemTime,
        retry_jitter: f64,
    ) -> Result<Job, StoreError>;

    /// Leases one `uncertain` job of the account's lane for verification on the site (only the
    /// executor acting for that account can look it up).
    async fn job_claim_uncertain(
        &self,
        kind: Kind,
        account: &str,
        owner: &str,
        lease_for: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, StoreError>;

    /// The verification's answer: `found` → `succeeded`; not found → `queued` again. Fenced.
    async fn job_resolve_uncertain(
        &self,
        id: i64,
        token: &str,
        found: Option<(Option<String>, Option<String>)>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Job, StoreError>;

    /// The lookup could not cover the whole window since the attempt: the job stays `uncertain`,
    /// is looked up again from `retry_at`, and an event tells the operator. Fenced.
    async fn job_defer_uncertain(
        &self,
        id: i64,
        token: &str,
        reason: &str,
        retry_at: SystemTime,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Job, StoreError>;

    /// At start: jobs still leased to `owner` by an earlier run become `uncertain` (if they were
    /// `attempting`) or `queued` (if only `claimed`).
    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError>;

    /// Operator: a `failed`, `dead` or `cancelled` job goes back to `queued` with fresh attempts.
    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError>;

    /// Operator: a job not in flight is cancelled.
    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError>;

    /// The site answered 429: pause the account's lane until `until` (persisted; survives
    /// restarts; other accounts go on).
    async fn lane_breaker_open(
        &self,
        account: &str,
        kind: Kind,
        until: SystemTime,
        reason: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// At start: this executor is in the registry (a standby until it holds its account).
    async fn executor_register(
        &self,
        info: &crate::fleet::ExecutorInfo,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Takes or renews `account`'s lease for executor `me` until `now + ttl`, or says who holds
    /// it. Taking a lapsed lease from another executor records the failover.
    async fn account_lease_hold(
        &self,
        account: &str,
        me: &str,
        ttl: Duration,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<crate::fleet::LeaseOutcome, StoreError>;

    /// After a tick, in one transaction: its event stored (false when that id already was), the
    /// event's data in the registry as executor `id`'s last tick, with a heartbeat at the
    /// event's time, and with `renew` the account's lease extended to the event's time plus the
    /// time to live — only while `id` holds it, and never shortened.
    async fn executor_tick(
        &self,
        id: &str,
        tick: &Event,
        renew: Option<&crate::fleet::LeaseRenewal>,
    ) -> Result<bool, StoreError>;

    /// At an orderly exit: stopped, and the account's lease ended for a standby to take.
    async fn executor_stopped(
        &self,
        id: &str,
        account: &str,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// Every registered executor with its account's lease.
    async fn fleet(&self) -> Result<Vec<crate::fleet::FleetMember>, StoreError>;

    /// The account's breaker for the lane, if one is recorded (it may already have expired).
    async fn lane_breaker(
        &self,
        account: &str,
        kind: Kind,
    ) -> Result<Option<SystemTime>, StoreError>;

    /// The account's recent actions in `kind`'s lane as a claim at `now` would count them (the
    /// "why is it waiting?" view reads them).
    async fn lane_recent_actions(
        &self,
        account: &str,
        kind: Kind,
        now: SystemTime,
    ) -> Result<crate::jobs::RecentActions, StoreError>;

    /// Operator: pause `pause.scope` fleet-wide (with its `QUEUE_PAUSED` event). Every claim
    /// reads the pauses in its own transaction, so no executor claims there from then on.
    async fn pause_insert(
        &self,
        pause: &crate::pauses::Pause,
        identity: &Identity,
    ) -> Result<crate::pauses::Inserted, StoreError>;

    /// Operator: lift the pause of exactly `scope` (with its `QUEUE_RESUMED` event); false when
    /// that scope was not paused.
    async fn pause_delete(
        &self,
        scope: &crate::pauses::Scope,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Operator: lift every pause (an event each); returns those lifted.
    async fn pause_delete_all(
        &self,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Vec<crate::pauses::Pause>, StoreError>;

    /// Every pause, oldest first.
    async fn pause_list(&self) -> Result<Vec<crate::pauses::Pause>, StoreError>;
}

/// When a claim also sweeps expired leases. A lease lasts minutes, so sweeping once a second
/// (of the claims' own clock, which tests inject) finds every expired one in time, without a
/// write on every claim.
#[derive(Debug, Default)]
pub(crate) struct SweepClock {
    last: std::sync::Mutex<[Option<SystemTime>; 2]>,
}

impl SweepClock {
    pub fn due(&self, kind: Kind, now: SystemTime) -> bool {
        let slot = kind.index();
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        let due = match last[slot] {
            None => true,
            // A clock that went back (or a test's) sweeps too.
            Some(previous) => {
                now < previous
                    || now.duration_since(previous).unwrap_or_default() >= Duration::from_secs(1)
            }
        };
        if due {
            last[slot] = Some(now);
        }
        due
    }
}

/// The raw columns of a job row, made into the typed [`Job`] in one place for both backends.
pub(crate) struct JobRow {
    pub id: i64,
    pub kind: String,
    pub text: String,
    pub reply_to: Option<String>,
    pub account: String,
    pub idempotency_key: Option<String>,
    pub not_before: SystemTime,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<SystemTime>,
    pub post_id: Option<String>,
    pub post_url: Option<String>,
    pub last_error: Option<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub attempted_at: Option<SystemTime>,
}

impl JobRow {
    pub fn into_job(self) -> Result<Job, StoreError> {
        use crate::jobs::{JobState, Lease};
        let bad = |what: String| StoreError::Other {
            operation: "read job",
            reason: what,
        };
        let lease = match (self.lease_owner, self.lease_token, self.lease_expires_at) {
            (Some(owner), Some(token), Some(expires_at)) => Some(Lease {
                owner,
                token,
                expires_at,
            }),
            _ => None,
        };
        let error = self.last_error.unwrap_or_default();
        let need_lease = |lease: Option<Lease>| {
            lease.ok_or_else(|| bad(format!("job {} has no lease", self.id)))
        };
        let state = match self.state.as_str() {
            "queued" => JobState::Queued,
            "claimed" => JobState::Claimed(need_lease(lease)?),
            "attempting" => JobState::Attempting(need_lease(lease)?),
            "succeeded" => JobState::Succeeded {
                post_id: self.post_id,
                url: self.post_url,
            },
            "failed" => JobState::Failed {
                error,
                retry_at: self.not_before,
            },
            "uncertain" => JobState::Uncertain { error, lease },
            "dead" => JobState::Dead { error },
            "cancelled" => JobState::Cancelled,
            other => return Err(bad(format!("unknown state {other:?}"))),
        };
        Ok(Job {
            id: self.id,
            kind: Kind::parse(&self.kind)
                .ok_or_else(|| bad(format!("unknown kind {:?}", self.kind)))?,
            text: self.text,
            reply_to: self.reply_to,
            account: self.account,
            idempotency_key: self.idempotency_key,
            not_before: self.not_before,
            state,
            attempts: self.attempts.max(0) as u32,
            max_attempts: self.max_attempts.max(0) as u32,
            created_at: self.created_at,
            updated_at: self.updated_at,
            attempted_at: self.attempted_at,
        })
    }
}

/// Where a store sends the events its transactions wrote (see [`Store::set_observer`]).
#[derive(Default)]
pub(crate) struct Observer(RwLock<Option<Arc<dyn EventObserver>>>);

impl Observer {
    pub fn set(&self, observer: Arc<dyn EventObserver>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(observer);
        }
    }

    /// Shows the committed events (and forgets them).
    pub fn committed(&self, events: &mut Vec<Event>) {
        if let Ok(slot) = self.0.read() {
            if let Some(observer) = slot.as_ref() {
                for event in events.iter() {
                    observer.observe(event);
                }
            }
        }
        events.clear();
    }
}

/// Opens (and migrates) the store named by `url`.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path)?),
        DatabaseUrl::Postgres(url) => Arc::new(postgres::PostgresStore::new(url)?),
    };
    store.migrate().await?;
    Ok(store)
}
