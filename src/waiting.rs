//! "Why is it waiting?": for each lane of an account with due jobs, what holds them back and
//! when they will go — said the same by `executor status`, `executor jobs show` and the UI.
//!
//! Computed in one place, from the store only, so that it holds for any executor of the fleet
//! and from any machine: [`read`] gathers the facts (due counts, recent actions, breakers,
//! pauses, the registry with each executor's registered [`crate::fleet::Pace`] and last tick), and
//! [`explain`] — a plain function, unit-tested without a database — turns them into causes.
//! The rules are the daemon's own, not copies: the hourly limit and the gap are
//! [`Limits::hourly_until`] and [`Limits::gap_until`] (which the claim combines), the breaker
//! is [`crate::jobs::breaker_open`], a pause is [`crate::pauses::blocking`], the backoff and the
//! session's verdict (login wall, account mismatch) are what the executor's last tick recorded.
//!
//! A cause's `until` is when it stops holding; `None` means it waits for someone (an operator
//! to resume, to log in). The lane goes at the latest `until` of its causes, at its next tick;
//! a lane with nothing holding it goes at its executor's next tick.

use crate::clock::format_ts;
use crate::fleet::{FleetMember, Health};
use crate::jobs::{Job, JobState, Kind, Limits, RecentActions};
use crate::pauses::Pause;
use crate::store::{Store, StoreError};
use crate::tick::Blocked;
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// What holds a due job back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An operator paused the lane or the account (`executor pause`).
    Paused,
    /// No live executor serves the account.
    NoExecutor,
    /// The executor's last session check found a login wall.
    LoginWall,
    /// The executor's browser is logged in as another account.
    AccountMismatch,
    /// The executor's last tick failed: it backs off before the next one.
    Backoff,
    /// The site answered 429: the lane's breaker is open.
    Breaker,
    /// The lane has used its actions of the rolling hour.
    HourlyLimit,
    /// The account acted less than the minimum gap ago.
    MinimumGap,
    /// The job itself is not due yet (`--at`, or its retry time after a failure).
    NotBefore,
}

/// One reason, when it stops holding (`None`: when someone acts), and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub reason: Reason,
    #[serde(serialize_with = "time_or_null")]
    pub until: Option<SystemTime>,
    pub message: String,
}

/// One lane of one account: its due jobs, what holds them, when the next one goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub account: String,
    #[serde(serialize_with = "kind_name")]
    pub kind: Kind,
    pub due: u64,
    /// Everything that holds the lane now (empty: nothing does).
    pub reasons: Vec<Cause>,
    /// When the lane's next job goes: at the next tick after the last `until`; `None` while a
    /// reason waits for someone, or when no executor is known.
    #[serde(serialize_with = "time_or_null")]
    pub goes_at: Option<SystemTime>,
}

impl Waiting {
    /// The lane in one sentence, as `executor status` and the dashboard say it: `2 jobs due
    /// for the default account wait; the next one goes at 2026-12-07T14:02:00.000Z`. The
    /// reasons follow it, one [`Cause::message`] each.
    pub fn headline(&self) -> String {
        let account = account_words(&self.account);
        let goes = match self.goes_at {
            Some(at) => format!("the next one goes at {}", format_ts(at)),
            None => "the next one waits for someone".to_string(),
        };
        let (jobs, verb) = match self.due {
            1 => ("1 job".to_string(), "waits"),
            n => (format!("{n} jobs"), "wait"),
        };
        if self.reasons.is_empty() {
            format!("{jobs} due for {account}: nothing holds them back; {goes}")
        } else {
            format!("{jobs} due for {account} {verb}; {goes}")
        }
    }
}

fn time_or_null<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_ts(*t)),
        None => s.serialize_none(),
    }
}

fn kind_name<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// What the store says about one lane of the account.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneFacts {
    pub kind: Kind,
    pub due: u64,
    pub recent: RecentActions,
    /// The breaker as recorded (it may have expired).
    pub breaker: Option<SystemTime>,
}

/// Everything [`explain`] needs, as read from the store at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub account: String,
    pub now: SystemTime,
    pub lanes: Vec<LaneFacts>,
    pub pauses: Vec<Pause>,
    /// The registry (every account's executors; only the account's are looked at).
    pub executors: Vec<FleetMember>,
}

/// How long an executor that registered no pace may be silent before it counts as dead: the
/// defaults' (a 60 s tick: a 180 s lease, plus a 300 s tick cap).
const DEFAULT_SILENCE: Duration = Duration::from_secs(480);

/// How long an executor may be silent before it counts as dead: its account lease's time to
/// live (renewed every tick) plus the longest a tick may run, as `executor fleet` says.
fn silence(pace: &crate::fleet::Pace) -> Duration {
    crate::holding::lease_ttl(pace.tick_interval()) + Duration::from_millis(pace.tick_timeout_ms)
}

/// The executor whose state decides for the account: the live holder of its lease, else any
/// live executor of it; `Err(last)`: none lives, `last` is the one heard from last (if any).
fn serving(facts: &Facts) -> Result<&FleetMember, Option<&FleetMember>> {
    let ours = || {
        facts
            .executors
            .iter()
            .filter(|member| member.account == facts.account)
    };
    let alive = |member: &&FleetMember| {
        let silence = member.pace.map_or(DEFAULT_SILENCE, |pace| silence(&pace));
        matches!(
            member.health(facts.now, silence),
            Health::Active | Health::Standby
        )
    };
    let holds = |member: &&FleetMember| {
        member
            .lease
            .as_ref()
            .is_some_and(|(holder, until)| *holder == member.id && *until > facts.now)
    };
    ours()
        .filter(alive)
        .find(holds)
        .or_else(|| ours().filter(alive).max_by_key(|m| m.heartbeat_at))
        .ok_or_else(|| ours().max_by_key(|m| m.heartbeat_at))
}

/// A time in a sentence: the clock time (UTC) within a day of `now`, the full time otherwise.
fn when(t: SystemTime, now: SystemTime) -> String {
    let full = format_ts(t);
    let near = t
        .duration_since(now)
        .or_else(|_| now.duration_since(t))
        .is_ok_and(|d| d < Duration::from_secs(20 * 3600));
    match (near, full.get(11..19)) {
        (true, Some(clock)) => format!("{clock} UTC"),
        _ => full,
    }
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn account_words(account: &str) -> String {
    if account.is_empty() {
        "the default account".to_string()
    } else {
        format!("account {}", crate::quote::quoted(account))
    }
}

/// Why each lane of `facts.account` waits: one [`Waiting`] per lane, in lane order.
pub fn explain(facts: &Facts) -> Vec<Waiting> {
    let serving = serving(facts);
    facts
        .lanes
        .iter()
        .map(|lane| explain_lane(facts, lane, serving))
        .collect()
}

fn explain_lane(
    facts: &Facts,
    lane: &LaneFacts,
    serving: Result<&FleetMember, Option<&FleetMember>>,
) -> Waiting {
    let now = facts.now;
    let mut reasons = Vec::new();
    if lane.due > 0 {
        reasons.extend(pause_cause(facts, lane.kind));
        match serving {
            Ok(member) => reasons.extend(executor_causes(member, now)),
            Err(last) => reasons.push(no_executor(&facts.account, last, now)),
        }
        if let Some(until) = crate::jobs::breaker_open(lane.breaker, now) {
            reasons.push(Cause {
                reason: Reason::Breaker,
                until: Some(until),
                message: format!(
                    "the site answered HTTP 429: the {} lane of {} rests until {}",
                    lane.kind.as_str(),
                    account_words(&facts.account),
                    when(until, now)
                ),
            });
        }
        let pace = serving.map_or_else(|last| last.and_then(|m| m.pace), |m| m.pace);
        if let Some(pace) = pace {
            reasons.extend(limit_causes(pace.limits(lane.kind), lane, now));
        }
    }
    let goes_at = goes_at(&reasons, serving.ok(), lane.due, now);
    Waiting {
        account: facts.account.clone(),
        kind: lane.kind,
        due: lane.due,
        reasons,
        goes_at,
    }
}

fn pause_cause(facts: &Facts, kind: Kind) -> Option<Cause> {
    let pause = crate::pauses::blocking(&facts.pauses, &facts.account, kind)?;
    Some(Cause {
        reason: Reason::Paused,
        until: None,
        message: format!(
            "{}; nothing new is claimed until `{}`",
            pause.describe(),
            pause.scope.resume_command()
        ),
    })
}

fn no_executor(account: &str, last: Option<&FleetMember>, now: SystemTime) -> Cause {
    let message = match last {
        Some(member) => format!(
            "no executor is running for {}: {} was last heard from at {} ({})",
            account_words(account),
            member.id,
            when(member.heartbeat_at, now),
            member.state.as_str()
        ),
        None => format!(
            "no executor has run for {} on this store yet: start `executor daemon`",
            account_words(account)
        ),
    };
    Cause {
        reason: Reason::NoExecutor,
        until: None,
        message,
    }
}

/// What the serving executor's last tick recorded: the session's verdict, and its backoff.
fn executor_causes(member: &FleetMember, now: SystemTime) -> Vec<Cause> {
    let tick = &member.last_tick;
    let mut causes = Vec::new();
    let next_check = member
        .last_tick_at
        .zip(member.pace)
        .map(|(at, pace)| {
            format!(
                " (checked again at its next tick, about {})",
                when(at + pace.tick_interval(), now)
            )
        })
        .unwrap_or_default();
    match tick
        .get("blocked")
        .cloned()
        .and_then(|b| serde_json::from_value::<Blocked>(b).ok())
    {
        Some(Blocked::LoginWall) => causes.push(Cause {
            reason: Reason::LoginWall,
            until: None,
            message: format!(
                "{}'s browser shows the site's login wall: log in again (`executor chrome --headed`, or `executor login --cookies FILE`){next_check}",
                member.id
            ),
        }),
        Some(Blocked::AccountMismatch { problem }) => causes.push(Cause {
            reason: Reason::AccountMismatch,
            until: None,
            message: format!(
                "{}: {problem}; log its browser in as the right account{next_check}",
                member.id
            ),
        }),
        None => {}
    }
    let failed = tick.get("failed").and_then(|f| f.as_bool()) == Some(true);
    let backoff = tick
        .get("backoff_seconds")
        .and_then(|b| b.as_f64())
        .filter(|b| b.is_finite() && *b > 0.0)
        .map(Duration::from_secs_f64);
    if let (true, Some(backoff), Some(at)) = (failed, backoff, member.last_tick_at) {
        let until = at + backoff;
        if until > now {
            let error = tick
                .get("last_error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error");
            causes.push(Cause {
                reason: Reason::Backoff,
                until: Some(until),
                message: format!(
                    "{}'s last tick failed ({}); it backs off {} and ticks again at {}",
                    member.id,
                    crate::quote::single_line(error, 300),
                    crate::settings::format_duration(backoff),
                    when(until, now)
                ),
            });
        }
    }
    causes
}

/// The rate limits, by the claim's own rules (without the claim's random jitter: the earliest
/// time; the claim may add up to a quarter of the gap).
fn limit_causes(limits: Limits, lane: &LaneFacts, now: SystemTime) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(until) = limits.hourly_until(&lane.recent, now) {
        let per_hour = limits.per_hour.unwrap_or(0);
        let message = if per_hour == 0 {
            format!(
                "the {} lane allows 0 per hour (a limit of 0 pauses it)",
                lane.kind.as_str()
            )
        } else {
            format!(
                "{} {} this hour, over the limit of {per_hour} per hour; next slot {}",
                ordinal(lane.recent.lane_in_last_hour + 1),
                lane.kind.as_str(),
                when(until, now)
            )
        };
        causes.push(Cause {
            reason: Reason::HourlyLimit,
            until: Some(until),
            message,
        });
    }
    if let (Some(until), Some(last)) = (
        limits.gap_until(&lane.recent, Duration::ZERO, now),
        lane.recent.latest_any_lane,
    ) {
        causes.push(Cause {
            reason: Reason::MinimumGap,
            until: Some(until),
            message: format!(
                "minimum gap of {} after the account's last action at {}; next slot {} (plus up to {} of jitter)",
                crate::settings::format_duration(limits.min_gap),
                when(last, now),
                when(until, now),
                crate::settings::format_duration(limits.min_gap / 4)
            ),
        });
    }
    causes
}

/// The latest `until` (then its next tick); `None` while a cause waits for someone. With no
/// cause, the executor's next tick (or now, if it is late).
fn goes_at(
    causes: &[Cause],
    serving: Option<&FleetMember>,
    due: u64,
    now: SystemTime,
) -> Option<SystemTime> {
    if due == 0 {
        return None;
    }
    if !causes.is_empty() {
        return causes
            .iter()
            .map(|cause| cause.until)
            .collect::<Option<Vec<_>>>()
            .and_then(|untils| untils.into_iter().max());
    }
    let member = serving?;
    let next_tick = member
        .last_tick_at
        .zip(member.pace)
        .map(|(at, pace)| at + pace.tick_interval());
    Some(next_tick.filter(|t| *t > now).unwrap_or(now))
}

/// Why `job` waits (empty: it does not — it is in flight, finished, or goes at the next tick),
/// given its lane's [`Waiting`] at `now`.
pub fn explain_job(job: &Job, lane: &Waiting, now: SystemTime) -> Vec<Cause> {
    let own = match &job.state {
        JobState::Queued | JobState::Failed { .. } if job.not_before <= now => None,
        JobState::Queued => Some(Cause {
            reason: Reason::NotBefore,
            until: Some(job.not_before),
            message: format!("not before {} (as enqueued)", when(job.not_before, now)),
        }),
        JobState::Failed { error, retry_at } => Some(Cause {
            reason: Reason::NotBefore,
            until: Some(*retry_at),
            message: format!(
                "failed before publishing ({}); retried at {}",
                crate::quote::single_line(error, 300),
                when(*retry_at, now)
            ),
        }),
        _ => return Vec::new(),
    };
    let Some(own) = own else {
        return lane.reasons.clone();
    };
    // The lane's reasons that still hold when the job's own time comes.
    let after = own.until;
    let mut causes = vec![own];
    causes.extend(
        lane.reasons
            .iter()
            .filter(|cause| cause.until.is_none() || cause.until > after)
            .cloned(),
    );
    causes
}

/// The facts about `account` at `now`, from the store.
pub async fn read(store: &dyn Store, account: &str, now: SystemTime) -> Result<Facts, StoreError> {
    Ok(Facts {
        account: account.to_string(),
        now,
        lanes: read_lanes(store, account, now).await?,
        pauses: store.pause_list().await?,
        executors: store.fleet().await?,
    })
}

async fn read_lanes(
    store: &dyn Store,
    account: &str,
    now: SystemTime,
) -> Result<Vec<LaneFacts>, StoreError> {
    let mut lanes = Vec::with_capacity(Kind::ALL.len());
    for kind in Kind::ALL {
        lanes.push(LaneFacts {
            kind,
            due: store.job_count_due(kind, Some(account), now).await?,
            recent: store.lane_recent_actions(account, kind, now).await?,
            breaker: store.lane_breaker(account, kind).await?,
        });
    }
    Ok(lanes)
}

/// Why the lanes of every account wait at `now` (the fleet's view, as the dashboard shows
/// it): each account that has due jobs or a registered executor, in order, both lanes each.
pub async fn why_every_account(
    store: &dyn Store,
    now: SystemTime,
) -> Result<Vec<Waiting>, StoreError> {
    let pauses = store.pause_list().await?;
    let executors = store.fleet().await?;
    let mut accounts: Vec<String> = store.job_due_accounts(now).await?;
    accounts.extend(executors.iter().map(|member| member.account.clone()));
    accounts.sort();
    accounts.dedup();
    let mut waiting = Vec::new();
    for account in accounts {
        let facts = Facts {
            lanes: read_lanes(store, &account, now).await?,
            account,
            now,
            pauses: pauses.clone(),
            executors: executors.clone(),
        };
        waiting.extend(explain(&facts));
    }
    Ok(waiting)
}

/// Why each lane of `account` waits at `now`: [`read`], then [`explain`].
pub async fn why(
    store: &dyn Store,
    account: &str,
    now: SystemTime,
) -> Result<Vec<Waiting>, StoreError> {
    Ok(explain(&read(store, account, now).await?))
}

/// Why `job` waits at `now` (see [`explain_job`]).
pub async fn why_job(
    store: &dyn Store,
    job: &Job,
    now: SystemTime,
) -> Result<Vec<Cause>, StoreError> {
    let lanes = why(store, &job.account, now).await?;
    Ok(lanes
        .iter()
        .find(|lane| lane.kind == job.kind)
        .map(|lane| explain_job(job, lane, now))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{ExecutorState, Pace};
    use crate::pauses::Scope;
    use serde_json::json;

    fn at(seconds: u64) -> SystemTime {
        crate::clock::from_unix_ms(1_800_000_000_000) + Duration::from_secs(seconds)
    }

    const PACE: Pace = Pace {
        posts_per_hour: 2,
        replies_per_hour: 4,
        min_gap_ms: 60_000,
        tick_interval_ms: 60_000,
        tick_timeout_ms: 300_000,
    };

    fn member(last_tick: serde_json::Value, last_tick_at: SystemTime) -> FleetMember {
        FleetMember {
            id: "exec-1".into(),
            account: "alice".into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            run_id: "r".into(),
            started_at: at(0),
            heartbeat_at: last_tick_at,
            last_tick_at: Some(last_tick_at),
            state: ExecutorState::Active,
            last_tick,
            lease: Some(("exec-1".into(), last_tick_at + Duration::from_secs(180))),
            pace: Some(PACE),
        }
    }

    fn facts(now: SystemTime, post: LaneFacts, executors: Vec<FleetMember>) -> Facts {
        Facts {
            account: "alice".into(),
            now,
            lanes: vec![
                post,
                LaneFacts {
                    kind: Kind::Reply,
                    due: 0,
                    recent: RecentActions::default(),
                    breaker: None,
                },
            ],
            pauses: Vec::new(),
            executors,
        }
    }

    fn quiet_tick() -> serde_json::Value {
        json!({ "failed": false, "backoff_seconds": 0, "last_error": null, "blocked": null })
    }

    fn post_lane(due: u64, recent: RecentActions) -> LaneFacts {
        LaneFacts {
            kind: Kind::Post,
            due,
            recent,
            breaker: None,
        }
    }

    fn reasons(waiting: &Waiting) -> Vec<Reason> {
        waiting.reasons.iter().map(|c| c.reason).collect()
    }

    #[test]
    fn a_lane_at_its_hourly_limit_says_which_action_and_the_next_slot() {
        let now = at(3000);
        let recent = RecentActions {
            lane_in_last_hour: 2,
            lane_oldest_in_hour: Some(at(1000)),
            latest_any_lane: Some(at(2000)),
        };
        let lanes = explain(&facts(
            now,
            post_lane(3, recent),
            vec![member(quiet_tick(), at(2990))],
        ));
        assert_eq!(reasons(&lanes[0]), [Reason::HourlyLimit]);
        let cause = &lanes[0].reasons[0];
        assert_eq!(cause.until, Some(at(4600)));
        assert!(
            cause
                .message
                .starts_with("3rd post this hour, over the limit of 2 per hour; next slot "),
            "{}",
            cause.message
        );
        assert_eq!(lanes[0].goes_at, Some(at(4600)));
        assert!(
            lanes[1].reasons.is_empty(),
            "no due replies, nothing to explain"
        );
        let text = serde_json::to_value(&lanes[0]).expect("json");
        assert_eq!(text["kind"], "post");
        assert_eq!(text["reasons"][0]["reason"], "hourly_limit");
        assert_eq!(text["reasons"][0]["until"], format_ts(at(4600)));
    }

    #[test]
    fn the_minimum_gap_and_the_breaker_hold_until_their_times() {
        let now = at(3000);
        let recent = RecentActions {
            lane_in_last_hour: 1,
            lane_oldest_in_hour: Some(at(2970)),
            latest_any_lane: Some(at(2970)),
        };
        let mut lane = post_lane(1, recent);
        lane.breaker = Some(at(3900));
        let lanes = explain(&facts(now, lane, vec![member(quiet_tick(), at(2990))]));
        assert_eq!(reasons(&lanes[0]), [Reason::Breaker, Reason::MinimumGap]);
        assert_eq!(lanes[0].reasons[0].until, Some(at(3900)));
        assert_eq!(lanes[0].reasons[1].until, Some(at(3030)));
        assert_eq!(lanes[0].goes_at, Some(at(3900)), "the last of them");
        // An expired breaker no longer holds.
        let mut lane = post_lane(1, RecentActions::default());
        lane.breaker = Some(at(2000));
        let lanes = explain(&facts(now, lane, vec![member(quiet_tick(), at(2990))]));
        assert!(lanes[0].reasons.is_empty());
        assert_eq!(lanes[0].goes_at, Some(at(3050)), "the executor's next tick");
    }

    #[test]
    fn the_last_tick_says_login_wall_mismatch_and_backoff() {
        let now = at(3000);
        let wall =
            json!({ "failed": false, "backoff_seconds": 0, "blocked": { "reason": "login_wall" } });
        let lanes = explain(&facts(
            now,
            post_lane(1, RecentActions::default()),
            vec![member(wall, at(2990))],
        ));
        assert_eq!(reasons(&lanes[0]), [Reason::LoginWall]);
        assert_eq!(lanes[0].goes_at, None, "waits for a login");
        let mismatch = json!({ "failed": false, "blocked": { "reason": "account_mismatch", "problem": "logged in as \"bob\"" } });
        let lanes = explain(&facts(
            now,
            post_lane(1, RecentActions::default()),
            vec![member(mismatch, at(2990))],
        ));
        assert_eq!(reasons(&lanes[0]), [Reason::AccountMismatch]);
        assert!(lanes[0].reasons[0].message.contains("logged in as \"bob\""));
        let failed =
            json!({ "failed": true, "backoff_seconds": 120, "last_error": "CDP unreachable" });
        let lanes = explain(&facts(
            now,
            post_lane(1, RecentActions::default()),
            vec![member(failed, at(2990))],
        ));
        assert_eq!(reasons(&lanes[0]), [Reason::Backoff]);
        assert_eq!(lanes[0].reasons[0].until, Some(at(3110)));
        assert!(lanes[0].reasons[0].message.contains("CDP unreachable"));
    }

    #[test]
    fn a_pause_and_a_missing_executor_wait_for_someone() {
        let now = at(3000);
        let mut paused = facts(now, post_lane(2, RecentActions::default()), vec![]);
        paused.pauses.push(Pause {
            scope: Scope {
                kind: Some(Kind::Post),
                account: None,
            },
            reason: "checking the account".into(),
            by: "op@host".into(),
            since: at(100),
        });
        let lanes = explain(&paused);
        assert_eq!(reasons(&lanes[0]), [Reason::Paused, Reason::NoExecutor]);
        assert!(lanes[0].reasons[0]
            .message
            .contains("executor resume --kind post"));
        assert_eq!(lanes[0].goes_at, None);
        // An executor silent for longer than its lease and tick cap is not serving.
        let dead = member(quiet_tick(), at(1000));
        let lanes = explain(&facts(
            now,
            post_lane(1, RecentActions::default()),
            vec![dead],
        ));
        assert_eq!(reasons(&lanes[0]), [Reason::NoExecutor]);
        assert!(lanes[0].reasons[0]
            .message
            .contains("exec-1 was last heard from"));
    }

    #[test]
    fn a_job_not_due_yet_says_its_own_time_and_the_lane_reasons_that_outlast_it() {
        let now = at(3000);
        let recent = RecentActions {
            lane_in_last_hour: 2,
            lane_oldest_in_hour: Some(at(1000)),
            latest_any_lane: Some(at(2990)),
        };
        let lanes = explain(&facts(
            now,
            post_lane(1, recent),
            vec![member(quiet_tick(), at(2990))],
        ));
        let job = Job {
            id: 7,
            kind: Kind::Post,
            text: "t".into(),
            reply_to: None,
            account: "alice".into(),
            idempotency_key: None,
            not_before: at(3500),
            state: JobState::Queued,
            attempts: 0,
            max_attempts: 5,
            created_at: at(0),
            updated_at: at(0),
            attempted_at: None,
        };
        let causes = explain_job(&job, &lanes[0], now);
        let names: Vec<Reason> = causes.iter().map(|c| c.reason).collect();
        // The gap (until 3050) is over by 3500; the hourly limit (until 4600) is not.
        assert_eq!(names, [Reason::NotBefore, Reason::HourlyLimit]);
        let due = Job {
            not_before: at(10),
            ..job.clone()
        };
        assert_eq!(explain_job(&due, &lanes[0], now), lanes[0].reasons);
        let done = Job {
            state: JobState::Cancelled,
            ..job
        };
        assert!(explain_job(&done, &lanes[0], now).is_empty());
    }

    #[test]
    fn ordinals_read_as_english() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .iter()
            .map(|n| ordinal(*n))
            .collect();
        assert_eq!(
            words,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }
}
