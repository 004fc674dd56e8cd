//! The event sink: guarantees that no event is lost (docs/architecture.md).
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

use crate::events::{Event, EventObserver, Identity, Severity};
use crate::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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

    /// The spool's directory and file are usable: each absent, or a real directory and a
    /// regular file (not links, not special files). The daemon checks this at start, so that a
    /// spool it could not write is said at once, not when the store first fails.
    pub fn check(&self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            match std::fs::symlink_metadata(dir) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) => return Err(err),
                Ok(_) => crate::files::create_private_subdir(dir).map_err(|err| named(dir, err))?,
            }
        }
        crate::files::require_absent_or_regular(&self.path).map_err(|err| named(&self.path, err))
    }

    pub fn append(&self, event: &Event) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::files::create_private_subdir(dir).map_err(|err| named(dir, err))?;
        }
        let mut file = crate::files::open_for_writing(&self.path, crate::files::Write::Append)?;
        let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        writeln!(file, "{line}")?;
        file.sync_data()
    }

    /// Spooled events in order. A torn last line (a crash mid-append) is skipped. Only a
    /// regular file is read, not through a link (see `files`); it is read whole, however long
    /// an outage made it, since every line is an event to keep.
    pub fn read(&self) -> std::io::Result<Vec<Event>> {
        let read = || -> std::io::Result<String> {
            use std::io::Read;
            let mut text = String::new();
            crate::files::open_for_reading(&self.path, crate::files::Links::Refuse)?
                .read_to_string(&mut text)?;
            Ok(text)
        };
        match read() {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    pub fn is_empty(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
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
        let mut text = Vec::new();
        for event in remaining {
            let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
            writeln!(text, "{line}")?;
        }
        crate::files::replace_atomically(&self.path, &text)
    }
}

/// `err` with the path it is about in front, for a path other than the spool file itself.
fn named(path: &Path, err: std::io::Error) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

enum Message {
    /// An event; a tick's names its executor, whose registry row is stored with it in one
    /// transaction.
    Event {
        event: Box<Event>,
        tick_of: Option<TickOf>,
    },
    Flush(oneshot::Sender<bool>),
}

/// A tick's event is stored with its executor's registry row, and the lease its tick held
/// renewed, in one commit.
struct TickOf {
    executor_id: String,
    renew: Option<crate::fleet::LeaseRenewal>,
}

/// Queues events for the writer task. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Message>,
    pub identity: Identity,
    /// Sees every event on its way to the store (the metrics count from it).
    observer: Option<Arc<dyn EventObserver>>,
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

    /// Every event emitted from now on is also shown to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn EventObserver>) -> EventSink {
        self.observer = Some(observer);
        self
    }

    /// Queues one event.
    pub fn emit(&self, event: Event) {
        self.queue(event, None);
    }

    fn queue(&self, event: Event, tick_of: Option<TickOf>) {
        if let Some(observer) = &self.observer {
            observer.observe(&event);
        }
        let _ = self.tx.send(Message::Event {
            event: Box::new(event),
            tick_of,
        });
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

    /// Queues a tick's event, which the writer stores together with executor `executor_id`'s
    /// last tick and heartbeat in the registry, and `renew`, the lease the tick held, renewed
    /// (one commit). Spooled like any event when the store fails; the registry then waits for
    /// the next tick, and the lease is not renewed late from the spool (the next tick renews it).
    pub fn record_tick(
        &self,
        executor_id: &str,
        renew: Option<crate::fleet::LeaseRenewal>,
        severity: Severity,
        message: impl Into<String>,
        data: serde_json::Value,
    ) {
        let event = Event::new(&self.identity, crate::events::TICK, severity, message, data);
        let tick_of = TickOf {
            executor_id: executor_id.to_string(),
            renew,
        };
        self.queue(event, Some(tick_of));
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
        let (event, tick_of) = match message {
            Message::Event { event, tick_of } => (event, tick_of),
            Message::Flush(done) => {
                if spooled {
                    spooled = !flush_spool(store.as_ref(), &spool).await;
                }
                let _ = done.send(!spooled);
                continue;
            }
        };
        if !spooled
            && insert(store.as_ref(), &event, tick_of.as_ref())
                .await
                .is_ok()
        {
            continue;
        }
        // Behind the spool, or the store failed: keep order by appending.
        match spool.append(&event) {
            Ok(()) => spooled = true,
            Err(err) => crate::errln!(
                "{}event {} could not be stored or spooled ({}): {err}",
                crate::log::PREFIX,
                event.event_type,
                spool.path().display()
            ),
        }
    }
}

/// Inserts `event`; a tick's (`tick_of` set) together with its executor's registry row and
/// lease.
async fn insert(
    store: &dyn Store,
    event: &Event,
    tick_of: Option<&TickOf>,
) -> Result<(), crate::store::StoreError> {
    let inserted = async {
        match tick_of {
            Some(tick) => {
                store
                    .executor_tick(&tick.executor_id, event, tick.renew.as_ref())
                    .await
            }
            None => store.event_insert(event).await,
        }
    };
    match tokio::time::timeout(INSERT_DEADLINE, inserted).await {
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
        if insert(store, event, None).await.is_err() {
            break;
        }
        done += 1;
    }
    if done == 0 && !events.is_empty() {
        return false;
    }
    spool.rewrite(&events[done..]).is_ok() && done == events.len()
}
