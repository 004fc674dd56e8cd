//! Events (`system_events` rows) and the sink that guarantees none is lost (SPEC §4, §6).
//!
//! The tick never waits on the store: it hands events to [`EventSink::emit`], which only queues
//! them. One writer task inserts them in order. When an insert fails (database locked, read-only,
//! unreachable) the event is appended to a local spool (`<profile>/spool/events.jsonl`, append-only
//! JSON lines); while the spool is non-empty every new event goes behind it, so order is kept.
//! The writer retries the spool every few seconds and, once the store answers, inserts the spooled
//! events in order and rewrites the spool without them.
//!
//! Exactly once: every event has a unique id and inserts ignore an id already stored, so a crash
//! between "inserted" and "removed from the spool" only causes a harmless second attempt.
//! A spool left by a crashed run is flushed by the next run.

use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

pub const TICK: &str = "EXECUTOR_DAEMON_TICK";
pub const BOOT: &str = "EXECUTOR_DAEMON_BOOT";
pub const READY: &str = "EXECUTOR_DAEMON_READY";
pub const STOP: &str = "EXECUTOR_DAEMON_STOP";
pub const EXIT: &str = "EXECUTOR_DAEMON_EXIT";
pub const CRASH: &str = "EXECUTOR_DAEMON_CRASH";
pub const PAGE_CAP_ENFORCED: &str = "EXECUTOR_PAGE_CAP_ENFORCED";
pub const HARD_CAP_EXCEEDED: &str = "EXECUTOR_HARD_CAP_EXCEEDED";
pub const BROWSER_LOST: &str = "EXECUTOR_BROWSER_LOST";
pub const BROWSER_RECYCLED: &str = "EXECUTOR_BROWSER_RECYCLED";
pub const TICK_CAPPED: &str = "EXECUTOR_TICK_CAPPED";
pub const AUTH_REQUIRED: &str = "EXECUTOR_AUTH_REQUIRED";
pub const POST_SUCCESS: &str = "POST_SUCCESS";
pub const REPLY_SUCCESS: &str = "REPLY_SUCCESS";
pub const POST_FAILED: &str = "POST_FAILED";
pub const JOB_OUTCOME_UNKNOWN: &str = "JOB_OUTCOME_UNKNOWN";
pub const JOB_RESCUED: &str = "JOB_RESCUED";
pub const RATE_LIMIT_DETECTED: &str = "RATE_LIMIT_DETECTED";
pub const RATE_LIMIT_CLEARED: &str = "RATE_LIMIT_CLEARED";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One `system_events` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub severity: Severity,
    pub message: String,
    pub event_data: serde_json::Value,
    #[serde(with = "ts_serde")]
    pub created_at: SystemTime,
}

mod ts_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::clock::format_ts(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        crate::clock::parse_ts(&text).ok_or_else(|| serde::de::Error::custom("bad timestamp"))
    }
}

/// The identity every event carries in `event_data` (SPEC §4).
#[derive(Debug, Clone)]
pub struct Identity {
    pub run_id: String,
    pub executor_id: String,
}

impl Event {
    /// A new event with a fresh id, created now; `data` must be a JSON object (or null).
    pub fn new(
        identity: &Identity,
        event_type: &str,
        severity: Severity,
        message: impl Into<String>,
        data: serde_json::Value,
    ) -> Event {
        Self::at(
            identity,
            event_type,
            severity,
            message,
            data,
            SystemTime::now(),
        )
    }

    pub fn at(
        identity: &Identity,
        event_type: &str,
        severity: Severity,
        message: impl Into<String>,
        data: serde_json::Value,
        created_at: SystemTime,
    ) -> Event {
        let mut object = match data {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        object.insert("run_id".into(), identity.run_id.clone().into());
        object.insert("executor_id".into(), identity.executor_id.clone().into());
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            severity,
            message: message.into(),
            event_data: serde_json::Value::Object(object),
            // Stored at millisecond precision so text and database agree exactly.
            created_at: crate::clock::from_unix_ms(crate::clock::unix_ms(created_at)),
        }
    }
}

/// The local spool: append-only JSON lines, one event per line.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    pub fn new(path: PathBuf) -> Spool {
        Spool { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, event: &Event) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        writeln!(file, "{line}")?;
        file.sync_data()
    }

    /// Spooled events in order. A torn last line (a crash mid-append) is skipped.
    pub fn read(&self) -> std::io::Result<Vec<Event>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    pub fn is_empty(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| m.len() == 0)
            .unwrap_or(true)
    }

    /// Replaces the spool with `remaining` (atomically: temp file + rename).
    fn rewrite(&self, remaining: &[Event]) -> std::io::Result<()> {
        if remaining.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            };
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            for event in remaining {
                let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
                writeln!(file, "{line}")?;
            }
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

enum Message {
    Event(Box<Event>),
    Flush(oneshot::Sender<bool>),
}

/// Queues events for the writer task. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Message>,
    pub identity: Identity,
    /// Sees every event on its way to the store (the metrics count from it).
    observer: Option<Arc<crate::metrics::Metrics>>,
}

/// How long one insert may take before the event is spooled instead.
const INSERT_DEADLINE: Duration = Duration::from_secs(3);
/// How often a non-empty spool is retried.
const RETRY_EVERY: Duration = Duration::from_secs(2);

impl EventSink {
    /// Starts the writer task. A spool left by an earlier run is flushed first.
    pub fn start(store: Arc<dyn Store>, spool: Spool, identity: Identity) -> EventSink {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, spool, rx));
        EventSink {
            tx,
            identity,
            observer: None,
        }
    }

    /// Every event emitted from now on is also counted by `metrics`.
    pub fn with_observer(mut self, metrics: Arc<crate::metrics::Metrics>) -> EventSink {
        self.observer = Some(metrics);
        self
    }

    /// Queues one event.
    pub fn emit(&self, event: Event) {
        if let Some(observer) = &self.observer {
            observer.observe(&event);
        }
        let _ = self.tx.send(Message::Event(Box::new(event)));
    }

    /// Makes and queues an event with this sink's identity.
    pub fn record(
        &self,
        event_type: &str,
        severity: Severity,
        message: impl Into<String>,
        data: serde_json::Value,
    ) {
        self.emit(Event::new(
            &self.identity,
            event_type,
            severity,
            message,
            data,
        ));
    }

    /// Waits until everything queued so far is in the store (true) or in the spool (false), or
    /// the deadline passes (false).
    pub async fn flush(&self, deadline: Duration) -> bool {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Message::Flush(done_tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(deadline, done_rx).await, Ok(Ok(true)))
    }
}

async fn writer(store: Arc<dyn Store>, spool: Spool, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut spooled = !spool.is_empty();
    if spooled {
        spooled = !flush_spool(store.as_ref(), &spool).await;
    }
    // A fixed deadline, not a fresh sleep per loop: events arriving faster than the retry
    // interval must not postpone the retry forever.
    let mut next_retry = tokio::time::Instant::now() + RETRY_EVERY;
    loop {
        let message = if spooled {
            tokio::select! {
                message = rx.recv() => message,
                _ = tokio::time::sleep_until(next_retry) => None,
            }
        } else {
            rx.recv().await
        };
        if spooled && tokio::time::Instant::now() >= next_retry {
            spooled = !flush_spool(store.as_ref(), &spool).await;
            next_retry = tokio::time::Instant::now() + RETRY_EVERY;
        }
        let Some(message) = message else {
            if rx.is_closed() && rx.is_empty() {
                return;
            }
            continue;
        };
        match message {
            Message::Event(event) => {
                if !spooled && insert(store.as_ref(), &event).await.is_ok() {
                    continue;
                }
                // Behind the spool, or the store failed: keep order by appending.
                match spool.append(&event) {
                    Ok(()) => spooled = true,
                    Err(err) => eprintln!(
                        "{}event {} could not be stored or spooled ({}): {err}",
                        crate::log::PREFIX,
                        event.event_type,
                        spool.path().display()
                    ),
                }
            }
            Message::Flush(done) => {
                if spooled {
                    spooled = !flush_spool(store.as_ref(), &spool).await;
                }
                let _ = done.send(!spooled);
            }
        }
    }
}

async fn insert(store: &dyn Store, event: &Event) -> Result<(), crate::store::StoreError> {
    match tokio::time::timeout(INSERT_DEADLINE, store.event_insert(event)).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(crate::store::StoreError::Timeout {
            operation: "event insert",
            seconds: INSERT_DEADLINE.as_secs(),
        }),
    }
}

/// Inserts spooled events in order; returns true when the spool is empty afterwards.
async fn flush_spool(store: &dyn Store, spool: &Spool) -> bool {
    let events = match spool.read() {
        Ok(events) => events,
        Err(_) => return false,
    };
    let mut done = 0;
    for event in &events {
        if insert(store, event).await.is_err() {
            break;
        }
        done += 1;
    }
    if done == 0 && !events.is_empty() {
        return false;
    }
    spool.rewrite(&events[done..]).is_ok() && done == events.len()
}
