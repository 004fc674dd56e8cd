//! An idle tick that does not ask SQLite: the last idle tick's first read, kept while the
//! database provably has not changed and no row's time has come.
//!
//! An idle tick's first read ([`crate::store::Store::tick_start`]) finds nothing to do, and its
//! answer can change only two ways: a commit (a job enqueued by `executor enqueue`, a pause, a
//! breaker, a takeover of the lease by another executor), or the clock reaching a time a row
//! names (a job's `not_before`, a lease's expiry). The answer is kept with both:
//!
//! - the wal-index header as it stood before the read: the first 96 bytes of SQLite's `-shm`
//!   file, two copies of a header that every commit rewrites (its `iChange` counts commits).
//!   The file is SQLite's shared memory, mapped by every connection, so reading it is a read
//!   of memory the kernel already holds: the runtime thread reads it with one `pread`, as it
//!   stats the STOP file, and never waits on SQLite's locks or the disk's queue. A header that
//!   differs, a torn one (the copies differ) or a file no longer linked means "changed";
//! - the earliest time named by a row that could make the answer change
//!   ([`NEXT_SQL`]); the answer is used only while the time, written as the store writes times,
//!   sorts before it (the queue's SQL compares those texts too).
//!
//! The tick's own event commit ([`crate::store::Store::executor_tick`]) also rewrites the
//! header. It carries the kept answer over when SQLite's `data_version` shows that no other
//! connection committed since the read (our own commits do not move it) and this store ran no
//! other step in between (every other step forgets the answer, holding the connection, before
//! its first statement): the header after it is then the new mark, and a lease it renewed is
//! renewed in the kept answer the same way.
//!
//! Anything else, or any doubt, and the tick reads SQLite as before.

use crate::clock::{format_ts, from_unix_ms, unix_ms};
use crate::fleet::{lease_fresh, LeaseOutcome, LeaseRenewal, TickHold};
use crate::jobs::Kind;
use crate::kind::LaneLook;
use rusqlite::{params, Connection};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// For one lane of one account: the earliest future time at which a row would give the tick's
/// first read something to do (`queue::lane_look`): a queued, failed or uncertain job's
/// `not_before`, a leased job's lease expiry.
const NEXT_SQL: &str = "SELECT MIN(t) FROM (
      SELECT MIN(not_before) AS t FROM jobs WHERE kind = ?1 AND account = ?2
         AND state IN ('queued', 'failed') AND not_before > ?3
      UNION ALL SELECT MIN(not_before) FROM jobs WHERE state = 'uncertain' AND kind = ?1
         AND account = ?2 AND not_before > ?3
      UNION ALL SELECT MIN(lease_expires_at) FROM jobs
       WHERE state IN ('claimed', 'attempting', 'uncertain') AND kind = ?1
         AND lease_expires_at >= ?3)";

/// Bytes of the wal-index header read: its two copies.
const HEADER: usize = 96;

/// The wal-index header as it stood (one copy; both agreed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark([u8; HEADER / 2]);

/// SQLite's `-shm` file, opened read-only (a link is refused), and never closed.
///
/// Closing any descriptor of a file ends every POSIX lock this process holds on it, SQLite's
/// own included: SQLite's lock that says the shared memory is in use would go, and another
/// process could rebuild the memory under this process's connections. So one descriptor per
/// file is opened for the life of the process and shared by every store on that file.
#[derive(Clone, Copy)]
struct Shm(&'static File);

impl Shm {
    fn open(database: &Path) -> Option<Shm> {
        static OPEN: Mutex<Vec<(u64, u64, &'static File)>> = Mutex::new(Vec::new());
        let mut name = database.as_os_str().to_owned();
        name.push("-shm");
        let mut open = OPEN.lock().ok()?;
        // Looked up before opening: a second descriptor could not be closed either.
        let known = std::fs::symlink_metadata(&name).ok()?;
        let same = |dev: u64, ino: u64| (dev, ino) == (known.dev(), known.ino());
        if let Some((_, _, kept)) = open.iter().find(|(dev, ino, _)| same(*dev, *ino)) {
            return Some(Shm(kept));
        }
        let file =
            crate::files::open_for_reading(Path::new(&name), crate::files::Links::Refuse).ok()?;
        let metadata = file.metadata().ok()?;
        let (dev, ino) = (metadata.dev(), metadata.ino());
        let file: &'static File = Box::leak(Box::new(file));
        open.push((dev, ino, file));
        Some(Shm(file))
    }

    /// The header now, if it reads whole, its copies agree, it is initialised and the file is
    /// still the database's (linked).
    fn mark(&self) -> Option<Mark> {
        let mut bytes = [0u8; HEADER];
        let read = self.0.read_at(&mut bytes, 0).ok()?;
        let (first, second) = bytes.split_at(HEADER / 2);
        // `isInit`, byte 12 of a copy.
        if read < HEADER || first != second || first[12] != 1 {
            return None;
        }
        if self.0.metadata().ok()?.nlink() == 0 {
            return None;
        }
        Some(Mark(first.try_into().ok()?))
    }
}

/// What an idle tick's first read answered, and what it holds for.
struct Kept {
    account: String,
    /// The header before the read (or after our own tick commit since).
    mark: Mark,
    /// `PRAGMA data_version` at the read: moves only with other connections' commits.
    data_version: i64,
    look: LaneLook,
    /// The account's lease as the read found it (holder, expiry), when the tick held it.
    lease: Option<(String, SystemTime)>,
    /// The answer holds while the time, as the store writes it, sorts before this one (None:
    /// no row names a time). Compared as text, as the queue's own SQL compares.
    before: Option<String>,
}

/// What a read of the store saw before it began.
pub(super) struct Seen {
    mark: Mark,
    data_version: i64,
}

/// The kept answer of the last idle tick, for one store.
#[derive(Default)]
pub(super) struct IdleTicks {
    shm: OnceLock<Shm>,
    kept: Mutex<Option<Kept>>,
    /// How many first reads asked SQLite.
    #[cfg(test)]
    reads: std::sync::atomic::AtomicU64,
}

fn data_version(conn: &Connection) -> Option<i64> {
    conn.pragma_query_value(None, "data_version", |row| row.get(0))
        .ok()
}

impl IdleTicks {
    /// On the runtime thread, before the tick's first read: the kept answer, if it still holds
    /// for this tick. A tick that is not an idle holder's (`hold` not `held_before`) or whose
    /// lease is no longer fresh reads the store.
    pub(super) fn answer(
        &self,
        account: &str,
        hold: Option<&TickHold>,
        now: SystemTime,
    ) -> Option<(LaneLook, Option<LeaseOutcome>)> {
        let mark = self.shm.get()?.mark()?;
        let kept = self.kept.lock().ok()?;
        let kept = kept.as_ref()?;
        if kept.account != account || kept.mark != mark {
            return None;
        }
        if kept.before.as_ref().is_some_and(|t| format_ts(now) >= *t) {
            return None;
        }
        let lease = match hold {
            None => None,
            Some(hold) if !hold.held_before => return None,
            Some(hold) => {
                let (holder, until) = kept.lease.as_ref()?;
                if !lease_fresh((holder, *until), hold, now) {
                    return None;
                }
                Some(LeaseOutcome::Held {
                    until: *until,
                    took_over_from: None,
                })
            }
        };
        Some((kept.look, lease))
    }

    /// Forgets the kept answer: every step of the store but the tick's own two calls does, so
    /// that a commit of ours the tick does not know of is never hidden.
    pub(super) fn forget(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = None;
        }
    }

    /// On the connection, before the tick's first read.
    pub(super) fn before_read(&self, conn: &Connection) -> Option<Seen> {
        self.forget();
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.shm.get().is_none() {
            // Only a database in WAL mode has a live header: a `-shm` left from an earlier WAL
            // session of a database SQLite could not put back in WAL mode would never change.
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |row| row.get(0))
                .ok()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return None;
            }
            // The database's path as SQLite opened it (its directory resolved).
            let _ = self.shm.set(Shm::open(Path::new(conn.path()?))?);
        }
        let mark = self.shm.get()?.mark()?;
        Some(Seen {
            mark,
            data_version: data_version(conn)?,
        })
    }

    /// On the connection, after the tick's first read answered `answer`: kept when it is idle.
    pub(super) fn after_read(
        &self,
        conn: &Connection,
        seen: Option<Seen>,
        account: &str,
        hold: Option<&TickHold>,
        answer: &(LaneLook, Option<LeaseOutcome>),
        now: SystemTime,
    ) {
        let (look, lease) = answer;
        let Some(seen) = seen.filter(|_| look.idle()) else {
            return;
        };
        let Some(before) = next_time(conn, account, now) else {
            return;
        };
        // To the millisecond, as stored (a lease just taken or renewed comes at full precision).
        let lease = match (hold, lease) {
            (Some(hold), Some(LeaseOutcome::Held { until, .. })) => {
                Some((hold.me.clone(), from_unix_ms(unix_ms(*until))))
            }
            _ => None,
        };
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Some(Kept {
                account: account.to_string(),
                mark: seen.mark,
                data_version: seen.data_version,
                look: *look,
                lease,
                before,
            });
        }
    }

    /// On the connection, after the tick's event committed (`committed`) as executor `id` with
    /// `renew`: the kept answer carried over to the header after it, or forgotten.
    pub(super) fn after_tick(
        &self,
        conn: &Connection,
        committed: bool,
        id: &str,
        at: SystemTime,
        renew: Option<&LeaseRenewal>,
    ) {
        let Ok(mut guard) = self.kept.lock() else {
            return;
        };
        let Some(kept) = guard.as_mut() else {
            return;
        };
        // The header first, then `data_version`: unmoved, no other connection committed before
        // the header was read, so the header is of our commits only.
        let mark = self.shm.get().and_then(|shm| shm.mark());
        let unmoved = data_version(conn) == Some(kept.data_version);
        match mark {
            Some(mark) if committed && unmoved => {
                kept.mark = mark;
                if let (Some(renew), Some((holder, until))) = (renew, kept.lease.as_mut()) {
                    // As `lease_extend`: only our own, never shortened, stored to the ms.
                    let to = from_unix_ms(unix_ms(at + renew.ttl));
                    if renew.account == kept.account && holder == id && *until < to {
                        *until = to;
                    }
                }
            }
            _ => *guard = None,
        }
    }
}

/// The earliest time a row names that could change an idle first read of `account`'s lanes,
/// as stored (`Some(None)`: no row names one); None if it could not be read.
fn next_time(conn: &Connection, account: &str, now: SystemTime) -> Option<Option<String>> {
    let mut statement = conn.prepare_cached(NEXT_SQL).ok()?;
    let mut next: Option<String> = None;
    for kind in Kind::ALL {
        let at: Option<String> = statement
            .query_row(params![kind.as_str(), account, format_ts(now)], |row| {
                row.get(0)
            })
            .ok()?;
        next = match (next, at) {
            (Some(n), Some(at)) => Some(n.min(at)),
            (n, at) => n.or(at),
        };
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Identity, Severity};
    use crate::jobs::NewJob;
    use crate::store::sqlite::SqliteStore;
    use crate::store::Store;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        from_unix_ms(1_800_000_000_000) + Duration::from_secs(seconds)
    }

    fn identity() -> Identity {
        Identity {
            run_id: "run".into(),
            executor_id: "a".into(),
        }
    }

    fn job(text: &str, not_before: SystemTime) -> NewJob {
        NewJob {
            kind: Kind::Post,
            text: text.into(),
            reply_to: None,
            account: "alice".into(),
            idempotency_key: None,
            not_before,
            max_attempts: 3,
        }
    }

    fn tick(seconds: u64) -> Event {
        Event::at(
            &identity(),
            crate::events::TICK,
            Severity::Info,
            "tick",
            serde_json::json!({ "tick": seconds }),
            at(seconds),
        )
    }

    struct Two {
        dir: PathBuf,
        /// The daemon's store.
        ours: SqliteStore,
        /// Another process's (`executor enqueue`, a second executor): its own connection.
        theirs: SqliteStore,
    }

    impl Drop for Two {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn two_connections() -> Two {
        let dir = std::env::temp_dir().join(format!("executor-idle-{}", uuid::Uuid::new_v4()));
        let path = dir.join("executor.sqlite");
        let ours = SqliteStore::open(&path).expect("open");
        ours.migrate().await.expect("migrate");
        let theirs = SqliteStore::open(&path).expect("open again");
        Two { dir, ours, theirs }
    }

    impl Two {
        fn reads(&self) -> u64 {
            self.ours.idle.reads.load(Ordering::Relaxed)
        }

        /// The first read of a tick at `now` without a site.
        async fn look(&self, now: SystemTime) -> LaneLook {
            let (look, _) = self
                .ours
                .tick_start("alice", None, &identity(), now)
                .await
                .expect("tick start");
            look
        }

        /// What is due in the post lane at `now`.
        async fn due(&self, now: SystemTime) -> u64 {
            self.look(now).await.due.get(Kind::Post)
        }

        /// Sets columns of job `id` as another process could (the store's own steps would
        /// take several to get there).
        fn set(&self, id: i64, assignments: &str) {
            let conn = Connection::open(self.dir.join("executor.sqlite")).expect("open");
            conn.execute(
                &format!("UPDATE jobs SET {assignments} WHERE id = {id}"),
                [],
            )
            .expect("update");
        }
    }

    /// Idle ticks ask SQLite once; the answer is kept across the ticks' own event commits, and
    /// ends with a commit by another connection (an enqueue by another process), with a commit
    /// of our own, and when a job's time comes — without any commit.
    #[tokio::test]
    async fn an_idle_answer_is_kept_until_the_database_changes_or_a_job_comes_due() {
        let two = two_connections().await;
        assert_eq!(two.due(at(1)).await, 0);
        assert_eq!(two.reads(), 1);
        for second in 2..5 {
            assert_eq!(two.due(at(second)).await, 0);
            two.ours
                .executor_tick("a", &tick(second), None)
                .await
                .expect("tick event");
        }
        assert_eq!(
            two.reads(),
            1,
            "idle ticks and their events kept the answer"
        );

        // Another process enqueues a job due now: the next tick sees it, and again after that
        // process cancels it.
        let crate::store::Enqueued::Created(enqueued) = two
            .theirs
            .job_enqueue(&job("from the CLI", at(0)), at(5))
            .await
            .expect("enqueue")
        else {
            panic!("not created");
        };
        assert_eq!(two.due(at(5)).await, 1);
        assert_eq!(two.reads(), 2);
        two.theirs
            .job_cancel(enqueued.id, at(6))
            .await
            .expect("cancel");
        assert_eq!(two.due(at(6)).await, 0);

        // A job due later: the answer holds before its time, not at it.
        two.theirs
            .job_enqueue(&job("later", at(20)), at(7))
            .await
            .expect("enqueue");
        assert_eq!(two.due(at(7)).await, 0);
        let reads = two.reads();
        assert_eq!(two.due(at(19)).await, 0);
        assert_eq!(two.reads(), reads, "kept before the job's time");
        assert_eq!(
            two.due(at(20)).await,
            1,
            "due at its time, with no commit since"
        );
    }

    /// The tick's event carries the kept answer over only when nothing else committed since the
    /// read: not when another connection did (before or after the event), and not when this
    /// store ran another step of its own.
    #[tokio::test]
    async fn a_commit_before_the_tick_event_is_never_hidden_by_it() {
        for (whose, ours) in [
            ("another connection's enqueue", false),
            ("our own enqueue", true),
        ] {
            let two = two_connections().await;
            assert_eq!(two.due(at(1)).await, 0);
            let enqueuer = if ours { &two.ours } else { &two.theirs };
            enqueuer
                .job_enqueue(&job(whose, at(0)), at(2))
                .await
                .expect("enqueue");
            two.ours
                .executor_tick("a", &tick(2), None)
                .await
                .expect("tick event");
            assert_eq!(two.due(at(3)).await, 1, "{whose}");
        }
    }

    /// An idle holder's kept answer carries its lease, renewed by each tick event as the store
    /// renews it; a lease no longer fresh, or taken by another executor, is read again.
    #[tokio::test]
    async fn the_kept_lease_is_the_stored_lease() {
        use crate::fleet::LeaseRenewal;
        let two = two_connections().await;
        let ttl = Duration::from_secs(30);
        let hold = |held_before| TickHold {
            me: "a".into(),
            ttl,
            interval: Duration::from_secs(10),
            held_before,
        };
        let renew = LeaseRenewal {
            account: "alice".into(),
            ttl,
        };
        let start = |held_before: bool, now: SystemTime| {
            let store = &two.ours;
            async move {
                let (_, held) = store
                    .tick_start("alice", Some(&hold(held_before)), &identity(), now)
                    .await
                    .expect("tick start");
                match held.expect("a lease answer") {
                    LeaseOutcome::Held { until, .. } => Some(until),
                    LeaseOutcome::Standby { .. } => None,
                }
            }
        };
        assert_eq!(start(false, at(1)).await, Some(at(31)));
        two.ours
            .executor_tick("a", &tick(2), Some(&renew))
            .await
            .expect("tick event");
        assert_eq!(start(true, at(3)).await, Some(at(32)));
        let reads = two.reads();
        for second in [12, 22] {
            two.ours
                .executor_tick("a", &tick(second - 1), Some(&renew))
                .await
                .expect("tick event");
            assert_eq!(start(true, at(second)).await, Some(at(second + 29)));
        }
        // A late event, or another executor's, renews nothing (as in the store).
        two.ours
            .executor_tick("a", &tick(20), Some(&renew))
            .await
            .expect("late tick event");
        assert_eq!(start(true, at(23)).await, Some(at(51)));
        two.ours
            .executor_tick("b", &tick(23), Some(&renew))
            .await
            .expect("another's tick event");
        assert_eq!(start(true, at(24)).await, Some(at(51)));
        assert_eq!(two.reads(), reads, "the kept lease renewed with each event");
        // Without a renewal for longer than a tick, the start renews it (a write, as before).
        assert_eq!(start(true, at(40)).await, Some(at(70)));
        assert_eq!(two.reads(), reads + 1);

        // Another executor takes over the lapsed lease: ours is no longer held.
        let taken = two
            .theirs
            .account_lease_hold("alice", "b", ttl, &identity(), at(71))
            .await
            .expect("take over");
        assert!(matches!(taken, LeaseOutcome::Held { .. }), "{taken:?}");
        assert_eq!(start(true, at(72)).await, None);
    }

    /// The answer ends when any row's time the first read depends on comes: a job leased by
    /// another account's executor when its lease runs out (the sweep), an `uncertain` job of
    /// the account when its retry time comes — with no commit in between.
    #[tokio::test]
    async fn a_lease_running_out_or_a_lookup_coming_due_ends_the_kept_answer() {
        let two = two_connections().await;
        let enqueue = |text: &'static str| {
            let theirs = &two.theirs;
            async move {
                match theirs.job_enqueue(&job(text, at(0)), at(0)).await {
                    Ok(crate::store::Enqueued::Created(job)) => job.id,
                    other => panic!("not created: {other:?}"),
                }
            }
        };
        let claimed = enqueue("claimed by bob's executor").await;
        two.set(
            claimed,
            &format!(
                "account = 'bob', state = 'claimed', lease_owner = 'b', lease_token = 't',
                 lease_expires_at = '{}'",
                format_ts(at(30))
            ),
        );
        let uncertain = enqueue("uncertain").await;
        two.set(
            uncertain,
            &format!("state = 'uncertain', not_before = '{}'", format_ts(at(50))),
        );
        assert!(two.look(at(10)).await.idle());
        let reads = two.reads();
        assert!(two.look(at(29)).await.idle());
        assert_eq!(two.reads(), reads, "kept before the lease's time");
        assert!(
            two.look(at(30)).await.idle(),
            "a lease is expired only after its time"
        );
        let look = two.look(at(31)).await;
        assert!(
            look.chores(Kind::Post),
            "the lapsed lease asks for the sweep: {look:?}"
        );

        two.set(claimed, "state = 'cancelled', lease_expires_at = NULL");
        assert!(two.look(at(40)).await.idle());
        let reads = two.reads();
        assert!(two.look(at(49)).await.idle());
        assert_eq!(two.reads(), reads);
        let look = two.look(at(50)).await;
        assert!(
            look.chores(Kind::Post),
            "the uncertain job is looked up: {look:?}"
        );
    }

    /// A step of this store that waited for the connection while a tick read forgets what the
    /// read kept, once the connection is its own: its commit cannot be hidden by the tick's
    /// event after it.
    #[tokio::test]
    async fn a_step_that_waited_for_the_connection_forgets_what_the_read_before_it_kept() {
        use std::future::Future;
        let two = two_connections().await;
        let new_job = job("from the dashboard", at(0));
        let enqueue = two.ours.job_enqueue(&new_job, at(1));
        let mut enqueue = std::pin::pin!(enqueue);
        {
            let guard = two.ours.conn.lock().expect("connection");
            // The enqueue's step starts while the connection is held (by a tick's read, here the
            // test): it must not forget anything yet.
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            let first = enqueue.as_mut().poll(&mut context).is_pending();
            assert!(first, "the enqueue waits for the connection");
            // The tick's read, as `tick_start` makes it, finds nothing and keeps that.
            let seen = two.ours.idle.before_read(&guard.conn);
            assert!(seen.is_some());
            let idle = (LaneLook::default(), None);
            two.ours
                .idle
                .after_read(&guard.conn, seen, "alice", None, &idle, at(1));
        }
        enqueue.await.expect("enqueue");
        two.ours
            .executor_tick("a", &tick(2), None)
            .await
            .expect("tick event");
        assert_eq!(two.due(at(3)).await, 1);
    }

    /// A database SQLite could not keep in WAL mode has no live header: a `-shm` beside it,
    /// left from an earlier WAL session, is never taken for one.
    #[test]
    fn a_database_not_in_wal_mode_keeps_nothing() {
        let dir = std::env::temp_dir().join(format!("executor-nowal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).expect("dir");
        let path = dir.join("executor.sqlite");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (x)").expect("table");
        let mut copy = [7u8; HEADER / 2];
        copy[12] = 1;
        std::fs::write(dir.join("executor.sqlite-shm"), [copy, copy].concat()).expect("shm");
        assert!(IdleTicks::default().before_read(&conn).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A header is a mark only when whole, initialised, with both copies alike, and in a file
    /// still linked: anything else reads as "changed".
    #[test]
    fn a_torn_short_uninitialised_or_unlinked_header_is_no_mark() {
        let dir = std::env::temp_dir().join(format!("executor-shm-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).expect("dir");
        let shm = |bytes: &[u8]| {
            let path = dir.join(format!("{}-shm", uuid::Uuid::new_v4()));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(bytes))
                .expect("write");
            let file = std::fs::File::open(&path).expect("open");
            (path.clone(), Shm(Box::leak(Box::new(file))))
        };
        let mut copy = [7u8; HEADER / 2];
        copy[12] = 1;
        let whole = [copy, copy].concat();
        let (path, good) = shm(&whole);
        assert_eq!(good.mark(), Some(Mark(copy)));
        let mut torn = whole.clone();
        torn[HEADER / 2 + 8] ^= 1;
        assert_eq!(shm(&torn).1.mark(), None, "torn");
        assert_eq!(shm(&whole[..HEADER - 1]).1.mark(), None, "short");
        let mut uninitialised = copy;
        uninitialised[12] = 0;
        assert_eq!(
            shm(&[uninitialised, uninitialised].concat()).1.mark(),
            None,
            "not initialised"
        );
        std::fs::remove_file(&path).expect("unlink");
        assert_eq!(good.mark(), None, "unlinked");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
