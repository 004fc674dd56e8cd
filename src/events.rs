//! The event model: `system_events` rows, their type names and constructors (docs/architecture.md).
//!
//! This module is the ground floor: it imports nothing of ours but the clock, so every other
//! module (the store that writes events inside its transactions, the sink that queues them, the
//! metrics that count them) can use it without an import circle. Whoever wants to see events as
//! they are recorded implements [`EventObserver`]; the sink and the store call it.

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

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
/// An unknown outcome could not be settled: the site could not be searched back to the attempt.
pub const JOB_LOOKUP_INCOMPLETE: &str = "JOB_LOOKUP_INCOMPLETE";
/// The browser is logged in as another account than the executor serves: nothing is claimed.
pub const ACCOUNT_MISMATCH: &str = "ACCOUNT_MISMATCH";
/// A standby took over an account whose holder's lease had lapsed.
pub const FAILOVER: &str = "EXECUTOR_FAILOVER";
/// This executor waits as a standby: another holds its account.
pub const STANDBY: &str = "EXECUTOR_STANDBY";
pub const RATE_LIMIT_DETECTED: &str = "RATE_LIMIT_DETECTED";
pub const RATE_LIMIT_CLEARED: &str = "RATE_LIMIT_CLEARED";
/// An operator paused a lane or an account (`executor pause`): nothing new is claimed there.
pub const QUEUE_PAUSED: &str = "QUEUE_PAUSED";
/// An operator lifted a pause (`executor resume`).
pub const QUEUE_RESUMED: &str = "QUEUE_RESUMED";

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
        // Whatever came from outside (a site's answer, a page's text, an error) is bounded
        // before it is stored: an event is never megabytes.
        for value in object.values_mut() {
            bound_strings(value);
        }
        let message: String = message.into();
        let message = crate::quote::cut(&message, EVENT_TEXT_CHARS).unwrap_or(message);
        object.insert("run_id".into(), identity.run_id.clone().into());
        object.insert("executor_id".into(), identity.executor_id.clone().into());
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            severity,
            message,
            event_data: serde_json::Value::Object(object),
            // Stored at millisecond precision so text and database agree exactly.
            created_at: crate::clock::from_unix_ms(crate::clock::unix_ms(created_at)),
        }
    }
}

/// The longest text an event stores in its message or any string of its data.
pub const EVENT_TEXT_CHARS: usize = 16 * 1024;

/// Cuts every string in `value` (nested too) to [`EVENT_TEXT_CHARS`].
fn bound_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            if let Some(cut) = crate::quote::cut(text, EVENT_TEXT_CHARS) {
                *text = cut;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_strings),
        serde_json::Value::Object(map) => map.values_mut().for_each(bound_strings),
        _ => {}
    }
}

/// Sees every event the daemon records, once: the sink calls it for the events it queues, the
/// store for the events it wrote inside a committed transaction (actions, rate limits, rescues).
pub trait EventObserver: Send + Sync {
    fn observe(&self, event: &Event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_in_an_event_is_bounded() {
        let identity = Identity {
            run_id: "r".into(),
            executor_id: "e".into(),
        };
        let huge = "x".repeat(1_000_000);
        let event = Event::new(
            &identity,
            "T",
            Severity::Info,
            huge.clone(),
            serde_json::json!({ "answer": huge, "nested": { "list": [huge, 1] }, "n": 5 }),
        );
        let bytes = serde_json::to_string(&event.event_data)
            .expect("json")
            .len()
            + event.message.len();
        assert!(bytes < 5 * (EVENT_TEXT_CHARS + 64), "{bytes} bytes");
        assert!(event.message.ends_with("…(1000000 bytes)"));
        assert_eq!(event.event_data["n"], 5);
        assert_eq!(event.event_data["run_id"], "r");
    }
}
