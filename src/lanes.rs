//! The tick's lanes: the posting lane, then the reply lane (SPEC §4, §5).
//!
//! Each lane, each tick:
//! 1. verify `uncertain` jobs on the site (does the post exist?) — found: `succeeded`, without a
//!    second publish; not found: back to `queued`;
//! 2. claim at most one due job within the lane's rate limits and breaker (in the store, so the
//!    limits hold across restarts and executors);
//! 3. prepare it on the page (navigate, type) — abandoned at once on STOP;
//! 4. commit `attempting`, then the irreversible click; only the outcome check after it may run
//!    on after STOP, until the abort grace;
//! 5. record the outcome; a 429 opens the lane's breaker; park the page on about:blank.
//!
//! A lane that fails does not stop the other one: both run, and the tick reports every action it
//! started and every error it met.

use crate::browser::Browser;
use crate::events::Identity;
use crate::jobs::{Claim, ClaimOutcome, Job, Kind, Limits, Outcome};
use crate::kind::LaneLook;
use crate::sites::{ActionError, Lookup, Session, Site};
use crate::stop::Shutdown;
use crate::store::Store;
use crate::tick::{Blocked, LaneCounts, TickWork, WorkError, WorkReport};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Lane settings.
#[derive(Debug, Clone)]
pub struct LaneConfig {
    /// The account this executor acts for: only its jobs are claimed and verified.
    pub account: String,
    pub owner: String,
    pub lease_for: Duration,
    pub post_limits: Limits,
    pub reply_limits: Limits,
    /// How long a 429 pauses a lane when the site gives no reset time.
    pub default_breaker: Duration,
    /// Time between tick starts: whether the site's page may stay open until the next one.
    pub tick_interval: Duration,
    /// `<profile>/AUTH_REQUIRED`: present while the site wants a login.
    pub auth_flag: std::path::PathBuf,
    /// `<profile>/ACCOUNT_MISMATCH`: present while the browser is logged in as another account.
    pub mismatch_flag: std::path::PathBuf,
}

impl LaneConfig {
    pub fn from_settings(settings: &crate::settings::Settings) -> LaneConfig {
        LaneConfig {
            account: settings.account.clone(),
            owner: settings.executor_id.clone(),
            // Longer than any tick may run (a tick cut at its cap releases its job at once), so
            // a live worker never loses its lease mid-action.
            lease_for: settings.tick_timeout + Duration::from_secs(15),
            post_limits: Limits {
                per_hour: Some(settings.posts_per_hour),
                min_gap: settings.min_gap,
            },
            reply_limits: Limits {
                per_hour: Some(settings.replies_per_hour),
                min_gap: settings.min_gap,
            },
            default_breaker: Duration::from_secs(15 * 60),
            tick_interval: settings.tick_interval,
            auth_flag: settings.profile.join("AUTH_REQUIRED"),
            mismatch_flag: settings.profile.join("ACCOUNT_MISMATCH"),
        }
    }

    fn limits(&self, kind: Kind) -> Limits {
        match kind {
            Kind::Post => self.post_limits,
            Kind::Reply => self.reply_limits,
        }
    }
}

/// The real tick work: the job queue in the store, acted on through `site`. Without a site the
/// lanes report their true due counts and start nothing — never a faked success.
pub struct Lanes {
    pub store: Arc<dyn Store>,
    pub site: Option<Arc<dyn Site>>,
    pub identity: Identity,
    pub config: LaneConfig,
    pub events: crate::sink::EventSink,
    pub log: crate::log::Logger,
    /// The account's lease, renewed by each tick; `None`: no fleet (tests of the lanes alone).
    pub hold: Option<crate::holding::AccountHold>,
    /// What the last ticks found, for the idle session check (see [`SESSION_IDLE_CHECK`]).
    pub idle: IdleState,
    /// The operator pause each lane last met, so a pause and its end are each logged once.
    pub paused: PauseMemory,
}

/// The pause each lane's last claim met (`None`: it was not paused).
#[derive(Debug, Default)]
pub struct PauseMemory(std::sync::Mutex<[Option<crate::pauses::Scope>; 2]>);

impl PauseMemory {
    /// Whether `kind`'s last claim met a pause.
    fn met(&self, kind: Kind) -> bool {
        self.0
            .lock()
            .map(|last| last[kind.index()].is_some())
            .unwrap_or(true)
    }

    /// Records what `kind`'s claim met; returns the change, if it is one.
    fn changed(
        &self,
        kind: Kind,
        now: Option<&crate::pauses::Scope>,
    ) -> Option<Option<crate::pauses::Scope>> {
        let slot = kind.index();
        let mut last = self.0.lock().ok()?;
        if last[slot].as_ref() == now {
            return None;
        }
        last[slot] = now.cloned();
        Some(now.cloned())
    }
}

/// With nothing due, the session is checked (a navigation) at most this often; with work due,
/// after a failure, a login wall or an account mismatch, and on the first tick, it is checked
/// every tick. An operator still learns of a login wall within this time while the queue is
/// empty, and an idle daemon does not load the site every tick. The lanes still run on idle
/// ticks, with the session last found: an `uncertain` job (a rescued one too) is looked up at
/// once, its lookup opening the page it needs.
pub const SESSION_IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(600);

/// With more due and the next tick at most this far off, the page is not parked after acting:
/// parking would be a navigation only for the next tick to navigate away again.
pub const KEEP_OPEN_UNTIL: Duration = Duration::from_secs(5);

/// What the tick's first call found (for `run`, which follows it), and the idle session check's
/// memory.
#[derive(Debug, Default)]
pub struct IdleState {
    /// What this tick's first read found (`ready` runs just before `run`).
    look: std::sync::Mutex<Option<LaneLook>>,
    /// The account lease's answer to this tick's first call, for `run` to act on.
    held: std::sync::Mutex<Option<crate::fleet::LeaseOutcome>>,
    /// This tick's first call found the lease ours: the tick's event renews it. Taken at the
    /// tick's end, and dropped with a tick cut at its cap, so a tick that did not get as far as
    /// the lease (the browser or the store down), or hung, renews nothing, and the lease of an
    /// executor that cannot work runs out.
    renew: std::sync::atomic::AtomicBool,
    /// The last session check that found all well (and what it found), while nothing went
    /// wrong since.
    quiet_since: std::sync::Mutex<Option<(std::time::Instant, Session)>>,
}

impl IdleState {
    fn look(&self) -> Option<LaneLook> {
        self.look.lock().ok().and_then(|look| *look)
    }

    fn nothing_due(&self) -> bool {
        self.look().is_some_and(|look| look.due.total() == 0)
    }

    /// The session a good check found within [`SESSION_IDLE_CHECK`], while nothing went wrong
    /// since.
    fn checked_session(&self) -> Option<Session> {
        self.quiet_since.lock().ok().and_then(|quiet| {
            quiet
                .as_ref()
                .filter(|(at, _)| at.elapsed() < SESSION_IDLE_CHECK)
                .map(|(_, session)| session.clone())
        })
    }

    /// The session this tick may act with without checking it: with nothing due, the
    /// [`IdleState::checked_session`].
    fn recent_session(&self) -> Option<Session> {
        self.checked_session().filter(|_| self.nothing_due())
    }

    /// After a tick: `Some(session)` when all went well and nothing was started (idle ticks may
    /// reuse it; its time is kept if it was reused), `None` otherwise.
    fn settle(&self, quiet: Option<Session>) {
        if let Ok(mut slot) = self.quiet_since.lock() {
            *slot = match (quiet, slot.take()) {
                (Some(session), Some((at, old))) if old == session => Some((at, session)),
                (Some(session), _) => Some((std::time::Instant::now(), session)),
                (None, _) => None,
            };
        }
    }
}

#[async_trait::async_trait]
impl TickWork for Lanes {
    async fn ready(&self) -> Result<LaneCounts, WorkError> {
        // With a site, the same call (one transaction) holds the account's lease for `run`.
        let hold = self
            .hold
            .as_ref()
            .filter(|_| self.site.is_some())
            .map(|hold| crate::fleet::TickHold {
                me: hold.executor_id.clone(),
                ttl: hold.ttl,
                interval: self.config.tick_interval,
                // Only a tick that will not navigate to check the session may act on the lease
                // as the last tick's event left it; the others renew it first.
                held_before: hold.held() && self.idle.checked_session().is_some(),
            });
        let (look, held) = self
            .store
            .tick_start(
                &self.config.account,
                hold.as_ref(),
                &self.identity,
                SystemTime::now(),
            )
            .await
            .map_err(machinery)?;
        let ours = matches!(held, Some(crate::fleet::LeaseOutcome::Held { .. }));
        self.idle.renew.store(ours, Ordering::Relaxed);
        if let (Some(hold), Some(held)) = (&self.hold, &held) {
            hold.say(held, &self.log);
        }
        if let Ok(mut slot) = self.idle.look.lock() {
            *slot = Some(look);
        }
        if let Ok(mut slot) = self.idle.held.lock() {
            *slot = held;
        }
        Ok(look.due)
    }

    async fn abandoned(&self) {
        self.idle.renew.store(false, Ordering::Relaxed);
        self.release_own().await;
    }

    fn lease_to_renew(&self) -> Option<crate::fleet::LeaseRenewal> {
        let ours = self.idle.renew.swap(false, Ordering::Relaxed);
        let hold = self.hold.as_ref().filter(|_| ours)?;
        // A renewal before a click during the tick may have found the lease gone.
        hold.held().then(|| crate::fleet::LeaseRenewal {
            account: hold.account.clone(),
            ttl: hold.ttl,
        })
    }

    async fn run(&self, browser: &Browser, shutdown: &Shutdown) -> WorkReport {
        let mut report = WorkReport::default();
        let Some(site) = self.site.as_ref() else {
            return report;
        };
        // Only the executor holding the account acts for it; a standby waits (not a failure).
        let held = self.idle.held.lock().ok().and_then(|mut held| held.take());
        let holding = match held {
            Some(held) => Ok(holder_of(held)),
            None => self.hold_account().await,
        };
        match holding {
            Ok(None) => {}
            Ok(Some(holder)) => {
                report.standby_for = Some(holder);
                return report;
            }
            Err(error) => {
                report.errors.push(error);
                return report;
            }
        }
        let nothing_due = self.idle.nothing_due();
        // Idle and recently checked: the lanes run with the session last found, without a
        // navigation to find it again (see SESSION_IDLE_CHECK).
        let recent = self.idle.recent_session();
        // Step 3 of the tick: no claim while the site wants a login, or while the browser is
        // logged in as another account than ours (and no spinning either: one check per tick,
        // one event per episode).
        self.idle.settle(None);
        let session = match recent {
            Some(session) => session,
            None => match site.session(browser).await {
                Ok(session) => {
                    self.auth_restored();
                    session
                }
                Err(ActionError::AuthRequired) => {
                    self.auth_required();
                    report.blocked = Some(Blocked::LoginWall);
                    return report;
                }
                Err(error) => {
                    let message = format!("session check: {error}");
                    report.errors.push(if nothing_due {
                        WorkError::Idle(message)
                    } else {
                        WorkError::Machinery(message)
                    });
                    return report;
                }
            },
        };
        if let Some(problem) = account_problem(&self.config.account, &session) {
            self.account_mismatch(&problem);
            report.blocked = Some(Blocked::AccountMismatch { problem });
            return report;
        }
        self.account_restored();
        let logged_in = session.account.as_deref();
        let look = self.idle.look();
        for kind in Kind::ALL {
            if shutdown.is_stopped() {
                break;
            }
            if !self.lane_has_work(look, kind) {
                continue;
            }
            match self
                .lane(site.as_ref(), browser, shutdown, kind, logged_in)
                .await
            {
                Ok(started) => report.attempts.add(kind, started),
                Err((started, error)) => {
                    report.attempts.add(kind, started);
                    report.errors.push(error.in_lane(kind.as_str()));
                }
            }
        }
        // All well and nothing was started: the next idle ticks may act with this session.
        let started = report.attempts.total();
        // The site's page does not stay open (and busy) until the next tick: parked once, after
        // the lanes, not between them — unless more is due and the next tick, which opens the
        // site again anyway, is only moments away.
        let more_due = look.is_some_and(|look| look.due.total() > started);
        if started > 0 && !(more_due && self.config.tick_interval <= KEEP_OPEN_UNTIL) {
            let _ = browser.park().await;
        }
        self.idle
            .settle((report.errors.is_empty() && started == 0).then_some(session));
        report
    }
}

impl Lanes {
    /// Renews (or takes) the account's lease. `Ok(None)`: we hold it; `Ok(Some(holder))`:
    /// another executor does, and we wait as its standby.
    async fn hold_account(&self) -> Result<Option<String>, WorkError> {
        let Some(hold) = &self.hold else {
            return Ok(None);
        };
        hold.hold(self.store.as_ref(), &self.identity, &self.log)
            .await
            .map(holder_of)
            .map_err(|err| WorkError::Machinery(format!("account lease: {err}")))
    }

    /// Our own leases after a dropped tick: `claimed` back to the queue, `attempting` to
    /// `uncertain` (verified on the site before anything else).
    async fn release_own(&self) {
        match self
            .store
            .job_rescue_owner(&self.config.owner, &self.identity, SystemTime::now())
            .await
        {
            Ok(rescued) if rescued.uncertain + rescued.requeued > 0 => self.log.warn(&format!(
                "Job held by the capped tick: {} back in the queue, {} uncertain",
                rescued.requeued, rescued.uncertain
            )),
            Ok(_) => {}
            Err(err) => self
                .log
                .warn(&format!("Could not release the capped tick's job: {err}")),
        }
    }

    /// Whether `kind`'s lane has anything to do this tick: no if the tick's first read found
    /// nothing due and nothing else for it (see [`LaneLook`]) and the lane last met no pause
    /// (whose end is then still to be said). An idle tick so costs one read, not four writes.
    fn lane_has_work(&self, look: Option<LaneLook>, kind: Kind) -> bool {
        lane_has_work(look, kind, self.paused.met(kind))
    }

    /// One lane: verify uncertain jobs, then at most one action. Returns actions started.
    async fn lane(
        &self,
        site: &dyn Site,
        browser: &Browser,
        shutdown: &Shutdown,
        kind: Kind,
        logged_in: Option<&str>,
    ) -> Result<u64, (u64, WorkError)> {
        let err = |started: u64| move |e: WorkError| (started, e);
        self.verify_uncertain(site, browser, kind, logged_in)
            .await
            .map_err(err(0))?;
        let claim = Claim {
            kind,
            account: self.config.account.clone(),
            owner: self.config.owner.clone(),
            lease_for: self.config.lease_for,
            limits: self.config.limits(kind),
            gap_jitter: jitter(self.config.limits(kind).min_gap),
            now: SystemTime::now(),
        };
        let outcome = self.store.job_claim_next(&claim, &self.identity).await;
        self.note_pause(kind, &outcome);
        let job = match outcome {
            Ok(ClaimOutcome::Claimed(job)) => *job,
            Ok(_) => return Ok(0),
            Err(e) => return Err((0, machinery(e))),
        };
        self.act(site, browser, shutdown, &job)
            .await
            .map(|()| 1)
            .map_err(err(1))
    }

    /// Claims and checks each `uncertain` job of the account's lane on the site. "Not there"
    /// counts only when the search reached back to the attempt; otherwise the job stays
    /// `uncertain` and is looked up again later — never published again blind.
    async fn verify_uncertain(
        &self,
        site: &dyn Site,
        browser: &Browser,
        kind: Kind,
        logged_in: Option<&str>,
    ) -> Result<(), WorkError> {
        while let Some(job) = self
            .store
            .job_claim_uncertain(
                kind,
                &self.config.account,
                &self.config.owner,
                self.config.lease_for,
                SystemTime::now(),
            )
            .await
            .map_err(machinery)?
        {
            let token = lease_token(&job);
            let since = lookup_horizon(&job);
            // A lookup that fails is the job's: it stays uncertain and is looked up again.
            let lookup = site
                .find(browser, &job, logged_in, since)
                .await
                .map_err(|e| WorkError::Job(format!("verifying job {}: {e}", job.id)))?;
            let now = SystemTime::now();
            let settled = match lookup {
                Lookup::Found(post) => {
                    let found = Some((post.post_id, post.url));
                    self.store
                        .job_resolve_uncertain(job.id, &token, found, &self.identity, now)
                        .await
                }
                Lookup::NotFound => {
                    self.store
                        .job_resolve_uncertain(job.id, &token, None, &self.identity, now)
                        .await
                }
                Lookup::Incomplete { reason } => {
                    self.log.warn(&format!(
                        "Job {} stays uncertain: {reason}; it is looked up again in {}s, never published again blind",
                        job.id,
                        LOOKUP_RETRY.as_secs()
                    ));
                    self.store
                        .job_defer_uncertain(
                            job.id,
                            &token,
                            &reason,
                            now + LOOKUP_RETRY,
                            &self.identity,
                            now,
                        )
                        .await
                }
            };
            settled.map_err(machinery)?;
        }
        Ok(())
    }

    /// One action on a claimed job, by SPEC §5's exactly-once rules.
    async fn act(
        &self,
        site: &dyn Site,
        browser: &Browser,
        shutdown: &Shutdown,
        job: &Job,
    ) -> Result<(), WorkError> {
        let token = lease_token(job);
        let finish = |outcome: Outcome| async move {
            self.store
                .job_finish(
                    job.id,
                    &token,
                    &outcome,
                    &self.identity,
                    SystemTime::now(),
                    fastrand::f64() * 0.25,
                )
                .await
                .map_err(machinery)
        };
        // The job's own failure; a login wall or a 429 is the session's, not the job's.
        let job_error = |error: &ActionError| match error {
            ActionError::AuthRequired => WorkError::Machinery(format!("job {}: {error}", job.id)),
            _ => WorkError::Job(format!("job {}: {error}", job.id)),
        };
        // Before the click: STOP abandons the action, and any failure is safe to retry.
        let prepared = tokio::select! {
            prepared = site.prepare(browser, job) => prepared,
            _ = shutdown.stopped() => Err(ActionError::Failed("stopped before the click".into())),
        };
        if let Err(error) = prepared {
            self.on_site_error(job.kind, &error).await;
            finish(Outcome::FailedBeforeClick {
                error: error.to_string(),
            })
            .await?;
            return Err(job_error(&error));
        }
        // The point of no return is committed first, by the account's live holder only.
        if let Some(holder) = self.hold_account().await? {
            let error = format!("{holder} holds the account now");
            finish(Outcome::FailedBeforeClick {
                error: error.clone(),
            })
            .await?;
            return Err(WorkError::Machinery(format!("job {}: {error}", job.id)));
        }
        self.store
            .job_mark_attempting(job.id, &lease_token(job), SystemTime::now())
            .await
            .map_err(machinery)?;
        let published = tokio::select! {
            published = site.publish(browser, job) => published,
            _ = shutdown.aborted() => Err(ActionError::Failed("aborted on STOP after the click".into())),
        };
        match published {
            Ok(post) => {
                finish(Outcome::Succeeded {
                    post_id: post.post_id,
                    url: post.url,
                })
                .await?;
                Ok(())
            }
            Err(error) => {
                self.on_site_error(job.kind, &error).await;
                // After `attempting` nothing is known: verified on the site before any retry.
                finish(Outcome::Uncertain {
                    error: error.to_string(),
                })
                .await?;
                Err(job_error(&error))
            }
        }
    }

    /// Says once in the log that the operator paused (or resumed) this lane.
    fn note_pause(&self, kind: Kind, outcome: &Result<ClaimOutcome, crate::store::StoreError>) {
        let pause = match outcome {
            Ok(ClaimOutcome::Paused(pause)) => Some(pause.as_ref()),
            Ok(_) => None,
            // A failed claim says nothing about pauses.
            Err(_) => return,
        };
        match self.paused.changed(kind, pause.map(|p| &p.scope)) {
            Some(Some(_)) => {
                if let Some(pause) = pause {
                    self.log.info(&format!(
                        "PAUSED: the {} lane claims nothing: {} (resume: {})",
                        kind.as_str(),
                        pause.describe(),
                        pause.scope.resume_command()
                    ));
                }
            }
            Some(None) => self.log.info(&format!(
                "The {} lane is no longer paused: claiming resumes",
                kind.as_str()
            )),
            None => {}
        }
    }

    /// Leaves a marker for the operator; one that cannot be written (a link or a special file
    /// in its place is refused, see `files`) is said in the log, and the lane stops all the same.
    fn write_marker(&self, flag: &std::path::Path, text: &str) {
        if let Err(err) = crate::files::write_whole(flag, text.as_bytes()) {
            self.log
                .warn(&format!("cannot write marker {}: {err}", flag.display()));
        }
    }

    fn auth_required(&self) {
        let flag = &self.config.auth_flag;
        if flag.exists() {
            self.log
                .info("AUTH_REQUIRED: still waiting for a login - nothing is claimed");
            return;
        }
        self.write_marker(flag, &crate::clock::format_ts(SystemTime::now()));
        self.log.warn(&format!(
            "AUTH_REQUIRED: the site shows a login wall - nothing is claimed until you log in again (executor chrome --headed); {} written",
            flag.display()
        ));
        self.events.record(
            crate::events::AUTH_REQUIRED,
            crate::events::Severity::Error,
            "the site wants a login; claiming stopped",
            serde_json::json!({ "flag": flag.display().to_string() }),
        );
    }

    /// The browser is logged in as another account (or the site cannot say whom): claim
    /// nothing, say so once per episode, and leave `<profile>/ACCOUNT_MISMATCH` for the operator.
    fn account_mismatch(&self, problem: &str) {
        let flag = &self.config.mismatch_flag;
        if flag.exists() {
            self.log.info(&format!(
                "ACCOUNT_MISMATCH: {problem} - still claiming nothing"
            ));
            return;
        }
        self.write_marker(
            flag,
            &format!(
                "{}\n{problem}\n",
                crate::clock::format_ts(SystemTime::now())
            ),
        );
        self.log.warn(&format!(
            "ACCOUNT_MISMATCH: {problem} - nothing is claimed until the browser is logged in as {:?}; {} written",
            self.config.account,
            flag.display()
        ));
        self.events.record(
            crate::events::ACCOUNT_MISMATCH,
            crate::events::Severity::Error,
            format!("{problem}; claiming stopped"),
            serde_json::json!({ "account": self.config.account, "problem": problem, "flag": flag.display().to_string() }),
        );
    }

    fn account_restored(&self) {
        let flag = &self.config.mismatch_flag;
        if flag.exists() && std::fs::remove_file(flag).is_ok() {
            self.log
                .info("The browser is logged in as our account again: ACCOUNT_MISMATCH removed, claiming resumes");
        }
    }

    fn auth_restored(&self) {
        if self.config.auth_flag.exists() && std::fs::remove_file(&self.config.auth_flag).is_ok() {
            self.log
                .info("Logged in again: AUTH_REQUIRED removed, claiming resumes");
        }
    }

    async fn on_site_error(&self, kind: Kind, error: &ActionError) {
        if *error == ActionError::AuthRequired {
            self.auth_required();
        }
        if let ActionError::RateLimited { reset } = error {
            let now = SystemTime::now();
            let until = reset
                .filter(|r| *r > now)
                .unwrap_or(now + self.config.default_breaker);
            let _ = self
                .store
                .lane_breaker_open(
                    &self.config.account,
                    kind,
                    until,
                    "HTTP 429 from the site",
                    &self.identity,
                    now,
                )
                .await;
        }
    }
}

/// `None`: we hold the account; `Some(holder)`: another executor does.
fn holder_of(outcome: crate::fleet::LeaseOutcome) -> Option<String> {
    match outcome {
        crate::fleet::LeaseOutcome::Held { .. } => None,
        crate::fleet::LeaseOutcome::Standby { holder, .. } => Some(holder),
    }
}

/// See [`Lanes::lane_has_work`]; without a first read (none was made), every lane runs.
fn lane_has_work(look: Option<LaneLook>, kind: Kind, paused: bool) -> bool {
    paused || look.is_none_or(|look| !look.quiet(kind))
}

/// A store error: the machinery failed.
fn machinery(error: crate::store::StoreError) -> WorkError {
    WorkError::Machinery(error.to_string())
}

/// How long an unknown outcome that could not be settled waits before the next lookup.
const LOOKUP_RETRY: Duration = Duration::from_secs(600);

/// Where a lookup must search back to: the attempt's start, less a margin for the difference
/// between our clock and the site's.
fn lookup_horizon(job: &Job) -> SystemTime {
    let attempt = job.attempted_at.unwrap_or(job.created_at);
    attempt
        .checked_sub(Duration::from_secs(120))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Why this executor must not act for the session's account (`None`: it may). An executor of the
/// default account (empty) acts for whoever is logged in.
pub fn account_problem(ours: &str, session: &Session) -> Option<String> {
    if ours.is_empty() {
        return None;
    }
    let handle = |name: &str| name.trim().trim_start_matches('@').to_lowercase();
    match session.account.as_deref() {
        Some(theirs) if handle(theirs) == handle(ours) => None,
        Some(theirs) => Some(format!(
            "the browser is logged in as {theirs:?}, but this executor serves {ours:?}"
        )),
        None => Some(format!(
            "the site definition does not say who is logged in ([session] account), so acting for {ours:?} cannot be checked"
        )),
    }
}

fn lease_token(job: &Job) -> String {
    job.state
        .lease()
        .map(|l| l.token.clone())
        .unwrap_or_default()
}

/// Up to a quarter of the gap, so actions do not fall into a visible rhythm.
fn jitter(gap: Duration) -> Duration {
    gap.mul_f64(fastrand::f64() * 0.25)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_skipped_only_when_the_first_read_found_nothing_and_no_pause_is_to_be_lifted() {
        let mut look = LaneLook::default();
        assert!(!lane_has_work(Some(look), Kind::Post, false));
        assert!(!lane_has_work(Some(look), Kind::Reply, false));
        assert!(lane_has_work(None, Kind::Post, false), "no read: run");
        assert!(
            lane_has_work(Some(look), Kind::Post, true),
            "the end of a pause is still to be said"
        );
        look.due.add(Kind::Reply, 1);
        assert!(lane_has_work(Some(look), Kind::Reply, false));
        assert!(!lane_has_work(Some(look), Kind::Post, false));
        look.set_chores(Kind::Post, true);
        assert!(lane_has_work(Some(look), Kind::Post, false));
    }
}
