//! Jobs: one action each — a post, or a reply to a post (SPEC §5).
//!
//! Lifecycle: `queued` → `claimed` (leased to one executor, fenced by a token) → `attempting`
//! (durably committed *before* the irreversible click) → `succeeded` with the post's id/URL.
//! Before the click a failure is safe: `failed` with a retry time (exponential backoff with
//! jitter), then `dead` after `max_attempts`. After the click nothing is safe: any error, timeout,
//! crash, lost browser or expired lease makes the job `uncertain`, and an uncertain job is never
//! clicked again until a check on the site says the post does not exist (→ `queued`) — or
//! finds it (→ `succeeded`).
//!
//! Every write by a worker names its lease token; a worker whose lease expired and was taken
//! over can no longer change the job ([`crate::store::StoreError::Fenced`]).

use std::time::{Duration, SystemTime};

pub use crate::kind::Kind;

/// A worker's hold on a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub token: String,
    pub expires_at: SystemTime,
}

/// Where a job is, with what belongs to that state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Claimed(Lease),
    Attempting(Lease),
    Succeeded {
        post_id: Option<String>,
        url: Option<String>,
    },
    /// Failed before the irreversible step; retried at `retry_at`.
    Failed {
        error: String,
        retry_at: SystemTime,
    },
    /// The irreversible step may have happened; must be verified on the site first. A lease is
    /// present while one executor verifies it.
    Uncertain {
        error: String,
        lease: Option<Lease>,
    },
    Dead {
        error: String,
    },
    Cancelled,
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Claimed(_) => "claimed",
            JobState::Attempting(_) => "attempting",
            JobState::Succeeded { .. } => "succeeded",
            JobState::Failed { .. } => "failed",
            JobState::Uncertain { .. } => "uncertain",
            JobState::Dead { .. } => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn lease(&self) -> Option<&Lease> {
        match self {
            JobState::Claimed(lease) | JobState::Attempting(lease) => Some(lease),
            JobState::Uncertain { lease, .. } => lease.as_ref(),
            _ => None,
        }
    }
}

pub const STATE_NAMES: [&str; 8] = [
    "queued",
    "claimed",
    "attempting",
    "succeeded",
    "failed",
    "uncertain",
    "dead",
    "cancelled",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: Kind,
    pub text: String,
    /// The target post's id (replies only).
    pub reply_to: Option<String>,
    pub account: String,
    pub idempotency_key: Option<String>,
    pub not_before: SystemTime,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// When it was last marked `attempting`: a lookup of an unknown outcome searches back to it.
    pub attempted_at: Option<SystemTime>,
}

/// A job to enqueue, validated by [`NewJob::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: Kind,
    pub text: String,
    pub reply_to: Option<String>,
    pub account: String,
    pub idempotency_key: Option<String>,
    pub not_before: SystemTime,
    pub max_attempts: u32,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the text is empty")]
    EmptyText,
    #[error("the text is {length} long as the site counts ({}); it allows at most {}", .limit.count.describe(), .limit.max)]
    TooLong { length: usize, limit: TextLimit },
    #[error("a reply needs --to URL_OR_ID (the post to reply to)")]
    MissingTarget,
    #[error("reply target {} is neither a post URL (…/status/ID) nor a post id", crate::quote::quoted(.0))]
    BadTarget(String),
    #[error("a post takes no reply target")]
    UnexpectedTarget,
    #[error("unknown job kind {} (expected `post` or `reply`)", crate::quote::quoted(.0))]
    UnknownKind(String),
    #[error("idempotency key must be 1 to 200 characters")]
    BadKey,
    #[error("account name must be 1 to 100 characters")]
    BadAccount,
}

/// The longest text a site takes, and how it counts (a site definition's `max_chars` and
/// `[text] count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLimit {
    pub max: usize,
    pub count: crate::length::Count,
}

impl TextLimit {
    /// At most `max` characters.
    pub fn chars(max: usize) -> TextLimit {
        TextLimit {
            max,
            count: crate::length::Count::Chars,
        }
    }

    /// Refuses a text longer than the limit, as the site counts it.
    pub fn check(self, text: &str) -> Result<(), JobError> {
        let length = crate::length::length(text, self.count);
        if length > self.max {
            return Err(JobError::TooLong {
                length,
                limit: self,
            });
        }
        Ok(())
    }
}

impl NewJob {
    /// Checks the job against a site's length limit; normalises the reply target to an id. A
    /// text of white space and invisible characters only (zero-width spaces, …) is empty.
    pub fn validate(mut self, limit: TextLimit) -> Result<NewJob, JobError> {
        if crate::length::is_blank(&self.text) {
            return Err(JobError::EmptyText);
        }
        limit.check(&self.text)?;
        match (self.kind, self.reply_to.take()) {
            (Kind::Post, Some(_)) => return Err(JobError::UnexpectedTarget),
            (Kind::Post, None) => {}
            (Kind::Reply, None) => return Err(JobError::MissingTarget),
            (Kind::Reply, Some(target)) => self.reply_to = Some(parse_target(&target)?),
        }
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > 200 {
                return Err(JobError::BadKey);
            }
        }
        if self.account.len() > 100 {
            return Err(JobError::BadAccount);
        }
        Ok(self)
    }
}

/// A post URL (`https://x.com/someone/status/123`, `http://127.0.0.1:8080/status/7`) or a bare
/// id (`123`) → the id.
pub fn parse_target(target: &str) -> Result<String, JobError> {
    let target = target.trim();
    let bad = || JobError::BadTarget(target.to_string());
    let is_id = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if target.starts_with("http://") || target.starts_with("https://") {
        let path = target.split(['?', '#']).next().unwrap_or(target);
        let mut parts = path.trim_end_matches('/').rsplit('/');
        let id = parts.next().ok_or_else(bad)?;
        if parts.next() == Some("status") && is_id(id) {
            return Ok(id.to_string());
        }
        return Err(bad());
    }
    if is_id(target) {
        Ok(target.to_string())
    } else {
        Err(bad())
    }
}

/// Rate limits of one lane, per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Actions started per rolling hour; `None`: unlimited (benchmarks).
    pub per_hour: Option<u32>,
    /// Minimum time between two actions of the same account (any lane), before jitter.
    pub min_gap: Duration,
}

impl Limits {
    pub const OFF: Limits = Limits {
        per_hour: None,
        min_gap: Duration::ZERO,
    };

    /// When the hourly limit lets the lane act again (`None`: it does now): an hour after the
    /// oldest action of the rolling hour, once the lane has used up its `per_hour`.
    pub fn hourly_until(&self, recent: &RecentActions, now: SystemTime) -> Option<SystemTime> {
        let per_hour = self.per_hour?;
        if recent.lane_in_last_hour < u64::from(per_hour) {
            return None;
        }
        Some(match recent.lane_oldest_in_hour {
            Some(oldest) => oldest + Duration::from_secs(3600),
            // per_hour = 0: the lane is paused; look again in a minute.
            None => now + Duration::from_secs(60),
        })
    }

    /// When the minimum gap (plus `jitter`) after the account's latest action in any lane has
    /// passed (`None`: it has).
    pub fn gap_until(
        &self,
        recent: &RecentActions,
        jitter: Duration,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let gap = self.min_gap + jitter;
        let free_at = recent.latest_any_lane? + gap;
        (!gap.is_zero() && free_at > now).then_some(free_at)
    }
}

/// A claim request for one lane of one account.
#[derive(Debug, Clone)]
pub struct Claim {
    pub kind: Kind,
    /// The account this executor acts for: only its jobs are claimed.
    pub account: String,
    pub owner: String,
    pub lease_for: Duration,
    pub limits: Limits,
    /// Added to `min_gap` for this claim (chosen at random by the caller).
    pub gap_jitter: Duration,
    pub now: SystemTime,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    Claimed(Box<Job>),
    /// Nothing due in this lane.
    Empty,
    /// Something is due, but the account is at its limit until `until`.
    RateLimited {
        until: SystemTime,
    },
    /// The site answered 429: the account's lane is paused until `until`.
    BreakerOpen {
        until: SystemTime,
    },
    /// An operator paused the lane or the account (`executor pause`): nothing is claimed until
    /// it is resumed.
    Paused(Box<crate::pauses::Pause>),
}

/// The breaker as the claim obeys it: open (`Some(until)`) while its recorded time is ahead.
pub fn breaker_open(recorded: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    recorded.filter(|until| *until > now)
}

/// How an attempt ended, as reported by the worker holding the lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        post_id: Option<String>,
        url: Option<String>,
    },
    /// Failed before the irreversible step: safe to retry.
    FailedBeforeClick { error: String },
    /// After the irreversible step the outcome is not known.
    Uncertain { error: String },
}

/// Exponential backoff with jitter for retries before the click: 30 s, 60 s, 120 s … capped at
/// one hour, each plus up to 25 %.
pub fn retry_delay(attempts: u32, jitter_fraction: f64) -> Duration {
    let base = 30u64
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(10))
        .min(3600);
    Duration::from_secs_f64(base as f64 * (1.0 + jitter_fraction.clamp(0.0, 0.25)))
}

/// The account's recent actions, as the store counts them for a claim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentActions {
    /// Actions of the lane started in the last hour, and the oldest of them.
    pub lane_in_last_hour: u64,
    pub lane_oldest_in_hour: Option<SystemTime>,
    /// The account's latest action in any lane.
    pub latest_any_lane: Option<SystemTime>,
}

impl Claim {
    /// Whether this claim must look at rate limits at all (benchmarks turn them off).
    pub fn limited(&self) -> bool {
        self.limits.per_hour.is_some() || !self.limits.min_gap.is_zero()
    }

    /// When the account may act next in this lane (`None`: now), by the hourly limit and the
    /// minimum gap (plus this claim's jitter): the later of the two.
    pub fn blocked_until(&self, recent: &RecentActions) -> Option<SystemTime> {
        let hourly = self.limits.hourly_until(recent, self.now);
        let gap = self.limits.gap_until(recent, self.gap_jitter, self.now);
        hourly.max(gap)
    }

    /// The start of the hourly window.
    pub fn hour_ago(&self) -> SystemTime {
        self.now
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// What a finished attempt becomes. After `attempting` nothing is known any more, so even a
/// failure reported as "before the click" becomes `uncertain`; before it, a failure is retried
/// with backoff until `max_attempts`, then `dead`.
pub fn finished_state(
    job: &Job,
    outcome: &Outcome,
    now: SystemTime,
    retry_jitter: f64,
) -> JobState {
    let was_attempting = matches!(job.state, JobState::Attempting(_));
    match outcome {
        Outcome::Succeeded { post_id, url } => JobState::Succeeded {
            post_id: post_id.clone(),
            url: url.clone(),
        },
        Outcome::Uncertain { error } => JobState::Uncertain {
            error: error.clone(),
            lease: None,
        },
        Outcome::FailedBeforeClick { error } if was_attempting => JobState::Uncertain {
            error: error.clone(),
            lease: None,
        },
        Outcome::FailedBeforeClick { error } if job.attempts >= job.max_attempts => {
            JobState::Dead {
                error: error.clone(),
            }
        }
        Outcome::FailedBeforeClick { error } => JobState::Failed {
            error: error.clone(),
            retry_at: now + retry_delay(job.attempts, retry_jitter),
        },
    }
}

/// An operator's command on a job (`executor jobs retry|cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    Retry,
    Cancel,
}

impl OperatorAction {
    pub fn name(self) -> &'static str {
        match self {
            OperatorAction::Retry => "retry",
            OperatorAction::Cancel => "cancel",
        }
    }

    /// Whether the job may take this command now: never while a worker holds it.
    pub fn allowed(self, state: &JobState) -> bool {
        if state.lease().is_some() {
            return false;
        }
        match self {
            OperatorAction::Retry => matches!(
                state,
                JobState::Failed { .. } | JobState::Dead { .. } | JobState::Cancelled
            ),
            OperatorAction::Cancel => matches!(
                state,
                JobState::Queued
                    | JobState::Failed { .. }
                    | JobState::Uncertain { .. }
                    | JobState::Dead { .. }
            ),
        }
    }
}

/// Why an `attempting` job became `uncertain` without an answer from the worker.
pub const LEASE_EXPIRED_AFTER_CLICK: &str = "lease expired after the irreversible step";
pub const PREVIOUS_RUN_ENDED_AFTER_CLICK: &str =
    "the previous run ended after the irreversible step";

/// The events that the job state machine's transitions write, in the same transaction as the
/// change they describe.
pub mod transition_events {
    use super::{Job, JobState, Kind, Outcome};
    use crate::clock::format_ts;
    use crate::events::{self, Event, Identity, Severity};
    use serde_json::json;
    use std::time::SystemTime;

    /// How an attempt ended (`job` is the job after the change).
    pub fn outcome(job: &Job, outcome: &Outcome, identity: &Identity, now: SystemTime) -> Event {
        let base = json!({ "job_id": job.id, "kind": job.kind.as_str(), "account": job.account, "attempts": job.attempts });
        let with = |extra: serde_json::Value| {
            let mut data = base.clone();
            if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
                data.extend(extra);
            }
            data
        };
        match (outcome, &job.state) {
            (Outcome::Succeeded { post_id, url }, _) => {
                let kind = if job.kind == Kind::Post {
                    events::POST_SUCCESS
                } else {
                    events::REPLY_SUCCESS
                };
                Event::at(
                    identity,
                    kind,
                    Severity::Info,
                    format!("job {} published", job.id),
                    with(json!({ "post_id": post_id, "url": url, "reply_to": job.reply_to })),
                    now,
                )
            }
            (Outcome::Uncertain { error }, _)
            | (Outcome::FailedBeforeClick { error }, JobState::Uncertain { .. }) => Event::at(
                identity,
                events::JOB_OUTCOME_UNKNOWN,
                Severity::Warning,
                format!(
                    "job {}: outcome unknown after the irreversible step",
                    job.id
                ),
                with(json!({ "error": error })),
                now,
            ),
            (Outcome::FailedBeforeClick { error }, state) => {
                let dead = matches!(state, JobState::Dead { .. });
                let retry_at = match state {
                    JobState::Failed { retry_at, .. } => Some(format_ts(*retry_at)),
                    _ => None,
                };
                Event::at(
                    identity,
                    events::POST_FAILED,
                    if dead {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "job {} failed before publishing{}",
                        job.id,
                        if dead { " - dead" } else { "" }
                    ),
                    with(json!({ "error": error, "dead": dead, "retry_at": retry_at })),
                    now,
                )
            }
        }
    }

    /// A verification on the site settled an unknown outcome.
    pub fn rescued(
        job: &Job,
        found: bool,
        resolution: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Event {
        Event::at(
            identity,
            events::JOB_RESCUED,
            Severity::Info,
            format!(
                "job {} verified after an unknown outcome: {resolution}",
                job.id
            ),
            json!({ "job_id": job.id, "kind": job.kind.as_str(), "account": job.account, "found": found, "resolution": resolution }),
            now,
        )
    }

    /// The site answered 429: the account's lane pauses until `until`.
    pub fn breaker_opened(
        account: &str,
        kind: Kind,
        until: SystemTime,
        reason: &str,
        identity: &Identity,
        now: SystemTime,
    ) -> Event {
        Event::at(
            identity,
            events::RATE_LIMIT_DETECTED,
            Severity::Warning,
            format!(
                "{} lane{} paused by the site's rate limit until {}",
                kind.as_str(),
                for_account(account),
                format_ts(until)
            ),
            json!({ "kind": kind.as_str(), "account": account, "until": format_ts(until), "reason": reason }),
            now,
        )
    }

    /// A lookup could not search back to the attempt: the job stays uncertain.
    pub fn lookup_incomplete(
        job: &Job,
        reason: &str,
        retry_at: SystemTime,
        identity: &Identity,
        now: SystemTime,
    ) -> Event {
        Event::at(
            identity,
            events::JOB_LOOKUP_INCOMPLETE,
            Severity::Warning,
            format!(
                "job {} stays uncertain: the site could not be searched back to its attempt ({reason}); looked up again at {}",
                job.id,
                format_ts(retry_at)
            ),
            json!({ "job_id": job.id, "kind": job.kind.as_str(), "account": job.account, "reason": reason, "retry_at": format_ts(retry_at) }),
            now,
        )
    }

    /// The breaker's time has passed: the lane resumes.
    pub fn breaker_cleared(
        account: &str,
        kind: Kind,
        until: SystemTime,
        identity: &Identity,
        now: SystemTime,
    ) -> Event {
        Event::at(
            identity,
            events::RATE_LIMIT_CLEARED,
            Severity::Info,
            format!(
                "{} lane{} resumed after the site's rate limit",
                kind.as_str(),
                for_account(account)
            ),
            json!({ "kind": kind.as_str(), "account": account, "until": format_ts(until) }),
            now,
        )
    }

    fn for_account(account: &str) -> String {
        if account.is_empty() {
            String::new()
        } else {
            format!(" of {account}")
        }
    }
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub states: Vec<String>,
    pub kind: Option<Kind>,
    pub limit: Option<u32>,
    /// Only the jobs of this account (`Some("")`: the default account).
    pub account: Option<String>,
    /// Only the jobs whose text contains this (case-sensitive, the same on both stores).
    pub text: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: Kind, text: &str, to: Option<&str>) -> NewJob {
        NewJob {
            kind,
            text: text.into(),
            reply_to: to.map(str::to_string),
            account: String::new(),
            idempotency_key: None,
            not_before: SystemTime::UNIX_EPOCH,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    #[test]
    fn validation_rejects_what_cannot_be_published() {
        assert_eq!(
            new(Kind::Post, "  \n", None).validate(TextLimit::chars(280)),
            Err(JobError::EmptyText)
        );
        let long = "é".repeat(281);
        assert_eq!(
            new(Kind::Post, &long, None).validate(TextLimit::chars(280)),
            Err(JobError::TooLong {
                length: 281,
                limit: TextLimit::chars(280)
            })
        );
        assert!(new(Kind::Post, &"é".repeat(280), None)
            .validate(TextLimit::chars(280))
            .is_ok());
        assert_eq!(
            new(Kind::Reply, "hi", None).validate(TextLimit::chars(280)),
            Err(JobError::MissingTarget)
        );
        assert!(matches!(
            new(Kind::Reply, "hi", Some("not a url!")).validate(TextLimit::chars(280)),
            Err(JobError::BadTarget(_))
        ));
        assert!(matches!(
            new(Kind::Reply, "hi", Some("https://x.com/a/likes/1")).validate(TextLimit::chars(280)),
            Err(JobError::BadTarget(_))
        ));
    }

    #[test]
    fn invisible_texts_are_empty_and_weighted_limits_name_the_count() {
        assert_eq!(
            new(Kind::Post, "\u{200B}\u{200B}\u{FEFF}", None).validate(TextLimit::chars(280)),
            Err(JobError::EmptyText)
        );
        let weighted = TextLimit {
            max: 280,
            count: crate::length::Count::Weighted,
        };
        let err = new(Kind::Post, &"字".repeat(141), None)
            .validate(weighted)
            .expect_err("282 weighted");
        assert_eq!(
            err.to_string(),
            "the text is 282 long as the site counts (weighted length: most emoji and CJK count 2, a link 23); it allows at most 280"
        );
        assert!(new(Kind::Post, &"字".repeat(140), None)
            .validate(weighted)
            .is_ok());
    }

    #[test]
    fn reply_targets_normalise_to_the_post_id() {
        assert_eq!(
            parse_target("https://x.com/someone/status/1234567890?s=20"),
            Ok("1234567890".into())
        );
        assert_eq!(parse_target("https://x.com/i/status/42/"), Ok("42".into()));
        assert_eq!(
            parse_target("http://127.0.0.1:8080/status/p-7"),
            Ok("p-7".into())
        );
        assert_eq!(parse_target("123"), Ok("123".into()));
    }

    #[test]
    fn retry_backoff_grows_and_is_capped() {
        assert_eq!(retry_delay(1, 0.0), Duration::from_secs(30));
        assert_eq!(retry_delay(2, 0.0), Duration::from_secs(60));
        assert_eq!(retry_delay(3, 0.25), Duration::from_secs_f64(150.0));
        assert_eq!(retry_delay(30, 0.0), Duration::from_secs(3600));
    }
}
