//! SQLite backend: one file, WAL journal, one connection used by one writer at a time.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so the runtime never stalls
//! on disk or on a lock held by another process. The busy wait is bounded on purpose: a locked
//! database must make the event sink spool quickly rather than hold the tick.

use super::sqlite_jobs::{self as jobs, JobsError};
use super::{Enqueued, EventQuery, Rescued, Store, StoreError};
use crate::events::{Event, Identity, Severity};
use crate::jobs::{Claim, ClaimOutcome, Job, JobQuery, Kind, NewJob, Outcome};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
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
];

pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    sweeps: super::SweepClock,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Other {
                    operation: "open",
                    reason: format!("cannot create {}: {e}", dir.display()),
                })?;
            }
        }
        let conn = Connection::open(path).map_err(err)?;
        // SQLite's default busy handler sleeps in growing steps (up to 100 ms), so a writer
        // that waits can keep missing the moment another process releases the lock and starve.
        // Short jittered retries get in as soon as the lock is free; the total stays bounded
        // (about 3 s) so a locked store makes the event sink spool rather than hold the tick.
        conn.busy_handler(Some(busy_retry)).map_err(err)?;
        // WAL lets readers (status, report) run beside the daemon. NORMAL sync survives a crash
        // of the process; the two commits whose loss in a power cut would do harm — an enqueue
        // (a lost job) and `attempting` (a second publish) — are made with FULL sync instead
        // (see `sqlite_jobs::durable`). A lost claim or outcome is recovered by the lease rules.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
            sweeps: super::SweepClock::default(),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Other {
                operation: "lock connection",
                reason: "a previous call panicked".into(),
            })?;
            f(&mut guard).map_err(|source| StoreError::Sqlite { path, source })
        })
        .await
        .map_err(|e| StoreError::Other {
            operation: "blocking task",
            reason: e.to_string(),
        })?
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
    /// Runs a job operation (which may fail with a store-level error such as `Fenced`).
    async fn with_jobs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JobsError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path.display().to_string();
        self.with_conn(move |conn| Ok(f(conn)))
            .await?
            .map_err(|err| match err {
                JobsError::Sql(source) => StoreError::Sqlite { path, source },
                JobsError::Store(err) => err,
            })
    }
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let severity: String = row.get(2)?;
    let data: String = row.get(4)?;
    let created: String = row.get(5)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what}").into(),
        )
    };
    Ok(Event {
        id: row.get(0)?,
        event_type: row.get(1)?,
        severity: Severity::parse(&severity).ok_or_else(|| bad("severity"))?,
        message: row.get(3)?,
        event_data: serde_json::from_str(&data).map_err(|_| bad("event_data"))?,
        created_at: crate::clock::parse_ts(&created).ok_or_else(|| bad("created_at"))?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn dialect(&self) -> &'static str {
        "sqlite"
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
        self.with_conn(move |conn| jobs::insert_event(conn, &event))
            .await
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let query = query.clone();
        self.with_conn(move |conn| {
            let mut sql = String::from(
                "SELECT id, event_type, severity, message, event_data, created_at FROM system_events WHERE 1=1",
            );
            let mut args: Vec<String> = Vec::new();
            if !query.types.is_empty() {
                let marks: Vec<String> = query
                    .types
                    .iter()
                    .map(|t| {
                        args.push(t.clone());
                        format!("?{}", args.len())
                    })
                    .collect();
                sql.push_str(&format!(" AND event_type IN ({})", marks.join(",")));
            }
            if let Some(since) = query.since {
                args.push(crate::clock::format_ts(since));
                sql.push_str(&format!(" AND created_at >= ?{}", args.len()));
            }
            match query.limit {
                Some(limit) => sql.push_str(&format!(" ORDER BY created_at DESC, rowid DESC LIMIT {limit}")),
                None => sql.push_str(" ORDER BY created_at ASC, rowid ASC"),
            }
            let mut stmt = conn.prepare(&sql)?;
            let mut events = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), row_to_event)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if query.limit.is_some() {
                events.reverse();
            }
            Ok(events)
        })
        .await
    }

    async fn job_enqueue(&self, job: &NewJob, now: SystemTime) -> Result<Enqueued, StoreError> {
        let job = job.clone();
        self.with_jobs(move |c| jobs::enqueue(c, &job, now)).await
    }

    async fn job_get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.with_jobs(move |c| jobs::get_job(c, id)).await
    }

    async fn job_list(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let query = query.clone();
        self.with_jobs(move |c| jobs::list(c, &query)).await
    }

    async fn job_count_due(&self, kind: Kind, now: SystemTime) -> Result<u64, StoreError> {
        self.with_jobs(move |c| jobs::count_due(c, kind, now)).await
    }

    async fn job_count_by_state(&self) -> Result<Vec<(Kind, String, u64)>, StoreError> {
        self.with_jobs(jobs::count_by_state).await
    }

    async fn job_claim_next(
        &self,
        claim: &Claim,
        identity: &Identity,
    ) -> Result<ClaimOutcome, StoreError> {
        let (claim, identity) = (claim.clone(), identity.clone());
        let sweep = self.sweeps.due(claim.kind, claim.now);
        self.with_jobs(move |c| jobs::claim_next(c, &claim, &identity, sweep))
            .await
    }

    async fn job_mark_attempting(
        &self,
        id: i64,
        token: &str,
        now: SystemTime,
    ) -> Result<Job, StoreError> {
        let token = token.to_string();
        self.with_jobs(move |c| jobs::mark_attempting(c, id, &token, now))
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
        self.with_jobs(move |c| jobs::finish(c, id, &token, &outcome, &identity, now, retry_jitter))
            .await
    }

    async fn job_claim_uncertain(
        &self,
        kind: Kind,
        owner: &str,
        lease_for: std::time::Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, StoreError> {
        let owner = owner.to_string();
        self.with_jobs(move |c| jobs::claim_uncertain(c, kind, &owner, lease_for, now))
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
        self.with_jobs(move |c| jobs::resolve_uncertain(c, id, &token, found, &identity, now))
            .await
    }

    async fn job_rescue_owner(
        &self,
        owner: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<Rescued, StoreError> {
        let (owner, identity) = (owner.to_string(), identity.clone());
        self.with_jobs(move |c| jobs::rescue_owner(c, &owner, &identity, now))
            .await
    }

    async fn job_retry(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        self.with_jobs(move |c| jobs::retry(c, id, now)).await
    }

    async fn job_cancel(&self, id: i64, now: SystemTime) -> Result<Job, StoreError> {
        self.with_jobs(move |c| jobs::cancel(c, id, now)).await
    }

    async fn lane_breaker_open(
        &self,
        kind: Kind,
        until: SystemTime,
        reason: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let (reason, identity) = (reason.to_string(), identity.clone());
        self.with_jobs(move |c| jobs::breaker_open(c, kind, until, &reason, &identity, now))
            .await
    }

    async fn lane_breaker(&self, kind: Kind) -> Result<Option<SystemTime>, StoreError> {
        self.with_jobs(move |c| jobs::breaker(c, kind)).await
    }
}
