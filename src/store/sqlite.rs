//! SQLite backend: one file, WAL journal, one connection used by one writer at a time.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so the runtime never stalls
//! on disk or on a lock held by another process. The busy wait is bounded on purpose: a locked
//! database must make the event sink spool quickly rather than hold the tick.

use super::queue;
use super::sqlite_idle::IdleTicks;
use super::sqlite_jobs::SqliteConn;
use super::{
    BatchControl, BatchEnqueued, Enqueued, EventQuery, Observer, Rescued, Store, StoreError,
};
use crate::events::{Event, EventObserver, Identity};
use crate::jobs::{Claim, ClaimOutcome, Job, JobQuery, Kind, NewJob, OperatorAction, Outcome};
use rusqlite::{params, Connection, OptionalExtension};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "system_events",
        include_str!("../../migrations/sqlite/0001_system_events.sql"),
    ),
    (
        2,
        "jobs",
        include_str!("../../migrations/sqlite/0002_jobs.sql"),
    ),
    (
        3,
        "accounts",
        include_str!("../../migrations/sqlite/0003_accounts.sql"),
    ),
    (
        4,
        "fleet",
        include_str!("../../migrations/sqlite/0004_fleet.sql"),
    ),
    (
        5,
        "claim logs action",
        include_str!("../../migrations/sqlite/0005_claim_logs_action.sql"),
    ),
    (
        6,
        "pauses",
        include_str!("../../migrations/sqlite/0006_pauses.sql"),
    ),
    (
        7,
        "enqueue function",
        include_str!("../../migrations/sqlite/0007_enqueue_function.sql"),
    ),
];

pub struct SqliteStore {
    pub(super) conn: Arc<Mutex<SqliteConn>>,
    sweeps: super::SweepClock,
    observer: Observer,
    pub(super) idle: Arc<IdleTicks>,
}

/// One of the queue's steps, run on the connection.
type Step<T> = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConn,
        ) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'c>>
        + Send,
>;

/// SQLite says only "unable to open database file": find the cause the operator can act on
/// (a read-only file system, a permission) by opening the file, or creating a file beside it,
/// for writing ourselves.
fn why_not_opened(path: &Path, source: rusqlite::Error) -> StoreError {
    let probe = if path.exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(drop)
    } else {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::files::write_probe(dir)
    };
    match probe {
        Err(cause) => StoreError::Other {
            operation: "open",
            reason: format!("the database cannot be written there ({cause})"),
        },
        Ok(()) => StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        },
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                // Usually the profile, created by the first command run on it (0700).
                crate::files::create_private_dir(dir).map_err(|e| StoreError::Other {
                    operation: "open",
                    reason: format!("cannot create {}: {e}", dir.display()),
                })?;
            }
        }
        check_files(path)?;
        // SQLite follows a link given as the database's path unless told not to (NOFOLLOW); its
        // journal, WAL and shared-memory files it opens with O_NOFOLLOW already. NOFOLLOW refuses
        // a link anywhere in the path, though, and the profile may be reached through one (it is
        // the operator's to place; macOS's temp dirs are under the link /var): SQLite is given
        // the path with its directory resolved, so that only the database's own name is judged.
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Self::connect(path, flags).map_err(|source| why_not_opened(path, source))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(SqliteConn::new(
                conn,
                path.display().to_string(),
            ))),
            sweeps: super::SweepClock::default(),
            observer: Observer::default(),
            idle: Arc::default(),
        })
    }

    /// Opens the connection and sets it up (busy handler, WAL, sync levels).
    fn connect(path: &Path, flags: rusqlite::OpenFlags) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(resolved_directory(path), flags)?;
        // SQLite's default busy handler sleeps in growing steps (up to 100 ms), so a writer
        // that waits can keep missing the moment another process releases the lock and starve.
        // Short jittered retries get in as soon as the lock is free; the total stays bounded
        // (about 3 s) so a locked store makes the event sink spool rather than hold the tick.
        conn.busy_handler(Some(busy_retry))?;
        // WAL lets readers (status, report) run beside the daemon. NORMAL sync survives a crash
        // of the process; the two commits whose loss in a power cut would do harm — an enqueue
        // (a lost job) and `attempting` (a second publish) — are made with FULL sync instead
        // (see `queue::Durability`). A lost claim or outcome is recovered by the lease rules.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Every statement of the store stays prepared (there are fewer than this), so that an
        // action's statements do not push the idle tick's out, or the other way round.
        conn.set_prepared_statement_cache_capacity(96);
        Ok(conn)
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let idle = self.idle.clone();
        self.run_on(move |c| {
            idle.forget();
            f(&mut c.conn).map_err(|source| c_error(c, source))
        })
        .await
    }
}

/// The database file and SQLite's companions (`-wal`, `-shm`, `-journal`) are each absent or a
/// regular file: a link would send our data elsewhere and a FIFO would hang SQLite's first read,
/// so either is refused before SQLite opens anything. A new database file is created here,
/// owner-only, because SQLite creates its companions with the database's own mode.
fn check_files(path: &Path) -> Result<(), StoreError> {
    let refused = |path: &Path, e: std::io::Error| StoreError::Other {
        operation: "open",
        reason: format!("{}: {e}", path.display()),
    };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        crate::files::require_absent_or_regular(&file).map_err(|e| refused(&file, e))?;
    }
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        // A regular file, checked above. One made by an older version may be readable by
        // others: the database (and the companions SQLite creates with its mode) are not.
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            let _ = crate::files::open_for_writing(path, crate::files::Write::Update);
        }
        return Ok(());
    }
    match crate::files::open_for_writing(path, crate::files::Write::CreateNew) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(refused(path, e)),
        _ => Ok(()),
    }
}

/// `path` with its directory made canonical (links resolved) and its last component kept as it
/// is; `path` itself when the directory cannot be resolved (SQLite then says why it cannot open).
fn resolved_directory(path: &Path) -> PathBuf {
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(directory), path.file_name()) {
        (Ok(directory), Some(name)) => directory.join(name),
        _ => path.to_path_buf(),
    }
}

/// During a bulk enqueue, statement journals are kept in memory (see `job_enqueue_batch`); after
/// it, the connection's default again, and the memory given back.
fn set_batch_memory(conn: &Connection, batch: bool) -> rusqlite::Result<()> {
    if batch {
        conn.pragma_update(None, "temp_store", "MEMORY")
    } else {
        conn.pragma_update(None, "temp_store", "DEFAULT")?;
        conn.execute_batch("PRAGMA shrink_memory")
    }
}

fn c_error(conn: &SqliteConn, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: conn.path.clone(),
        source,
    }
}

/// About 3 s of retries at 0.2–1.5 ms each, then SQLITE_BUSY.
fn busy_retry(attempt: i32) -> bool {
    if attempt >= 3000 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(fastrand::u64(200..1500)));
    true
}

impl SqliteStore {
    /// Runs one of the queue's steps on the blocking pool. SQLite answers synchronously, so the
    /// step's future is complete when first polled; the events it committed then go to the
    /// observer.
    async fn run<T: Send + 'static>(&self, step: Step<T>) -> Result<T, StoreError> {
        // Forgotten once the connection is ours: a tick's read that went first cannot keep an
        // answer this step's commit then hides.
        let idle = self.idle.clone();
        self.run_on(move |conn| {
            idle.forget();
            ready_now(step(conn))
        })
        .await
    }

    /// Runs `f` with the connection on the blocking pool; the events it committed then go to
    /// the observer. Only the tick's own two calls run here directly: every other step goes
    /// through [`Self::run`], which forgets the idle tick's kept answer once it holds the
    /// connection.
    async fn run_on<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConn) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let (result, mut written) = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Other {
                operation: "lock connection",
                reason: "a previous call panicked".into(),
            })?;
            let result = f(&mut guard);
            Ok::<_, StoreError>((result, std::mem::take(&mut guard.written)))
        })
        .await
        .map_err(|e| StoreError::Other {
            operation: "blocking task",
            reason: e.to_string(),
        })??;
        self.observer.committed(&mut written);
        result
    }

    /// The `synchronous` level the connection is at between transactions (tests check that
    /// only the durable commits raise it).
    pub async fn synchronous_level(&self) -> Result<i64, StoreError> {
        self.with_conn(|conn| conn.pragma_query_value(None, "synchronous", |row| row.get(0)))
            .await
    }
}

/// Polls a future once: the SQLite driver's futures never wait.
fn ready_now<T>(future: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(StoreError::Other {
            operation: "sqlite",
            reason: "a store step waited on something other than SQLite".into(),
        }),
    }
}

macro_rules! step {
    (|$conn:ident| $body:expr) => {
        Box::new(move |$conn: &mut SqliteConn| Box::pin(async move { $body.await }))
    };
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn dialect(&self) -> &'static str {
        "sqlite"
    }

    fn set_observer(&self, observer: Arc<dyn EventObserver>) {
        self.observer.set(observer);
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )?;
            for (version, name, sql) in MIGRATIONS {
                let applied: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM schema_migrations WHERE version = ?1",
                        params![version],
                        |row| row.get(0),
                    )
                    .optional()?;
                if applied.is_none() {
                    tx.execute_batch(sql)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                        params![version, name, crate::clock::format_ts(std::time::SystemTime::now())],
                    )?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError> {
        let event = event.clone();
        self.run(step!(|c| queue::event_insert(c, &event))).await
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let query = query.clone();
        self.run(step!(|c| queue::event_list(c, &query))).await
    }

    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError> {
        let job = job.clone();
        self.run(step!(|c| queue::job_enqueue(c, &job, now))).await
    }

    async fn job_enqueue_batch(
        &self,
        jobs: Vec<NewJob>,
        now: SystemTime,
        control: &BatchControl,
    ) -> Result<Vec<BatchEnqueued>, StoreError> {
        // The jobs move to the blocking pool (not copied): a large batch is held once.
        let control = control.clone();
        self.run(step!(|c| async move {
            // Each insert of a long transaction keeps a statement journal (to undo that
            // statement alone), which SQLite writes to a temporary file: 100,000 jobs made 1.3
            // million writes there. During the batch it is kept in memory. (A larger page
            // cache was measured too: no faster, 30 MiB more.)
            set_batch_memory(&c.conn, true).map_err(|e| c_error(c, e))?;
            let result = queue::job_enqueue_batch(c, &jobs, now, &control).await;
            let restored = set_batch_memory(&c.conn, false);
            match (result, restored) {
                (Err(err), _) => Err(err),
                (Ok(_), Err(err)) => Err(c_error(c, err)),
                (Ok(answers), Ok(())) => Ok(answers),
            }
        }))
        .await
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.run(step!(|c| queue::job_get(c, id))).await
    }

    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let query = query.clone();
        self.run(step!(|c| queue::job_list(c, &query))).await
    }

    async fn job_count_due(
        &self,
        kind: Kind,
        account: Option<&str>,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        let account = account.map(str::to_string);
        self.run(step!(|c| queue::job_count_due(
            c,
            kind,
            account.as_deref(),
            now
        )))
        .await
    }

    async fn tick_start(
        &self,
        account: &str,
        hold: Option<&crate::fleet::TickHold>,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(crate::kind::LaneLook, Option<crate::fleet::LeaseOutcome>), StoreError> {
        if let Some(answer) = self.idle.answer(account, hold, now) {
            return Ok(answer);
        }
        let (account, identity, hold) = (account.to_string(), identity.clone(), hold.cloned());
        let idle = self.idle.clone();
        self.run_on(move |c| {
            let seen = idle.before_read(&c.conn);
            let answer = ready_now(queue::tick_start(
                c,
                &account,
                hold.as_ref(),
                &identity,
                now,
            ))?;
            idle.after_read(&c.conn, seen, &account, hold.as_ref(), &answer, now);
            Ok(answer)
        })
        .await
    }

    async fn job_due_accounts(&self, now: SystemTime) -> Result<Vec<String>, StoreError> {
        self.run(step!(|c| queue::job_due_accounts(c, now))).await
    }

    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError> {
        self.run(step!(|c| queue::job_count_by_state(c))).await
    }

    async fn job_queue_by_account(
        &self,
        now: SystemTime,
    ) -> Result<Vec<crate::store::QueueCount>, StoreError> {
        self.run(step!(|c| queue::job_queue_by_account(c, now)))
            .await
    }

    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError> {
        let (claim, identity) = (claim.clone(), identity.clone());
        let sweep = self.sweeps.due(claim.kind, claim.now);
        self.run(step!(|c| queue::job_claim_next(
            c, &claim, &identity, sweep
        )))
        .await
    }

    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        let token = token.to_string();
        self.run(step!(|c| queue::job_mark_attempting(c, id, &token, now)))
            .await
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
        let (token, outcome, identity) = (token.to_string(), outcome.clone(), identity.clone());
        self.run(step!(|c| queue::job_finish(
            c,
            id,
            &token,
            &outcome,
            &identity,
            now,
            retry_jitter
        )))
        .await
    }

    async fn job_claim_uncertain(
        &self,
        kind: Kind,
        account: &str,
        owner: &str,
        lease_for: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, StoreError> {
        let (account, owner) = (account.to_string(), owner.to_string());
        self.run(step!(|c| queue::job_claim_uncertain(
            c, kind, &account, &owner, lease_for, now
        )))
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
        let (token, identity) = (token.to_string(), identity.clone());
        self.run(step!(|c| queue::job_resolve_uncertain(
            c, id, &token, found, &identity, now
        )))
        .await
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
        let (token, reason, identity) = (token.to_string(), reason.to_string(), identity.clone());
        self.run(step!(|c| queue::job_defer_uncertain(
            c, id, &token, &reason, retry_at, &identity, now
        )))
        .await
    }

    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError> {
        let (owner, identity) = (owner.to_string(), identity.clone());
        self.run(step!(|c| queue::job_rescue_owner(
            c, &owner, &identity, now
        )))
        .await
    }

    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        self.run(step!(|c| queue::job_operator(
            c,
            id,
            OperatorAction::Retry,
            now
        )))
        .await
    }

    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        self.run(step!(|c| queue::job_operator(
            c,
            id,
            OperatorAction::Cancel,
            now
        )))
        .await
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
        let (account, reason, identity) =
            (account.to_string(), reason.to_string(), identity.clone());
        self.run(step!(|c| queue::breaker_open(
            c, &account, kind, until, &reason, &identity, now
        )))
        .await
    }

    async fn executor_register(
        &self,
        info: &crate::fleet::ExecutorInfo,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let info = info.clone();
        self.run(step!(|c| queue::executor_register(c, &info, now)))
            .await
    }

    async fn account_lease_hold(
        &self,
        account: &str,
        me: &str,
        ttl: Duration,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<crate::fleet::LeaseOutcome, StoreError> {
        let (account, me, identity) = (account.to_string(), me.to_string(), identity.clone());
        self.run(step!(|c| queue::account_lease_hold(
            c, &account, &me, ttl, &identity, now
        )))
        .await
    }

    async fn executor_tick(
        &self,
        id: &str,
        tick: &Event,
        renew: Option<&crate::fleet::LeaseRenewal>,
    ) -> Result<bool, StoreError> {
        let (id, tick, renew) = (id.to_string(), tick.clone(), renew.cloned());
        let idle = self.idle.clone();
        self.run_on(move |c| {
            let result = ready_now(queue::executor_tick(c, &id, &tick, renew.as_ref()));
            idle.after_tick(
                &c.conn,
                result.is_ok(),
                &id,
                tick.created_at,
                renew.as_ref(),
            );
            result
        })
        .await
    }

    async fn executor_stopped(
        &self,
        id: &str,
        account: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let (id, account) = (id.to_string(), account.to_string());
        self.run(step!(|c| queue::executor_stopped(c, &id, &account, now)))
            .await
    }

    async fn fleet(&self) -> Result<Vec<crate::fleet::FleetMember>, StoreError> {
        self.run(step!(|c| queue::fleet(c))).await
    }

    async fn lane_breaker(
        &self,
        account: &str,
        kind: Kind,
    ) -> Result<Option<SystemTime>, StoreError> {
        let account = account.to_string();
        self.run(step!(|c| queue::breaker(c, &account, kind))).await
    }

    async fn lane_recent_actions(
        &self,
        account: &str,
        kind: Kind,
        now: SystemTime,
    ) -> Result<crate::jobs::RecentActions, StoreError> {
        let account = account.to_string();
        self.run(step!(|c| queue::lane_recent_actions(
            c, &account, kind, now
        )))
        .await
    }

    async fn pause_insert(
        &self,
        pause: &crate::pauses::Pause,
        identity: &Identity,
    ) -> Result<crate::pauses::Inserted, StoreError> {
        let (pause, identity) = (pause.clone(), identity.clone());
        self.run(step!(|c| queue::pause_insert(c, &pause, &identity)))
            .await
    }

    async fn pause_delete(
        &self,
        scope: &crate::pauses::Scope,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let (scope, by, identity) = (scope.clone(), by.to_string(), identity.clone());
        self.run(step!(|c| queue::pause_delete(
            c, &scope, &by, &identity, now
        )))
        .await
    }

    async fn pause_delete_all(
        &self,
        by: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Vec<crate::pauses::Pause>, StoreError> {
        let (by, identity) = (by.to_string(), identity.clone());
        self.run(step!(|c| queue::pause_delete_all(c, &by, &identity, now)))
            .await
    }

    async fn pause_list(&self) -> Result<Vec<crate::pauses::Pause>, StoreError> {
        self.run(step!(|c| queue::pause_list(c))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Limits;
    use crate::store::queue::{Col, Driver, Durability, Queries, Value};

    /// The real SQLite driver, reporting the `synchronous` level in effect at each commit.
    struct AtCommit<'a> {
        inner: &'a mut SqliteConn,
        levels: Vec<i64>,
    }

    impl AtCommit<'_> {
        fn record(&mut self) {
            let level = self
                .inner
                .conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .expect("pragma");
            self.levels.push(level);
        }
    }

    impl Driver for AtCommit<'_> {
        fn queries(&self) -> &'static Queries {
            self.inner.queries()
        }
        async fn begin(&mut self, durability: Durability) -> Result<(), StoreError> {
            self.inner.begin(durability).await
        }
        async fn end(&mut self, commit: bool) -> Result<(), StoreError> {
            if commit && !self.inner.conn.is_autocommit() {
                self.record();
            }
            self.inner.end(commit).await
        }
        async fn execute(
            &mut self,
            sql: &'static str,
            params: &[Value],
        ) -> Result<u64, StoreError> {
            self.inner.execute(sql, params).await
        }
        async fn rows(
            &mut self,
            sql: &'static str,
            params: &[Value],
            shape: &'static [Col],
        ) -> Result<Vec<Vec<Value>>, StoreError> {
            self.inner.rows(sql, params, shape).await
        }
        async fn rows_each(
            &mut self,
            sql: &'static str,
            params: &[Vec<Value>],
            shape: &'static [Col],
        ) -> Result<Vec<Vec<Vec<Value>>>, StoreError> {
            self.inner.rows_each(sql, params, shape).await
        }
        async fn defer(&mut self, sql: &'static str, params: Vec<Value>) -> Result<(), StoreError> {
            self.inner.defer(sql, params).await
        }
        async fn rows_then_commit(
            &mut self,
            sql: &'static str,
            params: &[Value],
            shape: &'static [Col],
        ) -> Result<Vec<Vec<Value>>, StoreError> {
            self.record();
            self.inner.rows_then_commit(sql, params, shape).await
        }
        fn written(&mut self) -> &mut Vec<Event> {
            self.inner.written()
        }
    }

    /// A power cut after `attempting` was committed must not lose the mark (the job would be
    /// clicked again): that commit runs at `synchronous=FULL`; the claim before it and the
    /// outcome after it at NORMAL (a loss there is recovered by the lease rules).
    #[tokio::test]
    async fn attempting_is_committed_at_full_sync_claims_and_outcomes_are_not() {
        let dir = std::env::temp_dir().join(format!("executor-sync-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&dir.join("executor.sqlite")).expect("open");
        store.migrate().await.expect("migrate");
        let now = SystemTime::now();
        let job = NewJob {
            kind: Kind::Post,
            text: "durable".into(),
            reply_to: None,
            account: String::new(),
            idempotency_key: None,
            not_before: now,
            max_attempts: 3,
        };
        store.job_enqueue(&job, now).await.expect("enqueue");
        let identity = Identity {
            run_id: "run".into(),
            executor_id: "test".into(),
        };
        let claim = Claim {
            kind: Kind::Post,
            account: String::new(),
            owner: "test".into(),
            lease_for: Duration::from_secs(60),
            limits: Limits::OFF,
            gap_jitter: Duration::ZERO,
            now,
        };
        let mut guard = store.conn.lock().expect("connection");
        let mut watched = AtCommit {
            inner: &mut guard,
            levels: Vec::new(),
        };
        let claimed = ready_now(queue::job_claim_next(
            &mut watched,
            &claim,
            &identity,
            false,
        ))
        .expect("claim");
        let ClaimOutcome::Claimed(job) = claimed else {
            panic!("nothing claimed: {claimed:?}");
        };
        let token = job.state.lease().expect("leased").token.clone();
        let claim_levels = std::mem::take(&mut watched.levels);
        ready_now(queue::job_mark_attempting(
            &mut watched,
            job.id,
            &token,
            now,
        ))
        .expect("attempting");
        let attempting_levels = std::mem::take(&mut watched.levels);
        let outcome = Outcome::Succeeded {
            post_id: Some("1".into()),
            url: None,
        };
        ready_now(queue::job_finish(
            &mut watched,
            job.id,
            &token,
            &outcome,
            &identity,
            now,
            0.0,
        ))
        .expect("finish");
        let finish_levels = std::mem::take(&mut watched.levels);
        drop(guard);
        let _ = std::fs::remove_dir_all(&dir);
        // PRAGMA synchronous: 1 = NORMAL, 2 = FULL.
        assert_eq!(claim_levels, [1], "the claim's commit");
        assert_eq!(attempting_levels, [2], "the attempting mark's commit");
        assert_eq!(finish_levels, [1], "the outcome's commit");
    }
}
