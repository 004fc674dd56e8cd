//! The STOP switch and the one cancellation that everything obeys (SPEC §2).
//!
//! Four sources feed one [`Shutdown`]: the file `<profile>/STOP_EXECUTOR` (watched through the
//! OS's file notifications, with a polling fallback so a missed notification costs at most one
//! poll interval), `STOP_EXECUTOR=true` in the environment, SIGTERM and SIGINT.
//!
//! Two scopes (STYLE "Two cancellation scopes"):
//! - [`Shutdown::stopped`] — stop taking work. Every sleep, backoff and wait before an
//!   irreversible step selects on it, so an idle daemon exits at once and a started action is
//!   abandoned before its click.
//! - [`Shutdown::aborted`] — abort the work in flight. It follows the stop after a bounded grace,
//!   and is what the outcome check *after* an irreversible click waits on, so that check may
//!   finish but can never hold the process past the bound.
//!
//! The daemon never deletes the STOP file: a supervisor restart must not resume work.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// Why the daemon is stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The STOP file appeared.
    File,
    /// `STOP_EXECUTOR=true` in the environment.
    Environment,
    /// SIGTERM or SIGINT.
    Signal(&'static str),
    /// The embedding code (a test, the demo) asked.
    Requested(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::File => write!(f, "STOP switch file"),
            StopReason::Environment => write!(f, "STOP_EXECUTOR=true"),
            StopReason::Signal(name) => write!(f, "{name}"),
            StopReason::Requested(why) => write!(f, "{why}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StopRecord {
    pub reason: StopReason,
    pub at: Instant,
    pub wall: SystemTime,
}

/// The one cancellation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: CancellationToken,
    abort: CancellationToken,
    record: Arc<OnceLock<StopRecord>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            record: Arc::new(OnceLock::new()),
        }
    }

    /// Stop taking work. The first reason wins; later triggers are no-ops.
    pub fn trigger(&self, reason: StopReason) {
        let _ = self.record.set(StopRecord {
            reason,
            at: Instant::now(),
            wall: SystemTime::now(),
        });
        self.stop.cancel();
    }

    /// Abort the work in flight too (follows [`Shutdown::trigger`] after the grace).
    pub fn abort(&self) {
        if !self.stop.is_cancelled() {
            self.trigger(StopReason::Requested("abort".into()));
        }
        self.abort.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    pub async fn aborted(&self) {
        self.abort.cancelled().await
    }

    pub fn record(&self) -> Option<&StopRecord> {
        self.record.get()
    }

    /// Sleeps for `duration` unless stopped first. Returns false when stopped.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stopped() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    /// Runs `work` unless the stop comes first: `None` then, and `work` is dropped (so whatever
    /// it waited on, a silent server say, holds nothing up).
    pub async fn unless_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.stopped() => None,
            done = work => Some(done),
        }
    }

    /// After a stop, abort the work in flight once `grace` has passed.
    pub fn spawn_abort_after(&self, grace: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            this.stopped().await;
            tokio::time::sleep(grace).await;
            this.abort();
        })
    }
}

/// Describes an existing STOP switch, or `None`. Anything by that name counts (a file, a
/// directory, a FIFO, a link, even dangling): it is never opened, so none of them can hang or
/// redirect anything, and an operator's `mkdir STOP_EXECUTOR` stops the daemon as well as a
/// `touch`.
pub fn stop_file_present(path: &Path) -> Option<&'static str> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Some("a file"),
        Ok(meta) => Some(crate::files::kind_of(&meta)),
        Err(_) => None,
    }
}

/// What [`create_switch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The STOP file was created (empty, `0600`).
    Created,
    /// Something was there already (its kind): the stop was asked for already.
    AlreadyPresent(&'static str),
}

/// Pulls the STOP switch: creates `path` as an empty file, never through a link. Whatever is
/// there already counts as pulled (see [`stop_file_present`]) and is neither opened nor written.
pub fn create_switch(path: &Path) -> std::io::Result<Switch> {
    if let Some(kind) = stop_file_present(path) {
        return Ok(Switch::AlreadyPresent(kind));
    }
    match crate::files::open_for_writing(path, crate::files::Write::CreateNew) {
        Ok(_) => Ok(Switch::Created),
        // Created by someone else between the look and the open.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(Switch::AlreadyPresent(
            stop_file_present(path).unwrap_or("a file"),
        )),
        Err(err) => Err(err),
    }
}

/// How often the STOP file is looked for besides its watch: where the watch reports every
/// change, as a last resort only; where it may miss one, often enough for STOP's bound (SPEC:
/// idle, within 1 s); without a watch, as the mechanism.
const POLL_LAST_RESORT: Duration = Duration::from_secs(5);
const POLL_ALONGSIDE: Duration = Duration::from_millis(500);
const POLL_ALONE: Duration = Duration::from_millis(200);

/// Watches the STOP file and the signals until the shutdown triggers.
///
/// Returns once the watchers are installed, so a STOP created after this call is never missed.
pub fn watch(stop_path: PathBuf, shutdown: Shutdown) -> std::io::Result<Watchers> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sigterm.recv() => shutdown.trigger(StopReason::Signal("SIGTERM")),
                _ = sigint.recv() => shutdown.trigger(StopReason::Signal("SIGINT")),
                _ = shutdown.stopped() => {}
            }
        });
    }

    let (notify_tx, mut notify_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let dir = stop_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = stop_path.file_name().unwrap_or_default();
    let watcher = crate::platform::watch_entry(&dir, name, notify_tx).ok();
    // Where the watch reports every change (a local file system) the poll is a last resort;
    // where a change made elsewhere may go unseen (a network file system) it keeps STOP's
    // bound; without a watch, or once it ended (the directory removed or moved), it is the
    // mechanism.
    let mut watching = watcher.is_some();
    let poll_every = if crate::platform::reports_every_change(&dir) {
        POLL_LAST_RESORT
    } else {
        POLL_ALONGSIDE
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                if stop_file_present(&stop_path).is_some() {
                    shutdown.trigger(StopReason::File);
                    return;
                }
                let wait = if watching { poll_every } else { POLL_ALONE };
                tokio::select! {
                    _ = shutdown.stopped() => return,
                    _ = tokio::time::sleep(wait) => {}
                    woken = notify_rx.recv(), if watching => watching = woken.is_some(),
                }
            }
        });
    }
    Ok(Watchers { _watcher: watcher })
}

/// Keeps the file watcher alive; dropping it ends notifications (polling goes on until stop).
pub struct Watchers {
    _watcher: Option<crate::platform::EntryWatch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch alone, without the poll behind it: a STOP created, or renamed into place,
    /// wakes it; the other files of the directory, written all the while, do not stop it.
    #[tokio::test]
    async fn the_entry_watch_wakes_for_the_stop_file_created_or_moved_in() {
        let dir = std::env::temp_dir().join(format!("executor-watch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watch =
            crate::platform::watch_entry(&dir, "STOP_EXECUTOR".as_ref(), tx).expect("watch");
        std::fs::write(dir.join("executor.log"), "a line").expect("other file");
        std::fs::write(dir.join("STOP_EXECUTOR"), "").expect("create");
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("woken for the created file")
            .expect("watch alive");
        std::fs::remove_file(dir.join("STOP_EXECUTOR")).expect("remove");
        while rx.try_recv().is_ok() {}
        std::fs::write(dir.join("staged"), "").expect("staged");
        std::fs::rename(dir.join("staged"), dir.join("STOP_EXECUTOR")).expect("rename");
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("woken for the file moved in")
            .expect("watch alive");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A watched directory removed or moved away ends the watch (its channel closes), so that
    /// the STOP loop falls back to polling the path instead of trusting a watch on nothing.
    #[tokio::test]
    async fn the_entry_watch_ends_when_its_directory_goes() {
        for moved in [false, true] {
            let dir = std::env::temp_dir().join(format!("executor-watch-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("dir");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let _watch =
                crate::platform::watch_entry(&dir, "STOP_EXECUTOR".as_ref(), tx).expect("watch");
            let away = dir.with_extension("away");
            if moved {
                std::fs::rename(&dir, &away).expect("move");
            } else {
                std::fs::remove_dir(&dir).expect("remove");
            }
            let ended = tokio::time::timeout(Duration::from_secs(5), async {
                while rx.recv().await.is_some() {}
            })
            .await;
            let _ = std::fs::remove_dir_all(&away);
            assert!(ended.is_ok(), "the watch ended (moved: {moved})");
        }
    }

    #[tokio::test]
    async fn stop_file_triggers_shutdown_promptly() {
        let dir = std::env::temp_dir().join(format!("executor-stop-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("STOP_EXECUTOR");
        let shutdown = Shutdown::new();
        let _w = watch(path.clone(), shutdown.clone()).expect("watch");
        assert!(!shutdown.is_stopped());
        std::fs::write(&path, "").expect("touch");
        tokio::time::timeout(Duration::from_secs(2), shutdown.stopped())
            .await
            .expect("stopped within 2 s");
        assert_eq!(
            shutdown.record().map(|r| r.reason.clone()),
            Some(StopReason::File)
        );
    }

    #[tokio::test]
    async fn sleep_is_cut_short_by_stop_and_abort_follows_after_grace() {
        let shutdown = Shutdown::new();
        let _abort = shutdown.spawn_abort_after(Duration::from_millis(50));
        let s = shutdown.clone();
        let sleeper = tokio::spawn(async move { s.sleep(Duration::from_secs(3600)).await });
        shutdown.trigger(StopReason::Requested("test".into()));
        let completed = tokio::time::timeout(Duration::from_secs(2), sleeper)
            .await
            .expect("sleep ends")
            .expect("join");
        assert!(!completed);
        tokio::time::timeout(Duration::from_secs(2), shutdown.aborted())
            .await
            .expect("abort follows");
    }
}
