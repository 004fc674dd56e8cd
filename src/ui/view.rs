//! What the overview shows, read from the store in one place so that the HTML page and
//! `GET /api/overview` cannot disagree: the fleet (the same rows as `executor fleet --json`),
//! the queue by account and lane with the reasons its due jobs wait ([`crate::waiting`], as
//! `executor status` says them), the pauses in force, and the timeline of the last hours from
//! `system_events`.

use crate::events;
use crate::pauses::Pause;
use crate::store::{EventQuery, QueueCount, Store, StoreError};
use crate::waiting::Waiting;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The most events the timeline reads (the newest): a day of ticks every 2 s, several
/// executors' worth of a few hours.
const TIMELINE_EVENTS: u32 = 50_000;
/// How many columns the timeline has, whatever its span.
pub const TIMELINE_BUCKETS: usize = 36;

/// One lane of one account.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueRow {
    pub account: String,
    pub lane: &'static str,
    /// Queued or failed, and due now.
    pub due: u64,
    /// Queued or failed, not due yet (a scheduled time, or a retry's backoff).
    pub waiting: u64,
    /// When the first waiting job becomes due.
    pub waiting_until: Option<String>,
    /// Claimed or attempting: an executor holds it.
    pub in_flight: u64,
    pub uncertain: u64,
    pub dead: u64,
}

/// The queue by account and lane, from the store's counts.
pub fn queue_rows(counts: &[QueueCount]) -> Vec<QueueRow> {
    let mut rows: BTreeMap<(String, &'static str), (QueueRow, Option<SystemTime>)> =
        BTreeMap::new();
    for count in counts {
        let lane = count.kind.as_str();
        let (row, until) = rows
            .entry((count.account.clone(), lane))
            .or_insert_with(|| {
                (
                    QueueRow {
                        account: count.account.clone(),
                        lane,
                        ..QueueRow::default()
                    },
                    None,
                )
            });
        match (count.state.as_str(), count.due) {
            ("queued" | "failed", true) => row.due += count.count,
            ("queued" | "failed", false) => {
                row.waiting += count.count;
                *until = Some(until.map_or(count.earliest, |t| t.min(count.earliest)));
            }
            ("claimed" | "attempting", _) => row.in_flight += count.count,
            ("uncertain", _) => row.uncertain += count.count,
            ("dead", _) => row.dead += count.count,
            _ => {}
        }
    }
    rows.into_values()
        .map(|(mut row, until)| {
            row.waiting_until = until.map(crate::clock::format_ts);
            row
        })
        .collect()
}

/// One column of the timeline.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub start: String,
    pub ticks: u64,
    /// The most page targets any tick saw.
    pub pages: u64,
    /// The deepest due queue (posts and replies) a tick saw.
    pub queue: u64,
    /// Ticks that failed.
    pub failures: u64,
    pub strays_closed: u64,
    pub stops: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Timeline {
    pub hours: u64,
    pub bucket_seconds: u64,
    pub buckets: Vec<Bucket>,
}

/// The timeline of `span` before `now` from its events (ticks, strays closed, STOP).
pub fn timeline(events: &[events::Event], span: Duration, now: SystemTime) -> Timeline {
    let width = (span / TIMELINE_BUCKETS as u32).max(Duration::from_secs(1));
    let start = now - width * TIMELINE_BUCKETS as u32;
    let mut buckets: Vec<Bucket> = (0..TIMELINE_BUCKETS)
        .map(|i| Bucket {
            start: crate::clock::format_ts(start + width * i as u32),
            ..Bucket::default()
        })
        .collect();
    for event in events {
        let Ok(offset) = event.created_at.duration_since(start) else {
            continue;
        };
        let index = (offset.as_secs_f64() / width.as_secs_f64()) as usize;
        let Some(bucket) = buckets.get_mut(index) else {
            continue;
        };
        let data = &event.event_data;
        let number = |key: &str| data[key].as_u64().unwrap_or(0);
        match event.event_type.as_str() {
            events::TICK => {
                bucket.ticks += 1;
                bucket.pages = bucket.pages.max(number("pages"));
                bucket.queue = bucket
                    .queue
                    .max(number("posting_ready") + number("reply_ready"));
                // The metrics' rule: a tick that only reports a job's failure is not failed.
                let failed = data["failed"]
                    .as_bool()
                    .unwrap_or(!data["last_error"].is_null());
                if failed {
                    bucket.failures += 1;
                }
            }
            events::PAGE_CAP_ENFORCED => bucket.strays_closed += number("closed"),
            events::STOP => bucket.stops += 1,
            _ => {}
        }
    }
    Timeline {
        hours: span.as_secs().div_ceil(3600),
        bucket_seconds: width.as_secs(),
        buckets,
    }
}

/// Everything the overview shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub at: String,
    /// `executor fleet --json` rows, plus `tick_line`.
    pub executors: Vec<Value>,
    pub queue: Vec<QueueRow>,
    /// Why each lane with due jobs waits (every account's, as `executor status` says it).
    pub waiting: Vec<Waiting>,
    /// The pauses in force, oldest first (as `Pause::to_json`).
    #[serde(serialize_with = "pauses_json")]
    pub pauses: Vec<Pause>,
    pub timeline: Timeline,
}

fn pauses_json<S: serde::Serializer>(pauses: &[Pause], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(pauses.iter().map(Pause::to_json))
}

impl Overview {
    /// Why `account`'s `lane` waits, if it has due jobs.
    pub fn waiting_of(&self, account: &str, lane: &str) -> Option<&Waiting> {
        self.waiting
            .iter()
            .find(|w| w.account == account && w.kind.as_str() == lane && w.due > 0)
    }
}

/// The one line a tick's data makes, as the overview shows it under "last tick".
pub fn tick_line(tick: &Value) -> String {
    if tick.is_null() {
        return String::new();
    }
    let field = |key: &str| match &tick[key] {
        Value::Null => "-".to_string(),
        Value::String(text) => crate::tick::one_line(text),
        other => other.to_string(),
    };
    format!(
        "tick {} · {} ms · pages={} posting_ready={} reply_ready={}",
        field("tick"),
        field("duration_ms"),
        field("pages"),
        field("posting_ready"),
        field("reply_ready")
    )
}

pub async fn overview(
    store: &dyn Store,
    silence: Duration,
    span: Duration,
    now: SystemTime,
) -> Result<Overview, StoreError> {
    let members = store.fleet().await?;
    let executors = members
        .iter()
        .map(|member| {
            let mut row = crate::cli::fleet::row(member, now, silence);
            row["tick_line"] = Value::String(tick_line(&member.last_tick));
            row
        })
        .collect();
    let queue = queue_rows(&store.job_queue_by_account(now).await?);
    let waiting = crate::waiting::why_every_account(store, now).await?;
    let mut pauses = store.pause_list().await?;
    pauses.sort_by_key(|pause| pause.since);
    let events = store
        .event_list(&EventQuery {
            types: vec![
                events::TICK.into(),
                events::PAGE_CAP_ENFORCED.into(),
                events::STOP.into(),
            ],
            since: Some(now - span),
            limit: Some(TIMELINE_EVENTS),
            ..Default::default()
        })
        .await?;
    Ok(Overview {
        at: crate::clock::format_ts(now),
        executors,
        queue,
        waiting,
        pauses,
        timeline: timeline(&events, span, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Severity};
    use crate::jobs::Kind;
    use serde_json::json;

    fn count(account: &str, state: &str, due: bool, n: u64, at: u64) -> QueueCount {
        QueueCount {
            account: account.into(),
            kind: Kind::Post,
            state: state.into(),
            due,
            count: n,
            earliest: crate::clock::from_unix_ms(at),
        }
    }

    #[test]
    fn the_queue_is_split_by_account_and_whether_it_is_due() {
        let rows = queue_rows(&[
            count("", "queued", true, 2, 0),
            count("", "failed", false, 1, 9_000),
            count("", "queued", false, 3, 5_000),
            count("", "dead", true, 4, 0),
            count("bob", "uncertain", true, 1, 0),
            count("bob", "attempting", true, 1, 0),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].due, rows[0].waiting, rows[0].dead), (2, 4, 4));
        assert_eq!(
            rows[0].waiting_until.as_deref(),
            Some("1970-01-01T00:00:05.000Z")
        );
        assert_eq!((rows[1].uncertain, rows[1].in_flight), (1, 1));
    }

    #[test]
    fn the_timeline_counts_ticks_failures_strays_and_stops_per_bucket() {
        let now = crate::clock::from_unix_ms(36_000_000);
        let event = |kind: &str, secs_ago: u64, data: Value| Event {
            id: format!("{kind}{secs_ago}"),
            event_type: kind.into(),
            severity: Severity::Info,
            message: String::new(),
            event_data: data,
            created_at: now - Duration::from_secs(secs_ago),
        };
        let events = [
            event(
                events::TICK,
                30,
                json!({"pages": 1, "posting_ready": 2, "reply_ready": 1, "last_error": null}),
            ),
            event(
                events::TICK,
                20,
                json!({"pages": 3, "last_error": "CDP down"}),
            ),
            event(events::PAGE_CAP_ENFORCED, 20, json!({"closed": 2})),
            event(events::STOP, 10, json!({})),
            event(events::TICK, 7200, json!({"pages": 9})),
        ];
        let line = timeline(&events, Duration::from_secs(3600), now);
        assert_eq!(line.buckets.len(), TIMELINE_BUCKETS);
        let last = line.buckets.last().expect("a bucket");
        assert_eq!(
            (
                last.ticks,
                last.pages,
                last.queue,
                last.failures,
                last.strays_closed,
                last.stops
            ),
            (2, 3, 3, 1, 2, 1)
        );
        assert_eq!(
            line.buckets.iter().map(|b| b.ticks).sum::<u64>(),
            2,
            "the old tick is out"
        );
    }
}
