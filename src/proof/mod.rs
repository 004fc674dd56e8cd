//! The proof (SPEC §6.3, §6.4): what the stored events say about a window of time, and
//! whether that shows the daemon behaved.
//!
//! [`Report::collect`] reads the events and jobs once; the three reports of the seed document
//! (recent ticks, page-count distribution, failure rate) and the extras (published posts,
//! uncertain and dead jobs, browser restarts, stray pages closed) are computed from them here,
//! in one place, so SQLite and PostgreSQL give the same answers by construction. On PostgreSQL
//! the seed's own SQL gives the same numbers (tested).
//!
//! The rest of the proof is built on that one read, each in its own room:
//! - [`checklist`]: the stability checklist (`Report::checklist`), every criterion able to fail,
//!   and the on-site comparison of what the store says was published with what the site shows;
//! - [`verdict`]: the checklist of every executor in scope, judged once, for `verify` to print
//!   and the HTML page to lead with;
//! - [`on_site`]: reading each account's timeline through the browser for that comparison;
//! - [`text`]: the report as `executor report` prints it, and as JSON;
//! - [`html`]: the self-contained HTML page of `report --html`.
//!
//! The commands (`cli/report.rs`, `cli/verify.rs`) only parse their flags and print.

pub mod checklist;
pub mod html;
pub mod on_site;
pub mod text;
pub mod verdict;

use crate::events::{self, Event};
use crate::jobs::JobQuery;
use crate::store::{EventQuery, Store, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

/// One tick, as the seed's "recent ticks" query shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TickRow {
    pub created_at: SystemTime,
    pub run_id: String,
    pub pages: i64,
    pub chrome_pids: String,
    pub posting_ready: i64,
    pub posting_attempts: i64,
    pub reply_ready: i64,
    pub reply_attempts: i64,
    pub backoff_seconds: f64,
    pub duration_ms: u64,
    pub last_error: Option<String>,
}

/// A published post or reply.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    pub created_at: SystemTime,
    /// The executor that recorded it.
    pub executor_id: String,
    pub job_id: i64,
    pub kind: String,
    /// The job's text, from the store (`None` if the job is gone).
    pub text: Option<String>,
    pub post_id: Option<String>,
    pub url: Option<String>,
}

/// Everything the reports and the checklist need, read once.
#[derive(Debug, Clone)]
pub struct Report {
    pub since: SystemTime,
    pub until: SystemTime,
    pub ticks: Vec<TickRow>,
    pub published: Vec<PublishedRow>,
    pub uncertain_jobs: Vec<(i64, String)>,
    pub dead_jobs: Vec<(i64, String)>,
    pub strays_closed: u64,
    pub browser_losses: u64,
    pub browser_restarts: u64,
    pub hard_caps: Vec<SystemTime>,
    pub stops: Vec<StopRow>,
    /// Per run: the tick interval, runtime cap and largest backoff it ran with.
    pub runs: HashMap<String, RunSettings>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StopRow {
    pub run_id: String,
    pub requested_ms_before_line: u64,
    pub stop_at: SystemTime,
    pub exit_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSettings {
    pub interval: Duration,
    pub tick_timeout: Duration,
    pub max_backoff: Duration,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn run_of(event: &Event) -> String {
    text(&event.event_data["run_id"])
}

/// The executor that recorded an event.
pub fn executor_of(event: &Event) -> String {
    text(&event.event_data["executor_id"])
}

/// Which executors a report or checklist looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every executor with events in the window.
    Window,
    /// One executor, by id.
    Executor(String),
    /// The executors registered for an account.
    Account(String),
    /// Every executor in the registry, and every one with events in the window: a registered
    /// executor that was silent through the window is judged too.
    Fleet,
}

impl Report {
    /// Reads the window `[since, now]`.
    pub async fn collect(store: &dyn Store, since: SystemTime) -> Result<Report, StoreError> {
        let events = store
            .event_list(&EventQuery {
                since: Some(since),
                ..Default::default()
            })
            .await?;
        Report::from_events(store, since, events).await
    }

    /// Reads the window `[since, now]` once and splits it by executor, as `scope` says: one
    /// report per executor (in id order), each made from that executor's events only.
    pub async fn collect_by_executor(
        store: &dyn Store,
        since: SystemTime,
        scope: &Scope,
    ) -> Result<Vec<(String, Report)>, StoreError> {
        let events = store
            .event_list(&EventQuery {
                since: Some(since),
                ..Default::default()
            })
            .await?;
        let registry = match scope {
            Scope::Account(_) | Scope::Fleet => store.fleet().await?,
            _ => Vec::new(),
        };
        let mut ids: BTreeSet<String> = match scope {
            Scope::Window => events.iter().map(executor_of).collect(),
            Scope::Executor(id) => BTreeSet::from([id.clone()]),
            Scope::Account(account) => registry
                .iter()
                .filter(|m| m.account == *account)
                .map(|m| m.id.clone())
                .collect(),
            Scope::Fleet => events
                .iter()
                .map(executor_of)
                .chain(registry.iter().map(|m| m.id.clone()))
                .collect(),
        };
        ids.retain(|id| !id.is_empty());
        let mut out = Vec::new();
        for id in ids {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| executor_of(e) == id)
                .cloned()
                .collect();
            out.push((id, Report::from_events(store, since, mine).await?));
        }
        Ok(out)
    }

    /// The report of `events` (already read for the window starting at `since`).
    async fn from_events(
        store: &dyn Store,
        since: SystemTime,
        events: Vec<Event>,
    ) -> Result<Report, StoreError> {
        let jobs_in = |state: &str| JobQuery {
            states: vec![state.to_string()],
            ..Default::default()
        };
        let summary = |job: &crate::jobs::Job| (job.id, crate::tick::one_line(&job.text));
        let uncertain_jobs = store
            .job_list(&jobs_in("uncertain"))
            .await?
            .iter()
            .map(summary)
            .collect();
        let dead_jobs = store
            .job_list(&jobs_in("dead"))
            .await?
            .iter()
            .map(summary)
            .collect();
        let mut report = Report {
            since,
            until: SystemTime::now(),
            ticks: Vec::new(),
            published: Vec::new(),
            uncertain_jobs,
            dead_jobs,
            strays_closed: 0,
            browser_losses: 0,
            browser_restarts: 0,
            hard_caps: Vec::new(),
            stops: Vec::new(),
            runs: HashMap::new(),
            events: Vec::new(),
        };
        let mut exits: HashMap<String, SystemTime> = HashMap::new();
        for event in &events {
            let data = &event.event_data;
            match event.event_type.as_str() {
                events::TICK => report.ticks.push(TickRow {
                    created_at: event.created_at,
                    run_id: run_of(event),
                    pages: data["pages"].as_i64().unwrap_or(0),
                    chrome_pids: text(&data["chrome_pids"]),
                    posting_ready: data["posting_ready"].as_i64().unwrap_or(0),
                    posting_attempts: data["posting_attempts"].as_i64().unwrap_or(0),
                    reply_ready: data["reply_ready"].as_i64().unwrap_or(0),
                    reply_attempts: data["reply_attempts"].as_i64().unwrap_or(0),
                    backoff_seconds: data["backoff_seconds"].as_f64().unwrap_or(0.0),
                    duration_ms: data["duration_ms"].as_u64().unwrap_or(0),
                    last_error: data["last_error"].as_str().map(str::to_string),
                }),
                events::POST_SUCCESS | events::REPLY_SUCCESS => {
                    report.published.push(PublishedRow {
                        created_at: event.created_at,
                        executor_id: executor_of(event),
                        job_id: data["job_id"].as_i64().unwrap_or(0),
                        kind: text(&data["kind"]),
                        text: None,
                        post_id: data["post_id"].as_str().map(str::to_string),
                        url: data["url"].as_str().map(str::to_string),
                    })
                }
                events::PAGE_CAP_ENFORCED => {
                    report.strays_closed += data["closed"].as_u64().unwrap_or(0)
                }
                events::BROWSER_LOST => report.browser_losses += 1,
                events::BROWSER_RECYCLED if data["browser_restarted"] == json!(true) => {
                    report.browser_restarts += 1
                }
                events::HARD_CAP_EXCEEDED => report.hard_caps.push(event.created_at),
                events::STOP => report.stops.push(StopRow {
                    run_id: run_of(event),
                    requested_ms_before_line: data["ms_since_request"].as_u64().unwrap_or(0),
                    stop_at: event.created_at,
                    exit_at: None,
                }),
                events::EXIT => {
                    exits.insert(run_of(event), event.created_at);
                }
                events::BOOT => {
                    let ms = |key: &str| Duration::from_millis(data[key].as_u64().unwrap_or(0));
                    let max_backoff = data["backoff_ms"]
                        .as_array()
                        .and_then(|list| list.iter().filter_map(Value::as_u64).max())
                        .map(Duration::from_millis)
                        .unwrap_or(Duration::from_secs(600));
                    report.runs.insert(
                        run_of(event),
                        RunSettings {
                            interval: ms("tick_interval_ms"),
                            tick_timeout: ms("tick_timeout_ms"),
                            max_backoff,
                        },
                    );
                }
                _ => {}
            }
        }
        // The events name the job; its text is the job's own.
        for row in &mut report.published {
            row.text = store.job_get(row.job_id).await?.map(|job| job.text);
        }
        for stop in &mut report.stops {
            stop.exit_at = exits.get(&stop.run_id).copied();
        }
        report.events = events;
        Ok(report)
    }

    /// The seed's "page count distribution": (pages, count, first seen, last seen).
    pub fn page_distribution(&self) -> Vec<(i64, usize, SystemTime, SystemTime)> {
        let mut rows: BTreeMap<i64, (usize, SystemTime, SystemTime)> = BTreeMap::new();
        for tick in &self.ticks {
            let row = rows
                .entry(tick.pages)
                .or_insert((0, tick.created_at, tick.created_at));
            row.0 += 1;
            row.1 = row.1.min(tick.created_at);
            row.2 = row.2.max(tick.created_at);
        }
        rows.into_iter()
            .map(|(pages, (n, first, last))| (pages, n, first, last))
            .collect()
    }

    /// The seed's "failure rate": (total ticks, failed ticks, percent, two decimals).
    pub fn failure_rate(&self) -> (usize, usize, f64) {
        let total = self.ticks.len();
        let failed = self.ticks.iter().filter(|t| t.last_error.is_some()).count();
        let pct = if total == 0 {
            0.0
        } else {
            (10000.0 * failed as f64 / total as f64).round() / 100.0
        };
        (total, failed, pct)
    }
}
