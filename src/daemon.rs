//! The daemon: lifecycle around the tick loop (SPEC §2, §4).
//!
//! Start: profile dir (0700) → refuse while STOP is present → the files it will write checked
//! (no links, no special files) → single-instance lock → STOP and signal watchers → store
//! (migrations) → event sink (flushes any spool left by a crash) → `EXECUTOR_DAEMON_BOOT` →
//! tick loop. The watchers come before anything that waits: opening the store (bounded by its
//! own deadlines: a silent server, another session's migration lock) is cut short by a STOP or
//! a signal, which then ends the daemon as an orderly stop (exit 0, lock released).
//!
//! Loop: run a tick under its runtime cap; write the tick line and the tick event from its one
//! result; on failure back off (30 s, 60 s, … by default) and after `max_failures` consecutive
//! failures exit non-zero; otherwise sleep until the next fixed-rate start (small jitter). Every
//! sleep wakes at once on STOP.
//!
//! A tick that overruns its cap is really stopped: its future is dropped, then the page is halted
//! through the browser layer, escalating (park → new page → browser restart / reconnect); which
//! step was needed is logged and recorded. The next tick runs normally.
//!
//! Exit: the four lines of SPEC §2 in order, the browser closed (launch mode) or left parked
//! (attach mode), `EXECUTOR_DAEMON_EXIT` flushed, the lock file removed. Nothing here calls
//! `process::exit`: every path returns to `main` so cleanup always runs.

use crate::browser::{Browser, BrowserConfig, Notice};
use crate::events::{self, Identity, Severity};
use crate::lock::{LockError, PidLock, Previous};
use crate::log::Logger;
use crate::settings::{format_duration, Settings};
use crate::sink::{EventSink, Spool};
use crate::stop::{self, Shutdown, StopReason};
use crate::tick::{self, TickContext, TickOutcome, TickResult, TickWork};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long work after an irreversible step may run on after STOP before it is aborted. With
/// the cleanup that follows, the process is gone well within SPEC §2's 10 s.
pub const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Why the daemon ended. Each maps to a documented exit code ([`Exit::code`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    /// STOP file, `STOP_EXECUTOR=true`, SIGTERM or SIGINT: exit 0.
    Stopped(StopReason),
    /// Another daemon holds the profile's lock: exit 0, as the original did.
    AlreadyRunning { pid: String },
    /// The STOP switch was present at start: refused, exit 0 (a supervisor must not loop).
    StopPresent,
    /// `max_failures` consecutive ticks failed: exit 1.
    TooManyFailures { count: u32, last_error: String },
    /// More than one page after cleanup: exit 1.
    HardCapExceeded { pages: usize },
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Stopped(reason) => write!(f, "stopped ({reason:?})"),
            Exit::AlreadyRunning { pid } => {
                write!(f, "another daemon (pid {pid}) runs on this profile")
            }
            Exit::StopPresent => write!(f, "the STOP switch is present; not starting"),
            Exit::TooManyFailures { count, last_error } => write!(
                f,
                "{count} consecutive failed ticks - exiting (last error: {last_error})"
            ),
            Exit::HardCapExceeded { pages } => {
                write!(
                    f,
                    "HARD CAP EXCEEDED: {pages} pages after cleanup - EXITING"
                )
            }
        }
    }
}

impl Exit {
    pub fn code(&self) -> i32 {
        match self {
            Exit::Stopped(_) | Exit::AlreadyRunning { .. } | Exit::StopPresent => 0,
            Exit::TooManyFailures { .. } | Exit::HardCapExceeded { .. } => 1,
        }
    }
}

/// Start-up failures (before the first tick).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("profile directory {path}: {reason}")]
    Profile { path: String, reason: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot open the store {url}: {reason}")]
    Store { url: String, reason: String },
    #[error("cannot install the STOP/signal watchers: {0}")]
    Watch(String),
}

impl DaemonError {
    /// Bad local setup is a usage error (2); a store that cannot be reached is a runtime one (1).
    pub fn code(&self) -> i32 {
        match self {
            DaemonError::Profile { .. } | DaemonError::Lock(_) => 2,
            DaemonError::Store { .. } | DaemonError::Watch(_) => 1,
        }
    }
}

/// What the caller (main, a test, the demo) provides.
pub struct RunOptions {
    pub logger: Logger,
    /// The site actions go through; without one the lanes start no action.
    pub site: Option<Arc<dyn crate::sites::Site>>,
    /// Replaces the job lanes entirely (tests that need a tick to hang, flood, …).
    pub work: Option<Arc<dyn TickWork>>,
    /// Overrides of the browser defaults (tests shorten the relaunch interval).
    pub browser: Option<BrowserConfig>,
}

/// Creates the profile dir (mode 0700) and checks that we can write in it.
pub fn prepare_profile(settings: &Settings) -> Result<(), DaemonError> {
    let path = &settings.profile;
    let err = |reason: String| DaemonError::Profile {
        path: path.display().to_string(),
        reason,
    };
    crate::files::create_private_dir(path).map_err(|e| err(e.to_string()))?;
    crate::browser::managed::set_private(path);
    crate::files::write_probe(path).map_err(|e| err(format!("not writable: {e}")))
}

/// The files the daemon will write besides the lock and the log are usable (see `files`):
/// the spool, and in launch mode `chrome.json` and its temp file. Checked before the lock is
/// taken, so a link or a special file planted there stops the start with one line and nothing
/// written, instead of failing later (a spool that cannot be written loses events). The log
/// is not among them: a log file that cannot be written never stops the daemon (see `log`).
fn check_profile_files(settings: &Settings) -> Result<(), DaemonError> {
    let err = |e: std::io::Error| DaemonError::Profile {
        path: settings.profile.display().to_string(),
        reason: e.to_string(),
    };
    Spool::new(settings.spool_path()).check().map_err(err)?;
    if settings.browser_mode == crate::settings::BrowserMode::Launch {
        crate::browser::managed::Identity::check_writable(&settings.chrome_identity_path())
            .map_err(err)?;
    }
    Ok(())
}

/// Runs the daemon until STOP, a signal, or a fatal condition.
pub async fn run(
    settings: Settings,
    shutdown: Shutdown,
    options: RunOptions,
) -> Result<Exit, DaemonError> {
    let log = options.logger.clone();
    prepare_profile(&settings)?;

    let stop_path = settings.stop_path();
    if let Some(kind) = stop::stop_file_present(&stop_path) {
        log.info(&format!(
            "STOP switch present ({} {}) - refusing to start; remove it to run",
            kind,
            stop_path.display()
        ));
        return Ok(Exit::StopPresent);
    }
    if settings.stop_env {
        log.info("STOP_EXECUTOR=true in the environment - refusing to start");
        return Ok(Exit::StopPresent);
    }

    check_profile_files(&settings)?;

    let lock = match PidLock::acquire(&settings.lock_path()) {
        Ok(lock) => lock,
        Err(LockError::HeldBy { pid, .. }) => {
            log.info(&format!(
                "Another executor daemon is already running on this profile (pid {pid}) - exiting"
            ));
            return Ok(Exit::AlreadyRunning { pid });
        }
        Err(err) => return Err(err.into()),
    };
    if let Previous::Stale { content, size } = &lock.previous {
        // Its content is not ours: quoted and bounded, it can neither forge a line nor flood.
        let who = if *size == 0 {
            "an empty file".to_string()
        } else {
            crate::quote::quoted_part(content, *size)
        };
        log.info(&format!(
            "Stale lock ({who}) from a run that did not exit cleanly - taken over"
        ));
    }
    log.info(&format!(
        "Lock acquired: {} ({}:{})",
        lock.path().display(),
        lock.owner.pid,
        lock.owner.start_unix_ms
    ));

    // From here on every path releases the lock.
    let result = run_locked(&settings, &shutdown, options, &lock).await;
    if result.is_err() {
        log.info("Cleaning up...");
    }
    let released = lock.release();
    match released {
        Ok(()) => log.info("Lock released"),
        Err(err) => log.error(&format!("Lock release failed: {err}")),
    }
    match &result {
        Ok(exit) if exit.code() == 0 => log.info("Exited gracefully"),
        Ok(exit) => log.info(&format!("Exited with code {} ({exit:?})", exit.code())),
        Err(err) => log.error(&format!("Exited: {err}")),
    }
    result
}

async fn run_locked(
    settings: &Settings,
    shutdown: &Shutdown,
    options: RunOptions,
    lock: &PidLock,
) -> Result<Exit, DaemonError> {
    let log = options.logger.clone();
    let _watchers = stop::watch(settings.stop_path(), shutdown.clone())
        .map_err(|e| DaemonError::Watch(e.to_string()))?;
    let _abort_after = shutdown.spawn_abort_after(ABORT_GRACE);

    // Opening waits on the network (and maybe on another executor's migrations): bounded by the
    // store's own deadlines, and cut short by a STOP or a signal like everything else.
    let opened = shutdown
        .unless_stopped(crate::store::open(&settings.database))
        .await;
    let store = match opened {
        Some(opened) => opened.map_err(|e| DaemonError::Store {
            url: settings.database.to_string(),
            reason: e.to_string(),
        })?,
        None => return Ok(stopped_while_starting(shutdown, &log)),
    };
    let identity = Identity {
        run_id: uuid::Uuid::new_v4().to_string(),
        executor_id: settings.executor_id.clone(),
    };
    let metrics = Arc::new(crate::metrics::Metrics::default());
    // The metrics see every event once: the sink shows them what it queues, the store what its
    // job transitions wrote (actions, rate limits, rescues never pass the sink).
    store.set_observer(metrics.clone());
    let sink = EventSink::start(
        store.clone(),
        Spool::new(settings.spool_path()),
        identity.clone(),
    )
    .with_observer(metrics.clone());
    sink.record(
        events::BOOT,
        Severity::Info,
        "executor daemon started",
        json!({
            "pid": lock.owner.pid,
            "account": settings.account,
            "profile": settings.profile.display().to_string(),
            "browser_mode": format!("{:?}", settings.browser_mode).to_lowercase(),
            "tick_interval_ms": settings.tick_interval.as_millis() as u64,
            "tick_timeout_ms": settings.tick_timeout.as_millis() as u64,
            "backoff_ms": settings.backoff.iter().map(|b| b.as_millis() as u64).collect::<Vec<_>>(),
            "stale_lock_taken_over": matches!(lock.previous, Previous::Stale { .. }),
        }),
    );
    log.info(&format!(
        "Started: run_id={} executor_id={} store={} browser={:?} interval={}",
        identity.run_id,
        identity.executor_id,
        settings.database,
        settings.browser_mode,
        format_duration(settings.tick_interval)
    ));

    // Jobs this executor left leased when its previous run ended (crash, kill -9). A stop
    // meanwhile skips this and the registration; the loop then exits before its first tick.
    let rescue = store.job_rescue_owner(&settings.executor_id, &identity, SystemTime::now());
    match shutdown.unless_stopped(rescue).await.unwrap_or(Ok(Default::default())) {
        Ok(rescued) if rescued.uncertain + rescued.requeued > 0 => log.warn(&format!(
            "Jobs left by the previous run: {} now uncertain (verified on the site before any retry), {} back in the queue",
            rescued.uncertain, rescued.requeued
        )),
        Ok(_) => {}
        Err(err) => log.warn(&format!("Could not check for jobs left by the previous run: {err}")),
    }
    // The fleet: in the registry, and holding the account (or waiting as a standby).
    let lane_config = crate::lanes::LaneConfig::from_settings(settings);
    let registered = crate::fleet::ExecutorInfo {
        id: settings.executor_id.clone(),
        account: lane_config.account.clone(),
        host: crate::fleet::host_name(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: identity.run_id.clone(),
        started_at: SystemTime::now(),
        pace: pace_of(settings),
    };
    let register = with_deadline(store.executor_register(&registered, SystemTime::now()));
    if let Some(Err(err)) = shutdown.unless_stopped(register).await {
        log.warn(&format!("Could not register in the fleet registry: {err}"));
    }
    if options.site.is_none() && options.work.is_none() {
        log.info("No site (--site none): queued jobs are counted, none is acted on");
    }
    let work: Arc<dyn TickWork> = match options.work.clone() {
        Some(work) => work,
        None => Arc::new(crate::lanes::Lanes {
            idle: Default::default(),
            paused: Default::default(),
            store: store.clone(),
            site: options.site.clone(),
            identity: identity.clone(),
            config: lane_config.clone(),
            events: sink.clone(),
            log: log.clone(),
            hold: Some(crate::holding::AccountHold::new(
                lane_config.account.clone(),
                settings.executor_id.clone(),
                crate::holding::lease_ttl(settings.tick_interval),
            )),
        }),
    };
    let browser_config = options
        .browser
        .clone()
        .unwrap_or_else(|| BrowserConfig::from_settings(settings));
    let browser = Browser::new(browser_config, notice_handler(log.clone(), sink.clone()));
    let ctx = TickContext {
        browser: browser.clone(),
        work,
        shutdown: shutdown.clone(),
        memory_cap_bytes: settings.memory_cap_bytes,
    };

    let (metrics_stop, metrics_stopped) = tokio::sync::watch::channel(false);
    // The servers (metrics, dashboard) end when the tick loop does.
    let stopped = move || {
        let mut stopped = metrics_stopped.clone();
        async move {
            while !*stopped.borrow_and_update() {
                if stopped.changed().await.is_err() {
                    break;
                }
            }
        }
    };
    let dashboard = settings
        .ui
        .then(|| make_dashboard(settings, &store, &log))
        .flatten();
    if let Some(addr) = settings.metrics_addr {
        match crate::metrics::serve(
            addr,
            metrics.clone(),
            store.clone(),
            browser.clone(),
            dashboard.as_ref().map(crate::ui::Dashboard::router),
            stopped(),
        )
        .await
        {
            Ok(bound) => {
                log.info(&format!(
                    "Metrics on http://{bound}/metrics, health on http://{bound}/healthz"
                ));
                if let Some(dashboard) = &dashboard {
                    log.info(&format!("Dashboard on {}", dashboard.url(bound)));
                }
            }
            Err(err) => log.error(&format!(
                "Cannot serve metrics on {addr}: {err} (going on without them)"
            )),
        }
    } else if let Some(dashboard) = &dashboard {
        match crate::ui::serve(settings.ui_addr, dashboard, stopped()).await {
            Ok(bound) => log.info(&format!("Dashboard on {}", dashboard.url(bound))),
            Err(err) => log.error(&format!(
                "Cannot serve the dashboard on {}: {err} (going on without it)",
                settings.ui_addr
            )),
        }
    }
    let notifier = crate::notify::Notifier::from_env();
    let exit = tick_loop(settings, shutdown, &ctx, &log, &sink, &metrics, &notifier).await;
    notifier.send("STOPPING=1");
    let _ = metrics_stop.send(true);

    // On the way out, in SPEC §2's order: the STOP line, "Cleaning up...", then (in `run`)
    // "Lock released" and "Exited gracefully".
    if let Exit::Stopped(reason) = &exit {
        log_stop(reason, &log);
        let latency_ms = shutdown.record().map(|r| r.at.elapsed().as_millis() as u64);
        sink.record(
            events::STOP,
            Severity::Info,
            format!("stop requested: {reason}"),
            json!({ "reason": reason.to_string(), "ms_since_request": latency_ms }),
        );
    }
    log.info("Cleaning up...");
    // Hand the account over at once: a standby need not wait for the lease to lapse.
    if let Err(err) = with_deadline(store.executor_stopped(
        &settings.executor_id,
        &lane_config.account,
        SystemTime::now(),
    ))
    .await
    {
        log.warn(&format!(
            "Could not hand the account over: {err} (a standby takes it when the lease lapses)"
        ));
    }
    // The browser gets until the abort to close in order (and keep a fresh login); then signals.
    browser.shutdown_within(shutdown.aborted()).await;
    sink.record(
        events::EXIT,
        if exit.code() == 0 {
            Severity::Info
        } else {
            Severity::Error
        },
        format!("executor daemon exited with code {}", exit.code()),
        json!({ "exit_code": exit.code(), "reason": format!("{exit:?}") }),
    );
    if !sink.flush(Duration::from_secs(2)).await {
        log.warn(&format!(
            "Store not reachable on exit: events kept in {} for the next run",
            settings.spool_path().display()
        ));
    }
    Ok(exit)
}

/// What the executor registers of its settings, for the "why is it waiting?" view of any
/// machine ([`crate::waiting`]).
fn pace_of(settings: &Settings) -> crate::fleet::Pace {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    crate::fleet::Pace {
        posts_per_hour: settings.posts_per_hour,
        replies_per_hour: settings.replies_per_hour,
        min_gap_ms: ms(settings.min_gap),
        tick_interval_ms: ms(settings.tick_interval),
        tick_timeout_ms: ms(settings.tick_timeout),
    }
}

/// A stop before the store was open: there is no store to record it in, so it is only logged,
/// with the lines of an orderly exit (`run` adds "Lock released" and "Exited gracefully").
/// The dashboard `--ui` asks for, or `None` (said in the log) when its token cannot be kept:
/// the daemon goes on without it, as it does without metrics it cannot serve.
fn make_dashboard(
    settings: &Settings,
    store: &Arc<dyn crate::store::Store>,
    log: &Logger,
) -> Option<crate::ui::Dashboard> {
    match crate::ui::Token::load_or_create(&settings.profile) {
        Ok(token) => Some(crate::ui::Dashboard::new(store.clone(), token, settings)),
        Err(err) => {
            log.error(&format!(
                "Cannot keep the dashboard's token: {err} (going on without the dashboard)"
            ));
            None
        }
    }
}

fn stopped_while_starting(shutdown: &Shutdown, log: &Logger) -> Exit {
    let reason = shutdown
        .record()
        .map(|r| r.reason.clone())
        .unwrap_or(StopReason::Requested("stop".into()));
    log.info("Stopped while opening the store");
    log_stop(&reason, log);
    log.info("Cleaning up...");
    Exit::Stopped(reason)
}

/// The first of SPEC §2's exit lines, after what caused it when that was not the file.
fn log_stop(reason: &StopReason, log: &Logger) {
    if *reason != StopReason::File {
        log.info(&format!("{reason} received"));
    }
    log.info("STOP switch triggered - exiting gracefully...");
}

/// How long a registry write may take before the daemon goes on without it.
const STORE_DEADLINE: Duration = Duration::from_secs(3);

/// A store call that must not hold up the daemon's lifecycle.
async fn with_deadline<T>(
    call: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, crate::store::StoreError> {
    tokio::time::timeout(STORE_DEADLINE, call)
        .await
        .unwrap_or(Err(crate::store::StoreError::Timeout {
            operation: "fleet registry",
            seconds: STORE_DEADLINE.as_secs(),
        }))
}

/// The loop of docs/architecture.md. Returns why it ended.
#[allow(clippy::too_many_arguments)]
async fn tick_loop(
    settings: &Settings,
    shutdown: &Shutdown,
    ctx: &TickContext,
    log: &Logger,
    sink: &EventSink,
    metrics: &crate::metrics::Metrics,
    notifier: &crate::notify::Notifier,
) -> Exit {
    let mut consecutive_failures: u32 = 0;
    let mut tick_number: u64 = 0;
    let mut was_connected = false;
    // The last backlog count a tick made, shown (as stale) by ticks that cannot count.
    let mut last_counted = None;
    loop {
        if let Some(record) = shutdown.record() {
            return Exit::Stopped(record.reason.clone());
        }
        tick_number += 1;
        let started = Instant::now();
        let ts = SystemTime::now();
        let (mut result, hard_cap) =
            run_capped(settings, shutdown, ctx, log, sink, tick_number, ts).await;
        result.carry_counts(&mut last_counted);

        if ctx.browser.is_connected() && !was_connected {
            sink.record(
                events::READY,
                Severity::Info,
                "browser attached",
                json!({ "chrome_pids": ctx.browser.pids() }),
            );
        }
        was_connected = ctx.browser.is_connected();

        if result.failed() && shutdown.is_stopped() {
            // A tick cut short by STOP is not a failure of the site or the browser.
            result.last_error = None;
        }
        if result.failed() {
            consecutive_failures += 1;
            result.backoff = settings.backoff_for(consecutive_failures);
        } else {
            consecutive_failures = 0;
        }
        log.log(
            crate::log::Level::Info,
            &result.line(),
            Some(&result.event_data()),
        );
        // The tick's event, the fleet view's last tick and the renewal of the account lease the
        // tick held are one write, in the background: the tick never waits on the store.
        sink.record_tick(
            &settings.executor_id,
            ctx.work.lease_to_renew(),
            if result.failed() {
                Severity::Warning
            } else {
                Severity::Info
            },
            if result.failed() {
                "tick failed"
            } else {
                "tick"
            },
            result.event_data(),
        );

        if let Some(pages) = hard_cap {
            let exit = Exit::HardCapExceeded { pages };
            log.error(&exit.to_string());
            sink.record(
                events::HARD_CAP_EXCEEDED,
                Severity::Critical,
                format!("HARD CAP EXCEEDED: {pages} pages after cleanup"),
                json!({ "pages": pages }),
            );
            return exit;
        }
        if consecutive_failures >= settings.max_failures {
            let last_error = result.last_error.clone().unwrap_or_default();
            let exit = Exit::TooManyFailures {
                count: consecutive_failures,
                last_error: last_error.clone(),
            };
            log.error(&exit.to_string());
            sink.record(
                events::CRASH,
                Severity::Critical,
                format!("{consecutive_failures} consecutive failed ticks"),
                json!({ "consecutive_failures": consecutive_failures, "last_error": last_error }),
            );
            return exit;
        }

        // Progress, for /healthz and systemd's watchdog: the next tick must complete within
        // its wait, its runtime cap and some slack.
        let budget = settings.tick_interval.max(result.backoff)
            + settings.tick_timeout
            + Duration::from_secs(10);
        metrics.tick_completed(budget);
        if tick_number == 1 {
            notifier.send("READY=1");
        }
        notifier.send("WATCHDOG=1");

        // Fixed rate: the next start is one interval after this one (a tick that overran
        // starts the next at once, without a burst to catch up). Backoff overrides.
        let mut wait = if result.failed() {
            result.backoff
        } else {
            let next_start = started + settings.tick_interval;
            next_start.saturating_duration_since(Instant::now()) + jitter(settings.tick_interval)
        };
        if let Some(pause) = result.pause {
            // Back as soon as what it waits for is there (the browser's relaunch slot).
            wait = wait.min(pause);
        }
        if !shutdown.sleep(wait).await {
            continue; // the check at the top of the loop returns the stop
        }
    }
}

/// Up to 2% of the interval, at most one second: enough to avoid lock-step with other timers.
fn jitter(interval: Duration) -> Duration {
    let max_ms = (interval.as_millis() as u64 / 50).min(1000);
    Duration::from_millis(fastrand::u64(0..=max_ms))
}

/// Runs one tick under the runtime cap and the abort scope. Returns the result and, when the
/// hard cap was breached, the page count.
async fn run_capped(
    settings: &Settings,
    shutdown: &Shutdown,
    ctx: &TickContext,
    log: &Logger,
    sink: &EventSink,
    tick_number: u64,
    ts: SystemTime,
) -> (TickResult, Option<usize>) {
    let started = Instant::now();
    let capped = tokio::select! {
        outcome = tokio::time::timeout(settings.tick_timeout, tick::run_tick(ctx, tick_number, ts)) => outcome.ok(),
        _ = shutdown.aborted() => None,
    };
    match capped {
        Some(TickOutcome::Done(result)) => (result, None),
        Some(TickOutcome::HardCapExceeded(result, cap)) => (result, Some(cap.remaining)),
        None => {
            // The tick's future has been dropped: nothing of it runs any more. Now halt what
            // the page may still be doing.
            let aborted = shutdown.is_aborted();
            let step = ctx.browser.halt().await;
            ctx.work.abandoned().await;
            let why = if aborted {
                "aborted on STOP".to_string()
            } else {
                format!(
                    "tick exceeded its runtime cap of {}",
                    format_duration(settings.tick_timeout)
                )
            };
            log.warn(&format!("{why} - page halted ({})", step.as_str()));
            sink.record(
                events::TICK_CAPPED,
                Severity::Warning,
                why.clone(),
                json!({ "tick": tick_number, "halt_step": step.as_str(), "aborted_on_stop": aborted }),
            );
            let mut result = TickResult::start(tick_number, ts);
            result.last_error = Some(format!("{why}; page halted ({})", step.as_str()));
            result.duration_ms = started.elapsed().as_millis() as u64;
            tick::fill_browser_facts(&ctx.browser, &mut result).await;
            (result, None)
        }
    }
}

/// Turns browser notices into log lines and events.
fn notice_handler(log: Logger, sink: EventSink) -> crate::browser::NoticeFn {
    Arc::new(move |notice| match notice {
        Notice::StraysClosed { detected, closed } => {
            log.warn(&format!(
                "MULTIPLE PAGES: {detected} detected - closing extras"
            ));
            sink.record(
                events::PAGE_CAP_ENFORCED,
                Severity::Warning,
                format!("MULTIPLE PAGES: {detected} detected - closing extras"),
                json!({ "pages_detected": detected, "closed": closed }),
            );
        }
        Notice::Lost { reason } => {
            log.warn(&format!("Browser lost: {reason}"));
            sink.record(
                events::BROWSER_LOST,
                Severity::Error,
                "browser lost",
                json!({ "reason": reason }),
            );
        }
        Notice::Launched { pid, port } => {
            log.info(&format!(
                "Managed browser launched: pid={pid} cdp_port={port}"
            ));
        }
        Notice::Recycled {
            before_bytes,
            after_bytes,
            browser_restarted,
        } => {
            let mib = |b: u64| b / (1024 * 1024);
            let what = if browser_restarted {
                "page recycled, browser restarted"
            } else {
                "page recycled"
            };
            log.warn(&format!(
                "Browser above its memory cap ({} MiB): {what} ({} MiB now)",
                mib(before_bytes),
                mib(after_bytes)
            ));
            sink.record(
                events::BROWSER_RECYCLED,
                Severity::Warning,
                format!("browser above its memory cap: {what}"),
                json!({ "before_bytes": before_bytes, "after_bytes": after_bytes, "browser_restarted": browser_restarted }),
            );
        }
        Notice::ReplacedAfterStorm { pages } => {
            log.warn(&format!(
                "TAB STORM: {pages} pages could not be closed within {}s - browser replaced",
                crate::browser::STORM_BOUND.as_secs()
            ));
            sink.record(
                events::PAGE_CAP_ENFORCED,
                Severity::Warning,
                format!("tab storm: {pages} pages, browser replaced"),
                json!({ "pages_detected": pages, "browser_replaced": true }),
            );
        }
        Notice::LeftoversEnded { count } => {
            log.warn(&format!(
                "Ended {count} leftover browser process(es) on our profile from an earlier run"
            ));
        }
    })
}
