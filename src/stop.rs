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

/// Watches the STOP file and the signals until the shutdown triggers.
///
/// Returns once the watchers are installed, so a STOP created after this call is never missed.
pub fn watch(stop_path: PathBuf, shutdown: Shutdown) -> std::io::Result<Watchers> {
    use notify::Watcher;

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
    let watcher = notify::recommended_watcher(move |_event| {
        let _ = notify_tx.send(());
    })
    .and_then(|mut watcher| {
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(watcher)
    })
    .ok();
    // With notifications the poll is only a safety net; without them it is the mechanism.
    let poll_every = if watcher.is_some() {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(200)
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(poll_every);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if stop_file_present(&stop_path).is_some() {
                    shutdown.trigger(StopReason::File);
                    return;
                }
                tokio::select! {
                    _ = shutdown.stopped() => return,
                    _ = poll.tick() => {}
                    _ = notify_rx.recv() => {}
                }
            }
        });
    }
    Ok(Watchers { _watcher: watcher })
}

/// Keeps the file watcher alive; dropping it ends notifications (polling goes on until stop).
pub struct Watchers {
    _watcher: Option<notify::RecommendedWatcher>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
