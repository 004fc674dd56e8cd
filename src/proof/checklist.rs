//! The stability checklist (docs/architecture.md): what a [`Report`] must show for the daemon to
//! have behaved, each criterion with the evidence for its verdict. Every criterion can fail, and
//! an empty window fails ("no ticks") rather than passing vacuously.
//!
//! [`on_site_checklist`] is the same idea held against the site: what the store says was
//! published, compared with each account's timeline (`verify --on-site`).

use super::{run_of, PublishedRow, Report, StopRow, TickRow};
use crate::events;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long STOP may take, request to exit (SPEC §2).
pub const STOP_BOUND: Duration = Duration::from_secs(10);

/// What the checklist judges against that is the operator's to choose, not the spec's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The failure rate (percent of ticks) above which the run fails (`--max-failure-rate`).
    pub max_failure_pct: f64,
}

impl Thresholds {
    pub fn from_settings(settings: &crate::settings::Settings) -> Thresholds {
        Thresholds {
            max_failure_pct: settings.max_failure_pct,
        }
    }
}

impl Report {
    /// The stability checklist (docs/architecture.md), each criterion with its evidence. `lock`
    /// is what the lock file says now.
    pub fn checklist(&self, lock: &LockState, thresholds: &Thresholds) -> Vec<Criterion> {
        self.checklist_in(Some(lock), &self.published, thresholds)
    }

    /// The checklist of one executor of a fleet. `lock`: the local profile's lock, for the
    /// executor that runs on it (`None`: another machine's or profile's executor — its lock is
    /// not ours to read). `everyone`: what every executor published, so that a job published by
    /// this executor and another one fails here too.
    pub fn checklist_in(
        &self,
        lock: Option<&LockState>,
        everyone: &[PublishedRow],
        thresholds: &Thresholds,
    ) -> Vec<Criterion> {
        let mut out = Vec::new();
        let ticks = self.ticks.len();

        let not_one: Vec<&TickRow> = self.ticks.iter().filter(|t| t.pages != 1).collect();
        out.push(Criterion::new(
            "every tick has pages=1",
            ticks > 0 && not_one.is_empty(),
            if ticks == 0 {
                "no ticks in the window".to_string()
            } else if not_one.is_empty() {
                format!("{ticks} ticks, all pages=1")
            } else {
                format!(
                    "{} of {ticks} ticks with pages≠1, e.g. {}",
                    not_one.len(),
                    not_one
                        .iter()
                        .take(5)
                        .map(|t| format!(
                            "{} pages={}",
                            crate::clock::format_ts(t.created_at),
                            t.pages
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));

        let pid_sets: BTreeSet<&str> = self
            .ticks
            .iter()
            .map(|t| t.chrome_pids.as_str())
            .filter(|p| *p != "[]" && !p.is_empty())
            .collect();
        let runs: BTreeSet<&str> = self.ticks.iter().map(|t| t.run_id.as_str()).collect();
        let allowed = runs.len() as u64 + self.browser_losses + self.browser_restarts;
        out.push(Criterion::new(
            "managed browser pids stable (no growth)",
            ticks > 0 && pid_sets.len() as u64 <= allowed.max(1),
            format!(
                "{} distinct pid set(s) {} over {} run(s), {} browser loss(es), {} restart(s)",
                pid_sets.len(),
                pid_sets
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                runs.len(),
                self.browser_losses,
                self.browser_restarts
            ),
        ));

        let mut gaps = Vec::new();
        for pair in self.ticks.windows(2) {
            let (previous, next) = (&pair[0], &pair[1]);
            if previous.run_id != next.run_id {
                continue; // a restart, not a gap in one run's ticks
            }
            let Some(run) = self.runs.get(&next.run_id) else {
                continue;
            };
            let gap = next
                .created_at
                .duration_since(previous.created_at)
                .unwrap_or_default();
            let backoff = Duration::from_secs_f64(previous.backoff_seconds.max(0.0));
            // Start to start: the interval (or the backoff), the next tick's own run time up to
            // its cap, the jitter, and a little slack for a busy machine.
            let allowed = run.interval.max(backoff)
                + Duration::from_millis(next.duration_ms).min(run.tick_timeout)
                + Duration::from_secs(5)
                + run.interval / 10;
            if gap > allowed {
                gaps.push(format!(
                    "{} → {}: {:.1}s (allowed {:.1}s)",
                    crate::clock::format_ts(previous.created_at),
                    crate::clock::format_ts(next.created_at),
                    gap.as_secs_f64(),
                    allowed.as_secs_f64()
                ));
            }
        }
        // A run whose ticks stopped without an exit (killed, crashed, its machine lost) and that no
        // later run of this executor followed: silent up to the end of the window.
        if let Some(last) = self.ticks.last() {
            let exited = self.events.iter().any(|e| {
                run_of(e) == last.run_id
                    && matches!(e.event_type.as_str(), events::EXIT | events::CRASH)
            });
            if let (false, Some(run)) = (exited, self.runs.get(&last.run_id)) {
                let silent = self
                    .until
                    .duration_since(last.created_at)
                    .unwrap_or_default();
                let backoff = Duration::from_secs_f64(last.backoff_seconds.max(0.0));
                let allowed = run.interval.max(backoff)
                    + run.tick_timeout
                    + Duration::from_secs(5)
                    + run.interval / 10;
                if silent > allowed {
                    gaps.push(format!(
                        "silent since {} without an exit: {:.1}s (allowed {:.1}s)",
                        crate::clock::format_ts(last.created_at),
                        silent.as_secs_f64(),
                        allowed.as_secs_f64()
                    ));
                }
            }
        }
        out.push(Criterion::new(
            "ticks regular (no gap above interval + backoff + slack)",
            ticks > 1 && gaps.is_empty(),
            if ticks < 2 {
                format!("{ticks} tick(s): not enough to judge")
            } else if gaps.is_empty() {
                format!("{ticks} ticks, no gap")
            } else {
                format!(
                    "{} gap(s): {}",
                    gaps.len(),
                    gaps.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                )
            },
        ));

        out.push(Criterion::new(
            "no HARD CAP EXCEEDED",
            self.hard_caps.is_empty(),
            if self.hard_caps.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "{} at {}",
                    self.hard_caps.len(),
                    self.hard_caps
                        .iter()
                        .map(|t| crate::clock::format_ts(*t))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));

        if let Some(lock) = lock {
            let (lock_ok, lock_evidence) = match lock {
                LockState::HeldByLiveDaemon { pid } => {
                    (true, format!("daemon pid {pid} running, lock file present"))
                }
                LockState::Absent => (true, "no daemon running, no lock file".to_string()),
                LockState::Stale { pid } => (
                    false,
                    format!(
                        "lock file left by pid {pid}, which is not running: it did not exit cleanly"
                    ),
                ),
                LockState::Unreadable => (false, "lock file present but unreadable".to_string()),
            };
            out.push(Criterion::new(
                "lock present while running, gone after exit",
                lock_ok,
                lock_evidence,
            ));
        }

        let slow: Vec<String> = self
            .stops
            .iter()
            .filter_map(|stop| {
                let exit = stop.exit_at?;
                let total = exit.duration_since(stop.stop_at).unwrap_or_default()
                    + Duration::from_millis(stop.requested_ms_before_line);
                (total > STOP_BOUND)
                    .then(|| format!("run {} took {:.1}s", stop.run_id, total.as_secs_f64()))
            })
            .collect();
        let never: Vec<&StopRow> = self
            .stops
            .iter()
            .filter(|s| {
                s.exit_at.is_none()
                    && matches!(lock, Some(LockState::Absent | LockState::Stale { .. }))
            })
            .collect();
        out.push(Criterion::new(
            "STOP honoured within 10 s when used",
            slow.is_empty() && never.is_empty(),
            if self.stops.is_empty() {
                "STOP not used in the window".to_string()
            } else if slow.is_empty() && never.is_empty() {
                let worst = self
                    .stops
                    .iter()
                    .filter_map(|s| {
                        Some(
                            s.exit_at?.duration_since(s.stop_at).unwrap_or_default()
                                + Duration::from_millis(s.requested_ms_before_line),
                        )
                    })
                    .max()
                    .unwrap_or_default();
                format!(
                    "{} stop(s), slowest {:.2}s from request to exit",
                    self.stops.len(),
                    worst.as_secs_f64()
                )
            } else {
                format!(
                    "{}{}",
                    slow.join("; "),
                    if never.is_empty() {
                        String::new()
                    } else {
                        format!("; {} stop(s) without an exit event", never.len())
                    }
                )
            },
        ));

        out.push(failure_rate(self, thresholds.max_failure_pct));

        // Counted over everyone's publications, for the jobs and posts this report's executor
        // published: a job that two executors both published fails for each of them.
        let ours_jobs: BTreeSet<i64> = self.published.iter().map(|r| r.job_id).collect();
        let ours_posts: BTreeSet<&str> = self
            .published
            .iter()
            .filter_map(|r| r.post_id.as_deref())
            .collect();
        let mut by_job: BTreeMap<i64, usize> = BTreeMap::new();
        let mut by_post: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
        for row in everyone {
            if ours_jobs.contains(&row.job_id) {
                *by_job.entry(row.job_id).or_default() += 1;
            }
            if let Some(post) = row.post_id.as_deref().filter(|p| ours_posts.contains(p)) {
                by_post.entry(post).or_default().insert(row.job_id);
            }
        }
        let twice: Vec<String> = by_job
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(job, n)| format!("job {job} published {n} times"))
            .collect();
        let shared: Vec<String> = by_post
            .iter()
            .filter(|(_, jobs)| jobs.len() > 1)
            .map(|(post, jobs)| format!("post {post} claimed by jobs {jobs:?}"))
            .collect();
        out.push(Criterion::new(
            "no job published twice",
            twice.is_empty() && shared.is_empty(),
            if twice.is_empty() && shared.is_empty() {
                format!("{} published, each once", self.published.len())
            } else {
                [twice, shared].concat().join("; ")
            },
        ));
        out
    }
}

/// The share of failed ticks against `max_pct`: above it fails, and so does a window with no
/// ticks (a rate of nothing proves nothing). Compared unrounded: 5.004 % is above 5 %.
fn failure_rate(report: &Report, max_pct: f64) -> Criterion {
    let (total, failed, pct) = report.failure_rate();
    let above = failed as f64 * 100.0 > max_pct * total as f64;
    Criterion::new(
        "failure rate within --max-failure-rate",
        total > 0 && !above,
        if total == 0 {
            "no ticks in the window".to_string()
        } else {
            format!(
                "{failed} of {total} ticks failed ({pct:.2}%), {} the {max_pct}% threshold",
                if above { "above" } else { "within" }
            )
        },
    )
}

/// What the lock file says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    HeldByLiveDaemon { pid: u32 },
    Absent,
    Stale { pid: u32 },
    Unreadable,
}

impl LockState {
    pub fn read(path: &std::path::Path) -> LockState {
        if !path.exists() {
            return LockState::Absent;
        }
        match crate::lock::LockOwner::read(path) {
            Some(owner) if owner.is_alive() => LockState::HeldByLiveDaemon { pid: owner.pid },
            Some(owner) => LockState::Stale { pid: owner.pid },
            None => LockState::Unreadable,
        }
    }
}

/// One checklist line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub name: &'static str,
    pub pass: bool,
    pub evidence: String,
}

impl Criterion {
    fn new(name: &'static str, pass: bool, evidence: String) -> Criterion {
        Criterion {
            name,
            pass,
            evidence,
        }
    }
}

/// What the site shows, compared with what the store says was published (`verify --on-site`):
/// `jobs` are the window's succeeded jobs, `timelines` each account's timeline back to the
/// window's start, `shows(shown, typed)` the site definition's text comparison.
///
/// A post is matched to a job by the id the site gave it, else by its text as the site shows it.
/// Fails on a job whose post is on its account's timeline twice, a job's post on another
/// account's timeline (one that no job of that account explains), and a job whose post is
/// missing — or cannot be proven there, when the timeline could not be read back far enough.
pub fn on_site_checklist(
    jobs: &[crate::jobs::Job],
    timelines: &BTreeMap<String, crate::sites::engine::Timeline>,
    shows: impl Fn(&str, &str) -> bool,
) -> Vec<Criterion> {
    use crate::jobs::JobState;
    let post_id = |job: &crate::jobs::Job| match &job.state {
        JobState::Succeeded { post_id, .. } => post_id.clone(),
        _ => None,
    };
    let matches = |job: &crate::jobs::Job, post: &crate::sites::engine::SitePost| match (
        post_id(job),
        &post.id,
    ) {
        (Some(ours), Some(theirs)) if ours == *theirs => true,
        _ => shows(&post.text, &job.text),
    };
    let mut twice = Vec::new();
    let mut elsewhere = Vec::new();
    let mut missing = Vec::new();
    for job in jobs {
        let own = timelines.get(&job.account);
        let found = own.map_or(0, |t| t.posts.iter().filter(|p| matches(job, p)).count());
        if found > 1 {
            twice.push(format!(
                "job {} ({:?}) is on {}'s timeline {found} times",
                job.id,
                crate::tick::one_line(&job.text),
                job.account
            ));
        }
        if found == 0 {
            match own.and_then(|t| t.incomplete.as_deref()) {
                _ if own.is_none() => missing.push(format!(
                    "job {}: {}'s timeline was not read",
                    job.id, job.account
                )),
                Some(why) => missing.push(format!(
                    "job {} not found, and {}'s timeline could not prove it absent: {why}",
                    job.id, job.account
                )),
                None => missing.push(format!(
                    "job {} ({:?}) is not on {}'s timeline",
                    job.id,
                    crate::tick::one_line(&job.text),
                    job.account
                )),
            }
        }
        for (account, timeline) in timelines {
            if *account == job.account {
                continue;
            }
            let theirs: Vec<&crate::jobs::Job> =
                jobs.iter().filter(|j| j.account == *account).collect();
            let unexplained = timeline
                .posts
                .iter()
                .filter(|p| matches(job, p) && !theirs.iter().any(|j| matches(j, p)))
                .count();
            if unexplained > 0 {
                elsewhere.push(format!(
                    "job {} of {} ({:?}) is on {account}'s timeline",
                    job.id,
                    job.account,
                    crate::tick::one_line(&job.text)
                ));
            }
        }
    }
    let evidence = |failures: &[String], ok: String| {
        if failures.is_empty() {
            ok
        } else {
            failures
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
                + &if failures.len() > 5 {
                    format!(" (and {} more)", failures.len() - 5)
                } else {
                    String::new()
                }
        }
    };
    let accounts = timelines.len();
    vec![
        Criterion::new(
            "on the site: no post twice",
            twice.is_empty(),
            evidence(
                &twice,
                format!(
                    "{} published job(s), each once on its account's timeline",
                    jobs.len()
                ),
            ),
        ),
        Criterion::new(
            "on the site: every post under its own account",
            elsewhere.is_empty(),
            evidence(&elsewhere, format!("{accounts} account timeline(s) read")),
        ),
        Criterion::new(
            "on the site: every published job is there",
            missing.is_empty(),
            evidence(&missing, format!("all {} found", jobs.len())),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// A window of `total` ticks, `failed` of them with an error.
    fn report(total: usize, failed: usize) -> Report {
        let tick = |n: usize| TickRow {
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(n as u64),
            run_id: "run".into(),
            pages: 1,
            chrome_pids: "[1]".into(),
            posting_ready: 0,
            posting_attempts: 0,
            reply_ready: 0,
            reply_attempts: 0,
            backoff_seconds: 0.0,
            duration_ms: 5,
            last_error: (n < failed).then(|| "browser lost".to_string()),
        };
        Report {
            since: SystemTime::UNIX_EPOCH,
            until: SystemTime::UNIX_EPOCH + Duration::from_secs(total as u64),
            ticks: (0..total).map(tick).collect(),
            published: Vec::new(),
            uncertain_jobs: Vec::new(),
            dead_jobs: Vec::new(),
            strays_closed: 0,
            browser_losses: 0,
            browser_restarts: 0,
            hard_caps: Vec::new(),
            stops: Vec::new(),
            runs: Default::default(),
            events: Vec::new(),
        }
    }

    #[test]
    fn the_failure_rate_fails_above_its_threshold_and_passes_at_or_below() {
        let judged = |total, failed, max| failure_rate(&report(total, failed), max);
        // 1 of 20 is exactly 5 %: at the threshold passes, a hair above fails.
        assert!(judged(20, 1, 5.0).pass);
        assert!(!judged(20, 1, 4.99).pass);
        assert!(!judged(5, 1, 5.0).pass, "20 % is not within 5 %");
        assert!(judged(5, 1, 20.0).pass);
        assert!(
            judged(5, 0, 0.0).pass,
            "0 % allows no failed tick, and there is none"
        );
        assert!(!judged(1000, 1, 0.0).pass);
        let above = judged(5, 1, 5.0);
        assert_eq!(
            above.evidence,
            "1 of 5 ticks failed (20.00%), above the 5% threshold"
        );
        assert_eq!(
            judged(20, 1, 5.0).evidence,
            "1 of 20 ticks failed (5.00%), within the 5% threshold"
        );
        let empty = judged(0, 0, 100.0);
        assert!(!empty.pass, "no ticks prove nothing");
        assert_eq!(empty.evidence, "no ticks in the window");
    }
}
