//! Holding the account: this executor's account lease, renewed by the tick (docs/fleet.md).
//!
//! Each tick asks the store for the account's lease before any work on the site, and again just
//! before each irreversible click: the holder renews it, a standby takes it once the holder's has
//! lapsed (the store records the failover), anyone else waits. On an idle tick with no session
//! check due, a holder whose lease was renewed within the last tick only reads it; the tick's
//! event, stored in the background, renews it in the same commit (such a tick writes once).
//! Only a tick that found
//! the lease its own renews it, so a daemon that cannot reach its browser or its store, or whose
//! tick hangs (cut at its cap), stops renewing — and a standby takes over when the lease runs
//! out. The store itself refuses the click to anyone but the live holder, so a late renewal can
//! never let two executors publish for one account.

use crate::events::Identity;
use crate::fleet::LeaseOutcome;
use crate::log::Logger;
use crate::store::{Store, StoreError};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The lease's time to live for a tick interval: three ticks (so one slow or failed renewal does
/// not hand the account over), at least 3 s, at most 10 minutes.
pub fn lease_ttl(tick_interval: Duration) -> Duration {
    (tick_interval * 3).clamp(Duration::from_secs(3), Duration::from_secs(600))
}

/// What the last answer was, so each change is said once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    Held,
    Standby,
}

/// Asks for the account's lease and says when the answer changes.
pub struct AccountHold {
    pub account: String,
    pub executor_id: String,
    pub ttl: Duration,
    last: Mutex<Last>,
}

impl AccountHold {
    pub fn new(account: String, executor_id: String, ttl: Duration) -> AccountHold {
        AccountHold {
            account,
            executor_id,
            ttl,
            last: Mutex::new(Last::Nothing),
        }
    }

    fn shown(&self) -> String {
        if self.account.is_empty() {
            "the default account".to_string()
        } else {
            format!("account {:?}", self.account)
        }
    }

    /// Takes or renews the lease, or learns who holds it.
    pub async fn hold(
        &self,
        store: &dyn Store,
        identity: &Identity,
        log: &Logger,
    ) -> Result<LeaseOutcome, StoreError> {
        let outcome = store
            .account_lease_hold(
                &self.account,
                &self.executor_id,
                self.ttl,
                identity,
                SystemTime::now(),
            )
            .await?;
        self.say(&outcome, log);
        Ok(outcome)
    }

    /// Whether the last answer was that this executor holds the lease.
    pub fn held(&self) -> bool {
        self.last.lock().is_ok_and(|last| *last == Last::Held)
    }

    /// Says in the log what changed with `outcome`, the lease's latest answer (each change once).
    pub fn say(&self, outcome: &LeaseOutcome, log: &Logger) {
        let now = match outcome {
            LeaseOutcome::Held { .. } => Last::Held,
            LeaseOutcome::Standby { .. } => Last::Standby,
        };
        let before = self
            .last
            .lock()
            .map(|mut last| std::mem::replace(&mut *last, now))
            .unwrap_or(Last::Nothing);
        match outcome {
            LeaseOutcome::Held {
                took_over_from: Some(previous),
                ..
            } => log.warn(&format!(
                "FAILOVER: took over {} from {previous}, whose lease had lapsed",
                self.shown()
            )),
            LeaseOutcome::Held { .. } if before != Last::Held => {
                log.info(&format!("Acting for {}", self.shown()))
            }
            LeaseOutcome::Standby { holder, .. } if before != Last::Standby => log.info(&format!(
                "STANDBY: {holder} holds {}; taking over if its lease lapses",
                self.shown()
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_outlives_a_slow_tick_but_not_a_dead_executor_for_long() {
        assert_eq!(lease_ttl(Duration::from_secs(60)), Duration::from_secs(180));
        assert_eq!(
            lease_ttl(Duration::from_millis(300)),
            Duration::from_secs(3)
        );
        assert_eq!(
            lease_ttl(Duration::from_secs(3600)),
            Duration::from_secs(600)
        );
    }
}
