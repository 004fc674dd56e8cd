//! Operator pauses: a lane (posts or replies), an account, or both, stopped fleet-wide until an
//! operator resumes it (`executor pause|resume`, docs/jobs.md "Pausing").
//!
//! A pause is a row in the store (`pauses`, one per scope), so every executor sharing the store
//! obeys it: the claim reads the pauses in its own transaction and claims nothing in a paused
//! scope ([`blocking`]). A pause stops *new* work only. What is already in flight still settles:
//! an `attempting` job's outcome is recorded, an `uncertain` job is still looked up on the site,
//! expired leases are still swept and a restarted executor still rescues its jobs — holding any
//! of those back would leave a job whose fate nobody knows, while none of them can publish
//! anything new. A job claimed just before the pause was stored goes on to its click in that
//! same tick (at most one per lane): it is already counted as an action, and stopping it
//! half-way would only turn it into a failure.
//!
//! Pausing and resuming each write an event in the same transaction as the change.

use crate::kind::Kind;
use std::time::SystemTime;

/// What a pause covers: one lane or both (`kind` `None`), of one account or of every account
/// (`account` `None`; `Some("")` is the default account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub kind: Option<Kind>,
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("--account must be at most 100 characters")]
    AccountTooLong,
    #[error("--account must not contain control characters")]
    AccountControl,
}

impl Scope {
    /// Everything: both lanes of every account.
    pub const ALL: Scope = Scope {
        kind: None,
        account: None,
    };

    /// A scope from the operator's flags, checked like an account name anywhere else.
    pub fn new(kind: Option<Kind>, account: Option<String>) -> Result<Scope, ScopeError> {
        if let Some(name) = &account {
            if name.chars().count() > 100 {
                return Err(ScopeError::AccountTooLong);
            }
            if name.chars().any(char::is_control) {
                return Err(ScopeError::AccountControl);
            }
        }
        Ok(Scope { kind, account })
    }

    /// Whether a claim in `kind`'s lane for `account` falls under this scope.
    pub fn covers(&self, account: &str, kind: Kind) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.account.as_deref().is_none_or(|a| a == account)
    }

    /// The store's key for the scope: one row per scope. JSON, so that no account name can make
    /// two scopes share a key.
    pub fn key(&self) -> String {
        serde_json::json!([self.kind.map(Kind::as_str), self.account]).to_string()
    }

    /// In words: `the post lane of account "alice"`, `every lane of every account`.
    pub fn describe(&self) -> String {
        let lanes = match self.kind {
            Some(kind) => format!("the {} lane", kind.as_str()),
            None => "both lanes".to_string(),
        };
        let accounts = match self.account.as_deref() {
            None => "every account".to_string(),
            Some("") => "the default account".to_string(),
            Some(name) => format!("account {}", crate::quote::quoted(name)),
        };
        format!("{lanes} of {accounts}")
    }

    /// The `executor resume` flags that lift this scope's pause.
    pub fn resume_command(&self) -> String {
        let mut command = "executor resume".to_string();
        if let Some(kind) = self.kind {
            command.push_str(&format!(" --kind {}", kind.as_str()));
        }
        if let Some(account) = &self.account {
            command.push_str(&format!(" --account {}", crate::quote::quoted(account)));
        }
        command
    }
}

/// A pause as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub scope: Scope,
    /// The operator's words (`--reason`), possibly empty.
    pub reason: String,
    /// Who paused it: `user@host`.
    pub by: String,
    pub since: SystemTime,
}

impl Pause {
    /// In words, with who and since when: `the post lane of every account, paused by op@host
    /// since 2026-12-07T14:02:00.000Z (checking the account)`. The one sentence the CLI, the
    /// log, the events and the "why is it waiting?" view say a pause with.
    pub fn describe(&self) -> String {
        let why = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", crate::quote::single_line(&self.reason, 500))
        };
        format!(
            "{}, paused by {} since {}{why}",
            self.scope.describe(),
            self.by,
            crate::clock::format_ts(self.since)
        )
    }

    /// As JSON (status, the UI).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.scope.kind.map(Kind::as_str),
            "account": self.scope.account,
            "scope": self.scope.describe(),
            "reason": self.reason,
            "by": self.by,
            "since": crate::clock::format_ts(self.since),
            "resume": self.scope.resume_command(),
        })
    }
}

/// What storing a pause did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The scope is paused from now on.
    New,
    /// The scope was paused already: this is the pause that holds it (kept as it was).
    Already(Pause),
}

/// The pause that stops `account`'s `kind` lane from claiming, if any (the oldest, when several
/// cover it). The one rule both the claim and the "why is it waiting?" view apply.
pub fn blocking<'a>(pauses: &'a [Pause], account: &str, kind: Kind) -> Option<&'a Pause> {
    pauses
        .iter()
        .filter(|pause| pause.scope.covers(account, kind))
        .min_by_key(|pause| pause.since)
}

/// The pauses that still cover part of `scope` once its own pause is lifted (`executor resume
/// --kind post` leaves an account's pause in place, and says so).
pub fn still_covering<'a>(pauses: &'a [Pause], scope: &Scope) -> Vec<&'a Pause> {
    let overlaps = |other: &Scope| {
        let kinds = other.kind.is_none() || scope.kind.is_none() || other.kind == scope.kind;
        let accounts =
            other.account.is_none() || scope.account.is_none() || other.account == scope.account;
        kinds && accounts
    };
    pauses
        .iter()
        .filter(|pause| pause.scope != *scope && overlaps(&pause.scope))
        .collect()
}

/// The events a pause and a resume write, in the same transaction as the change.
pub mod events {
    use super::{Pause, Scope};
    use crate::events::{Event, Identity, Severity, QUEUE_PAUSED, QUEUE_RESUMED};
    use std::time::SystemTime;

    pub fn paused(pause: &Pause, identity: &Identity) -> Event {
        Event::at(
            identity,
            QUEUE_PAUSED,
            Severity::Warning,
            format!("{}: nothing new is claimed there", pause.describe()),
            pause.to_json(),
            pause.since,
        )
    }

    pub fn resumed(scope: &Scope, by: &str, identity: &Identity, now: SystemTime) -> Event {
        Event::at(
            identity,
            QUEUE_RESUMED,
            Severity::Info,
            format!("{} resumed by {by}", scope.describe()),
            serde_json::json!({
                "kind": scope.kind.map(crate::kind::Kind::as_str),
                "account": scope.account,
                "scope": scope.describe(),
                "by": by,
            }),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pause(kind: Option<Kind>, account: Option<&str>, at: u64) -> Pause {
        Pause {
            scope: Scope {
                kind,
                account: account.map(str::to_string),
            },
            reason: String::new(),
            by: "op@host".into(),
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        }
    }

    #[test]
    fn a_pause_covers_its_lane_and_account_and_nothing_else() {
        let post_of_alice = pause(Some(Kind::Post), Some("alice"), 1);
        assert!(post_of_alice.scope.covers("alice", Kind::Post));
        assert!(!post_of_alice.scope.covers("alice", Kind::Reply));
        assert!(!post_of_alice.scope.covers("bob", Kind::Post));
        assert!(!post_of_alice.scope.covers("", Kind::Post));
        let default_account = pause(None, Some(""), 1);
        assert!(default_account.scope.covers("", Kind::Reply));
        assert!(!default_account.scope.covers("alice", Kind::Reply));
        assert!(Scope::ALL.covers("anyone", Kind::Reply));
    }

    #[test]
    fn the_oldest_covering_pause_is_the_one_that_blocks() {
        let pauses = [
            pause(Some(Kind::Reply), None, 5),
            pause(None, Some("alice"), 9),
            pause(Some(Kind::Post), Some("alice"), 3),
        ];
        assert_eq!(blocking(&pauses, "alice", Kind::Post), Some(&pauses[2]));
        assert_eq!(blocking(&pauses, "alice", Kind::Reply), Some(&pauses[0]));
        assert_eq!(blocking(&pauses, "bob", Kind::Post), None);
    }

    #[test]
    fn resuming_a_lane_names_the_wider_pauses_that_still_hold() {
        let pauses = [
            pause(Some(Kind::Post), None, 1),
            pause(None, Some("alice"), 2),
            pause(Some(Kind::Reply), Some("bob"), 3),
        ];
        let lifted = Scope {
            kind: Some(Kind::Post),
            account: None,
        };
        let left = still_covering(&pauses, &lifted);
        assert_eq!(left, vec![&pauses[1]]);
    }

    #[test]
    fn keys_tell_every_scope_apart_and_words_name_it() {
        let scopes = [
            Scope::ALL,
            Scope::new(Some(Kind::Post), None).expect("scope"),
            Scope::new(None, Some(String::new())).expect("scope"),
            Scope::new(None, Some("null".into())).expect("scope"),
            Scope::new(Some(Kind::Reply), Some("alice".into())).expect("scope"),
        ];
        let keys: std::collections::HashSet<String> = scopes.iter().map(Scope::key).collect();
        assert_eq!(keys.len(), scopes.len());
        assert_eq!(scopes[0].describe(), "both lanes of every account");
        assert_eq!(scopes[4].describe(), "the reply lane of account \"alice\"");
        assert_eq!(
            scopes[4].resume_command(),
            "executor resume --kind reply --account \"alice\""
        );
        assert_eq!(
            Scope::new(None, Some("a\u{7}".into())),
            Err(ScopeError::AccountControl)
        );
    }
}
