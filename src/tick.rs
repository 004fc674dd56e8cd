//! One tick of the daemon, and the one result struct that both the tick line and the
//! `EXECUTOR_DAEMON_TICK` event are made from — so they can never disagree (SPEC §4).

use crate::browser::{Browser, BrowserError, CapCheck};
use crate::settings::format_duration;
use crate::stop::Shutdown;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use crate::kind::LaneCounts;

/// Why part of a tick's work did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// The machinery failed — the store, the browser, the session check, the account lease: the
    /// tick failed, backs off, and counts toward `--max-failures`.
    #[error("{0}")]
    Machinery(String),
    /// One job failed (the site refused its text, a readback did not match, no answer came): the
    /// job has its own retries and backoff, then `dead`. The tick reports it, but is not failed:
    /// a run of bad jobs must not take the daemon down.
    #[error("{0}")]
    Job(String),
    /// A check that failed while nothing was due (the session check of an idle tick): reported
    /// on the tick line, but not a failed tick — nothing was held up, and an unreachable site
    /// with an empty queue must not back the daemon off or end it.
    #[error("{0}")]
    Idle(String),
}

impl WorkError {
    /// The same error, said of a lane (`post lane: …`).
    pub fn in_lane(self, lane: &str) -> WorkError {
        match self {
            WorkError::Machinery(e) => WorkError::Machinery(format!("{lane} lane: {e}")),
            WorkError::Job(e) => WorkError::Job(format!("{lane} lane: {e}")),
            WorkError::Idle(e) => WorkError::Idle(format!("{lane} lane: {e}")),
        }
    }
}

/// What the lanes did: every action started, and the errors met (a failing lane does not hide
/// what the other one did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkReport {
    pub attempts: LaneCounts,
    pub errors: Vec<WorkError>,
    /// Another executor holds our account: we wait as its standby (not a failure).
    pub standby_for: Option<String>,
    /// The session check found a reason to claim nothing (not a failure either).
    pub blocked: Option<Blocked>,
}

/// Why the lanes claimed nothing although the tick went well: what the session check found.
/// Recorded in the tick event (`blocked`) and so in the fleet registry's last tick, where the
/// "why is it waiting?" view ([`crate::waiting`]) reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Blocked {
    /// The site shows a login wall (`<profile>/AUTH_REQUIRED`).
    LoginWall,
    /// The browser is logged in as another account (`<profile>/ACCOUNT_MISMATCH`).
    AccountMismatch { problem: String },
}

/// The queued work the tick runs after the caps and the session check: the posting lane, then
/// the reply lane (SPEC §5). The daemon's is [`crate::lanes::Lanes`]; tests inject their own.
#[async_trait::async_trait]
pub trait TickWork: Send + Sync {
    /// The true number of due jobs per lane.
    async fn ready(&self) -> Result<LaneCounts, WorkError>;

    /// Runs the lanes through `browser`. Waits before an irreversible step must select on
    /// `shutdown.stopped()`; waits after one on `shutdown.aborted()`.
    async fn run(&self, browser: &Browser, shutdown: &Shutdown) -> WorkReport;

    /// Called after a tick's future was dropped at the runtime cap: release what it held.
    async fn abandoned(&self) {}

    /// After a tick: the account lease it held, which the tick's event renews.
    fn lease_to_renew(&self) -> Option<crate::fleet::LeaseRenewal> {
        None
    }
}

/// No queue: both lanes empty (browser-only tests and benchmarks).
pub struct NoWork;

#[async_trait::async_trait]
impl TickWork for NoWork {
    async fn ready(&self) -> Result<LaneCounts, WorkError> {
        Ok(LaneCounts::default())
    }
    async fn run(&self, _browser: &Browser, _shutdown: &Shutdown) -> WorkReport {
        WorkReport::default()
    }
}

/// Everything one tick did. The tick line ([`TickResult::line`]) and the tick event
/// ([`TickResult::event_data`]) are both made from this, and only from this.
#[derive(Debug, Clone, PartialEq)]
pub struct TickResult {
    pub tick: u64,
    pub ts: SystemTime,
    pub pages: usize,
    pub chrome_pids: Vec<u32>,
    pub ready: LaneCounts,
    pub attempts: LaneCounts,
    /// The pause before the next tick because of failures (0 after a success).
    pub backoff: Duration,
    pub last_error: Option<String>,
    pub duration_ms: u64,
    /// The executor holding our account while we wait as its standby.
    pub standby_for: Option<String>,
    /// The session check's reason to claim nothing this tick.
    pub blocked: Option<Blocked>,
    /// `last_error` says only what went wrong with jobs (each has its own retries): the tick is
    /// reported with it, but is not a failed tick.
    pub job_failures_only: bool,
    /// The tick waited for something that comes by itself (the browser's relaunch slot): it is
    /// reported in `last_error` but is not a failed tick, and the next tick comes no later than
    /// this.
    pub pause: Option<Duration>,
    /// Whether `ready` was counted by this tick, or carried over from an earlier one (a tick
    /// that failed before counting still shows the backlog, and says since when).
    pub counted: Counted,
}

/// Where a tick's `ready` counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted in the store by this tick.
    Now,
    /// This tick could not count: the last count, made by the tick at this time.
    Earlier(SystemTime),
    /// No tick has counted yet: the counts are zero because nothing is known.
    Never,
}

impl TickResult {
    /// A tick that has done nothing yet: no pages seen, empty lanes, no error.
    pub fn start(tick: u64, ts: SystemTime) -> TickResult {
        TickResult {
            tick,
            ts,
            pages: 0,
            chrome_pids: Vec::new(),
            ready: LaneCounts::default(),
            attempts: LaneCounts::default(),
            backoff: Duration::ZERO,
            last_error: None,
            duration_ms: 0,
            standby_for: None,
            blocked: None,
            job_failures_only: false,
            pause: None,
            counted: Counted::Never,
        }
    }

    /// When this tick could not count the backlog, show the last known count instead of zero
    /// (and say it is stale); `last` is the last tick that counted, updated by this one.
    pub fn carry_counts(&mut self, last: &mut Option<(LaneCounts, SystemTime)>) {
        match (self.counted, *last) {
            (Counted::Now, _) => *last = Some((self.ready, self.ts)),
            (_, Some((ready, at))) => {
                self.ready = ready;
                self.counted = Counted::Earlier(at);
            }
            (_, None) => self.counted = Counted::Never,
        }
    }

    /// A failed tick: it backs off and counts toward `--max-failures`. Job failures alone are
    /// reported in `last_error` but do not fail the tick.
    pub fn failed(&self) -> bool {
        self.last_error.is_some() && !self.job_failures_only && self.pause.is_none()
    }

    /// The tick line, without the `[EXECUTOR_DAEMON] ` prefix (the logger adds it).
    pub fn line(&self) -> String {
        let pids: Vec<String> = self.chrome_pids.iter().map(u32::to_string).collect();
        let mut line = format!(
            "ts={} pages={} pids=[{}] posting_ready={} posting_attempts={} reply_ready={} reply_attempts={} backoff={}",
            crate::clock::format_ts(self.ts),
            self.pages,
            pids.join(","),
            self.ready.posting,
            self.attempts.posting,
            self.ready.reply,
            self.attempts.reply,
            format_duration(self.backoff),
        );
        match self.counted {
            Counted::Now => {}
            Counted::Earlier(at) => {
                line.push_str(" ready_as_of=");
                line.push_str(&crate::clock::format_ts(at));
            }
            Counted::Never => line.push_str(" ready_as_of=unknown"),
        }
        if let Some(holder) = &self.standby_for {
            line.push_str(" standby_for=");
            line.push_str(&one_line(holder));
        }
        if let Some(error) = &self.last_error {
            line.push_str(" last_error=");
            line.push_str(&one_line(error));
        }
        line
    }

    /// The tick event's `event_data` (run_id and executor_id are added by the event).
    pub fn event_data(&self) -> Value {
        json!({
            "pages": self.pages,
            "chrome_pids": self.chrome_pids,
            "posting_ready": self.ready.posting,
            "posting_attempts": self.attempts.posting,
            "reply_ready": self.ready.reply,
            "reply_attempts": self.attempts.reply,
            "backoff_seconds": seconds_value(self.backoff),
            "last_error": self.last_error.as_deref().map(one_line),
            "timestamp": crate::clock::format_ts(self.ts),
            "tick": self.tick,
            "duration_ms": self.duration_ms,
            "standby_for": self.standby_for,
            "blocked": self.blocked.as_ref().and_then(|b| serde_json::to_value(b).ok()),
            "ready_as_of": match self.counted {
                Counted::Now => Value::Null,
                Counted::Earlier(at) => json!(crate::clock::format_ts(at)),
                Counted::Never => json!("unknown"),
            },
            "failed": self.failed(),
        })
    }
}

/// Whole seconds as an integer (`30`), fractions as a float (`0.5`).
fn seconds_value(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 {
        json!(duration.as_secs())
    } else {
        json!(duration.as_secs_f64())
    }
}

/// Errors go on one line, whatever produced them.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a tick can end with besides a plain result.
#[derive(Debug)]
pub enum TickOutcome {
    Done(TickResult),
    /// More than one page remained after cleanup: the daemon must exit non-zero.
    HardCapExceeded(TickResult, CapCheck),
}

/// Everything a tick needs.
pub struct TickContext {
    pub browser: Browser,
    pub work: Arc<dyn TickWork>,
    pub shutdown: Shutdown,
    pub memory_cap_bytes: u64,
}

/// Runs one tick, in order:
///
/// 1. check STOP — a stopped daemon starts no work;
/// 2. enforce the caps — (re)connect the browser, close stray pages (a hard-cap breach ends the
///    tick and the daemon), recycle the page when the browser is above its memory cap;
/// 3. verify the session (logged in?) — the sites issue adds this step;
/// 4. run the posting lane, then the reply lane;
/// 5. return the result, from which the caller writes the tick line and the tick event.
///
/// `tick`/`ts` identify the tick; `backoff` is filled in by the caller, which owns the
/// failure count.
pub async fn run_tick(ctx: &TickContext, tick: u64, ts: SystemTime) -> TickOutcome {
    let started = std::time::Instant::now();
    let mut result = TickResult::start(tick, ts);
    let mut job_failures_only = false;
    if ctx.shutdown.is_stopped() {
        result.last_error = Some("stopped before the tick started".into());
        return TickOutcome::Done(result);
    }
    let mut pause = None;
    let outcome = async {
        let cap = match enforce_caps(ctx).await {
            Ok(cap) => cap,
            Err(err @ BrowserError::RelaunchTooSoon { seconds, .. }) => {
                // A wait, not a failure: the slot comes by itself.
                pause = Some(Duration::from_secs(seconds));
                return Err(err.to_string());
            }
            Err(err) => return Err(err.to_string()),
        };
        if cap.remaining > 1 {
            return Ok(Some(cap));
        }
        result.ready = ctx.work.ready().await.map_err(|e| e.to_string())?;
        result.counted = Counted::Now;
        if ctx.shutdown.is_stopped() {
            return Ok(None);
        }
        let report = ctx.work.run(&ctx.browser, &ctx.shutdown).await;
        result.attempts = report.attempts;
        result.standby_for = report.standby_for;
        result.blocked = report.blocked;
        if report.errors.is_empty() {
            return Ok(None);
        }
        job_failures_only = report
            .errors
            .iter()
            .all(|e| matches!(e, WorkError::Job(_) | WorkError::Idle(_)));
        let messages: Vec<String> = report.errors.iter().map(WorkError::to_string).collect();
        Err(messages.join("; "))
    }
    .await;
    fill_browser_facts(&ctx.browser, &mut result).await;
    result.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(Some(cap)) => {
            result.last_error = Some(format!(
                "HARD CAP EXCEEDED: {} pages after cleanup",
                cap.remaining
            ));
            TickOutcome::HardCapExceeded(result, cap)
        }
        Ok(None) => TickOutcome::Done(result),
        Err(error) => {
            result.last_error = Some(error);
            result.job_failures_only = job_failures_only;
            result.pause = pause;
            TickOutcome::Done(result)
        }
    }
}

/// Step 2: connect, page cap, memory cap.
async fn enforce_caps(ctx: &TickContext) -> Result<CapCheck, BrowserError> {
    tokio::select! {
        connected = ctx.browser.connect() => connected?,
        _ = ctx.shutdown.stopped() => return Err(BrowserError::NoPage("stopped while connecting".into())),
    }
    let cap = ctx.browser.sweep_or_replace().await?;
    if cap.remaining <= 1 {
        // Between actions only (this step runs before the lanes), never mid-action.
        ctx.browser.enforce_memory_cap(ctx.memory_cap_bytes).await?;
    }
    Ok(cap)
}

/// Pages and pids as they are at the end of the tick (also after a failure).
pub async fn fill_browser_facts(browser: &Browser, result: &mut TickResult) {
    if browser.is_connected() {
        if let Ok(Ok(pages)) =
            tokio::time::timeout(Duration::from_secs(3), browser.page_count()).await
        {
            result.pages = pages;
        }
        result.chrome_pids = browser.pids();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_matches_the_seed_format_exactly() {
        let result = TickResult {
            tick: 1,
            ts: crate::clock::from_unix_ms(1_769_169_600_000),
            pages: 1,
            chrome_pids: vec![12345],
            ready: LaneCounts {
                posting: 5,
                reply: 3,
            },
            attempts: LaneCounts {
                posting: 1,
                reply: 0,
            },
            backoff: Duration::ZERO,
            last_error: None,
            duration_ms: 12,
            standby_for: None,
            blocked: None,
            job_failures_only: false,
            pause: None,
            counted: Counted::Now,
        };
        assert_eq!(
            result.line(),
            "ts=2026-01-23T12:00:00.000Z pages=1 pids=[12345] posting_ready=5 posting_attempts=1 reply_ready=3 reply_attempts=0 backoff=0s"
        );
        let data = result.event_data();
        assert_eq!(data["last_error"], Value::Null);
        assert_eq!(data["chrome_pids"], json!([12345]));
    }

    #[test]
    fn failed_line_appends_a_one_line_error() {
        let result = TickResult {
            tick: 2,
            ts: crate::clock::from_unix_ms(1_769_169_660_000),
            pages: 0,
            chrome_pids: vec![],
            ready: LaneCounts::default(),
            attempts: LaneCounts::default(),
            backoff: Duration::from_secs(30),
            last_error: Some("CDP\nunreachable".into()),
            duration_ms: 3,
            standby_for: None,
            blocked: None,
            job_failures_only: false,
            pause: None,
            counted: Counted::Now,
        };
        assert!(result.line().ends_with("pids=[] posting_ready=0 posting_attempts=0 reply_ready=0 reply_attempts=0 backoff=30s last_error=CDP unreachable"));
        assert_eq!(result.event_data()["backoff_seconds"], json!(30));
    }

    #[test]
    fn a_tick_that_could_not_count_shows_the_last_count_and_says_since_when() {
        let mut last = None;
        let at = |ms: u64| crate::clock::from_unix_ms(1_769_169_600_000 + ms);
        let mut unknown = TickResult::start(1, at(0));
        unknown.last_error = Some("store down".into());
        unknown.carry_counts(&mut last);
        assert!(unknown
            .line()
            .contains("posting_ready=0 posting_attempts=0 reply_ready=0 reply_attempts=0 backoff=0s ready_as_of=unknown last_error=store down"));
        assert_eq!(unknown.event_data()["ready_as_of"], json!("unknown"));

        let mut counted = TickResult::start(2, at(60_000));
        counted.ready = LaneCounts {
            posting: 120,
            reply: 4,
        };
        counted.counted = Counted::Now;
        counted.carry_counts(&mut last);
        assert!(!counted.line().contains("ready_as_of"));
        assert_eq!(counted.event_data()["ready_as_of"], Value::Null);

        let mut failed = TickResult::start(3, at(120_000));
        failed.last_error = Some("store down".into());
        failed.carry_counts(&mut last);
        assert!(failed.line().contains(
            "posting_ready=120 posting_attempts=0 reply_ready=4 reply_attempts=0 backoff=0s ready_as_of=2026-01-23T12:01:00.000Z"
        ));
        assert_eq!(failed.event_data()["posting_ready"], json!(120));
        assert_eq!(
            failed.event_data()["ready_as_of"],
            json!("2026-01-23T12:01:00.000Z")
        );
    }
}
